# Pairing with a passkey, central side: it has a keyboard (io=KEYBOARD_ONLY). It connects to
# examples/pair_peripheral.py, fails to read the protected characteristic, pairs (typing the
# passkey the peripheral displays) and bonds, and reads it again. Its keys stay in memory here;
# see pair_peripheral.py for keeping them in a file.
import bluetooth
import time
from micropython import const

_IRQ_SCAN_RESULT = const(5)
_IRQ_SCAN_DONE = const(6)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_GATTC_CHARACTERISTIC_RESULT = const(11)
_IRQ_GATTC_CHARACTERISTIC_DONE = const(12)
_IRQ_GATTC_READ_RESULT = const(15)
_IRQ_GATTC_READ_DONE = const(16)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_PASSKEY_ACTION = const(31)
_IO_CAPABILITY_KEYBOARD_ONLY = const(2)
_PASSKEY_ACTION_INPUT = const(2)

_SECRET = bluetooth.UUID("8F2A0002-5C4B-4E7A-9B1D-2C3E4F506172")
NAME = b"mpy-pair"
# What the user reads off the peripheral's display and types in.
TYPED_PASSKEY = 246810
TIMEOUT_MS = 10_000

_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)

ble = bluetooth.BLE()
events: dict = {}
found: dict = {}
secrets: dict = {}


def irq(event, data):
    if event == _IRQ_SCAN_RESULT:
        addr_type, addr, adv_type, rssi, adv_data = data
        if "addr" not in found and NAME in bytes(adv_data):
            found["addr"] = (addr_type, bytes(addr))
            ble.gap_scan(None)
    elif event == _IRQ_GATTC_CHARACTERISTIC_RESULT:
        if data[-1] == _SECRET:
            found["value"] = data[2]
    elif event == _IRQ_GATTC_READ_RESULT:
        print("central: read", bytes(data[2]))
    elif event == _IRQ_GATTC_READ_DONE:
        events[event] = data[2]
    elif event == _IRQ_PASSKEY_ACTION:
        conn, action, _ = data
        if action == _PASSKEY_ACTION_INPUT:
            print("central: typing passkey", TYPED_PASSKEY)
            ble.gap_passkey(conn, action, TYPED_PASSKEY)
    elif event == _IRQ_ENCRYPTION_UPDATE:
        conn, encrypted, authenticated, bonded, key_size = data
        print("central: encrypted", bool(encrypted), "authenticated", bool(authenticated), "bonded", bool(bonded))
        events[event] = encrypted
    elif event == _IRQ_GET_SECRET:
        sec_type, index, key = data
        if key is None:
            matching = [v for (t, k), v in secrets.items() if t == sec_type]
            return matching[index] if index < len(matching) else None
        return secrets.get((sec_type, bytes(key)))
    elif event == _IRQ_SET_SECRET:
        sec_type, key, value = data
        if value is None:
            secrets.pop((sec_type, bytes(key)), None)
        else:
            secrets[sec_type, bytes(key)] = bytes(value)
        return True
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
ble.config(io=_IO_CAPABILITY_KEYBOARD_ONLY, mitm=True, bond=True, le_secure=True)
ble.active(True)
ble.gap_scan(5_000, 30_000, 30_000, True)
wait(_IRQ_SCAN_DONE)
ble.gap_connect(*found["addr"])
conn = wait(_IRQ_PERIPHERAL_CONNECT)
ble.gattc_discover_characteristics(conn, 1, 0xFFFF)
wait(_IRQ_GATTC_CHARACTERISTIC_DONE)
ble.gattc_read(conn, found["value"])
# 0x105: insufficient authentication.
print("central: read before pairing, status", hex(wait(_IRQ_GATTC_READ_DONE)))
ble.gap_pair(conn)
wait(_IRQ_ENCRYPTION_UPDATE)
ble.gattc_read(conn, found["value"])
print("central: read after pairing, status", hex(wait(_IRQ_GATTC_READ_DONE)))
ble.gap_disconnect(conn)
wait(_IRQ_PERIPHERAL_DISCONNECT)
ble.active(False)
print("central: done")
