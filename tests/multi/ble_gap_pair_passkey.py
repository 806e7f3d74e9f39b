# Pairing with MITM by passkey entry, in both directions (the peripheral displays and the central
# types it in, then the other way round), with legacy pairing and with LE Secure Connections, and
# a wrong passkey. After each good pairing the central reads a characteristic that needs an
# authenticated link, which is refused after the failed pairing.

from micropython import const
import time, machine, bluetooth

TIMEOUT_MS = 10000

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_GATTC_CHARACTERISTIC_RESULT = const(11)
_IRQ_GATTC_CHARACTERISTIC_DONE = const(12)
_IRQ_GATTC_READ_RESULT = const(15)
_IRQ_GATTC_READ_DONE = const(16)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_PASSKEY_ACTION = const(31)

_IO_DISPLAY_ONLY = const(0)
_IO_KEYBOARD_ONLY = const(2)

_PASSKEY_ACTION_INPUT = const(2)
_PASSKEY_ACTION_DISPLAY = const(3)

_FLAG_READ = const(0x0002)
_FLAG_READ_AUTHENTICATED = const(0x0400)

SERVICE_UUID = bluetooth.UUID("A5A5A5A5-FFFF-9999-1111-5A5A5A5A5A5A")
CHAR_UUID = bluetooth.UUID("00000000-1111-2222-3333-444444444444")
SERVICE = (SERVICE_UUID, ((CHAR_UUID, _FLAG_READ | _FLAG_READ_AUTHENTICATED),))

# The passkey the "user" sees on the displaying device and types into the other one.
PASSKEY = 314159

# (le_secure, peripheral io, central io, passkey the typing side enters)
ROUNDS = (
    (False, _IO_DISPLAY_ONLY, _IO_KEYBOARD_ONLY, PASSKEY),
    (False, _IO_KEYBOARD_ONLY, _IO_DISPLAY_ONLY, PASSKEY),
    (True, _IO_DISPLAY_ONLY, _IO_KEYBOARD_ONLY, PASSKEY),
    (True, _IO_KEYBOARD_ONLY, _IO_DISPLAY_ONLY, PASSKEY),
    (True, _IO_DISPLAY_ONLY, _IO_KEYBOARD_ONLY, PASSKEY + 1),
)

waiting_events = {}


def irq(event, data):
    if event in (_IRQ_CENTRAL_CONNECT, _IRQ_PERIPHERAL_CONNECT):
        waiting_events[event] = data[0]
    elif event in (_IRQ_CENTRAL_DISCONNECT, _IRQ_PERIPHERAL_DISCONNECT):
        waiting_events[event] = None
    elif event == _IRQ_GATTC_CHARACTERISTIC_RESULT:
        if data[-1] == CHAR_UUID:
            waiting_events[event] = data[2]
    elif event == _IRQ_GATTC_CHARACTERISTIC_DONE:
        waiting_events[event] = None
    elif event == _IRQ_GATTC_READ_RESULT:
        print("_IRQ_GATTC_READ_RESULT", bytes(data[-1]))
    elif event == _IRQ_GATTC_READ_DONE:
        print("_IRQ_GATTC_READ_DONE", data[-1])
        waiting_events[event] = None
    elif event == _IRQ_ENCRYPTION_UPDATE:
        conn_handle, encrypted, authenticated, bonded, key_size = data
        print("_IRQ_ENCRYPTION_UPDATE", encrypted, authenticated, bonded, key_size)
        waiting_events[event] = encrypted
    elif event == _IRQ_PASSKEY_ACTION:
        conn_handle, action, passkey = data
        print("_IRQ_PASSKEY_ACTION", action)
        if action == _PASSKEY_ACTION_DISPLAY:
            # Answered from inside the handler.
            ble.gap_passkey(conn_handle, action, PASSKEY)
        else:
            # Answered later, from the main loop, like a user typing.
            waiting_events[event] = (conn_handle, action)


def wait_for_event(event, timeout_ms):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
        if event in waiting_events:
            return waiting_events.pop(event)
        machine.idle()
    raise ValueError("Timeout waiting for {}".format(event))


def configure(le_secure, io):
    ble.config(le_secure=le_secure, io=io, mitm=True, bond=False)


def type_passkey_if_asked(le_secure, passkey):
    # The keyboard side gets INPUT; the display side has already answered in the handler.
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < TIMEOUT_MS:
        if _IRQ_PASSKEY_ACTION in waiting_events:
            conn_handle, action = waiting_events.pop(_IRQ_PASSKEY_ACTION)
            ble.gap_passkey(conn_handle, action, passkey)
            return
        if _IRQ_ENCRYPTION_UPDATE in waiting_events:
            return
        machine.idle()


# Acting in peripheral role.
def instance0():
    multitest.globals(BDADDR=ble.config("mac"))
    ((char_handle,),) = ble.gatts_register_services((SERVICE,))
    ble.gatts_write(char_handle, "authenticated")
    multitest.next()
    try:
        for le_secure, io, _, passkey in ROUNDS:
            configure(le_secure, io)
            ble.gap_advertise(20_000, b"\x02\x01\x06\x04\xffMPY")
            multitest.broadcast("advertising")
            wait_for_event(_IRQ_CENTRAL_CONNECT, TIMEOUT_MS)
            type_passkey_if_asked(le_secure, passkey)
            wait_for_event(_IRQ_ENCRYPTION_UPDATE, TIMEOUT_MS)
            wait_for_event(_IRQ_CENTRAL_DISCONNECT, TIMEOUT_MS)
            print("round done")
    finally:
        ble.active(0)


# Acting in central role.
def instance1():
    multitest.next()
    try:
        for le_secure, _, io, passkey in ROUNDS:
            configure(le_secure, io)
            multitest.wait("advertising")
            ble.gap_connect(*BDADDR)
            conn_handle = wait_for_event(_IRQ_PERIPHERAL_CONNECT, TIMEOUT_MS)
            ble.gattc_discover_characteristics(conn_handle, 1, 65535)
            value_handle = wait_for_event(_IRQ_GATTC_CHARACTERISTIC_RESULT, TIMEOUT_MS)
            wait_for_event(_IRQ_GATTC_CHARACTERISTIC_DONE, TIMEOUT_MS)
            ble.gap_pair(conn_handle)
            type_passkey_if_asked(le_secure, passkey)
            wait_for_event(_IRQ_ENCRYPTION_UPDATE, TIMEOUT_MS)
            # Refused with "insufficient authentication" (0x105) unless the pairing succeeded.
            ble.gattc_read(conn_handle, value_handle)
            wait_for_event(_IRQ_GATTC_READ_DONE, TIMEOUT_MS)
            ble.gap_disconnect(conn_handle)
            wait_for_event(_IRQ_PERIPHERAL_DISCONNECT, TIMEOUT_MS)
            print("round done")
    finally:
        ble.active(0)


ble = bluetooth.BLE()
ble.active(1)
ble.irq(irq)
