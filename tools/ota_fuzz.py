#!/usr/bin/env python3
"""Over-the-air fuzzer: a Bumble host (the attacker) on a virtual radio connects to our
firmware and sends it generated L2CAP PDUs over a real LE connection.

The firmware (build/unix/micropython, or --firmware / UBT_FIRMWARE) runs
tools/ota_fuzz_target.py: a GATT server, an L2CAP listener, a key store, advertising again
after each disconnect, a heartbeat line with gc.mem_free() twice a second. The attacker sends,
with Bumble's `Connection.send_l2cap_pdu`:

- att: every ATT opcode (requests, commands, responses and notifications sent the wrong way,
  unknown opcodes), built from the firmware's real handles and then mutated: handles 0, 1,
  past the end, 0xFFFF; offsets around the value lengths; values of every size around the MTU;
  truncated, extended, bytes flipped;
- l2cap_sig: LE signalling commands (credit-based connection requests to the listener's PSM and
  others, credits, disconnection requests for the open channel and for made-up ones,
  connection-parameter responses, BR/EDR-only and unknown codes, wrong length fields);
- le_coc: K-frames on a channel the attacker opens to the listener (whole SDUs, segmented
  SDUs, SDU lengths past the MTU, frames past the MPS, frames without credits);
- smp: every SMP code, and a pairing run far enough to reach the key exchange (a valid P-256
  public key, then confirm/random/DHKey check values that do not match);
- unknown_cid: PDUs on CIDs nobody serves (0, BR/EDR fixed channels, unassigned fixed and
  dynamic ones);
- raw: random bytes on a random CID.

The attacker's own Bumble stack never handles what the firmware sends back: every incoming
PDU goes to the fuzzer, which answers the few things a real central must (indications are
confirmed, the firmware's disconnection requests answered) and ignores the rest.

When the link drops it reconnects (the firmware advertises again); every `--probe-every`
executions, and at the end, it probes the firmware: the process is alive, its heartbeat is
fresh, and an ATT Read of the probe characteristic returns the known value (after a
reconnection if the link's ATT bearer no longer answers). A crash is the process ending, no
heartbeat for HANG_S seconds, or a Traceback / unhandled exception in its output. A crash is
saved to the findings directory with the seed, the last actions (PDUs, connects, channel
opens) and the firmware's output, and can be replayed with `--replay FILE`.

The virtual link's controller reassembles L2CAP PDUs from the attacker's ACL fragments and
fragments them again for the firmware, so broken L2CAP framing (length fields that disagree
with the data, continuation fragments without a start) never reaches the firmware this way;
the cargo-fuzz targets in fuzz/ cover the host's parsing of controller input.

Run:   .cache/venv/bin/python tools/ota_fuzz.py --seconds 60 --seed 1
Replay: .cache/venv/bin/python tools/ota_fuzz.py --replay build/ota-fuzz-findings/FILE.json
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import random
import re
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, 'tests', 'peer'))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'harness'))

TARGET_SCRIPT = os.path.join(HERE, 'ota_fuzz_target.py')
DEFAULT_FIRMWARE = os.path.join(ROOT, 'build', 'unix', 'micropython')
DEFAULT_REPORT = os.path.join(ROOT, 'build', 'ota-fuzz-report.json')
DEFAULT_FINDINGS = os.path.join(ROOT, 'build', 'ota-fuzz-findings')

PROBE_VALUE = b'ota-probe-ok'
HANG_S = 6.0            # no heartbeat for this long: a hang
STEP_S = 10.0           # connect, probe and channel-open waits
KEEP_ACTIONS = 400      # actions kept for a finding
KEEP_OUTPUT = 300       # firmware output lines kept
HOLD_S = 0.5            # the known-bug guard's wait for NimBLE's Disconnection Request
CRASH_PATTERNS = re.compile(
    r'Traceback|Unhandled exception|panicked|FATAL|Assertion|assert|Segmentation|'
    r'AddressSanitizer|runtime error|MemoryError|Error:')

ATT_CID, SIG_CID, SMP_CID = 0x0004, 0x0005, 0x0006
CATEGORIES = ('att', 'l2cap_sig', 'le_coc', 'smp', 'unknown_cid', 'raw')
WEIGHTS = (40, 14, 16, 14, 8, 8)
U16_EDGES = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)

log = logging.getLogger('ota_fuzz')


def u16(v: int) -> bytes:
    return struct.pack('<H', v & 0xFFFF)


# --------------------------------------------------------------------------- generators
class Generator:
    """Structure-aware PDU generator; every choice comes from one random.Random(seed)."""

    def __init__(self, rng: random.Random, handles: dict[str, int], psm: int) -> None:
        self.rng = rng
        self.h = handles
        self.psm = psm
        self.hmax = max(handles.values()) + 1   # a CCCD may follow the last value
        self.mtu = 23
        self.smp_last_rx: int | None = None    # the firmware's last SMP code, to go deeper
        self.coc_remaining = 0                 # bytes left of a segmented SDU
        self.next_scid = 0x40
        self.ident = 1
        # A valid P-256 public key (X, Y little-endian), from a seeded private key.
        from bumble.crypto import EccKey
        key = EccKey.from_private_key_bytes(bytes([1]) + rng.randbytes(30) + bytes([1]))
        self.public_key = key.x[::-1] + key.y[::-1]

    # ---- shared pieces
    def pick(self, *weighted):
        """pick((w, value), ...) -> a value; a callable value is called."""
        total = sum(w for w, _ in weighted)
        r = self.rng.uniform(0, total)
        for w, v in weighted:
            r -= w
            if r <= 0:
                break
        return v() if callable(v) else v

    def edge16(self) -> int:
        return self.rng.choice(U16_EDGES)

    def val16(self, *typical: int) -> int:
        return self.pick((6, lambda: self.rng.choice(typical)), (3, self.edge16),
                         (1, lambda: self.rng.randrange(0x10000)))

    def handle(self) -> int:
        known = list(self.h.values())
        return self.pick(
            (6, lambda: self.rng.choice(known)),
            (2, lambda: self.rng.choice(known) + self.rng.choice((-1, 1, 2))),
            (2, lambda: self.rng.choice((0, 1, self.hmax, self.hmax + 1, 0xFFFF))),
            (1, lambda: self.rng.randrange(0x10000))) & 0xFFFF

    def length(self) -> int:
        m = self.mtu
        return self.pick(
            (4, lambda: self.rng.randrange(0, 24)),
            (3, lambda: self.rng.choice((m - 4, m - 3, m - 2, m - 1, m, m + 1, 22, 23, 24))),
            (2, lambda: self.rng.choice((64, 65, 100, 250, 251, 252, 255, 256, 300, 511, 512,
                                         513, 600))),
            (1, lambda: self.rng.randrange(0, 700))) & 0x3FF

    def data(self, n: int | None = None) -> bytes:
        return self.rng.randbytes(self.length() if n is None else max(0, n))

    def next_ident(self) -> int:
        self.ident = self.ident % 255 + 1
        return self.pick((9, self.ident), (1, lambda: self.rng.choice((0, 0xFF))))

    def mutate(self, pdu: bytes) -> bytes:
        b = bytearray(pdu)
        for _ in range(self.rng.choice((1, 1, 1, 2, 3))):
            op = self.rng.randrange(6)
            if op == 0 and b:
                del b[self.rng.randrange(len(b) + 1):]
            elif op == 1:
                b += self.rng.randbytes(self.rng.randrange(1, 40))
            elif op == 2 and b:
                b[self.rng.randrange(len(b))] ^= self.rng.randrange(1, 256)
            elif op == 3 and len(b) >= 3:
                i = self.rng.randrange(1, len(b) - 1)
                b[i:i + 2] = u16(self.edge16())
            elif op == 4:
                b.insert(self.rng.randrange(len(b) + 1), self.rng.randrange(256))
            elif op == 5 and b:
                i = self.rng.randrange(len(b))
                b += b[i:i + self.rng.randrange(1, 20)]
        return bytes(b)

    def maybe_mutate(self, pdu: bytes, p: float = 0.3) -> bytes:
        return self.mutate(pdu) if self.rng.random() < p else pdu

    # ---- ATT
    def uuid(self) -> bytes:
        return self.pick(
            (5, lambda: u16(self.rng.choice((0x2800, 0x2801, 0x2802, 0x2803, 0x2901, 0x2902,
                                             0x2A00, 0x2A01, 0x2A05, 0x2A19, 0x180F)))),
            (2, lambda: bytes.fromhex('594a3b2c1e7d519b7e4a3c5f') + u16(self.rng.randrange(1, 6))
             + b'\x0a\x0f'),
            (1, lambda: self.rng.randbytes(self.rng.choice((0, 1, 3, 4, 15, 17)))),
            (1, lambda: u16(self.rng.randrange(0x10000))))

    def range_(self) -> bytes:
        start, end = self.pick(
            (4, (1, 0xFFFF)),
            (3, lambda: (self.handle(), self.handle())),
            (2, lambda: (self.rng.choice((0, 1, self.hmax)), self.rng.choice((0, 1, 0xFFFF)))))
        return u16(start) + u16(end)

    def att(self) -> bytes:
        h = self.handle
        cccd = self.h['noti'] + 1
        pdu = self.pick(
            (2, lambda: b'\x02' + u16(self.val16(23, 22, 24, 185, 247, 256, 512, 517))),
            (3, lambda: b'\x04' + self.range_()),
            (2, lambda: b'\x06' + self.range_() + u16(self.rng.choice((0x2800, 0x2801, 0x2803)))
             + self.pick((2, lambda: bytes.fromhex('0f18')), (2, self.uuid), (1, self.data))),
            (4, lambda: b'\x08' + self.range_() + self.uuid()),
            (5, lambda: b'\x0a' + u16(h())),
            (4, lambda: b'\x0c' + u16(self.pick((3, self.h['long']), (2, h)))
             + u16(self.val16(0, 1, 21, 22, 253, 254, 255, 299, 300, 301, 511, 512, 513))),
            (2, lambda: b'\x0e' + b''.join(u16(h()) for _ in range(self.rng.randrange(0, 12)))),
            (3, lambda: b'\x10' + self.range_() + self.pick(
                (3, lambda: u16(self.rng.choice((0x2800, 0x2801)))), (1, self.uuid))),
            (6, lambda: b'\x12' + u16(self.pick((3, self.h['rw']), (2, cccd), (3, h)))
             + self.pick((2, lambda: u16(self.rng.choice((0, 1, 2, 3, 0xFFFF)))), (3, self.data))),
            (4, lambda: b'\x52' + u16(self.pick((2, self.h['rw']), (1, cccd), (2, h)))
             + self.data()),
            (1, lambda: b'\xd2' + u16(h()) + self.data() + self.rng.randbytes(12)),
            (5, lambda: b'\x16' + u16(self.pick((3, self.h['long']), (1, self.h['rw']), (2, h)))
             + u16(self.val16(0, 1, 18, 255, 299, 300, 511, 512, 513))
             + self.data(self.rng.choice((0, 1, 18, self.mtu - 5, self.mtu - 4, 40)))),
            (3, lambda: b'\x18' + bytes([self.rng.choice((0, 1, 1, 2, 0x80, 0xFF))])),
            (2, lambda: b'\x1e'),
            (2, lambda: self.rng.choice((b'\x1b', b'\x1d')) + u16(h()) + self.data()),
            (1, lambda: b'\x23' + b''.join(u16(h()) + u16(self.val16(0, 1, 4)) + self.data(4)
                                           for _ in range(self.rng.randrange(0, 4)))),
            (1, lambda: b'\x20' + b''.join(u16(h()) for _ in range(self.rng.randrange(0, 10)))),
            (2, lambda: bytes([self.rng.choice((0x01, 0x03, 0x05, 0x07, 0x09, 0x0B, 0x0D, 0x0F,
                                                0x11, 0x13, 0x17, 0x19, 0x21))])
             + self.data(self.rng.randrange(0, 10))),
            (2, lambda: bytes([self.rng.randrange(256)]) + self.data(self.rng.randrange(0, 24))))
        if pdu[:1] == b'\x02' and len(pdu) == 3:
            self.mtu = max(23, min(256, struct.unpack('<H', pdu[1:])[0]))
        return self.maybe_mutate(pdu)

    # ---- L2CAP LE signalling
    def sig(self, coc: dict | None) -> bytes:
        ours = coc['ours'] if coc else self.rng.randrange(0x40, 0x80)
        theirs = coc['theirs'] if coc else self.rng.randrange(0x40, 0x80)
        cid = lambda: self.pick((4, ours), (3, theirs), (2, self.edge16),  # noqa: E731
                                (1, lambda: self.rng.randrange(0x40, 0x80)))

        def conn_req() -> bytes:
            self.next_scid = 0x40 + (self.next_scid + 1 - 0x40) % 0x40
            return (u16(self.val16(self.psm, self.psm, 0x80, 0x25, 0x100))
                    + u16(self.val16(self.next_scid, 0x40, 0x7F))
                    + u16(self.val16(23, 64, 512, 0xFFFF)) + u16(self.val16(23, 64, 251, 0xFFFD))
                    + u16(self.val16(0, 1, 10, 0xFFFF)))

        code, data = self.pick(
            (5, lambda: (0x14, conn_req())),
            (4, lambda: (0x16, u16(cid()) + u16(self.val16(1, 2, 10, 0x7FFF, 0xFFFF)))),
            (3, lambda: (0x06, u16(cid()) + u16(cid()))),
            (1, lambda: (0x07, u16(cid()) + u16(cid()))),
            (2, lambda: (0x13, u16(self.val16(0, 1, 2)))),
            (1, lambda: (0x12, b''.join(u16(self.val16(6, 24, 40, 0, 499, 3200)) for _ in range(4)))),
            (1, lambda: (0x15, u16(cid()) + u16(self.val16(23, 512)) + u16(self.val16(23, 100))
                         + u16(self.val16(0, 5)) + u16(self.val16(0, 2, 4, 0xB)))),
            (1, lambda: (0x01, u16(self.val16(0, 1, 2)) + self.data(self.rng.choice((0, 2, 4))))),
            (2, lambda: (0x17, u16(self.val16(self.psm, 0x80)) + u16(self.val16(64, 512))
                         + u16(self.val16(64, 251)) + u16(self.val16(1, 10))
                         + b''.join(u16(self.val16(0x40, 0x41, 0x42)) for _ in
                                    range(self.rng.randrange(0, 7))))),
            (1, lambda: (0x19, u16(self.val16(64, 512)) + u16(self.val16(64, 251))
                         + b''.join(u16(cid()) for _ in range(self.rng.randrange(0, 6))))),
            (1, lambda: (self.rng.choice((0x02, 0x04, 0x08, 0x0A, 0x0C, 0x10)),
                         self.data(self.rng.randrange(0, 12)))),
            (1, lambda: (self.rng.randrange(256), self.data(self.rng.randrange(0, 16)))))
        length = self.pick((9, len(data)), (1, lambda: self.rng.choice(
            (0, 1, len(data) - 1, len(data) + 1, 0xFFFF))))
        pdu = bytes([code, self.next_ident()]) + u16(length) + data
        if self.rng.random() < 0.05:   # two commands in one PDU
            pdu += bytes([0x16, self.next_ident()]) + u16(4) + u16(ours) + u16(1)
        return self.maybe_mutate(pdu, 0.15)

    # ---- LE credit-based channel K-frames
    def coc(self, coc: dict) -> bytes:
        mps, mtu = coc['mps'], coc['mtu']
        room = max(0, mps - 2)
        if self.coc_remaining and self.rng.random() < 0.7:
            n = min(self.coc_remaining, mps)
            self.coc_remaining -= n
            return self.maybe_mutate(self.rng.randbytes(n), 0.1)
        self.coc_remaining = 0

        def whole() -> bytes:
            n = self.rng.randrange(0, min(room, mtu) + 1)
            return u16(n) + self.rng.randbytes(n)

        def segmented() -> bytes:
            total = self.rng.randrange(room + 1, max(room + 2, mtu + 1))
            self.coc_remaining = total - room
            return u16(total) + self.rng.randbytes(room)

        pdu = self.pick(
            (5, whole), (3, segmented),
            (1, lambda: u16(self.rng.choice((mtu + 1, 0xFFFF, 0, 1)))
             + self.rng.randbytes(self.rng.randrange(0, room + 1))),
            (1, lambda: u16(self.rng.randrange(0, mtu + 1))
             + self.rng.randbytes(self.rng.choice((mps - 1, mps, mps + 1, mps + 40)))),
            (1, lambda: self.rng.randbytes(self.rng.choice((0, 1, 2, 3)))))
        return self.maybe_mutate(pdu, 0.1)

    # ---- SMP
    def smp(self) -> bytes:
        r = self.rng

        def pairing(code: int) -> bytes:
            return bytes([code, self.pick((5, lambda: r.randrange(5)), (1, lambda: r.randrange(256))),
                          self.pick((5, 0), (1, lambda: r.randrange(256))),
                          self.pick((3, 0x09), (2, 0x0D), (2, 0x01), (1, 0x00),
                                    (2, lambda: r.randrange(256))),
                          self.pick((5, 16), (2, 7), (2, lambda: r.choice((0, 6, 17, 0xFF)))),
                          self.pick((4, lambda: r.randrange(16)), (1, lambda: r.randrange(256))),
                          self.pick((4, lambda: r.randrange(16)), (1, lambda: r.randrange(256)))])

        # Go one step deeper in a pairing the firmware is taking part in.
        last, self.smp_last_rx = self.smp_last_rx, None
        if last == 0x02 and r.random() < 0.7:
            return self.pick((3, b'\x0c' + self.public_key), (1, b'\x03' + r.randbytes(16)))
        if last in (0x03, 0x0C) and r.random() < 0.7:
            return self.pick((2, b'\x04' + r.randbytes(16)), (1, b'\x03' + r.randbytes(16)))
        if last == 0x04 and r.random() < 0.7:
            return b'\x0d' + r.randbytes(16)
        pdu = self.pick(
            (6, lambda: pairing(0x01)),
            (1, lambda: pairing(0x02)),
            (2, lambda: bytes([r.choice((0x03, 0x04, 0x06, 0x08, 0x0A, 0x0D))]) + r.randbytes(16)),
            (2, lambda: b'\x05' + bytes([self.pick((3, lambda: r.randrange(1, 0x10)),
                                                   (1, lambda: r.randrange(256)))])),
            (1, lambda: b'\x07' + r.randbytes(10)),
            (1, lambda: b'\x09' + bytes([r.choice((0, 1, 2, 0xFF))]) + r.randbytes(6)),
            (1, lambda: b'\x0b' + bytes([r.randrange(256)])),
            (2, lambda: b'\x0c' + self.pick((3, self.public_key), (1, bytes(64)),
                                            (1, lambda: r.randbytes(64)))),
            (1, lambda: b'\x0e' + bytes([r.choice((0, 1, 2, 3, 4, 5, 0xFF))])),
            (1, lambda: bytes([r.randrange(0x0F, 0x100)]) + self.data(r.randrange(0, 20))))
        return self.maybe_mutate(pdu, 0.15)

    # ---- the rest
    def unknown_cid(self) -> tuple[int, bytes]:
        cid = self.rng.choice((0x0000, 0x0001, 0x0002, 0x0003, 0x0007, 0x0020, 0x003E, 0x003F,
                               0x0040, 0x0041, 0x007F, 0x0080, 0x00FF, 0x1234, 0xFFFF))
        payload = self.pick((2, lambda: self.data(self.rng.randrange(0, 40))),
                            (1, lambda: self.att()))
        return cid, payload

    def raw(self) -> tuple[int, bytes]:
        return self.rng.randrange(0x10000), self.data(self.rng.randrange(0, 300))


# --------------------------------------------------------------------------- firmware
class FirmwareProc:
    """The firmware process running the target script; its stdout and stderr read as they
    come, the last KEEP_OUTPUT lines kept, heartbeats and crash lines noted."""

    def __init__(self, firmware: str, uart: str) -> None:
        self.firmware = firmware
        self.uart = uart
        self.proc: asyncio.subprocess.Process | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=KEEP_OUTPUT)
        self.bad: list[str] = []
        self.ready: dict | None = None
        self.ready_event = asyncio.Event()
        self.last_hb = 0.0
        self.mem: list[int] = []
        self.counts: collections.Counter[str] = collections.Counter()
        self.tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        env = dict(os.environ, MICROPYBTUART=self.uart)
        self.proc = await asyncio.create_subprocess_exec(
            self.firmware, TARGET_SCRIPT, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        self.tasks = [asyncio.create_task(self._read(self.proc.stdout, '')),
                      asyncio.create_task(self._read(self.proc.stderr, 'stderr: '))]
        try:
            await asyncio.wait_for(self.ready_event.wait(), STEP_S)
        except asyncio.TimeoutError:
            raise RuntimeError('the firmware did not start:\n' + '\n'.join(self.tail)) from None
        self.last_hb = time.monotonic()

    async def _read(self, stream, prefix: str) -> None:
        while line := await stream.readline():
            text = line.decode(errors='replace').rstrip('\n')
            self.tail.append(prefix + text)
            word = text.split(' ', 1)[0]
            if prefix or not word.isidentifier():
                word = 'other'
            self.counts[word] += 1
            if CRASH_PATTERNS.search(text):
                self.bad.append(prefix + text)
            elif not prefix and word == 'hb':
                self.last_hb = time.monotonic()
                self.mem.append(int(text.split()[1]))
            elif not prefix and word == 'ready':
                v = [int(x) for x in text.split()[1:]]
                self.ready = {'handles': dict(zip(('rw', 'dsc', 'noti', 'long', 'probe', 'batt'),
                                                  v[:6])), 'psm': v[6]}
                self.ready_event.set()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def trouble(self) -> str | None:
        """Why the firmware counts as crashed now, or None."""
        if self.proc is not None and self.proc.returncode is not None:
            return f'exit status {self.proc.returncode}'
        if self.bad:
            return 'output: ' + self.bad[0]
        if time.monotonic() - self.last_hb > HANG_S:
            return f'hang: no heartbeat for {time.monotonic() - self.last_hb:.1f} s'
        return None

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        for t in self.tasks:
            try:
                await asyncio.wait_for(t, 2)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                t.cancel()


# --------------------------------------------------------------------------- attacker
class Attacker:
    """The Bumble host: connects, sends PDUs, takes every PDU the firmware sends."""

    def __init__(self, device, fw_address, record) -> None:
        self.device = device
        self.fw_address = fw_address
        self.record = record
        self.conn = None
        self.links = 0
        self.disconnects = 0
        self.forced_disconnects = 0
        self.disconnect_reasons: collections.Counter[str] = collections.Counter()
        self.rx: collections.Counter[str] = collections.Counter()
        self.att_inbox: asyncio.Queue[bytes] = asyncio.Queue()
        # Every channel the firmware accepted on this link (a mirror of NimBLE's view, for
        # the guard below), and the one the le_coc generator sends on.
        self.channels: list[dict] = []
        self.coc: dict | None = None
        self.coc_waiters: dict[int, asyncio.Future] = {}
        # Signalling identifier -> (our scid, credits) of a generated channel request.
        self.coc_requests: dict[int, tuple[int, int]] = {}
        self.avoided = 0
        self.guard_known_bugs = False
        self.generator: Generator | None = None
        self.confirm_indications = True
        device.l2cap_channel_manager.on_pdu = self._on_pdu

    # ---- link
    async def connect(self) -> None:
        conn = await self.device.connect(self.fw_address, own_address_type=0, timeout=STEP_S)
        self.conn = conn
        self.links += 1
        self.forget_channels()
        self.att_inbox = asyncio.Queue()
        self.record({'op': 'connect'})

        def gone(reason) -> None:
            if self.conn is conn:
                self.conn = None
                self.forget_channels()
            self.disconnects += 1
            self.disconnect_reasons[str(reason)] += 1

        conn.on('disconnection', gone)

    async def disconnect(self) -> None:
        conn = self.conn
        if conn is None:
            return
        self.record({'op': 'disconnect'})
        self.forced_disconnects += 1
        try:
            await asyncio.wait_for(conn.disconnect(), STEP_S)
        except Exception as e:  # noqa: BLE001 - already gone, or the controller is
            log.info('disconnect: %r', e)
        self.conn = None
        self.forget_channels()

    def forget_channels(self) -> None:
        self.channels = []
        self.coc = None
        self.coc_requests = {}

    def add_channel(self, ours: int | None, theirs: int, mtu: int, mps: int, credits: int,
                    fw_credits: int | None) -> dict:
        """A channel the firmware accepted; `ours` and `fw_credits` (the credits we gave it)
        are None when the request it answered is not known."""
        ch = {'ours': ours, 'theirs': theirs, 'mtu': mtu, 'mps': mps, 'credits': credits,
              'fw_credits': fw_credits, 'hold_until': 0.0}
        self.channels.append(ch)
        return ch

    def drop_channel(self, ch: dict) -> None:
        if ch in self.channels:
            self.channels.remove(ch)
        if self.coc is ch:
            self.coc = self.channels[0] if self.channels else None

    # ---- the guard against a known NimBLE bug
    def vet(self, cid: int, pdu: bytes) -> bool:
        """False for a PDU that must not be sent now because it would crash the firmware
        through a NimBLE bug already known and documented, so the fuzzer can look for others.

        The bug (docs/nimble-source.md, L2CAP: "Double disconnect of a CoC channel", upstream
        089f0d8, missing from our 2020 tree): when NimBLE starts disconnecting a channel
        itself (`ble_l2cap_sig_disconnect`: credits past 65535 in
        `ble_l2cap_coc_le_credits_update`, or an SDU length over its MTU in
        `ble_l2cap_coc_rx_fn`), a second such PDU before the peer's Disconnection Response
        starts a second procedure for the same channel; the first response frees the
        channel and the second uses it after free (`ble_l2cap_sig_disc_rsp_rx` →
        `ble_l2cap_sig_coc_disconnect_cb` → `ble_hs_conn_delete_chan`): SIGSEGV. So after
        a PDU that may start such a disconnect, the guard holds back every further PDU that
        could start another or free the channel (credits for it, K-frames on it, our own
        Disconnection Request for it) until NimBLE's Disconnection Request has been answered
        or HOLD_S has passed without one. It keeps count of the credits NimBLE holds; it
        cannot know NimBLE's reassembly state, so it treats every K-frame as a possible
        first one."""
        if not self.guard_known_bugs or not self.channels:
            return True
        now = time.monotonic()

        def held(chs) -> bool:
            return any(ch['hold_until'] > now for ch in chs)

        def hold(chs) -> bool:
            for ch in chs:
                ch['hold_until'] = now + HOLD_S
            return True

        if cid == SIG_CID and len(pdu) >= 8 and pdu[0] in (0x06, 0x16):
            if struct.unpack_from('<H', pdu, 2)[0] != len(pdu) - 4:
                return True          # NimBLE drops a command whose length field is wrong
            a, b = struct.unpack_from('<2H', pdu, 4)
            if pdu[0] == 0x16:       # credits for the channel whose peer CID is a
                hit = [ch for ch in self.channels if ch['ours'] == a]
                targets = hit or [ch for ch in self.channels if ch['ours'] is None]
                if not targets or b == 0:
                    return True
                if held(targets):
                    return False
                if hit and hit[0]['fw_credits'] is not None \
                        and hit[0]['fw_credits'] + b <= 0xFFFF:
                    hit[0]['fw_credits'] += b
                    return True
                return hold(targets)  # may overflow: NimBLE disconnects
            # Our Disconnection Request (DCID a: the firmware's CID; SCID b: ours) frees it.
            return not held([ch for ch in self.channels
                             if ch['theirs'] == a and ch['ours'] in (b, None)])
        hit = [ch for ch in self.channels if ch['theirs'] == cid]
        if not hit:
            return True
        if held(hit):
            return False
        # Any K-frame may be the first of an SDU to NimBLE: one whose first two bytes, as an
        # SDU length, pass the channel's MTU may make it disconnect.
        if len(pdu) >= 2 and struct.unpack_from('<H', pdu)[0] > min(ch['mtu'] for ch in hit):
            hold(hit)
        return True

    @property
    def connected(self) -> bool:
        return self.conn is not None and self.conn.handle in self.device.host.connections

    def send(self, cid: int, pdu: bytes) -> None:
        if self.connected:
            self.conn.send_l2cap_pdu(cid, pdu)

    async def pace(self) -> None:
        """Lets the controller take what was sent, so the queue stays short."""
        queue = self.conn.data_packet_queue if self.connected else None
        await asyncio.sleep(0.002)
        for _ in range(200):
            if queue is None or queue.pending <= 8 or not self.connected:
                break
            await asyncio.sleep(0.005)

    # ---- what the firmware sends
    def _on_pdu(self, connection, cid: int, pdu: bytes) -> None:
        if self.conn is None or connection is not self.conn:
            return
        if cid == ATT_CID:
            self.rx['att'] += 1
            if pdu[:1] == b'\x1d' and self.confirm_indications:
                self.send(ATT_CID, b'\x1e')
            elif pdu[:1] and pdu[0] in (0x02, 0x04, 0x06, 0x08, 0x0A, 0x0C, 0x0E, 0x10, 0x12,
                                         0x16, 0x18, 0x20):
                # A request from the firmware's GATT client: refuse it.
                self.send(ATT_CID, bytes([0x01, pdu[0], 0, 0, 0x06]))
            self.att_inbox.put_nowait(pdu)
        elif cid == SIG_CID:
            self.rx['l2cap_sig'] += 1
            self._on_signal(pdu)
        elif cid == SMP_CID:
            self.rx['smp'] += 1
            if pdu and self.generator is not None:
                self.generator.smp_last_rx = pdu[0]
        else:
            self.rx['other_cid'] += 1
            for ch in self.channels:
                if ch['ours'] == cid and ch['fw_credits'] is not None:
                    ch['fw_credits'] -= 1   # a K-frame from the firmware spends one credit
                    break

    def _on_signal(self, pdu: bytes) -> None:
        if len(pdu) < 4:
            return
        code, ident = pdu[0], pdu[1]
        data = pdu[4:]
        if code == 0x15 and len(data) >= 10:   # LE credit-based connection response
            dcid, mtu, mps, credits, result = struct.unpack_from('<5H', data)
            waiter = self.coc_waiters.pop(ident, None)
            request = self.coc_requests.pop(ident, None)
            if waiter is not None and not waiter.done():
                waiter.set_result((dcid, mtu, mps, credits, result))
            elif result == 0:
                # A generated request the firmware accepted: fuzz on that channel too.
                ours, given = request if request is not None else (None, None)
                ch = self.add_channel(ours, dcid, mtu, mps, credits, given)
                if self.coc is None and ours is not None:
                    self.coc = ch
        elif code == 0x06 and len(data) >= 4:  # disconnection request: answer it
            dcid, scid = struct.unpack_from('<2H', data)
            self.send(SIG_CID, bytes([0x07, ident]) + u16(4) + u16(dcid) + u16(scid))
            for ch in [ch for ch in self.channels
                       if ch['ours'] in (dcid, None) and ch['theirs'] == scid]:
                self.drop_channel(ch)
        elif code == 0x07 and len(data) >= 4:  # our disconnection request answered
            dcid, scid = struct.unpack_from('<2H', data)
            for ch in [ch for ch in self.channels
                       if ch['theirs'] == dcid and ch['ours'] in (scid, None)]:
                self.drop_channel(ch)
        elif code == 0x16 and len(data) >= 4:
            for ch in self.channels:
                if ch['theirs'] == struct.unpack_from('<H', data)[0]:
                    ch['credits'] += struct.unpack_from('<H', data, 2)[0]
        elif code == 0x12:                     # connection parameter update request: refuse
            self.send(SIG_CID, bytes([0x13, ident]) + u16(2) + u16(1))
        elif code in (0x14, 0x17):             # the firmware opening a channel: refuse
            self.send(SIG_CID, bytes([code + 1, ident]) + u16(10) + bytes(8) + u16(2))
        elif code in (0x02, 0x04, 0x08, 0x0A, 0x19):
            self.send(SIG_CID, bytes([0x01, ident]) + u16(2) + u16(0))

    # ---- procedures
    def track_sig(self, pdu: bytes) -> None:
        """Remembers a generated channel request's scid, to adopt the channel if accepted."""
        if len(pdu) >= 14 and pdu[0] == 0x14:
            self.coc_requests[pdu[1]] = (struct.unpack_from('<H', pdu, 6)[0],
                                         struct.unpack_from('<H', pdu, 12)[0])

    async def open_coc(self, psm: int, ident: int, scid: int) -> bool:
        """Opens an LE credit-based channel to the listener by hand (Bumble's L2CAP stays
        out of it)."""
        self.record({'op': 'open_coc', 'psm': psm, 'ident': ident, 'scid': scid})
        fut = asyncio.get_running_loop().create_future()
        self.coc_waiters[ident] = fut
        self.send(SIG_CID, bytes([0x14, ident]) + u16(10) + u16(psm) + u16(scid) + u16(512)
                  + u16(251) + u16(0xFFFF))
        try:
            dcid, mtu, mps, credits, result = await asyncio.wait_for(fut, 2)
        except asyncio.TimeoutError:
            self.coc_waiters.pop(ident, None)
            return False
        if result != 0:
            return False
        self.coc = self.add_channel(scid, dcid, mtu, mps, credits, 0xFFFF)
        return True

    async def read_probe(self, handle: int) -> bytes | None:
        """ATT Read of the probe characteristic: its value, or None without an answer."""
        # Let answers to earlier PDUs arrive first, then ask.
        for _ in range(20):
            await asyncio.sleep(0.05)
            if self.att_inbox.empty():
                break
            while not self.att_inbox.empty():
                self.att_inbox.get_nowait()
        self.send(ATT_CID, b'\x0a' + u16(handle))
        deadline = time.monotonic() + 3
        while self.connected and time.monotonic() < deadline:
            try:
                pdu = await asyncio.wait_for(self.att_inbox.get(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
            if pdu[:1] == b'\x0b':
                return pdu[1:]
            if pdu[:1] == b'\x01' and pdu[1:4] == b'\x0a' + u16(handle):
                return b'error:' + pdu[4:]
        return None


# --------------------------------------------------------------------------- the run
class Fuzzer:
    def __init__(self, args) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.actions: collections.deque[dict] = collections.deque(maxlen=KEEP_ACTIONS)
        self.executions = 0
        self.per_category: collections.Counter[str] = collections.Counter()
        self.crashes = 0
        self.findings: list[dict] = []
        self.anomalies: list[str] = []
        self.probes = 0
        self.coc_opens = collections.Counter()
        self.fw: FirmwareProc | None = None
        self.attacker: Attacker | None = None
        self.mem_start: int | None = None
        self.restarts = 0

    def record(self, action: dict) -> None:
        self.actions.append(action)

    # ---- firmware life
    async def start_firmware(self, uart: str) -> None:
        self.fw = FirmwareProc(self.args.firmware, uart)
        await self.fw.start()
        for _ in range(40):
            if self.fw.mem:
                break
            await asyncio.sleep(0.05)
        if self.mem_start is None and self.fw.mem:
            self.mem_start = self.fw.mem[0]

    async def crash(self, why: str, uart: str) -> None:
        """Saves a finding, then starts the firmware again (unless told to stop)."""
        self.crashes += 1
        await asyncio.sleep(0.5)   # the rest of a traceback
        finding = {
            'kind': why.split(':')[0], 'why': why, 'seed': self.args.seed,
            'executions': self.executions, 'time': time.strftime('%Y-%m-%dT%H:%M:%S'),
            'firmware': self.args.firmware, 'actions': list(self.actions),
            'output_tail': list(self.fw.tail), 'bad_lines': self.fw.bad[:20],
        }
        os.makedirs(self.args.findings, exist_ok=True)
        path = os.path.join(self.args.findings,
                            f'seed{self.args.seed}-{len(self.findings) + 1:03d}.json')
        with open(path, 'w') as f:
            json.dump(finding, f, indent=1)
        self.findings.append({'path': os.path.relpath(path, ROOT), 'why': why,
                              'executions': self.executions})
        print(f'CRASH after {self.executions} executions: {why}\n  saved {path}', flush=True)
        await self.fw.stop()
        if self.attacker is not None and self.attacker.conn is not None:
            await self.attacker.disconnect()
        if self.args.stop_on_crash:
            raise SystemExit(1)
        self.restarts += 1
        await self.start_firmware(uart)
        self.actions.clear()

    async def ensure_link(self) -> bool:
        for attempt in range(3):
            if self.attacker.connected:
                return True
            try:
                await self.attacker.connect()
                return True
            except Exception as e:  # noqa: BLE001 - a timeout or a refused connection
                log.info('connect attempt %d: %r', attempt, e)
                if self.fw.trouble():
                    return False
        return False

    async def probe(self, final: bool = False) -> str | None:
        """None when the firmware is well; else why not."""
        self.probes += 1
        self.record({'op': 'probe'})
        if why := self.fw.trouble():
            return why
        handle = self.fw.ready['handles']['probe']
        for round_ in range(2):
            if not await self.ensure_link():
                return self.fw.trouble() or 'unreachable: no connection in 3 attempts'
            value = await self.attacker.read_probe(handle)
            if value == PROBE_VALUE:
                if round_:
                    self.anomalies.append(f'after {self.executions} executions the probe '
                                          f'needed a new link')
                return self.fw.trouble()
            log.info('probe answer %r; reconnecting', value)
            await self.attacker.disconnect()
        return self.fw.trouble() or f'probe: no ATT answer with the value, got {value!r}'

    async def one(self, gen: Generator) -> None:
        a = self.attacker
        cat = self.rng.choices(CATEGORIES, WEIGHTS)[0]
        if cat == 'le_coc' and a.coc is None:
            scid = self.rng.randrange(0x40, 0x80)
            ok = await a.open_coc(self.fw.ready['psm'], gen.next_ident() or 1, scid)
            self.coc_opens['ok' if ok else 'refused'] += 1
            if not ok:
                cat = 'l2cap_sig'
        if cat == 'att':
            cid, pdu = ATT_CID, gen.att()
        elif cat == 'l2cap_sig':
            cid, pdu = SIG_CID, gen.sig(a.coc)
            a.track_sig(pdu)
        elif cat == 'le_coc':
            cid, pdu = a.coc['theirs'], gen.coc(a.coc)
        elif cat == 'smp':
            cid, pdu = SMP_CID, gen.smp()
        elif cat == 'unknown_cid':
            cid, pdu = gen.unknown_cid()
        else:
            cid, pdu = gen.raw()
        if not a.vet(cid, pdu):
            # Held back by the known-bug guard: an ATT PDU instead.
            a.avoided += 1
            cat, cid, pdu = 'att', ATT_CID, gen.att()
        self.record({'op': 'pdu', 'cat': cat, 'cid': cid, 'hex': pdu.hex()})
        a.send(cid, pdu)
        self.executions += 1
        self.per_category[cat] += 1
        await a.pace()

    async def run(self) -> dict:
        from bumble.device import Device
        from bumble.transport import open_transport
        from fwproc import Radio, bumble_transport

        args = self.args
        started = time.monotonic()
        async with Radio(args.radio) as radio:
            uart = radio.paths[0]
            await self.start_firmware(uart)
            transport = await open_transport(bumble_transport(radio.paths[1]))
            try:
                device = Device.with_hci('attacker', radio.public_address(1) or
                                         FALLBACK_ADDRESS(), transport.source, transport.sink)
                await device.power_on()
                self.attacker = Attacker(device, fw_address(radio, self.fw), self.record)
                self.attacker.guard_known_bugs = args.guard
                gen = Generator(self.rng, self.fw.ready['handles'], self.fw.ready['psm'])
                self.attacker.generator = gen
                deadline = started + args.seconds
                next_probe = args.probe_every
                next_forced = time.monotonic() + args.reconnect_every
                while time.monotonic() < deadline:
                    if why := self.fw.trouble():
                        await self.crash(why, uart)
                        continue
                    if not self.attacker.connected and not await self.ensure_link():
                        await self.crash(self.fw.trouble() or 'unreachable: no connection',
                                         uart)
                        continue
                    if self.executions >= next_probe:
                        next_probe = self.executions + args.probe_every
                        if why := await self.probe():
                            await self.crash(why, uart)
                            continue
                    if time.monotonic() >= next_forced:
                        next_forced = time.monotonic() + args.reconnect_every
                        await self.attacker.disconnect()
                        continue
                    await self.one(gen)
                    if args.progress and self.executions % 2000 == 0:
                        print(f'{self.executions} executions, {self.attacker.links} links, '
                              f'{self.crashes} crashes, mem {self.fw.mem[-1:]}', flush=True)
                # The end: wait a little for late effects, then probe once more.
                await asyncio.sleep(1.0)
                if why := await self.probe(final=True):
                    await self.crash(why, uart)
                alive = self.fw.alive and self.fw.trouble() is None
            finally:
                await transport.close()
                if self.fw is not None:
                    await self.fw.stop()
        a = self.attacker
        return {
            'seed': args.seed, 'seconds': args.seconds, 'radio': args.radio,
            'firmware': args.firmware, 'elapsed_s': round(time.monotonic() - started, 1),
            'executions': self.executions, 'per_category': dict(self.per_category),
            'links': a.links if a else 0, 'disconnects': a.disconnects if a else 0,
            'forced_disconnects': a.forced_disconnects if a else 0,
            'disconnect_reasons': dict(a.disconnect_reasons) if a else {},
            'coc_opens': dict(self.coc_opens), 'probes': self.probes,
            'known_bug_guard': args.guard,
            'held_back_by_guard': a.avoided if a else 0,
            'received': dict(a.rx) if a else {},
            'crashes': self.crashes, 'findings': self.findings, 'anomalies': self.anomalies,
            'firmware_restarts': self.restarts,
            'firmware_alive_at_end': alive,
            'firmware_mem_start': self.mem_start,
            'firmware_mem_end': self.fw.mem[-1] if self.fw and self.fw.mem else None,
            'firmware_mem_min': min(self.fw.mem) if self.fw and self.fw.mem else None,
            'firmware_output_counts': dict(self.fw.counts) if self.fw else {},
        }


def FALLBACK_ADDRESS():
    from bumble.hci import Address
    return Address('F0:00:00:00:0F:0F', Address.RANDOM_DEVICE_ADDRESS)


def fw_address(radio, fw: FirmwareProc):
    from bumble.hci import Address
    address = radio.public_address(0)
    if address is not None:
        return address
    mac = next(line.split()[1] for line in fw.tail if line.startswith('mac '))
    return Address(mac, Address.PUBLIC_DEVICE_ADDRESS)


# --------------------------------------------------------------------------- replay
async def replay_once(args, actions: list[dict]) -> tuple[str | None, list[str]]:
    """Runs `actions` against a fresh firmware: why it failed (None: it did not) and the
    firmware's last output lines."""
    from bumble.device import Device
    from bumble.transport import open_transport
    from fwproc import Radio, bumble_transport

    fuzzer = Fuzzer(args)
    async with Radio(args.radio) as radio:
        await fuzzer.start_firmware(radio.paths[0])
        transport = await open_transport(bumble_transport(radio.paths[1]))
        try:
            device = Device.with_hci('attacker', radio.public_address(1) or FALLBACK_ADDRESS(),
                                     transport.source, transport.sink)
            await device.power_on()
            a = fuzzer.attacker = Attacker(device, fw_address(radio, fuzzer.fw), fuzzer.record)
            # Exactly what was sent, unless asked to hold back what the guard would.
            a.guard_known_bugs = args.guard
            why = None
            for act in actions:
                if why := fuzzer.fw.trouble():
                    break
                op = act['op']
                if op == 'connect' or (op in ('pdu', 'open_coc') and not a.connected):
                    if a.connected:
                        await a.disconnect()
                    if not await fuzzer.ensure_link():
                        why = fuzzer.fw.trouble() or 'unreachable: no connection'
                        break
                if op == 'disconnect':
                    await a.disconnect()
                elif op == 'open_coc':
                    await a.open_coc(act['psm'], act['ident'], act['scid'])
                elif op == 'pdu':
                    pdu = bytes.fromhex(act['hex'])
                    if a.vet(act['cid'], pdu):
                        a.send(act['cid'], pdu)
                    else:
                        print(f'held back by the guard: {act}')
                    await a.pace()
            await asyncio.sleep(1.0)
            why = why or await fuzzer.probe(final=True)
        finally:
            await transport.close()
            await fuzzer.fw.stop()
    return why, list(fuzzer.fw.tail)


async def minimize(args, actions: list[dict]) -> list[dict]:
    """Delta debugging over the actions: a shorter list that still makes the firmware fail."""
    def key(acts):
        return tuple(json.dumps(x, sort_keys=True) for x in acts)

    seen: dict[tuple, bool] = {}

    async def fails(acts) -> bool:
        k = key(acts)
        if k not in seen:
            seen[k] = (await replay_once(args, acts))[0] is not None
            print(f'  {len(acts)} actions: {"fails" if seen[k] else "passes"}', flush=True)
        return seen[k]

    current = [x for x in actions if x['op'] != 'probe']
    n = 2
    while len(current) >= 2:
        size = -(-len(current) // n)
        chunks = [current[i:i + size] for i in range(0, len(current), size)]
        for i in range(len(chunks)):
            rest = [x for j, c in enumerate(chunks) if j != i for x in c]
            if await fails(rest):
                current, n = rest, max(n - 1, 2)
                break
        else:
            if n >= len(current):
                break
            n = min(len(current), n * 2)
    return current


async def replay(args) -> int:
    """Runs a finding's actions against a fresh firmware; 1 if it fails again, else 0."""
    with open(args.replay) as f:
        finding = json.load(f)
    actions = finding['actions']
    print(f'replaying {len(actions)} actions of {args.replay} ({finding.get("why")})')
    if args.minimize:
        actions = await minimize(args, actions)
        out = args.replay[:-len('.json')] + '-min.json' if args.replay.endswith('.json') \
            else args.replay + '-min'
        with open(out, 'w') as f:
            json.dump(dict(finding, actions=actions, minimized_from=args.replay), f, indent=1)
        print(f'{len(actions)} actions still fail: saved {out}')
    why, tail = await replay_once(args, actions)
    if why:
        print('\n'.join(tail[-30:]))
        print(f'REPRODUCED: {why}')
        return 1
    if args.verbose:
        print('\n'.join(tail[-30:]))
    print('firmware survived the replay')
    return 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seconds', type=float, default=60, help='how long to fuzz (default 60)')
    p.add_argument('--seed', type=int, default=1, help='random seed (default 1)')
    p.add_argument('--radio', choices=('vlink', 'rootcanal'), default='vlink')
    p.add_argument('--report', default=DEFAULT_REPORT, help='JSON report path')
    p.add_argument('--findings', default=DEFAULT_FINDINGS, help='directory for findings')
    p.add_argument('--firmware', default=os.environ.get('UBT_FIRMWARE', DEFAULT_FIRMWARE),
                   help='firmware binary (default: $UBT_FIRMWARE or build/unix/micropython)')
    p.add_argument('--probe-every', type=int, default=300,
                   help='probe the firmware every N executions (default 300)')
    p.add_argument('--reconnect-every', type=float, default=10.0,
                   help='the attacker drops the link itself every S seconds (default 10)')
    p.add_argument('--guard', action='store_true',
                   help='hold back PDUs that could make NimBLE disconnect a channel twice (only '
                        'for a NIMBLE_DIR tree without our fix, see docs/testing.md)')
    p.add_argument('--stop-on-crash', action='store_true', help='stop at the first crash')
    p.add_argument('--replay', metavar='FILE', help='replay a saved finding instead')
    p.add_argument('--minimize', action='store_true',
                   help='with --replay: shrink the finding to the actions that still fail '
                        '(saved as FILE-min.json)')
    p.add_argument('--progress', action='store_true', help='print progress lines')
    p.add_argument('-v', '--verbose', action='store_true')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # The fuzzer's own Bumble host complains about much of what it is sent back; quiet it.
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR)
    logging.getLogger('bumble').setLevel(logging.CRITICAL)
    # fwproc reads UBT_FIRMWARE at import; keep it in step with --firmware.
    os.environ['UBT_FIRMWARE'] = args.firmware
    if not os.path.exists(args.firmware):
        print(f'no firmware at {args.firmware} (make unix)', file=sys.stderr)
        return 2
    if args.replay:
        return asyncio.run(replay(args))
    report = asyncio.run(Fuzzer(args).run())
    os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
    with open(args.report, 'w') as f:
        json.dump(report, f, indent=1)
    print(json.dumps({k: report[k] for k in ('seed', 'executions', 'links', 'disconnects',
                                             'crashes', 'firmware_alive_at_end',
                                             'firmware_mem_start', 'firmware_mem_end')}))
    print(f'report: {args.report}')
    return 1 if report['crashes'] or not report['firmware_alive_at_end'] else 0


if __name__ == '__main__':
    sys.exit(main())
