# gap_pair / gap_passkey argument handling and errors (spec sections 5.2, 5.4), and the security
# settings, which work while inactive and can't be read back.
# needs: controllers=1
import bluetooth

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


print('-- inactive: an OSError, where the C module skips the check')
t('gap_pair(0)', lambda: ble.gap_pair(0))
t('gap_passkey(0, 4, 1)', lambda: ble.gap_passkey(0, 4, 1))
print('-- settings work while inactive; none can be read')
t('config(bond=True, mitm=1, le_secure=False, io=4)',
  lambda: ble.config(bond=True, mitm=1, le_secure=False, io=4))
for key in ('bond', 'mitm', 'le_secure', 'io'):
    t('config(%r)' % key, lambda: ble.config(key))
print('-- argument counts')
t('gap_pair()', lambda: ble.gap_pair())
t('gap_passkey(0, 4)', lambda: ble.gap_passkey(0, 4))
t('gap_passkey(0, 4, 1, 2)', lambda: ble.gap_passkey(0, 4, 1, 2))
t('active(True)', lambda: ble.active(True))
print('-- no such connection')
t('gap_pair(5)', lambda: ble.gap_pair(5))
t('gap_passkey(5, 2, 123456)', lambda: ble.gap_passkey(5, 2, 123456))
t('gap_passkey(5, 4, 0)', lambda: ble.gap_passkey(5, 4, 0))
print('-- actions other than 2, 3, 4')
for action in (0, 1, 5, 255):
    t('gap_passkey(5, %d, 0)' % action, lambda: ble.gap_passkey(5, action, 0))
t("gap_pair('x')", lambda: ble.gap_pair('x'))
t('active(False)', lambda: ble.active(False))
