"""A type checker (mypy) reads the examples against our editor stubs.

The examples must type-check clean against stubs/bluetooth.pyi, with MicroPython's own library
stubs (fetched by tools/deps.sh) standing in for `time`, `micropython` and the rest. A script
with typical mistakes must be rejected, line by line, so this check can fail.

Run: .cache/venv/bin/python -m pytest tests/stubs -q
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MYPY = os.path.join(os.path.dirname(sys.executable), 'mypy')


def mpy_stubs_dir() -> str:
    with open(os.path.join(ROOT, 'tools', 'deps.sh')) as f:
        version = re.search(r'^MPY_STUBS_VERSION=(\S+)$', f.read(), re.M).group(1)
    path = os.path.join(ROOT, '.cache', f'mpy-stubs-{version}')
    assert os.path.isfile(os.path.join(path, 'time.pyi')), 'run tools/deps.sh mpy_stubs first'
    return path


def run_mypy(tmp_path, *targets: str) -> subprocess.CompletedProcess:
    mpy = mpy_stubs_dir()
    config = tmp_path / 'mypy.ini'
    # MicroPython's typeshed replaces CPython's; our stubs come first on the path so they, not
    # the library's own ubluetooth.pyi, describe the module. The library's private helpers have
    # errors of their own that are not ours to report.
    config.write_text(
        '[mypy]\n'
        f'custom_typeshed_dir = {mpy}\n'
        f'mypy_path = {os.path.join(ROOT, "stubs")}:{mpy}\n'
        f'cache_dir = {tmp_path / "cache"}\n'
        '[mypy-_mpy_shed.*]\n'
        'ignore_errors = True\n')
    return subprocess.run([MYPY, '--config-file', str(config), *targets],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_examples_type_check_against_the_stubs(tmp_path):
    out = run_mypy(tmp_path, 'examples', 'stubs/bluetooth.pyi', 'stubs/ubluetooth.pyi')
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'Success: no issues found in 12 source files' in out.stdout, out.stdout


MISTAKES = '''\
import bluetooth
import ubluetooth
from micropython import const

_IRQ_SCAN_RESULT = const(5)
ble = bluetooth.BLE()
ble.active(True)
ble.gap_advertise("100", b"")
ble.gap_scan(1000, 30000, 30000, True, 1)
ble.gatts_notify(0)
ble.gatts_write(0, 1234)
ble.gap_connect(0, b"\\x00" * 6)
ble.irq(lambda event, data: None)
ble.gatts_register_services(((bluetooth.UUID(0x180F), ((bluetooth.UUID(0x2A19), bluetooth.FLAG_READ),)),))
((handle,),) = ble.gatts_register_services([(bluetooth.UUID(0x180F), [(bluetooth.UUID(0x2A19), bluetooth.FLAG_READ)])])
n: str = ble.l2cap_recvinto(0, 64, bytearray(8))
ble.config(mac=1)
ubluetooth.BLE().gap_disconnect("0")
bluetooth.UUID(1.5)
'''

# (line, what mypy must say about it)
EXPECTED = [
    (8, 'Argument 1 to "gap_advertise" of "BLE" has incompatible type "str"'),
    (9, 'Too many arguments for "gap_scan" of "BLE"'),
    (10, 'Too few arguments for "gatts_notify" of "BLE"'),
    (11, 'Argument 2 to "gatts_write" of "BLE" has incompatible type "int"'),
    (16, 'Incompatible types in assignment (expression has type "int", variable has type "str")'),
    (17, 'Unexpected keyword argument "mac"'),  # read-only: setting it is a ValueError
    (18, 'Argument 1 to "gap_disconnect" of "BLE" has incompatible type "str"'),
    (19, 'Argument 1 to "UUID" has incompatible type "float"'),
]


def test_the_type_checker_rejects_wrong_calls(tmp_path):
    script = tmp_path / 'mistakes.py'
    script.write_text(MISTAKES)
    out = run_mypy(tmp_path, str(script))
    assert out.returncode == 1, out.stdout + out.stderr
    errors = [l for l in out.stdout.splitlines() if ': error: ' in l]
    for line, message in EXPECTED:
        assert any(f'mistakes.py:{line}: error: {message}' in e for e in errors), \
            f'line {line}: expected {message!r}\n' + out.stdout
    # Nothing else was flagged: the correct calls in the script type-check.
    flagged = sorted({int(e.split(':')[1]) for e in errors})
    assert flagged == [line for line, _ in EXPECTED], out.stdout
