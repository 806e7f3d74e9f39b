"""H4 over TCP: `MICROPYBTUART=tcp:HOST:PORT` instead of a tty.

A virtual controller is served on a TCP port (VLink(..., tcp=True)); the firmware connects
to it with no bridge, finds a Bumble device by scanning, connects to it and reads its GAP
name. Then the controller's side closes the socket: as with a tty that hangs up
(test_controller_loss.py), calls raise `OSError` rather than crash or hang and
`active(False)` returns. `active(True)` then opens a new TCP connection (by the name
`localhost` this time) and the stack works again.

Run: .cache/venv/bin/python -m pytest tests/peer
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'harness'))

from bumble.device import AdvertisingData  # noqa: E402
from bumble.hci import OwnAddressType  # noqa: E402

from vlink import VLink  # noqa: E402

from fwproc import Firmware, bumble_device, run_async  # noqa: E402

# The script moves on when the test creates a file next to it: `lost` once the controller
# has closed the connection, `back` once the test is ready to see a new one.
SCRIPT = r'''
import bluetooth, os, sys, time

here, port = sys.argv[1], sys.argv[2]
ble = bluetooth.BLE()
state = {}

def irq(event, data):
    if event == 5 and b'tcpeer' in bytes(data[4]):
        state.setdefault('found', (data[0], bytes(data[1])))
    elif event == 7:
        state['conn'] = data[0]
    elif event == 15:
        state['name'] = bytes(data[2])
    elif event == 16:
        state['read_done'] = True

def wait(key, ms=5000):
    t0 = time.ticks_ms()
    while key not in state and time.ticks_diff(time.ticks_ms(), t0) < ms:
        time.sleep_ms(10)
    return state.get(key)

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
ble.gap_scan(3000, 30000, 30000)
found = wait('found')
ble.gap_scan(None)
print('found', found is not None)
ble.gap_connect(found[0], found[1])
print('connected', wait('conn') is not None)
ble.gattc_read(state['conn'], 3)  # the GAP Device Name of a Bumble device
wait('read_done')
print('name', state.get('name'))
wait_file('lost')
# Give the host time to notice: its next command times out and it resets.
time.sleep_ms(2500)
attempt('advertise', lambda: ble.gap_advertise(50_000, b'\x02\x01\x06'))
attempt('scan', lambda: ble.gap_scan(100))
attempt('stop', lambda: ble.active(False))
print('active after stop', ble.active())
wait_file('back')
state.clear()
os.putenv('MICROPYBTUART', 'tcp:localhost:' + port)
print('active again', ble.active(True))
ble.gap_scan(3000, 30000, 30000)
print('found again', wait('found') is not None)
ble.active(False)
print('done')
'''


@run_async(60)
async def test_tcp_controller_scan_connect_close_reconnect(tmp_path):
    script = tmp_path / 'tcp.py'
    script.write_text(SCRIPT)
    fw = Firmware()
    link = await VLink(count=2, tcp=True).start()
    try:
        ours = link.ports[0]
        assert link.paths[0] == f'tcp:127.0.0.1:{ours.port}'
        async with bumble_device(link, name='tcpeer') as dev:
            dev.advertising_data = bytes(AdvertisingData([
                (AdvertisingData.COMPLETE_LOCAL_NAME, b'tcpeer')]))
            # Advertising resumes after the firmware's link drops with its controller.
            await dev.start_advertising(auto_restart=True,
                                        own_address_type=OwnAddressType.PUBLIC)
            await fw.start(str(script), link.paths[0], str(tmp_path), str(ours.port))
            assert await fw.expect('active') == 'active True'
            assert (ours.attached, ours.attach_count) == (True, 1)
            assert await fw.expect('found') == 'found True'
            assert await fw.expect('connected') == 'connected True'
            assert await fw.expect('name') == "name b'tcpeer'"

            # The controller's end closes the socket under the firmware.
            ours.drop_host()
            (tmp_path / 'lost').write_text('')
            for what, outcome in (('advertise', 'OSError'), ('scan', 'OSError'),
                                  ('stop', 'ok')):
                assert await fw.expect(what + ' ') == f'{what} {outcome} within 5 s'
            assert await fw.expect('active after stop') == 'active after stop False'
            assert ours.attach_count == 1

            (tmp_path / 'back').write_text('')
            assert await fw.expect('active again') == 'active again True'
            assert (ours.attached, ours.attach_count) == (True, 2)
            assert await fw.expect('found again') == 'found again True'
            await fw.expect('done')
            assert await fw.stop() == 0
        assert not any('Unable to open' in line for line in fw.lines), fw.lines
    finally:
        await link.close()
