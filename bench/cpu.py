#!/usr/bin/env python3
"""CPU per event: callgrind instruction counts of our bluetooth module against MicroPython's own
C module (both on NimBLE, both in the Unix port), for four fixed workloads.

    bench/build_cmodule.sh                  # once: build/bench/cmodule/micropython
    .cache/venv/bin/python bench/cpu.py [--json FILE] [--rounds N] [--keep] [--top N] [WORKLOAD ...]

WORKLOADs (default: all four):
  notify  notifications received by the measured firmware as GATT client (central), each
          handed to the Python irq handler (_IRQ_GATTC_NOTIFY); 20-byte values;
  write   GATT writes WITHOUT response (ATT Write Command, 20 bytes) served by the measured
          firmware as GATT server (peripheral); the handler gets _IRQ_GATTS_WRITE (it only
          counts: it does not gatts_read the value). The peer starts writing SETTLE_S after
          the firmware reports the connection (see write_drive for why);
  scan    scan results (_IRQ_SCAN_RESULT) of a passive scan, one peer advertising
          ADV_NONCONN_IND; no duplicate filtering, so every advertisement is a result;
  l2cap   bytes received over an LE credit-based L2CAP channel (our MTU 512, 512-byte SDUs),
          read with l2cap_recvinto inside the _IRQ_L2CAP_RECV handler; the event is 1 KiB.
Two calibrations always run first: `idle` (connected, the script asleep in a time.sleep_ms
loop) and `gated` (connected, the VM blocked inside a handler), each in Ir per second.

Only the firmware under test is measured: it runs under `valgrind --tool=callgrind` on a
virtual controller (tests/harness/vlink.py, in this process); its peer is a Bumble host device
in this process (the same peer for both firmwares) on a second controller. The handlers are
identical Python for both firmwares and only count.

How a number is made
- Totals, not --toggle-collect: the count is every instruction the process executes, in all
  threads (our UART reader thread does per-event work outside MicroPython's scheduler, the C
  module reads its UART inside it; collecting only some functions would favour one side).
- Each workload runs twice per firmware, with N_lo and N_hi events, and the result is
  (Ir(N_hi) - Ir(N_lo)) / (N_hi - N_lo): start-up, connection set-up, the first event (lazy
  allocations, first-call paths) and shut-down cancel out. N_lo is 100 events (64 KiB for
  l2cap), N_hi is N_lo + 1000 (+ 1 MiB).
- Totals also count time-dependent work: both firmwares poll while idle (a thread wakes every
  1 or 2 ms, the script's sleep_ms loop every 0.5 ms). So the firmware must never wait for its
  peer. For notify, write and scan the first event's handler blocks on stdin (which also holds
  the stack: handlers run inside its event processing) until the bench has seen every other
  event delivered to the firmware's HCI port, and for at least GATE_HOLD_S in every run (so
  the gate's own small cost is the same in both runs); then the firmware works through the
  whole backlog without going idle. L2CAP is credit-flow-controlled, so there the firmware
  does wait for the peer between credit grants. The table's last column is an upper bound on
  the share of the per-event figure that such time-dependent work can make up: the matching
  calibration rate ("gated" while the VM is busy or blocked, "idle" for l2cap) times the extra
  wall time of the N_hi run (event phase and gate), over the Ir difference.
- Everything runs --rounds times (default 3), round after round (so a burst of load elsewhere
  lands on one round of every workload); the table shows the median of the rounds' per-event
  values and their range. Callgrind counts are deterministic for our firmware to within a
  few per cent; the C module's are less so on a loaded machine: it reads its UART one byte per
  non-blocking read(), and each time the kernel has not yet moved the next bytes into the
  pty's line buffer, the read fails and the poll ends early (more polls, more failed reads).
- Every run checks that the handler counted exactly N events (fewer or more fails the run),
  and that every event reached the firmware's controller port before the gate opened.
- The firmwares run as relinked, unstripped copies of the built binaries (the same objects and
  `make`'s own link command; the copy must be byte-identical to the built binary after
  `strip`), so that callgrind can name functions.

Also reported: GC heap bytes allocated per event (gc.mem_alloc() between the first and last
event; no collection happens in between), the per-event cost by component (exclusive Ir of
each function, grouped by source file or symbol: MicroPython VM, module, port UART, NimBLE,
libc), and the top functions of ours by exclusive and inclusive Ir per event (the difference
between the N_hi and N_lo runs, from callgrind_annotate; inclusive lists leave out the VM's and
scheduler's own frames). --json FILE has everything, C's top functions included.

Valgrind slows the firmwares ~20x here; start-up (HCI reset, 2 s command timeouts) still
takes well under a second, and the scripts' own timeouts are two minutes without progress.
A round takes about 3 minutes on two cores (l2cap on the C module is the longest run, ~30 s),
so about 9 minutes by default; --keep leaves the callgrind files in build/bench/cpu/. Any
failed or unverifiable run exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Coroutine

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from benchlib import BenchError, FwProcess  # noqa: E402

import vcontroller  # noqa: E402  (tests/harness, via benchlib's sys.path)
from vlink import VLink  # noqa: E402

from bumble import gatt, l2cap  # noqa: E402
from bumble.hci import OwnAddressType  # noqa: E402
from bumble.core import UUID  # noqa: E402
from bumble.device import AdvertisingType, Device, Peer  # noqa: E402
from bumble.gatt import Characteristic, Service  # noqa: E402
from bumble.transport import open_transport  # noqa: E402

OUT_DIR = benchlib.BENCH_OUT / "cpu"
VALGRIND = "valgrind"
RUN_TIMEOUT_S = 900.0
STEP_TIMEOUT_S = 180.0
# The scripts give up when nothing has happened for this long (valgrind makes everything slow).
STALL_MS = 120_000

SVC_UUID = "7b5e0001-53a1-4c3e-9a0b-2f1d0c4e8a61"
CHR_UUID = "7b5e0002-53a1-4c3e-9a0b-2f1d0c4e8a61"
PAYLOAD = bytes(range(20))
L2CAP_PSM = 0x81
L2CAP_MTU = 512
ADV_PERIOD_S = 0.002  # the scan peer's advertising period (see ScanPeer)
IDLE_MS = (1000, 5000)
# How long the write peer waits after the firmware reports the connection (see write_drive).
SETTLE_S = 1.0
# The gate stays closed at least this long in every run of a gated workload (the scan backlog
# of N_hi reports takes about 3 s to build).
GATE_HOLD_S = 5.0


# ---------------------------------------------------------------------------- firmware scripts
# Identical for both firmwares. The hot path of every handler is its first test.
PRELUDE = r'''
import bluetooth
import gc
import sys
import time

N = %(n)d
PEER = %(peer)r
ble = bluetooth.BLE()
n = 0
conn = None
state = None
a0 = 0
a1 = 0


def gate():
    # Runs inside the stack's event processing (from the first event's handler): nothing more
    # is read from the controller, nothing reaches Python, until the bench writes one byte.
    global a0
    print('GATE')
    sys.stdin.read(1)
    gc.collect()
    a0 = gc.mem_alloc()


def done():
    global a1
    a1 = gc.mem_alloc()
    print('DONE')


def wait(cond, what):
    t = time.ticks_ms()
    last = n
    while not cond():
        if n != last:
            last = n
            t = time.ticks_ms()
        elif time.ticks_diff(time.ticks_ms(), t) > %(stall_ms)d:
            print('FAIL', what, 'count', n)
            sys.exit(1)
        time.sleep_ms(10)


def finish():
    ble.active(False)
    print('COUNT', n, a1 - a0)
    print('END')
'''

NOTIFY_SCRIPT = PRELUDE + r'''

def irq(ev, data):
    global n, conn, state
    if ev == 18:  # _IRQ_GATTC_NOTIFY
        n += 1
        if n == 1:
            gate()
        elif n == N:
            done()
    elif ev == 7:  # _IRQ_PERIPHERAL_CONNECT
        conn = data[0]
    elif ev == 17:  # _IRQ_GATTC_WRITE_DONE
        state = 'subscribed'
    elif ev == 8:  # _IRQ_PERIPHERAL_DISCONNECT
        state = 'gone'


ble.irq(irq)
ble.active(True)
ble.gap_connect(0, PEER, 20000)
wait(lambda: conn is not None, 'connect')
ble.gattc_write(conn, %(cccd)d, b'\x01\x00', 1)
wait(lambda: state == 'subscribed', 'subscribe')
print('SUBSCRIBED')
wait(lambda: n >= N, 'notifications')
ble.gap_disconnect(conn)
wait(lambda: state == 'gone', 'disconnect')
finish()
'''

WRITE_SCRIPT = PRELUDE + r'''

def irq(ev, data):
    global n, conn, state
    if ev == 3:  # _IRQ_GATTS_WRITE
        n += 1
        if n == 1:
            gate()
        elif n == N:
            done()
    elif ev == 1:  # _IRQ_CENTRAL_CONNECT
        conn = data[0]
    elif ev == 2:  # _IRQ_CENTRAL_DISCONNECT
        state = 'gone'


ble.irq(irq)
ble.active(True)
SVC = (bluetooth.UUID(%(svc)r), ((bluetooth.UUID(%(chr)r), 0x04 | 0x08),))
((h,),) = ble.gatts_register_services((SVC,))
ble.gap_advertise(20000, b'\x02\x01\x06')
print('READY', h)
wait(lambda: conn is not None, 'connect')
print('CONNECTED')
wait(lambda: n >= N, 'writes')
ble.gap_disconnect(conn)
wait(lambda: state == 'gone', 'disconnect')
finish()
'''

SCAN_SCRIPT = PRELUDE + r'''

def irq(ev, data):
    global n, state
    if ev == 5:  # _IRQ_SCAN_RESULT
        n += 1
        if n == 1:
            gate()
        elif n == N:
            done()
    elif ev == 6:  # _IRQ_SCAN_DONE
        state = 'done'


ble.irq(irq)
ble.active(True)
ble.gap_scan(0, 10000, 10000, False)
print('SCANNING')
wait(lambda: n >= N, 'scan results')
ble.gap_scan(None)
wait(lambda: state == 'done', 'scan done')
finish()
'''

L2CAP_SCRIPT = PRELUDE + r'''
TOTAL = N * 1024
buf = bytearray(%(mtu)d)
cid = None
fin = False


def irq(ev, data):
    global n, conn, state, cid, fin
    if ev == 25:  # _IRQ_L2CAP_RECV
        c = data[0]
        ch = data[1]
        while True:
            k = ble.l2cap_recvinto(c, ch, buf)
            if not k:
                break
            n += k
        if n >= TOTAL and not fin:
            fin = True
            done()
    elif ev == 7:  # _IRQ_PERIPHERAL_CONNECT
        conn = data[0]
    elif ev == 23:  # _IRQ_L2CAP_CONNECT
        cid = data[1]
    elif ev == 24:  # _IRQ_L2CAP_DISCONNECT
        state = 'closed'
    elif ev == 8:  # _IRQ_PERIPHERAL_DISCONNECT
        state = 'gone'


ble.irq(irq)
ble.active(True)
ble.gap_connect(0, PEER, 20000)
wait(lambda: conn is not None, 'connect')
ble.l2cap_connect(conn, %(psm)d, %(mtu)d)
wait(lambda: cid is not None, 'l2cap connect')
gc.collect()
a0 = gc.mem_alloc()
print('CHANNEL')
wait(lambda: n >= TOTAL, 'l2cap data')
ble.l2cap_disconnect(conn, cid)
wait(lambda: state == 'closed', 'l2cap disconnect')
ble.gap_disconnect(conn)
wait(lambda: state == 'gone', 'disconnect')
n = n // 1024
finish()
'''

IDLE_SCRIPT = PRELUDE + r'''

def irq(ev, data):
    global conn, state
    if ev == 7:
        conn = data[0]
    elif ev == 8:
        state = 'gone'


ble.irq(irq)
ble.active(True)
ble.gap_connect(0, PEER, 20000)
wait(lambda: conn is not None, 'connect')
print('IDLE')
t0 = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), t0) < N:
    time.sleep_ms(10)
print('DONE')
ble.gap_disconnect(conn)
wait(lambda: state == 'gone', 'disconnect')
n = N
finish()
'''


GATED_SCRIPT = PRELUDE + r'''

def irq(ev, data):
    global conn, state
    if ev == 7:
        conn = data[0]
        gate()
    elif ev == 8:
        state = 'gone'


ble.irq(irq)
ble.active(True)
ble.gap_connect(0, PEER, 20000)
wait(lambda: conn is not None, 'connect')
print('DONE')
ble.gap_disconnect(conn)
wait(lambda: state == 'gone', 'disconnect')
n = N
finish()
'''


# ---------------------------------------------------------------------------- HCI port taps
def acl_att_opcode(packet: bytes) -> int | None:
    """ATT opcode of an H4 ACL packet that starts an ATT PDU (CID 4), else None."""
    if len(packet) < 10 or packet[0] != 0x02 or (packet[2] >> 4) & 0x3 not in (0b00, 0b10):
        return None
    if packet[7:9] != b"\x04\x00":
        return None
    return packet[9]


def adv_reports(packet: bytes) -> int:
    """Number of reports in an H4 LE Advertising Report event, else 0."""
    if len(packet) >= 5 and packet[0] == 0x04 and packet[1] == 0x3E and packet[3] == 0x02:
        return packet[4]
    return 0


class PortTap:
    """Counts what the measured firmware's controller hands to its host (the pty), optionally
    dropping packets (used to cap advertising reports at exactly N)."""

    def __init__(self, port: Any, count: Callable[[bytes], int], cap: int | None = None) -> None:
        self.port = port
        self.count_fn = count
        self.cap = cap
        self.count = 0
        self.dropped = 0
        self.changed = asyncio.Event()
        self._orig = port.on_packet
        port.on_packet = self._on_packet

    def _on_packet(self, packet: bytes) -> None:
        k = self.count_fn(packet)
        if k and self.cap is not None and self.count + k > self.cap:
            self.dropped += 1
            return
        self.count += k
        if k:
            self.changed.set()
        self._orig(packet)

    async def wait_for(self, target: int, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while self.count < target:
            self.changed.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise BenchError(f"only {self.count} of {target} events reached the firmware's controller")
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass


async def bumble_device(link: VLink, name: str) -> tuple[Any, Device]:
    transport = await open_transport(f"serial:{link.paths[1]},1000000")
    device = Device.with_hci(name, link.controllers[1].public_address, transport.source, transport.sink)
    return transport, device


# ---------------------------------------------------------------------------- workloads
@dataclass
class Ctx:
    """One run: the link, the firmware process, the peer's transport, timing marks."""

    link: VLink
    fw: FwProcess | None = None
    n: int = 0
    marks: dict[str, float] = field(default_factory=dict)
    transports: list[Any] = field(default_factory=list)
    peer: Any = None  # what setup() leaves for drive()
    tap: PortTap | None = None  # counts the events on their way into the firmware


