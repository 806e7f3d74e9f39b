# The standard variant's build settings, minus what the Debian source tree can't build:
# btree and ssl need lib/ submodules it doesn't carry, and the standard manifest pulls in
# micropython-lib (also absent). asyncio, from extmod, is frozen as in the standard build.
FROZEN_MANIFEST ?= $(VARIANT_DIR)/manifest.py
MICROPY_PY_BLUETOOTH = 0
MICROPY_PY_BTREE = 0
MICROPY_PY_SSL = 0
MICROPY_SSL_MBEDTLS = 0
