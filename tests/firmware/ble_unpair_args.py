# gap_unpair (beyond MicroPython): argument handling and errors, and what it asks of and does to
# the script's key store: the one-peer form looks the peer up, the no-argument form walks both
# record types by index; each found peer's records are deleted with SET_SECRET(type, key, None).
# needs: controllers=1
import bluetooth

ble = bluetooth.BLE()
secrets = {}
log = []


def irq(event, data):
    if event == 29:  # _IRQ_GET_SECRET
        sec_type, index, key = data
        if sec_type not in (1, 2):
            return None
        log.append(('get', sec_type, index, None if key is None else bytes(key)))
        if key is None:
            found = [v for (t, k), v in sorted(secrets.items()) if t == sec_type]
            return found[index] if index < len(found) else None
        return secrets.get((sec_type, bytes(key)))
    if event == 30:  # _IRQ_SET_SECRET
        sec_type, key, value = data
        if sec_type not in (1, 2):
            return False
        log.append(('set', sec_type, bytes(key), None if value is None else len(value)))
        if value is None:
            return secrets.pop((sec_type, bytes(key)), None) is not None
        secrets[(sec_type, bytes(key))] = bytes(value)
        return True


def t(label, f):
    log.clear()
    try:
        r = f()
    except OSError as e:
        print(label, '-> OSError', e.errno)
    except Exception as e:
        print(label, '->', type(e).__name__, e)
    else:
        print(label, '->', repr(r))
    for entry in log:
        print('   ', *entry)


def record(key):
    # An 80-byte record starting with the peer's address, as NimBLE's records do.
    return key + bytes(80 - len(key))


A = bytes.fromhex('c00102030405')  # most-significant byte first, as gap_connect takes it
KEY_A = b'\x00' + bytes(reversed(A))  # the store key: type, then least-significant byte first
KEY_B = b'\x01\x11\x22\x33\x44\x55\xc6'

ble.irq(irq)
print('-- inactive')
t('gap_unpair()', lambda: ble.gap_unpair())
t('gap_unpair(0, A)', lambda: ble.gap_unpair(0, A))
print('-- argument errors, checked before the active state')
t('gap_unpair(0)', lambda: ble.gap_unpair(0))
t('gap_unpair(0, A, 1)', lambda: ble.gap_unpair(0, A, 1))
t('gap_unpair(0, A[:5])', lambda: ble.gap_unpair(0, A[:5]))
t('gap_unpair(0, 5)', lambda: ble.gap_unpair(0, 5))
t("gap_unpair('x', A)", lambda: ble.gap_unpair('x', A))
t('gap_unpair(addr_type=0)', lambda: ble.gap_unpair(addr_type=0))
t('active(True)', lambda: ble.active(True))
print('-- identity address types only')
t('gap_unpair(2, A)', lambda: ble.gap_unpair(2, A))
t('gap_unpair(255, A)', lambda: ble.gap_unpair(255, A))
print('-- an empty store')
t('gap_unpair(0, A)', lambda: ble.gap_unpair(0, A))
t('gap_unpair()', lambda: ble.gap_unpair())
print('-- one peer')
secrets[(1, KEY_A)] = record(KEY_A)
secrets[(2, KEY_A)] = record(KEY_A)
secrets[(2, KEY_B)] = record(KEY_B)
t('gap_unpair(0, A)', lambda: ble.gap_unpair(0, A))
print('store', sorted(secrets))
t('gap_unpair(0, A)', lambda: ble.gap_unpair(0, A))
t('gap_unpair(256, bytearray(A))', lambda: ble.gap_unpair(256, bytearray(A)))
print('-- not while advertising or scanning')
ble.gap_advertise(100_000, b'\x02\x01\x06')
t('gap_unpair() advertising', lambda: ble.gap_unpair())
t('gap_unpair(1, B) advertising', lambda: ble.gap_unpair(1, bytes(reversed(KEY_B[1:]))))
ble.gap_advertise(None)
ble.gap_scan(0)
t('gap_unpair() scanning', lambda: ble.gap_unpair())
ble.gap_scan(None)
print('store', sorted(secrets))
print('-- every peer')
secrets[(1, KEY_A)] = record(KEY_A)
t('gap_unpair()', lambda: ble.gap_unpair())
print('store', sorted(secrets))
t('active(False)', lambda: ble.active(False))
