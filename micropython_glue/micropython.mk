# MicroPython user C module: the `bluetooth` module (ubluetooth) in Rust on NimBLE.
#
#   make -C <micropython>/ports/unix USER_C_MODULES=<this repo>
#
# The Rust staticlib (which contains NimBLE) is built with cargo when this file is read, so
# the generated header exists before MicroPython scans sources for qstrs. Set UBT_SKIP_CARGO=1
# when something else (our top-level Makefile) has built it already.

UBT_DIR := $(abspath $(USERMOD_DIR)/..)
UBT_TARGET_DIR ?= $(UBT_DIR)/target

# Bare-metal ports build the no_std library for Cortex-M4F/M7: UBT_PORT names ours (stm32, qemu),
# or a cross compiler given on the command line says so. (The stm32 and qemu ports set
# CROSS_COMPILE only after reading this file.) The Unix port is the crate default.
UBT_BARE_METAL := $(UBT_PORT)$(findstring arm-none-eabi,$(CROSS_COMPILE))

# The parts of the module this firmware has (docs/building.md, "Feature profiles"): any of
# central peripheral gatt-client l2cap security, or `full` for all of them. The same list goes
# to cargo as features and to the glue as UBT_CENTRAL=0/1 and so on.
UBT_FEATURES ?= full
UBT_PARTS := central peripheral gatt-client l2cap security
UBT_FEATURE_LIST := $(if $(filter full,$(UBT_FEATURES)),$(UBT_PARTS),$(UBT_FEATURES))
UBT_UNKNOWN_FEATURES := $(filter-out full $(UBT_PARTS),$(UBT_FEATURES))
ifneq ($(UBT_UNKNOWN_FEATURES),)
$(error ubluetooth: unknown UBT_FEATURES: $(UBT_UNKNOWN_FEATURES))
endif
UBT_EMPTY :=
UBT_COMMA := ,
UBT_CARGO_FEATURES := $(subst $(UBT_EMPTY) $(UBT_EMPTY),$(UBT_COMMA),$(strip $(UBT_FEATURE_LIST)))
ubt_has = $(if $(filter $(1),$(UBT_FEATURE_LIST)),1,0)
CFLAGS_USERMOD += -DUBT_CENTRAL=$(call ubt_has,central) -DUBT_PERIPHERAL=$(call ubt_has,peripheral) \
	-DUBT_GATT_CLIENT=$(call ubt_has,gatt-client) -DUBT_L2CAP=$(call ubt_has,l2cap) \
	-DUBT_SECURITY=$(call ubt_has,security)

ifneq ($(UBT_BARE_METAL),)
UBT_RUST_TARGET ?= thumbv7em-none-eabihf
UBT_CARGO_FLAGS ?= --no-default-features --features "$(UBT_CARGO_FEATURES)" --target $(UBT_RUST_TARGET)
UBT_LIB := $(UBT_TARGET_DIR)/$(UBT_RUST_TARGET)/release/libubluetooth.a
else
UBT_CARGO_FLAGS ?= --no-default-features --features "unix $(UBT_CARGO_FEATURES)"
UBT_LIB := $(UBT_TARGET_DIR)/release/libubluetooth.a
endif

ifneq ($(UBT_SKIP_CARGO),1)
UBT_CARGO_OK := $(shell cd $(UBT_DIR) && CARGO_TARGET_DIR=$(UBT_TARGET_DIR) cargo rustc --release --lib --crate-type staticlib $(UBT_CARGO_FLAGS) 1>&2 && echo ok)
ifneq ($(UBT_CARGO_OK),ok)
$(error ubluetooth: cargo build failed)
endif
endif

SRC_USERMOD_C += $(wildcard $(USERMOD_DIR)/*.c)
# The staticlib is only a linker flag to MicroPython's build: make the firmware depend on it
# so a Rust-only change relinks (unix links $(BUILD)/$(PROG), bare-metal ports firmware.elf).
$(BUILD)/$(PROG) $(BUILD)/firmware.elf: $(UBT_LIB)
CFLAGS_USERMOD += -I$(USERMOD_DIR)
ifeq ($(UBT_BARE_METAL),)
LDFLAGS_USERMOD += $(UBT_LIB) -lpthread -ldl -lm
else
# Bare-metal link lines put LDFLAGS before the objects, where an archive resolves nothing; LIBS
# comes after them (the stm32 port appends libgcc to it next; the qemu build sets LIBS itself).
LIBS += $(UBT_LIB)
endif

# The stm32 port: our UART glue and soft-reset hook (ports/stm32), forced into every file.
ifeq ($(UBT_PORT),stm32)
SRC_USERMOD_C += $(UBT_DIR)/ports/stm32/ubt_stm32.c
CFLAGS_USERMOD += -include $(UBT_DIR)/ports/stm32/ubt_stm32_hooks.h
endif
