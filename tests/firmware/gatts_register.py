# gatts_register_services: handle numbering, result shape, value entries and errors
# (spec sections 3.1, 3.2, 4, 5.1, 5.5, 8.1, 8.2, 8.3).
# needs: controllers=2
# peer: _adv_peer.py conn
import bluetooth
import time

_IRQ_PERIPHERAL_CONNECT = 7
_IRQ_PERIPHERAL_DISCONNECT = 8
_IRQ_SCAN_DONE = 6
R = bluetooth.FLAG_READ
W = bluetooth.FLAG_WRITE
N = bluetooth.FLAG_NOTIFY
I = bluetooth.FLAG_INDICATE
U = bluetooth.UUID
PEER = b'\xf0\xf1\xf2\xf3\xf4\x01'

ble = bluetooth.BLE()


def t(label, f):
    try:
        r = f()
    except OSError as e:
        print(label, '-> OSError', e.errno)
    except Exception as e:
        print(label, '->', type(e).__name__, e)
    else:
        print(label, '->', repr(r))
        return r


def reg(label, services):
    return t(label, lambda: ble.gatts_register_services(services))


events = []
conn = []


def handler(event, data):
    events.append(event)
    if event == _IRQ_PERIPHERAL_CONNECT:
        conn.append(data[0])


def wait_for(event, timeout_ms=5000):
    t0 = time.ticks_ms()
    while event not in events:
        if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
            return False
        time.sleep_ms(5)
    return True


ONE = (U(0x1234), ((U(0x2a00 + 0x56), R | W),))

print('-- inactive: the type of services is checked, then ENODEV before anything else')
reg('register(5)', 5)
reg('register([])', [])
reg('register([(1, 2)])', [(1, 2)])
reg('register([ONE])', [ONE])

print('-- after active(True): GAP 1-5, GATT 6-9')
t('active(True)', lambda: ble.active(True))
ble.irq(handler)
# Entries exist for the GAP/GATT characteristic values (NimBLE serves those itself).
for h in (3, 5, 8):
    t('gatts_read(%d)' % h, lambda: ble.gatts_read(h))
    t('gatts_write(%d, b"x")' % h, lambda: ble.gatts_write(h, b'x'))
    t('gatts_read(%d)' % h, lambda: ble.gatts_read(h))
# Declarations, the Service Changed CCCD and unused handles have none.
for h in (1, 2, 4, 6, 7, 9, 10):
    t('gatts_write(%d, b"x")' % h, lambda: ble.gatts_write(h, b'x'))
    t('gatts_read(%d)' % h, lambda: ble.gatts_read(h))

print('-- every registration re-adds GAP/GATT after the last handle used')
reg('register([ONE])', [ONE])
reg('register([ONE])', [ONE])
reg('register((ONE,))', (ONE,))
reg('register([])', [])
reg('register(())', ())
reg('register([ONE])', [ONE])
print('-- active(True) restarts the counter')
t('active(True)', lambda: ble.active(True))
reg('register([ONE])', [ONE])
t('active(True)', lambda: ble.active(True))

print('-- layout: decl, value, [CCCD], user descriptors')
SERVICES = (
    (U(0x180d), (
        (U(0x2a37), R | N),
        (U(0x2a38), R, ((U(0x2901), R), (U(0x2902), R | W))),
        (U(0x2a39), W | I, ()),
    )),
    (U('6E400001-B5A3-F393-E0A9-E50E24DCCA9E'), []),
    [U(0x1815), [[U(0x2a56), R | W | N | I, [[U(0x2908), R]]]]],
)
handles = reg('register(SERVICES)', SERVICES)
# 10-14 GAP, 15-18 GATT, 19 service, 20/21/22 chr decl/value/CCCD, 23/24 decl/value,
# 25/26 descriptors, 27/28/29 decl/value/CCCD, 30 empty service, 31 service, 32/33/34, 35.
t('gatts_read(22) (CCCD)', lambda: ble.gatts_read(22))
t('gatts_write(22, b"") (CCCD)', lambda: ble.gatts_write(22, b''))
t('gatts_write(34, b"") (CCCD)', lambda: ble.gatts_write(34, b''))
for h in (21, 24, 25, 26, 28, 33, 35):
    t('gatts_read(%d)' % h, lambda: ble.gatts_read(h))
    t('gatts_write(%d, b"v%d")' % (h, h), lambda: ble.gatts_write(h, b'v%d' % h))
    t('gatts_read(%d)' % h, lambda: ble.gatts_read(h))
print('-- registering again empties every value')
reg('register([ONE])', [ONE])
t('gatts_read(21)', lambda: ble.gatts_read(21))
t('gatts_read(3)', lambda: ble.gatts_read(3))
t('gatts_read(38)', lambda: ble.gatts_read(38))
t('gatts_write(38, b"a")', lambda: ble.gatts_write(38, b'a'))

