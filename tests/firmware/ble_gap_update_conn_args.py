# gap_update_conn argument handling with a controller but no connection (docs/api.md,
# "Beyond MicroPython"): the active check first, then the values, then the handle.
# needs: controllers=1
import bluetooth

ble = bluetooth.BLE()


def t(label, f):
    try:
        r = f()
    except OSError as e:
        print(label, '-> OSError', e.errno)
    except Exception as e:
        print(label, '->', type(e).__name__)
    else:
        print(label, '->', repr(r))


print('hasattr', hasattr(ble, 'gap_update_conn'))
t('inactive', lambda: ble.gap_update_conn(0, 30_000, 30_000))
t('inactive, bad values', lambda: ble.gap_update_conn(0, 50_000, 30_000))
t('active(True)', lambda: ble.active(True))

print('-- values (checked before the handle)')
t('min > max', lambda: ble.gap_update_conn(0, 50_000, 30_000))
t('min below 7.5 ms', lambda: ble.gap_update_conn(0, 6_249, 30_000))
t('min 7.5 ms', lambda: ble.gap_update_conn(0, 7_500, 30_000))
t('max above 4 s', lambda: ble.gap_update_conn(0, 30_000, 4_001_250, 0, 32_000))
t('negative interval', lambda: ble.gap_update_conn(0, -30_000, 30_000))
t('latency 500', lambda: ble.gap_update_conn(0, 7_500, 7_500, 500, 32_000))
t('latency -1', lambda: ble.gap_update_conn(0, 30_000, 30_000, -1))
t('timeout 99 ms', lambda: ble.gap_update_conn(0, 7_500, 7_500, 0, 99))
t('timeout 32.01 s', lambda: ble.gap_update_conn(0, 7_500, 7_500, 0, 32_010))
t('timeout = interval * 2', lambda: ble.gap_update_conn(0, 1_000_000, 1_000_000, 0, 2_000))
t('timeout = interval * 5 * 2', lambda: ble.gap_update_conn(0, 100_000, 100_000, 4, 1_000))
t('default timeout, 1.5 s interval', lambda: ble.gap_update_conn(0, 1_500_000, 1_500_000))
t('huge interval', lambda: ble.gap_update_conn(0, 30_000, 1 << 40))

print('-- valid values, no such connection')
t('defaults', lambda: ble.gap_update_conn(0, 30_000, 30_000))
t('all given', lambda: ble.gap_update_conn(0, 7_500, 4_000_000, 0, 32_000))
t('timeout just long enough', lambda: ble.gap_update_conn(0, 100_000, 100_000, 4, 1_010))
t('handle 65535', lambda: ble.gap_update_conn(65535, 30_000, 30_000))

print('-- argument shapes')
t('too few', lambda: ble.gap_update_conn(0, 30_000))
t('too many', lambda: ble.gap_update_conn(0, 30_000, 30_000, 0, 2_560, 1))
t('str interval', lambda: ble.gap_update_conn(0, '30000', 30_000))
t('None latency', lambda: ble.gap_update_conn(0, 30_000, 30_000, None))

t('active(False)', lambda: ble.active(False))
t('inactive again', lambda: ble.gap_update_conn(0, 30_000, 30_000))
