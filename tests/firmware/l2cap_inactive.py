# L2CAP methods while inactive (spec sections 4, 5.7, 16 quirk 15): the C module crashes
# here; every call must raise OSError(ENODEV) instead, before and after a stack cycle, and
# the argument checks still come first.
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


def all_calls():
    t('l2cap_listen', lambda: ble.l2cap_listen(22, 450))
    t('l2cap_connect', lambda: ble.l2cap_connect(0, 22, 450))
    t('l2cap_disconnect', lambda: ble.l2cap_disconnect(0, 0x40))
    t('l2cap_send', lambda: ble.l2cap_send(0, 0x40, b'abc'))
    t('l2cap_recvinto buf', lambda: ble.l2cap_recvinto(0, 0x40, bytearray(10)))
    t('l2cap_recvinto None', lambda: ble.l2cap_recvinto(0, 0x40, None))


print('-- never activated')
print('active', ble.active())
all_calls()

print('-- argument errors come first')
t('listen str psm', lambda: ble.l2cap_listen('x', 450))
t('send non-buffer', lambda: ble.l2cap_send(0, 0x40, 5))
t('recvinto read-only', lambda: ble.l2cap_recvinto(0, 0x40, b'abc'))
t('listen 1 arg', lambda: ble.l2cap_listen(22))
t('connect 2 args', lambda: ble.l2cap_connect(0, 22))
t('send kw', lambda: ble.l2cap_send(0, 0x40, buf=b''))

print('-- after active(False)')
t('active(False)', lambda: ble.active(False))
all_calls()
print('done')
