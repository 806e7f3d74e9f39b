// MicroPython's Unix "standard" variant, with the bluetooth module supplied by ubluetooth
// (a user C module) instead of MicroPython's own extmod/modbluetooth.c.

#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)

#include "variants/mpconfigvariant_common.h"

// Ours provides `bluetooth`; the built-in one must stay out or the names would clash.
#undef MICROPY_PY_BLUETOOTH
#define MICROPY_PY_BLUETOOTH (0)
