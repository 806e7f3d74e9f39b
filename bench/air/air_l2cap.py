# L2CAP throughput for `make bench` on the radio model (bench/airtime.py): the central sends
# 512-byte SDUs of zeros on an LE credit-based channel (MTU 512) as fast as the link takes them
# for _SEND_MS, then a 1-byte SDU 0xFF as the marker; the peripheral reads with l2cap_recvinto,
# times the bytes from the first to the marker and answers with an SDU of its own (so the
# central knows without blocking when everything arrived: the C module sends nothing while its
# script blocks on stdin). Both instances wait _SETTLE_MS after
# connecting, so a host that asks for data length extension and the 2M PHY has them first.

from micropython import const
import time, machine, bluetooth

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
_L2CAP_MTU = const(512)
_SEND_MS = const(3000)
_SETTLE_MS = const(500)

waiting_events = {}
send_ready = [False]
channel = [None]


def irq(event, data):
    if event in (_IRQ_CENTRAL_CONNECT, _IRQ_PERIPHERAL_CONNECT):
        waiting_events[event] = data[0]
    elif event == _IRQ_L2CAP_CONNECT:
        channel[0] = (data[0], data[1])
        waiting_events[event] = None
    elif event == _IRQ_L2CAP_SEND_READY:
        send_ready[0] = True
    else:
        waiting_events[event] = None


def wait_for_event(event, timeout_ms):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
        if event in waiting_events:
            return waiting_events.pop(event)
        machine.idle()
    raise ValueError("Timeout waiting for {}".format(event))


def send(conn_handle, cid, data):
    send_ready[0] = False
    if not ble.l2cap_send(conn_handle, cid, data):
        t0 = time.ticks_ms()
        while not send_ready[0]:
            if time.ticks_diff(time.ticks_ms(), t0) > TIMEOUT_MS:
                raise ValueError("Timeout waiting for SEND_READY")
            time.sleep_ms(1)


def instance0():
    multitest.globals(BDADDR=ble.config("mac"))
    ble.gap_advertise(20_000, b"\x02\x01\x06\x04\xffMPY")
    multitest.next()
    try:
        wait_for_event(_IRQ_CENTRAL_CONNECT, TIMEOUT_MS)
        ble.l2cap_listen(_L2CAP_PSM, _L2CAP_MTU)
        wait_for_event(_IRQ_L2CAP_CONNECT, TIMEOUT_MS)
        conn_handle, cid = channel[0]
        buf = bytearray(_L2CAP_MTU)
        got = 0
        first = None
        t0 = time.ticks_ms()
        while True:
            n = ble.l2cap_recvinto(conn_handle, cid, buf)
            if not n:
                if time.ticks_diff(time.ticks_ms(), t0) > _SEND_MS + 60000:
                    raise ValueError("Timeout receiving at {}".format(got))
                time.sleep_ms(1)
                continue
            now = time.ticks_us()
            if buf[n - 1] == 0xFF:
                got += n - 1
                break
            if first is None:
                first = now
            got += n
        us = time.ticks_diff(now, first)
        print("received", got > 0)
        send(conn_handle, cid, b"done")
        multitest.output_metric("air l2cap: {} bytes in {} us".format(got, us))
        wait_for_event(_IRQ_CENTRAL_DISCONNECT, 60000)
    finally:
        ble.active(0)


def instance1():
    multitest.next()
    try:
        ble.gap_connect(*BDADDR)
        conn_handle = wait_for_event(_IRQ_PERIPHERAL_CONNECT, TIMEOUT_MS)
        time.sleep_ms(100)
        ble.l2cap_connect(conn_handle, _L2CAP_PSM, _L2CAP_MTU)
        wait_for_event(_IRQ_L2CAP_CONNECT, TIMEOUT_MS)
        conn_handle, cid = channel[0]
        time.sleep_ms(_SETTLE_MS)
        waiting_events.pop(_IRQ_L2CAP_RECV, None)
        sdu = bytes(_L2CAP_MTU)
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < _SEND_MS:
            send(conn_handle, cid, sdu)
        send(conn_handle, cid, b"\xff")
        wait_for_event(_IRQ_L2CAP_RECV, 60000)
        print("sent")
        ble.gap_disconnect(conn_handle)
        wait_for_event(_IRQ_PERIPHERAL_DISCONNECT, TIMEOUT_MS)
    finally:
        ble.active(0)


ble = bluetooth.BLE()
ble.active(1)
ble.irq(irq)
