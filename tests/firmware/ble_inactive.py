# Behaviour while inactive (spec sections 4, 5.1, 5.2, 5.4, 14.3, 14.4) with no controller:
# MICROPYBTUART names a device that does not exist, so active(True) times out.
# The C library buffers the "Unable to open port" line (printf), so its position in stdout
# depends on buffering; only its presence and count are checked.
# env: MICROPYBTUART=/nonexistent
# stdout-any-order: mp_bluetooth_hci_uart_init:
import bluetooth
import time

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


def handler(event, data):
    events.append(event)


print('-- initial state')
t('active()', lambda: ble.active())
t('active(False)', lambda: ble.active(False))
t('active(0)', lambda: ble.active(0))

print('-- ENODEV while inactive')
t("config('mac')", lambda: ble.config('mac'))
t("config('mtu')", lambda: ble.config('mtu'))
t('config(mtu=100)', lambda: ble.config(mtu=100))
t('config(mtu=5)', lambda: ble.config(mtu=5))
t('config(addr_mode=0)', lambda: ble.config(addr_mode=0))
t('config(addr_mode=1)', lambda: ble.config(addr_mode=1))
t('gap_advertise(100000)', lambda: ble.gap_advertise(100000))
t('gap_advertise()', lambda: ble.gap_advertise())
t("gap_advertise(100000, b'\\x02\\x01\\x06')", lambda: ble.gap_advertise(100000, b'\x02\x01\x06'))
t("gap_advertise(interval_us=250000, adv_data=b'')", lambda: ble.gap_advertise(interval_us=250000, adv_data=b''))
t('gap_advertise(0)', lambda: ble.gap_advertise(0))
t('gap_scan()', lambda: ble.gap_scan())
t('gap_scan(100)', lambda: ble.gap_scan(100))
t('gap_scan(0, 30000, 30000, True)', lambda: ble.gap_scan(0, 30000, 30000, True))
t('gap_scan(100, 10000, 20000)', lambda: ble.gap_scan(100, 10000, 20000))
t('gap_scan(None)', lambda: ble.gap_scan(None))

print('-- works while inactive')
t('gap_advertise(None)', lambda: ble.gap_advertise(None))
t('gap_advertise(interval_us=None)', lambda: ble.gap_advertise(interval_us=None))
t('gap_advertise(None, 123)', lambda: ble.gap_advertise(None, 123))
t("config('gap_name')", lambda: ble.config('gap_name'))
t("config(gap_name='inactive name')", lambda: ble.config(gap_name='inactive name'))
t("config('gap_name')", lambda: ble.config('gap_name'))
t("config(gap_name=b'x' * 32)", lambda: ble.config(gap_name=b'x' * 32))
t('irq(handler)', lambda: ble.irq(handler))
t('irq(None)', lambda: ble.irq(None))
t('irq(5)', lambda: ble.irq(5))
t('config(bond=True)', lambda: ble.config(bond=True))
t('config(mitm=True)', lambda: ble.config(mitm=True))
t('config(le_secure=False)', lambda: ble.config(le_secure=False))
t('config(io=4)', lambda: ble.config(io=4))
t('config(bond=False, mitm=False, le_secure=True, io=3)',
  lambda: ble.config(bond=False, mitm=False, le_secure=True, io=3))
t("config('bond')", lambda: ble.config('bond'))
t('active()', lambda: ble.active())

print('-- active(True) without a controller')
ble.irq(handler)
for attempt in (1, 2):
    t0 = time.ticks_ms()
    try:
        r = ble.active(True)
        print('attempt', attempt, 'returned', r)
    except OSError as e:
        print('attempt', attempt, 'OSError', e.errno)
    dt = time.ticks_diff(time.ticks_ms(), t0)
    print('attempt', attempt, 'took >= 1900 ms:', dt >= 1900, '< 7000 ms:', dt < 7000)
    t('active()', lambda: ble.active())
    t("config('mac')", lambda: ble.config('mac'))
    t("config('gap_name')", lambda: ble.config('gap_name'))
    t('gap_scan(None)', lambda: ble.gap_scan(None))
    t('gap_advertise(None)', lambda: ble.gap_advertise(None))
print('events', events)
t('active(False)', lambda: ble.active(False))
print('done')
