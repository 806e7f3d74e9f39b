# LE Secure Connections with MITM by numeric comparison: both sides are shown the same six-digit
# number and accept it; then the peripheral rejects, then the central rejects, and the pairing
# fails: the side that accepted sees encrypted=0, the side that rejected gets the error from
# gap_passkey. The peripheral puts the number it was shown in a characteristic, so the
# central can check that both saw the same one.

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

_IO_DISPLAY_YESNO = const(1)
_PASSKEY_ACTION_NUMERIC_COMPARISON = const(4)

_FLAG_READ = const(0x0002)
_FLAG_READ_AUTHENTICATED = const(0x0400)

SERVICE_UUID = bluetooth.UUID("A5A5A5A5-FFFF-9999-1111-5A5A5A5A5A5A")
CHAR_UUID = bluetooth.UUID("00000000-1111-2222-3333-444444444444")
SERVICE = (SERVICE_UUID, ((CHAR_UUID, _FLAG_READ | _FLAG_READ_AUTHENTICATED),))

# (peripheral accepts, central accepts)
ROUNDS = ((True, True), (False, True), (True, False))

waiting_events = {}
shown = [None]
accept = [True]
char_handle = [None]


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
        print("same number", int(bytes(data[-1])) == shown[0])
    elif event == _IRQ_GATTC_READ_DONE:
        print("_IRQ_GATTC_READ_DONE", data[-1])
        waiting_events[event] = None
    elif event == _IRQ_ENCRYPTION_UPDATE:
        conn_handle, encrypted, authenticated, bonded, key_size = data
        print("_IRQ_ENCRYPTION_UPDATE", encrypted, authenticated, bonded, key_size)
        waiting_events[event] = encrypted
    elif event == _IRQ_PASSKEY_ACTION:
        conn_handle, action, passkey = data
        print("_IRQ_PASSKEY_ACTION", action, 0 <= passkey <= 999999)
        shown[0] = passkey
        if char_handle[0] is not None:
            ble.gatts_write(char_handle[0], str(passkey))
        try:
            ble.gap_passkey(conn_handle, action, 1 if accept[0] else 0)
        except OSError as e:
            # As in MicroPython's C module, a rejection is reported as NimBLE's SM error
            # ("numeric comparison failed", passed through negated) after it has taken effect.
            print("rejected", e.errno)


def wait_for_event(event, timeout_ms):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
        if event in waiting_events:
            return waiting_events.pop(event)
        machine.idle()
    raise ValueError("Timeout waiting for {}".format(event))


# Acting in peripheral role.
def instance0():
    multitest.globals(BDADDR=ble.config("mac"))
    ((char_handle[0],),) = ble.gatts_register_services((SERVICE,))
    multitest.next()
    try:
        for ours, _ in ROUNDS:
            accept[0] = ours
            ble.gap_advertise(20_000, b"\x02\x01\x06\x04\xffMPY")
            multitest.broadcast("advertising")
            wait_for_event(_IRQ_CENTRAL_CONNECT, TIMEOUT_MS)
            # NimBLE reports no encryption change to the side that rejected (it got the error).
            if ours:
                wait_for_event(_IRQ_ENCRYPTION_UPDATE, TIMEOUT_MS)
            wait_for_event(_IRQ_CENTRAL_DISCONNECT, TIMEOUT_MS)
            print("round done")
    finally:
        ble.active(0)


# Acting in central role.
def instance1():
    multitest.next()
    try:
        for _, ours in ROUNDS:
            accept[0] = ours
            multitest.wait("advertising")
            ble.gap_connect(*BDADDR)
            conn_handle = wait_for_event(_IRQ_PERIPHERAL_CONNECT, TIMEOUT_MS)
            ble.gattc_discover_characteristics(conn_handle, 1, 65535)
            value_handle = wait_for_event(_IRQ_GATTC_CHARACTERISTIC_RESULT, TIMEOUT_MS)
            wait_for_event(_IRQ_GATTC_CHARACTERISTIC_DONE, TIMEOUT_MS)
            ble.gap_pair(conn_handle)
            if ours:
                wait_for_event(_IRQ_ENCRYPTION_UPDATE, TIMEOUT_MS)
            else:
                time.sleep_ms(500)
            ble.gattc_read(conn_handle, value_handle)
            wait_for_event(_IRQ_GATTC_READ_DONE, TIMEOUT_MS)
            ble.gap_disconnect(conn_handle)
            wait_for_event(_IRQ_PERIPHERAL_DISCONNECT, TIMEOUT_MS)
            print("round done")
    finally:
        ble.active(0)


ble = bluetooth.BLE()
ble.config(le_secure=True, mitm=True, bond=False, io=_IO_DISPLAY_YESNO)
ble.active(1)
ble.irq(irq)
