# gatts_read / gatts_write / gatts_set_buffer / gatts_notify / gatts_indicate without a peer:
# return values, value storage, argument errors, the local read request and the inactive
# stack (spec sections 3.1, 3.2, 4, 5.5, 6.2, 6.3, 8.3).
# needs: controllers=1
import bluetooth

_IRQ_GATTS_READ_REQUEST = 4
R = bluetooth.FLAG_READ
W = bluetooth.FLAG_WRITE
N = bluetooth.FLAG_NOTIFY
I = bluetooth.FLAG_INDICATE
U = bluetooth.UUID

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


log = []
deny = 0
inner = []


def handler(event, data):
    if event == _IRQ_GATTS_READ_REQUEST:
        conn, h = data
        log.append((conn, h))
        for f in inner:
            # Handlers may call back into the server.
            f(h)
        return deny


print('-- inactive: argument errors first, then ENODEV; gatts_read gives b""')
t('gatts_read(21)', lambda: ble.gatts_read(21))
t("gatts_read('x')", lambda: ble.gatts_read('x'))
t("gatts_write(21, b'x')", lambda: ble.gatts_write(21, b'x'))
t('gatts_write(21, 5)', lambda: ble.gatts_write(21, 5))
t('gatts_set_buffer(21, 10)', lambda: ble.gatts_set_buffer(21, 10))
t('gatts_notify(0, 21)', lambda: ble.gatts_notify(0, 21))
t("gatts_notify(0, 21, b'x')", lambda: ble.gatts_notify(0, 21, b'x'))
t('gatts_indicate(0, 21)', lambda: ble.gatts_indicate(0, 21))
t("gatts_indicate(0, 21, b'x')", lambda: ble.gatts_indicate(0, 21, b'x'))

t('active(True)', lambda: ble.active(True))
ble.irq(handler)
((A, B, DSC, WO),) = t('register', lambda: ble.gatts_register_services(
    [(U(0x1234), [(U(0x2a56), R | W | N), (U(0x2a57), R | I, [(U(0x2901), R)]), (U(0x2a58), W)])]))

print('-- gatts_write returns len(data); any buffer')
t("gatts_write(A, b'hello')", lambda: ble.gatts_write(A, b'hello'))
t('gatts_read(A)', lambda: ble.gatts_read(A))
t("gatts_write(A, bytearray(b'ba'))", lambda: ble.gatts_write(A, bytearray(b'ba')))
t('gatts_read(A)', lambda: ble.gatts_read(A))
t("gatts_write(A, 'str')", lambda: ble.gatts_write(A, 'str'))
t('gatts_read(A)', lambda: ble.gatts_read(A))
t("gatts_write(A, memoryview(b'abcdef')[1:3])", lambda: ble.gatts_write(A, memoryview(b'abcdef')[1:3]))
t('gatts_read(A)', lambda: ble.gatts_read(A))
t("gatts_write(A, b'')", lambda: ble.gatts_write(A, b''))
t('gatts_read(A)', lambda: ble.gatts_read(A))
t('type(gatts_read(A))', lambda: type(ble.gatts_read(A)))
t('gatts_write(A, bytes(100))', lambda: ble.gatts_write(A, bytes(100)))
t('len(gatts_read(A))', lambda: len(ble.gatts_read(A)))
t("gatts_write(A, b'small')", lambda: ble.gatts_write(A, b'small'))
t('gatts_read(A)', lambda: ble.gatts_read(A))
t("gatts_write(DSC, b'desc', False)", lambda: ble.gatts_write(DSC, b'desc', False))
t("gatts_write(A, b'upd', True) (no subscribers)", lambda: ble.gatts_write(A, b'upd', True))
t("gatts_write(A, b'upd', 1)", lambda: ble.gatts_write(A, b'upd', 1))
t('gatts_read(A)', lambda: ble.gatts_read(A))
print('-- handles are truncated to 16 bits; unknown handles')
t("gatts_write(A + 65536, b'wrap')", lambda: ble.gatts_write(A + 65536, b'wrap'))
t('gatts_read(A + 65536)', lambda: ble.gatts_read(A + 65536))
t('gatts_read(A - 65536)', lambda: ble.gatts_read(A - 65536))
t("gatts_write(999, b'x')", lambda: ble.gatts_write(999, b'x'))
t('gatts_read(999)', lambda: ble.gatts_read(999))
t('gatts_read(-1)', lambda: ble.gatts_read(-1))
t('gatts_set_buffer(999, 10)', lambda: ble.gatts_set_buffer(999, 10))
t('gatts_set_buffer(999, -1)', lambda: ble.gatts_set_buffer(999, -1))

