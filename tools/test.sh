#!/usr/bin/env bash
# Every test, in the order a failure is cheapest to find. Run through `make test`, which first
# fetches dependencies and builds the Unix firmware. Every step runs even if an earlier one
# failed; the summary at the end lists them and the exit status is non-zero if any failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV_PY="$ROOT/.cache/venv/bin/python"
THUMB=thumbv7em-none-eabihf

results=()
failed=0
step() {
    local name="$1"
    shift
    printf '\n=== %s\n' "$name"
    local t0=$SECONDS
    if "$@"; then
        results+=("pass  $name ($((SECONDS - t0)) s)")
    else
        results+=("FAIL  $name ($((SECONDS - t0)) s)")
        failed=1
    fi
}

header_is_current() {
    # build.rs regenerates the header; a stale committed copy means src/ffi/ changed without it.
    git -C "$ROOT" diff --quiet -- micropython_glue/ubluetooth.h 2>/dev/null ||
        { echo "micropython_glue/ubluetooth.h differs from the committed one:"; git -C "$ROOT" diff --stat -- micropython_glue/ubluetooth.h; return 1; }
}

fmt_check() {
    cargo fmt --all -- --check && cargo fmt --manifest-path fuzz/Cargo.toml -- --check
}

step "cargo fmt --check" fmt_check
step "src/ layers: no cycle, every dependency points down" python3 tools/check_layers.py
step "cargo clippy (x86_64, all targets)" cargo clippy --workspace --all-targets -- -D warnings
step "cargo clippy ($THUMB, no_std)" cargo clippy --no-default-features --features full --target "$THUMB" -- -D warnings
step "cargo test (units, syscfg)" cargo test --workspace
step "cargo test nimble-sys pools under UBSan" cargo test -p nimble-sys --features sanitize --test pools
step "cargo build --release ($THUMB)" cargo rustc --release --lib --crate-type staticlib --no-default-features --features full --target "$THUMB"
step "feature profiles: each builds for $THUMB, warning-free, with its size (bench/size.py --profiles-only)" \
    "$VENV_PY" bench/size.py --profiles-only --json "$ROOT/build/size-profiles.json"
step "generated header is committed" header_is_current

qemu_firmware() {
    # MicroPython's qemu port with our MPS2-AN386 board, then the firmware driven in qemu-system-arm.
    make -C "$ROOT" --no-print-directory qemu >"$ROOT/build/qemu.log" 2>&1 ||
        { tail -30 "$ROOT/build/qemu.log"; echo "make qemu failed; the log is build/qemu.log"; return 1; }
    tail -3 "$ROOT/build/qemu.log" | grep -E 'firmware.elf' || true
    # The panic test's own firmware (a panic hook, never in the one above).
    make -C "$ROOT" --no-print-directory qemu-panic-test >"$ROOT/build/qemu-panic-test.log" 2>&1 ||
        { tail -30 "$ROOT/build/qemu-panic-test.log"; echo "make qemu-panic-test failed; the log is build/qemu-panic-test.log"; return 1; }
    "$VENV_PY" -m pytest -q tests/qemu || return 1
    # The multitests tagged `qemu` in tests/multitests.txt with one instance on the emulated
    # Cortex-M4F, in either role. One at a time: qemu's guest busy-waits on its console and
    # takes a core.
    "$VENV_PY" tests/multitest.py -j 1 --qemu-instance 0 --tag qemu &&
        "$VENV_PY" tests/multitest.py -j 1 --qemu-instance 1 --tag qemu || return 1
    # The same on RootCanal, the board's second serial a TCP connection to its HCI port.
    "$VENV_PY" tests/multitest.py -j 1 --controller rootcanal --qemu-instance 0 --tag qemu &&
        "$VENV_PY" tests/multitest.py -j 1 --controller rootcanal --qemu-instance 1 --tag qemu
}
step "Cortex-M4F firmware under qemu (make qemu, tests/qemu; multitests on vlink and RootCanal)" qemu_firmware
step "fuzz: H4 framing and the controller-to-host path (${FUZZ_SECONDS:-30} s each)" bash tools/fuzz.sh
step "virtual controller and RootCanal harness (pytest)" "$VENV_PY" -m pytest -q tests/harness
step "bench helpers: retried rounds, failures per side (pytest)" "$VENV_PY" -m pytest -q tests/bench
step "peers: our firmware against Bumble host devices (GATT server and L2CAP listener on RootCanal too)" "$VENV_PY" -m pytest -q tests/peer
step "firmware tests" "$VENV_PY" tests/firmware/run.py
step "editor stubs: match the module, type-check the examples" "$VENV_PY" -m pytest -q tests/stubs
step "docs: every name documented, links and paths resolve" "$VENV_PY" -m pytest -q tests/docs
step "examples" "$VENV_PY" -m pytest -q tests/examples
feature_firmwares() {
    # Two Unix firmwares with only some parts of the module, then what a script sees on them.
    local features
    for features in "peripheral" "central gatt-client"; do
        make -C "$ROOT" --no-print-directory unix-features UBT_FEATURES="$features" \
            >"$ROOT/build/unix-features.log" 2>&1 ||
            { tail -30 "$ROOT/build/unix-features.log"; echo "make unix-features UBT_FEATURES=\"$features\" failed"; return 1; }
    done
    "$VENV_PY" -m pytest -q tests/features
}
step "feature profiles on Unix: a peripheral-only and a central-only firmware (tests/features)" feature_firmwares
step "MicroPython multitests" "$VENV_PY" tests/multitest.py
controller_matrix() {
    # The multitests tagged `matrix` on every controller profile (docs/testing.md, "The
    # controller matrix").
    "$VENV_PY" tests/multitest.py -j 2 --tag matrix --controller-profile all
}
step "controller matrix: core multitests on every controller profile" controller_matrix
step "MicroPython multitests on RootCanal (HCI traces of failures in build/rootcanal-traces)" \
    "$VENV_PY" tests/multitest.py --controller rootcanal
step "GATT/L2CAP multitests with gc.collect() in every handler and a 48 KiB heap" \
    "$VENV_PY" tests/multitest.py --gc-stress 48k --tag gc-stress
step "GATT/L2CAP multitests on an AddressSanitizer build (invalid accesses, leaks)" bash tools/asan.sh

printf '\n=== summary\n'
printf '%s\n' "${results[@]}"
exit $failed
