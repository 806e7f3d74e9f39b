# config('rxbuf'), which the API document lists: MicroPython's NimBLE builds raise
# ValueError for it; ours delivers events synchronously too, but keeps the value so scripts
# written for ring-buffer builds (which set it, e.g. ble_gap_advertise) read back what they set.
# needs: controllers=1
import bluetooth

ble = bluetooth.BLE()
print("default", ble.config("rxbuf"))
ble.config(rxbuf=2000)
print("inactive set", ble.config("rxbuf"))
ble.active(True)
print("active", ble.config("rxbuf"))
ble.config(rxbuf=512)
print("set", ble.config("rxbuf"))
try:
    ble.config(rxbuf=-1)
except ValueError as e:
    print("negative:", e)
try:
    ble.config(rxbuf="x")
except TypeError as e:
    print("type:", e)
print("unchanged", ble.config("rxbuf"))
ble.active(False)
print("after active(False)", ble.config("rxbuf"))
