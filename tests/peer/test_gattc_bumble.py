"""The firmware's GATT client against an independent GATT server: a Bumble host `Device`.

Both sit on one virtual link (tests/harness/vlink.py): the firmware (build/unix/micropython,
MICROPYBTUART=hci0) connects to the Bumble device (hci1), runs a client script and prints
every event; the expectations are computed from the attributes Bumble's server holds, per
spec §6 (events 9–19, 21), §9 and §5.6.

Run: .cache/venv/bin/python -m pytest tests/peer
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'harness'))

from bumble import att, gatt  # noqa: E402
from bumble.core import UUID  # noqa: E402
from bumble.device import Device  # noqa: E402
from bumble.gatt import Characteristic, CharacteristicValue, Descriptor, Service  # noqa: E402
from bumble.transport import open_transport  # noqa: E402

from vlink import VLink  # noqa: E402

import fwproc  # noqa: E402
from fwproc import run_async  # noqa: E402



Props = Characteristic.Properties
RW = Characteristic.READABLE | Characteristic.WRITEABLE

SVC_A = UUID('FFE0')
SVC_32 = UUID('12345678')  # a 32-bit UUID: ATT carries it in its 128-bit form
SVC_128 = UUID('6e400001-b5a3-f393-e0a9-e50e24dcca9e')
SVC_SLOW = UUID('FFF0')
BIG_READ = bytes(range(240))
BIG_NOTIFY = bytes(range(200))

IRQ_PERIPHERAL_CONNECT = 7
IRQ_PERIPHERAL_DISCONNECT = 8
IRQ_GATTC_SERVICE_RESULT = 9
IRQ_GATTC_SERVICE_DONE = 10
IRQ_GATTC_CHARACTERISTIC_RESULT = 11
IRQ_GATTC_CHARACTERISTIC_DONE = 12
IRQ_GATTC_DESCRIPTOR_RESULT = 13
IRQ_GATTC_DESCRIPTOR_DONE = 14
IRQ_GATTC_READ_RESULT = 15
IRQ_GATTC_READ_DONE = 16
IRQ_GATTC_WRITE_DONE = 17
IRQ_GATTC_NOTIFY = 18
IRQ_GATTC_INDICATE = 19
IRQ_MTU_EXCHANGED = 21
IRQ_GET_SECRET = 29
IRQ_SET_SECRET = 30


def mp_uuid(u: UUID) -> str:
    """repr() of the bluetooth.UUID the firmware reports for a UUID that came over ATT."""
    b = u.to_pdu_bytes()
    if len(b) == 2:
        return 'UUID(0x%04x)' % int.from_bytes(b, 'little')
    h = b[::-1].hex()
    return "UUID('%s-%s-%s-%s-%s')" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


# ------------------------------------------------------------------------------ the firmware side
# Prints "STEP <name>" before each operation and "EV <n> <item>|<item>..." for each event
# (ints in decimal, memoryviews as b:<hex>, UUIDs as repr). Steps wait for their DONE event.
SCRIPT_COMMON = r'''
import bluetooth
import sys
import time

UUID = bluetooth.UUID
ble = bluetooth.BLE()
seen = []
ro_checked = []


def fmt(x):
    if isinstance(x, int):
        return str(x)
    if isinstance(x, UUID):
        return repr(x)
    if x is None:
        return 'None'
    return 'b:' + bytes(x).hex()


chain = []  # discoveries still to start from inside the handler, then a read


def irq(ev, data):
    if chain and ev in (12, 16):
        # Calls back into BLE from the DONE events (as MicroPython's ble_irq_calls test does):
        # the finished procedure must no longer block the next one.
        op = chain.pop(0)
        op()
    if ev in (15, 18, 19) and not ro_checked:
        try:
            data[2][0] = 0
            ro_checked.append('writable')
        except TypeError:
            ro_checked.append('read-only')
    seen.append((ev, tuple(UUID(x) if isinstance(x, UUID) else
                           (bytes(x) if isinstance(x, memoryview) else x) for x in data)))
    print('EV', ev, '|'.join(fmt(x) for x in data))


ble.irq(irq)


def wait_for(ev, start, timeout=10000):
    t0 = time.ticks_ms()
    while True:
        for i in range(start, len(seen)):
            if seen[i][0] == ev:
                return seen[i][1]
        if time.ticks_diff(time.ticks_ms(), t0) > timeout:
            print('TIMEOUT', ev)
            sys.exit(1)
        time.sleep_ms(5)


def step(name):
    print('STEP', name)
    return len(seen)


def err(name, f, *args):
    try:
        f(*args)
        print('ERR', name, 'none')
    except OSError as e:
        print('ERR', name, e.errno)


ble.active(True)
m = step('connect')
ble.gap_connect(0, b'\xf0\xf1\xf2\xf3\xf4\x01')
conn = wait_for(7, m)[0]
'''

SCRIPT_MAIN = SCRIPT_COMMON + r'''
m = step('mtu')
ble.gattc_exchange_mtu(conn)
wait_for(21, m)
err('mtu_again', ble.gattc_exchange_mtu, conn)

m = step('services')
ble.gattc_discover_services(conn)
wait_for(10, m)
services = [d for ev, d in seen[m:] if ev == 9]

for u in (UUID(0xffe0), UUID('6e400001-b5a3-f393-e0a9-e50e24dcca9e'),
          UUID(b'\x78\x56\x34\x12'), UUID(0xeeee)):
    m = step('svc_by_uuid ' + repr(u))
    ble.gattc_discover_services(conn, u)
    wait_for(10, m)

for _, start, end, _ in services:
    m = step('chars %d %d' % (start, end))
    ble.gattc_discover_characteristics(conn, start, end)
    wait_for(12, m)

m = step('chars_all')
ble.gattc_discover_characteristics(conn, 1, 0xffff)
wait_for(12, m)
chars = {}
for ev, d in seen[m:]:
    if ev == 11:
        chars[repr(d[4])] = d[1:4]  # end_handle, value_handle, properties

m = step('chars_filter')
ble.gattc_discover_characteristics(conn, 1, 0xffff, UUID(0xffe2))
wait_for(12, m)

m = step('chars_busy')
ble.gattc_discover_characteristics(conn, 1, 0xffff)
err('busy', ble.gattc_discover_characteristics, conn, 1, 0xffff)
wait_for(12, m)

end2, vh2, _ = chars['UUID(0xffe2)']
m = step('descriptors %d %d' % (vh2, end2))
ble.gattc_discover_descriptors(conn, vh2, end2)
wait_for(14, m)
cccd = [d[1] for ev, d in seen[m:] if ev == 13 and d[2] == UUID(0x2902)][0]
err('descriptors_empty', ble.gattc_discover_descriptors, conn, vh2, vh2)

vh1 = chars['UUID(0xffe1)'][1]
m = step('read %d' % vh1)
ble.gattc_read(conn, vh1)
wait_for(16, m)

m = step('write1 %d' % vh1)
ble.gattc_write(conn, vh1, b'mode1', 1)
wait_for(17, m)

m = step('write0 %d' % vh1)
ble.gattc_write(conn, vh1, b'mode0')
ble.gattc_read(conn, vh1)
wait_for(16, m)

m = step('write_long %d' % vh1)
ble.gattc_write(conn, vh1, bytes(300), 1)
wait_for(17, m)

vh_big = chars['UUID(0xffe5)'][1]
m = step('read_big %d' % vh_big)
ble.gattc_read(conn, vh_big)
wait_for(16, m)

m = step('notify %d' % cccd)
ble.gattc_write(conn, cccd, b'\x01\x00', 1)
wait_for(17, m)
wait_for(18, m)
t0 = time.ticks_ms()
while len([1 for ev, _ in seen[m:] if ev == 18]) < 2 and time.ticks_diff(time.ticks_ms(), t0) < 5000:
    time.sleep_ms(5)

m = step('indicate %d' % cccd)
ble.gattc_write(conn, cccd, b'\x02\x00', 1)
wait_for(17, m)
wait_for(19, m)

for name in ('UUID(0xffe3)', 'UUID(0xffe4)'):
    vh = chars[name][1]
    m = step('read_error %d' % vh)
    ble.gattc_read(conn, vh)
    wait_for(16, m)
m = step('read_error 4000')
ble.gattc_read(conn, 4000)
wait_for(16, m)

vh128 = chars["UUID('6e400003-b5a3-f393-e0a9-e50e24dcca9e')"][1]
m = step('write_error %d' % vh128)
ble.gattc_write(conn, vh128, b'x', 1)
wait_for(17, m)

m = step('chain')
chain[:] = [lambda: ble.gattc_discover_characteristics(conn, 14, 26, UUID(0xffe1)),
            lambda: ble.gattc_read(conn, vh1),
            lambda: ble.gattc_read(conn, vh1)]
ble.gattc_discover_characteristics(conn, 14, 26, UUID(0xffe1))
t0 = time.ticks_ms()
while (chain or len([1 for ev, _ in seen[m:] if ev == 16]) < 2) and time.ticks_diff(time.ticks_ms(), t0) < 5000:
    time.sleep_ms(5)

step('bad_mode')
err('mode2', ble.gattc_write, conn, vh1, b'x', 2)
err('mode-1', ble.gattc_write, conn, vh1, b'x', -1)
err('unknown_conn', ble.gattc_read, conn + 7, vh1)

m = step('disconnect')
ble.gap_disconnect(conn)
wait_for(8, m)
time.sleep_ms(200)
print('RO', ro_checked)
print('END')
'''

SCRIPT_DISCONNECT = SCRIPT_COMMON + r'''
m = step('find_slow')
ble.gattc_discover_characteristics(conn, 1, 0xffff, UUID(0xfff1))
wait_for(12, m)
vh = [d[2] for ev, d in seen[m:] if ev == 11][0]

m = step('read_slow %d' % vh)
ble.gattc_read(conn, vh)
wait_for(16, m, 15000)
wait_for(8, m, 15000)
time.sleep_ms(1000)
print('COUNT', [ev for ev, _ in seen[m:]])
err('read_after', ble.gattc_read, conn, vh)
ble.active(False)
err('read_inactive', ble.gattc_read, conn, vh)
err('discover_inactive', ble.gattc_discover_services, conn)
err('write_inactive', ble.gattc_write, conn, vh, b'x', 1)
err('mtu_inactive', ble.gattc_exchange_mtu, conn)
print('END')
'''


def parse(output: str) -> tuple[dict[str, list[tuple[int, list[str]]]], dict[str, str], list[str]]:
    """Events grouped by step, ERR lines by name, and other lines."""
    steps: dict[str, list[tuple[int, list[str]]]] = {}
    errs: dict[str, str] = {}
    other: list[str] = []
    # Before the first step: the key-store lookups of active(True) (spec §11).
    current = 'startup'
    steps[current] = []
    for line in output.splitlines():
        if line.startswith('STEP '):
            current = line[5:]
            steps[current] = []
        elif line.startswith('EV '):
            _, ev, *rest = line.split(' ', 2)
            items = rest[0].split('|') if rest and rest[0] else []
            steps[current].append((int(ev), items))
        elif line.startswith('ERR '):
            _, name, value = line.split(' ', 2)
            errs[name] = value
        else:
            other.append(line)
    return steps, errs, other


# ------------------------------------------------------------------------------ the Bumble side
class Peer:
    """A Bumble device with the GATT server under test, advertising on the link."""

    def __init__(self, link: VLink) -> None:
        self.link = link
        self.writes: list[bytes] = []
        self.confirmed = asyncio.Event()
        self.subscriptions: list[tuple[bool, bool]] = []
        self.read_started = asyncio.Event()
        self.release_read = asyncio.get_running_loop().create_future()
        self.tasks: list[asyncio.Task] = []

        c1 = Characteristic('FFE1', Props.READ | Props.WRITE | Props.WRITE_WITHOUT_RESPONSE, RW,
                            CharacteristicValue(read=lambda _c: self.value1, write=self._on_write))
        self.value1 = b'hello'
        self.c2 = Characteristic(
            'FFE2', Props.READ | Props.NOTIFY | Props.INDICATE, Characteristic.READABLE, b'c2',
            descriptors=[Descriptor(gatt.GATT_CHARACTERISTIC_USER_DESCRIPTION_DESCRIPTOR,
                                    Descriptor.READABLE, b'user')])
        self.c2.on('subscription', self._on_subscription)
        c3 = Characteristic('FFE3', Props.READ,
                            Characteristic.READABLE | Characteristic.READ_REQUIRES_AUTHORIZATION, b'x')

        def not_permitted(_conn):
            raise att.ATT_Error(att.ATT_READ_NOT_PERMITTED_ERROR)

        c4 = Characteristic('FFE4', Props.WRITE, Characteristic.WRITEABLE,
                            CharacteristicValue(read=not_permitted))
        c5 = Characteristic('FFE5', Props.READ, Characteristic.READABLE, BIG_READ)
        svc_a = Service(SVC_A, [c1, self.c2, c3, c4, c5])

        c32 = Characteristic('6e400002-b5a3-f393-e0a9-e50e24dcca9e', Props.READ | Props.WRITE,
                             RW, b'32')
        svc_32 = Service(SVC_32, [c32])

        c128 = Characteristic('6e400003-b5a3-f393-e0a9-e50e24dcca9e', Props.WRITE,
                              Characteristic.WRITEABLE | Characteristic.WRITE_REQUIRES_AUTHORIZATION,
                              b'')
        c128b = Characteristic('2A37', Props.NOTIFY, Characteristic.READABLE, b'')
        svc_128 = Service(SVC_128, [c128, c128b])

        slow = Characteristic('FFF1', Props.READ, Characteristic.READABLE,
                              CharacteristicValue(read=self._slow_read))
        svc_slow = Service(SVC_SLOW, [slow])
        self.services = [svc_a, svc_32, svc_128, svc_slow]

    def _on_write(self, _conn, value: bytes) -> None:
        self.writes.append(bytes(value))
        self.value1 = bytes(value)

    def _on_subscription(self, bearer, notify: bool, indicate: bool) -> None:
        self.subscriptions.append((notify, indicate))
        if notify:
            self.tasks.append(asyncio.ensure_future(self._notify(bearer)))
        if indicate:
            self.tasks.append(asyncio.ensure_future(self._indicate(bearer)))

    async def _notify(self, conn) -> None:
        await self.device.notify_subscriber(conn, self.c2, b'notify-1')
        await self.device.notify_subscriber(conn, self.c2, BIG_NOTIFY)

    async def _indicate(self, conn) -> None:
        await self.device.indicate_subscriber(conn, self.c2, b'indicate-1')
        self.confirmed.set()

    async def _slow_read(self, _conn) -> bytes:
        self.read_started.set()
        return await self.release_read

    async def start(self) -> None:
        self.transport = await open_transport(f'serial:{self.link.paths[1]},1000000')
        controller = self.link.controllers[1]
        self.device = Device.with_hci('peer', controller.public_address,
                                      self.transport.source, self.transport.sink)
        for s in self.services:
            self.device.add_service(s)
        await self.device.power_on()
        await self.device.start_advertising(auto_restart=False, own_address_type=0)

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        if not self.release_read.done():
            self.release_read.set_result(b'late')
        await self.transport.close()

    # Expectations, from what the server holds.
    def attributes(self):
        return list(self.device.gatt_server.attributes)

    def service_results(self, uuid: UUID | None = None):
        out = []
        for a in self.attributes():
            if isinstance(a, Service) and (uuid is None or a.uuid == uuid):
                out.append([str(a.handle), str(a.end_group_handle), mp_uuid(a.uuid)])
        return out

    def characteristic_results(self, start: int, end: int, uuid: str | None = None):
        decls = [a for a in self.attributes() if isinstance(a, gatt.CharacteristicDeclaration)
                 and start <= a.handle <= end]
        out = []
        for i, d in enumerate(decls):
            char_end = decls[i + 1].handle - 1 if i + 1 < len(decls) else end
            u = mp_uuid(d.characteristic.uuid)
            if uuid is None or u == uuid:
                out.append([str(char_end), str(d.value_handle),
                            str(int(d.characteristic.properties)), u])
        return out

    def descriptor_results(self, start: int, end: int):
        return [[str(a.handle), mp_uuid(a.type)] for a in self.attributes()
                if start < a.handle <= end]


async def run_firmware(link: VLink, script: str, tmp_path, timeout: float = 40.0) -> str:
    return await fwproc.run_firmware(link.paths[0], script, tmp_path / 'client.py', timeout)


def events(steps, name, *wanted):
    return [items for ev, items in steps[name] if ev in wanted]


def single(steps, name, ev):
    got = events(steps, name, ev)
    assert len(got) == 1, (name, steps[name])
    return got[0]


# ------------------------------------------------------------------------------ tests
@run_async(90)
async def test_gatt_client_against_bumble_server(tmp_path):
    async with VLink(count=2) as link:
        peer = Peer(link)
        await peer.start()
        try:
            text = await run_firmware(link, SCRIPT_MAIN, tmp_path)
        finally:
            await peer.close()
    steps, errs, other = parse(text)
    # active(True) with the handler installed: NimBLE asks for the peers' IRKs, then ours, and
    # as the script has none, offers a new 16-byte one (which this script doesn't keep).
    startup = steps['startup']
    assert startup[:2] == [(IRQ_GET_SECRET, ['2', '0', 'None']),
                           (IRQ_GET_SECRET, ['10', '0', 'b:' + b'irk'.hex()])], startup
    assert len(startup) == 3 and startup[2][0] == IRQ_SET_SECRET, startup
    assert startup[2][1][:2] == ['10', 'b:' + b'irk'.hex()] and len(startup[2][1][2]) == 2 + 32
    conn = single(steps, 'connect', IRQ_PERIPHERAL_CONNECT)[0]

    # MTU: ours (256) against Bumble's 517; a second exchange is refused.
    assert single(steps, 'mtu', IRQ_MTU_EXCHANGED) == [conn, '256']
    assert errs['mtu_again'] == '114'

    # All primary services, in order, with their real end handles; then DONE(status 0).
    all_services = peer.service_results()
    assert mp_uuid(SVC_32).startswith("UUID('12345678-0000-1000-8000-00805f9b34fb")
    assert events(steps, 'services', IRQ_GATTC_SERVICE_RESULT) == [[conn] + s for s in all_services]
    assert steps['services'][-1] == (IRQ_GATTC_SERVICE_DONE, [conn, '0'])

    # By UUID: 16- and 128-bit; the 32-bit UUID is searched in its 128-bit form (which is
    # how ATT holds it) and reported as NimBLE echoes it; an absent UUID gives only DONE(0).
    svc_a, svc_32, svc_128 = (peer.service_results(u)[0] for u in (SVC_A, SVC_32, SVC_128))
    assert steps['svc_by_uuid UUID(0xffe0)'] == [
        (IRQ_GATTC_SERVICE_RESULT, [conn] + svc_a), (IRQ_GATTC_SERVICE_DONE, [conn, '0'])]
    assert steps["svc_by_uuid UUID('6e400001-b5a3-f393-e0a9-e50e24dcca9e')"] == [
        (IRQ_GATTC_SERVICE_RESULT, [conn] + svc_128), (IRQ_GATTC_SERVICE_DONE, [conn, '0'])]
    assert steps['svc_by_uuid UUID(0x12345678)'] == [
        (IRQ_GATTC_SERVICE_RESULT, [conn] + svc_32), (IRQ_GATTC_SERVICE_DONE, [conn, '0'])]
    assert steps['svc_by_uuid UUID(0xeeee)'] == [(IRQ_GATTC_SERVICE_DONE, [conn, '0'])]

    # Characteristics per service: lag-by-one end handles, the last one ending at the service
    # end passed in (spec §9.1); results all before DONE(0).
    for start, end, _ in all_services:
        name = f'chars {start} {end}'
        want = peer.characteristic_results(int(start), int(end))
        assert steps[name] == [(IRQ_GATTC_CHARACTERISTIC_RESULT, [conn] + r) for r in want] + [
            (IRQ_GATTC_CHARACTERISTIC_DONE, [conn, '0'])], name
    # Over the whole range, the last characteristic ends at 65535, not at its service's end.
    want_all = peer.characteristic_results(1, 0xffff)
    assert want_all[-1][0] == '65535'
    assert events(steps, 'chars_all', IRQ_GATTC_CHARACTERISTIC_RESULT) == [[conn] + r for r in want_all]
    # Filtered: only the match, its end still bounded by the next (unreported) declaration.
    want_f = peer.characteristic_results(1, 0xffff, 'UUID(0xffe2)')
    assert len(want_f) == 1 and want_f[0][0] != '65535'
    assert steps['chars_filter'] == [(IRQ_GATTC_CHARACTERISTIC_RESULT, [conn] + want_f[0]),
                                     (IRQ_GATTC_CHARACTERISTIC_DONE, [conn, '0'])]
    # One discovery at a time.
    assert errs['busy'] == '16'
    assert events(steps, 'chars_busy', IRQ_GATTC_CHARACTERISTIC_DONE) == [[conn, '0']]
    assert events(steps, 'chars_busy', IRQ_GATTC_CHARACTERISTIC_RESULT) == [[conn] + r for r in want_all]

    # Descriptors of FFE2 (value handle .. end): everything after the value handle: the user
    # description and the CCCD (in the order Bumble lays them out).
    c2_end, c2_vh, c2_props, _ = want_f[0]
    assert int(c2_props) == int(Props.READ | Props.NOTIFY | Props.INDICATE)
    want_d = peer.descriptor_results(int(c2_vh), int(c2_end))
    assert sorted(d[1] for d in want_d) == ['UUID(0x2901)', 'UUID(0x2902)']
    assert steps[f'descriptors {c2_vh} {c2_end}'] == [
        (IRQ_GATTC_DESCRIPTOR_RESULT, [conn] + d) for d in want_d] + [
        (IRQ_GATTC_DESCRIPTOR_DONE, [conn, '0'])]
    # start == end: nothing after start to ask for; NimBLE refuses with EINVAL.
    assert errs['descriptors_empty'] == '22'

    # Read: RESULT then DONE(conn, handle, 0).
    vh1 = next(r[1] for r in want_all if r[3] == 'UUID(0xffe1)')
    assert steps[f'read {vh1}'] == [(IRQ_GATTC_READ_RESULT, [conn, vh1, 'b:' + b'hello'.hex()]),
                                    (IRQ_GATTC_READ_DONE, [conn, vh1, '0'])]
    # Write with response: WRITE_DONE(conn, handle, 0); without: no event, but it arrived.
    assert steps[f'write1 {vh1}'] == [(IRQ_GATTC_WRITE_DONE, [conn, vh1, '0'])]
    assert steps[f'write0 {vh1}'] == [(IRQ_GATTC_READ_RESULT, [conn, vh1, 'b:' + b'mode0'.hex()]),
                                      (IRQ_GATTC_READ_DONE, [conn, vh1, '0'])]
    # A write longer than ATT_MTU - 3 is cut to 253 bytes, still one Write Request.
    assert steps[f'write_long {vh1}'] == [(IRQ_GATTC_WRITE_DONE, [conn, vh1, '0'])]
    assert peer.writes == [b'mode1', b'mode0', bytes(253)]

    # A 240-byte value (several ACL fragments) arrives whole.
    vh_big = next(r[1] for r in want_all if r[3] == 'UUID(0xffe5)')
    assert steps[f'read_big {vh_big}'] == [
        (IRQ_GATTC_READ_RESULT, [conn, vh_big, 'b:' + BIG_READ.hex()]),
        (IRQ_GATTC_READ_DONE, [conn, vh_big, '0'])]

    # Subscribing through the CCCD: notifications, then an indication NimBLE confirms.
    cccd = next(d[0] for d in want_d if d[1] == 'UUID(0x2902)')
    notify = steps[f'notify {cccd}']
    assert (IRQ_GATTC_WRITE_DONE, [conn, cccd, '0']) in notify
    assert events(steps, f'notify {cccd}', IRQ_GATTC_NOTIFY) == [
        [conn, c2_vh, 'b:' + b'notify-1'.hex()], [conn, c2_vh, 'b:' + BIG_NOTIFY.hex()]]
    indicate = steps[f'indicate {cccd}']
    assert (IRQ_GATTC_WRITE_DONE, [conn, cccd, '0']) in indicate
    assert events(steps, f'indicate {cccd}', IRQ_GATTC_INDICATE) == [
        [conn, c2_vh, 'b:' + b'indicate-1'.hex()]]
    assert peer.confirmed.is_set(), 'the indication was not confirmed'
    assert peer.subscriptions == [(True, False), (False, True)]

    # Failed reads: no RESULT, DONE with the ATT error's handle and 0x100 + ATT code.
    vh3 = next(r[1] for r in want_all if r[3] == 'UUID(0xffe3)')
    vh4 = next(r[1] for r in want_all if r[3] == 'UUID(0xffe4)')
    assert steps[f'read_error {vh3}'] == [(IRQ_GATTC_READ_DONE, [conn, vh3, str(0x100 + 0x08)])]
    assert steps[f'read_error {vh4}'] == [(IRQ_GATTC_READ_DONE, [conn, vh4, str(0x100 + 0x02)])]
    assert steps['read_error 4000'] == [(IRQ_GATTC_READ_DONE, [conn, '4000', str(0x100 + 0x01)])]
    vh128 = next(r[1] for r in want_all if r[3] == "UUID('6e400003-b5a3-f393-e0a9-e50e24dcca9e')")
    assert steps[f'write_error {vh128}'] == [(IRQ_GATTC_WRITE_DONE, [conn, vh128, str(0x100 + 0x08)])]

    # Operations started from inside the handler's DONE events.
    r1 = [conn] + peer.characteristic_results(14, 26, 'UUID(0xffe1)')[0]
    assert steps['chain'] == [
        (IRQ_GATTC_CHARACTERISTIC_RESULT, r1), (IRQ_GATTC_CHARACTERISTIC_DONE, [conn, '0']),
        (IRQ_GATTC_CHARACTERISTIC_RESULT, r1), (IRQ_GATTC_CHARACTERISTIC_DONE, [conn, '0']),
        (IRQ_GATTC_READ_RESULT, [conn, vh1, 'b:' + bytes(253).hex()]),
        (IRQ_GATTC_READ_DONE, [conn, vh1, '0']),
        (IRQ_GATTC_READ_RESULT, [conn, vh1, 'b:' + bytes(253).hex()]),
        (IRQ_GATTC_READ_DONE, [conn, vh1, '0'])]

    # Argument errors and an unknown connection.
    assert errs['mode2'] == '22' and errs['mode-1'] == '22'
    assert errs['unknown_conn'] == '107'
    assert events(steps, 'disconnect', IRQ_PERIPHERAL_DISCONNECT)
    # Data memoryviews are read-only.
    assert "RO ['read-only']" in other


@run_async(60)
async def test_disconnect_during_pending_read_gives_one_read_done(tmp_path):
    async with VLink(count=2) as link:
        peer = Peer(link)
        await peer.start()

        async def drop_link_when_read_starts():
            await peer.read_started.wait()
            conn = next(iter(peer.device.connections.values()))
            await conn.disconnect()

        dropper = asyncio.ensure_future(drop_link_when_read_starts())
        try:
            text = await run_firmware(link, SCRIPT_DISCONNECT, tmp_path)
        finally:
            dropper.cancel()
            await peer.close()
    steps, errs, _ = parse(text)
    conn = single(steps, 'connect', IRQ_PERIPHERAL_CONNECT)[0]
    vh = next(name.split()[1] for name in steps if name.startswith('read_slow'))
    evs = steps[f'read_slow {vh}']
    # NimBLE fails the procedure (BLE_HS_ENOTCONN, 7; handle 0: no ATT error) before it
    # reports the disconnection; exactly one READ_DONE and no READ_RESULT.
    assert [ev for ev, _ in evs] == [IRQ_GATTC_READ_DONE, IRQ_PERIPHERAL_DISCONNECT], evs
    assert evs[0][1] == [conn, '0', '7']
    assert errs['read_after'] == '107'
    # Inactive: ENODEV, except gattc_exchange_mtu, which has no active check and gets
    # NimBLE's own answer (spec §4, §16 item 16).
    assert (errs['read_inactive'], errs['discover_inactive'], errs['write_inactive']) == ('19',) * 3
    assert errs['mtu_inactive'] == '107'
