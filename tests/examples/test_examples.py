"""Each example pair runs over virtual controllers (tools/run_pair.sh) and prints what a user
would expect to see; `make demo` runs the sensor pair.

Run: .cache/venv/bin/python -m pytest tests/examples -q    (needs build/unix/micropython)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIRMWARE = os.path.join(ROOT, 'build', 'unix', 'micropython')


def run_pair(first: str, second: str, *args: str, cwd: str | None = None) -> list[str]:
    assert os.path.exists(FIRMWARE), 'build the firmware first (make unix)'
    out = subprocess.run(
        ['bash', os.path.join(ROOT, 'tools', 'run_pair.sh'),
         os.path.join(ROOT, 'examples', first), os.path.join(ROOT, 'examples', second), *args],
        capture_output=True, text=True, timeout=90, cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.splitlines()


def test_sensor_demo():
    lines = run_pair('sensor_peripheral.py', 'sensor_central.py')
    central = [ln for ln in lines if ln.startswith('central:')]
    sensor = [ln for ln in lines if ln.startswith('sensor:')]
    assert sensor == ['sensor: advertising as mpy-temp', 'sensor: central connected',
                      'sensor: central disconnected', 'sensor: done']
    assert central[:3] == ['central: scanning for the Environmental Sensing service',
                           'central: found sensor at f0:f1:f2:f3:f4:00', 'central: connected']
    assert re.fullmatch(r'central: temperature value handle (\d+) CCCD (\d+)', central[3])
    read = re.fullmatch(r'central: read (\d+)\.(\d\d) degC', central[4])
    assert read and central[5] == 'central: subscribed'
    # Five live values, each 0.25 degC above the one before and above the value read.
    values = [re.fullmatch(r'central: temperature (\d+)\.(\d\d) degC', ln) for ln in central[6:11]]
    assert all(values)
    centi = [int(m[1]) * 100 + int(m[2]) for m in values]
    assert centi == [centi[0] + 25 * i for i in range(5)]
    assert centi[0] > int(read[1]) * 100 + int(read[2])
    assert central[11:] == ['central: unsubscribed', 'central: done']


def test_advertiser_and_scanner():
    lines = run_pair('demo_advertiser.py', 'demo_scanner.py')
    assert 'advertiser: advertising ubluetooth-demo' in lines
    assert 'advertiser: done' in lines
    assert any(re.fullmatch(r'scanner: found f0:f1:f2:f3:f4:00 ADV_IND rssi -?\d+ '
                            r'name=ubluetooth-demo', ln) for ln in lines), lines


def test_uart_pair():
    lines = run_pair('uart_peripheral.py', 'uart_central.py')
    sent = ['hello', 'micropython over ble', 'append mode keeps every piece']
    assert [ln for ln in lines if ln.startswith('uart: got ')] == ['uart: got ' + s for s in sent]
    assert [ln for ln in lines if ln.startswith('client: answer ')] == [
        'client: answer ' + s.upper() for s in sent]
    assert 'client: done' in lines and 'uart: done' in lines


def test_l2cap_file_transfer(tmp_path):
    payload = os.urandom(100_000)
    src = tmp_path / 'payload.bin'
    src.write_bytes(payload)
    lines = run_pair('l2cap_file_receiver.py', 'l2cap_file_sender.py', str(src), cwd=str(tmp_path))
    assert (tmp_path / 'received.bin').read_bytes() == payload
    digest = hashlib.sha256(payload).hexdigest()[:16]
    assert f'receiver: stored 100000 bytes in received.bin, sha256 {digest}' in lines
    assert any(ln.startswith('sender: sent in') and ln.endswith(digest) for ln in lines), lines
    assert 'sender: done' in lines and 'receiver: done' in lines


def test_pairing_with_passkey(tmp_path):
    lines = run_pair('pair_peripheral.py', 'pair_central.py', cwd=str(tmp_path))
    assert 'central: read before pairing, status 0x105' in lines
    assert 'pair: passkey on the display: 246810' in lines
    assert 'central: typing passkey 246810' in lines
    assert 'central: encrypted True authenticated True bonded True' in lines
    assert 'pair: encrypted True authenticated True bonded True' in lines
    assert "central: read b'for paired friends'" in lines
    assert 'central: read after pairing, status 0x0' in lines
    assert 'central: done' in lines and 'pair: done' in lines
    # The peripheral's bond file holds its IRK and both security records.
    assert {t for t, _, _ in json.load(open(tmp_path / 'bonds.json'))} == {1, 2, 10}