print('-- flags are truncated to 16 bits (0x10000 | R has no CCCD, 0x10000 | N has one)')
t('active(True)', lambda: ble.active(True))
reg('register(truncated flags)', [(U(1), [(U(2), 0x10000 | R), (U(3), 0x10000 | N), (U(4), R)])])
reg('register(descriptor flags)', [(U(1), [(U(2), R, [(U(3), 0x1ffff)])])])

print('-- structure errors (spec 8.1)')
reg('register(5)', 5)
reg('register(None)', None)
reg('register([5])', [5])
reg('register([(U(1),)])', [(U(1),)])
reg('register([(U(1), [], 3)])', [(U(1), [], 3)])
reg('register([(0x180d, [])])', [(0x180d, [])])
reg("register([('180d', [])])", [('180d', [])])
reg('register([(U(1), 5)])', [(U(1), 5)])
reg('register([(U(1), [5])])', [(U(1), [5])])
reg('register([(U(1), [(U(2),)])])', [(U(1), [(U(2),)])])
reg('register([(U(1), [(U(2), R, [], 4)])])', [(U(1), [(U(2), R, [], 4)])])
reg('register([(U(1), [(2, R)])])', [(U(1), [(2, R)])])
reg("register([(U(1), [(U(2), 'x')])])", [(U(1), [(U(2), 'x')])])
reg('register([(U(1), [(U(2), None)])])', [(U(1), [(U(2), None)])])
reg('register([(U(1), [(U(2), R, 5)])])', [(U(1), [(U(2), R, 5)])])
reg('register([(U(1), [(U(2), R, [5])])])', [(U(1), [(U(2), R, [5])])])
reg('register([(U(1), [(U(2), R, [(U(3),)])])])', [(U(1), [(U(2), R, [(U(3),)])])])
reg('register([(U(1), [(U(2), R, [(3, R)])])])', [(U(1), [(U(2), R, [(3, R)])])])
reg("register([(U(1), [(U(2), R, [(U(3), 'x')])])])", [(U(1), [(U(2), R, [(U(3), 'x')])])])
# The characteristic's flags are converted after its descriptors.
reg("register([(U(1), [(U(2), 'x', [(3, R)])])])", [(U(1), [(U(2), 'x', [(3, R)])])])
# Services are checked in order.
reg('register([ONE, (5, [])])', [ONE, (5, [])])

print('-- a failed registration leaves an empty server; the next one works')
# (MicroPython's C module fails the next registration with ENOMEM instead (spec 8.1, QUIRK);
# we do not reproduce that.)
t('active(True)', lambda: ble.active(True))
reg('register([ONE])', [ONE])
t('gatts_write(21, b"x")', lambda: ble.gatts_write(21, b'x'))
reg('register([ONE, (5, [])])', [ONE, (5, [])])
t('gatts_write(21, b"x")', lambda: ble.gatts_write(21, b'x'))
t('gatts_read(21)', lambda: ble.gatts_read(21))
t('gatts_write(3, b"x")', lambda: ble.gatts_write(3, b'x'))
reg('register([ONE])', [ONE])
t('gatts_write(33, b"x")', lambda: ble.gatts_write(33, b'x'))

print('-- at most 8 services')
t('active(True)', lambda: ble.active(True))
eight = [(U(0x1000 + i), [(U(0x2000 + i), R)]) for i in range(8)]
reg('register(8 services)', eight)
reg('register(9 services)', eight + [(U(0x1009), [])])
reg('register(9 services, 9th bad)', eight + [(9, [])])
reg('register(10 services, 10th bad)', eight + [(U(0x1009), []), (10, [])])
reg('register([])', [])

print('-- EBUSY while advertising, scanning or connected')
t('gap_advertise(100000)', lambda: ble.gap_advertise(100000))
reg('register([ONE]) advertising', [ONE])
reg('register([(5, [])]) advertising', [(5, [])])
t('gap_advertise(None)', lambda: ble.gap_advertise(None))
t('gap_scan(0)', lambda: ble.gap_scan(0))
reg('register([ONE]) scanning', [ONE])
t('gap_scan(None)', lambda: ble.gap_scan(None))
events.clear()
t('gap_connect(0, PEER)', lambda: ble.gap_connect(0, PEER))
print('connected', wait_for(_IRQ_PERIPHERAL_CONNECT))
reg('register([ONE]) connected', [ONE])
t('gap_disconnect(conn)', lambda: ble.gap_disconnect(conn[0]))
print('disconnected', wait_for(_IRQ_PERIPHERAL_DISCONNECT))
reg('register([ONE]) idle', [ONE])

print('-- after active(False)')
t('active(False)', lambda: ble.active(False))
reg('register([ONE])', [ONE])
t('gatts_read(3)', lambda: ble.gatts_read(3))
print('done')
