# The most links a Unix build holds (UBT_MAX_CONNECTIONS, 8 by default there): one central,
# eight peripherals.
#
# - The central connects to all eight; a ninth gap_connect and connectable advertising are then
#   refused with OSError(12) (ENOMEM), at once.
# - It reads a characteristic on every link.
# - Every link exchanges notifications both ways: a fixed number each way, each carrying its
#   sequence number, then a marker with how many were sent. Nothing may be lost, reordered or
#   corrupted. A refused notification (OSError, no buffer free) is sent again. Each peripheral
#   tells the central (multitest.broadcast) once it has the central's marker; only then does the
#   central end a link, since a link that ends drops whatever it still had to send.
# - One link ends, its slot serves a new connection, and the limit holds again.
#
# No wait has a deadline on the whole exchange: a receiver gives up only after TIMEOUT_MS
# without a single new notification, so a loaded machine makes it slower, never failing.

from micropython import const
import sys, time, machine, bluetooth

PERIPHERALS = const(8)
COUNT = const(100)
TIMEOUT_MS = 10000

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_GATTC_READ_RESULT = const(15)
_IRQ_GATTC_READ_DONE = const(16)
_IRQ_GATTC_NOTIFY = const(18)

SERVICE = (
    bluetooth.UUID("A5A5A5A5-FFFF-9999-1111-5A5A5A5A5A5A"),
    (
        (
            bluetooth.UUID("00000000-1111-2222-3333-444444444444"),
            bluetooth.FLAG_READ | bluetooth.FLAG_NOTIFY,
        ),
    ),
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
    elif event == _IRQ_GATTC_READ_RESULT:
        events.append((event, data[0], bytes(data[2])))
    elif event == _IRQ_GATTC_READ_DONE:
        events.append((event, data[0], data[2]))


def wait_for(event, timeout_ms=TIMEOUT_MS):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
        for i, e in enumerate(events):
            if e[0] == event:
                return events.pop(i)
        machine.idle()
    raise ValueError("Timeout waiting for {}".format(event))


def notify_all(value_handle, conns):
    """Sends COUNT notifications round-robin on each of `conns`, then each link's marker."""
    sent = [0] * len(conns)
    while min(sent) < COUNT:
        busy = True
        for i, conn_handle in enumerate(conns):
            if sent[i] < COUNT:
                try:
                    ble.gatts_notify(conn_handle, value_handle, payload(sent[i]))
                    sent[i] += 1
                    busy = False
                except OSError:
                    pass
        if busy:
            time.sleep_ms(1)
    for i, conn_handle in enumerate(conns):
        while True:
            try:
                ble.gatts_notify(conn_handle, value_handle, b"END\x00" + sent[i].to_bytes(4, "little"))
                break
            except OSError:
                time.sleep_ms(1)


def check(conn_handle):
    """Waits for the peer's marker on `conn_handle` as long as notifications keep arriving,
    then reports what arrived."""
    t0 = time.ticks_ms()
    seen = -1
    while time.ticks_diff(time.ticks_ms(), t0) < TIMEOUT_MS:
        r = rx.get(conn_handle)
        if r is not None and r[3] is not None:
            break
        if r is not None and r[0] != seen:
            seen = r[0]
            t0 = time.ticks_ms()
        machine.idle()
    r = rx.get(conn_handle, [0, 0, 0, None])
    print("marker", r[3], "received", r[0], "errors", r[2])


def wait_for_all(msg, n):
    """Waits for `n` peers to broadcast `msg`, in any order (multitest.wait drops the lines it
    doesn't want)."""
    while n:
        if sys.stdin.readline().rstrip() == "BROADCAST " + msg:
            n -= 1


def peripheral(n, again=False):
    ((value_handle,),) = ble.gatts_register_services((SERVICE,))
    ble.gatts_write(value_handle, ("peripheral %d" % n).encode())
    multitest.globals(**{"ADDR%d" % n: ble.config("mac"), "HANDLE": value_handle})
    ble.gap_advertise(100_000, b"\x02\x01\x06\x04\xffMPY")
    multitest.next()
    try:
        _, conn_handle, _ = wait_for(_IRQ_CENTRAL_CONNECT)
        print("connected")
        multitest.wait("go")
        notify_all(value_handle, [conn_handle])
        check(conn_handle)
        multitest.broadcast("received")
        wait_for(_IRQ_CENTRAL_DISCONNECT)
        print("disconnected")
        if again:
            # The central gives this slot to a new connection: ours, again.
            ble.gap_advertise(100_000, b"\x02\x01\x06\x04\xffMPY")
            wait_for(_IRQ_CENTRAL_CONNECT)
            print("connected again")
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


def instance4():
    peripheral(5)


def instance5():
    peripheral(6)


def instance6():
    peripheral(7)


def instance7():
    peripheral(8, again=True)


def past_the_maximum():
    # A peer nobody connected to: the refusal is about the slots, not the peer.
    try:
        ble.gap_connect(1, b"\xc0\x00\x00\x00\x00\x99", 2000)
        print("connect past the maximum: no error")
    except OSError as e:
        print("connect past the maximum:", e.errno)
    try:
        ble.gap_advertise(50_000, b"\x02\x01\x06")
        print("advertise past the maximum: no error")
    except OSError as e:
        print("advertise past the maximum:", e.errno)


# Central.
def instance8():
    ((value_handle,),) = ble.gatts_register_services((SERVICE,))
    print("same handle", value_handle == HANDLE)
    multitest.next()
    try:
        peers = [globals()["ADDR%d" % n] for n in range(1, PERIPHERALS + 1)]
        conns = []
        for addr_type, addr in peers:
            ble.gap_connect(addr_type, addr, 8000)
            _, conn_handle, peer = wait_for(_IRQ_PERIPHERAL_CONNECT)
            conns.append(conn_handle)
        print("connected", len(conns), "distinct", len(set(conns)))
        past_the_maximum()

        # A read on every link, one at a time (the 4 GATT procedure slots are shared).
        values = {}
        for conn_handle in conns:
            ble.gattc_read(conn_handle, HANDLE)
            _, h, value = wait_for(_IRQ_GATTC_READ_RESULT)
            values[h] = value
            wait_for(_IRQ_GATTC_READ_DONE)
        print("read", [values.get(h) for h in conns] == [("peripheral %d" % n).encode() for n in range(1, PERIPHERALS + 1)])

        dropped = ble.config("rx_dropped")
        multitest.broadcast("go")
        notify_all(value_handle, conns)
        for conn_handle in conns:
            check(conn_handle)
        wait_for_all("received", PERIPHERALS)
        # Packets the host refused during the exchange (e.g. for want of a buffer while it
        # waited for a command's answer). Start-up may count late answers of a slow controller.
        print("rx_dropped", ble.config("rx_dropped") - dropped)

        # The last link ends; its slot takes a new connection, and then none is free again.
        ble.gap_disconnect(conns[-1])
        wait_for(_IRQ_PERIPHERAL_DISCONNECT)
        ble.gap_connect(*peers[-1], 8000)
        _, conns[-1], peer = wait_for(_IRQ_PERIPHERAL_CONNECT)
        print("connected again", peer == peers[-1][1])
        past_the_maximum()

        for conn_handle in conns:
            ble.gap_disconnect(conn_handle)
            wait_for(_IRQ_PERIPHERAL_DISCONNECT)
        print("disconnected all")
    finally:
        ble.active(0)


ble = bluetooth.BLE()
ble.active(1)
ble.irq(irq)
