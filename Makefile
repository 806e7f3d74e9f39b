# Top-level build: fetches dependencies (tools/deps.sh), builds the Rust staticlib and links
# it into MicroPython's Unix port as a user C module.
#
#   make unix      -> build/unix/micropython
#   make unix-asan -> build/unix-asan/micropython, AddressSanitizer on (tools/asan.sh tests it)
#   make unix-features UBT_FEATURES="peripheral ..." -> build/unix-peripheral+.../micropython,
#                  only those parts of the module (docs/building.md, "Feature profiles")
#   make qemu      -> build/qemu/firmware.elf: MicroPython's qemu port on an MPS2-AN386 (Cortex-M4F)
#   make qemu-panic-test -> build/qemu-panic-test/firmware.elf: the same with a panic hook (tests only)
#   make stm32 MICROPY_DIR=<full checkout> BOARD=<board> [UBT_HCI_UART_ID=n] [UBT_HCI_UART_FLOW=0]
#                  -> build/stm32-<board>/
#   make test      -> every test (what CI runs)
#   make demo      -> a temperature sensor and a central reading it, over virtual controllers
#   make aioble    -> aioble's multitests on our firmware (MICROPYTHON_LIB_DIR=<micropython-lib>)
#   make bench     -> ours against MicroPython's C module: bench/RESULTS.md
#
# MICROPY_DIR / NIMBLE_DIR point the build at your own MicroPython checkout / NimBLE tree.

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
MICROPY_DIR ?= $(ROOT)/.cache/micropython-1.25.0
export NIMBLE_DIR
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# Our variant is the standard one with MicroPython's own bluetooth module off
# (ports/unix/variants/ubluetooth); mpy-cross freezes asyncio into it.
UNIX_MAKE_FLAGS := \
	BUILD=$(ROOT)/build/unix \
	VARIANT_DIR=$(ROOT)/ports/unix/variants/ubluetooth \
	USER_C_MODULES=$(ROOT) \
	UBT_SKIP_CARGO=1

# MicroPython's frozen-module rule insists on a micropython-lib checkout even when the manifest
# uses none of it, and the Debian source ships that submodule empty: point it at a stand-in.
ifeq ($(wildcard $(MICROPY_DIR)/lib/micropython-lib/README.md),)
NO_MPY_LIB := $(ROOT)/build/no-micropython-lib
UNIX_MAKE_FLAGS += MPY_LIB_DIR=$(NO_MPY_LIB)
endif

.PHONY: all deps unix unix-features rust test demo aioble clean qemu qemu-panic-test stm32

# What every Unix firmware build does first: the micropython-lib stand-in and mpy-cross.
define unix_prelude
	$(if $(NO_MPY_LIB),mkdir -p $(NO_MPY_LIB) && echo "micropython-lib is not used by this build" > $(NO_MPY_LIB)/README.md)
	$(MAKE) -C $(MICROPY_DIR)/mpy-cross -j$(JOBS) BUILD=$(ROOT)/build/mpy-cross
endef

all: unix

deps:
	@bash $(ROOT)/tools/deps.sh

# `cargo rustc --crate-type staticlib`: with the rlib the crate also builds (for tests and
# fuzzing), cargo doesn't apply LTO, and the firmware's text grows by ~70 kB.
rust: deps
	cd $(ROOT) && cargo rustc --release --lib --crate-type staticlib

unix: rust
	$(unix_prelude)
	$(MAKE) -C $(MICROPY_DIR)/ports/unix MICROPY_MPYCROSS=$(ROOT)/build/mpy-cross/mpy-cross -j$(JOBS) $(UNIX_MAKE_FLAGS)

# A Unix firmware with only some parts of the module (docs/building.md, "Feature profiles"),
# in build and cargo folders of its own: make unix-features UBT_FEATURES="peripheral security"
# -> build/unix-peripheral+security/micropython. micropython.mk builds the Rust archive with the
# same list.
UBT_FEATURES ?= full
UBT_SPACE := $(subst ,, )
UBT_FEATURES_NAME := $(subst $(UBT_SPACE),+,$(strip $(UBT_FEATURES)))

unix-features: deps
	$(unix_prelude)
	$(MAKE) -C $(MICROPY_DIR)/ports/unix MICROPY_MPYCROSS=$(ROOT)/build/mpy-cross/mpy-cross -j$(JOBS) \
		$(filter-out BUILD=% UBT_SKIP_CARGO=%,$(UNIX_MAKE_FLAGS)) BUILD=$(ROOT)/build/unix-$(UBT_FEATURES_NAME) \
		UBT_TARGET_DIR=$(ROOT)/target/features-$(UBT_FEATURES_NAME) UBT_FEATURES="$(UBT_FEATURES)"

