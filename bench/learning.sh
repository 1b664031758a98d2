#!/bin/sh
# learning.sh BUILD - do the shipped jobs learn? Runs jobs/cartpole.ini and
# jobs/pendulum.ini with --feedback teacher and with --feedback true-reward
# (the yardstick: the same PPO on the environment's own reward), on seeds
# 1..5, plus the unseen seeds 101..105 with BENCH_UNSEEN=1 (seeds nobody
# tuned on), two runs at a time (two cores, one thread each).
#
# Prints a markdown table per environment: seed, feedback, labels, env
# steps, wall seconds, peak resident memory, the final evaluation's true
# return (mean +- std over the job's eval episodes), and pass/fail against
# the target:
#   CartPole-v1  return >= 475  with <= 500 labels
#   Pendulum-v1  return >= -200 with <= 200 labels
# (the label limit applies to teacher runs; true-reward runs use none).
#
# Peak memory comes from /usr/bin/time -v when it exists, else from VmHWM
# in /proc/PID/status, polled while the run lasts.
# Run from the repository root. Run directories and logs: ${BENCH_OUT:-/tmp/rlhf-bench}/<env>-<feedback>-s<seed>/.
# Exit status: 0 when every run finished (whether or not it passed), 1 when
# a run failed to run.
set -u

# ---- one run (the parallel workers call the script back with --one)
if [ "${1:-}" = "--one" ]; then
    BUILD=$2 job=$3 feedback=$4 seed=$5
    name=$(basename "$job" .ini)
    dir="$OUT/$name-$feedback-s$seed"
    rm -rf "$dir"
    mkdir -p "$dir"
    set -- "$BUILD/bin/rlhf" train "$job" --feedback "$feedback" --seed "$seed" --out "$dir/run"
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -v -o "$dir/time.txt" "$@" >"$dir/stdout" 2>"$dir/stderr"
        rc=$?
        kb=$(sed -n 's/.*Maximum resident set size (kbytes): *\([0-9]*\).*/\1/p' "$dir/time.txt")
    else
        "$@" >"$dir/stdout" 2>"$dir/stderr" &
        pid=$!
        kb=0
        # VmHWM only grows, so the last reading is the peak (to within one
        # polling interval at the very end).
        while kill -0 "$pid" 2>/dev/null; do
            v=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null)
            [ -n "$v" ] && kb=$v
            sleep 0.2
        done
        wait "$pid"
        rc=$?
    fi
    echo "$rc ${kb:-0}" >"$dir/result"
    echo "  done: $name $feedback seed $seed (exit $rc)" >&2
    exit 0
fi

BUILD=${1:-build}
OUT=${BENCH_OUT:-/tmp/rlhf-bench}
export OUT OPENBLAS_NUM_THREADS=1
if [ ! -f jobs/cartpole.ini ] || [ ! -f jobs/pendulum.ini ]; then
    echo "learning.sh: run from the repository root (jobs/*.ini not found)" >&2
    exit 1
fi
if [ ! -x "$BUILD/bin/rlhf" ]; then
    echo "learning.sh: $BUILD/bin/rlhf not built (make BUILD=$BUILD)" >&2
    exit 1
fi
seeds="1 2 3 4 5"
if [ "${BENCH_UNSEEN:-0}" = 1 ]; then seeds="$seeds 101 102 103 104 105"; fi
mkdir -p "$OUT"
if [ -x /usr/bin/time ]; then how="/usr/bin/time -v"; else how="VmHWM polling"; fi
echo "learning runs: seeds $seeds; peak memory by $how; output in $OUT" >&2

# The longest runs first, so the two workers finish close together.
tasks="$OUT/tasks"
: >"$tasks"
for job in jobs/pendulum.ini jobs/cartpole.ini; do
    for feedback in teacher true-reward; do
        for seed in $seeds; do echo "$BUILD $job $feedback $seed" >>"$tasks"; done
    done
done
start=$(date +%s)
xargs -P 2 -L 1 sh "$0" --one <"$tasks"
echo "all runs: $(( $(date +%s) - start )) s wall" >&2

# Reads one number from a one-line JSON object: field FILE KEY.
field() { sed -n "s/.*\"$2\":\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p" "$1"; }

crashed=0
rm -f "$OUT/verdicts"
for spec in "cartpole CartPole-v1 475 500" "pendulum Pendulum-v1 -200 200"; do
    # shellcheck disable=SC2086 # split on purpose: four words
    set -- $spec
    name=$1 env=$2 target=$3 budget=$4
    echo
    echo "### $env: target true return >= $target with <= $budget labels"
    echo
    echo "| seed | feedback | labels | env steps | wall s | peak MiB | true return | pass |"
    echo "|-----:|----------|-------:|----------:|-------:|---------:|------------:|:----:|"
    for feedback in teacher true-reward; do
        passed=0 runs=0
        for seed in $seeds; do
            dir="$OUT/$name-$feedback-s$seed"
            runs=$((runs + 1))
            read -r rc kb <"$dir/result" 2>/dev/null || { rc=missing; kb=0; }
            sum="$dir/run/summary.json"
            if [ "$rc" != 0 ] || [ ! -s "$sum" ]; then
                echo "| $seed | $feedback | - | - | - | - | failed to run (exit $rc; see $dir/stderr) | FAIL |"
                crashed=1
                continue
            fi
            labels=$(field "$sum" labels)
            steps=$(field "$sum" env_steps)
            wall=$(field "$sum" wall_s)
            mean=$(field "$sum" true_return_mean)
            std=$(field "$sum" true_return_std)
            verdict=$(awk -v m="$mean" -v t="$target" -v l="$labels" -v b="$budget" -v f="$feedback" \
                'BEGIN { ok = m >= t && (f != "teacher" || l <= b); print ok ? "pass" : "FAIL" }')
            [ "$verdict" = pass ] && passed=$((passed + 1))
            awk -v s="$seed" -v f="$feedback" -v l="$labels" -v n="$steps" -v w="$wall" -v kb="$kb" \
                -v m="$mean" -v sd="$std" -v v="$verdict" \
                'BEGIN { printf "| %s | %s | %d | %d | %.1f | %.1f | %.1f ± %.1f | %s |\n", s, f, l, n, w, kb / 1024, m, sd, v }'
        done
        echo "$env $feedback: $passed/$runs pass" >>"$OUT/verdicts"
    done
done
echo
if [ -f "$OUT/verdicts" ]; then
    sed 's/^/    /' "$OUT/verdicts"
    rm -f "$OUT/verdicts"
fi
exit $crashed
