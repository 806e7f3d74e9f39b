# gap_advertise / gap_scan / irq argument handling with a controller
# (spec sections 3, 5.3, 5.4, 6 (events 5 and 6), 6.2, 7.1).
# needs: controllers=1
# stderr-contains: Unhandled exception in IRQ callback handler
# stderr-contains: ValueError: boom
# stderr-contains: RuntimeError: async boom
import bluetooth
import time

_IRQ_SCAN_RESULT = 5
_IRQ_SCAN_DONE = 6

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


def type_only(label, f):
    # for errors whose message the spec does not fix
    try:
        r = f()
    except Exception as e:
        print(label, '->', type(e).__name__)
    else:
        print(label, '->', repr(r))


events = []


def handler(event, data):
    if event in (_IRQ_SCAN_RESULT, _IRQ_SCAN_DONE):
        events.append(event)


def wait_for(lst, event, timeout_ms=3000):
    t0 = time.ticks_ms()
    while event not in lst:
        if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
            return False
        time.sleep_ms(5)
    return True


t('active(True)', lambda: ble.active(True))
ble.irq(handler)

print('-- gap_advertise')
t('gap_advertise()', lambda: ble.gap_advertise())
t('gap_advertise(100000)', lambda: ble.gap_advertise(100000))
t('gap_advertise(100000) again', lambda: ble.gap_advertise(100000))
t('gap_advertise(interval_us=100000)', lambda: ble.gap_advertise(interval_us=100000))
t("gap_advertise(100000, b'\\x02\\x01\\x06')", lambda: ble.gap_advertise(100000, b'\x02\x01\x06'))
t("gap_advertise(100000, adv_data=b'\\x02\\x01\\x06\\x03\\x09ab')",
  lambda: ble.gap_advertise(100000, adv_data=b'\x02\x01\x06\x03\x09ab'))
t("gap_advertise(adv_data=b'\\x02\\x01\\x06')", lambda: ble.gap_advertise(adv_data=b'\x02\x01\x06'))
t("gap_advertise(interval_us=250000, adv_data=b'', resp_data=b'', connectable=False)",
  lambda: ble.gap_advertise(interval_us=250000, adv_data=b'', resp_data=b'', connectable=False))
t("gap_advertise(100000, resp_data=b'\\x03\\x09xy')", lambda: ble.gap_advertise(100000, resp_data=b'\x03\x09xy'))
t("gap_advertise(100000, connectable=False)", lambda: ble.gap_advertise(100000, connectable=False))
t("gap_advertise(100000, connectable=0)", lambda: ble.gap_advertise(100000, connectable=0))
t("gap_advertise(100000, 'str data')", lambda: ble.gap_advertise(100000, 'str data'))
t('gap_advertise(100000, bytearray(31))', lambda: ble.gap_advertise(100000, bytearray(31)))
t('gap_advertise(100000, memoryview(bytes(40))[:31])', lambda: ble.gap_advertise(100000, memoryview(bytes(40))[:31]))
t('gap_advertise(100000, resp_data=bytes(31))', lambda: ble.gap_advertise(100000, resp_data=bytes(31)))
t('gap_advertise(0)', lambda: ble.gap_advertise(0))
t('gap_advertise(624)', lambda: ble.gap_advertise(624))
t('gap_advertise(625000)', lambda: ble.gap_advertise(625000))
print('-- gap_advertise errors')
t("gap_advertise(100000, b'x' * 32)", lambda: ble.gap_advertise(100000, b'x' * 32))
t("gap_advertise(100000, bytes(255))", lambda: ble.gap_advertise(100000, bytes(255)))
t("gap_advertise(100000, resp_data=b'x' * 32)", lambda: ble.gap_advertise(100000, resp_data=b'x' * 32))
t("gap_advertise(100000, b'x' * 32, resp_data=b'x' * 32)",
  lambda: ble.gap_advertise(100000, b'x' * 32, resp_data=b'x' * 32))
t("gap_advertise(100000, b'ok', resp_data=b'x' * 32)",
  lambda: ble.gap_advertise(100000, b'\x02\x01\x06', resp_data=b'x' * 32))
t('gap_advertise(100000, 123)', lambda: ble.gap_advertise(100000, 123))
t('gap_advertise(100000, [1, 2])', lambda: ble.gap_advertise(100000, [1, 2]))
t('gap_advertise(100000, resp_data=5)', lambda: ble.gap_advertise(100000, resp_data=5))
t("gap_advertise('x')", lambda: ble.gap_advertise('x'))
t('gap_advertise(100000.0)', lambda: ble.gap_advertise(100000.0))
type_only("gap_advertise(100000, b'', b'')", lambda: ble.gap_advertise(100000, b'', b''))
type_only('gap_advertise(foo=1)', lambda: ble.gap_advertise(foo=1))
print('-- gap_advertise(None)')
t('gap_advertise(100000)', lambda: ble.gap_advertise(100000))
t('gap_advertise(None) while advertising', lambda: ble.gap_advertise(None))
t('gap_advertise(None) not advertising', lambda: ble.gap_advertise(None))
t('gap_advertise(interval_us=None)', lambda: ble.gap_advertise(interval_us=None))
t("gap_advertise(None, b'x' * 40)", lambda: ble.gap_advertise(None, b'x' * 40))
t('gap_advertise(None, 123)', lambda: ble.gap_advertise(None, 123))
print('events', events)

