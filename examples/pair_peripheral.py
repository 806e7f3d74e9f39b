# Pairing with a passkey, peripheral side: it has a display (io=DISPLAY_ONLY), asks for MITM
# protection and bonding, and serves a characteristic that can only be read over an
# authenticated link. Bonds are kept in bonds.json through _IRQ_SET_SECRET, so they survive a
# restart. Runs until the central disconnects.
import binascii
import bluetooth
import json
import time
from micropython import const

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)
_IRQ_PASSKEY_ACTION = const(31)
_IO_CAPABILITY_DISPLAY_ONLY = const(0)
_PASSKEY_ACTION_DISPLAY = const(3)
_FLAG_READ = const(0x0002)
_FLAG_READ_AUTHENTICATED = const(0x0400)

_SERVICE = bluetooth.UUID("8F2A0001-5C4B-4E7A-9B1D-2C3E4F506172")
_SECRET = (bluetooth.UUID("8F2A0002-5C4B-4E7A-9B1D-2C3E4F506172"), _FLAG_READ | _FLAG_READ_AUTHENTICATED)
NAME = b"mpy-pair"
BONDS = "bonds.json"
# A real device would show a random number on its display; the demo's central types this one.
PASSKEY = 246810

ble = bluetooth.BLE()
secrets: dict = {}
state: dict = {"done": False}


def load_bonds():
    try:
        with open(BONDS) as f:
            for sec_type, key, value in json.load(f):
                secrets[sec_type, binascii.a2b_base64(key)] = binascii.a2b_base64(value)
    except OSError:
        pass


def save_bonds():
    with open(BONDS, "w") as f:
        json.dump([(t, binascii.b2a_base64(k), binascii.b2a_base64(v)) for (t, k), v in secrets.items()], f)


def irq(event, data):
    if event == _IRQ_CENTRAL_CONNECT:
        print("pair: central connected")
    elif event == _IRQ_CENTRAL_DISCONNECT:
        print("pair: central disconnected")
        state["done"] = True
    elif event == _IRQ_PASSKEY_ACTION:
        conn, action, _ = data
        if action == _PASSKEY_ACTION_DISPLAY:
            print("pair: passkey on the display:", PASSKEY)
            ble.gap_passkey(conn, action, PASSKEY)
    elif event == _IRQ_ENCRYPTION_UPDATE:
        conn, encrypted, authenticated, bonded, key_size = data
        print("pair: encrypted", bool(encrypted), "authenticated", bool(authenticated), "bonded", bool(bonded))
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
        save_bonds()
        return True


load_bonds()
# The handler goes in before active(True): NimBLE reads the stored keys while starting.
ble.irq(irq)
ble.config(io=_IO_CAPABILITY_DISPLAY_ONLY, mitm=True, bond=True, le_secure=True)
ble.active(True)
((secret,),) = ble.gatts_register_services(((_SERVICE, (_SECRET,)),))
ble.gatts_write(secret, b"for paired friends")
ble.gap_advertise(100_000, bytes((2, 0x01, 0x06, len(NAME) + 1, 0x09)) + NAME)
print("pair: advertising as", NAME.decode())
t0 = time.ticks_ms()
while not state["done"] and time.ticks_diff(time.ticks_ms(), t0) < 30_000:
    time.sleep_ms(20)
ble.active(False)
print("pair: done")
