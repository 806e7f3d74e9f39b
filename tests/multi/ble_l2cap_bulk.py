# L2CAP bulk transfer: 1 MiB each way over one channel, in SDUs of random sizes (many larger
# than one 284-byte segment), with back-pressure (l2cap_send returning False, then
# _IRQ_L2CAP_SEND_READY) and reads into buffers of random sizes, some from inside the
# _IRQ_L2CAP_RECV handler. Both sides derive the expected byte stream from a shared seed and
# compare SHA-256 digests, so a lost, duplicated or reordered byte fails the test. While waiting
# for data or SEND_READY the scripts sleep (the UART thread wakes them) rather than spin, so the
# two instances don't starve the virtual radio of CPU for a minute.

from micropython import const
import time, machine, bluetooth, random, hashlib

TIMEOUT_MS = 10000

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_L2CAP_ACCEPT = const(22)
_IRQ_L2CAP_CONNECT = const(23)
_IRQ_L2CAP_DISCONNECT = const(24)
_IRQ_L2CAP_RECV = const(25)
_IRQ_L2CAP_SEND_READY = const(26)

_L2CAP_PSM = const(0x80)
_L2CAP_MTU = const(600)
_TOTAL = const(1024 * 1024)
# Progress is printed every _STEP bytes: run-multitests.py fails an instance that prints
# nothing for 10 s, and a loaded machine can take several seconds per step.
_STEP = const(_TOTAL // 32)

waiting_events = {}
send_ready = [False]
channel = [None]
rx = {"buf": bytearray(_L2CAP_MTU), "hash": None, "got": 0, "in_irq": 0, "busy": False}


def irq(event, data):
    if event in (_IRQ_CENTRAL_CONNECT, _IRQ_PERIPHERAL_CONNECT):
        waiting_events[event] = data[0]
    elif event == _IRQ_L2CAP_ACCEPT:
        conn_handle, cid, psm, our_mtu, peer_mtu = data
        print("_IRQ_L2CAP_ACCEPT", psm, our_mtu, peer_mtu)
        waiting_events[event] = None
    elif event == _IRQ_L2CAP_CONNECT:
        conn_handle, cid, psm, our_mtu, peer_mtu = data
        print("_IRQ_L2CAP_CONNECT", psm, our_mtu, peer_mtu)
        channel[0] = (conn_handle, cid)
        waiting_events[event] = None
    elif event == _IRQ_L2CAP_DISCONNECT:
        conn_handle, cid, psm, status = data
        print("_IRQ_L2CAP_DISCONNECT", psm, status)
        waiting_events[event] = None
    elif event == _IRQ_L2CAP_RECV:
        # Sometimes read part of the data right here; the rest waits for the main loop.
        # (Not while the main loop is between its own read and hash update: the scheduler
        # can run this handler in the middle of it.)
        if rx["hash"] is not None and not rx["busy"] and random.getrandbits(2) == 0:
            conn_handle, cid = data
            take(ble, conn_handle, cid, 1 + random.getrandbits(7))
            rx["in_irq"] += 1
    elif event == _IRQ_L2CAP_SEND_READY:
        send_ready[0] = True
    elif event in (_IRQ_CENTRAL_DISCONNECT, _IRQ_PERIPHERAL_DISCONNECT):
        waiting_events[event] = None


def wait_for_event(event, timeout_ms):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
        if event in waiting_events:
            return waiting_events.pop(event)
        machine.idle()
    raise ValueError("Timeout waiting for {}".format(event))


def stream_chunks(seed):
    # The byte stream and its SDU sizes: slices of a random 4 KiB block at random offsets.
    state = [seed * 2654435761 & 0xFFFFFFFF or 1]

    def rnd(bits):
        x = state[0]
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        state[0] = x
        return x & ((1 << bits) - 1)

    block = bytearray(4096 + _L2CAP_MTU)
    for i in range(len(block)):
        block[i] = rnd(8)
    mv = memoryview(block)
    left = _TOTAL
    while left:
        n = min(left, 1 + rnd(10) % _L2CAP_MTU)
        off = rnd(12)
        yield mv[off : off + n]
        left -= n


def expected_digest(seed):
    h = hashlib.sha256()
    for chunk in stream_chunks(seed):
        h.update(chunk)
    return h.digest()


def send_stream(ble, seed):
    conn_handle, cid = channel[0]
    sent = 0
    stalls = 0
    for chunk in stream_chunks(seed):
        send_ready[0] = False
        if not ble.l2cap_send(conn_handle, cid, chunk):
            stalls += 1
            t0 = time.ticks_ms()
            while not send_ready[0]:
                if time.ticks_diff(time.ticks_ms(), t0) > TIMEOUT_MS:
                    raise ValueError("Timeout waiting for SEND_READY")
                time.sleep_ms(1)
        before = sent
        sent += len(chunk)
        if sent // _STEP != before // _STEP and sent < _TOTAL:
            print("sent", sent // _STEP, "/ 32")
    print("sent", sent)
    return stalls


def take(ble, conn_handle, cid, size):
    mv = memoryview(rx["buf"])[:size]
    n = ble.l2cap_recvinto(conn_handle, cid, mv)
    if n:
        before = rx["got"]
        rx["hash"].update(mv[:n])
        rx["got"] += n
        if rx["got"] // _STEP != before // _STEP and rx["got"] < _TOTAL:
            print("received", rx["got"] // _STEP, "/ 32")
    return n


def recv_stream(ble, seed):
    conn_handle, cid = channel[0]
    rx["hash"] = hashlib.sha256()
    rx["got"] = 0
    t0 = time.ticks_ms()
    while rx["got"] < _TOTAL:
        avail = ble.l2cap_recvinto(conn_handle, cid, None)
        if avail:
            rx["busy"] = True
            take(ble, conn_handle, cid, 1 + random.getrandbits(10) % _L2CAP_MTU)
            rx["busy"] = False
            t0 = time.ticks_ms()
        else:
            if time.ticks_diff(time.ticks_ms(), t0) > TIMEOUT_MS:
                raise ValueError("Timeout receiving at {}".format(rx["got"]))
            time.sleep_ms(1)
    digest = rx["hash"].digest()
    rx["hash"] = None
    print("received", rx["got"], "match", digest == expected_digest(seed))
    print("leftover", ble.l2cap_recvinto(conn_handle, cid, None))


# Acting in peripheral role: listens, receives first, then sends.
def instance0():
    multitest.globals(BDADDR=ble.config("mac"))
    ble.gap_advertise(20_000, b"\x02\x01\x06\x04\xffMPY")
    ble.l2cap_listen(_L2CAP_PSM, _L2CAP_MTU)
    multitest.next()
    try:
        wait_for_event(_IRQ_CENTRAL_CONNECT, TIMEOUT_MS)
        wait_for_event(_IRQ_L2CAP_ACCEPT, TIMEOUT_MS)
        wait_for_event(_IRQ_L2CAP_CONNECT, TIMEOUT_MS)
        random.seed(1)
        recv_stream(ble, 11)
        multitest.broadcast("peripheral received")
        stalls = send_stream(ble, 22)
        print("back-pressure seen", stalls > 0, "reads in handler", rx["in_irq"] > 0)
        wait_for_event(_IRQ_L2CAP_DISCONNECT, 60000)
        wait_for_event(_IRQ_CENTRAL_DISCONNECT, TIMEOUT_MS)
    finally:
        ble.active(0)


# Acting in central role: connects, sends first, then receives.
def instance1():
    multitest.next()
    try:
        ble.gap_connect(*BDADDR)
        conn_handle = wait_for_event(_IRQ_PERIPHERAL_CONNECT, TIMEOUT_MS)
        ble.l2cap_connect(conn_handle, _L2CAP_PSM, _L2CAP_MTU)
        wait_for_event(_IRQ_L2CAP_CONNECT, TIMEOUT_MS)
        random.seed(2)
        stalls = send_stream(ble, 11)
        multitest.wait("peripheral received")
        recv_stream(ble, 22)
        print("back-pressure seen", stalls > 0, "reads in handler", rx["in_irq"] > 0)
        conn_handle, cid = channel[0]
        ble.l2cap_disconnect(conn_handle, cid)
        wait_for_event(_IRQ_L2CAP_DISCONNECT, TIMEOUT_MS)
        ble.gap_disconnect(conn_handle)
        wait_for_event(_IRQ_PERIPHERAL_DISCONNECT, TIMEOUT_MS)
    finally:
        ble.active(0)


ble = bluetooth.BLE()
ble.active(1)
ble.irq(irq)
