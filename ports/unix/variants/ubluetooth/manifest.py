# Frozen into the Unix firmware: asyncio (as in MicroPython's standard variant), which
# aioble and asyncio-based BLE scripts need.
include("$(MPY_DIR)/extmod/asyncio")
