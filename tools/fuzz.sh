#!/usr/bin/env bash
# Fuzzes the controller-to-host path with libFuzzer (cargo fuzz): the H4 parser against a
# model of the framing, and the whole stack (transport, NimBLE's host, our callbacks) against
# a controller that sends garbage and may fall silent. NimBLE's C code is compiled with clang's
# coverage and AddressSanitizer too, so the fuzzer sees inside the host.
#
#   tools/fuzz.sh                 every target for FUZZ_SECONDS (default 30) each
#   FUZZ_SECONDS=600 tools/fuzz.sh controller
#
# Committed starting inputs are in fuzz/seeds/<target> (fuzz/seeds/make_seeds.py writes them).
# The corpus grows in .cache/fuzz/<target> across runs; a crash leaves its input in
# fuzz/artifacts/<target>/ and makes this exit non-zero.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_EACH="${FUZZ_SECONDS:-30}"
export PATH="$ROOT/.cache/cargo-fuzz/bin:$PATH"
# cargo fuzz needs a nightly compiler's flags (-Zsanitizer); this is the one stable toolchain.
export RUSTC_BOOTSTRAP=1
export CC=clang CFLAGS="-fsanitize=fuzzer-no-link,address"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(h4_parser controller)
cd "$ROOT/fuzz"
for t in "${targets[@]}"; do
    corpus="$ROOT/.cache/fuzz/$t"
    mkdir -p "$corpus"
    echo "fuzzing $t for $SECONDS_EACH s (corpus: $(ls "$corpus" | wc -l) inputs)"
    log="$corpus.log"
    rc=0
    seeds=()
    [ -d "$ROOT/fuzz/seeds/$t" ] && seeds=("$ROOT/fuzz/seeds/$t")
    cargo fuzz run "$t" "$corpus" "${seeds[@]}" -- -max_total_time="$SECONDS_EACH" -max_len=4096 -timeout=10 -rss_limit_mb=1024 \
        -print_final_stats=1 >"$log" 2>&1 || rc=$?
    grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added|==[0-9]+==|SUMMARY|thread .* panicked|Test unit written)' "$log" || true
    if [ $rc -ne 0 ]; then
        echo "fuzz target $t failed (exit $rc); the input is in fuzz/artifacts/$t/, the log in $log"
        tail -30 "$log"
        exit 1
    fi
done