print('-- gatts_set_buffer clears the value; append mode empties on gatts_read')
t("gatts_write(B, b'keep')", lambda: ble.gatts_write(B, b'keep'))
t('gatts_set_buffer(B, 50)', lambda: ble.gatts_set_buffer(B, 50))
t('gatts_read(B)', lambda: ble.gatts_read(B))
t("gatts_write(B, b'abc')", lambda: ble.gatts_write(B, b'abc'))
t('gatts_set_buffer(B, 8, True)', lambda: ble.gatts_set_buffer(B, 8, True))
t('gatts_read(B)', lambda: ble.gatts_read(B))
t("gatts_write(B, b'abc')", lambda: ble.gatts_write(B, b'abc'))
t('gatts_read(B)', lambda: ble.gatts_read(B))
t('gatts_read(B) again', lambda: ble.gatts_read(B))
t("gatts_write(B, b'0123456789')", lambda: ble.gatts_write(B, b'0123456789'))
t('gatts_read(B)', lambda: ble.gatts_read(B))
t('gatts_read(B) again', lambda: ble.gatts_read(B))
t('gatts_set_buffer(B, 8, False)', lambda: ble.gatts_set_buffer(B, 8, False))
t("gatts_write(B, b'xy')", lambda: ble.gatts_write(B, b'xy'))
t('gatts_read(B)', lambda: ble.gatts_read(B))
t('gatts_read(B) again', lambda: ble.gatts_read(B))
t('gatts_set_buffer(B, 0)', lambda: ble.gatts_set_buffer(B, 0))
t('gatts_read(B)', lambda: ble.gatts_read(B))
t('gatts_set_buffer(B, -1)', lambda: ble.gatts_set_buffer(B, -1))
t('gatts_set_buffer(B, 4, 0)', lambda: ble.gatts_set_buffer(B, 4, 0))
t("gatts_set_buffer(B, 4, 'yes')", lambda: ble.gatts_set_buffer(B, 4, 'yes'))

print('-- notify/indicate without a connection')
# Without data NimBLE reads the stored value first: _IRQ_GATTS_READ_REQUEST(65535, h)
# arrives inside the call, then the missing connection fails it.
log.clear()
t('gatts_notify(0, A)', lambda: ble.gatts_notify(0, A))
print('  log', log)
log.clear()
t('gatts_notify(0, A, None)', lambda: ble.gatts_notify(0, A, None))
print('  log', log)
log.clear()
t("gatts_notify(0, A, b'data')", lambda: ble.gatts_notify(0, A, b'data'))
print('  log', log)
log.clear()
t('gatts_indicate(0, B)', lambda: ble.gatts_indicate(0, B))
print('  log', log)
log.clear()
t("gatts_indicate(0, B, b'data')", lambda: ble.gatts_indicate(0, B, b'data'))
print('  log', log)
log.clear()
# Neither flags nor handles are checked; a handle with no attribute cannot be read.
t('gatts_notify(0, WO)', lambda: ble.gatts_notify(0, WO))
t('gatts_notify(5, 999)', lambda: ble.gatts_notify(5, 999))
t("gatts_notify(5, 999, b'x')", lambda: ble.gatts_notify(5, 999, b'x'))
print('  log', log)
log.clear()
print('-- a denied local read fails the call with OSError(-9)')
deny = 1
t('gatts_notify(0, A) denied', lambda: ble.gatts_notify(0, A))
t('gatts_indicate(0, B) denied', lambda: ble.gatts_indicate(0, B))
deny = True
t('gatts_notify(0, A) denied by True', lambda: ble.gatts_notify(0, A))
deny = 'no'
t("gatts_notify(0, A) 'no' accepts", lambda: ble.gatts_notify(0, A))
deny = 0x100
t('gatts_notify(0, A) 0x100', lambda: ble.gatts_notify(0, A))
deny = 0
print('  log', log)
log.clear()
print('-- the handler may call the server from the read request')
inner.append(lambda h: print('  inner read', ble.gatts_read(h), ble.gatts_write(h, b'fresh')))
t('gatts_notify(0, A)', lambda: ble.gatts_notify(0, A))


