# Helper for ble_scan_result.py (not a test): advertise until killed.
#   micropython _adv_peer.py conn|scan
import sys
import time
import bluetooth

mode = sys.argv[1]
ble = bluetooth.BLE()
ble.active(True)
if mode == 'conn':
    ble.gap_advertise(20000, b'\x02\x01\x06\x05\x09conn', resp_data=b'\x05\x09rsp1')
else:
    ble.gap_advertise(20000, b'\x02\x01\x06\x05\x09scan', resp_data=b'\x05\x09rsp2', connectable=False)
print('advertising', mode, ble.config('mac'))
time.sleep(60)
