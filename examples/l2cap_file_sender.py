# L2CAP file transfer, sending side: finds the receiver (examples/l2cap_file_receiver.py),
# opens an L2CAP channel to PSM 0x80 and sends a file (by default this script itself): its
# size as 4 bytes, then the data in SDUs of up to 512 bytes, waiting whenever l2cap_send says
# the channel is stalled. The receiver closes the channel when it has it all.
import bluetooth
import hashlib
import os
import struct
import sys
import time
from micropython import const

_IRQ_SCAN_RESULT = const(5)
_IRQ_SCAN_DONE = const(6)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_L2CAP_CONNECT = const(23)
_IRQ_L2CAP_DISCONNECT = const(24)
_IRQ_L2CAP_SEND_READY = const(26)
PSM = const(0x80)
MTU = const(512)
NAME = b"mpy-files"
TIMEOUT_MS = 10_000

ble = bluetooth.BLE()
events: dict = {}
found: dict = {}


def irq(event, data):
    if event == _IRQ_SCAN_RESULT:
        addr_type, addr, adv_type, rssi, adv_data = data
        if "addr" not in found and NAME in bytes(adv_data):
            found["addr"] = (addr_type, bytes(addr))
            ble.gap_scan(None)
    elif event == _IRQ_L2CAP_CONNECT:
        conn, cid, psm, our_mtu, peer_mtu = data
        events[event] = (cid, peer_mtu)
    else:
        events[event] = list(data)  # a copy: the module reuses the tuple


def wait(event):
    t0 = time.ticks_ms()
    while event not in events:
        if time.ticks_diff(time.ticks_ms(), t0) > TIMEOUT_MS:
            raise OSError("timed out waiting for event %d" % event)
        time.sleep_ms(5)
    return events.pop(event)


path = sys.argv[1] if len(sys.argv) > 1 else sys.argv[0]
size = os.stat(path)[6]
ble.irq(irq)
ble.active(True)
ble.gap_scan(5_000, 30_000, 30_000, True)
wait(_IRQ_SCAN_DONE)
ble.gap_connect(*found["addr"])
conn = wait(_IRQ_PERIPHERAL_CONNECT)[0]
ble.l2cap_connect(conn, PSM, MTU)
cid, peer_mtu = wait(_IRQ_L2CAP_CONNECT)
print("sender: sending", path.split("/")[-1], size, "bytes")

sha = hashlib.sha256()
sdu = min(peer_mtu, MTU)
t0 = time.ticks_ms()
with open(path, "rb") as f:
    data = f.read(sdu - 4)
    chunk = struct.pack("<I", size) + data
    while chunk:
        sha.update(data)
        events.pop(_IRQ_L2CAP_SEND_READY, None)
        if not ble.l2cap_send(conn, cid, chunk):
            # Stalled: the receiver hasn't returned credits yet.
            wait(_IRQ_L2CAP_SEND_READY)
        data = chunk = f.read(sdu)
print("sender: sent in", time.ticks_diff(time.ticks_ms(), t0), "ms, sha256", sha.digest().hex()[:16])
# The receiver closes the channel once it has everything.
wait(_IRQ_L2CAP_DISCONNECT)
ble.gap_disconnect(conn)
wait(_IRQ_PERIPHERAL_DISCONNECT)
ble.active(False)
print("sender: done")
