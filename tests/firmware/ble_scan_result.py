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

# A memoryview or data tuple kept past its handler reads as empty; so do ones kept from
# earlier events once a later one's handler has returned (they are reused, not allocated). An event raised inside a handler (gap_scan(None)
# raises _IRQ_SCAN_DONE at once) leaves the outer handler's views intact.
print('-- kept views, nested event')
kept = []
nested = []


def keeping(event, data):
    if event == _IRQ_SCAN_RESULT and len(kept) < 4:
        addr, adv_data = data[1], data[4]
        kept.append((data, addr, adv_data))
        if len(kept) == 4:
            before = (bytes(addr), bytes(adv_data))
            ble.gap_scan(None)
            nested.append(done == [6] and (bytes(addr), bytes(adv_data)) == before and len(addr) == 6)
    elif event == _IRQ_SCAN_DONE:
        done.append(event)


done.clear()
ble.irq(keeping)
ble.gap_scan(0, 30000, 30000, False)
t0 = time.ticks_ms()
while not nested and time.ticks_diff(time.ticks_ms(), t0) < 15000:
    time.sleep_ms(10)
print('outer views intact after nested event', nested)
print('kept views empty', [(len(a), bytes(d)) for _, a, d in kept])
print('kept tuples empty', [t for t, _, _ in kept])
ble.active(False)
