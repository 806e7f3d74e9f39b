# Prepended to a multitest by `tests/multitest.py --gc-stress`: every IRQ handler call runs
# gc.collect() first. The real module's BLE can't be patched (its type is read-only), so a
# stand-in `bluetooth` module goes into sys.modules with a BLE wrapper around the real one.
import sys as _sys
import gc as _gc
import bluetooth as _bt


class _Module:
    pass


class _BLE:
    def __init__(self):
        self._ble = _bt.BLE()

    def irq(self, handler):
        if handler is None:
            return self._ble.irq(None)

        def collecting(event, data):
            _gc.collect()
            return handler(event, data)

        return self._ble.irq(collecting)



def _forward(name):
    def method(self, *args, **kwargs):
        return getattr(self._ble, name)(*args, **kwargs)

    return method


# Class attributes, not __getattr__: tests probe hasattr(bluetooth.BLE, "l2cap_connect").
for _name in dir(_bt.BLE):
    if not _name.startswith("_") and _name != "irq":
        setattr(_BLE, _name, _forward(_name))
_module = _Module()
for _name in dir(_bt):
    if not _name.startswith("__"):
        setattr(_module, _name, getattr(_bt, _name))
_module.BLE = _BLE
_sys.modules["bluetooth"] = _module
_sys.modules["ubluetooth"] = _module
