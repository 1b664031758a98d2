#!/bin/sh
# run.sh BUILD - runs every test program in BUILD/tests (cmocka unit tests and
# the integration tests that drive real processes), then prints one closing
# line "N passed, N failed" counting test cases over all of them.
# Exit status: 0 only when every case passed and every program exited 0.
set -u
BUILD=${1:-build}
export OPENBLAS_NUM_THREADS=1
export RLHF_BUILD="$BUILD"
export RLHF_TEST_TMP="${TMPDIR:-/tmp}/rlhf-test.$$"
mkdir -p "$RLHF_TEST_TMP"
passed=0; failed=0; bad_programs=""
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    log="$RLHF_TEST_TMP/$name.log"
    start=$(date +%s)
    "$t" >"$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -eq 0 ]; then
        echo "ok   $name ($p cases, ${secs}s)"
    else
        echo "FAIL $name (exit $rc, $f failed, ${secs}s); its output:"
        sed 's/^/    /' "$log" | tail -n 60
        bad_programs="$bad_programs $name"
    fi
done
if [ -n "$bad_programs" ]; then echo "failing:$bad_programs"; fi
rm -rf "$RLHF_TEST_TMP"
echo "$passed passed, $failed failed"
[ -z "$bad_programs" ] && [ "$failed" -eq 0 ]
