"""Feature profiles on Unix (docs/building.md, "Feature profiles"): firmwares built with only
some parts of the module, by `make unix-features` (tools/test.sh builds the two used here).

A part left out must take its methods off `BLE` (AttributeError) and its config keys
(ValueError "unknown config param"), as MicroPython's own build options do, and leave every
other part working: a peripheral-only GATT server and a central-only GATT client run
MicroPython's GATT multitests against each other.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PERIPHERAL = ROOT / "build" / "unix-peripheral" / "micropython"
CENTRAL = ROOT / "build" / "unix-central+gatt-client" / "micropython"
FULL = ROOT / "build" / "unix" / "micropython"

# The methods each part brings; every other method is always there.
PART_METHODS = {
    "central": {"gap_scan", "gap_connect"},
    "peripheral": {"gap_advertise"},
    "gatt-client": {
        "gattc_discover_services",
        "gattc_discover_characteristics",
        "gattc_discover_descriptors",
        "gattc_read",
        "gattc_write",
        "gattc_exchange_mtu",
    },
    "l2cap": {"l2cap_listen", "l2cap_connect", "l2cap_disconnect", "l2cap_send", "l2cap_recvinto"},
    "security": {"gap_pair", "gap_passkey", "gap_unpair"},
}
SECURITY_CONFIG_KEYS = ("bond", "mitm", "le_secure", "io")

# Which methods and config keys a firmware has, without a controller (nothing is started).
PROBE = """
import bluetooth
ble = bluetooth.BLE()
print(" ".join(sorted(n for n in dir(ble) if not n.startswith("_"))))
for key in ("bond", "mitm", "le_secure", "io"):
    try:
        ble.config(**{key: 1})
        print(key, "ok")
    except ValueError as e:
        print(key, "ValueError", e)
try:
    ble.gattc_read(0, 1)
except AttributeError as e:
    print("AttributeError", e)
except OSError as e:
    print("OSError", e.errno)
"""


def probe(firmware: Path) -> tuple[set[str], dict[str, str], str]:
    if not firmware.exists():
        pytest.fail(f"{firmware} is missing: make unix-features UBT_FEATURES=...")
    out = subprocess.run([str(firmware), "-c", PROBE], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    methods = set(lines[0].split())
    keys = {}
    for line in lines[1:5]:
        key, result = line.split(" ", 1)
        keys[key] = result
    return methods, keys, "\n".join(lines[5:])


def expected_methods(parts: set[str]) -> set[str]:
    full, _, _ = probe(FULL)
    removed = set().union(*(m for p, m in PART_METHODS.items() if p not in parts))
    assert removed <= full, "PART_METHODS names a method the full firmware lacks"
    return full - removed


@pytest.mark.parametrize(
    "firmware, parts",
    [(PERIPHERAL, {"peripheral"}), (CENTRAL, {"central", "gatt-client"})],
    ids=["peripheral", "central+gatt-client"],
)
def test_a_profile_has_exactly_the_methods_of_its_parts(firmware: Path, parts: set[str]):
    methods, keys, rest = probe(firmware)
    assert methods == expected_methods(parts)
    # Neither profile has security: its config keys are unknown, as in a MicroPython build
    # without pairing and bonding.
    for key in SECURITY_CONFIG_KEYS:
        assert keys[key] == "ValueError unknown config param", (key, keys[key])
    if "gatt-client" not in parts:
        assert rest == "AttributeError 'BLE' object has no attribute 'gattc_read'"


def test_the_full_firmware_keeps_every_method_and_security_key():
    methods, keys, rest = probe(FULL)
    assert set().union(*PART_METHODS.values()) <= methods
    assert all(keys[k] == "ok" for k in SECURITY_CONFIG_KEYS), keys
    assert rest == "OSError 19"  # ENODEV: there, but the stack is not active


def test_a_peripheral_only_server_and_a_central_only_client_run_the_gatt_multitests():
    tests = ["ble_gap_connect", "ble_characteristic", "ble_gatt_data_transfer", "ble_subscribe", "ble_mtu"]
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "multitest.py"),
            "--instance-firmware",
            f"0={PERIPHERAL}",
            "--instance-firmware",
            f"1={CENTRAL}",
            *tests,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert f"{len(tests)} passed, 0 failed" in out.stdout, out.stdout[-3000:]