@dataclass
class Workload:
    name: str
    unit: str  # what one "event" is
    n_lo: int
    n_hi: int
    script: str
    gated: bool  # the first event's handler waits for the bench (see the docstring)
    describe: str
    # Sets up the peer before the firmware starts; returns the script's extra parameters.
    setup: Callable[[Ctx], Awaitable[dict[str, Any]]]
    # Drives the peer once the firmware runs; returns when every event is on its way.
    drive: Callable[[Ctx], Coroutine[Any, Any, None]]
    link_delay_ms: float | None = None
    # A calibration measures Ir per ms of a state, not per event; nothing is counted at the port.
    calibration: bool = False


async def notify_setup(ctx: Ctx) -> dict[str, Any]:
    transport, dev = await bumble_device(ctx.link, "notifier")
    ctx.transports.append(transport)
    char = Characteristic(CHR_UUID, Characteristic.Properties.READ | Characteristic.Properties.NOTIFY,
                          Characteristic.READABLE, b"")
    dev.add_service(Service(SVC_UUID, [char]))
    subscribed: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_subscription(bearer: Any, notify: bool, indicate: bool) -> None:
        if notify and not subscribed.done():
            subscribed.set_result(bearer)

    char.on("subscription", on_subscription)
    await dev.power_on()
    await dev.start_advertising(auto_restart=False, own_address_type=OwnAddressType.PUBLIC)
    cccd = next(a.handle for a in dev.gatt_server.attributes
                if a.type == gatt.GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR and a.handle > char.handle)
    ctx.peer = (dev, char, subscribed)
    ctx.tap = PortTap(ctx.link.ports[0], lambda p: int(acl_att_opcode(p) == 0x1B))
    return {"cccd": cccd}


