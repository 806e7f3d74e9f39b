# Write-without-response throughput for `make bench` on the radio model (bench/airtime.py):
# the central writes 244-byte values (ATT MTU 247, so one 251-byte L2CAP PDU each) without
# response as fast as the link takes them for _SEND_MS, then a 1-byte marker written with
# response (so the central knows without blocking when everything arrived: the C module sends
# nothing while its script blocks on stdin); the peripheral times the bytes from the first
# write to the marker. Both instances wait _SETTLE_MS after
# connecting, so a host that asks for data length extension and the 2M PHY has them first.

from micropython import const
import time, machine, bluetooth

TIMEOUT_MS = 10000

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_GATTC_CHARACTERISTIC_RESULT = const(11)
_IRQ_GATTC_CHARACTERISTIC_DONE = const(12)
_IRQ_GATTC_WRITE_DONE = const(17)
_IRQ_MTU_EXCHANGED = const(21)

_MTU = const(247)
_VALUE_LEN = const(_MTU - 3)
_SEND_MS = const(3000)
_SETTLE_MS = const(500)

SERVICE_UUID = bluetooth.UUID("A5A5A5A5-FFFF-9999-1111-5A5A5A5A5A5A")
CHAR_UUID = bluetooth.UUID("00000000-1111-2222-3333-444444444444")
CHAR = (CHAR_UUID, bluetooth.FLAG_WRITE | bluetooth.FLAG_WRITE_NO_RESPONSE)
SERVICE = (SERVICE_UUID, (CHAR,))

waiting_events = {}
rx = {"bytes": 0, "first": None, "last": None, "done": False, "handle": None}


def irq(event, data):
    if event == _IRQ_GATTS_WRITE:
        n = len(ble.gatts_read(rx["handle"]))
        now = time.ticks_us()
        if n == 1:
            rx["last"] = now
            rx["done"] = True
        else:
            if rx["first"] is None:
                rx["first"] = now
            rx["bytes"] += n
    elif event in (_IRQ_CENTRAL_CONNECT, _IRQ_PERIPHERAL_CONNECT):
        waiting_events[event] = data[0]
    elif event == _IRQ_GATTC_CHARACTERISTIC_RESULT:
        if data[-1] == CHAR_UUID:
            waiting_events[event] = data[2]
    else:
        waiting_events[event] = None


def wait_for_event(event, timeout_ms):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
        if event in waiting_events:
            return waiting_events.pop(event)
        machine.idle()
    raise ValueError("Timeout waiting for {}".format(event))


def instance0():
    multitest.globals(BDADDR=ble.config("mac"))
    ((char_handle,),) = ble.gatts_register_services((SERVICE,))
    ble.gatts_set_buffer(char_handle, _VALUE_LEN)
    rx["handle"] = char_handle
    ble.gap_advertise(20_000, b"\x02\x01\x06\x04\xffMPY")
    multitest.next()
    try:
        wait_for_event(_IRQ_CENTRAL_CONNECT, TIMEOUT_MS)
        t0 = time.ticks_ms()
        while not rx["done"]:
            if time.ticks_diff(time.ticks_ms(), t0) > _SEND_MS + 60000:
                raise ValueError("Timeout waiting for the marker")
            time.sleep_ms(5)
        us = time.ticks_diff(rx["last"], rx["first"])
        print("received", rx["bytes"] > 0)
        multitest.output_metric("air write: {} bytes in {} us".format(rx["bytes"], us))
        wait_for_event(_IRQ_CENTRAL_DISCONNECT, 60000)
    finally:
        ble.active(0)


def instance1():
    multitest.next()
    try:
        ble.gap_connect(*BDADDR)
        conn_handle = wait_for_event(_IRQ_PERIPHERAL_CONNECT, TIMEOUT_MS)
        ble.gattc_exchange_mtu(conn_handle)
        wait_for_event(_IRQ_MTU_EXCHANGED, TIMEOUT_MS)
        ble.gattc_discover_characteristics(conn_handle, 1, 65535)
        value_handle = wait_for_event(_IRQ_GATTC_CHARACTERISTIC_RESULT, TIMEOUT_MS)
        wait_for_event(_IRQ_GATTC_CHARACTERISTIC_DONE, TIMEOUT_MS)
        time.sleep_ms(_SETTLE_MS)
        value = bytes(_VALUE_LEN)
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < _SEND_MS:
            try:
                ble.gattc_write(conn_handle, value_handle, value, 0)
            except OSError:
                time.sleep_ms(1)
        while True:
            try:
                ble.gattc_write(conn_handle, value_handle, b"E", 1)
                break
            except OSError:
                time.sleep_ms(1)
        wait_for_event(_IRQ_GATTC_WRITE_DONE, 60000)
        print("sent")
        ble.gap_disconnect(conn_handle)
        wait_for_event(_IRQ_PERIPHERAL_DISCONNECT, TIMEOUT_MS)
    finally:
        ble.active(0)


ble = bluetooth.BLE()
ble.active(1)
ble.config(mtu=_MTU)
ble.irq(irq)
