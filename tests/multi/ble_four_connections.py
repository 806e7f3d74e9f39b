# Four simultaneous connections (the C module's limit; the Unix build allows 8, whose limit
# ble_max_connections.py checks): one central, four peripherals. Checks that each link
# disconnects independently and that a connected peer cannot be connected to again.

from micropython import const
import time, machine, bluetooth

TIMEOUT_MS = 10000

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)

events = []


def irq(event, data):
    if event in (_IRQ_CENTRAL_CONNECT, _IRQ_PERIPHERAL_CONNECT):
        events.append((event, data[0], bytes(data[2])))
    elif event in (_IRQ_CENTRAL_DISCONNECT, _IRQ_PERIPHERAL_DISCONNECT):
        events.append((event, data[0], bytes(data[2])))


def wait_for(event, timeout_ms=TIMEOUT_MS):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
        for i, e in enumerate(events):
            if e[0] == event:
                return events.pop(i)
        machine.idle()
    raise ValueError("Timeout waiting for {}".format(event))


def peripheral(n):
    multitest.globals(**{"ADDR%d" % n: ble.config("mac")})
    ble.gap_advertise(100_000, b"\x02\x01\x06\x04\xffMPY")
    multitest.next()
    try:
        wait_for(_IRQ_CENTRAL_CONNECT)
        print("connected")
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
    multitest.next()
    try:
        peers = [ADDR1, ADDR2, ADDR3, ADDR4]
        handles = []
        for addr_type, addr in peers:
            ble.gap_connect(addr_type, addr, 8000)
            _, conn_handle, peer = wait_for(_IRQ_PERIPHERAL_CONNECT)
            print("connected", peer == addr)
            handles.append(conn_handle)
        print("distinct handles", len(set(handles)) == 4)

        # Disconnect in a different order from connecting.
        print("gap_disconnect:", ble.gap_disconnect(handles[2]))
        _, h, _ = wait_for(_IRQ_PERIPHERAL_DISCONNECT)
        print("disconnected", h == handles[2])

        # A slot is free, but that peer is still connected.
        try:
            ble.gap_connect(*peers[0])
        except OSError as e:
            print("connect to a connected peer:", e.errno)

        for conn_handle in (handles[0], handles[3], handles[1]):
            print("gap_disconnect:", ble.gap_disconnect(conn_handle))
            _, h, _ = wait_for(_IRQ_PERIPHERAL_DISCONNECT)
            print("disconnected", h == conn_handle)
        print("unknown handle:", ble.gap_disconnect(handles[0]))
    finally:
        ble.active(0)


ble = bluetooth.BLE()
ble.active(1)
ble.irq(irq)
