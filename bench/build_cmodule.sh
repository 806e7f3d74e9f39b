#!/usr/bin/env bash
# Builds the benchmark's comparator: MicroPython's Unix port with MicroPython's own C `bluetooth`
# module on NimBLE (extmod/modbluetooth.c + extmod/nimble), from the same MicroPython source and
# the same NimBLE tree that our build (the top-level Makefile) uses.
#
#   bench/build_cmodule.sh        -> build/bench/cmodule/micropython
#
# MICROPY_DIR / NIMBLE_DIR select the MicroPython / NimBLE trees, as for the top-level Makefile.
# JOBS (default 2, at most 2) sets make's parallelism.
#
# MicroPython's NimBLE makefile compiles NimBLE from lib/mynewt-nimble inside the MicroPython
# tree, which the Debian source ships empty. Rather than touch MICROPY_DIR, the port is built
# from a symlink farm under build/bench/cmodule/tree: every entry links back to MICROPY_DIR,
# except that lib/ and ports/unix/ are real directories (the port's makefiles find the tree
# through ../.., so the port directory itself must live in the farm) and lib/mynewt-nimble
# links to NIMBLE_DIR.
#
# Idempotent: when the firmware is newer than every input (the two trees, the frozen manifest,
# this script) nothing runs; otherwise make rebuilds what changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MICROPY_DIR="$(realpath "${MICROPY_DIR:-$ROOT/.cache/micropython-1.25.0}")"
NIMBLE_DIR="$(realpath "${NIMBLE_DIR:-$ROOT/.cache/mynewt-nimble}")"
JOBS="${JOBS:-2}"
if [ "$JOBS" -gt 2 ]; then JOBS=2; fi

OUT="$ROOT/build/bench/cmodule"
TREE="$OUT/tree"
OBJ="$OUT/obj"
FIRMWARE="$OUT/micropython"
STAMP="$OUT/sources"
MPY_CROSS="$ROOT/build/mpy-cross/mpy-cross"
# The same frozen content as our firmware (asyncio from extmod), so that the two differ only in
# their bluetooth module.
MANIFEST="$ROOT/ports/unix/variants/ubluetooth/manifest.py"

say() { printf '[bench/cmodule] %s\n' "$*" >&2; }

[ -f "$MICROPY_DIR/py/mpconfig.h" ] || { say "no MicroPython tree at $MICROPY_DIR (run tools/deps.sh)"; exit 1; }
[ -f "$NIMBLE_DIR/nimble/host/src/ble_hs.c" ] || { say "no NimBLE tree at $NIMBLE_DIR (run tools/deps.sh)"; exit 1; }

# ---------------------------------------------------------------- up to date?
inputs_newer_than() {
    # Prints the first input newer than $1, if any.
    local ref="$1"
    [ "${BASH_SOURCE[0]}" -nt "$ref" ] && { echo "${BASH_SOURCE[0]}"; return; }
    [ "$MANIFEST" -nt "$ref" ] && { echo "$MANIFEST"; return; }
    [ "$MPY_CROSS" -nt "$ref" ] && { echo "$MPY_CROSS"; return; }
    find "$MICROPY_DIR/py" "$MICROPY_DIR/extmod" "$MICROPY_DIR/shared" "$MICROPY_DIR/lib" \
        "$MICROPY_DIR/ports/unix" "$NIMBLE_DIR" -newer "$ref" -type f -print -quit 2>/dev/null || true
}

want_sources="micropython=$MICROPY_DIR nimble=$NIMBLE_DIR"
if [ -x "$FIRMWARE" ] && [ -x "$MPY_CROSS" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_sources" ]; then
    changed="$(inputs_newer_than "$FIRMWARE")"
    if [ -z "$changed" ]; then
        say "up to date: $FIRMWARE"
        exit 0
    fi
    say "$changed is newer than the firmware"
fi

# ---------------------------------------------------------------- mpy-cross
# Shared with our build (same command as the top-level Makefile), so built only when missing.
if [ ! -x "$MPY_CROSS" ]; then
    say "building mpy-cross"
    make -C "$MICROPY_DIR/mpy-cross" -j"$JOBS" BUILD="$ROOT/build/mpy-cross"
fi

# The frozen-module rule wants a micropython-lib checkout even when the manifest uses none of
# it; the Debian source ships that submodule empty (same stand-in as the top-level Makefile).
mpy_lib_flags=()
if [ ! -f "$MICROPY_DIR/lib/micropython-lib/README.md" ]; then
    no_mpy_lib="$ROOT/build/no-micropython-lib"
    mkdir -p "$no_mpy_lib"
    [ -f "$no_mpy_lib/README.md" ] || echo "micropython-lib is not used by this build" >"$no_mpy_lib/README.md"
    mpy_lib_flags=(MPY_LIB_DIR="$no_mpy_lib")
fi

# ---------------------------------------------------------------- symlink farm
link_entries() {
    # link_entries SRC DST [SKIP ...]: DST/x -> SRC/x for every entry x of SRC not in SKIP.
    local src="$1" dst="$2"
    shift 2
    mkdir -p "$dst"
    local entry name skip
    for entry in "$src"/* "$src"/.[!.]*; do
        [ -e "$entry" ] || continue
        name="${entry##*/}"
        for skip in "$@"; do
            [ "$name" = "$skip" ] && continue 2
        done
        ln -sfn "$entry" "$dst/$name"
    done
}

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want_sources" ]; then
    # Other trees (or none yet): start over, objects included, so nothing stale survives.
    say "preparing $TREE"
    rm -rf "$TREE" "$OBJ" "$FIRMWARE" "$STAMP"
    link_entries "$MICROPY_DIR" "$TREE" lib ports
    link_entries "$MICROPY_DIR/lib" "$TREE/lib" mynewt-nimble
    ln -sfn "$NIMBLE_DIR" "$TREE/lib/mynewt-nimble"
    link_entries "$MICROPY_DIR/ports" "$TREE/ports" unix
    link_entries "$MICROPY_DIR/ports/unix" "$TREE/ports/unix"
    echo "$want_sources" >"$STAMP"
fi

# ---------------------------------------------------------------- the port
say "building the Unix port with MicroPython's bluetooth module on NimBLE (-j$JOBS)"
start=$SECONDS
make -C "$TREE/ports/unix" -j"$JOBS" \
    BUILD="$OBJ" \
    VARIANT=standard \
    FROZEN_MANIFEST="$MANIFEST" \
    MICROPY_MPYCROSS="$MPY_CROSS" \
    MICROPY_PY_BTREE=0 MICROPY_PY_SSL=0 MICROPY_SSL_MBEDTLS=0 \
    MICROPY_PY_BLUETOOTH=1 MICROPY_BLUETOOTH_NIMBLE=1 \
    "${mpy_lib_flags[@]}"
cp -p "$OBJ/micropython" "$FIRMWARE.tmp"
mv "$FIRMWARE.tmp" "$FIRMWARE"
touch "$FIRMWARE"
say "built $FIRMWARE in $((SECONDS - start)) s"
