# Every BLE method and UUID with wrong values in every position, wrong argument counts and
# keywords, inactive and active: each call returns or raises TypeError, ValueError, OSError
# or OverflowError, never anything else, and the firmware never crashes. The exact messages
# for the documented cases are pinned by the other ble_*_args tests; this sweep is about
# surviving whatever a script passes. The counts per outcome are pinned too, so a change in
# what is accepted shows up.
# needs: controllers=1
# timeout: 120
import bluetooth

ble = bluetooth.BLE()
U = bluetooth.UUID

BAD = [None, True, -1, 0x10000, 2**40, -(2**70), 1.5, 'x', '', b'', b'\x00' * 600,
       bytearray(3), memoryview(b'ab'), (), [], {}, U(0x180F), object()]

# Method: plausible arguments (the sweep replaces one at a time). Leaves out active() (any
# value is a truth value) and irq()/config() (swept separately).
GOOD = {
    'gap_advertise': (100_000, b'\x02\x01\x06'),
    'gap_scan': (10, 30_000, 30_000, False),
    'gap_connect': (0, b'\x01\x02\x03\x04\x05\x06', 10),
    'gap_disconnect': (1,),
    'gap_pair': (1,),
    'gap_passkey': (1, 2, 123456),
    'gap_unpair': (0, b'\x01\x02\x03\x04\x05\x06'),
    'gatts_register_services': (((U(0x180F), ((U(0x2A19), bluetooth.FLAG_READ),)),),),
    'gatts_read': (3,),
    'gatts_write': (3, b'v', False),
    'gatts_notify': (1, 3, b'n'),
    'gatts_indicate': (1, 3, b'i'),
    'gatts_set_buffer': (3, 20, False),
    'gattc_discover_services': (1, None),
    'gattc_discover_characteristics': (1, 1, 0xFFFF, None),
    'gattc_discover_descriptors': (1, 1, 0xFFFF),
    'gattc_read': (1, 3),
    'gattc_write': (1, 3, b'w', 0),
    'gattc_exchange_mtu': (1,),
    'l2cap_listen': (0x80, 100),
    'l2cap_connect': (1, 0x80, 100),
    'l2cap_disconnect': (1, 0x40),
    'l2cap_send': (1, 0x40, b's'),
    'l2cap_recvinto': (1, 0x40, bytearray(4)),
}
OK_ERRORS = (TypeError, ValueError, OSError, OverflowError)
outcomes = {}
unexpected = []


def call(name, f, *args, **kw):
    try:
        f(*args, **kw)
        r = 'returned'
    except OK_ERRORS as e:
        r = type(e).__name__
    except Exception as e:  # noqa: BLE001 (anything else is the failure we look for)
        r = 'other'
        unexpected.append((name, repr(args)[:60], repr(e)))
    outcomes[r] = outcomes.get(r, 0) + 1


def tidy():
    # Undo what a call that succeeded may have started.
    for f in (lambda: ble.gap_scan(None), lambda: ble.gap_advertise(None),
              lambda: ble.gap_connect(None)):
        try:
            f()
        except OSError:
            pass


def sweep():
    for name, good in GOOD.items():
        method = getattr(ble, name)
        call(name, method, *good, 1, 2)  # too many
        call(name, method, *good, extra=1)  # a keyword
        for i in range(len(good)):
            call(name, method, *good[:i])  # too few (or optional ones left out)
            for bad in BAD:
                args = list(good)
                args[i] = bad
                call(name, method, *args)
                tidy()
    for bad in BAD:
        call('irq', ble.irq, bad)
        call('config', ble.config, bad)
        for key in ('gap_name', 'mtu', 'rxbuf', 'addr_mode', 'bond', 'mitm', 'io', 'le_secure', 'mac'):
            call('config', ble.config, **{key: bad})
        call('UUID', U, bad)
    ble.irq(None)
    tidy()


for phase in ('inactive', 'active'):
    outcomes.clear()
    if phase == 'active':
        print('active', ble.active(True))
    sweep()
    if phase == 'active':
        # Whether a call that reaches the controller fails or not can depend on timing (a
        # connect attempt still pending, a scan just ended): those two are counted together.
        outcomes['OSError or returned'] = outcomes.pop('OSError', 0) + outcomes.pop('returned', 0)
    print(phase, 'calls', sum(outcomes.values()), sorted(outcomes.items()))
print('unexpected', unexpected)
print('still works: active', ble.active(True), 'mtu', ble.config('mtu'))
ble.active(False)
