#!/bin/bash
# The static RAM one more link costs: compiles NimBLE's host as nimble-sys does (its sources,
# include folders and syscfg from nimble/build.rs), once with UBT_MAX_CONNECTIONS=N and once
# with N+1, and prints the .data + .bss of each and their difference.
#
#   tools/ram_per_link.sh [thumb|host] [N]     (defaults: thumb 4; host means gcc, e.g. 8)
#
# Only NimBLE's pools grow with the setting; the Rust crate has no table sized per link.
# SETTING=UBT_L2CAP_MAX_CHANNELS measures one more L2CAP channel the same way (the other
# setting keeps its default).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${1:-thumb}
TREE=${NIMBLE_DIR:-$ROOT/.cache/mynewt-nimble}
SETTING=${SETTING:-UBT_MAX_CONNECTIONS}
case $TARGET in
thumb)
    CC=arm-none-eabi-gcc SIZE=arm-none-eabi-size N=${2:-4}
    ARCH=(-mthumb -mcpu=cortex-m4 -mfloat-abi=hard -mfpu=fpv4-sp-d16 -Os) ;;
host)
    CC=gcc SIZE=size N=${2:-8}
    ARCH=(-O2) ;;
*) echo "usage: $0 [thumb|host] [N]" >&2; exit 2 ;;
esac
list() { sed -n "/^const $1/,/^];/p" "$ROOT/nimble/build.rs" | grep -o '"[^"]*"' | tr -d '"'; }
INCS=(-I"$ROOT/nimble/include")
for inc in $(list TREE_INCLUDES); do INCS+=(-I"$TREE/$inc"); done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

ram() {
    local out=$WORK/$1
    mkdir -p "$out"
    for src in $(list HOST_SOURCES); do
        "$CC" -std=gnu99 -ffunction-sections -fdata-sections -w -DNDEBUG \
            -D"$SETTING=$1" "${ARCH[@]}" "${INCS[@]}" \
            -c "$TREE/$src" -o "$out/$(echo "$src" | tr / _).o"
    done
    "$SIZE" -t "$out"/*.o | tail -1 | awk '{print $2 + $3}'
}

a=$(ram "$N")
b=$(ram $((N + 1)))
echo "$TARGET $SETTING: .data+.bss at $N $a bytes, at $((N + 1)) $b bytes: $((b - a)) per unit"
