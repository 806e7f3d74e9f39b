# L2CAP methods with an active stack but no peer (spec sections 5.7, 16 quirks 15 and 17):
# EINVAL for a channel that does not exist, a refused l2cap_connect freeing its place (the
# C module leaks its one slot until restart), several listening PSMs (beyond the C module's
# one channel object: EALREADY only for the same PSM twice, ENOMEM past the build's maximum,
# 8 on Unix), ENODEV once stopped, and fresh state after a restart.
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


events = []
ble.irq(lambda e, d: events.append(e))

print('active', ble.active(True))
print('-- no channel')
t('disconnect', lambda: ble.l2cap_disconnect(0, 0x40))
t('send', lambda: ble.l2cap_send(0, 0x40, b'abc'))
t('recvinto', lambda: ble.l2cap_recvinto(0, 0x40, bytearray(4)))
t('recvinto None', lambda: ble.l2cap_recvinto(0, 0x40, None))

print('-- a refused connect frees the slot')
t('connect no link', lambda: ble.l2cap_connect(5, 22, 450))
t('connect no link again', lambda: ble.l2cap_connect(5, 22, 450))
t('connect huge mtu', lambda: ble.l2cap_connect(5, 22, 1 << 20))

print('-- several listening PSMs')
t('listen', lambda: ble.l2cap_listen(22, 450))
t('listen on another PSM', lambda: ble.l2cap_listen(23, 450))
t('listen again on the same PSM', lambda: ble.l2cap_listen(22, 450))
t('connect while listening', lambda: ble.l2cap_connect(0, 22, 450))
psms = 2
try:
    while psms < 100:
        ble.l2cap_listen(24 + psms, 450)
        psms += 1
except OSError as e:
    print('listening on', psms, 'PSMs, then OSError', e.errno)
t('send on listener', lambda: ble.l2cap_send(0, 0x40, b'x'))
t('disconnect listener', lambda: ble.l2cap_disconnect(0, 0x40))

print('-- stopped')
t('active(False)', lambda: ble.active(False))
t('listen', lambda: ble.l2cap_listen(22, 450))
t('connect', lambda: ble.l2cap_connect(0, 22, 450))
t('send', lambda: ble.l2cap_send(0, 0x40, b'abc'))

print('-- restarted: fresh state')
print('active', ble.active(True))
t('listen', lambda: ble.l2cap_listen(22, 10))
t('listen again', lambda: ble.l2cap_listen(22, 10))
print('l2cap events', [e for e in events if 22 <= e <= 26])
ble.active(False)
print('done')
