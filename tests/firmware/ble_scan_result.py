# _IRQ_SCAN_RESULT from two other firmware instances advertising on hci1 (connectable,
# ADV_IND) and hci2 (connectable=False, ADV_SCAN_IND) (spec sections 5.4, 6 (events 5, 6), 7.1).
# Public addresses of the virtual controllers: F0:F1:F2:F3:F4:<index>.
# needs: controllers=3
# peer: _adv_peer.py conn
# peer: _adv_peer.py scan
import bluetooth
import time

_IRQ_SCAN_RESULT = 5
_IRQ_SCAN_DONE = 6

PEER_CONN = b'\xf0\xf1\xf2\xf3\xf4\x01'
PEER_SCAN = b'\xf0\xf1\xf2\xf3\xf4\x02'

ble = bluetooth.BLE()
results = {}  # (addr, adv_type) -> (addr_type, adv_data)
other = []
shape = []
done = []


def handler(event, data):
    if event == _IRQ_SCAN_RESULT:
        addr_type, addr, adv_type, rssi, adv_data = data
        key = (bytes(addr), adv_type)
        if key[0] not in (PEER_CONN, PEER_SCAN):
            other.append(key)
            return
        if not shape:
            try:
                addr[0] = 0
                ro = False
            except TypeError:
                ro = True
            shape.append((len(data), type(addr_type).__name__, type(addr).__name__, len(addr),
                          type(adv_type).__name__, type(rssi).__name__, -127 <= rssi <= 20,
                          type(adv_data).__name__, ro))
        results[key] = (addr_type, bytes(adv_data))
    elif event == _IRQ_SCAN_DONE:
        done.append(event)


def scan(active, wanted):
    results.clear()
    done.clear()
    ble.gap_scan(0, 30000, 30000, active)
    t0 = time.ticks_ms()
    while not all(k in results for k in wanted):
        if time.ticks_diff(time.ticks_ms(), t0) > 15000:
            print('timeout; seen', sorted(results))
            break
        time.sleep_ms(10)
    time.sleep_ms(300)  # let a few more reports arrive
    ble.gap_scan(None)
    print('scan done', done)
    for key in sorted(results):
        print(' ', key[0] == PEER_CONN and 'conn' or 'scan', 'adv_type', key[1], 'result', results[key])


print('active', ble.active(True))
ble.irq(handler)

print('-- passive scan')
scan(False, [(PEER_CONN, 0), (PEER_SCAN, 2)])
print('shape', shape)
n = len(results)
time.sleep_ms(200)
print('no results after stop', len(results) == n)

print('-- active scan')
scan(True, [(PEER_CONN, 0), (PEER_SCAN, 2), (PEER_CONN, 4), (PEER_SCAN, 4)])
print('unexpected advertisers', other)
ble.active(False)
