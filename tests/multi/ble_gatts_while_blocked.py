# The GATT server answers while its script blocks in sys.stdin.readline(): multitest.wait()
# reads stdin, and the peer reads and writes our characteristic all the while. (On Unix the
# host only runs from MicroPython's scheduler; the UART thread interrupts the blocking read.)

from micropython import const
import time, machine, bluetooth

TIMEOUT_MS = 10000

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_GATTS_WRITE = const(3)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_GATTC_CHARACTERISTIC_RESULT = const(11)
_IRQ_GATTC_CHARACTERISTIC_DONE = const(12)
_IRQ_GATTC_READ_RESULT = const(15)
_IRQ_GATTC_READ_DONE = const(16)
_IRQ_GATTC_WRITE_DONE = const(17)

SERVICE_UUID = bluetooth.UUID("7e1a0000-3c5d-4b6e-8f70-0123456789ab")
CHAR_UUID = bluetooth.UUID("7e1a0001-3c5d-4b6e-8f70-0123456789ab")
SERVICES = ((SERVICE_UUID, ((CHAR_UUID, bluetooth.FLAG_READ | bluetooth.FLAG_WRITE),)),)

events = []
writes = []
value_handle = None


def irq(event, data):
    global value_handle
    if event == _IRQ_GATTS_WRITE:
        # Stamped so the script can tell these came while it was blocked.
        writes.append(time.ticks_ms())
        return
    if event == _IRQ_GATTC_CHARACTERISTIC_RESULT and data[-1] == CHAR_UUID:
        value_handle = data[2]
    if event == _IRQ_GATTC_READ_RESULT:
        events.append((event, bytes(data[2])))
        return
    events.append((event,) + tuple(data))


def wait_for(event, timeout_ms=TIMEOUT_MS):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
        for i, e in enumerate(events):
            if e[0] == event:
                return events.pop(i)
        machine.idle()
    raise ValueError("Timeout waiting for {}".format(event))


# Peripheral: blocks in stdin from the moment it advertises until the central is done.
def instance0():
    multitest.globals(BDADDR=ble.config("mac"))
    ((handle,),) = ble.gatts_register_services(SERVICES)
    ble.gatts_write(handle, b"initial")
    ble.gap_advertise(50_000, b"\x02\x01\x06\x04\xffMPY")
    multitest.next()
    try:
        t0 = time.ticks_ms()
        multitest.wait("central done")
        t1 = time.ticks_ms()
        print("writes while blocked:", len([t for t in writes if time.ticks_diff(t, t0) >= 0 and time.ticks_diff(t1, t) >= 0]))
        print("value:", ble.gatts_read(handle))
    finally:
        ble.active(0)


# Central.
def instance1():
    multitest.next()
    try:
        ble.gap_connect(BDADDR[0], BDADDR[1], 5000)
        _, conn, _, _ = wait_for(_IRQ_PERIPHERAL_CONNECT)
        ble.gattc_discover_characteristics(conn, 1, 0xFFFF)
        wait_for(_IRQ_GATTC_CHARACTERISTIC_DONE)
        for i in range(3):
            ble.gattc_read(conn, value_handle)
            print("read:", wait_for(_IRQ_GATTC_READ_RESULT)[1], wait_for(_IRQ_GATTC_READ_DONE)[-1])
            ble.gattc_write(conn, value_handle, b"write %d" % i, 1)
            print("write done:", wait_for(_IRQ_GATTC_WRITE_DONE)[-1])
        multitest.broadcast("central done")
        ble.gap_disconnect(conn)
        wait_for(_IRQ_PERIPHERAL_DISCONNECT)
    finally:
        ble.active(0)


ble = bluetooth.BLE()
ble.active(1)
ble.irq(irq)
