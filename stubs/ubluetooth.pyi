"""`ubluetooth` is the same module as `bluetooth` (see bluetooth.pyi)."""

from bluetooth import BLE as BLE
from bluetooth import FLAG_INDICATE as FLAG_INDICATE
from bluetooth import FLAG_NOTIFY as FLAG_NOTIFY
from bluetooth import FLAG_READ as FLAG_READ
from bluetooth import FLAG_WRITE as FLAG_WRITE
from bluetooth import FLAG_WRITE_NO_RESPONSE as FLAG_WRITE_NO_RESPONSE
from bluetooth import UUID as UUID
