"""The firmware ends while the stack is busy: connected, scanning, or in the middle of a burst of
notifications. It ends the ways a Unix session ends: the script runs off its end, calls
`sys.exit()`, dies of an uncaught exception, or the user types Ctrl-D at the REPL (`-i`).
This is the Unix counterpart of a soft reset.

Each time the process must exit promptly with the right status and no crash, and must first
deinitialise the stack as `active(False)` would: the host itself ends the link (the Bumble
peer sees reason 0x13, remote user terminated; a controller that merely lost its host would
time the link out) and stops scanning. Then a new session on the same controller starts
clean: it advertises, is connected to again and stops normally.

Run: .cache/venv/bin/python -m pytest tests/peer/test_exit.py
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'harness'))

from bumble import core, hci  # noqa: E402
from bumble.device import AdvertisingData, Peer  # noqa: E402

from vlink import VLink  # noqa: E402

from fwproc import Firmware, bumble_device, run_async  # noqa: E402

STEP_S = 10.0
# The firmware gives NimBLE up to 3 s to end its links at exit; beyond that is a hang.
EXIT_S = 5.0
NOTIFY_UUID = '6e400003-b5a3-f393-e0a9-e50e24dcca9e'
REMOTE_USER_TERMINATED = 0x13

# Gets the stack into STATE, then waits for the test to create `exit` next to it and ends
# the way HOW says. With HOW == 'ctrl-d' the script just returns: `-i` leaves the firmware
# in the REPL, where the test types Ctrl-D.
SCRIPT = r'''
import bluetooth, os, sys, time

here, state, how = sys.argv[1], sys.argv[2], sys.argv[3]
ble = bluetooth.BLE()
conn = []

def exists(name):
    try:
        os.stat(here + '/' + name)
        return True
    except OSError:
        return False

def irq(event, data):
    if event == 1:
        conn.append(data[0])

ble.irq(irq)
ble.active(True)
((h,),) = ble.gatts_register_services((
    (bluetooth.UUID('6e400001-b5a3-f393-e0a9-e50e24dcca9e'),
     ((bluetooth.UUID('6e400003-b5a3-f393-e0a9-e50e24dcca9e'), bluetooth.FLAG_NOTIFY),)),))
if state == 'scanning':
    ble.gap_scan(0, 30000, 30000)
    print('scanning')
else:
    ble.gap_advertise(20_000, b'\x02\x01\x06')
    print('advertising')
    while not conn:
        time.sleep_ms(10)
    print('connected')

def finish():
    if how == 'sys.exit':
        sys.exit(0)
    if how == 'exception':
        raise RuntimeError('uncaught on purpose')

if state == 'notifying':
    n = 0
    while True:
        try:
            ble.gatts_notify(conn[0], h, n.to_bytes(4, 'little') * 5)
            n += 1
        except OSError:
            time.sleep_ms(1)
        if n % 20 == 0 and exists('exit'):
            # Straight from the burst: notifications are still queued in the host.
            finish()
            break
else:
    while not exists('exit'):
        time.sleep_ms(10)
    finish()
'''

# The next session on the same controller: advertise, be connected to, stop.
NEXT_SESSION = r'''
import bluetooth, time
ble = bluetooth.BLE()
events = []
ble.irq(lambda event, data: events.append(event))
print('active', ble.active(True))
ble.gap_advertise(20_000, b'\x02\x01\x06')
t0 = time.ticks_ms()
while 1 not in events and time.ticks_diff(time.ticks_ms(), t0) < 10000:
    time.sleep_ms(10)
print('connected again', 1 in events)
ble.active(False)
print('END')
'''

CASES = [
    ('connected', 'end'), ('connected', 'sys.exit'), ('connected', 'exception'),
    ('connected', 'ctrl-d'),
    ('scanning', 'end'), ('scanning', 'ctrl-d'),
    ('notifying', 'end'), ('notifying', 'sys.exit'), ('notifying', 'exception'),
]


def record_commands(controller) -> list:
    """Makes the VController keep every HCI command its host sends; returns the list."""
    seen: list = []
    on_command = controller.on_hci_command_packet

    def recording(command):
        seen.append(command)
        on_command(command)

    controller.on_hci_command_packet = recording
    return seen


async def connect_to(dev, address):
    return await dev.connect(address, own_address_type=0, timeout=STEP_S)


@pytest.mark.parametrize('state,how', CASES, ids=[f'{s}-{h}' for s, h in CASES])
@run_async(60)
async def test_exit_deinitialises_and_next_session_starts_clean(tmp_path, state, how):
    script = tmp_path / 'busy.py'
    script.write_text(SCRIPT)
    async with VLink(count=2) as link:
        commands = record_commands(link.controllers[0])
        fw_address = link.controllers[0].public_address
        async with bumble_device(link) as dev:
            fw = Firmware()
            args = [str(script), str(tmp_path), state, how]
            stdin_master = None
            if how == 'ctrl-d':
                # The REPL needs a terminal to read Ctrl-D from.
                stdin_master, stdin_slave = os.openpty()
                await fw.start('-i', link.paths[0], *args, stdin=stdin_slave)
                os.close(stdin_slave)
            else:
                await fw.start(args[0], link.paths[0], *args[1:])
            try:
                conn = None
                disconnected = asyncio.get_running_loop().create_future()
                if state == 'scanning':
                    await fw.expect('scanning')
                    dev.advertising_data = bytes(AdvertisingData([
                        (AdvertisingData.COMPLETE_LOCAL_NAME, b'peer')]))
                    await dev.start_advertising(auto_restart=False)
                    await asyncio.sleep(0.3)  # reports flowing
                else:
                    await fw.expect('advertising')
                    conn = await connect_to(dev, fw_address)
                    conn.on('disconnection', lambda reason: disconnected.done()
                            or disconnected.set_result(reason))
                    await fw.expect('connected')
                if state == 'notifying':
                    peer = Peer(conn)
                    await peer.discover_services()
                    chars = [c for c in await peer.discover_characteristics()
                             if c.uuid == core.UUID(NOTIFY_UUID)]
                    got: list[bytes] = []
                    await peer.subscribe(chars[0], lambda v: got.append(bytes(v)))
                    while len(got) < 50:
                        await asyncio.sleep(0.01)
                mark = len(commands)
                (tmp_path / 'exit').write_text('')
                if how == 'ctrl-d':
                    await asyncio.sleep(0.3)  # the script returns to the REPL
                    os.write(stdin_master, b'\x04')
                assert fw.proc is not None
                status = await asyncio.wait_for(fw.proc.wait(), EXIT_S)
                stderr = await fw.stderr()
                assert status == (1 if how == 'exception' else 0), (status, stderr)
                if how == 'exception':
                    assert 'RuntimeError: uncaught on purpose' in stderr, stderr
                else:
                    assert stderr.strip() == '', stderr
                sent = [c.name for c in commands[mark:]]
                if state == 'scanning':
                    assert any(isinstance(c, hci.HCI_LE_Set_Scan_Enable_Command)
                               and c.le_scan_enable == 0 for c in commands[mark:]), sent
                else:
                    # The host ended the link itself before the process went away.
                    assert 'HCI_DISCONNECT_COMMAND' in sent, sent
                    reason = await asyncio.wait_for(disconnected, STEP_S)
                    assert reason == REMOTE_USER_TERMINATED, reason
            finally:
                if stdin_master is not None:
                    os.close(stdin_master)
                if fw.proc is not None and fw.proc.returncode is None:
                    fw.proc.kill()
                await fw.stop()

            if state == 'scanning':
                await dev.stop_advertising()
            # The next session on the same controller.
            nxt = Firmware()
            (tmp_path / 'next.py').write_text(NEXT_SESSION)
            await nxt.start(str(tmp_path / 'next.py'), link.paths[0])
            assert await nxt.expect('active') == 'active True'
            conn = await connect_to(dev, fw_address)
            assert await nxt.expect('connected again') == 'connected again True'
            await nxt.expect('END')
            assert await nxt.stop() == 0
