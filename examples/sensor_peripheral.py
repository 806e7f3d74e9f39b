# A temperature sensor: the Environmental Sensing service (0x181A) with a Temperature
# characteristic (0x2A6E, sint16 in 0.01 degC) that can be read and subscribed to. It updates
# the value every 250 ms; subscribed clients get each update as a notification. Runs until
# its central disconnects (or 30 s pass).
import bluetooth
import struct
import time
from micropython import const

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_FLAG_READ = const(0x0002)
_FLAG_NOTIFY = const(0x0010)

_ENV_SENSE = bluetooth.UUID(0x181A)
_TEMPERATURE = (bluetooth.UUID(0x2A6E), _FLAG_READ | _FLAG_NOTIFY)
NAME = b"mpy-temp"

ble = bluetooth.BLE()
state: dict = {"conn": None, "done": False}


def irq(event, data):
    if event == _IRQ_CENTRAL_CONNECT:
        state["conn"] = data[0]
        print("sensor: central connected")
    elif event == _IRQ_CENTRAL_DISCONNECT:
        print("sensor: central disconnected")
        state["done"] = True


def advertising_payload():
    # Flags, complete name, complete list of 16-bit service UUIDs.
    return (
        bytes((2, 0x01, 0x06, len(NAME) + 1, 0x09)) + NAME + bytes((3, 0x03)) + struct.pack("<H", 0x181A)
    )


ble.irq(irq)
ble.active(True)
((temp_handle,),) = ble.gatts_register_services(((_ENV_SENSE, (_TEMPERATURE,)),))
ble.gap_advertise(100_000, advertising_payload())
print("sensor: advertising as", NAME.decode())

# A slowly rising temperature, from 21.00 degC.
centi = 2100
ble.gatts_write(temp_handle, struct.pack("<h", centi))
t0 = time.ticks_ms()
while not state["done"] and time.ticks_diff(time.ticks_ms(), t0) < 30_000:
    time.sleep_ms(250)
    centi += 25
    # send_update: notify every subscribed client.
    ble.gatts_write(temp_handle, struct.pack("<h", centi), True)
ble.active(False)
print("sensor: done")
