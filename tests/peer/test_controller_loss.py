"""The controller goes away mid-session: its tty hangs up while the firmware advertises.

The script must keep running: calls raise `OSError` rather than crash or hang, `active(False)`
returns, and once a controller is back on the same tty path, `active(True)` starts the stack
again and it works (it finds a Bumble device that advertises on the new link).

Run: .cache/venv/bin/python -m pytest tests/peer
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'harness'))

from bumble.device import AdvertisingData  # noqa: E402

from vlink import VLink  # noqa: E402

from fwproc import Firmware, bumble_device, run_async  # noqa: E402

# The script moves on when the test creates a file next to it: `lost` once the controller is
# gone, `back` once a new one listens on the same path.
SCRIPT = r'''
import bluetooth, os, sys, time

here = sys.argv[1]
ble = bluetooth.BLE()
found = []

def irq(event, data):
    if event == 5 and b'phoenix' in bytes(data[4]):
        found.append(1)

def wait_file(name):
    while True:
        try:
            os.stat(here + '/' + name)
            return
        except OSError:
            time.sleep_ms(20)

def attempt(what, fn):
    t0 = time.ticks_ms()
    try:
        fn()
        r = 'ok'
    except OSError as e:
        r = 'OSError'
    print(what, r, 'within 5 s' if time.ticks_diff(time.ticks_ms(), t0) < 5000 else 'SLOW')

ble.irq(irq)
print('active', ble.active(True))
ble.gap_advertise(50_000, b'\x02\x01\x06')
print('advertising')
wait_file('lost')
# Give the host time to notice: its next command times out and it resets.
time.sleep_ms(2500)
attempt('advertise', lambda: ble.gap_advertise(50_000, b'\x02\x01\x06'))
attempt('scan', lambda: ble.gap_scan(100))
attempt('stop', lambda: ble.active(False))
print('active after stop', ble.active())
wait_file('back')
print('active again', ble.active(True))
ble.gap_scan(3000, 30000, 30000)
t0 = time.ticks_ms()
while not found and time.ticks_diff(time.ticks_ms(), t0) < 3000:
    time.sleep_ms(20)
print('found peer', bool(found))
ble.active(False)
print('done')
'''


@run_async(60)
async def test_controller_hang_up_then_recovery(tmp_path):
    script = tmp_path / 'loss.py'
    script.write_text(SCRIPT)
    links = str(tmp_path / 'links')
    fw = Firmware()
    link = await VLink(count=2, directory=links).start()
    try:
        await fw.start(str(script), os.path.join(links, 'hci0'), str(tmp_path))
        assert await fw.expect('active') == 'active True'
        await fw.expect('advertising')
        # The controller's pty closes under the firmware: a hang-up on its tty.
        await link.close()
        (tmp_path / 'lost').write_text('')
        # Calls that need the controller fail cleanly; stopping works. None of them hangs.
        for what, outcome in (('advertise', 'OSError'), ('scan', 'OSError'), ('stop', 'ok')):
            assert await fw.expect(what + ' ') == f'{what} {outcome} within 5 s'
        assert await fw.expect('active after stop') == 'active after stop False'

        # A new controller on the same path, and a device advertising beside it.
        link = await VLink(count=2, directory=links).start()
        async with bumble_device(link) as dev:
            dev.advertising_data = bytes(AdvertisingData([
                (AdvertisingData.COMPLETE_LOCAL_NAME, b'phoenix')]))
            await dev.start_advertising(auto_restart=False)
            (tmp_path / 'back').write_text('')
            assert await fw.expect('active again') == 'active again True'
            assert await fw.expect('found peer') == 'found peer True'
            await fw.expect('done')
            assert await fw.stop() == 0
    finally:
        await link.close()
