#!/usr/bin/env bash
# Runs two example scripts on two firmware instances whose virtual controllers share one radio
# link: FIRST starts and, once it prints a line containing "advertising", SECOND runs. Both
# outputs go to stdout as they come. Exits non-zero if either script fails. Further arguments go
# to SECOND.
#   tools/run_pair.sh examples/sensor_peripheral.py examples/sensor_central.py
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FW="${UBT_FIRMWARE:-$ROOT/build/unix/micropython}"
FIRST="$1"
SECOND="$2"
shift 2
DIR="$(mktemp -d)"
"$ROOT/.cache/venv/bin/python" "$ROOT/tests/harness/vlink.py" --count 2 --dir "$DIR" </dev/null >"$DIR/vlink.out" 2>"$DIR/vlink.err" &
VLINK=$!
FIRST_PID=""
cleanup() {
    [ -n "$FIRST_PID" ] && kill "$FIRST_PID" 2>/dev/null || true
    kill "$VLINK" 2>/dev/null || true
    wait "$VLINK" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q ready "$DIR/vlink.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$DIR/vlink.out" || { echo "virtual controllers did not start:"; cat "$DIR/vlink.err"; exit 1; }
echo "two virtual controllers ready ($DIR/hci0, $DIR/hci1)"
mkfifo "$DIR/first.out"
MICROPYBTUART="$DIR/hci0" "$FW" "$FIRST" >"$DIR/first.out" 2>&1 &
FIRST_PID=$!
# Echo the first instance's lines; start the second once the first advertises.
exec 3<"$DIR/first.out"
while IFS= read -r -t 20 line <&3; do
    echo "$line"
    case "$line" in *advertising*) break ;; esac
done
cat <&3 &
ECHO=$!
status=0
MICROPYBTUART="$DIR/hci1" "$FW" "$SECOND" "$@" || status=$?
wait "$FIRST_PID" || status=$?
FIRST_PID=""
wait "$ECHO" || true
exit "$status"