test: unix
	bash $(ROOT)/tools/test.sh

# The same firmware with AddressSanitizer in every part: MicroPython and our glue (gcc), NimBLE
# (gcc, through nimble-sys's cc, which takes CFLAGS from the environment) and the Rust crate
# (rustc's -Zsanitizer=address, which RUSTC_BOOTSTRAP allows on this stable toolchain; its
# instrumentation links against gcc's libasan). Separate build and cargo target folders, so
# neither build invalidates the other's cache. Use-after-return detection is off, as in
# MicroPython's own ASan CI build: fake stack frames would hide the GC's roots. Not stripped,
# so reports have symbols; line tables for file:line in Rust frames.
ASAN_CFLAGS := -fsanitize=address --param asan-use-after-return=0 -fno-omit-frame-pointer -g
ASAN_RUST_TARGET := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
ASAN_TARGET_DIR := $(ROOT)/target/asan
ASAN_UBT_LIB := $(ASAN_TARGET_DIR)/$(ASAN_RUST_TARGET)/release/libubluetooth.a

.PHONY: rust-asan unix-asan
rust-asan: deps
	cd $(ROOT) && RUSTC_BOOTSTRAP=1 \
		RUSTFLAGS="-Zsanitizer=address -Cforce-frame-pointers=yes -Cdebuginfo=line-tables-only" \
		CFLAGS="$(ASAN_CFLAGS)" CARGO_TARGET_DIR=$(ASAN_TARGET_DIR) \
		cargo rustc --release --lib --crate-type staticlib --target $(ASAN_RUST_TARGET)

unix-asan: rust-asan
	$(unix_prelude)
	$(MAKE) -C $(MICROPY_DIR)/ports/unix MICROPY_MPYCROSS=$(ROOT)/build/mpy-cross/mpy-cross -j$(JOBS) \
		$(filter-out BUILD=%,$(UNIX_MAKE_FLAGS)) BUILD=$(ROOT)/build/unix-asan UBT_LIB=$(ASAN_UBT_LIB) \
		CFLAGS_EXTRA="$(ASAN_CFLAGS)" LDFLAGS_EXTRA="$(ASAN_CFLAGS)" STRIP=

demo: unix
	bash $(ROOT)/tools/demo.sh

aioble: unix
	bash $(ROOT)/tools/aioble.sh

clean:
	rm -rf $(ROOT)/build $(ROOT)/target

# Ours against MicroPython's own C bluetooth module on the same NimBLE tree (bench/RESULTS.md):
# builds the comparator (build/bench/cmodule/micropython), measures throughput (BENCH_ROUNDS
# alternating rounds), bulk throughput on the radio model (BENCH_AIR_ROUNDS; bench/AIRTIME.md),
# CPU per event (callgrind), size (with every feature profile) and memory (Unix, and on the
# qemu board), writes the raw numbers to build/bench/*.json and
# the tables into bench/RESULTS.md.
BENCH_ROUNDS ?= 5
BENCH_AIR_ROUNDS ?= 3
VENV_PYTHON := $(ROOT)/.cache/venv/bin/python

.PHONY: bench
bench: unix qemu
	MICROPY_DIR=$(MICROPY_DIR) bash $(ROOT)/bench/build_cmodule.sh
	$(VENV_PYTHON) $(ROOT)/bench/throughput.py --rounds $(BENCH_ROUNDS) \
		--micropython-dir $(MICROPY_DIR) --json $(ROOT)/build/bench/throughput.json
	$(VENV_PYTHON) $(ROOT)/bench/airtime.py --rounds $(BENCH_AIR_ROUNDS) \
		--micropython-dir $(MICROPY_DIR) --json $(ROOT)/build/bench/airtime.json
	$(VENV_PYTHON) $(ROOT)/bench/cpu.py --json $(ROOT)/build/bench/cpu.json
	$(VENV_PYTHON) $(ROOT)/bench/size.py --profiles --json $(ROOT)/build/bench/size.json
	$(VENV_PYTHON) $(ROOT)/bench/heap.py --json $(ROOT)/build/bench/heap.json
	$(VENV_PYTHON) $(ROOT)/bench/heap_qemu.py --json $(ROOT)/build/bench/heap_qemu.json
	$(VENV_PYTHON) $(ROOT)/bench/report.py

