# A Nordic-UART-style peripheral: the central writes text to RX, we answer each complete line
# on TX (as a notification), upper-cased. RX uses gatts_set_buffer's append mode, so writes
# that arrive faster than the main loop reads them queue up instead of overwriting each other.
import bluetooth
import time
from micropython import const

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_FLAG_WRITE_NO_RESPONSE = const(0x0004)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)

_UART = bluetooth.UUID("6E400001-B5A3-F393-E0A9-E50E24DCCA9E")
_TX = (bluetooth.UUID("6E400003-B5A3-F393-E0A9-E50E24DCCA9E"), _FLAG_NOTIFY)
_RX = (bluetooth.UUID("6E400002-B5A3-F393-E0A9-E50E24DCCA9E"), _FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE)
NAME = b"mpy-uart"

ble = bluetooth.BLE()
state: dict = {"conn": None, "rx": False, "done": False}


def irq(event, data):
    if event == _IRQ_CENTRAL_CONNECT:
        state["conn"] = data[0]
        print("uart: central connected")
    elif event == _IRQ_CENTRAL_DISCONNECT:
        print("uart: central disconnected")
        state["done"] = True
    elif event == _IRQ_GATTS_WRITE:
        state["rx"] = True


ble.irq(irq)
ble.active(True)
((tx, rx),) = ble.gatts_register_services(((_UART, (_TX, _RX)),))
# Up to 200 bytes may wait in RX; each gatts_read returns them all and empties it.
ble.gatts_set_buffer(rx, 200, True)
ble.gap_advertise(100_000, bytes((2, 0x01, 0x06, len(NAME) + 1, 0x09)) + NAME)
print("uart: advertising as", NAME.decode())

pending = b""
t0 = time.ticks_ms()
while not state["done"] and time.ticks_diff(time.ticks_ms(), t0) < 30_000:
    if state["rx"]:
        state["rx"] = False
        pending += ble.gatts_read(rx)
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            print("uart: got", line.decode())
            answer = line.upper() + b"\n"
            # A notification carries at most MTU - 3 bytes: 20 unless the MTU was exchanged.
            for i in range(0, len(answer), 20):
                ble.gatts_notify(state["conn"], tx, answer[i : i + 20])
    time.sleep_ms(5)
ble.active(False)
print("uart: done")
