#!/usr/bin/env bash
# The demo (`make demo`): two firmware instances on virtual controllers sharing one radio link.
# One is a temperature sensor; the other finds it, connects, discovers, subscribes and prints
# live values; then both exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec bash "$ROOT/tools/run_pair.sh" "$ROOT/examples/sensor_peripheral.py" "$ROOT/examples/sensor_central.py"
