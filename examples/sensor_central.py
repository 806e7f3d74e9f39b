# Finds the temperature sensor (examples/sensor_peripheral.py) by its service, connects,
# discovers the Temperature characteristic and its CCCD, reads it, subscribes, prints five
# live values, then unsubscribes and disconnects.
import bluetooth
import struct
import time
from micropython import const

_IRQ_SCAN_RESULT = const(5)
_IRQ_SCAN_DONE = const(6)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_GATTC_SERVICE_RESULT = const(9)
_IRQ_GATTC_SERVICE_DONE = const(10)
_IRQ_GATTC_CHARACTERISTIC_RESULT = const(11)
_IRQ_GATTC_CHARACTERISTIC_DONE = const(12)
_IRQ_GATTC_DESCRIPTOR_RESULT = const(13)
_IRQ_GATTC_DESCRIPTOR_DONE = const(14)
_IRQ_GATTC_READ_RESULT = const(15)
_IRQ_GATTC_READ_DONE = const(16)
_IRQ_GATTC_WRITE_DONE = const(17)
_IRQ_GATTC_NOTIFY = const(18)

_ENV_SENSE = bluetooth.UUID(0x181A)
_TEMPERATURE = bluetooth.UUID(0x2A6E)
_CCCD = bluetooth.UUID(0x2902)
TIMEOUT_MS = 10_000

ble = bluetooth.BLE()
events: dict = {}
found: dict = {}
readings: list = []


def has_service(adv_data, uuid16):
    # Looks for a 16-bit service UUID in the advertising data's UUID lists.
    i = 0
    while i + 1 < len(adv_data):
        n = adv_data[i]
        if n == 0:
            break
        if adv_data[i + 1] in (0x02, 0x03):
            for j in range(i + 2, i + 1 + n, 2):
                if adv_data[j] | adv_data[j + 1] << 8 == uuid16:
                    return True
        i += 1 + n
    return False


def irq(event, data):
    if event == _IRQ_SCAN_RESULT:
        addr_type, addr, adv_type, rssi, adv_data = data
        if "addr" not in found and has_service(adv_data, 0x181A):
            found["addr"] = (addr_type, bytes(addr))
            ble.gap_scan(None)
    elif event == _IRQ_GATTC_SERVICE_RESULT:
        conn, start, end, uuid = data
        if uuid == _ENV_SENSE:
            found["range"] = (start, end)
    elif event == _IRQ_GATTC_CHARACTERISTIC_RESULT:
        conn, end_handle, value_handle, properties, uuid = data
        if uuid == _TEMPERATURE:
            found["value"] = value_handle
    elif event == _IRQ_GATTC_DESCRIPTOR_RESULT:
        conn, handle, uuid = data
        if uuid == _CCCD:
            found["cccd"] = handle
    elif event == _IRQ_GATTC_READ_RESULT:
        found["read"] = struct.unpack("<h", data[2])[0]
    elif event == _IRQ_GATTC_NOTIFY:
        conn, handle, value = data
        readings.append(struct.unpack("<h", value)[0])
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


def degrees(centi):
    return "%d.%02d degC" % (centi // 100, centi % 100)


ble.irq(irq)
ble.active(True)
print("central: scanning for the Environmental Sensing service")
ble.gap_scan(5_000, 30_000, 30_000, True)
wait(_IRQ_SCAN_DONE)
addr_type, addr = found["addr"]
print("central: found sensor at", ":".join("%02x" % b for b in addr))
ble.gap_connect(addr_type, addr)
conn = wait(_IRQ_PERIPHERAL_CONNECT)
print("central: connected")
ble.gattc_discover_services(conn, _ENV_SENSE)
wait(_IRQ_GATTC_SERVICE_DONE)
start, end = found["range"]
ble.gattc_discover_characteristics(conn, start, end)
wait(_IRQ_GATTC_CHARACTERISTIC_DONE)
ble.gattc_discover_descriptors(conn, found["value"], end)
wait(_IRQ_GATTC_DESCRIPTOR_DONE)
print("central: temperature value handle", found["value"], "CCCD", found["cccd"])
ble.gattc_read(conn, found["value"])
wait(_IRQ_GATTC_READ_DONE)
print("central: read", degrees(found["read"]))
ble.gattc_write(conn, found["cccd"], struct.pack("<H", 1), 1)
wait(_IRQ_GATTC_WRITE_DONE)
print("central: subscribed")
shown = 0
t0 = time.ticks_ms()
while shown < 5:
    if shown < len(readings):
        print("central: temperature", degrees(readings[shown]))
        shown += 1
    elif time.ticks_diff(time.ticks_ms(), t0) > TIMEOUT_MS:
        raise OSError("no notifications")
    time.sleep_ms(10)
ble.gattc_write(conn, found["cccd"], struct.pack("<H", 0), 1)
wait(_IRQ_GATTC_WRITE_DONE)
print("central: unsubscribed")
ble.gap_disconnect(conn)
wait(_IRQ_PERIPHERAL_DISCONNECT)
ble.active(False)
print("central: done")
