# MPS2 with an AN386 image: a Cortex-M4F (QEMU's mps2-an386), with the bluetooth module from this
# repository. Built out of tree: make -C <micropython>/ports/qemu BOARD_DIR=<this folder> ...
# (our top-level `make qemu` passes the rest).
QEMU_ARCH = arm
QEMU_MACHINE = mps2-an386

UBT_QEMU_DIR := $(abspath $(BOARD_DIR)/../..)

CFLAGS += -mthumb -mcpu=cortex-m4 -mfloat-abi=hard -mfpu=fpv4-sp-d16
CFLAGS += -DQEMU_SOC_MPS2
CFLAGS += -DMICROPY_HW_MCU_NAME='"Cortex-M4F"'
CFLAGS += -include $(UBT_QEMU_DIR)/ubt_qemu_hooks.h

# The same memory map as the AN385 image.
LDSCRIPT = mcu/arm/mps2.ld
# The FPU is switched on before the port's first call, SysTick queues polls, and waiting for
# console input runs them (ubt_qemu.c).
LDFLAGS += -Wl,--wrap=mp_semihosting_init -Wl,--wrap=SysTick_Handler -Wl,--wrap=uart_rx_chr

SRC_BOARD_O = shared/runtime/gchelper_native.o shared/runtime/gchelper_thumb2.o
SRC_C += $(UBT_QEMU_DIR)/ubt_qemu.c

MPY_CROSS_FLAGS += -march=armv7emsp
