"""The firmware's L2CAP channels against an independent host: a Bumble `Device`.

Both sit on one virtual link (tests/harness/vlink.py). The firmware (hci0) connects to the
Bumble device (hci1), which serves an LE credit-based channel, and exchanges data with it
(spec §5.7, §6 events 23–26, §10):

- a connect to a PSM nobody serves ends in `_IRQ_L2CAP_DISCONNECT` with a non-zero status,
  and frees the channel slot for the next connect;
- SDUs larger than the peer's MPS (Bumble asks for 100-byte segments) arrive whole;
- data Bumble sends is held until the script reads it: Bumble runs out of credits while the
  script does not read, and gets them back once it has;
- `l2cap_disconnect` closes the channel on both sides.

Run: .cache/venv/bin/python -m pytest tests/peer
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'harness'))

from bumble import l2cap  # noqa: E402
from bumble.device import Device  # noqa: E402
from bumble.transport import open_transport  # noqa: E402

from vlink import VLink  # noqa: E402

import fwproc  # noqa: E402
from fwproc import FIRMWARE, Radio, run_async  # noqa: E402
from bumble.hci import Address  # noqa: E402

# The Bumble central's random address (unused: it connects with its public one).
CENTRAL_RANDOM_ADDRESS = Address('F0:00:00:00:00:02', Address.RANDOM_DEVICE_ADDRESS)



PSM = 0x85
UNSERVED_PSM = 0x99
PEER_MTU = 1000
PEER_MPS = 100
OUR_MTU = 400
UP_SDUS = [bytes((i * 7 + j) & 0xFF for j in range(n)) for i, n in
           enumerate([700, 1, 284, 285, 800, 399, 650, 123])]
DOWN = bytes((j * 13 + 5) & 0xFF for j in range(3000))


SCRIPT = r'''
import bluetooth
import hashlib
import sys
import time

ble = bluetooth.BLE()
seen = []


def irq(ev, data):
    seen.append((ev, list(data)))  # a copy: the tuple itself is reused
    if ev != 25:
        print('EV', ev, '|'.join(str(x) for x in data))


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


def err(name, f, *args):
    try:
        r = f(*args)
        print('ERR', name, 'none', r)
    except OSError as e:
        print('ERR', name, e.errno)


ble.active(True)
m = len(seen)
ble.gap_connect(0, b'\xf0\xf1\xf2\xf3\xf4\x01')
conn = wait_for(7, m)[0]

print('STEP unserved')
m = len(seen)
ble.l2cap_connect(conn, %(unserved)d, %(mtu)d)
wait_for(24, m)

print('STEP connect')
m = len(seen)
ble.l2cap_connect(conn, %(psm)d, %(mtu)d)
_, cid, psm, our_mtu, peer_mtu = wait_for(23, m)
err('send_too_big', ble.l2cap_send, conn, cid, bytes(2 * our_mtu + 1))
err('send_wrong_cid', ble.l2cap_send, conn, cid + 1, b'x')
err('recv_wrong_conn', ble.l2cap_recvinto, conn + 1, cid, None)

print('STEP up')
stalls = 0
for i, n in enumerate(%(up_sizes)r):
    sdu = bytes((i * 7 + j) & 0xFF for j in range(n))
    m = len(seen)
    if not ble.l2cap_send(conn, cid, sdu):
        stalls += 1
        wait_for(26, m)
print('STALLS', stalls)

print('STEP hold')
m = len(seen)
wait_for(25, m, 15000)
print('PENDING', ble.l2cap_recvinto(conn, cid, None))
time.sleep_ms(1500)
print('PENDING_AFTER_HOLD', ble.l2cap_recvinto(conn, cid, None))
print('HELD')

print('STEP drain')
h = hashlib.sha256()
got = 0
buf = bytearray(150)
t0 = time.ticks_ms()
while got < %(down_len)d and time.ticks_diff(time.ticks_ms(), t0) < 15000:
    n = ble.l2cap_recvinto(conn, cid, buf)
    if n:
        h.update(buf[:n])
        got += n
    else:
        time.sleep_ms(5)
print('DOWN', got, h.digest().hex())

print('STEP close')
m = len(seen)
ble.l2cap_disconnect(conn, cid)
wait_for(24, m)
err('send_closed', ble.l2cap_send, conn, cid, b'x')
m = len(seen)
ble.gap_disconnect(conn)
wait_for(8, m)
print('END')
'''


class Peer:
    def __init__(self, link: VLink) -> None:
        self.link = link
        self.received: list[bytes] = []
        self.channel: l2cap.LeCreditBasedChannel | None = None
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self.credits_while_held: int | None = None
        self.tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        self.transport = await open_transport(fwproc.bumble_transport(self.link.paths[1]))
        controller = self.link.controllers[1]
        self.device = Device.with_hci('peer', controller.public_address,
                                      self.transport.source, self.transport.sink)
        await self.device.power_on()
        self.device.create_l2cap_server(
            spec=l2cap.LeCreditBasedChannelSpec(psm=PSM, mtu=PEER_MTU, mps=PEER_MPS,
                                                max_credits=8),
            handler=self._on_channel)
        await self.device.start_advertising(auto_restart=False, own_address_type=0)

    def _on_channel(self, channel: l2cap.LeCreditBasedChannel) -> None:
        self.channel = channel
        channel.sink = self._on_sdu
        channel.on('close', self.closed.set)
        self.opened.set()

    def _on_sdu(self, sdu: bytes) -> None:
        self.received.append(bytes(sdu))
        if sum(map(len, self.received)) == sum(map(len, UP_SDUS)):
            self.tasks.append(asyncio.ensure_future(self._send_down()))

    async def _send_down(self) -> None:
        assert self.channel is not None
        self.channel.write(DOWN)
        # The script holds what arrived for 1.5 s: our credits run out meanwhile.
        await asyncio.sleep(0.8)
        self.credits_while_held = self.channel.credits
        await self.channel.drain()

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await self.transport.close()


async def run_firmware(link: VLink, script: str, tmp_path, timeout: float = 60.0) -> str:
    return await fwproc.run_firmware(link.paths[0], script, tmp_path / 'l2cap_client.py', timeout)


def parse(text: str) -> dict[str, list[str]]:
    steps: dict[str, list[str]] = {'': []}
    current = ''
    for line in text.splitlines():
        if line.startswith('STEP '):
            current = line[5:]
            steps[current] = []
        else:
            steps[current].append(line)
    return steps


@run_async(120)
async def test_l2cap_channel_with_bumble(tmp_path):
    script = SCRIPT % {'psm': PSM, 'unserved': UNSERVED_PSM, 'mtu': OUR_MTU,
                       'up_sizes': [len(s) for s in UP_SDUS], 'down_len': len(DOWN)}
    async with VLink(count=2) as link:
        peer = Peer(link)
        await peer.start()
        try:
            text = await run_firmware(link, script, tmp_path)
            await asyncio.wait_for(peer.closed.wait(), 5)
        finally:
            await peer.close()
    steps = parse(text)

    # A PSM nobody serves: DISCONNECT(conn, cid, psm, status != 0), and the slot is free
    # again (the next connect works).
    ev = [line.split(' ', 2) for line in steps['unserved'] if line.startswith('EV ')]
    assert len(ev) == 1 and ev[0][1] == '24', steps['unserved']
    conn, _cid, psm, status = ev[0][2].split('|')
    assert psm == str(UNSERVED_PSM) and status != '0'

    # CONNECT(conn, cid, psm, our_mtu, peer_mtu), as Bumble's channel sees it.
    ev = [line for line in steps['connect'] if line.startswith('EV ')]
    assert len(ev) == 1 and ev[0].startswith('EV 23 '), steps['connect']
    conn2, cid, psm, our_mtu, peer_mtu = ev[0][6:].split('|')
    assert (conn2, psm, our_mtu, peer_mtu) == (conn, str(PSM), str(OUR_MTU), str(PEER_MTU))
    assert peer.channel is not None and int(cid) == peer.channel.destination_cid
    assert 'ERR send_too_big 22' in steps['connect']
    assert 'ERR send_wrong_cid 22' in steps['connect']
    assert 'ERR recv_wrong_conn 22' in steps['connect']

    # Every SDU arrived whole and in order, though each went out in 100-byte segments.
    assert peer.received == UP_SDUS

    # While the script held the first SDU, Bumble was out of credits and nothing more came.
    hold = steps['hold']
    pending = int(next(line for line in hold if line.startswith('PENDING '))[8:])
    after = int(next(line for line in hold if line.startswith('PENDING_AFTER_HOLD '))[19:])
    assert pending == OUR_MTU and after == OUR_MTU, hold
    assert peer.credits_while_held == 0

    # After draining, the whole 3000 bytes arrived, in order.
    down = next(line for line in steps['drain'] if line.startswith('DOWN '))
    assert down == f'DOWN {len(DOWN)} {hashlib.sha256(DOWN).hexdigest()}'

    # l2cap_disconnect: DISCONNECT(conn, cid, psm, 0); the channel is gone afterwards.
    close = steps['close']
    assert f'EV 24 {conn}|{cid}|{PSM}|0' in close, close
    assert 'ERR send_closed 22' in close


# --------------------------------------------------------------------------- listening side
LISTEN_PSM = 0x87
LISTEN_MTU = 300

LISTEN_SCRIPT = r'''
import bluetooth
import time

ble = bluetooth.BLE()
accepts = []
closed = []
rx = []
chan = []
ready = []


def irq(ev, data):
    if ev == 22:
        accepts.append(data[0])
        print('EV', ev, '|'.join(str(x) for x in data))
        # The first request is refused with "unknown PSM" (NimBLE's code 8), the rest taken.
        return 8 if len(accepts) == 1 else 0
    if ev == 23:
        chan[:] = [data[0], data[1]]
        print('EV', ev, '|'.join(str(x) for x in data))
    elif ev == 24:
        closed.append(data[3])
        print('EV', ev, '|'.join(str(x) for x in data))
    elif ev == 25:
        # Read inside the handler: credits go back once it returns.
        n = ble.l2cap_recvinto(data[0], data[1], None)
        buf = bytearray(n)
        ble.l2cap_recvinto(data[0], data[1], buf)
        rx.append(bytes(buf))
    elif ev == 26:
        ready.append(data[2])
    elif ev == 2:
        closed.append('gap')


ble.irq(irq)
ble.active(True)
ble.l2cap_listen(%(psm)d, %(mtu)d)
ble.gap_advertise(20000, b'\x02\x01\x06')
print('mac', ':'.join('%%02X' %% b for b in ble.config('mac')[1]))
print('advertising')
t0 = time.ticks_ms()
while 'gap' not in closed and time.ticks_diff(time.ticks_ms(), t0) < 30000:
    while rx:
        data = rx.pop(0)
        del ready[:]
        if not ble.l2cap_send(chan[0], chan[1], data):
            t1 = time.ticks_ms()
            while not ready and time.ticks_diff(time.ticks_ms(), t1) < 5000:
                time.sleep_ms(5)
    time.sleep_ms(5)
print('CLOSED', closed)
print('END')
'''


@pytest.mark.parametrize('radio', ['vlink', 'rootcanal'])
@run_async(120)
async def test_l2cap_listener_with_bumble(tmp_path, radio):
    path = tmp_path / 'l2cap_listener.py'
    path.write_text(LISTEN_SCRIPT % {'psm': LISTEN_PSM, 'mtu': LISTEN_MTU})
    async with Radio(radio) as link:
        env = dict(os.environ, MICROPYBTUART=link.paths[0])
        proc = await asyncio.create_subprocess_exec(
            FIRMWARE, str(path), env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL)
        lines: list[str] = []
        try:
            while 'advertising' not in lines:
                line = await asyncio.wait_for(proc.stdout.readline(), 10)
                assert line, 'firmware ended early:\n' + '\n'.join(lines)
                lines.append(line.decode().rstrip())
            transport = await open_transport(fwproc.bumble_transport(link.paths[1]))
            try:
                dev = Device.with_hci('central', link.public_address(1) or CENTRAL_RANDOM_ADDRESS,
                                      transport.source, transport.sink)
                # Reads the controller's public address (connect uses it: own_address_type=0).
                await dev.power_on()
                mac = next(line.split()[1] for line in lines if line.startswith('mac '))
                fw_address = link.public_address(0) or Address(mac, Address.PUBLIC_DEVICE_ADDRESS)
                assert str(fw_address).split('/')[0] == mac, (fw_address, mac)
                conn = await dev.connect(fw_address, own_address_type=0)
                spec = l2cap.LeCreditBasedChannelSpec(psm=LISTEN_PSM, mtu=500, mps=200,
                                                      max_credits=4)
                # Refused by the script's ACCEPT handler: NimBLE answers "unknown PSM".
                with pytest.raises(l2cap.L2capError) as refused:
                    await dev.create_l2cap_channel(conn, spec)
                assert refused.value.error_code == 0x0002
                # Accepted twice in a row: the listener is reused after each close.
                for round_ in range(2):
                    channel = await dev.create_l2cap_channel(conn, spec)
                    echoed = bytearray()
                    channel.sink = echoed.extend
                    payload = bytes((round_ * 31 + j) & 0xFF for j in range(LISTEN_MTU))
                    for _ in range(3):
                        channel.write(payload)
                    for _ in range(200):
                        if len(echoed) >= 3 * LISTEN_MTU:
                            break
                        await asyncio.sleep(0.02)
                    assert bytes(echoed) == payload * 3
                    await channel.disconnect()
                await conn.disconnect()
            finally:
                await transport.close()
            out, _ = await asyncio.wait_for(proc.communicate(), 40)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    text = '\n'.join(lines) + '\n' + out.decode(errors='replace')
    assert 'END' in text.splitlines(), text
    accepts = [line for line in text.splitlines() if line.startswith('EV 22 ')]
    connects = [line for line in text.splitlines() if line.startswith('EV 23 ')]
    assert len(accepts) == 3 and len(connects) == 2, text
    # ACCEPT and CONNECT carry (conn, cid, psm, our_mtu, peer_mtu).
    for line in accepts + connects:
        _conn, _cid, psm, our_mtu, peer_mtu = line[6:].split('|')
        assert (psm, our_mtu, peer_mtu) == (str(LISTEN_PSM), str(LISTEN_MTU), '500'), line
    # Two normal closes (status 0), then the link.
    assert "CLOSED [0, 0, 'gap']" in text, text
