"""Pairing and bonding across restarts, and pairing with a Bumble host.

test_bond_survives_restart: two firmware processes bond with passkey entry and LE Secure
Connections, keeping every secret NimBLE hands them through _IRQ_SET_SECRET in a JSON file, the
way a script on a board keeps them in flash. Both processes then exit and two new ones start
with only those files: the central's gap_pair now encrypts with the stored keys (no passkey
asked) and reports a bonded, authenticated link. A third run where the peripheral has lost its
file shows the keys really come from the store: encryption then fails.

test_pairing_with_bumble_host: a Bumble host (central) pairs with our peripheral with LE Secure
Connections and bonding; both sides must agree on the result.

test_repeat_pairing_with_bumble_host: the same Bumble host comes back having lost its keys and
pairs again. NimBLE reports a repeat pairing; we delete the old bond through the script's store
and the new pairing goes on. The script's handler answers True to every delete, as many
scripts' do, so a delete that repeats until "not found" would never return.

Run: .cache/venv/bin/python -m pytest tests/peer -q    (needs build/unix/micropython)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'harness'))

from bumble.device import Device  # noqa: E402
from bumble.pairing import PairingConfig, PairingDelegate  # noqa: E402
from bumble.transport import open_transport  # noqa: E402

from vlink import VLink  # noqa: E402

from fwproc import Firmware, run_async  # noqa: E402

# argv: secrets file, role ('p' or 'c'), then the peer address as hex (central) or how many
# connections to serve (peripheral, default 1).
FW_SCRIPT = r'''
import bluetooth
import binascii
import json
import sys
import time
from micropython import const

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)
_IRQ_PASSKEY_ACTION = const(31)
PASSKEY = 271828

path, role = sys.argv[1], sys.argv[2]
secrets = {}
try:
    with open(path) as f:
        for t, k, v in json.load(f):
            secrets[(t, binascii.a2b_base64(k))] = binascii.a2b_base64(v)
except OSError:
    pass
print('loaded', len(secrets))


def save():
    with open(path, 'w') as f:
        json.dump([(t, binascii.b2a_base64(k), binascii.b2a_base64(v))
                   for (t, k), v in secrets.items()], f)


events = {}


def irq(event, data):
    if event == _IRQ_GET_SECRET:
        sec_type, index, key = data
        if key is None:
            found = [v for (t, k), v in secrets.items() if t == sec_type]
            return found[index] if index < len(found) else None
        value = secrets.get((sec_type, bytes(key)))
        if sec_type in (1, 2):
            print('get', sec_type, value is not None)
        return value
    if event == _IRQ_SET_SECRET:
        sec_type, key, value = data
        if value is None:
            secrets.pop((sec_type, bytes(key)), None)
            print('delete', sec_type)
        else:
            secrets[(sec_type, bytes(key))] = bytes(value)
            print('set', sec_type, len(value))
        save()
        return True
    if event == _IRQ_PASSKEY_ACTION:
        conn, action, _ = data
        print('passkey_action', action)
        ble.gap_passkey(conn, action, PASSKEY)
    elif event == _IRQ_ENCRYPTION_UPDATE:
        print('encryption', *data[1:])
        events['enc'] = data[1]
    elif event in (_IRQ_CENTRAL_CONNECT, _IRQ_PERIPHERAL_CONNECT):
        print('connect')
        events['conn'] = data[0]
    elif event in (_IRQ_CENTRAL_DISCONNECT, _IRQ_PERIPHERAL_DISCONNECT):
        print('disconnect')
        events['disc'] = True


def wait(name, ms=8000):
    t0 = time.ticks_ms()
    while name not in events:
        if time.ticks_diff(time.ticks_ms(), t0) > ms:
            raise SystemExit('timeout waiting for ' + name)
        time.sleep_ms(5)
    return events.pop(name)


ble = bluetooth.BLE()
# The handler goes in before active(True): our IRK and the peers' IRKs load at start-up.
ble.irq(irq)
ble.config(bond=True, mitm=True, le_secure=True, io=0 if role == 'p' else 2)
ble.active(True)
if role == 'p':
    print('mac', binascii.hexlify(ble.config('mac')[1]).decode())
    ble.gap_advertise(20000, b'\x02\x01\x06')
    for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 1):
        print('advertising')
        wait('conn')
        wait('disc', 15000)
        ble.gap_advertise(20000, b'\x02\x01\x06')
else:
    ble.gap_connect(0, binascii.unhexlify(sys.argv[3]))
    conn = wait('conn')
    ble.gap_pair(conn)
    try:
        wait('enc')
    finally:
        ble.gap_disconnect(conn)
    wait('disc')
ble.active(False)
print('done')
'''


async def bond_round(link: VLink, script: str, p_file: str, c_file: str) -> tuple[list, list]:
    """One run of both firmware processes; their output lines."""
    peripheral, central = Firmware(), Firmware()
    await peripheral.start(script, link.paths[0], p_file, 'p')
    mac = (await peripheral.expect('mac')).split()[1]
    await peripheral.expect('advertising')
    await central.start(script, link.paths[1], c_file, 'c', mac)
    await central.expect('done', 20)
    await peripheral.expect('done', 20)
    assert await central.stop() == 0 and await peripheral.stop() == 0
    return peripheral.lines, central.lines


@run_async(120)
async def test_bond_survives_restart(tmp_path):
    script = tmp_path / 'bond.py'
    script.write_text(FW_SCRIPT)
    p_file, c_file = str(tmp_path / 'p.json'), str(tmp_path / 'c.json')
    async with VLink(count=2) as link:
        # 1. First meeting: passkey entry, then both sides store the bond.
        p_lines, c_lines = await bond_round(link, str(script), p_file, c_file)
        assert 'passkey_action 3' in p_lines and 'passkey_action 2' in c_lines
        assert 'encryption 1 1 1 16' in p_lines and 'encryption 1 1 1 16' in c_lines
        for lines in (p_lines, c_lines):
            # Our IRK (generated, 16 bytes) and both sides' security records (80 bytes).
            assert 'set 10 16' in lines and 'set 1 80' in lines and 'set 2 80' in lines
        p_saved = json.load(open(p_file))
        c_saved = json.load(open(c_file))
        assert {t for t, _, _ in p_saved} == {1, 2, 10} == {t for t, _, _ in c_saved}

        # 2. Both restart with only their files: encryption with the stored keys, no pairing.
        p_lines, c_lines = await bond_round(link, str(script), p_file, c_file)
        assert 'loaded 3' in p_lines and 'loaded 3' in c_lines
        assert not [ln for ln in p_lines + c_lines if ln.startswith('passkey_action')]
        assert 'encryption 1 1 1 16' in p_lines and 'encryption 1 1 1 16' in c_lines
        # The central looked up its record of the peer; the peripheral found the LTK it gave.
        assert 'get 2 True' in c_lines and 'get 1 True' in p_lines
        # The IRK is the one stored in round 1, not a new one.
        assert 'set 10 16' not in p_lines + c_lines

        # 3. The peripheral lost its store: it has no key for the central's bond, so the
        # link cannot be encrypted with the old keys.
        os.remove(p_file)
        p_lines, c_lines = await bond_round(link, str(script), p_file, c_file)
        assert 'loaded 0' in p_lines
        assert 'get 1 False' in p_lines
        assert 'encryption 1 1 1 16' not in c_lines
        assert any(ln.startswith('encryption 0') for ln in c_lines), c_lines


@run_async(90)
async def test_pairing_with_bumble_host(tmp_path):
    script = tmp_path / 'bond.py'
    script.write_text(FW_SCRIPT.replace("io=0 if role == 'p' else 2", 'io=3'))
    p_file = str(tmp_path / 'p.json')
    fw = Firmware()
    async with VLink(count=2) as link:
        transport = await open_transport(f'serial:{link.paths[1]},1000000')
        try:
            await fw.start(str(script), link.paths[0], p_file, 'p')
            mac = (await fw.expect('mac')).split()[1]
            await fw.expect('advertising')
            dev = Device.with_hci('host', link.controllers[1].public_address,
                                  transport.source, transport.sink)
            dev.pairing_config_factory = lambda _conn: PairingConfig(
                sc=True, mitm=False, bonding=True,
                delegate=PairingDelegate(PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT))
            await dev.power_on()
            address = link.controllers[0].public_address
            assert str(address).split('/')[0].replace(':', '').lower() == mac
            conn = await dev.connect(address, own_address_type=0)
            await fw.expect('connect')
            try:
                await asyncio.wait_for(conn.pair(), 10)
            except asyncio.TimeoutError:
                raise AssertionError('pairing timed out; firmware said:\n' + '\n'.join(fw.lines))
            assert conn.is_encrypted
            line = await fw.expect('encryption')
            # Just Works: encrypted and bonded, not authenticated; 16-byte key.
            assert line == 'encryption 1 0 1 16'
            await conn.disconnect()
            await fw.expect('done', 15)
            assert await fw.stop() == 0
            # The bond reached the script's store: both security records.
            saved = {t for t, _, _ in json.load(open(p_file))}
            assert {1, 2} <= saved
        finally:
            await transport.close()


@run_async(90)
async def test_repeat_pairing_with_bumble_host(tmp_path):
    script = tmp_path / 'bond.py'
    script.write_text(FW_SCRIPT.replace("io=0 if role == 'p' else 2", 'io=3'))
    p_file = str(tmp_path / 'p.json')
    fw = Firmware()
    async with VLink(count=2) as link:
        transport = await open_transport(f'serial:{link.paths[1]},1000000')
        try:
            await fw.start(str(script), link.paths[0], p_file, 'p', '2')
            await fw.expect('mac')
            await fw.expect('advertising')
            dev = Device.with_hci('host', link.controllers[1].public_address,
                                  transport.source, transport.sink)
            dev.pairing_config_factory = lambda _conn: PairingConfig(
                sc=True, mitm=False, bonding=True,
                delegate=PairingDelegate(PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT))
            await dev.power_on()
            address = link.controllers[0].public_address
            for attempt in range(2):
                if attempt:
                    await fw.expect('advertising')
                    # The host forgets the bond; the firmware still has it.
                    if dev.keystore is not None:
                        await dev.keystore.delete_all()
                conn = await dev.connect(address, own_address_type=0)
                await fw.expect('connect')
                try:
                    await asyncio.wait_for(conn.pair(), 10)
                except asyncio.TimeoutError:
                    raise AssertionError(f'pairing {attempt} timed out; firmware said:\n'
                                         + '\n'.join(fw.lines))
                assert conn.is_encrypted
                assert await fw.expect('encryption') == 'encryption 1 0 1 16'
                await conn.disconnect()
                await fw.expect('disconnect')
            await fw.expect('done', 15)
            assert await fw.stop() == 0
            lines = fw.lines
            # The old bond went once per record type, before the new records came.
            first_delete = lines.index('delete 1')
            assert lines.count('delete 1') == 1 and lines.count('delete 2') == 1, lines
            assert 'set 1 80' in lines[first_delete:] and 'set 2 80' in lines[first_delete:]
            saved = {t for t, _, _ in json.load(open(p_file))}
            assert {1, 2} <= saved
        finally:
            await transport.close()
