#!/bin/sh
# christiano.sh BUILD - Christiano et al. (2017)'s MuJoCo table on this
# machine: per task, PPO on the true reward (the yardstick) and PPO on a
# reward model fitted to a scripted teacher's preferences with 350, 700 and
# 1,400 labels, on 3 seeds, two runs at a time (two cores, one thread each).
# The yardstick is the job as it is with --feedback true-reward: the MuJoCo
# jobs set ppo.norm_reward, so it trains on the reward scaled by the running
# std of the discounted return (as SB3's VecNormalize), which is what makes
# PPO reasonable on these tasks at these step counts.
#
# Writes into $OUT (default /tmp/rlhf-christiano):
#   table.md          per task and setting: the final evaluation's true return
#                     (mean and std over seeds of each run's mean, and each
#                     seed's), the ratio
#                     to true-reward PPO, env steps, wall seconds (mean per run
#                     and total), and the total wall time of the table;
#   <task>.svg        per task: the training return (episodes finished in
#                     each iteration, averaged over seeds) against env steps,
#                     one line per setting;
#   <task>-<setting>-s<seed>/  each run's directory, stdout and stderr.
#
# Knobs (environment variables):
#   TASKS   default "hopper halfcheetah walker2d swimmer reacher" (job names in jobs/)
#   SEEDS   default "1 2 3"
#   LABELS  default "350 700 1400"
#   STEPS   env steps per run; default: each job's run.total_steps
#   OUT     output directory
#   JOBS    parallel runs, default 2
# `christiano.sh BUILD --report` rewrites table.md and the plots from the
# runs already in $OUT (a partial table is marked as such: missing runs are
# listed, never silently averaged away).
# Run from the repository root. Exit status: 0 when every run finished, 1 if
# one failed to run.
set -u

OUT=${OUT:-/tmp/rlhf-christiano}
TASKS=${TASKS:-hopper halfcheetah walker2d swimmer reacher}
SEEDS=${SEEDS:-1 2 3}
LABELS=${LABELS:-350 700 1400}
STEPS=${STEPS:-}
JOBS=${JOBS:-2}
export OUT STEPS OPENBLAS_NUM_THREADS=1

# ---- one run (the parallel workers call the script back with --one)
if [ "${1:-}" = "--one" ]; then
    BUILD=$2 task=$3 setting=$4 seed=$5
    dir="$OUT/$task-$setting-s$seed"
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$setting" = true ]; then
        set -- --feedback true-reward
    else
        set -- --feedback teacher --set "feedback.labels=$setting"
    fi
    [ -n "$STEPS" ] && set -- "$@" --set "run.total_steps=$STEPS"
    "$BUILD/bin/rlhf" train "jobs/$task.ini" "$@" --seed "$seed" --out "$dir/run" >"$dir/stdout" 2>"$dir/stderr"
    rc=$?
    echo "$rc" >"$dir/result"
    echo "  done: $task $setting seed $seed (exit $rc)" >&2
    exit 0
fi

BUILD=${1:-build}
report_only=0
[ "${2:-}" = "--report" ] && report_only=1
for task in $TASKS; do
    if [ ! -f "jobs/$task.ini" ]; then
        echo "christiano.sh: jobs/$task.ini not found (run from the repository root; TASKS names jobs)" >&2
        exit 1
    fi
done
if [ "$report_only" = 0 ] && [ ! -x "$BUILD/bin/rlhf" ]; then
    echo "christiano.sh: $BUILD/bin/rlhf not built (make BUILD=$BUILD)" >&2
    exit 1
fi
mkdir -p "$OUT"

if [ "$report_only" = 0 ]; then
    tasks="$OUT/tasks"
    : >"$tasks"
    # Seed by seed, so a table cut short still has every task and setting
    # on its first seeds.
    for seed in $SEEDS; do
        for task in $TASKS; do
            for setting in true $LABELS; do echo "$BUILD $task $setting $seed" >>"$tasks"; done
        done
    done
    start=$(date +%s)
    xargs -P "$JOBS" -L 1 sh "$0" --one <"$tasks"
    echo "$(( $(date +%s) - start ))" >"$OUT/wall_s"
    echo "$JOBS" >"$OUT/jobs"
    echo "all runs: $(cat "$OUT/wall_s") s wall" >&2
fi

# Mean episode return of uniformly random actions (200,000 steps per task,
# measured with the same environments): the zero of the normalised score.
random_return() {
    case $1 in
        hopper) echo 18.6 ;; halfcheetah) echo -280.1 ;; walker2d) echo 2.8 ;; swimmer) echo 1.2 ;;
        reacher) echo -42.8 ;; invertedpendulum) echo 6.1 ;; inverteddoublependulum) echo 57.5 ;; *) echo 0 ;;
    esac
}

