# Talks to examples/uart_peripheral.py: finds it by name, subscribes to TX, sends a few lines
# in small write-without-response pieces (they queue in the peripheral's append buffer) and
# prints the answers.
import bluetooth
import struct
import time
from micropython import const

_IRQ_SCAN_RESULT = const(5)
_IRQ_SCAN_DONE = const(6)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_GATTC_CHARACTERISTIC_RESULT = const(11)
_IRQ_GATTC_CHARACTERISTIC_DONE = const(12)
_IRQ_GATTC_DESCRIPTOR_RESULT = const(13)
_IRQ_GATTC_DESCRIPTOR_DONE = const(14)
_IRQ_GATTC_WRITE_DONE = const(17)
_IRQ_GATTC_NOTIFY = const(18)

_TX = bluetooth.UUID("6E400003-B5A3-F393-E0A9-E50E24DCCA9E")
_RX = bluetooth.UUID("6E400002-B5A3-F393-E0A9-E50E24DCCA9E")
_CCCD = bluetooth.UUID(0x2902)
NAME = b"mpy-uart"
LINES = (b"hello", b"micropython over ble", b"append mode keeps every piece")
TIMEOUT_MS = 10_000

ble = bluetooth.BLE()
events: dict = {}
found: dict = {}
received = [b""]


def irq(event, data):
    if event == _IRQ_SCAN_RESULT:
        addr_type, addr, adv_type, rssi, adv_data = data
        if "addr" not in found and NAME in bytes(adv_data):
            found["addr"] = (addr_type, bytes(addr))
            ble.gap_scan(None)
    elif event == _IRQ_GATTC_CHARACTERISTIC_RESULT:
        conn, end_handle, value_handle, properties, uuid = data
        if uuid == _TX:
            found["tx"] = value_handle
        elif uuid == _RX:
            found["rx"] = value_handle
    elif event == _IRQ_GATTC_DESCRIPTOR_RESULT:
        conn, handle, uuid = data
        if uuid == _CCCD:
            found["cccd"] = handle
    elif event == _IRQ_GATTC_NOTIFY:
        received[0] += bytes(data[2])
    elif event == _IRQ_PERIPHERAL_CONNECT:
        events[event] = data[0]
    else:
        events[event] = list(data)  # a copy: the module reuses the tuple


def wait(event):
    t0 = time.ticks_ms()
    while event not in events:
        if time.ticks_diff(time.ticks_ms(), t0) > TIMEOUT_MS:
            raise OSError("timed out waiting for event %d" % event)
        time.sleep_ms(10)
    return events.pop(event)


ble.irq(irq)
ble.active(True)
ble.gap_scan(5_000, 30_000, 30_000, True)
wait(_IRQ_SCAN_DONE)
ble.gap_connect(*found["addr"])
conn = wait(_IRQ_PERIPHERAL_CONNECT)
print("client: connected")
ble.gattc_discover_characteristics(conn, 1, 0xFFFF)
wait(_IRQ_GATTC_CHARACTERISTIC_DONE)
ble.gattc_discover_descriptors(conn, found["tx"], found["tx"] + 1)
wait(_IRQ_GATTC_DESCRIPTOR_DONE)
ble.gattc_write(conn, found["cccd"], struct.pack("<H", 1), 1)
wait(_IRQ_GATTC_WRITE_DONE)
print("client: subscribed")
for line in LINES:
    data = line + b"\n"
    # Eight bytes at a time, without waiting for the peripheral to read.
    for i in range(0, len(data), 8):
        ble.gattc_write(conn, found["rx"], data[i : i + 8], 0)
    print("client: sent", line.decode())
t0 = time.ticks_ms()
while received[0].count(b"\n") < len(LINES):
    if time.ticks_diff(time.ticks_ms(), t0) > TIMEOUT_MS:
        raise OSError("missing answers")
    time.sleep_ms(10)
for answer in received[0].split(b"\n")[: len(LINES)]:
    print("client: answer", answer.decode())
ble.gap_disconnect(conn)
wait(_IRQ_PERIPHERAL_DISCONNECT)
ble.active(False)
print("client: done")
