#!/usr/bin/env bash
# The GATT and L2CAP multitests on a firmware built with AddressSanitizer, so that an invalid
# memory access (heap/stack/global overflow, use after free, double free) anywhere in the
# firmware, or a heap block of ours still unreachable when the process exits (LeakSanitizer),
# fails the run. The multitests drive the code that moves memory between Python, our Rust core,
# the C glue and NimBLE (attribute values, notifications, L2CAP SDUs, discovery results) over
# real HCI traffic, which the cargo tests and the fuzzer (tools/fuzz.sh) only see in part.
#
#   tools/asan.sh                   build (incremental) and run the multitests tagged `asan`
#                                   in tests/multitests.txt
#   tools/asan.sh ble_mtu ...       build and run only these multitests
#
# What is instrumented (`make unix-asan`, build/unix-asan/micropython): MicroPython, our glue
# (micropython_glue/) and the NimBLE host (compiled by nimble-sys through cc, which takes the
# CFLAGS set there) with gcc's -fsanitize=address; our Rust crate with rustc's
# -Zsanitizer=address (allowed on this stable toolchain by RUSTC_BOOTSTRAP=1), whose
# instrumentation calls into the same gcc libasan the firmware links. Rust's standard library
# is instrumented where LTO pulls it into the crate's one object; what stays uninstrumented is
# libc and the prebuilt parts of std, whose allocations ASan still tracks through malloc.
# The Rust archive lives in target/asan and the C objects in build/unix-asan, so the normal
# build's caches are untouched and a second run rebuilds nothing.
#
# run-multitests.py starts each instance with an environment of its own (only what the `-i`
# option names), so ASAN_OPTIONS/LSAN_OPTIONS reach the firmware through a wrapper script,
# build/unix-asan/micropython-asan. run-multitests.py merges an instance's stderr into its
# output and reads it to the end, so a report (ASan's at the bad access, LeakSanitizer's when
# the instance exits) lands in the output compared with the expected one and fails the test.
# No leak suppressions: on these tests MicroPython 1.25 itself exits without a LeakSanitizer
# report, so any leak is worth a look. (ASan sees heap blocks from malloc, which is where
# Rust's allocations go on Unix, plus stack and global redzones; it cannot see inside
# MicroPython's GC heap or NimBLE's os_mempool pools, which are one allocation each.)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV_PY="$ROOT/.cache/venv/bin/python"
FIRMWARE="$ROOT/build/unix-asan/micropython"
WRAPPER="$ROOT/build/unix-asan/micropython-asan"

t0=$SECONDS
mkdir -p "$ROOT/build"
make -C "$ROOT" --no-print-directory JOBS=2 unix-asan >"$ROOT/build/unix-asan.log" 2>&1 ||
    { tail -40 "$ROOT/build/unix-asan.log"; echo "ASan build failed; the log is build/unix-asan.log"; exit 1; }
echo "ASan firmware built in $((SECONDS - t0)) s: $FIRMWARE"

# halt_on_error (the default) stops at the first invalid access; the report goes to stderr and
# the exit status is 23 so it cannot pass for a Python error. detect_stack_use_after_return=0
# as in the build flags (fake frames would hide GC roots from MicroPython's stack scan).
ASAN_OPTS="detect_leaks=1:halt_on_error=1:exitcode=23:abort_on_error=0"
# The instances run without PATH, so the symbolizer (for function names and file:line in the
# stacks) is named by its full path.
ASAN_OPTS+=":detect_stack_use_after_return=0:symbolize=1"
SYMBOLIZER="$(command -v llvm-symbolizer || true)"
[ -z "$SYMBOLIZER" ] || ASAN_OPTS+=":external_symbolizer_path=$SYMBOLIZER"
LSAN_OPTS="exitcode=23"
cat >"$WRAPPER" <<EOF
#!/bin/sh
# Written by tools/asan.sh: the ASan firmware with the sanitizer options it runs under.
ASAN_OPTIONS='$ASAN_OPTS'
LSAN_OPTIONS='$LSAN_OPTS'
export ASAN_OPTIONS LSAN_OPTIONS
exec "$FIRMWARE" "\$@"
EOF
chmod 755 "$WRAPPER"

tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
    tests=(--tag asan)
fi
exec "$VENV_PY" tests/multitest.py --firmware "$WRAPPER" -j 2 "${tests[@]}"
