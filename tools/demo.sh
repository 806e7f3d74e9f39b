#!/usr/bin/env bash
# The demo: two firmware instances on two virtual controllers sharing one radio link. One
# advertises, the other scans and prints what it found. Run through `make demo`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FW="$ROOT/build/unix/micropython"
DIR="$(mktemp -d)"
"$ROOT/.cache/venv/bin/python" "$ROOT/tests/harness/vlink.py" --count 2 --dir "$DIR" </dev/null >"$DIR/vlink.out" 2>"$DIR/vlink.err" &
VLINK=$!
cleanup() { kill "$VLINK" 2>/dev/null || true; wait "$VLINK" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
for _ in $(seq 100); do grep -q ready "$DIR/vlink.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$DIR/vlink.out" || { echo "virtual controllers did not start:"; cat "$DIR/vlink.err"; exit 1; }
echo "demo: two virtual controllers ready ($DIR/hci0, $DIR/hci1)"
MICROPYBTUART="$DIR/hci0" "$FW" "$ROOT/examples/demo_advertiser.py" &
ADV=$!
sleep 1
MICROPYBTUART="$DIR/hci1" "$FW" "$ROOT/examples/demo_scanner.py"
wait "$ADV"