# MicroPython's qemu port with our board (ports/qemu/boards/MPS2_AN386) and the module built for
# thumbv7em-none-eabihf. That port's link line puts LDFLAGS (where user C modules add their
# archive) before the objects, so the archive goes into LIBS, after them, instead; and its linker
# script has no place for Rust's .ARM.exidx unwind tables (unused with panic=abort), so they are
# stripped from a copy of the archive.
THUMB := thumbv7em-none-eabihf
QEMU_BUILD := $(ROOT)/build/qemu
QEMU_BOARD_DIR := $(ROOT)/ports/qemu/boards/MPS2_AN386
QEMU_CPU_FLAGS := -mthumb -mcpu=cortex-m4 -mfloat-abi=hard -mfpu=fpv4-sp-d16

# $(call qemu_firmware,BUILD FOLDER,EXTRA CARGO FLAGS,EXTRA CFLAGS)
define qemu_firmware
	cd $(ROOT) && cargo rustc --release --lib --crate-type staticlib --no-default-features --features full $(2) --target $(THUMB)
	mkdir -p $(1)
	arm-none-eabi-objcopy --remove-section='.ARM.exidx*' --remove-section='.ARM.extab*' \
		$(ROOT)/target/$(THUMB)/release/libubluetooth.a $(1)/libubluetooth.a.tmp
	cmp -s $(1)/libubluetooth.a.tmp $(1)/libubluetooth.a && rm $(1)/libubluetooth.a.tmp || mv $(1)/libubluetooth.a.tmp $(1)/libubluetooth.a
	$(MAKE) -C $(MICROPY_DIR)/ports/qemu -j$(JOBS) BOARD=MPS2_AN386 BOARD_DIR=$(QEMU_BOARD_DIR) \
		BUILD=$(1) USER_C_MODULES=$(ROOT) UBT_SKIP_CARGO=1 UBT_LIB=$(1)/libubluetooth.a \
		CROSS_COMPILE=arm-none-eabi- FROZEN_MANIFEST= CFLAGS_EXTRA="$(3)" \
		LIBS="$(1)/libubluetooth.a $$(arm-none-eabi-gcc $(QEMU_CPU_FLAGS) -print-libgcc-file-name)"
endef

qemu: deps
	$(call qemu_firmware,$(QEMU_BUILD),,)

# Only for tests/qemu's panic test: the same firmware in its own folder, with a way for a script
# to make the core panic (the crate's `panic-test` feature, the _ubt_panic_test module).
qemu-panic-test: deps
	$(call qemu_firmware,$(ROOT)/build/qemu-panic-test,--features panic-test,-DUBT_PANIC_TEST=1)

# An STM32 board from your full MicroPython checkout (MICROPY_DIR, with lib/stm32lib and the
# submodules the board needs): MicroPython's own bluetooth off, ours in (UBT_PORT=stm32), the HCI
# UART named by the board (MICROPY_HW_BLE_UART_ID) or by UBT_HCI_UART_ID=n [UBT_HCI_UART_BAUDRATE=..];
# UBT_HCI_UART_FLOW=0 for a UART without RTS/CTS pins. The stm32 port builds the Rust archive
# itself through micropython_glue/micropython.mk.
STM32_CFLAGS := $(if $(UBT_HCI_UART_ID),-DUBT_HCI_UART_ID=$(UBT_HCI_UART_ID)) \
	$(if $(UBT_HCI_UART_BAUDRATE),-DUBT_HCI_UART_BAUDRATE=$(UBT_HCI_UART_BAUDRATE)) \
	$(if $(UBT_HCI_UART_FLOW),-DUBT_HCI_UART_FLOW=$(UBT_HCI_UART_FLOW))

stm32: deps
	$(if $(BOARD),,$(error name the board: make stm32 BOARD=NUCLEO_F446RE MICROPY_DIR=...))
	$(if $(wildcard $(MICROPY_DIR)/lib/stm32lib/README.md),,$(error $(MICROPY_DIR)/lib/stm32lib is empty: a full MicroPython checkout with its submodules is needed))
	$(MAKE) -C $(MICROPY_DIR)/mpy-cross -j$(JOBS)
	$(MAKE) -C $(MICROPY_DIR)/ports/stm32 -j$(JOBS) BOARD=$(BOARD) BUILD=$(ROOT)/build/stm32-$(BOARD) \
		USER_C_MODULES=$(ROOT) UBT_PORT=stm32 MICROPY_PY_BLUETOOTH=0 CFLAGS_EXTRA="$(STM32_CFLAGS)"