# Reads one number from a one-line JSON object: field FILE KEY.
field() { sed -n "s/.*\"$2\":\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p" "$1"; }

# Writes <task>.svg from the runs' metrics.jsonl: mean over seeds of the
# training return per iteration (iterations whose every seed finished no
# episode are left out), one polyline per setting.
plot() {
    task=$1
    : >"$OUT/$task.points"
    for setting in true $LABELS; do
        for seed in $SEEDS; do
            m="$OUT/$task-$setting-s$seed/run/metrics.jsonl"
            [ -s "$m" ] || continue
            sed -n 's/.*"env_steps":\([0-9]*\).*"true_return":\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1 \2/p' "$m" |
                awk -v s="$setting" '{ print s, $1, $2 }' >>"$OUT/$task.points"
        done
    done
    awk -v title="$task: true return while training (mean over seeds)" '
        { k = $1 SUBSEP $2; sum[k] += $3; cnt[k]++
          if (!($1 in seen)) { seen[$1] = 1; order[++ns] = $1 }
          if (!(($1, $2) in have)) { have[$1, $2] = 1; xs[$1] = xs[$1] " " $2 }
          if (n == 0 || $2 > xmax) xmax = $2
          n++ }
        END {
            if (n == 0) { print "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"60\"><text x=\"10\" y=\"30\">no data</text></svg>"; exit }
            ymin = 1e300; ymax = -1e300
            for (k in sum) { v = sum[k] / cnt[k]; if (v < ymin) ymin = v; if (v > ymax) ymax = v }
            if (ymax == ymin) { ymax += 1; ymin -= 1 }
            W = 720; H = 440; L = 70; R = 150; T = 40; B = 50
            pw = W - L - R; ph = H - T - B
            printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H
            printf "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", W, H
            printf "<text x=\"%d\" y=\"22\" font-size=\"14\">%s</text>\n", L, title
            # axes and ticks (5 each)
            printf "<path d=\"M%d %d V%d H%d\" stroke=\"#333\" fill=\"none\"/>\n", L, T, T + ph, L + pw
            for (i = 0; i <= 5; i++) {
                yv = ymin + (ymax - ymin) * i / 5; yp = T + ph - ph * i / 5
                printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", L, yp, L + pw, yp
                printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n", L - 6, yp + 4, yv
                xv = xmax * i / 5; xp = L + pw * i / 5
                printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.0fk</text>\n", xp, T + ph + 18, xv / 1000
            }
            printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">env steps</text>\n", L + pw / 2, H - 8
            printf "<text x=\"16\" y=\"%d\" transform=\"rotate(-90 16 %d)\" text-anchor=\"middle\">true return</text>\n", T + ph / 2, T + ph / 2
            split("#222222 #1f77b4 #ff7f0e #2ca02c #d62728 #9467bd", pal, " ")
            for (j = 1; j <= ns; j++) {
                s = order[j]; m = split(xs[s], xx, " ")
                # sort the x values (insertion sort; a few hundred points)
                for (a = 2; a <= m; a++) { v = xx[a] + 0; b = a - 1; while (b >= 1 && xx[b] + 0 > v) { xx[b + 1] = xx[b]; b-- } xx[b + 1] = v }
                d = ""
                for (a = 1; a <= m; a++) {
                    k = s SUBSEP xx[a]; v = sum[k] / cnt[k]
                    d = d sprintf("%s%.1f %.1f", a == 1 ? "M" : " L", L + pw * xx[a] / xmax, T + ph - ph * (v - ymin) / (ymax - ymin))
                }
                name = s == "true" ? "true reward" : s " labels"
                printf "<path d=\"%s\" stroke=\"%s\" fill=\"none\" stroke-width=\"1.8\"/>\n", d, pal[j]
                printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"/><text x=\"%d\" y=\"%d\">%s</text>\n", L + pw + 12, T + 10 + 20 * j, L + pw + 32, T + 10 + 20 * j, pal[j], L + pw + 38, T + 14 + 20 * j, name
            }
            print "</svg>"
        }' "$OUT/$task.points" >"$OUT/$task.svg"
    rm -f "$OUT/$task.points"
}