print('-- gap_scan stop')
events.clear()
t('gap_scan(None) no scan', lambda: ble.gap_scan(None))
time.sleep_ms(100)
print('events', events)
t('gap_scan(0)', lambda: ble.gap_scan(0))
t('gap_scan(0) while scanning', lambda: ble.gap_scan(0))
t('gap_scan(100) while scanning', lambda: ble.gap_scan(100))
t('gap_scan() while scanning', lambda: ble.gap_scan())
print('events', events)
t('gap_scan(None) while scanning', lambda: ble.gap_scan(None))
print('events right after', events)
t('gap_scan(None) again', lambda: ble.gap_scan(None))
time.sleep_ms(100)
print('events', events)
events.clear()
t('gap_scan()', lambda: ble.gap_scan())
time.sleep_ms(100)
print('events before stop', events)
t('gap_scan(None)', lambda: ble.gap_scan(None))
print('events right after', events)

print('-- gap_scan parameters')
events.clear()
t('gap_scan(100, 10000, 20000)', lambda: ble.gap_scan(100, 10000, 20000))
t('gap_scan(0, 1250000, 1250001 + 625)', lambda: ble.gap_scan(0, 1250000, 1250001 + 625))
t('gap_scan(0, 30000, 30624)', lambda: ble.gap_scan(0, 30000, 30624))
t('gap_scan(None)', lambda: ble.gap_scan(None))
t('gap_scan(0, 1000, 2000)', lambda: ble.gap_scan(0, 1000, 2000))
t('gap_scan(None)', lambda: ble.gap_scan(None))
t('gap_scan(0, 100000000, 100000000)', lambda: ble.gap_scan(0, 100000000, 100000000))
t('gap_scan(None)', lambda: ble.gap_scan(None))
t('gap_scan(0, 30000, 30000, True)', lambda: ble.gap_scan(0, 30000, 30000, True))
t('gap_scan(None)', lambda: ble.gap_scan(None))
print('events', events)

print('-- timed scans')
for args in ((50,), (50, 30000, 30000), (50, 30000, 30000, True), (50, 30000, 30000, False)):
    events.clear()
    t0 = time.ticks_ms()
    t('gap_scan%r' % (args,), lambda: ble.gap_scan(*args))
    done = wait_for(events, _IRQ_SCAN_DONE)
    dt = time.ticks_diff(time.ticks_ms(), t0)
    print('  done', done, '>= 40 ms', dt >= 40, 'events', events)
events.clear()
t('gap_scan(-1)', lambda: ble.gap_scan(-1))
print('  done', wait_for(events, _IRQ_SCAN_DONE, 1000), 'events', events)
time.sleep_ms(100)
print('  events', events)

print('-- gap_scan argument errors')
t('gap_scan(1, 2, 3, 4, 5)', lambda: ble.gap_scan(1, 2, 3, 4, 5))
t('gap_scan(duration_ms=100)', lambda: ble.gap_scan(duration_ms=100))
t('gap_scan(None, x=1)', lambda: ble.gap_scan(None, x=1))
t("gap_scan('x')", lambda: ble.gap_scan('x'))
t("gap_scan(100, 'x')", lambda: ble.gap_scan(100, 'x'))
t('gap_scan(100, 30000, None)', lambda: ble.gap_scan(100, 30000, None))
t('gap_scan(1.5)', lambda: ble.gap_scan(1.5))
t('gap_scan(None) not scanning', lambda: ble.gap_scan(None))

print('-- irq')
t('irq(5)', lambda: ble.irq(5))
t("irq('x')", lambda: ble.irq('x'))
t('irq(b"")', lambda: ble.irq(b''))
t('irq()', lambda: ble.irq())
t('irq(handler, 1)', lambda: ble.irq(handler, 1))
t('irq(handler=handler)', lambda: ble.irq(handler=handler))
t('irq(None)', lambda: ble.irq(None))
t('irq(lambda e, d: None)', lambda: ble.irq(lambda e, d: None))


class Callable:
    def __init__(self):
        self.events = []

    def __call__(self, event, data):
        if event in (_IRQ_SCAN_RESULT, _IRQ_SCAN_DONE):
            self.events.append(event)


obj = Callable()
t('irq(Callable())', lambda: ble.irq(obj))
t('gap_scan(0)', lambda: ble.gap_scan(0))
t('gap_scan(None)', lambda: ble.gap_scan(None))
print('callable object got', obj.events)
t('irq(None)', lambda: ble.irq(None))
t('gap_scan(0)', lambda: ble.gap_scan(0))
t('gap_scan(None)', lambda: ble.gap_scan(None))
print('callable object got', obj.events)

print('-- handler raising synchronously')
calls = []


def bad(event, data):
    if event in (_IRQ_SCAN_RESULT, _IRQ_SCAN_DONE):
        calls.append(event)
        raise ValueError('boom')


t('irq(bad)', lambda: ble.irq(bad))
t('gap_scan(0)', lambda: ble.gap_scan(0))
t('gap_scan(None)', lambda: ble.gap_scan(None))
print('calls', calls)
t('gap_scan(0)', lambda: ble.gap_scan(0))
t('gap_scan(None)', lambda: ble.gap_scan(None))
print('calls after second event', calls)

print('-- handler raising from the scheduler')
calls2 = []


def bad2(event, data):
    if event in (_IRQ_SCAN_RESULT, _IRQ_SCAN_DONE):
        calls2.append(event)
        raise RuntimeError('async boom')


t('irq(bad2)', lambda: ble.irq(bad2))
t('gap_scan(50)', lambda: ble.gap_scan(50))
print('first call', wait_for(calls2, _IRQ_SCAN_DONE))
t('gap_scan(50)', lambda: ble.gap_scan(50))
time.sleep_ms(500)
print('calls2', calls2)
print('still running')

print('-- handler works again after being replaced')
events.clear()
t('irq(handler)', lambda: ble.irq(handler))
t('gap_scan(0)', lambda: ble.gap_scan(0))
t('gap_scan(None)', lambda: ble.gap_scan(None))
print('events', events)
t('active(False)', lambda: ble.active(False))
print('done')
