"""Shared by the hostile-peer tests (tests/peer/test_hostile_*.py): the target firmware script,
a session that runs it against a Bumble attacker and a witness, raw PDUs in and out, and the
"still intact" check every case ends with.

The target (TARGET, run by build/unix/micropython) serves a GATT database (a value longer than
any ATT MTU, a read-only characteristic, a writable one, one that needs encryption, one that
needs an authenticated link, a notifiable one), listens for L2CAP channels on PSM 0x0080,
prints every event as a line (`EV <code> ...`) and reads commands from stdin, one a line:

    probe              -> STATE conns=N long=H ro=H rw=H enc=H auth=H noti=H free=BYTES
    adv                (re)start connectable advertising
    connect HEX        gap_connect to a public address (12 hex digits, most significant first)
    read CONN HANDLE   gattc_read
    pair CONN          gap_pair
    disc CONN          gap_disconnect

Every command answers `OK <cmd>` or `ERR <cmd> <errno>`.

The session (`session()`) puts three controllers on one virtual link (fwproc.Radio('vlink',
count=3)): 0 the firmware, 1 the attacker (a Bumble `Device` whose L2CAP PDUs on the tapped
CIDs bypass Bumble's own ATT/SMP/signalling handlers, so the test sees and sends raw bytes), 2
a witness (a plain Bumble GATT client holding its own connection to the firmware all along).
`check_intact()` then proves the firmware alive, its GATT values unchanged, the witness link
working (it reads the long value and the read-only one over its own connection) and the heap
flat.

Every case a test runs goes through `record()`, which keeps (category, name, outcome) for the
summary conftest.py writes to build/hostile-summary.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import struct
import sys
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'harness'))
sys.path.insert(0, HERE)

from bumble.device import Device, Peer  # noqa: E402
from bumble.hci import Address  # noqa: E402
from bumble.transport import open_transport  # noqa: E402

from fwproc import STEP_TIMEOUT_S, Firmware, Radio, bumble_transport  # noqa: E402

ATT_CID, LE_SIG_CID, SMP_CID = 4, 5, 6
PSM = 0x0080
FW_L2CAP_MTU = 256
LONG_VALUE = bytes((i * 37 + 11) & 0xFF for i in range(600))
RO_VALUE = b'read-only value'
RW_VALUE = b'rw-initial'
ENC_VALUE = b'needs encryption'
AUTH_VALUE = b'needs authentication'
NOTI_VALUE = b'notify value'
# How much the firmware's GC heap may shrink over a test (after gc.collect()), and its
# process RSS grow: loose bounds, far below what a per-case leak over dozens of cases adds up to.
HEAP_SLACK = 2048
RSS_SLACK_KB = 8192

# (category, case, verdict) for every case run in this process (see record()).
RESULTS: list[tuple[str, str, str]] = []

TARGET = r'''
import bluetooth
import gc
import hashlib
import sys
from micropython import const

_READ = const(0x02)
_WRITE_NO_RESPONSE = const(0x04)
_WRITE = const(0x08)
_NOTIFY = const(0x10)
_READ_ENC = const(0x0200)
_READ_AUTHEN = const(0x0400)
_WRITE_ENC = const(0x1000)
_WRITE_AUTHEN = const(0x2000)


def U(n):
    return bluetooth.UUID('6e6f7400-%%04x-4d61-98df-8c5c62ee53b3' %% n)


SERVICE = (U(1), (
    (U(2), _READ),
    (U(3), _READ),
    (U(4), _READ | _WRITE | _WRITE_NO_RESPONSE),
    (U(5), _READ | _WRITE | _READ_ENC | _WRITE_ENC),
    (U(6), _READ | _WRITE | _READ_AUTHEN | _WRITE_AUTHEN),
    (U(7), _READ | _NOTIFY),
))

ble = bluetooth.BLE()
conns = set()
buf = bytearray(512)


def fmt(x):
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x).hex()
    return str(x)


def adv():
    try:
        ble.gap_advertise(20000, b'\x02\x01\x06\x07\x09target')
    except OSError as e:
        print('ADVERR', e.errno)


def irq(ev, data):
    print('EV', ev, *[fmt(x) for x in data])
    if ev in (1, 7):
        conns.add(data[0])
        if ev == 1:
            adv()
    elif ev in (2, 8):
        conns.discard(data[0])
        if ev == 2:
            adv()
    elif ev == 25:
        # Drain the channel so the peer gets its credits back.
        while ble.l2cap_recvinto(data[0], data[1], buf):
            pass


ble.irq(irq)
ble.active(True)
ble.config(mtu=512)
print('mac', fmt(ble.config('mac')[1]))
((h_long, h_ro, h_rw, h_enc, h_auth, h_noti),) = ble.gatts_register_services((SERVICE,))
names = (('long', h_long), ('ro', h_ro), ('rw', h_rw), ('enc', h_enc), ('auth', h_auth),
         ('noti', h_noti))
ble.gatts_write(h_long, bytes((i * 37 + 11) & 0xFF for i in range(600)))
ble.gatts_write(h_ro, b'read-only value')
ble.gatts_set_buffer(h_rw, 512)
ble.gatts_write(h_rw, b'rw-initial')
ble.gatts_write(h_enc, b'needs encryption')
ble.gatts_write(h_auth, b'needs authentication')
ble.gatts_write(h_noti, b'notify value')
ble.l2cap_listen(%(psm)d, %(mtu)d)
print('handles', h_long, h_ro, h_rw, h_enc, h_auth, h_noti)
adv()
print('ready')


def run(words):
    cmd = words[0]
    if cmd == 'probe':
        gc.collect()
        print('STATE', 'conns=%%d' %% len(conns),
              *['%%s=%%s' %% (n, hashlib.sha256(ble.gatts_read(h)).digest()[:6].hex())
                for n, h in names], 'free=%%d' %% gc.mem_free())
    elif cmd == 'adv':
        adv()
    elif cmd == 'connect':
        ble.gap_connect(0, bytes.fromhex(words[1]))
    elif cmd == 'read':
        ble.gattc_read(int(words[1]), int(words[2]))
    elif cmd == 'pair':
        ble.gap_pair(int(words[1]))
    elif cmd == 'sc':
        ble.config(le_secure=bool(int(words[1])))
    elif cmd == 'l2send':
        print('SENT', ble.l2cap_send(int(words[1]), int(words[2]), bytes(int(words[3]))))
    elif cmd == 'disc':
        ble.gap_disconnect(int(words[1]))
    elif cmd == 'quit':
        return False
    return True


while True:
    line = sys.stdin.readline()
    if not line:
        break
    words = line.split()
    if not words:
        continue
    try:
        go = run(words)
        print('OK', words[0])
    except OSError as e:
        print('ERR', words[0], e.errno)
        go = True
    if not go:
        break
ble.active(False)
print('done')
''' % {'psm': PSM, 'mtu': FW_L2CAP_MTU}


def value_hash(value: bytes) -> str:
    return hashlib.sha256(value).digest()[:6].hex()


EXPECTED_HASHES = {'long': value_hash(LONG_VALUE), 'ro': value_hash(RO_VALUE),
                   'rw': value_hash(RW_VALUE), 'enc': value_hash(ENC_VALUE),
                   'auth': value_hash(AUTH_VALUE), 'noti': value_hash(NOTI_VALUE)}


def record(category: str, case: str, verdict: str) -> None:
    """verdict: 'refused' (what the spec asks for), 'deviation' (safe, but not the spec's
    answer; the test says why) or 'failed'."""
    assert verdict in ('refused', 'deviation', 'failed'), verdict
    RESULTS.append((category, case, verdict))


class RawTap:
    """Taps a Bumble device's L2CAP input: PDUs on a tapped (connection handle, CID) go to a
    queue instead of Bumble's handler for that CID."""

    def __init__(self, device: Device) -> None:
        self.queues: dict[tuple[int, int], asyncio.Queue[bytes]] = {}
        manager = device.l2cap_channel_manager
        original = manager.on_pdu

        def on_pdu(connection, cid, pdu):
            queue = self.queues.get((connection.handle, cid))
            if queue is None:
                original(connection, cid, pdu)
            else:
                queue.put_nowait(bytes(pdu))

        manager.on_pdu = on_pdu

    def tap(self, handle: int, cid: int) -> asyncio.Queue[bytes]:
        return self.queues.setdefault((handle, cid), asyncio.Queue())

    def untap(self, handle: int, cid: int) -> None:
        self.queues.pop((handle, cid), None)


