#!/bin/sh
# Builds the fuzzers with clang (libFuzzer + ASan + UBSan) and runs each for SECONDS (default 300): the
# policy parser, the shell analyser, the analyser against bash (differential, needs root), the daemon's
# config file, the API's request bodies, the files API's paths and Range headers.
# Usage: bench/fuzz.sh [SECONDS]    Environment: BUILD (default build-fuzz), JOBS (default 1).
# Exit status 1 if any fuzzer found a crash; crash inputs are left in $BUILD/fuzz-out/TARGET/.
set -eu
SECONDS_EACH=${1:-300}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$SRC/build-fuzz}
JOBS=${JOBS:-1}

if [ ! -d "$BUILD" ]; then
        CC=clang meson setup "$BUILD" "$SRC" >/dev/null
fi
TARGETS="fuzz-policy-parse:seeds-policy fuzz-shell-parse:seeds-shell fuzz-bash-oracle:seeds-bash-oracle
         fuzz-config-parse:seeds-config
         fuzz-api-request:seeds-api-request fuzz-event-filter:seeds-event-filter
         fuzz-files-path:seeds-files-path fuzz-http-range:seeds-http-range"
for pair in $TARGETS; do
        ninja -C "$BUILD" "tests/fuzz/${pair%%:*}" | grep -v "^\[" || true
        test -x "$BUILD/tests/fuzz/${pair%%:*}"
done

status=0
for pair in $TARGETS; do
        target=${pair%%:*}
        seeds=${pair#*:}
        out="$BUILD/fuzz-out/$target"
        corpus="$BUILD/fuzz-corpus/$target"
        mkdir -p "$out" "$corpus"
        cp -n "$SRC/tests/fuzz/$seeds"/* "$corpus"/ 2>/dev/null || true
        log="$out/fuzz.log"
        echo "== $target: ${SECONDS_EACH}s"
        parallel=""
        if [ "$JOBS" -gt 1 ]; then
                parallel="-jobs=$JOBS -workers=$JOBS"
        fi
        # run inside $out: with -jobs libFuzzer writes fuzz-N.log into the working directory
        # shellcheck disable=SC2086
        if (cd "$out" && "$BUILD/tests/fuzz/$target" -max_total_time="$SECONDS_EACH" -max_len=65536 \
                -timeout=10 -rss_limit_mb=2048 $parallel -artifact_prefix="$out/" -print_final_stats=1 \
                "$corpus" >"$log" 2>&1); then
                echo "   no crash: $(grep -E '^stat::number_of_executed_units' "$log" | tail -1 | awk '{print $2}') runs," \
                     "corpus $(ls "$corpus" | wc -l) inputs, $(grep -oE 'cov: [0-9]+' "$log" | tail -1)"
        else
                echo "   CRASH: see $log and $out/"
                grep -E 'ERROR|SUMMARY|crash-|leak-|timeout-' "$log" | head -5 | sed 's/^/   /'
                status=1
        fi
done
exit $status
