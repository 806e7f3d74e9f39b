# L2CAP file transfer, receiving side: listens on PSM 0x80 and stores what arrives in
# received.bin (current directory). The sender first sends the size as 4 bytes, then the data;
# once all of it is here, we close the channel and the sender disconnects.
import bluetooth
import hashlib
import struct
import time
from micropython import const

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_L2CAP_ACCEPT = const(22)
_IRQ_L2CAP_CONNECT = const(23)
_IRQ_L2CAP_DISCONNECT = const(24)
_IRQ_L2CAP_RECV = const(25)
PSM = const(0x80)
MTU = const(512)
NAME = b"mpy-files"

ble = bluetooth.BLE()
state: dict = {"chan": None, "ready": False, "done": False}


def irq(event, data):
    if event == _IRQ_L2CAP_CONNECT:
        conn, cid, psm, our_mtu, peer_mtu = data
        state["chan"] = (conn, cid)
        print("receiver: channel open, MTU", our_mtu)
    elif event == _IRQ_L2CAP_RECV:
        state["ready"] = True
    elif event == _IRQ_L2CAP_DISCONNECT:
        state["chan"] = None
    elif event == _IRQ_CENTRAL_DISCONNECT:
        state["done"] = True


ble.irq(irq)
ble.active(True)
ble.l2cap_listen(PSM, MTU)
ble.gap_advertise(100_000, bytes((2, 0x01, 0x06, len(NAME) + 1, 0x09)) + NAME)
print("receiver: advertising as", NAME.decode())

buf = bytearray(MTU)
mv = memoryview(buf)
header = b""
size = None
got = 0
sha = hashlib.sha256()
t0 = time.ticks_ms()
with open("received.bin", "wb") as out:
    while not state["done"] and time.ticks_diff(time.ticks_ms(), t0) < 30_000:
        chan = state["chan"]
        if chan is None or not state["ready"]:
            time.sleep_ms(5)
            continue
        # Drain everything available: credits go back to the sender only once we have.
        n = ble.l2cap_recvinto(chan[0], chan[1], buf)
        if not n:
            state["ready"] = ble.l2cap_recvinto(chan[0], chan[1], None) > 0
            continue
        data = mv[:n]
        if size is None:
            header += bytes(data)
            if len(header) < 4:
                continue
            size = struct.unpack("<I", header[:4])[0]
            data = memoryview(header[4:])
            print("receiver: receiving", size, "bytes")
        out.write(data)
        sha.update(data)
        got += len(data)
        if got >= size:
            ble.l2cap_disconnect(chan[0], chan[1])
            state["chan"] = None
print("receiver: stored", got, "bytes in received.bin, sha256", sha.digest().hex()[:16])
ble.active(False)
print("receiver: done")