def recurse(h):
    print('  inner notify depth', len(log))
    if len(log) < 3:
        try:
            ble.gatts_notify(0, h)
        except OSError as e:
            print('  inner notify ->', e.errno)


inner.append(recurse)
log.clear()
t('gatts_notify(0, A) recursive', lambda: ble.gatts_notify(0, A))
inner.clear()
t('gatts_read(A)', lambda: ble.gatts_read(A))
print('  log', log)

print('-- argument errors')
t('gatts_read()', lambda: ble.gatts_read())
t('gatts_read(A, 1)', lambda: ble.gatts_read(A, 1))
t('gatts_read(None)', lambda: ble.gatts_read(None))
t('gatts_read(value_handle=A)', lambda: ble.gatts_read(value_handle=A))
t('gatts_write(A)', lambda: ble.gatts_write(A))
t("gatts_write(A, b'', 1, 2)", lambda: ble.gatts_write(A, b'', 1, 2))
t('gatts_write(A, None)', lambda: ble.gatts_write(A, None))
t("gatts_write('x', b'')", lambda: ble.gatts_write('x', b''))
t("gatts_write('x', 5)", lambda: ble.gatts_write('x', 5))
t("gatts_write(A, b'', send_update=True)", lambda: ble.gatts_write(A, b'', send_update=True))
t('gatts_set_buffer(A)', lambda: ble.gatts_set_buffer(A))
t('gatts_set_buffer(A, 1, 1, 1)', lambda: ble.gatts_set_buffer(A, 1, 1, 1))
t("gatts_set_buffer(A, 'x')", lambda: ble.gatts_set_buffer(A, 'x'))
t('gatts_set_buffer(A, 1.5)', lambda: ble.gatts_set_buffer(A, 1.5))
t('gatts_notify(0)', lambda: ble.gatts_notify(0))
t('gatts_notify(0, A, None, 1)', lambda: ble.gatts_notify(0, A, None, 1))
t("gatts_notify('x', A)", lambda: ble.gatts_notify('x', A))
t("gatts_notify(0, 'x')", lambda: ble.gatts_notify(0, 'x'))
t('gatts_notify(0, A, 5)', lambda: ble.gatts_notify(0, A, 5))
t('gatts_indicate(0, A, [1])', lambda: ble.gatts_indicate(0, A, [1]))
t('gatts_indicate(0)', lambda: ble.gatts_indicate(0))
t('gatts_notify(0, A, data=None)', lambda: ble.gatts_notify(0, A, data=None))
t('gatts_register_services()', lambda: ble.gatts_register_services())
t('gatts_register_services([], [])', lambda: ble.gatts_register_services([], []))

print('-- after active(False)')
t('active(False)', lambda: ble.active(False))
t('gatts_read(A)', lambda: ble.gatts_read(A))
t("gatts_write(A, b'x')", lambda: ble.gatts_write(A, b'x'))
t('gatts_set_buffer(A, 4)', lambda: ble.gatts_set_buffer(A, 4))
t('gatts_notify(0, A)', lambda: ble.gatts_notify(0, A))
t('gatts_indicate(0, A)', lambda: ble.gatts_indicate(0, A))
print('-- values do not survive a restart')
t('active(True)', lambda: ble.active(True))
t('register', lambda: ble.gatts_register_services([(U(0x1234), [(U(0x2a56), R | W | N)])]))
t('gatts_read(A)', lambda: ble.gatts_read(A))
t('active(False)', lambda: ble.active(False))
print('done')
