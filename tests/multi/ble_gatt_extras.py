# GATT behaviour MicroPython's own multitests don't cover: gatts_set_buffer append mode,
# a read denied by the server's _IRQ_GATTS_READ_REQUEST as the client sees it, an
# indication with custom data, and a connection dropped while a client read is pending.

from micropython import const
import time, machine, bluetooth

TIMEOUT_MS = 10000

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_GATTS_READ_REQUEST = const(4)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_GATTC_CHARACTERISTIC_RESULT = const(11)
_IRQ_GATTC_CHARACTERISTIC_DONE = const(12)
_IRQ_GATTC_READ_RESULT = const(15)
_IRQ_GATTC_READ_DONE = const(16)
_IRQ_GATTC_WRITE_DONE = const(17)
_IRQ_GATTC_INDICATE = const(19)
_IRQ_GATTS_INDICATE_DONE = const(20)

_ATT_APPLICATION_ERROR = const(0x80)

SERVICE_UUID = bluetooth.UUID("6d2b0000-0b53-4f2a-9c34-1d3c1a5e0001")
LOG_UUID = bluetooth.UUID("6d2b0001-0b53-4f2a-9c34-1d3c1a5e0001")
SECRET_UUID = bluetooth.UUID("6d2b0002-0b53-4f2a-9c34-1d3c1a5e0001")
TRAP_UUID = bluetooth.UUID("6d2b0003-0b53-4f2a-9c34-1d3c1a5e0001")
LOG = (LOG_UUID, bluetooth.FLAG_READ | bluetooth.FLAG_WRITE | bluetooth.FLAG_INDICATE)
SECRET = (SECRET_UUID, bluetooth.FLAG_READ)
TRAP = (TRAP_UUID, bluetooth.FLAG_READ)
SERVICES = ((SERVICE_UUID, (LOG, SECRET, TRAP)),)

events = []
handles = {}
conn = None


def irq(event, data):
    global conn
    if event in (_IRQ_CENTRAL_CONNECT, _IRQ_PERIPHERAL_CONNECT):
        conn = data[0]
    elif event == _IRQ_GATTS_READ_REQUEST:
        _, attr_handle = data
        if attr_handle == handles.get("secret"):
            return _ATT_APPLICATION_ERROR
        if attr_handle == handles.get("trap"):
            # Drop the link before the response can leave: the client's read stays pending.
            ble.gap_disconnect(conn)
        return 0
    elif event == _IRQ_GATTC_CHARACTERISTIC_RESULT:
        _, end_handle, value_handle, properties, uuid = data
        for name, u in (("log", LOG_UUID), ("secret", SECRET_UUID), ("trap", TRAP_UUID)):
            if uuid == u:
                handles[name] = value_handle
    elif event == _IRQ_GATTC_READ_RESULT:
        events.append((event, data[1], bytes(data[2])))
        return
    elif event == _IRQ_GATTC_INDICATE:
        events.append((event, data[1], bytes(data[2])))
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


# Peripheral (GATT server).
def instance0():
    multitest.globals(BDADDR=ble.config("mac"))
    ((log, secret, trap),) = ble.gatts_register_services(SERVICES)
    handles.update(log=log, secret=secret, trap=trap)
    ble.gatts_set_buffer(log, 100, True)
    ble.gatts_write(secret, b"hidden")
    ble.gatts_write(trap, b"never")
    ble.gap_advertise(50_000, b"\x02\x01\x06\x04\xffMPY")
    multitest.next()
    try:
        wait_for(_IRQ_CENTRAL_CONNECT)
        print("connected")

        # Three writes land one after another in the append buffer; reading drains it.
        for _ in range(3):
            wait_for(_IRQ_GATTS_WRITE)
        print("log:", ble.gatts_read(log))
        print("log after read:", ble.gatts_read(log))
        multitest.broadcast("log read")

        # The client subscribed to indications; send one with its own data.
        multitest.wait("subscribed")
        ble.gatts_indicate(conn, log, b"custom")
        _, _, value_handle, status = wait_for(_IRQ_GATTS_INDICATE_DONE)
        print("indicate done:", value_handle == log, status)
        print("stored value unchanged:", ble.gatts_read(log))

        wait_for(_IRQ_CENTRAL_DISCONNECT)
        print("disconnected")
    finally:
        ble.active(0)


# Central (GATT client).
def instance1():
    multitest.next()
    try:
        ble.gap_connect(BDADDR[0], BDADDR[1], 5000)
        wait_for(_IRQ_PERIPHERAL_CONNECT)
        print("connected")
        ble.gattc_discover_characteristics(conn, 1, 0xFFFF)
        wait_for(_IRQ_GATTC_CHARACTERISTIC_DONE)
        print("found", sorted(handles))

        for chunk in (b"abc", b"def", b"ghi"):
            ble.gattc_write(conn, handles["log"], chunk, 1)
            _, _, value_handle, status = wait_for(_IRQ_GATTC_WRITE_DONE)
            print("write done:", value_handle == handles["log"], status)
        multitest.wait("log read")

        # Denied by the server's handler: no result, and the ATT error in the status.
        ble.gattc_read(conn, handles["secret"])
        _, _, value_handle, status = wait_for(_IRQ_GATTC_READ_DONE)
        print("denied read:", value_handle == handles["secret"], status)
        print("results:", [e for e in events if e[0] == _IRQ_GATTC_READ_RESULT])

        # Subscribe to indications (the CCCD follows the value handle).
        ble.gattc_write(conn, handles["log"] + 1, b"\x02\x00", 1)
        wait_for(_IRQ_GATTC_WRITE_DONE)
        multitest.broadcast("subscribed")
        _, value_handle, data = wait_for(_IRQ_GATTC_INDICATE)
        print("indication:", value_handle == handles["log"], data)

        # The server drops the link while our read is pending: exactly one READ_DONE,
        # with a non-zero status, and the disconnect.
        ble.gattc_read(conn, handles["trap"])
        done = wait_for(_IRQ_GATTC_READ_DONE)
        wait_for(_IRQ_PERIPHERAL_DISCONNECT)
        # Not an ATT error, so no handle (0); status 7 is NimBLE's "not connected".
        print("pending read done:", done[2], done[3])
        time.sleep_ms(200)
        print("more read events:", [e[0] for e in events if e[0] in (15, 16)])
    finally:
        ble.active(0)


ble = bluetooth.BLE()
ble.active(1)
ble.irq(irq)
