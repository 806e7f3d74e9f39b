# active() lifecycle with a controller (spec sections 1.1, 5.1, 5.3, 6.2, 13, 14.4, 14.6).
# needs: controllers=1
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


events = []
shapes = []


def handler(event, data):
    # Only the scan events matter here (init may also raise the key-store events).
    if event in (_IRQ_SCAN_RESULT, _IRQ_SCAN_DONE):
        events.append(event)
        shapes.append((event, type(data).__name__, len(data)))


def wait_for(event, timeout_ms=3000):
    t0 = time.ticks_ms()
    while event not in events:
        if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
            return False
        time.sleep_ms(5)
    return True


print('-- activate')
t('active()', lambda: ble.active())
t('active(True)', lambda: ble.active(True))
t('active()', lambda: ble.active())
mac0 = ble.config('mac')
print('mac type', type(mac0).__name__, len(mac0), type(mac0[0]).__name__,
      type(mac0[1]).__name__, len(mac0[1]))

print('-- 20 on/off cycles')
ok = True
for i in range(20):
    if ble.active(False) is not False or ble.active() is not False:
        ok = False
        print('cycle', i, 'active(False) failed')
    if ble.active(True) is not True or ble.active() is not True:
        ok = False
        print('cycle', i, 'active(True) failed')
    if ble.config('mac') != mac0:
        ok = False
        print('cycle', i, 'mac changed')
print('cycles ok', ok)

print('-- active(True) while active restarts')
t('active(True)', lambda: ble.active(True))
t('active()', lambda: ble.active())
t('mac stable', lambda: ble.config('mac') == mac0)
ble.irq(handler)
t('gap_scan(0)', lambda: ble.gap_scan(0))
events.clear()
t('active(True) while scanning', lambda: ble.active(True))
print('events right after', events)
t('gap_scan(None) after restart', lambda: ble.gap_scan(None))
print('events', events)
t('gap_scan(0) after restart', lambda: ble.gap_scan(0))
t('gap_scan(None)', lambda: ble.gap_scan(None))
print('events', events)

print('-- irq handler survives active cycles')
t('active(False)', lambda: ble.active(False))
t('active(True)', lambda: ble.active(True))
events.clear()
shapes.clear()
t0 = time.ticks_ms()
t('gap_scan(100)', lambda: ble.gap_scan(100))
print('scan done', wait_for(_IRQ_SCAN_DONE))
dt = time.ticks_diff(time.ticks_ms(), t0)
print('after >= 90 ms', dt >= 90, '< 1500 ms', dt < 1500)
time.sleep_ms(200)
print('events', events, shapes)

print('-- irq set while inactive')
events2 = []


def handler2(event, data):
    if event == _IRQ_SCAN_DONE:
        events2.append(event)


t('active(False)', lambda: ble.active(False))
t('irq(handler2)', lambda: ble.irq(handler2))
t('active(True)', lambda: ble.active(True))
events.clear()
t('gap_scan(50)', lambda: ble.gap_scan(50))
t0 = time.ticks_ms()
while not events2 and time.ticks_diff(time.ticks_ms(), t0) < 3000:
    time.sleep_ms(5)
print('handler2 events', events2, 'old handler events', events)
ble.irq(handler)

print('-- deinit while scanning delivers SCAN_DONE')
events.clear()
t('gap_scan(0)', lambda: ble.gap_scan(0))
t('active(False)', lambda: ble.active(False))
print('events right after', events)
t('active(True)', lambda: ble.active(True))
t('gap_scan(300)', lambda: ble.gap_scan(300))
t('active(False)', lambda: ble.active(False))
print('events right after', events)
time.sleep_ms(500)
print('events later', events)
t('active(False) again', lambda: ble.active(False))
t('active(False) again', lambda: ble.active(False))
t('active()', lambda: ble.active())
print('events', events)

print('-- mac after restart')
t('active(True)', lambda: ble.active(True))
t('mac stable', lambda: ble.config('mac') == mac0)

print('-- truthiness and arguments')
t('active(0)', lambda: ble.active(0))
t('active(1)', lambda: ble.active(1))
t("active('')", lambda: ble.active(''))
t("active('yes')", lambda: ble.active('yes'))
t('active([])', lambda: ble.active([]))
t('active(None)', lambda: ble.active(None))
t('active(True, 1)', lambda: ble.active(True, 1))
t('active(state=True)', lambda: ble.active(state=True))
t('active()', lambda: ble.active())

print('-- exit while active and scanning')
t('active(True)', lambda: ble.active(True))
ble.irq(None)
t('gap_scan(0)', lambda: ble.gap_scan(0))
print('done')
