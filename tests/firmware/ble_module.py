# Module contents and the BLE() singleton (spec sections 0, 1, 1.1). No controller needed.
import bluetooth
import ubluetooth

print('ubluetooth is bluetooth', ubluetooth is bluetooth)
print('__name__', bluetooth.__name__, ubluetooth.__name__)
from ubluetooth import BLE as BLE2

print('from ubluetooth import BLE', BLE2 is bluetooth.BLE)

print('globals', sorted(bluetooth.__dict__.keys()))
print('dir', sorted(n for n in dir(bluetooth) if not n.startswith('_')))

for name in ('FLAG_READ', 'FLAG_WRITE', 'FLAG_NOTIFY', 'FLAG_INDICATE', 'FLAG_WRITE_NO_RESPONSE'):
    v = getattr(bluetooth, name)
    print(name, type(v).__name__, hex(v))

for name in ('_IRQ_SCAN_DONE', 'IRQ_SCAN_DONE', 'FLAG_AUTHENTICATED_READ', 'GATTS_NO_ERROR',
             'ADDR_MODE_PUBLIC', 'IO_CAPABILITY_NO_INPUT_OUTPUT'):
    print('has', name, hasattr(bluetooth, name))

print('BLE is a type', isinstance(bluetooth.BLE, type), bluetooth.BLE.__name__)
print('UUID is a type', isinstance(bluetooth.UUID, type), bluetooth.UUID.__name__)

b1 = bluetooth.BLE()
b2 = bluetooth.BLE()
print('BLE() is BLE()', b1 is b2)
print('repr', repr(b1))
print('type', type(b1) is bluetooth.BLE, isinstance(b1, bluetooth.BLE))
b3 = bluetooth.BLE(1, x=2)
print('BLE(1, x=2) is b1', b3 is b1)
b4 = ubluetooth.BLE('a', 'b', 'c', key=None, other=3)
print('ubluetooth.BLE(...) is b1', b4 is b1)
print('repr(b4)', repr(b4))
# creating the object does not touch the radio
print('active', b1.active())
# hci_cmd is absent in this build profile (spec section 0)
print('has hci_cmd', hasattr(b1, 'hci_cmd'))
for name in ('active', 'config', 'irq', 'gap_advertise', 'gap_scan'):
    print('has', name, hasattr(b1, name), callable(getattr(b1, name)))
