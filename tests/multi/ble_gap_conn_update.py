# Connection parameters: gap_connect with explicit intervals, then gap_update_conn from the
# central (an LL connection update) and from the peripheral (the LL Connection Parameters
# Request where the peer's controller has it, else an L2CAP Connection Parameter Update
# Request), each reported by _IRQ_CONNECTION_UPDATE on both sides with the values in force.
# Requests carry min == max so that every controller must pick exactly that interval.

from micropython import const
import time, machine, bluetooth

TIMEOUT_MS = 5000

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_CONNECTION_UPDATE = const(27)

# Every occurrence is kept, in order: on a controller that completes procedures at once
# (RootCanal), both updates can reach the central in one poll, before the script's first wait.
waiting_events = {}


def arrived(event, value):
    waiting_events.setdefault(event, []).append(value)


def irq(event, data):
    if event in (_IRQ_CENTRAL_CONNECT, _IRQ_PERIPHERAL_CONNECT):
        print("connect")
        arrived(event, data[0])
    elif event in (_IRQ_CENTRAL_DISCONNECT, _IRQ_PERIPHERAL_DISCONNECT):
        print("disconnect")
        arrived(event, None)
    elif event == _IRQ_CONNECTION_UPDATE:
        conn_handle, interval, latency, timeout, status = data
        # Interval in 1.25 ms units, timeout in 10 ms units.
        print("_IRQ_CONNECTION_UPDATE", interval, latency, timeout, status)
        arrived(event, status)


def wait_for_event(event, timeout_ms):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
        if waiting_events.get(event):
            return waiting_events[event].pop(0)
        machine.idle()
    raise ValueError("Timeout waiting for {}".format(event))


def try_update(*args):
    try:
        ble.gap_update_conn(*args)
        print("update ok")
    except OSError as e:
        print("update OSError", e.errno)


# Acting in peripheral role.
def instance0():
    multitest.globals(BDADDR=ble.config("mac"))
    ble.gap_advertise(20_000, b"\x02\x01\x06\x04\xffMPY")
    multitest.next()
    try:
        conn_handle = wait_for_event(_IRQ_CENTRAL_CONNECT, TIMEOUT_MS)
        # The central's update.
        wait_for_event(_IRQ_CONNECTION_UPDATE, TIMEOUT_MS)
        # Ours: 45 ms, latency 2, 4 s.
        try_update(conn_handle, 45_000, 45_000, 2, 4_000)
        wait_for_event(_IRQ_CONNECTION_UPDATE, TIMEOUT_MS)
        # Refused before anything is sent: the event does not come.
        try_update(conn_handle, 50_000, 40_000)  # min above max
        try_update(conn_handle, 5_000, 5_000)  # below 7.5 ms
        try_update(conn_handle, 1_000_000, 1_000_000, 0, 2_000)  # timeout too short
        try_update(conn_handle + 8, 30_000, 30_000)  # no such connection
        multitest.broadcast("updated")
        wait_for_event(_IRQ_CENTRAL_DISCONNECT, TIMEOUT_MS)
    finally:
        ble.active(0)


# Acting in central role.
def instance1():
    multitest.next()
    try:
        # 30 ms (24 units) at connection time.
        ble.gap_connect(*BDADDR, 5000, 30_000, 30_000)
        conn_handle = wait_for_event(_IRQ_PERIPHERAL_CONNECT, TIMEOUT_MS)
        # 15 ms, latency 0, 2 s (defaults: latency 0, 2.56 s).
        try_update(conn_handle, 15_000, 15_000, 0, 2_000)
        wait_for_event(_IRQ_CONNECTION_UPDATE, TIMEOUT_MS)
        # The peripheral's update.
        wait_for_event(_IRQ_CONNECTION_UPDATE, TIMEOUT_MS)
        multitest.wait("updated")
        ble.gap_disconnect(conn_handle)
        wait_for_event(_IRQ_PERIPHERAL_DISCONNECT, TIMEOUT_MS)
    finally:
        ble.active(0)


ble = bluetooth.BLE()
ble.active(1)
ble.irq(irq)
