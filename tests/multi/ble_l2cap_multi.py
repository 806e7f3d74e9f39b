# Several L2CAP channels at once (beyond MicroPython's C module, which has one): a central
# opens two channels to the first peripheral (one on each of two listening PSMs) and one to
# the second, and sends 1 MiB on each at the same time, in SDUs of random sizes. Each receiver
# compares the SHA-256 of what it got with the stream derived from the channel's seed. The
# first peripheral stops reading its second channel 64 KiB before its end and only resumes
# once the other two channels are complete: that channel's sender stalls on credits while the
# other two run to the end. (The pause is late so that the second peripheral, done by then,
# is not left silent for longer than run-multitests.py allows while the rest arrives.) Then the central opens channels until it gets OSError(ENOMEM) past the
# build's maximum.

from micropython import const
import time, machine, bluetooth, hashlib

TIMEOUT_MS = 20000

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_L2CAP_ACCEPT = const(22)
_IRQ_L2CAP_CONNECT = const(23)
_IRQ_L2CAP_DISCONNECT = const(24)
_IRQ_L2CAP_RECV = const(25)
_IRQ_L2CAP_SEND_READY = const(26)

_PSM_A = const(0x80)
_PSM_B = const(0x81)
_PSM_NONE = const(0x99)
_MTU = const(512)
_TOTAL = const(1024 * 1024)
_PAUSE_AT = const(_TOTAL - 64 * 1024)
# Progress lines: run-multitests.py fails an instance that prints nothing for 10 s.
_STEP = const(_TOTAL // 16)

events = []
# (conn_handle, cid) -> the sender's state: [chunks, chunk to resend or None, stalled].
senders = {}


def irq(event, data):
    if event == _IRQ_L2CAP_SEND_READY:
        conn_handle, cid, status = data
        s = senders.get((conn_handle, cid))
        if s is not None:
            s[2] = False
            if status:
                # The stalled SDU was dropped: send it again.
                s[1] = s[3]
    elif event in (
        _IRQ_CENTRAL_CONNECT,
        _IRQ_PERIPHERAL_CONNECT,
        _IRQ_CENTRAL_DISCONNECT,
        _IRQ_PERIPHERAL_DISCONNECT,
        _IRQ_L2CAP_ACCEPT,
        _IRQ_L2CAP_CONNECT,
        _IRQ_L2CAP_DISCONNECT,
    ):
        events.append((event,) + tuple(data))


def wait_for(event, timeout_ms=TIMEOUT_MS):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
        for i, e in enumerate(events):
            if e[0] == event:
                return events.pop(i)
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

    block = bytearray(4096 + _MTU)
    for i in range(len(block)):
        block[i] = rnd(8)
    mv = memoryview(block)
    left = _TOTAL
    while left:
        n = min(left, 1 + rnd(10) % _MTU)
        off = rnd(12)
        yield mv[off : off + n]
        left -= n


def expected_digest(seed):
    h = hashlib.sha256()
    for chunk in stream_chunks(seed):
        h.update(chunk)
    return h.digest()


class Receiver:
    def __init__(self, name, conn_handle, cid, seed):
        self.name = name
        self.ch = (conn_handle, cid)
        self.seed = seed
        self.hash = hashlib.sha256()
        self.got = 0
        self.paused = False

    def done(self):
        return self.got >= _TOTAL

    def take(self, buf):
        n = ble.l2cap_recvinto(self.ch[0], self.ch[1], buf)
        if n:
            self.hash.update(memoryview(buf)[:n])
            self.got += n
        return n

    def check(self):
        print(self.name, "received", self.got, "match", self.hash.digest() == expected_digest(self.seed))
        print(self.name, "leftover", ble.l2cap_recvinto(self.ch[0], self.ch[1], None))


def receive(receivers, total, pause=None, resume_on=None):
    # Reads every channel that is not paused; progress over all of them together, so the lines
    # come in the same order whatever the interleaving.
    buf = bytearray(_MTU)
    got = 0
    t0 = time.ticks_ms()
    while not all(r.done() for r in receivers):
        moved = 0
        for r in receivers:
            if r.done() or r.paused:
                continue
            n = r.take(buf)
            moved += n
            if pause is r and r.got >= _PAUSE_AT:
                r.paused = True
        if moved:
            before = got
            got += moved
            if got // _STEP != before // _STEP:
                print("received", got // _STEP, "/", total // _STEP)
            t0 = time.ticks_ms()
        elif pause is not None and pause.paused and all(r.done() for r in receivers if r is not pause):
            for r in receivers:
                if r is not pause:
                    r.check()
            # The paused channel's sender has been stalled all along; it goes on from here.
            multitest.wait(resume_on)
            # The paused channel's sender has an SDU on its way or waiting. When this channel
            # lagged and reached its pause after the others were done, the credits its last
            # read returned are only just out, so its SDU may still be in flight.
            t1 = time.ticks_ms()
            while not ble.l2cap_recvinto(pause.ch[0], pause.ch[1], None):
                if time.ticks_diff(time.ticks_ms(), t1) > 5000:
                    break
                time.sleep_ms(1)
            print(pause.name, "resumes, pending", ble.l2cap_recvinto(pause.ch[0], pause.ch[1], None) > 0)
            pause.paused = False
            pause = None
        else:
            if time.ticks_diff(time.ticks_ms(), t0) > TIMEOUT_MS:
                raise ValueError("Timeout receiving")
            time.sleep_ms(1)


def channels_by_psm(count):
    found = {}
    for _ in range(count):
        _, conn_handle, cid, psm, our_mtu, peer_mtu = wait_for(_IRQ_L2CAP_CONNECT)
        found[psm] = (conn_handle, cid)
    return found


# First peripheral: two listening PSMs, a channel on each; the channel on _PSM_B pauses.
def instance0():
    multitest.globals(ADDR0=ble.config("mac"))
    ble.gap_advertise(20_000, b"\x02\x01\x06\x04\xffMPY")
    ble.l2cap_listen(_PSM_A, _MTU)
    ble.l2cap_listen(_PSM_B, _MTU)
    try:
        ble.l2cap_listen(_PSM_A, _MTU)
    except OSError as e:
        print("listen twice on one PSM:", e.errno)
    multitest.next()
    try:
        wait_for(_IRQ_CENTRAL_CONNECT)
        chans = channels_by_psm(2)
        print("two channels on one link", chans[_PSM_A][0] == chans[_PSM_B][0], chans[_PSM_A][1] != chans[_PSM_B][1])
        a = Receiver("A", chans[_PSM_A][0], chans[_PSM_A][1], 1)
        b = Receiver("B", chans[_PSM_B][0], chans[_PSM_B][1], 2)
        receive([a, b], 2 * _TOTAL, pause=b, resume_on="C done")
        b.check()
        multitest.broadcast("B done")
        wait_for(_IRQ_CENTRAL_DISCONNECT, 60000)
        print("disconnected")
    finally:
        ble.active(0)


# Second peripheral: one channel.
def instance1():
    multitest.globals(ADDR1=ble.config("mac"))
    ble.gap_advertise(20_000, b"\x02\x01\x06\x04\xffMPY")
    ble.l2cap_listen(_PSM_A, _MTU)
    multitest.next()
    try:
        wait_for(_IRQ_CENTRAL_CONNECT)
        chans = channels_by_psm(1)
        c = Receiver("C", chans[_PSM_A][0], chans[_PSM_A][1], 3)
        receive([c], _TOTAL)
        c.check()
        multitest.broadcast("C done")
        wait_for(_IRQ_CENTRAL_DISCONNECT, 60000)
        print("disconnected")
    finally:
        ble.active(0)


def send_all(chans):
    # Round-robin over the channels; a stalled one waits for its own SEND_READY while the
    # others go on. Entry: [chunks, chunk to resend or None, stalled, last chunk].
    for ch, seed in chans:
        senders[ch] = [stream_chunks(seed), None, False, None]
    sent = 0
    left = len(chans)
    t0 = time.ticks_ms()
    while left:
        moved = False
        for ch, _ in chans:
            s = senders[ch]
            if s[0] is None or s[2]:
                continue
            chunk = s[1]
            s[1] = None
            if chunk is None:
                chunk = next(s[0], None)
                if chunk is None:
                    s[0] = None
                    left -= 1
                    continue
                before = sent
                sent += len(chunk)
                if sent // _STEP != before // _STEP:
                    print("sent", sent // _STEP, "/", 3 * _TOTAL // _STEP)
            s[3] = chunk
            s[2] = True
            if ble.l2cap_send(ch[0], ch[1], chunk):
                s[2] = False
            moved = True
        if moved:
            t0 = time.ticks_ms()
        else:
            # Long enough for the paused receiver: it resumes once the other two are done.
            if time.ticks_diff(time.ticks_ms(), t0) > 3 * TIMEOUT_MS:
                raise ValueError("Timeout sending")
            time.sleep_ms(1)


# Central: two channels to the first peripheral, one to the second, all sending at once.
def instance2():
    multitest.next()
    try:
        handles = []
        for addr in (ADDR0, ADDR1):
            ble.gap_connect(*addr)
            handles.append(wait_for(_IRQ_PERIPHERAL_CONNECT)[1])
        # Both channels to the first peripheral are requested before either is open.
        ble.l2cap_connect(handles[0], _PSM_A, _MTU)
        ble.l2cap_connect(handles[0], _PSM_B, _MTU)
        ble.l2cap_connect(handles[1], _PSM_A, _MTU)
        chans = {}
        for _ in range(3):
            _, conn_handle, cid, psm, our_mtu, peer_mtu = wait_for(_IRQ_L2CAP_CONNECT)
            chans[(conn_handle == handles[1], psm)] = (conn_handle, cid)
        print("three channels open")
        send_all([(chans[(False, _PSM_A)], 1), (chans[(False, _PSM_B)], 2), (chans[(True, _PSM_A)], 3)])
        print("all sent")
        multitest.wait("B done")

        # Past the maximum: requests to a PSM nobody listens on, until one is refused at once.
        opened = 0
        while True:
            try:
                ble.l2cap_connect(handles[1], _PSM_NONE, _MTU)
                opened += 1
            except OSError as e:
                print("past the maximum:", e.errno)
                break
            if opened > 40:
                print("no maximum")
                break
        refused = 0
        for _ in range(opened):
            status = wait_for(_IRQ_L2CAP_DISCONNECT)[4]
            refused += status != 0
        print("pending ones refused by the peer", refused == opened)

        for h in handles:
            ble.gap_disconnect(h)
            wait_for(_IRQ_PERIPHERAL_DISCONNECT)
        print("disconnected")
    finally:
        ble.active(0)


ble = bluetooth.BLE()
ble.active(1)
ble.irq(irq)
