# Notifications queued just before the script blocks still leave. The peripheral calls
# gatts_write(..., send_update=True), which only queues the notification for the host's
# next poll, then at once blocks in sys.stdin.readline() (multitest.wait) while the central
# waits for it. Nothing comes from the controller meanwhile, so only the UART thread noticing
# the queued poll can get it out. (aioble's write(send_update=True) followed by an await
# does exactly this.)

from micropython import const
import time, machine, bluetooth

TIMEOUT_MS = 5000

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_GATTC_CHARACTERISTIC_RESULT = const(11)
_IRQ_GATTC_CHARACTERISTIC_DONE = const(12)
_IRQ_GATTC_WRITE_DONE = const(17)
_IRQ_GATTC_NOTIFY = const(18)

SERVICE_UUID = bluetooth.UUID("7e1a0100-3c5d-4b6e-8f70-0123456789ab")
CHAR_UUID = bluetooth.UUID("7e1a0101-3c5d-4b6e-8f70-0123456789ab")
SERVICES = ((SERVICE_UUID, ((CHAR_UUID, bluetooth.FLAG_READ | bluetooth.FLAG_NOTIFY),)),)

events = []
value_handle = None


def irq(event, data):
    global value_handle
    if event == _IRQ_GATTC_CHARACTERISTIC_RESULT and data[-1] == CHAR_UUID:
        value_handle = data[2]
    if event == _IRQ_GATTC_NOTIFY:
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


# Peripheral.
def instance0():
    multitest.globals(BDADDR=ble.config("mac"))
    ((handle,),) = ble.gatts_register_services(SERVICES)
    ble.gap_advertise(20_000, b"\x02\x01\x06\x04\xffMPY")
    multitest.next()
    try:
        conn = wait_for(_IRQ_CENTRAL_CONNECT)[1]
        for round in range(3):
            multitest.wait("subscribed %d" % round)
            ble.gatts_write(handle, b"update %d" % round, True)
            # Straight into a blocking read of stdin.
            multitest.wait("got it %d" % round)
            print("round", round, "done")
        multitest.wait("central done")
    finally:
        ble.active(0)


# Central.
def instance1():
    multitest.next()
    try:
        ble.gap_connect(BDADDR[0], BDADDR[1], 5000)
        conn = wait_for(_IRQ_PERIPHERAL_CONNECT)[1]
        ble.gattc_discover_characteristics(conn, 1, 0xFFFF)
        wait_for(_IRQ_GATTC_CHARACTERISTIC_DONE)
        ble.gattc_write(conn, value_handle + 1, b"\x01\x00", 1)
        wait_for(_IRQ_GATTC_WRITE_DONE)
        for round in range(3):
            multitest.broadcast("subscribed %d" % round)
            print("notified", wait_for(_IRQ_GATTC_NOTIFY)[1])
            multitest.broadcast("got it %d" % round)
        multitest.broadcast("central done")
        ble.gap_disconnect(conn)
        wait_for(_IRQ_PERIPHERAL_DISCONNECT)
    finally:
        ble.active(0)


ble = bluetooth.BLE()
ble.active(1)
ble.irq(irq)
