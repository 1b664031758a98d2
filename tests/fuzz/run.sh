#!/bin/sh
# run.sh - coverage-guided fuzzing of the wire decoder (`make fuzz`).
#
# Builds tests/fuzz/fuzz_wire.c with clang and libFuzzer (plus ASan and
# UBSan), compiling the generated rlhf.pb-c.c, core/wire.c and core/util.c
# directly (libprotobuf-c comes from pkg-config), has the target write its
# seed corpus (one valid message per body type), and fuzzes for a bounded
# time. Everything goes under $BUILD/fuzz (BUILD defaults to build):
#   corpus/   inputs libFuzzer found interesting; kept between runs
#   seeds/    rewritten every run from the current schema
#   crash-*   a failing input, if any (replay: $BUILD/fuzz/fuzz_wire FILE)
#   fuzz.log  libFuzzer's output
# tests/fuzz/corpus/, if present, is read as extra seeds (e.g. regressions).
#
# Environment: FUZZ_SECONDS (default 60), BUILD, CLANG (default clang).
# Exit status: 0 when the time ran out without a failure, else libFuzzer's.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
CLANG=${CLANG:-clang}
OUT="$BUILD/fuzz"

command -v "$CLANG" >/dev/null || { echo "run.sh: $CLANG not found (Debian: apt-get install clang)" >&2; exit 1; }
command -v protoc-c >/dev/null || { echo "run.sh: protoc-c not found (Debian: protobuf-c-compiler)" >&2; exit 1; }
pkg-config --exists libprotobuf-c || { echo "run.sh: libprotobuf-c not found (Debian: libprotobuf-c-dev)" >&2; exit 1; }
# libFuzzer's runtime ships apart from the compiler on Debian.
rt=$("$CLANG" -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null || true)
if [ ! -f "$rt" ] && [ -z "$(find "$("$CLANG" -print-resource-dir)" -name 'libclang_rt.fuzzer*.a' 2>/dev/null | head -n 1)" ]; then
    echo "run.sh: libFuzzer's runtime is missing (Debian: apt-get install libclang-rt-$("$CLANG" -dumpversion | cut -d. -f1)-dev)" >&2
    exit 1
fi

mkdir -p "$OUT/gen" "$OUT/corpus"
rm -rf "$OUT/seeds"
mkdir -p "$OUT/seeds"
protoc-c --proto_path=proto --c_out="$OUT/gen" proto/rlhf.proto
# -O1 and frame pointers: readable stacks at a small cost in speed.
# -fno-sanitize-recover: undefined behaviour is a failure, not a log line.
"$CLANG" -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE -g -O1 \
    -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Iinclude -I"$OUT/gen" $(pkg-config --cflags libprotobuf-c) \
    tests/fuzz/fuzz_wire.c core/wire.c core/util.c "$OUT/gen/rlhf.pb-c.c" \
    -o "$OUT/fuzz_wire" $(pkg-config --libs libprotobuf-c) -lm

FUZZ_WRITE_SEEDS="$OUT/seeds" "$OUT/fuzz_wire"
extra=""
[ -d tests/fuzz/corpus ] && extra="tests/fuzz/corpus"

echo "run.sh: fuzzing for ${FUZZ_SECONDS}s (log: $OUT/fuzz.log)"
set +e
# The first folder receives new inputs; the others are only read.
"$OUT/fuzz_wire" -max_total_time="$FUZZ_SECONDS" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$OUT/" "$OUT/corpus" "$OUT/seeds" $extra >"$OUT/fuzz.log" 2>&1
rc=$?
set -e
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/fuzz.log" | tail -n 1)
eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$OUT/fuzz.log" | tail -n 1)
cov=$(grep -o 'cov: [0-9]*' "$OUT/fuzz.log" | tail -n 1)
corpus=$(grep -o 'corp: [0-9]*' "$OUT/fuzz.log" | tail -n 1 | cut -d' ' -f2)
if [ "$rc" -ne 0 ]; then
    echo "run.sh: FAILED (exit $rc) after ${runs:-?} runs; the end of $OUT/fuzz.log:" >&2
    tail -n 40 "$OUT/fuzz.log" >&2
    ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-* 2>/dev/null >&2 || true
    exit "$rc"
fi
echo "run.sh: ok: ${runs:-?} runs in ${FUZZ_SECONDS}s, ${eps:-?} exec/s, ${cov:-cov: ?} edges, corpus ${corpus:-?} inputs"
