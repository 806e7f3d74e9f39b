# Top-level build: fetches dependencies (tools/deps.sh), builds the Rust staticlib and links
# it into MicroPython's Unix port as a user C module.
#
#   make unix      -> build/unix/micropython
#   make test      -> every test (what CI runs)
#   make demo      -> one instance advertises, another scans, over virtual controllers
#
# MICROPY_DIR / NIMBLE_DIR point the build at your own MicroPython checkout / NimBLE tree.

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
MICROPY_DIR ?= $(ROOT)/.cache/micropython-1.25.0
export NIMBLE_DIR
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# The standard variant with MicroPython's own bluetooth module off; no frozen micropython-lib
# (its submodule is empty in the Debian source), no btree/ssl (their libs are absent too).
UNIX_MAKE_FLAGS := \
	BUILD=$(ROOT)/build/unix \
	VARIANT=standard \
	USER_C_MODULES=$(ROOT) \
	UBT_SKIP_CARGO=1 \
	MICROPY_PY_BLUETOOTH=0 \
	MICROPY_PY_BTREE=0 \
	MICROPY_PY_SSL=0 \
	MICROPY_SSL_MBEDTLS=0 \
	FROZEN_MANIFEST=

.PHONY: all deps unix rust test demo clean

all: unix

deps:
	@bash $(ROOT)/tools/deps.sh

rust: deps
	cd $(ROOT) && cargo build --release

unix: rust
	$(MAKE) -C $(MICROPY_DIR)/ports/unix -j$(JOBS) $(UNIX_MAKE_FLAGS)

test: unix
	bash $(ROOT)/tools/test.sh

demo: unix
	bash $(ROOT)/tools/demo.sh

clean:
	rm -rf $(ROOT)/build $(ROOT)/target
