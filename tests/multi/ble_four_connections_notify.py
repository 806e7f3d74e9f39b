# Four connections exchanging notifications at full speed for 60 s: one central, four
# peripherals, every device notifying its peer(s) as fast as its stack takes them (an OSError,
# NimBLE out of buffers, means wait a moment and send the same one again).
#
# Each notification carries its sequence number, so the receiver checks order and content.
# At the end each side sends a short marker with how many it sent on that link; the receiver
# compares it with how many arrived. Nothing may be lost, reordered or corrupted.

from micropython import const
import time, machine, bluetooth

DURATION_MS = const(60_000)
# run-multitests.py fails an instance that prints nothing for 10 s.
PROGRESS_MS = const(5_000)
TIMEOUT_MS = 10_000

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_GATTC_NOTIFY = const(18)

SERVICE = (
    bluetooth.UUID("A5A5A5A5-FFFF-9999-1111-5A5A5A5A5A5A"),
    ((bluetooth.UUID("00000000-1111-2222-3333-444444444444"), bluetooth.FLAG_NOTIFY),),
)

events = []
# conn_handle -> [received, next expected sequence number, errors, count in the peer's marker]
rx = {}


def payload(seq):
    return seq.to_bytes(4, "little") * 5


def irq(event, data):
    if event == _IRQ_GATTC_NOTIFY:
        conn_handle, _, value = data
        r = rx.get(conn_handle)
        if r is None:
            r = rx[conn_handle] = [0, 0, 0, None]
        if len(value) == 8:
            r[3] = int.from_bytes(value[4:8], "little")
            return
        seq = int.from_bytes(value[0:4], "little")
        if seq != r[1] or bytes(value) != payload(seq):
            r[2] += 1
        r[0] += 1
        r[1] = seq + 1
    elif event in (_IRQ_CENTRAL_CONNECT, _IRQ_PERIPHERAL_CONNECT):
        events.append((event, data[0], bytes(data[2])))
    elif event in (_IRQ_CENTRAL_DISCONNECT, _IRQ_PERIPHERAL_DISCONNECT):
        events.append((event, data[0]))


def wait_for(event, timeout_ms=TIMEOUT_MS):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
        for i, e in enumerate(events):
            if e[0] == event:
                return events.pop(i)
        machine.idle()
    raise ValueError("Timeout waiting for {}".format(event))


def notify_for(value_handle, conns):
    """Notifies round-robin on `conns` for DURATION_MS; returns how many went on each."""
    sent = [0] * len(conns)
    t0 = time.ticks_ms()
    next_progress = PROGRESS_MS
    while True:
        elapsed = time.ticks_diff(time.ticks_ms(), t0)
        if elapsed >= DURATION_MS:
            break
        if elapsed >= next_progress:
            print("running", next_progress // 1000, "s")
            next_progress += PROGRESS_MS
        busy = 0
        for i, conn_handle in enumerate(conns):
            try:
                ble.gatts_notify(conn_handle, value_handle, payload(sent[i]))
                sent[i] += 1
            except OSError:
                busy += 1
        if busy == len(conns):
            time.sleep_ms(1)
    # The marker: how many went on this link.
    for i, conn_handle in enumerate(conns):
        while True:
            try:
                ble.gatts_notify(conn_handle, value_handle, b"END\x00" + sent[i].to_bytes(4, "little"))
                break
            except OSError:
                time.sleep_ms(1)
    return sent


def check(conn_handle, sent):
    """Waits for the peer's marker on `conn_handle`, then reports what arrived."""
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < TIMEOUT_MS:
        r = rx.get(conn_handle)
        if r is not None and r[3] is not None:
            break
        machine.idle()
    r = rx.get(conn_handle, [0, 0, 0, None])
    print(
        "marker", r[3] is not None, "lost", None if r[3] is None else r[3] - r[0],
        "errors", r[2], "over 100 each way", r[0] > 100 and sent > 100,
    )
    multitest.output_metric("conn {}: sent {} received {}".format(conn_handle, sent, r[0]))


def peripheral(n):
    ((value_handle,),) = ble.gatts_register_services((SERVICE,))
    multitest.globals(**{"ADDR%d" % n: ble.config("mac"), "HANDLE": value_handle})
    ble.gap_advertise(100_000, b"\x02\x01\x06\x04\xffMPY")
    multitest.next()
    try:
        _, conn_handle, _ = wait_for(_IRQ_CENTRAL_CONNECT)
        print("connected")
        multitest.wait("go")
        (sent,) = notify_for(value_handle, [conn_handle])
        check(conn_handle, sent)
        wait_for(_IRQ_CENTRAL_DISCONNECT)
        print("disconnected")
    finally:
        ble.active(0)


# Instances start in order and only see globals set by earlier ones, so the peripherals come
# first and the central last.
def instance0():
    peripheral(1)


def instance1():
    peripheral(2)


def instance2():
    peripheral(3)


def instance3():
    peripheral(4)


# Central.
def instance4():
    ((value_handle,),) = ble.gatts_register_services((SERVICE,))
    print("same handle", value_handle == HANDLE)
    multitest.next()
    try:
        conns = []
        for addr_type, addr in (ADDR1, ADDR2, ADDR3, ADDR4):
            ble.gap_connect(addr_type, addr, 8000)
            _, conn_handle, peer = wait_for(_IRQ_PERIPHERAL_CONNECT)
            print("connected", peer == addr)
            conns.append(conn_handle)
        multitest.broadcast("go")
        sent = notify_for(value_handle, conns)
        for conn_handle, n in zip(conns, sent):
            check(conn_handle, n)
        for conn_handle in conns:
            ble.gap_disconnect(conn_handle)
            wait_for(_IRQ_PERIPHERAL_DISCONNECT)
        print("disconnected all")
    finally:
        ble.active(0)


ble = bluetooth.BLE()
ble.active(1)
ble.irq(irq)