async def notify_drive(ctx: Ctx) -> None:
    dev, char, subscribed = ctx.peer
    bearer = await asyncio.wait_for(subscribed, STEP_TIMEOUT_S)
    ctx.marks["peer_start"] = time.monotonic()
    for _ in range(ctx.n):
        await dev.notify_subscriber(bearer, char, PAYLOAD)
    ctx.marks["peer_sent"] = time.monotonic()


async def write_setup(ctx: Ctx) -> dict[str, Any]:
    transport, dev = await bumble_device(ctx.link, "writer")
    ctx.transports.append(transport)
    await dev.power_on()
    ctx.peer = dev
    ctx.tap = PortTap(ctx.link.ports[0], lambda p: int(acl_att_opcode(p) == 0x52))
    return {"svc": SVC_UUID, "chr": CHR_UUID}


async def write_drive(ctx: Ctx) -> None:
    assert ctx.fw is not None
    dev: Device = ctx.peer
    handle = int((await ctx.fw.expect("READY", STEP_TIMEOUT_S)).text.split()[1])
    fw_address = ctx.link.controllers[0].public_address
    found: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_adv(adv: Any) -> None:
        if adv.address == fw_address and not found.done():
            found.set_result(adv)

    dev.on("advertisement", on_adv)
    await dev.start_scanning(legacy=True, active=False)
    adv = await asyncio.wait_for(found, STEP_TIMEOUT_S)
    await dev.stop_scanning()
    conn = await dev.connect(adv.address, own_address_type=OwnAddressType.PUBLIC, timeout=STEP_TIMEOUT_S)
    client = Peer(conn).gatt_client
    # NimBLE sends LE Read Remote Features when a link comes up and waits for its Command
    # Status reading the UART without running the host; MicroPython's C module then holds
    # what arrives in its 12 ACL buffers and drops the rest. Writes sent right away (under
    # valgrind the window is wide) would be lost, so the peer lets the link settle first.
    await ctx.fw.expect("CONNECTED", STEP_TIMEOUT_S)
    await asyncio.sleep(SETTLE_S)
    ctx.marks["peer_start"] = time.monotonic()
    for _ in range(ctx.n):
        await client.write_value(handle, PAYLOAD, with_response=False)
    ctx.marks["peer_sent"] = time.monotonic()


