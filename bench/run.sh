#!/bin/sh
# run.sh BUILD - every benchmark, one after another (the machine is shared
# and noisy: each prints its figure beside the limit it is measured against
# in the same run). Results are recorded in bench/RESULTS.md by hand, with
# the command that produced them.
set -eu
BUILD=${1:-build}
export OPENBLAS_NUM_THREADS=1
# bench_http starts a real `rlhf run --feedback human` from $BUILD/bin and
# keeps its run directory (and SQLite's) under TMPDIR: the disk measured.
for b in "$BUILD"/bench/bench_*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    "$b"
    echo
done
echo "== learning runs (bench/learning.sh)"
bench/learning.sh "$BUILD"
