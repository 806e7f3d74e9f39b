# Demo, instance 1: advertise a name and some manufacturer data for a few seconds.
import bluetooth
import time

NAME = b"ubluetooth-demo"

ble = bluetooth.BLE()
ble.active(True)
addr_type, addr = ble.config("mac")
print("advertiser: up as", ":".join("%02x" % b for b in addr), "type", addr_type)

# Flags (general discoverable, no BR/EDR), complete local name, manufacturer data.
adv_data = bytes((2, 0x01, 0x06, len(NAME) + 1, 0x09)) + NAME
resp_data = bytes((5, 0xFF, 0xFF, 0xFF)) + b"Hi"
ble.gap_advertise(50_000, adv_data, resp_data=resp_data)
print("advertiser: advertising", NAME.decode())
time.sleep_ms(6000)
ble.gap_advertise(None)
ble.active(False)
print("advertiser: done")
