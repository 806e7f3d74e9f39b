# Privacy: after bonding (which exchanges identity keys), the peripheral switches to resolvable
# private addresses (addr_mode=2). Its bonded central resolves the RPA through the stored IRK:
# scan results and the connection show the peripheral's identity address (type 2, "public
# identity"), and the link encrypts with the bond's keys. A third device without the bond sees
# only a changing random address.

from micropython import const
import time, machine, bluetooth

TIMEOUT_MS = 10000

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_SCAN_RESULT = const(5)
_IRQ_SCAN_DONE = const(6)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)

_ADV_DATA = b"\x02\x01\x06\x05\xffPRIV"

waiting_events = {}
secrets = {}
seen = []
secret_writes = [0]


def irq(event, data):
    if event == _IRQ_GET_SECRET:
        sec_type, index, key = data
        if key is None:
            found = [v for (t, k), v in secrets.items() if t == sec_type]
            return found[index] if index < len(found) else None
        return secrets.get((sec_type, bytes(key)))
    elif event == _IRQ_SET_SECRET:
        sec_type, key, value = data
        if value is None:
            secrets.pop((sec_type, bytes(key)), None)
        else:
            secrets[(sec_type, bytes(key))] = bytes(value)
        secret_writes[0] += 1
        return True
    elif event == _IRQ_SCAN_RESULT:
        addr_type, addr, adv_type, rssi, adv_data = data
        if bytes(adv_data) == _ADV_DATA and not seen:
            seen.append((addr_type, bytes(addr)))
            ble.gap_scan(None)
    elif event == _IRQ_SCAN_DONE:
        waiting_events[event] = None
    elif event == _IRQ_CENTRAL_CONNECT:
        waiting_events[event] = data[0]
    elif event == _IRQ_PERIPHERAL_CONNECT:
        waiting_events[event] = (data[0], data[1], bytes(data[2]))
    elif event in (_IRQ_CENTRAL_DISCONNECT, _IRQ_PERIPHERAL_DISCONNECT):
        waiting_events[event] = None
    elif event == _IRQ_ENCRYPTION_UPDATE:
        print("_IRQ_ENCRYPTION_UPDATE", *data[1:])
        waiting_events[event] = None


def wait_for_event(event, timeout_ms):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
        if event in waiting_events:
            return waiting_events.pop(event)
        machine.idle()
    raise ValueError("Timeout waiting for {}".format(event))


def scan_for_peripheral():
    seen.clear()
    ble.gap_scan(5000, 30000, 30000, True)
    wait_for_event(_IRQ_SCAN_DONE, TIMEOUT_MS)
    return seen[0] if seen else None


# The peripheral: bonds with its identity address, then advertises with RPAs.
def instance0():
    multitest.globals(BDADDR=ble.config("mac"))
    ble.gap_advertise(20_000, _ADV_DATA)
    multitest.next()
    try:
        wait_for_event(_IRQ_CENTRAL_CONNECT, TIMEOUT_MS)
        wait_for_event(_IRQ_ENCRYPTION_UPDATE, TIMEOUT_MS)
        wait_for_event(_IRQ_CENTRAL_DISCONNECT, TIMEOUT_MS)
        ble.config(addr_mode=2)
        ble.gap_advertise(20_000, _ADV_DATA)
        multitest.broadcast("private")
        wait_for_event(_IRQ_CENTRAL_CONNECT, TIMEOUT_MS)
        wait_for_event(_IRQ_ENCRYPTION_UPDATE, TIMEOUT_MS)
        wait_for_event(_IRQ_CENTRAL_DISCONNECT, TIMEOUT_MS)
    finally:
        ble.active(0)


# A bystander without the bond.
def instance1():
    multitest.next()
    try:
        multitest.wait("private")
        found = scan_for_peripheral()
        addr_type, addr = found
        print("stranger sees type", addr_type, "identity", addr == BDADDR[1],
              "rpa", addr[0] >> 6 == 1)
        multitest.broadcast("stranger done")
    finally:
        ble.active(0)


# The bonded central.
def instance2():
    multitest.next()
    try:
        ble.gap_connect(*BDADDR)
        conn_handle, _, _ = wait_for_event(_IRQ_PERIPHERAL_CONNECT, TIMEOUT_MS)
        ble.gap_pair(conn_handle)
        wait_for_event(_IRQ_ENCRYPTION_UPDATE, TIMEOUT_MS)
        ble.gap_disconnect(conn_handle)
        wait_for_event(_IRQ_PERIPHERAL_DISCONNECT, TIMEOUT_MS)
        multitest.wait("stranger done")
        addr_type, addr = scan_for_peripheral()
        print("bonded central sees type", addr_type, "identity", addr == BDADDR[1])
        ble.gap_connect(addr_type, addr)
        conn_handle, addr_type, addr = wait_for_event(_IRQ_PERIPHERAL_CONNECT, TIMEOUT_MS)
        print("connected to type", addr_type, "identity", addr == BDADDR[1])
        writes = secret_writes[0]
        ble.gap_pair(conn_handle)
        wait_for_event(_IRQ_ENCRYPTION_UPDATE, TIMEOUT_MS)
        # Encrypted with the bond's keys: nothing new to store.
        print("secrets written again", secret_writes[0] - writes)
        ble.gap_disconnect(conn_handle)
        wait_for_event(_IRQ_PERIPHERAL_DISCONNECT, TIMEOUT_MS)
    finally:
        ble.active(0)


ble = bluetooth.BLE()
ble.irq(irq)
ble.config(bond=True, le_secure=True)
ble.active(1)