class FastAdvertiser:
    """The scan peer advertises every ADV_PERIOD_S instead of BLE's 20 ms minimum (which the
    virtual controller models): the firmware is held at the gate meanwhile, so the rate only
    shortens the wall time of a run."""

    def __enter__(self) -> None:
        self.saved = vcontroller.VLegacyAdvertiser.period_s
        vcontroller.VLegacyAdvertiser.period_s = property(lambda _self: ADV_PERIOD_S)  # type: ignore[assignment]

    def __exit__(self, *exc: object) -> None:
        vcontroller.VLegacyAdvertiser.period_s = self.saved  # type: ignore[assignment]


async def scan_setup(ctx: Ctx) -> dict[str, Any]:
    transport, dev = await bumble_device(ctx.link, "advertiser")
    ctx.transports.append(transport)
    await dev.power_on()
    ctx.peer = dev
    # Exactly N reports reach the firmware; the rest are dropped at its controller's port.
    ctx.tap = PortTap(ctx.link.ports[0], adv_reports, cap=ctx.n)
    return {}


async def scan_drive(ctx: Ctx) -> None:
    assert ctx.fw is not None
    dev: Device = ctx.peer
    await ctx.fw.expect("SCANNING", STEP_TIMEOUT_S)
    ctx.marks["peer_start"] = time.monotonic()
    await dev.start_advertising(
        advertising_type=AdvertisingType.UNDIRECTED, own_address_type=OwnAddressType.PUBLIC, auto_restart=False,
        advertising_data=b"\x02\x01\x04\x06\x09bench", advertising_interval_min=20,
        advertising_interval_max=20,
    )
    assert ctx.tap is not None
    await ctx.tap.wait_for(ctx.n, STEP_TIMEOUT_S)
    await dev.stop_advertising()
    ctx.marks["peer_sent"] = time.monotonic()


async def l2cap_setup(ctx: Ctx) -> dict[str, Any]:
    transport, dev = await bumble_device(ctx.link, "l2cap-sender")
    ctx.transports.append(transport)
    opened: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_channel(channel: Any) -> None:
        if not opened.done():
            opened.set_result(channel)

    await dev.power_on()
    dev.create_l2cap_server(
        spec=l2cap.LeCreditBasedChannelSpec(psm=L2CAP_PSM, mtu=L2CAP_MTU, mps=247, max_credits=8),
        handler=on_channel)
    await dev.start_advertising(auto_restart=False, own_address_type=OwnAddressType.PUBLIC)
    ctx.peer = opened
    ctx.tap = PortTap(ctx.link.ports[0], lambda p: 0)
    return {"psm": L2CAP_PSM, "mtu": L2CAP_MTU}


async def l2cap_drive(ctx: Ctx) -> None:
    assert ctx.fw is not None
    channel = await asyncio.wait_for(ctx.peer, STEP_TIMEOUT_S)
    await ctx.fw.expect("CHANNEL", STEP_TIMEOUT_S)
    total = ctx.n * 1024
    sdu = max(1, min(L2CAP_MTU, channel.peer_mtu))
    block = bytes((i * 7 + 3) & 0xFF for i in range(sdu))
    ctx.marks["peer_start"] = time.monotonic()
    sent = 0
    while sent < total:
        k = min(sdu, total - sent)
        channel.write(block[:k])
        sent += k
        if channel.out_queue and len(channel.out_queue) >= 8:
            await channel.drain()
    await channel.drain()
    ctx.marks["peer_sent"] = time.monotonic()


async def idle_setup(ctx: Ctx) -> dict[str, Any]:
    transport, dev = await bumble_device(ctx.link, "idle-peer")
    ctx.transports.append(transport)
    await dev.power_on()
    await dev.start_advertising(auto_restart=False, own_address_type=OwnAddressType.PUBLIC)
    ctx.tap = PortTap(ctx.link.ports[0], lambda p: 0)
    return {}


async def idle_drive(ctx: Ctx) -> None:
    assert ctx.fw is not None
    await ctx.fw.expect("IDLE", STEP_TIMEOUT_S)
    ctx.marks["peer_start"] = time.monotonic()


async def gated_drive(ctx: Ctx) -> None:
    # run_once() marks the GATE line's arrival; the gate stays closed for n ms after it.
    while "gate" not in ctx.marks:
        await asyncio.sleep(0.005)
    await asyncio.sleep(ctx.n / 1000.0)


WORKLOADS: dict[str, Workload] = {
    w.name: w for w in (
        Workload("notify", "notification", 100, 1100, NOTIFY_SCRIPT, True,
                 "notifications received (GATT client), each to the Python handler",
                 notify_setup, notify_drive),
        Workload("write", "write", 100, 1100, WRITE_SCRIPT, True,
                 "GATT writes without response served (GATT server), _IRQ_GATTS_WRITE each",
                 write_setup, write_drive),
        Workload("scan", "result", 100, 1100, SCAN_SCRIPT, True,
                 "scan results delivered to the handler (passive scan, no dup filter)",
                 scan_setup, scan_drive),
        Workload("l2cap", "KiB", 64, 64 + 1024, L2CAP_SCRIPT, False,
                 "KiB received over an L2CAP CoC (recvinto in the RECV handler)",
                 l2cap_setup, l2cap_drive, link_delay_ms=0.0),
        Workload("idle", "ms", IDLE_MS[0], IDLE_MS[1], IDLE_SCRIPT, False,
                 "calibration: connected, the script asleep (time.sleep_ms loop)", idle_setup, idle_drive,
                 calibration=True),
        Workload("gated", "ms", IDLE_MS[0], IDLE_MS[1], GATED_SCRIPT, True,
                 "calibration: connected, the VM blocked in a handler (as at the gate)", idle_setup, gated_drive,
                 calibration=True),
    )
}


EVENT_WORKLOADS = [name for name, w in WORKLOADS.items() if not w.calibration]


