"""MICROPYBTBAUD and MICROPYBTFLOW reach the tty: while the firmware has a virtual
controller's pty open and its stack running, the pty's termios show the baud rate and flow
control it was given, and today's 1 Mbaud with RTS/CTS when the variables are unset.
(tests/firmware/ble_uart_settings.py covers invalid values.)

Run: .cache/venv/bin/python -m pytest tests/peer
"""

from __future__ import annotations

import os
import sys
import termios

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'harness'))

from vlink import VLink  # noqa: E402

from fwproc import Firmware, run_async  # noqa: E402

SCRIPT = r'''
import bluetooth, os, sys, time
ble = bluetooth.BLE()
print('active', ble.active(True))
while True:
    try:
        os.stat(sys.argv[1] + '/checked')
        break
    except OSError:
        time.sleep_ms(20)
ble.active(False)
print('done')
'''


def tty_settings(path: str) -> tuple[int, int, bool]:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        _, _, cflag, _, ispeed, ospeed, _ = termios.tcgetattr(fd)
    finally:
        os.close(fd)
    return ispeed, ospeed, bool(cflag & termios.CRTSCTS)


@pytest.mark.parametrize('baud, flow, expected', [
    (None, None, (termios.B1000000, termios.B1000000, True)),
    ('115200', '0', (termios.B115200, termios.B115200, False)),
    ('3000000', '1', (termios.B3000000, termios.B3000000, True)),
])
def test_baud_and_flow_reach_the_tty(tmp_path, monkeypatch, baud, flow, expected):
    for name, value in (('MICROPYBTBAUD', baud), ('MICROPYBTFLOW', flow)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)

    @run_async(30)
    async def run():
        script = tmp_path / 'settings.py'
        script.write_text(SCRIPT)
        fw = Firmware()
        async with VLink(count=1, directory=str(tmp_path / 'links')) as link:
            path = link.paths[0]
            # Set the opposite first, so the firmware has to change each setting.
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            try:
                attrs = termios.tcgetattr(fd)
                flow = attrs[2] & ~termios.CRTSCTS
                attrs[2] = flow if expected[2] else flow | termios.CRTSCTS
                attrs[4] = attrs[5] = termios.B9600
                termios.tcsetattr(fd, termios.TCSANOW, attrs)
            finally:
                os.close(fd)
            assert tty_settings(path) != expected
            await fw.start(str(script), path, str(tmp_path))
            assert await fw.expect('active') == 'active True'
            settings = tty_settings(path)
            (tmp_path / 'checked').write_text('')
            await fw.expect('done')
            assert await fw.stop() == 0
        assert settings == expected

    run()