crashed=0
{
    echo "Christiano et al. (2017) table: PPO on the true reward vs PPO on a reward model fitted to"
    echo "scripted-teacher preferences (oracle teacher, pair queries). Seeds: $SEEDS."
    echo "True return: the final deterministic evaluation of each run (mean over its eval episodes);"
    echo "the table gives mean ± std over seeds. \"vs true\" = teacher mean / true-reward mean (when the"
    echo "latter is positive); \"normalised\" = (mean - random) / (true-reward mean - random), with random the"
    echo "mean return of uniformly random actions (0% = random, 100% = true-reward PPO). \">= 80%\" says whether the"
    echo "setting reaches 80% of true-reward PPO (raw ratio; normalised for Reacher's negative returns)."
    echo "True-reward runs scale the reward by the running std of the discounted return (ppo.norm_reward,"
    echo "set in every MuJoCo job; the teacher runs' learned reward has its own normalisation, which"
    echo "jobs/swimmer.ini follows with the same return scaling: ppo.norm_learned_reward)."
    echo
    total=0
    for task in $TASKS; do
        plot "$task"
        env=$(sed -n 's/^id *= *//p' "jobs/$task.ini" | head -n 1)
        echo "### $env (jobs/$task.ini; plot: $task.svg)"
        echo
        echo "| feedback | labels | seeds done | true return | per seed | vs true | normalised | >= 80% | env steps | wall s per run | wall s total |"
        echo "|----------|-------:|-----------:|------------:|---------|--------:|-----------:|:------:|----------:|---------------:|-------------:|"
        rnd=$(random_return "$task")
        true_mean=""
        for setting in true $LABELS; do
            vals="" steps="" wall=0 done_n=0 missing=""
            for seed in $SEEDS; do
                dir="$OUT/$task-$setting-s$seed"
                sum="$dir/run/summary.json"
                rc=$(cat "$dir/result" 2>/dev/null || echo missing)
                if [ "$rc" != 0 ] || [ ! -s "$sum" ]; then
                    missing="$missing $seed"
                    [ "$rc" != missing ] && crashed=1
                    continue
                fi
                vals="$vals $(field "$sum" true_return_mean)"
                steps=$(field "$sum" env_steps)
                wall=$(awk -v a="$wall" -v b="$(field "$sum" wall_s)" 'BEGIN { print a + b }')
                done_n=$((done_n + 1))
            done
            total=$(awk -v a="$total" -v b="$wall" 'BEGIN { print a + b }')
            if [ "$setting" = true ]; then fb="true reward"; lab=0; else fb="teacher"; lab=$setting; fi
            if [ "$done_n" = 0 ]; then
                echo "| $fb | $lab | 0 | not run | - | - | - | - | - | - | - |"
                continue
            fi
            line=$(echo "$vals" | awk -v fb="$fb" -v lab="$lab" -v n="$done_n" -v steps="$steps" -v wall="$wall" \
                -v tm="$true_mean" -v miss="$missing" -v rnd="$rnd" '{
                    s = 0; for (i = 1; i <= NF; i++) s += $i; m = s / NF
                    v = 0; for (i = 1; i <= NF; i++) v += ($i - m) ^ 2; sd = NF > 1 ? sqrt(v / (NF - 1)) : 0
                    ratio = "-"; norm = "-"; verdict = "-"
                    if (tm != "") {
                        if (tm + 0 > 0) { r = m / tm; ratio = sprintf("%.0f%%", 100 * r) }
                        if (tm - rnd != 0) { q = (m - rnd) / (tm - rnd); norm = sprintf("%.0f%%", 100 * q) }
                        if (fb == "teacher") verdict = ((tm + 0 > 0 ? r : q) >= 0.8) ? "yes" : "no"
                    }
                    note = miss != "" ? " (missing seeds:" miss ")" : ""
                    per = ""; for (i = 1; i <= NF; i++) per = per (i > 1 ? ", " : "") sprintf($i > -100 && $i < 100 ? "%.1f" : "%.0f", $i)
                    printf "%.1f@@| %s | %s | %d%s | %.1f ± %.1f | %s | %s | %s | %s | %d | %.0f | %.0f |\n", m, fb, lab, n, note, m, sd, per, ratio, norm, verdict, steps, wall / n, wall }')
            [ "$setting" = true ] && true_mean=${line%%@@*}
            echo "${line#*@@}"
        done
        echo
    done
    if [ -f "$OUT/wall_s" ]; then
        echo "Total wall time of the table: $(cat "$OUT/wall_s") s with $(cat "$OUT/jobs" 2>/dev/null || echo "$JOBS") runs at a time (sum of run times: $(printf '%.0f' "$total") s)."
    else
        echo "Sum of run wall times: $(printf '%.0f' "$total") s."
    fi
} >"$OUT/table.md"
cat "$OUT/table.md"
exit $crashed
