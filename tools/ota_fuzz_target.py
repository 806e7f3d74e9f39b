"""The firmware side of tools/ota_fuzz.py: a MicroPython script the fuzzer runs on the Unix
firmware. It is a small but busy peripheral: a GATT server (a read/write characteristic with
a user descriptor, a notify/indicate characteristic, a 300-byte long value, a fixed-value probe
characteristic, and a Battery service), an L2CAP listener (ble.l2cap_listen) that reads and
echoes what arrives, a key store for pairing and bonding, and advertising again after every
disconnect. It prints every event as one line, and a heartbeat `hb MEM_FREE EVENTS` twice a
second (after gc.collect()).

What the fuzzer counts as a failure of this script: the process ending, the heartbeat stopping,
or any Traceback / unhandled exception in its output. OSError from a module call is the
documented way a call fails (a full queue, a closed channel) and is printed, not raised.

Run by tools/ota_fuzz.py; on its own: MICROPYBTUART=... build/unix/micropython THIS_FILE
"""

import bluetooth
import gc
import time

_READ = 0x02
_WRITE_NO_RESPONSE = 0x04
_WRITE = 0x08
_NOTIFY = 0x10
_INDICATE = 0x20

PSM = 0x0081
L2CAP_MTU = 512
PROBE_VALUE = b'ota-probe-ok'
LONG_VALUE = bytes((i * 7 + 3) & 0xFF for i in range(300))


def U(n):
    return bluetooth.UUID('0f0a%04x-5f3c-4a7e-9b51-7d1e2c3b4a59' % n)


SERVICE = (U(1), (
    (U(2), _READ | _WRITE | _WRITE_NO_RESPONSE, ((bluetooth.UUID(0x2901), _READ | _WRITE),)),
    (U(3), _READ | _NOTIFY | _INDICATE),
    (U(4), _READ | _WRITE),
    (U(5), _READ),
))
BATTERY = (bluetooth.UUID(0x180F), ((bluetooth.UUID(0x2A19), _READ | _NOTIFY),))

ble = bluetooth.BLE()
secrets = {}
events = 0
conns = set()
ADV = b'\x02\x01\x06\x09\x09ota-fuzz'


def advertise():
    try:
        ble.gap_advertise(20000, ADV)
        print('advertising')
    except OSError as e:
        print('adv_error', e.errno)


def irq(event, data):
    global events
    events += 1
    if event == 1:  # _IRQ_CENTRAL_CONNECT
        conns.add(data[0])
        print('connect', data[0], data[1])
    elif event == 2:  # _IRQ_CENTRAL_DISCONNECT
        conns.discard(data[0])
        print('disconnect', data[0])
        advertise()
    elif event == 3:  # _IRQ_GATTS_WRITE
        conn, handle = data[0], data[1]
        value = ble.gatts_read(handle)
        print('write', handle, len(value))
        if handle == h_rw:
            # Answer a write with a notification and an indication of what was written.
            try:
                ble.gatts_notify(conn, h_noti, value[:20])
            except OSError as e:
                print('notify_error', e.errno)
            try:
                ble.gatts_indicate(conn, h_noti, value[:8])
            except OSError as e:
                print('indicate_error', e.errno)
    elif event == 4:  # _IRQ_GATTS_READ_REQUEST
        print('read_request', data[1])
        return 0
    elif event == 18 or event == 19:  # _IRQ_GATTC_NOTIFY / _IRQ_GATTC_INDICATE
        print('gattc_notify', event, data[1], len(data[2]))
    elif event == 20:  # _IRQ_GATTS_INDICATE_DONE
        print('indicate_done', data[1], data[2])
    elif event == 21:  # _IRQ_MTU_EXCHANGED
        print('mtu', data[1])
    elif event == 22:  # _IRQ_L2CAP_ACCEPT
        print('l2cap_accept', data[1], data[2], data[3], data[4])
        return 0
    elif event == 23:  # _IRQ_L2CAP_CONNECT
        print('l2cap_connect', data[1], data[2], data[3], data[4])
    elif event == 24:  # _IRQ_L2CAP_DISCONNECT
        print('l2cap_disconnect', data[1], data[3])
    elif event == 25:  # _IRQ_L2CAP_RECV
        conn, cid = data[0], data[1]
        try:
            n = ble.l2cap_recvinto(conn, cid, None)
            buf = bytearray(n)
            got = ble.l2cap_recvinto(conn, cid, buf)
            print('l2cap_recv', n, got)
            if got:
                ble.l2cap_send(conn, cid, buf[:min(got, 32)])
        except OSError as e:
            print('l2cap_error', e.errno)
    elif event == 26:  # _IRQ_L2CAP_SEND_READY
        print('l2cap_send_ready', data[1], data[2])
    elif event == 27:  # _IRQ_CONNECTION_UPDATE
        print('conn_update', data[1], data[2], data[3], data[4])
    elif event == 28:  # _IRQ_ENCRYPTION_UPDATE
        print('encryption', data[1], data[2], data[3], data[4])
    elif event == 29:  # _IRQ_GET_SECRET
        sec_type, index, key = data
        if key is None:
            found = [v for (t, _), v in secrets.items() if t == sec_type]
            return found[index] if index < len(found) else None
        return secrets.get((sec_type, bytes(key)))
    elif event == 30:  # _IRQ_SET_SECRET
        sec_type, key, value = data
        key = (sec_type, bytes(key))
        if value is None:
            return secrets.pop(key, None) is not None
        if len(secrets) >= 16 and key not in secrets:
            return False
        secrets[key] = bytes(value)
        print('set_secret', sec_type, len(value))
        return True
    elif event == 31:  # _IRQ_PASSKEY_ACTION
        conn, action, passkey = data
        print('passkey', action, passkey)
        try:
            if action == 4:  # numeric comparison
                ble.gap_passkey(conn, action, 1)
            elif action == 2:  # input
                ble.gap_passkey(conn, action, 123456)
            elif action == 3:  # display
                ble.gap_passkey(conn, action, 123456)
        except OSError as e:
            print('passkey_error', e.errno)
    else:
        print('event', event)


ble.irq(irq)
ble.config(bond=True, le_secure=True, mitm=False, io=1, gap_name='ota-fuzz')
ble.active(True)
ble.config(mtu=256)
((h_rw, h_dsc, h_noti, h_long, h_probe), (h_batt,)) = ble.gatts_register_services(
    (SERVICE, BATTERY))
ble.gatts_set_buffer(h_rw, 64, False)
ble.gatts_set_buffer(h_long, 512, False)
ble.gatts_write(h_rw, b'rw-initial')
ble.gatts_write(h_dsc, b'a user description')
ble.gatts_write(h_noti, b'noti')
ble.gatts_write(h_long, LONG_VALUE)
ble.gatts_write(h_probe, PROBE_VALUE)
ble.gatts_write(h_batt, b'\x64')
ble.l2cap_listen(PSM, L2CAP_MTU)
print('mac', ':'.join('%02X' % b for b in ble.config('mac')[1]))
print('ready', h_rw, h_dsc, h_noti, h_long, h_probe, h_batt, PSM)
advertise()

last = time.ticks_ms()
while True:
    time.sleep_ms(20)
    now = time.ticks_ms()
    if time.ticks_diff(now, last) >= 500:
        last = now
        gc.collect()
        print('hb', gc.mem_free(), events)