# ---------------------------------------------------------------------------- one run
@dataclass
class Run:
    workload: str
    firmware: str
    n: int
    round: int
    ir: int  # callgrind's total
    count: int  # events the script counted
    alloc_bytes: int  # GC heap bytes allocated between the first and last event
    wall_s: float  # the whole run
    phase_s: float  # release (or first data) -> DONE
    gate_s: float  # first event -> release (0 when not gated)
    callgrind_out: str


def callgrind_total(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise BenchError(f"no totals in {path}")


async def run_once(w: Workload, label: str, fw: Path, n: int, workdir: Path, round_no: int) -> Run:
    stem = f"{w.name}-{label}-{n}-r{round_no}"
    script = workdir / f"{stem}.py"
    cg_out = workdir / f"{stem}.callgrind"
    vg_log = workdir / f"{stem}.valgrind.log"
    for stale in (cg_out, vg_log):
        stale.unlink(missing_ok=True)
    t0 = time.monotonic()
    link = VLink(count=2, **({} if w.link_delay_ms is None else {"delay_ms": w.link_delay_ms}))
    await link.start()
    ctx = Ctx(link=link, n=n)
    fast_adv = FastAdvertiser() if w.name == "scan" else None
    if fast_adv:
        fast_adv.__enter__()
    try:
        params = await w.setup(ctx)
        params.update(n=n, stall_ms=STALL_MS, peer=bytes(link.controllers[1].public_address)[::-1])
        script.write_text(w.script % params)
        argv = [VALGRIND, "--tool=callgrind", f"--callgrind-out-file={cg_out}", f"--log-file={vg_log}",
                "--dump-line=no", str(fw), str(script)]
        env = dict(os.environ, MICROPYBTUART=link.paths[0])
        ctx.fw = FwProcess(argv, env, name=f"{label} {w.name} n={n}")
        await ctx.fw.start()
        driver = asyncio.create_task(w.drive(ctx))
        assert ctx.tap is not None
        try:
            gate_s = 0.0
            if w.gated:
                gate = await ctx.fw.expect("GATE", STEP_TIMEOUT_S)
                ctx.marks["gate"] = gate.t
                await asyncio.wait_for(asyncio.shield(driver), STEP_TIMEOUT_S + n / 1000.0)
                if not w.calibration:
                    # Every event has reached the firmware's port (pty, or the port's queue in
                    # front of it) before the firmware may take any of them after the first.
                    await ctx.tap.wait_for(n, STEP_TIMEOUT_S)
                if not w.calibration:
                    # Both runs of a workload hold the gate equally long (unless the backlog
                    # takes longer), so the little the gate costs cancels out.
                    await asyncio.sleep(max(0.0, gate.t + GATE_HOLD_S - time.monotonic()))
                release = time.monotonic()
                gate_s = release - gate.t
                ctx.fw.send(b"g")
            else:
                await asyncio.wait_for(asyncio.shield(driver), RUN_TIMEOUT_S)
                release = ctx.marks["peer_start"]
            done = await ctx.fw.expect("DONE", RUN_TIMEOUT_S)
            if not driver.done():
                await asyncio.wait_for(driver, STEP_TIMEOUT_S)
            driver.result()
            counted = await ctx.fw.expect("COUNT", STEP_TIMEOUT_S)
            await ctx.fw.expect("END", STEP_TIMEOUT_S)
            rc = await ctx.fw.wait(STEP_TIMEOUT_S)
        except BenchError:
            raise
        except Exception as e:  # the peer (Bumble) or a timeout: report it with the firmware's output
            raise BenchError(f"{ctx.fw.name}: {type(e).__name__}: {e}\n--- output:\n{ctx.fw.output()}") from e
        finally:
            if not driver.done():
                driver.cancel()
                await asyncio.gather(driver, return_exceptions=True)
            await ctx.fw.kill()
        if rc != 0:
            raise BenchError(f"{ctx.fw.name} exited with {rc}\n{ctx.fw.output()}{await ctx.fw.stderr_text()}")
        _, got, alloc = counted.text.split()
        if int(got) != n:
            raise BenchError(f"{ctx.fw.name}: the handler counted {got} events, expected {n}")
        if not cg_out.exists():
            raise BenchError(f"{ctx.fw.name}: no callgrind output ({vg_log})")
        return Run(w.name, label, n, round_no, callgrind_total(cg_out), int(got), int(alloc),
                   round(time.monotonic() - t0, 2), round(done.t - release, 3), round(gate_s, 3), str(cg_out))
    finally:
        if fast_adv:
            fast_adv.__exit__(None, None, None)
        for tr in ctx.transports:
            try:
                await tr.close()
            except Exception:  # the transport may already be gone with the link
                pass
        await link.close()


# ---------------------------------------------------------------------------- per-function diff
ANNOTATE_RE = re.compile(r"^\s*([0-9,]+)\s+\(\s*[0-9.]+%\)\s+(.+?)\s*$")


@dataclass
class Entry:
    """One line of callgrind_annotate: a function (per source file and object)."""

    file: str
    func: str  # with callgrind's recursion suffix (name'2) removed
    obj: str
    level: int  # recursion level callgrind reports (1: outermost)
    ir: int


def split_key(key: str) -> tuple[str, str, str]:
    """'file:function [object]' -> (file, function, object)."""
    m = re.match(r"^(.*?)(?: \[(.+)\])?$", key)
    assert m
    name, obj = m[1], m[2] or ""
    # The file part ends at the first ':' that is not part of a Rust/C++ path ('::').
    parts = re.split(r"(?<!:):(?!:)", name, maxsplit=1)
    return (parts[0], parts[1], obj) if len(parts) == 2 else ("???", name, obj)


def annotate(path: Path, inclusive: bool) -> list[Entry]:
    out = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--auto=no", f"--inclusive={'yes' if inclusive else 'no'}", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout
    entries: list[Entry] = []
    for line in out.split("file:function", 1)[-1].splitlines():
        m = ANNOTATE_RE.match(line)
        if not m or "PROGRAM TOTALS" in m[2]:
            continue
        file, func, obj = split_key(m[2])
        level = re.search(r"'(\d+)$", func)
        entries.append(Entry(file, func[: level.start()] if level else func, obj,
                             int(level[1]) if level else 1, int(m[1].replace(",", ""))))
    if not entries:
        raise BenchError(f"callgrind_annotate gave no functions for {path}")
    return entries


def display_name(e: Entry) -> str:
    """The function, with ' (libc)' etc. for code outside the firmware binary."""
    if e.obj and Path(e.obj).name != "micropython":
        return f"{e.func} ({Path(e.obj).name.split('.so')[0]})"
    return e.func


def by_function(entries: list[Entry], inclusive: bool) -> dict[str, int]:
    """Ir per function name. Exclusive: all entries of a name (source files, recursion levels)
    summed. Inclusive: callgrind's figures for inner recursion levels (name'2 ...) count
    nested calls more than once, so only the outermost level's is kept."""
    costs: dict[str, int] = {}
    for e in entries:
        name = display_name(e)
        if inclusive:
            if e.level == 1:
                costs[name] = max(costs.get(name, 0), e.ir)
        else:
            costs[name] = costs.get(name, 0) + e.ir
    return costs


# Where an instruction is spent, by the function's source file (C built with -g) or, for code
# without debug info (our Rust, NimBLE as build.rs compiles it, libc), by its name.
MODULE = "module: bindings, glue, NimBLE OS layer, H4 transport"
COMPONENTS = ("MicroPython VM + runtime (handler, allocation)", MODULE, "port HCI UART", "NimBLE host",
              "libc (syscalls, locks, memcpy)", "other")


def component(e: Entry) -> str:
    f, fn = e.file, e.func
    if e.obj and Path(e.obj).name != "micropython":
        return COMPONENTS[4]
    if "/nimble/transport/" in f or "micropython_glue/" in f or "/extmod/modbluetooth.c" in f or "/extmod/nimble/" in f:
        return MODULE
    if "/mynewt-nimble/" in f:
        return COMPONENTS[3]
    if f.endswith(("/mpbthciport.c", "/mpnimbleport.c")) or "ubluetooth::port::" in fn:
        return COMPONENTS[2]
    if f != "???":
        return COMPONENTS[0]  # py/, shared/, ports/unix/, other extmod
    if "ubluetooth" in fn or fn.startswith(("ubt_", "core::", "alloc::", "std::", "<", "__rustc::", "__rust")):
        return MODULE
    if fn.startswith(("ble_", "os_", "_os_", "tc_", "uECC_", "put_le", "get_le", "put_be", "get_be", "swap_", "mem_")):
        return COMPONENTS[3]
    return COMPONENTS[5]


@dataclass
class FuncCost:
    function: str
    ir_per_event: float


# Frames of MicroPython's VM and scheduler, and thread/process entries: every event passes
# through them, so their inclusive cost tells nothing about where it goes.
GENERIC_FRAMES = re.compile(r"^(mp_(?!bluetooth)|fun_|time_sleep|main|execute_from|start_thread|clone|\(below main\)|__libc|0x)")


def top_functions(lo: Run, hi: Run, inclusive: bool, limit: int) -> list[FuncCost]:
    """The functions whose cost grew most from the N_lo to the N_hi run, per event (for
    inclusive costs, without GENERIC_FRAMES and outside-the-binary code)."""
    a = by_function(annotate(Path(lo.callgrind_out), inclusive), inclusive)
    b = by_function(annotate(Path(hi.callgrind_out), inclusive), inclusive)
    events = hi.n - lo.n
    diffs = {k: (b.get(k, 0) - a.get(k, 0)) / events for k in set(a) | set(b)}
    if inclusive:
        diffs = {k: v for k, v in diffs.items() if not GENERIC_FRAMES.match(k) and not k.endswith(")")}
    ranked = sorted(diffs.items(), key=lambda kv: kv[1], reverse=True)[:limit]
    return [FuncCost(k, round(v, 1)) for k, v in ranked]


def components(lo: Run, hi: Run) -> dict[str, float]:
    """Exclusive Ir per event by component (sums to the per-event total)."""
    events = hi.n - lo.n
    out = dict.fromkeys(COMPONENTS, 0.0)
    for sign, run_ in ((-1, lo), (1, hi)):
        for e in annotate(Path(run_.callgrind_out), False):
            out[component(e)] += sign * e.ir / events
    return {k: round(v, 1) for k, v in out.items()}


# ---------------------------------------------------------------------------- relinking
def make_vars(label: str) -> tuple[Path, list[str], Path]:
    """(port directory, make variables, build directory) that built this firmware: the
    top-level Makefile's for ours, bench/build_cmodule.sh's for the C module."""
    root = benchlib.ROOT
    mpy_cross = root / "build" / "mpy-cross" / "mpy-cross"
    extra = []
    if not (benchlib.MICROPY_DIR / "lib" / "micropython-lib" / "README.md").exists():
        extra = [f"MPY_LIB_DIR={root / 'build' / 'no-micropython-lib'}"]
    if label == "ours":
        build = root / "build" / "unix"
        return (benchlib.MICROPY_DIR / "ports" / "unix",
                [f"BUILD={build}", f"VARIANT_DIR={root / 'ports' / 'unix' / 'variants' / 'ubluetooth'}",
                 f"USER_C_MODULES={root}", "UBT_SKIP_CARGO=1", f"MICROPY_MPYCROSS={mpy_cross}", *extra], build)
    out = root / "build" / "bench" / "cmodule"
    build = out / "obj"
    return (out / "tree" / "ports" / "unix",
            [f"BUILD={build}", "VARIANT=standard",
             f"FROZEN_MANIFEST={root / 'ports' / 'unix' / 'variants' / 'ubluetooth' / 'manifest.py'}",
             f"MICROPY_MPYCROSS={mpy_cross}", "MICROPY_PY_BTREE=0", "MICROPY_PY_SSL=0",
             "MICROPY_SSL_MBEDTLS=0", "MICROPY_PY_BLUETOOTH=1", "MICROPY_BLUETOOTH_NIMBLE=1", *extra], build)


def relink_unstripped(label: str, built: Path, dest: Path) -> Path:
    """Links the firmware again from its build's objects with make's own link command, without
    stripping, and checks that stripping the result gives back `built` byte for byte."""
    port_dir, make_args, build = make_vars(label)
    dry = subprocess.run(["make", "-n", "-C", str(port_dir), *make_args, "-W", str(build / "main.o")],
                         capture_output=True, text=True)
    target = f" -o {build / 'micropython'} "
    cmds = [ln for ln in dry.stdout.splitlines() if target in ln and not ln.startswith(("echo", "size", "strip"))]
    if len(cmds) != 1:
        raise BenchError(f"{label}: cannot find the link command in `make -n` output:\n{dry.stdout[-3000:]}{dry.stderr[-2000:]}")
    out = dest / "micropython"
    dest.mkdir(parents=True, exist_ok=True)
    cmd = cmds[0].replace(target, f" -o {out} ").replace(f"-Map={build / 'micropython'}.map", f"-Map={dest / 'micropython.map'}")
    link = subprocess.run(cmd, shell=True, cwd=port_dir, capture_output=True, text=True)
    if link.returncode != 0:
        raise BenchError(f"{label}: relink failed: {link.stderr[-3000:]}")
    stripped = dest / "micropython.stripped"
    subprocess.run(["strip", "-o", str(stripped), str(out)], check=True)
    if stripped.read_bytes() != built.read_bytes():
        raise BenchError(f"{label}: the relinked firmware differs from {built} after strip (rebuilt meanwhile? "
                         f"run `{benchlib.HINTS[label]}` and try again)")
    stripped.unlink()
    return out


# ---------------------------------------------------------------------------- report
@dataclass
class Result:
    workload: str
    unit: str
    describe: str
    events: int
    per_event: dict[str, float]  # firmware -> Ir per event (per ms for a calibration)
    ratio_ours_over_C: float
    alloc_per_event: dict[str, float]  # GC heap bytes allocated per event (no GC ran meanwhile)
    idle_bound_pct: dict[str, float]  # firmware -> upper bound of the time-dependent share, %
    phase_s: dict[str, float]  # firmware -> wall time of the N_hi run's event phase
    top_ours_exclusive: list[FuncCost] = field(default_factory=list)
    top_ours_inclusive: list[FuncCost] = field(default_factory=list)
    top_C_exclusive: list[FuncCost] = field(default_factory=list)
    top_C_inclusive: list[FuncCost] = field(default_factory=list)
    components: dict[str, dict[str, float]] = field(default_factory=dict)  # firmware -> component -> Ir/event
    per_round: dict[str, list[float]] = field(default_factory=dict)  # firmware -> each round's Ir/event


def fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"


def summarise(w: Workload, runs: dict[tuple[str, int, int], Run], rounds: int, rates: dict[str, dict[str, float]],
              top: int) -> Result:
    """Per-event figures of one workload over all rounds: the median of the rounds' values; the
    other figures (allocation, bound, functions, components) from the round whose value is the
    median (the lower one of the middle two for an even count).

    `rates`: the calibrations' Ir per second, {"idle": {fw: rate}, "gated": {fw: rate}}. The
    bound on time-dependent cost: while events are processed the VM thread is busy, and at the
    gate it is blocked, so only the background polling ("gated" rate) runs alongside; for
    l2cap, which is not gated, the VM thread can also sit in the script's sleep loop between
    credit grants ("idle" rate). Bound = rate x (extra wall time of the N_hi run) / (Ir delta)."""
    events = w.n_hi - w.n_lo
    per_round: dict[str, list[float]] = {}
    per_event: dict[str, float] = {}
    alloc: dict[str, float] = {}
    bound: dict[str, float] = {}
    phase: dict[str, float] = {}
    pick: dict[str, tuple[Run, Run]] = {}
    for label in ("ours", "C"):
        # Rounds where both runs succeeded (a round lost to failed attempts has no pair).
        pairs = [(runs[(label, w.n_lo, k)], runs[(label, w.n_hi, k)]) for k in range(1, rounds + 1)
                 if (label, w.n_lo, k) in runs and (label, w.n_hi, k) in runs]
        if not pairs:
            raise BenchError(f"{w.name} on {label}: no round with both runs measured")
        values = [(hi.ir - lo.ir) / events for lo, hi in pairs]
        per_round[label] = [round(v, 1) for v in values]
        middle = sorted(range(len(values)), key=lambda i: values[i])[(len(values) - 1) // 2]
        lo, hi = pick[label] = pairs[middle]
        per_event[label] = statistics.median(values)
        alloc[label] = (hi.alloc_bytes - lo.alloc_bytes) / events
        phase[label] = hi.phase_s
        if not w.calibration:
            rate = rates["gated" if w.gated else "idle"][label]
            extra_s = max(0.0, hi.phase_s - lo.phase_s) + max(0.0, hi.gate_s - lo.gate_s)
            delta = hi.ir - lo.ir
            bound[label] = 100.0 * rate * extra_s / delta if delta > 0 else float("inf")
    res = Result(w.name, w.unit, w.describe, events, per_event,
                 per_event["ours"] / per_event["C"] if per_event["C"] else float("nan"), alloc, bound, phase,
                 per_round=per_round)
    if not w.calibration and top > 0:
        res.top_ours_exclusive = top_functions(*pick["ours"], False, top)
        res.top_ours_inclusive = top_functions(*pick["ours"], True, top)
        res.top_C_exclusive = top_functions(*pick["C"], False, top)
        res.top_C_inclusive = top_functions(*pick["C"], True, top)
    if not w.calibration:
        res.components = {lab: components(*pick[lab]) for lab in ("ours", "C")}
    return res


def print_results(results: list[Result], top: int) -> None:
    print("\nInstructions per event (callgrind Ir, whole process, all threads; (Ir(N_hi) - Ir(N_lo)) / events;"
          " median of the rounds, and their range)")
    rows: list[tuple[str, ...]] = []
    for r in results:
        if r.workload in ("idle", "gated"):
            continue
        spread = " / ".join(f"{fmt(min(r.per_round[lab]))}..{fmt(max(r.per_round[lab]))}" for lab in ("ours", "C"))
        rows.append((r.workload, r.unit, str(r.events), fmt(r.per_event["ours"]), fmt(r.per_event["C"]),
                     f"{r.ratio_ours_over_C:.2f}", spread, fmt(r.alloc_per_event["ours"]), fmt(r.alloc_per_event["C"]),
                     f"{r.idle_bound_pct['ours']:.1f}% / {r.idle_bound_pct['C']:.1f}%"))
    benchlib.print_table(("workload", "event", "events", "Ir/event ours", "Ir/event C", "ours/C",
                          "range ours / C", "heap B/event ours", "heap B/event C", "time-dep. <= ours / C"),
                         rows, left=2)
    for r in results:
        if r.workload in ("idle", "gated"):
            print(f"calibration {r.workload:<5} ({r.describe}): ours {fmt(r.per_event['ours'] * 1000)} Ir/s, "
                  f"C {fmt(r.per_event['C'] * 1000)} Ir/s")
    print("\nWhere the instructions go: exclusive Ir per event by component (ours / C)")
    events = [r for r in results if r.components]
    rows = []
    for comp in COMPONENTS:
        cells = [f"{fmt(r.components['ours'][comp])} / {fmt(r.components['C'][comp])}" for r in events]
        if any(abs(r.components[lab][comp]) >= 0.5 for r in events for lab in ("ours", "C")):
            rows.append((comp, *cells))
    benchlib.print_table(("component", *(f"{r.workload} (per {r.unit})" for r in events)), rows)
    if top <= 0:
        return
    for r in results:
        if r.workload in ("idle", "gated"):
            continue
        print(f"\n{r.workload}: top functions of ours, Ir per {r.unit} (difference of the N_hi and N_lo runs)")
        rows = [(f"{e.ir_per_event:,.0f}", e.function[:90], f"{i.ir_per_event:,.0f}", i.function[:90])
                for e, i in zip(r.top_ours_exclusive, r.top_ours_inclusive)]
        benchlib.print_table(("self", "function (exclusive)", "incl", "function (inclusive)"), rows, left=0)


# ---------------------------------------------------------------------------- main
async def measure(args: argparse.Namespace, firmwares: dict[str, Path], workdir: Path,
                  runs_out: list[Run], attempts: benchlib.Attempts) -> list[Result]:
    # Round by round, so that a burst of load elsewhere lands on one round of every workload.
    order = ["idle", "gated"] + [w for w in args.workloads if w not in ("idle", "gated")]
    runs: dict[tuple[str, str, int, int], Run] = {}
    for k in range(1, args.rounds + 1):
        for name in order:
            w = WORKLOADS[name]
            for n in (w.n_lo, w.n_hi):
                for label in ("ours", "C"):
                    r = await attempts.run(label, f"{name} n={n}", k, lambda: run_once(
                        w, label, firmwares[label], n, workdir, k))
                    if r is None:
                        continue
                    runs[(name, label, n, k)] = r
                    runs_out.append(r)
                    print(f"round {k}/{args.rounds} {name:<7} {label:<4} n={n:<5} Ir={r.ir:>13,}  phase {r.phase_s:6.2f} s"
                          f"  gate {r.gate_s:5.2f} s  run {r.wall_s:5.1f} s", flush=True)
    results: list[Result] = []
    rates: dict[str, dict[str, float]] = {}
    for name in order:
        w = WORKLOADS[name]
        mine = {(lab, n, k): r for (nm, lab, n, k), r in runs.items() if nm == name}
        res = summarise(w, mine, args.rounds, rates, args.top)
        if w.calibration:
            rates[name] = {lab: res.per_event[lab] * 1000.0 for lab in ("ours", "C")}  # Ir/ms -> Ir/s
        results.append(res)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="write raw numbers here")
    ap.add_argument("--ours", type=Path, default=benchlib.FIRMWARES["ours"])
    ap.add_argument("--cmodule", type=Path, default=benchlib.FIRMWARES["C"])
    ap.add_argument("--top", type=int, default=10, help="functions to list per workload (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of every measurement; medians are shown "
                    "(default %(default)s)")
    ap.add_argument("--tries", type=int, default=benchlib.DEFAULT_TRIES,
                    help="attempts per measurement before its round is given up (default %(default)s)")
    ap.add_argument("--keep", action="store_true", help=f"keep the callgrind files (in {OUT_DIR})")
    ap.add_argument("workloads", nargs="*", default=list(EVENT_WORKLOADS),
                    metavar="WORKLOAD")
    args = ap.parse_args()
    # Bumble's serial transport warns about the pty's missing modem lines; nothing to see.
    logging.basicConfig(level=logging.ERROR)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.tries < 1:
        ap.error("--tries must be at least 1")
    unknown = [w for w in args.workloads if w not in EVENT_WORKLOADS]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; choose from {list(EVENT_WORKLOADS)}")
    started = benchlib.now_iso()
    host = benchlib.host_info()
    t0 = time.monotonic()
    if shutil.which(VALGRIND) is None or shutil.which("callgrind_annotate") is None:
        print("valgrind (with callgrind_annotate) is needed", file=sys.stderr)
        return 2
    sources = {"ours": args.ours.resolve(), "C": args.cmodule.resolve()}
    runs: list[Run] = []
    results: list[Result] = []
    attempts = benchlib.Attempts(args.tries)
    error: str | None = None
    hashes: dict[str, str] = {}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=OUT_DIR))
    try:
        benchlib.check_firmwares(sources)
        snap = benchlib.snapshot(sources, workdir / "built")
        hashes = {k: benchlib.sha256(p) for k, p in snap.items()}
        firmwares = {label: relink_unstripped(label, snap[label], workdir / "unstripped" / label) for label in snap}
        results = asyncio.run(measure(args, firmwares, workdir, runs, attempts))
        print_results(results, args.top)
        attempts.print_summary()
    except (BenchError, subprocess.CalledProcessError) as e:
        error = str(e)
        print(f"\nBENCHMARK FAILED: {e}", file=sys.stderr)
    finally:
        if args.json:
            benchlib.write_json(args.json, {
                "benchmark": "cpu", "started": started, "finished": benchlib.now_iso(),
                "complete": error is None, "error": error, "commit": benchlib.git_commit(), "host": host,
                "rounds": args.rounds,
                "firmwares": {k: {"path": str(p), "sha256": hashes.get(k)} for k, p in sources.items()},
                "results": [asdict(r) for r in results],
                "runs": [asdict(r) for r in runs],
                "attempts": attempts.to_json(),
            })
            print(f"raw results: {args.json}")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"callgrind files kept in {workdir}")
    print(f"\n{len(runs)} runs in {time.monotonic() - t0:.0f} s")
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main())
