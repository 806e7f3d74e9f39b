# The host keeps running while the script blocks in a system call: scan results from a peer
# advertising on hci1 (every 20 ms) reach the IRQ handler *during* time.sleep(1.0) (select),
# select.poll().poll(500) and sys.stdin.readline() (read), because the UART reader thread
# interrupts the VM thread's system call and MicroPython runs scheduled work on EINTR.
# The blocking calls must still behave as usual: full sleep/poll duration, the whole line.
# needs: controllers=2
# peer: _adv_peer.py scan
# stdin-after: 1.0 a line from the runner, read in one piece
import bluetooth
import os
import select
import socket
import sys
import time

_IRQ_SCAN_RESULT = 5
PEER = b'\xf0\xf1\xf2\xf3\xf4\x01'
# Results within this many ms of the call's start or end don't count as "during" it: the
# backlog is delivered right after the call returns, before the script reads the clock.
MARGIN_MS = 100
# Far fewer than the ~50/s the peer sends, so a loaded machine still passes.
MIN_DURING = 3

ble = bluetooth.BLE()
stamps = []


def handler(event, data):
    if event == _IRQ_SCAN_RESULT and bytes(data[1]) == PEER:
        stamps.append(time.ticks_ms())


def during(t0, t1):
    return sum(1 for t in stamps
               if time.ticks_diff(t, t0) >= MARGIN_MS and time.ticks_diff(t1, t) >= MARGIN_MS)


def blocked(what, call, lo_ms, hi_ms):
    stamps.clear()
    t0 = time.ticks_ms()
    result = call()
    t1 = time.ticks_ms()
    n = during(t0, t1)
    dt = time.ticks_diff(t1, t0)
    print(what, 'results during', n >= MIN_DURING, 'duration ok', lo_ms <= dt <= hi_ms)
    if n < MIN_DURING or not lo_ms <= dt <= hi_ms:
        print('  (%d results during, %d in all, %d ms)' % (n, len(stamps), dt))
    return result


print('active', ble.active(True))
ble.irq(handler)
ble.gap_scan(0, 30000, 30000, False)
t = time.ticks_ms()
while not stamps and time.ticks_diff(time.ticks_ms(), t) < 10000:
    time.sleep_ms(10)
print('scanning', bool(stamps))

# (a) time.sleep with a float: select() with a timeout, restarted with the time left.
blocked('sleep(1.0)', lambda: time.sleep(1.0), 990, 1600)

# (b) poll() on a socket nothing is ever sent to: [] after the timeout.
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(socket.getaddrinfo('127.0.0.1', 0)[0][-1])
p = select.poll()
p.register(s, select.POLLIN)
print('poll result', blocked('poll(500)', lambda: p.poll(500), 490, 1100))
s.close()

# (c) sys.stdin.readline(): the runner writes the line 1 s after the file below appears.
open(os.getenv('FWTEST_TMP') + '/stdin-go', 'w').close()
line = blocked('readline', sys.stdin.readline, 700, 5000)
print('line', repr(line))

ble.gap_scan(None)
ble.active(False)
print('done')