class Link:
    """One attacker connection to the firmware, with raw access to ATT, LE signalling and
    SMP (those three CIDs are tapped; add more with `tap`)."""

    def __init__(self, session: 'Session', connection, fw_handle: int | None) -> None:
        self.session = session
        self.connection = connection
        self.fw_handle = fw_handle  # the firmware's handle for this link
        self.queues: dict[int, asyncio.Queue[bytes]] = {}
        for cid in (ATT_CID, LE_SIG_CID, SMP_CID):
            self.tap(cid)
        self.disconnected = asyncio.Event()
        connection.on('disconnection', lambda *_: self.disconnected.set())

    def tap(self, cid: int) -> asyncio.Queue[bytes]:
        queue = self.session.tap.tap(self.connection.handle, cid)
        self.queues[cid] = queue
        return queue

    @property
    def alive(self) -> bool:
        return not self.disconnected.is_set()

    def send(self, cid: int, pdu: bytes) -> None:
        self.connection.send_l2cap_pdu(cid, pdu)

    async def recv(self, cid: int, timeout: float = 2.0) -> bytes | None:
        """The next PDU received on `cid`, or None if none came within `timeout` (or the link
        dropped)."""
        queue = self.queues[cid]
        if not queue.empty():
            return queue.get_nowait()
        get = asyncio.ensure_future(queue.get())
        gone = asyncio.ensure_future(self.disconnected.wait())
        done, _ = await asyncio.wait({get, gone}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        if get in done:
            return get.result()
        get.cancel()
        return None

    def drain(self, cid: int) -> list[bytes]:
        queue = self.queues[cid]
        out = []
        while not queue.empty():
            out.append(queue.get_nowait())
        return out

    async def silence(self, cid: int, wait: float = 0.3) -> list[bytes]:
        """Whatever arrives on `cid` within `wait` seconds."""
        await asyncio.sleep(wait)
        return self.drain(cid)

    async def request(self, cid: int, pdu: bytes, timeout: float = 2.0) -> bytes | None:
        self.drain(cid)
        self.send(cid, pdu)
        return await self.recv(cid, timeout)

    async def att(self, pdu: bytes, timeout: float = 2.0) -> bytes | None:
        return await self.request(ATT_CID, pdu, timeout)

    async def close(self) -> None:
        if self.alive:
            with contextlib.suppress(Exception):
                await self.connection.disconnect()
        for cid in list(self.queues):
            self.session.tap.untap(self.connection.handle, cid)


class Session:
    """Firmware (controller 0), attacker (1) and witness (2) on one virtual link."""

    def __init__(self, tmp_path, witness: bool = True) -> None:
        self.tmp_path = tmp_path
        self.want_witness = witness
        self.fw = Firmware()
        self.radio = Radio('vlink', count=3)
        self.transports = []
        self.attacker: Device | None = None
        self.witness: Device | None = None
        self.witness_peer: Peer | None = None
        self.handles: dict[str, int] = {}
        self.baseline_free = 0
        self.baseline_rss = 0
        self._stdin_w: int | None = None
        self.expected = dict(EXPECTED_HASHES)

    # --- setup -------------------------------------------------------------------------
    async def __aenter__(self) -> 'Session':
        await self.radio.__aenter__()
        try:
            await self._start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _device(self, index: int, name: str) -> Device:
        transport = await open_transport(bumble_transport(self.radio.paths[index]))
        self.transports.append(transport)
        dev = Device.with_hci(name, self.radio.public_address(index),
                              transport.source, transport.sink)
        await dev.power_on()
        return dev

    async def _start(self) -> None:
        script = self.tmp_path / 'hostile_target.py'
        script.write_text(TARGET)
        r, w = os.pipe()
        self._stdin_w = w
        await self.fw.start(str(script), self.radio.paths[0], stdin=r)
        os.close(r)
        words = (await self.fw.expect('handles')).split()[1:]
        self.handles = dict(zip(('long', 'ro', 'rw', 'enc', 'auth', 'noti'),
                                (int(x) for x in words)))
        await self.fw.expect('ready')
        self.fw_address = self.radio.public_address(0)
        self.attacker = await self._device(1, 'attacker')
        self.tap = RawTap(self.attacker)
        if self.want_witness:
            self.witness = await self._device(2, 'witness')
            conn = await self.witness.connect(self.fw_address, own_address_type=0)
            await self.fw.expect('EV 1 ')
            self.witness_peer = Peer(conn)
            await self.witness_peer.request_mtu(247)
            await self.fw.expect('EV 21 ')
            self.witness_conn = conn
        state = await self.probe()
        self.baseline_free = state['free']
        self.baseline_rss = self.rss_kb()

    async def __aexit__(self, *exc_info) -> None:
        try:
            if self._stdin_w is not None and self.fw.proc is not None \
                    and self.fw.proc.returncode is None:
                with contextlib.suppress(OSError):
                    self.command('quit')
                    os.close(self._stdin_w)
                self._stdin_w = None
                try:
                    await self.fw.expect('done', 5)
                except AssertionError:
                    pass
            if self.fw.proc is not None and self.fw.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.fw.proc.kill()
            await self.fw.stop()
        finally:
            for transport in self.transports:
                with contextlib.suppress(Exception):
                    await transport.close()
            await self.radio.__aexit__(*exc_info)

    # --- the firmware ------------------------------------------------------------------
    def command(self, line: str) -> None:
        assert self._stdin_w is not None
        os.write(self._stdin_w, line.encode() + b'\n')

    async def run(self, line: str, timeout: float = STEP_TIMEOUT_S) -> str:
        """Runs a command; its `OK`/`ERR` line."""
        mark = len(self.fw.lines)
        self.command(line)
        word = line.split()[0]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            for ln in self.fw.lines[mark:]:
                if ln in (f'OK {word}',) or ln.startswith(f'ERR {word} '):
                    return ln
            await asyncio.sleep(0.01)
        raise AssertionError(f'no answer to {line!r}:\n' + '\n'.join(self.fw.lines[-40:]))

    async def probe(self) -> dict:
        mark = len(self.fw.lines)
        await self.run('probe')
        line = next(ln for ln in self.fw.lines[mark:] if ln.startswith('STATE'))
        state: dict = {}
        for item in line.split()[1:]:
            key, value = item.split('=')
            state[key] = int(value) if key in ('conns', 'free') else value
        return state

    def rss_kb(self) -> int:
        with open(f'/proc/{self.fw.proc.pid}/status') as f:
            for ln in f:
                if ln.startswith('VmRSS:'):
                    return int(ln.split()[1])
        return 0

    def events_since(self, mark: int, *codes: int) -> list[str]:
        """The firmware's `EV` lines since line `mark`, only those with the given codes if
        any are given."""
        out = []
        for ln in self.fw.lines[mark:]:
            if ln.startswith('EV '):
                code = int(ln.split()[1])
                if not codes or code in codes:
                    out.append(ln)
        return out

    # --- the attacker ------------------------------------------------------------------
    async def connect(self) -> Link:
        """A new attacker connection (attacker central, firmware peripheral)."""
        mark = len(self.fw.lines)
        connection = await self.attacker.connect(self.fw_address, own_address_type=0,
                                                 timeout=STEP_TIMEOUT_S)
        link = Link(self, connection, None)
        # The firmware's handle for it: its CENTRAL_CONNECT with the attacker's address.
        addr = bytes(reversed(bytes(self.radio.public_address(1)))).hex()
        for _ in range(200):
            for ln in self.fw.lines[mark:]:
                parts = ln.split()
                if ln.startswith('EV 1 ') and parts[4] == addr:
                    link.fw_handle = int(parts[2])
                    return link
            await asyncio.sleep(0.02)
        raise AssertionError('firmware saw no connect:\n' + '\n'.join(self.fw.lines[mark:]))

    async def accept_from_firmware(self) -> Link:
        """Makes the firmware connect to the attacker (attacker peripheral, firmware
        central): the attacker advertises, the firmware's `connect` command dials it."""
        attacker = self.attacker
        connected = asyncio.get_running_loop().create_future()

        def on_connection(connection):
            if not connected.done():
                connected.set_result(connection)

        attacker.on('connection', on_connection)
        try:
            await attacker.start_advertising(own_address_type=0, auto_restart=False)
            mark = len(self.fw.lines)
            addr = bytes(reversed(bytes(self.radio.public_address(1)))).hex()
            assert await self.run(f'connect {addr}') == 'OK connect'
            connection = await asyncio.wait_for(connected, STEP_TIMEOUT_S)
        finally:
            attacker.remove_listener('connection', on_connection)
        link = Link(self, connection, None)
        for _ in range(200):
            for ln in self.fw.lines[mark:]:
                if ln.startswith('EV 7 '):
                    link.fw_handle = int(ln.split()[2])
                    return link
            await asyncio.sleep(0.02)
        raise AssertionError('firmware saw no connect:\n' + '\n'.join(self.fw.lines[mark:]))

    # --- the verdict -------------------------------------------------------------------
    async def check_intact(self, conns: int | None = None) -> None:
        """The firmware is alive and answers; every GATT value is what it was (or what
        `self.expected` says it now is); the witness's connection still works; the GC heap
        and the process RSS are within bounds of the baseline. `conns`: the number of links
        the firmware should report (default: only the witness's, if any)."""
        assert self.fw.proc is not None and self.fw.proc.returncode is None, (
            'firmware died:\n' + '\n'.join(self.fw.lines[-30:]) + await self.fw.stderr())
        state = await self.probe()
        for name, want in self.expected.items():
            assert state[name] == want, (name, state)
        if conns is None:
            conns = 1 if self.want_witness else 0
        # Disconnect events can trail the attacker's view of the link by a few ms.
        for _ in range(50):
            if state['conns'] == conns:
                break
            await asyncio.sleep(0.05)
            state = await self.probe()
        assert state['conns'] == conns, state
        if self.witness_peer is not None:
            value = await asyncio.wait_for(
                self.witness_peer.read_value(self.handles['long']), STEP_TIMEOUT_S)
            assert value == LONG_VALUE
            value = await asyncio.wait_for(
                self.witness_peer.read_value(self.handles['ro']), STEP_TIMEOUT_S)
            assert value == RO_VALUE
        state = await self.probe()
        assert state['free'] >= self.baseline_free - HEAP_SLACK, (
            'GC heap shrank', self.baseline_free, state['free'])
        rss = self.rss_kb()
        assert rss <= self.baseline_rss + RSS_SLACK_KB, ('RSS grew', self.baseline_rss, rss)
        stderr_tail = [ln for ln in self.fw.lines if 'Traceback' in ln or 'Unhandled' in ln]
        assert not stderr_tail, stderr_tail


@contextlib.asynccontextmanager
async def session(tmp_path, witness: bool = True):
    async with Session(tmp_path, witness) as s:
        yield s


def att_error(opcode: int, handle: int, code: int) -> bytes:
    """An ATT Error Response (Core Vol 3 Part F 3.4.1.1)."""
    return struct.pack('<BBHB', 0x01, opcode, handle, code)


def address_hex(address: Address) -> str:
    return bytes(reversed(bytes(address))).hex()


# --- case tables ---------------------------------------------------------------------------

NONE = 'none'   # no answer on the CID, link still up
DROP = 'drop'   # the firmware closed the link


class Prefix(bytes):
    """An answer that starts with these bytes."""


@dataclasses.dataclass
class Case:
    """One hostile PDU and what may come back on the same CID.

    `want`: the answers the spec asks for (exact bytes, a Prefix, NONE or DROP); `tolerate`:
    NimBLE's answer where it differs from the spec but stays safe (the case's `note` says how
    and why); it is counted as a deviation in the summary. `forbid`: firmware event codes that
    must not appear for the attacker's link (by default a GATTS_WRITE and an
    ENCRYPTION_UPDATE)."""
    name: str
    pdu: bytes | Callable[[], bytes]
    want: tuple
    tolerate: tuple = ()
    note: str = ''
    forbid: tuple = (3, 28)
    wait: float = 0.5
    send_cid: int | None = None  # where the PDU goes, if not the CID the answer comes on


def _matches(outcome, answer: bytes | None, alive: bool) -> bool:
    if outcome == NONE:
        return answer is None and alive
    if outcome == DROP:
        return answer is None and not alive
    if isinstance(outcome, Prefix):
        return answer is not None and answer.startswith(outcome)
    return answer == outcome


def _show(x) -> str:
    if isinstance(x, Prefix):
        return bytes(x).hex() + '...'
    if isinstance(x, (bytes, bytearray)):
        return bytes(x).hex()
    return str(x)


async def run_cases(s: 'Session', category: str, cid: int, cases: list[Case],
                    link: 'Link | None' = None, new_link=None) -> tuple['Link', list[str]]:
    """Sends each case's PDU on `cid` over `link` (a new one from `new_link()` whenever the
    firmware dropped the last), checks the answer and the firmware's events, and records the
    result. Returns the link in use and the failures (each a line of explanation)."""
    new_link = new_link or s.connect
    failures = []
    for case in cases:
        if link is None or not link.alive:
            if link is not None:
                await link.close()
            link = await new_link()
        pdu = case.pdu() if callable(case.pdu) else case.pdu
        mark = len(s.fw.lines)
        link.drain(cid)
        link.send(case.send_cid if case.send_cid is not None else cid, pdu)
        only_silence = all(o in (NONE, DROP) for o in case.want + case.tolerate)
        answer = await link.recv(cid, 0.3 if only_silence else case.wait)
        if answer is None and not only_silence:
            # Silence was tolerated: give a late drop its chance to show.
            await asyncio.sleep(0.05)
        alive = link.alive
        bad_events = [ln for ln in s.events_since(mark, *case.forbid)
                      if link.fw_handle is not None and ln.split()[2] == str(link.fw_handle)]
        if any(_matches(o, answer, alive) for o in case.want):
            verdict = 'refused'
        elif any(_matches(o, answer, alive) for o in case.tolerate):
            verdict = 'deviation'
        else:
            verdict = 'failed'
        if bad_events:
            verdict = 'failed'
        RESULTS.append((category, case.name, verdict))
        if verdict == 'failed':
            failures.append(
                f'{case.name}: sent {pdu.hex()}, got {_show(answer)} (link '
                f'{"up" if alive else "dropped"}); want {[_show(o) for o in case.want]}'
                f' or {[_show(o) for o in case.tolerate]}; events {bad_events}')
    return link, failures
