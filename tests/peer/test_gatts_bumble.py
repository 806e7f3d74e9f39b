"""Our GATT server (firmware) against an independent GATT client: a Bumble host stack.

Both sides sit on one radio: a virtual link (tests/harness/vlink.py, in-process), and again
RootCanal (tests/harness/rootcanal_link.py), Android's controller, with the Bumble client as a
second host on it. The firmware runs
FW_SCRIPT: it registers a service, advertises, prints every server event it gets and runs
commands a "control" characteristic receives. The Bumble client connects, discovers, reads,
writes, subscribes and checks what it receives; the test then checks the firmware's side of
each step from its output (spec §5.5, §6 events 3/4/20, §6.2, §6.3, §8).

Run: .cache/venv/bin/python -m pytest tests/peer -q    (needs build/unix/micropython)
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'harness'))

from bumble import att, core  # noqa: E402
from bumble.device import Device, Peer  # noqa: E402
from bumble.gatt import Characteristic  # noqa: E402
from bumble.transport import open_transport  # noqa: E402

from bumble.hci import Address  # noqa: E402

from fwproc import STEP_TIMEOUT_S, Firmware, Radio, bumble_transport, run_async  # noqa: E402

# The Bumble client's random address (unused: it connects with its public one).
CLIENT_RANDOM_ADDRESS = Address('F0:00:00:00:00:01', Address.RANDOM_DEVICE_ADDRESS)

UUID_FMT = 'a0b4{:04x}-926d-4d61-98df-8c5c62ee53b3'

FW_SCRIPT = r'''
import bluetooth
import time
from micropython import const

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_GATTS_READ_REQUEST = const(4)
_IRQ_GATTS_INDICATE_DONE = const(20)
_READ = const(0x02)
_WRITE_NO_RESPONSE = const(0x04)
_WRITE = const(0x08)
_NOTIFY = const(0x10)
_INDICATE = const(0x20)


def U(n):
    return bluetooth.UUID('a0b4%04x-926d-4d61-98df-8c5c62ee53b3' % n)


SERVICE = (U(1), (
    (U(2), _READ | _WRITE, ((bluetooth.UUID(0x2901), _READ | _WRITE),)),
    (U(3), _READ | _NOTIFY),
    (U(4), _READ | _INDICATE),
    (U(5), _READ),
    (U(6), _WRITE | _WRITE_NO_RESPONSE),
    (U(7), _WRITE),
    (U(8), _READ),
))

ble = bluetooth.BLE()
conn = None
commands = []
deny_local = False
names = {}
reads = 0


def irq(event, data):
    global conn, reads
    if event == _IRQ_CENTRAL_CONNECT:
        conn = data[0]
        print('connect')
    elif event == _IRQ_CENTRAL_DISCONNECT:
        print('disconnect')
        commands.append(b'q')
    elif event == _IRQ_GATTS_WRITE:
        c, h = data
        if h == h_ctrl:
            commands.append(ble.gatts_read(h))
        elif h == h_app:
            print('write', c == conn, 'append')
        else:
            # The stored value is already updated when the event arrives.
            print('write', c == conn, names.get(h, h), ble.gatts_read(h))
    elif event == _IRQ_GATTS_READ_REQUEST:
        c, h = data
        print('read_request', 'local' if c == 65535 else c == conn, names.get(h, h))
        if h == h_deny:
            # Only the low 8 bits reach the peer: ATT error 0x81.
            return 0x181
        if h == h_dyn:
            # The read that follows sees what the handler writes.
            reads += 1
            ble.gatts_write(h_dyn, b'dyn%d' % reads)
        if c == 65535 and deny_local:
            return 1
    elif event == _IRQ_GATTS_INDICATE_DONE:
        c, h, status = data
        print('indicate_done', c == conn, names.get(h, h), status)


ble.irq(irq)
ble.active(True)
print('mac', ':'.join('%02X' % b for b in ble.config('mac')[1]))
((h_rw, h_dsc, h_noti, h_ind, h_deny, h_app, h_ctrl, h_dyn),) = ble.gatts_register_services(
    (SERVICE,))
names = {h_rw: 'rw', h_dsc: 'dsc', h_noti: 'noti', h_ind: 'ind', h_deny: 'deny', h_app: 'app',
         h_dyn: 'dyn'}
print('handles', h_rw, h_dsc, h_noti, h_ind, h_deny, h_app, h_ctrl, h_dyn)
ble.gatts_write(h_rw, b'initial')
ble.gatts_write(h_dsc, b'user description')
ble.gatts_write(h_noti, b'notify-stored')
ble.gatts_write(h_ind, b'indicate-stored')
ble.gatts_write(h_deny, b'secret')
ble.gatts_set_buffer(h_app, 10, True)
ble.gatts_set_buffer(h_ctrl, 1)
ble.gap_advertise(20000, b'\x02\x01\x06\x07\x09gattsd')
print('advertising')


def run(cmd):
    global deny_local
    if cmd == b'n':
        ble.gatts_notify(conn, h_noti)
    elif cmd == b'N':
        ble.gatts_notify(conn, h_noti, b'custom-notify')
    elif cmd == b'i':
        ble.gatts_indicate(conn, h_ind)
    elif cmd == b'I':
        ble.gatts_indicate(conn, h_ind, b'custom-indicate')
    elif cmd == b'u':
        ble.gatts_write(h_noti, b'updated', True)
    elif cmd == b'x':
        deny_local = True
        try:
            ble.gatts_notify(conn, h_noti)
        finally:
            deny_local = False
    elif cmd == b'r':
        print('append read', ble.gatts_read(h_app), ble.gatts_read(h_app))
    elif cmd == b'L':
        ble.gatts_write(h_rw, bytes(range(100)))
    elif cmd == b'T':
        ble.gatts_notify(conn, h_noti, bytes(range(30)))
    elif cmd == b'M':
        # Four GATT procedures at most: the fifth indication fails with ENOMEM, after a
        # synchronous INDICATE_DONE with status 6.
        for i in range(5):
            ble.gatts_indicate(conn, h_ind, b'burst%d' % i)


while True:
    if commands:
        cmd = commands.pop(0)
        if cmd == b'q':
            break
        try:
            run(cmd)
        except OSError as e:
            print('error', cmd, e.errno)
        print('ack', cmd)
    time.sleep_ms(2)
ble.active(False)
print('done')
'''


@pytest.mark.parametrize('radio', ['vlink', 'rootcanal'])
@run_async(90)
async def test_gatt_server_against_bumble_client(tmp_path, radio):
    script = tmp_path / 'gatts_peer.py'
    script.write_text(FW_SCRIPT)
    fw = Firmware()
    async with Radio(radio) as link:
        transport = await open_transport(bumble_transport(link.paths[1]))
        try:
            await fw.start(str(script), link.paths[0])
            mac = (await fw.expect('mac')).split()[1]
            handles = [int(x) for x in (await fw.expect('handles')).split()[1:]]
            h_rw, h_dsc, h_noti, h_ind, h_deny, h_app, h_ctrl, h_dyn = handles
            await fw.expect('advertising')

            dev = Device.with_hci('client', link.public_address(1) or CLIENT_RANDOM_ADDRESS,
                                  transport.source, transport.sink)
            # Reads the controller's public address (connect uses it: own_address_type=0).
            await dev.power_on()
            fw_address = link.public_address(0) or Address(mac, Address.PUBLIC_DEVICE_ADDRESS)
            # The firmware reports its controller's address, on either radio.
            assert str(fw_address).split('/')[0] == mac, (fw_address, mac)
            found = asyncio.get_running_loop().create_future()

            def on_adv(adv):
                if adv.address == fw_address and not found.done():
                    found.set_result(adv)

            dev.on('advertisement', on_adv)
            # RootCanal refuses extended advertising commands after legacy ones (and the other
            # way round) until a reset, and Bumble connects with the extended command wherever
            # the controller has it; so there the client scans with extended commands too.
            legacy = radio == 'vlink'
            await dev.start_scanning(legacy=legacy, active=False)
            adv = await asyncio.wait_for(found, STEP_TIMEOUT_S)
            await dev.stop_scanning(legacy=legacy)
            conn = await dev.connect(adv.address, own_address_type=0)
            await fw.expect('connect')
            peer = Peer(conn)

            # --- discovery: the layout spec §8.1/§8.2 describe --------------------------
            services = await peer.discover_services()
            assert [s.uuid for s in services] == [
                core.UUID.from_16_bits(0x1800), core.UUID.from_16_bits(0x1801),
                core.UUID(UUID_FMT.format(1))]
            chars = await peer.discover_characteristics()
            ours = {c.uuid: c for c in chars}
            c_rw, c_noti, c_ind, c_deny, c_app, c_ctrl, c_dyn = (
                ours[core.UUID(UUID_FMT.format(n))] for n in range(2, 9))
            assert [c.handle for c in (c_rw, c_noti, c_ind, c_deny, c_app, c_ctrl, c_dyn)] == [
                h_rw, h_noti, h_ind, h_deny, h_app, h_ctrl, h_dyn]
            props = Characteristic.Properties
            assert c_rw.properties == props.READ | props.WRITE
            assert c_noti.properties == props.READ | props.NOTIFY
            assert c_ind.properties == props.READ | props.INDICATE
            assert c_deny.properties == props.READ
            assert c_app.properties == props.WRITE | props.WRITE_WITHOUT_RESPONSE
            for c in (c_rw, c_noti, c_ind):
                await peer.discover_descriptors(c)
            # A user descriptor comes right after the value; NOTIFY/INDICATE get a CCCD
            # at value+1 whose handle registration does not return.
            assert [(d.type, d.handle) for d in c_rw.descriptors] == [
                (core.UUID.from_16_bits(0x2901), h_dsc)]
            cccd = core.UUID.from_16_bits(0x2902)
            assert [(d.type, d.handle) for d in c_noti.descriptors] == [(cccd, h_noti + 1)]
            assert [(d.type, d.handle) for d in c_ind.descriptors] == [(cccd, h_ind + 1)]
            assert h_dsc == h_rw + 1 and h_ind == h_noti + 3
            d_user = c_rw.descriptors[0]

            async def command(cmd: bytes) -> None:
                await peer.write_value(c_ctrl, cmd, with_response=True)
                await fw.expect(f'ack {cmd!r}')

            # --- reads: READ_REQUEST first, then the stored value -----------------------
            assert await peer.read_value(c_rw) == b'initial'
            assert await fw.expect('read_request') == 'read_request True rw'
            assert await peer.read_value(d_user) == b'user description'
            assert await fw.expect('read_request') == 'read_request True dsc'

            # A non-zero return denies the read; the peer gets its low 8 bits as ATT error.
            with pytest.raises(att.ATT_Error) as denied:
                await peer.read_value(c_deny)
            assert denied.value.error_code == 0x81
            assert await fw.expect('read_request') == 'read_request True deny'

            # NimBLE refuses reads and writes the flags do not allow before asking Python (no
            # READ_REQUEST/GATTS_WRITE line: the expect() calls below would return it).
            with pytest.raises(att.ATT_Error) as refused:
                await peer.read_value(c_app)
            assert refused.value.error_code == att.ErrorCode.READ_NOT_PERMITTED
            with pytest.raises(att.ATT_Error) as refused:
                await peer.write_value(c_deny, b'no', with_response=True)
            assert refused.value.error_code == att.ErrorCode.WRITE_NOT_PERMITTED

            # The handler may update the value before it is read.
            assert await peer.read_value(c_dyn) == b'dyn1'
            assert await peer.read_value(c_dyn) == b'dyn2'
            assert await fw.expect('read_request') == 'read_request True dyn'
            assert await fw.expect('read_request') == 'read_request True dyn'

            # --- writes: the value is stored before GATTS_WRITE --------------------------
            await peer.write_value(c_rw, b'hello', with_response=True)
            assert await fw.expect('write') == "write True rw b'hello'"
            assert await peer.read_value(c_rw) == b'hello'
            await peer.write_value(d_user, b'desc2', with_response=True)
            assert await fw.expect('write') == "write True dsc b'desc2'"
            assert await peer.read_value(d_user) == b'desc2'
            # Over the 20-byte default capacity (a prepared write, executed as one write):
            # truncated, yet acknowledged.
            await peer.gatt_client.write_long_value(c_rw.handle, bytes(range(1, 21)) + b'extra')
            assert await fw.expect('write') == f'write True rw {bytes(range(1, 21))!r}'

            # --- append mode (gatts_set_buffer(h, 10, True)) -----------------------------
            await peer.write_value(c_app, b'abc', with_response=False)
            await peer.write_value(c_app, b'defg', with_response=True)
            await peer.write_value(c_app, b'1234567', with_response=True)  # 3 fit
            for _ in range(3):
                assert await fw.expect('write') == 'write True append'
            await command(b'r')
            assert await fw.expect('append read') == "append read b'abcdefg123' b''"
            await peer.write_value(c_app, b'zz', with_response=True)
            assert await fw.expect('write') == 'write True append'
            await command(b'r')
            assert await fw.expect('append read') == "append read b'zz' b''"

            # --- long values: a local write grows the capacity ---------------------------
            await command(b'L')
            mark = len(fw.lines)
            assert await peer.read_value(c_rw) == bytes(range(100))
            mtu = peer.gatt_client.mtu
            reads = 1 + -(-(100 - (mtu - 1)) // (mtu - 1))  # a Read then Read Blobs
            await asyncio.sleep(0.1)
            assert fw.since(mark).count('read_request True rw') == reads
            await peer.gatt_client.write_long_value(c_rw.handle, bytes(range(50, 0, -1)))
            assert await fw.expect('write') == f'write True rw {bytes(range(50, 0, -1))!r}'

            # --- notifications and indications -------------------------------------------
            notified: asyncio.Queue[bytes] = asyncio.Queue()
            indicated: asyncio.Queue[bytes] = asyncio.Queue()
            mark = len(fw.lines)
            await peer.subscribe(c_noti, lambda v: notified.put_nowait(bytes(v)))
            await peer.subscribe(c_ind, lambda v: indicated.put_nowait(bytes(v)),
                                 prefer_notify=False)

            async def got(queue: asyncio.Queue) -> bytes:
                try:
                    return await asyncio.wait_for(queue.get(), STEP_TIMEOUT_S)
                except asyncio.TimeoutError:
                    fw.proc.kill()
                    raise AssertionError('nothing received; firmware said:\n'
                                         + '\n'.join(fw.lines) + await fw.stderr()) from None

            await command(b'n')
            assert await got(notified) == b'notify-stored'
            await command(b'N')
            assert await got(notified) == b'custom-notify'
            await command(b'i')
            assert await got(indicated) == b'indicate-stored'
            assert await fw.expect('indicate_done') == 'indicate_done True ind 0'
            await command(b'I')
            assert await got(indicated) == b'custom-indicate'
            assert await fw.expect('indicate_done') == 'indicate_done True ind 0'
            await command(b'u')
            assert await got(notified) == b'updated'
            # Payloads are cut to ATT_MTU - 3.
            await command(b'T')
            assert await got(notified) == bytes(range(peer.gatt_client.mtu - 3))
            # A local read the handler denies makes gatts_notify fail with OSError(-9).
            await command(b'x')
            await asyncio.sleep(0.2)
            assert notified.empty()
            # Indications are not serialised; the fifth finds no free GATT procedure. NimBLE
            # reports only the confirmation of the indication it sent last (the others find
            # no outstanding indication), but every procedure ends: a second burst again
            # gets four out.
            for _ in range(2):
                await command(b'M')
                assert [await got(indicated) for _ in range(4)] == [
                    b'burst0', b'burst1', b'burst2', b'burst3']
                await fw.expect('indicate_done True ind 0')
                await asyncio.sleep(0.3)

            fw_side = [line for line in fw.since(mark)
                       if not line.startswith('ack')]
            assert fw_side == [
                # CCCD writes raise no GATTS_WRITE; stored-value sends read locally first.
                'read_request local noti',
                'read_request local ind',
                'indicate_done True ind 0',
                'indicate_done True ind 0',
                'read_request local noti',   # send_update reads the new value back
                'read_request local noti',
                "error b'x' -9",
                'indicate_done True ind 6',
                "error b'M' 12",
                'indicate_done True ind 0',
                'indicate_done True ind 6',
                "error b'M' 12",
                'indicate_done True ind 0',
            ]

            await conn.disconnect()
            await fw.expect('disconnect')
            await fw.expect('done')
            assert await fw.stop() == 0
        finally:
            if fw.proc is not None and fw.proc.returncode is None:
                fw.proc.kill()
                await fw.stop()
            await transport.close()
