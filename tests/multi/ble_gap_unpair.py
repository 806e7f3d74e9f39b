# gap_unpair (beyond MicroPython): removing bonds through the script's key store.
#
# 1. The central pairs and bonds; both stores hold a type-1 and a type-2 record for the other.
# 2. The peripheral unpairs the central: refused with EBUSY while advertising (store unchanged),
#    then removed (SET_SECRET with None for both types); a second call finds nothing (ENOENT).
# 3. The central, still holding its bond, reconnects and re-encrypts with the old key: the
#    peripheral no longer has it, so encryption fails. The central is refused EBUSY while
#    scanning, then unpairs every bond while the link is up: its store empties and the link
#    closes (the disconnect events on both sides).
# 4. A fresh pairing works again and stores new records on both sides.
# 5. The peripheral unpairs every bond, here two (the central's and one stored for a device that
#    is not around): its store is empty afterwards.

from micropython import const
import time, machine, bluetooth

TIMEOUT_MS = 10000

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)

_ADV_DATA = b"\x02\x01\x06\x06\xffUNPAI"
# A bonded device that is not around: its store key (address type, address LSB first).
OTHER_KEY = b"\x00\x01\x02\x03\x04\x05\x06"

waiting_events = {}
secrets = {}
# Who the records are for, filled in once the peer's address is known.
names = {OTHER_KEY: "other"}


def name(key):
    return names.get(bytes(key), "?")


def key_of(addr_type, addr):
    return bytes([addr_type]) + bytes(reversed(addr))


def irq(event, data):
    if event == _IRQ_GET_SECRET:
        sec_type, index, key = data
        if key is None:
            found = [v for (t, k), v in sorted(secrets.items()) if t == sec_type]
            return found[index] if index < len(found) else None
        return secrets.get((sec_type, bytes(key)))
    elif event == _IRQ_SET_SECRET:
        sec_type, key, value = data
        if sec_type not in (1, 2):
            return True  # our IRK: not needed across restarts here
        if value is None:
            print("delete secret", sec_type, name(key))
            return secrets.pop((sec_type, bytes(key)), None) is not None
        secrets[(sec_type, bytes(key))] = bytes(value)
        return True
    elif event == _IRQ_CENTRAL_CONNECT:
        waiting_events[event] = (data[0], data[1], bytes(data[2]))
    elif event == _IRQ_PERIPHERAL_CONNECT:
        waiting_events[event] = data[0]
    elif event in (_IRQ_CENTRAL_DISCONNECT, _IRQ_PERIPHERAL_DISCONNECT):
        print("disconnected")
        waiting_events[event] = None
    elif event == _IRQ_ENCRYPTION_UPDATE:
        conn_handle, encrypted, authenticated, bonded, key_size = data
        print("_IRQ_ENCRYPTION_UPDATE", encrypted, authenticated, bonded, key_size)
        waiting_events[event] = encrypted


def wait_for_event(event, timeout_ms):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
        if event in waiting_events:
            return waiting_events.pop(event)
        machine.idle()
    raise ValueError("Timeout waiting for {}".format(event))


def show_store():
    print("store", sorted((t, name(k)) for t, k in secrets))


def attempt(label, f, *args):
    try:
        f(*args)
        print(label, "ok")
    except OSError as e:
        print(label, "OSError", e.errno)


# The peripheral.
def instance0():
    multitest.globals(BDADDR=ble.config("mac"))
    ble.gap_advertise(20_000, _ADV_DATA)
    multitest.next()
    try:
        # 1. Bonded by the central.
        _, addr_type, addr = wait_for_event(_IRQ_CENTRAL_CONNECT, TIMEOUT_MS)
        central = (addr_type, addr)
        names[key_of(addr_type, addr)] = "central"
        wait_for_event(_IRQ_ENCRYPTION_UPDATE, TIMEOUT_MS)
        wait_for_event(_IRQ_CENTRAL_DISCONNECT, TIMEOUT_MS)
        show_store()

        # 2. Forget the central: not while advertising, then for real, then it is unknown.
        ble.gap_advertise(20_000, _ADV_DATA)
        attempt("unpair while advertising", ble.gap_unpair, *central)
        show_store()
        ble.gap_advertise(None)
        attempt("unpair central", ble.gap_unpair, *central)
        show_store()
        attempt("unpair central again", ble.gap_unpair, *central)
        ble.gap_advertise(20_000, _ADV_DATA)
        multitest.broadcast("unpaired")

        # 3. The central's re-encryption fails here; the central then drops the link.
        wait_for_event(_IRQ_CENTRAL_CONNECT, TIMEOUT_MS)
        wait_for_event(_IRQ_CENTRAL_DISCONNECT, TIMEOUT_MS)
        show_store()

        # 4. A fresh pairing.
        ble.gap_advertise(20_000, _ADV_DATA)
        multitest.broadcast("advertising again")
        wait_for_event(_IRQ_CENTRAL_CONNECT, TIMEOUT_MS)
        wait_for_event(_IRQ_ENCRYPTION_UPDATE, TIMEOUT_MS)
        wait_for_event(_IRQ_CENTRAL_DISCONNECT, TIMEOUT_MS)
        show_store()

        # 5. Every bond, two of them.
        secrets[(2, OTHER_KEY)] = bytes(OTHER_KEY) + bytes(73)
        show_store()
        attempt("unpair all", ble.gap_unpair)
        show_store()
        attempt("unpair all again", ble.gap_unpair)
    finally:
        ble.active(0)


# The central.
def instance1():
    multitest.next()
    names[key_of(*BDADDR)] = "peripheral"
    try:
        # 1. Pair and bond.
        ble.gap_connect(*BDADDR)
        conn_handle = wait_for_event(_IRQ_PERIPHERAL_CONNECT, TIMEOUT_MS)
        ble.gap_pair(conn_handle)
        wait_for_event(_IRQ_ENCRYPTION_UPDATE, TIMEOUT_MS)
        ble.gap_disconnect(conn_handle)
        wait_for_event(_IRQ_PERIPHERAL_DISCONNECT, TIMEOUT_MS)
        show_store()

        # 3. Re-encrypt with the old bond: the peripheral has forgotten it.
        multitest.wait("unpaired")
        ble.gap_connect(*BDADDR)
        conn_handle = wait_for_event(_IRQ_PERIPHERAL_CONNECT, TIMEOUT_MS)
        ble.gap_pair(conn_handle)
        wait_for_event(_IRQ_ENCRYPTION_UPDATE, TIMEOUT_MS)
        # Not while scanning; then every bond, which also closes the link to the peripheral
        # (unless the controller already did after the failed encryption).
        ble.gap_scan(0)
        attempt("unpair all while scanning", ble.gap_unpair)
        ble.gap_scan(None)
        attempt("unpair all", ble.gap_unpair)
        wait_for_event(_IRQ_PERIPHERAL_DISCONNECT, TIMEOUT_MS)
        show_store()

        # 4. A fresh pairing.
        multitest.wait("advertising again")
        ble.gap_connect(*BDADDR)
        conn_handle = wait_for_event(_IRQ_PERIPHERAL_CONNECT, TIMEOUT_MS)
        ble.gap_pair(conn_handle)
        wait_for_event(_IRQ_ENCRYPTION_UPDATE, TIMEOUT_MS)
        ble.gap_disconnect(conn_handle)
        wait_for_event(_IRQ_PERIPHERAL_DISCONNECT, TIMEOUT_MS)
        show_store()
    finally:
        ble.active(0)


ble = bluetooth.BLE()
ble.irq(irq)
ble.config(bond=True, le_secure=True)
ble.active(1)
