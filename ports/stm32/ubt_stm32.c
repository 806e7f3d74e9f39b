// The bluetooth module's port layer for MicroPython's stm32 port: the HCI UART on the port's own
// UART driver, polls from a soft timer, and the soft-reset hook. The heap is
// micropython_glue/ubt_bare_metal.c. Built when USER_C_MODULES names this repository and
// UBT_PORT=stm32 (micropython_glue/micropython.mk), with MicroPython's own bluetooth off.
//
// The HCI UART is the board's MICROPY_HW_BLE_UART_ID at MICROPY_HW_BLE_UART_BAUDRATE (boards with
// a radio module name them), or UBT_HCI_UART_ID / UBT_HCI_UART_BAUDRATE given on the command line
// for an external HCI-UART controller; UBT_HCI_UART_FLOW=0 turns RTS/CTS off. Nothing here powers
// up or loads firmware into an on-board radio (PYBD's CYW43 needs that), so today only external
// controllers work. Received bytes go into the driver's
// ring buffer from its RX interrupt; a 1 ms soft timer (PendSV level) asks the core for a poll
// whenever bytes are waiting or a NimBLE timer is due, and the poll runs from the scheduler.
// A panic in the core prints its message and resets the board (ubt_port_fatal).

#include <stdint.h>

#include "py/mphal.h"
#include "py/runtime.h"
#include "extmod/modmachine.h"
#include "shared/runtime/softtimer.h"
#include "boardctrl.h"
#include "uart.h"

#include "ubluetooth.h"

#ifndef UBT_HCI_UART_ID
#if defined(MICROPY_HW_BLE_UART_ID)
#define UBT_HCI_UART_ID MICROPY_HW_BLE_UART_ID
#else
#error "name the HCI UART: UBT_HCI_UART_ID (e.g. CFLAGS_EXTRA=-DUBT_HCI_UART_ID=6)"
#endif
#endif

#ifndef UBT_HCI_UART_BAUDRATE
#if defined(MICROPY_HW_BLE_UART_BAUDRATE)
#define UBT_HCI_UART_BAUDRATE MICROPY_HW_BLE_UART_BAUDRATE
#else
#define UBT_HCI_UART_BAUDRATE (1000000)
#endif
#endif

// H4 needs hardware flow control at these rates: RTS/CTS are on unless UBT_HCI_UART_FLOW=0. The
// driver only routes RTS/CTS to pins the board names (MICROPY_HW_UARTn_RTS/_CTS); on a UART
// without them (e.g. UART6 of NUCLEO_F446RE) flow control must be off, and the controller's too.
#ifndef UBT_HCI_UART_FLOW
#define UBT_HCI_UART_FLOW (1)
#endif
#if UBT_HCI_UART_FLOW
#define UBT_HCI_UART_FLOW_BITS (UART_HWCONTROL_RTS | UART_HWCONTROL_CTS)
#else
#define UBT_HCI_UART_FLOW_BITS (UART_HWCONTROL_NONE)
#endif

// The driver's receive ring: a few full-size HCI packets.
#define UBT_HCI_RX_BUF_LEN (1024)

static machine_uart_obj_t ubt_hci_uart;
static uint8_t ubt_hci_rx_buf[UBT_HCI_RX_BUF_LEN];
static soft_timer_entry_t ubt_poll_timer;
static bool ubt_uart_open;

// --- Polls ---------------------------------------------------------------------------------------

// Every millisecond at PendSV level: only asks for a poll, which runs from the scheduler.
static void ubt_poll_timer_cb(soft_timer_entry_t *self) {
    (void)self;
    ubt_port_event(ubt_uart_open && uart_rx_any(&ubt_hci_uart) > 0);
}

// --- HCI UART ------------------------------------------------------------------------------------

int32_t ubt_port_hci_uart_open(void) {
    if (!uart_exists(UBT_HCI_UART_ID)) {
        return -1;
    }
    ubt_hci_uart.base.type = &machine_uart_type;
    ubt_hci_uart.uart_id = UBT_HCI_UART_ID;
    ubt_hci_uart.is_static = true;
    ubt_hci_uart.timeout = 2;
    ubt_hci_uart.timeout_char = 2;
    // The driver's RX interrupt looks the object up here.
    MP_STATE_PORT(machine_uart_obj_all)[UBT_HCI_UART_ID - 1] = &ubt_hci_uart;
    if (!uart_init(&ubt_hci_uart, UBT_HCI_UART_BAUDRATE, UART_WORDLENGTH_8B, UART_PARITY_NONE,
        UART_STOPBITS_1, UBT_HCI_UART_FLOW_BITS)) {
        return -1;
    }
    uart_set_rxbuf(&ubt_hci_uart, sizeof(ubt_hci_rx_buf), ubt_hci_rx_buf);
    ubt_uart_open = true;
    soft_timer_static_init(&ubt_poll_timer, SOFT_TIMER_MODE_PERIODIC, 1, ubt_poll_timer_cb);
    soft_timer_insert(&ubt_poll_timer, 1);
    return 0;
}

void ubt_port_hci_uart_close(void) {
    if (!ubt_uart_open) {
        return;
    }
    ubt_uart_open = false;
    soft_timer_remove(&ubt_poll_timer);
    uart_deinit(&ubt_hci_uart);
    MP_STATE_PORT(machine_uart_obj_all)[UBT_HCI_UART_ID - 1] = NULL;
}

int32_t ubt_port_hci_uart_write(const uint8_t *buf, size_t len) {
    if (!ubt_uart_open) {
        return -1;
    }
    int errcode = 0;
    size_t sent = uart_tx_data(&ubt_hci_uart, buf, len, &errcode);
    return sent == len ? 0 : -1;
}

size_t ubt_port_hci_uart_read(uint8_t *buf, size_t len) {
    size_t n = 0;
    while (ubt_uart_open && n < len && uart_rx_any(&ubt_hci_uart)) {
        buf[n++] = (uint8_t)uart_rx_char(&ubt_hci_uart);
    }
    return n;
}

// The HCI command wait. Rust and NimBLE frames are live below it, so it must not run what the
// driver's uart_rx_wait runs between checks (MICROPY_EVENT_POLL_HOOK: pending exceptions and
// scheduled Python, which would longjmp through them). It sleeps until the next interrupt
// instead: the UART's RX, or SysTick within a millisecond. A Ctrl-C meanwhile (the REPL UART's
// or USB's interrupt handler) only leaves a pending KeyboardInterrupt, which the VM raises
// after the Rust call has returned.
void ubt_port_hci_uart_wait_rx(uint32_t timeout_ms) {
    uint32_t t0 = mp_hal_ticks_ms();
    while (ubt_uart_open && mp_hal_ticks_ms() - t0 < timeout_ms) {
        // Checked with interrupts masked: a byte arriving between the check and the WFI still
        // wakes it (a pending interrupt ends WFI even while masked) and is handled on unmasking.
        uint32_t irq_state = disable_irq();
        bool ready = uart_rx_any(&ubt_hci_uart) > 0;
        if (!ready) {
            __WFI();
        }
        enable_irq(irq_state);
        if (ready) {
            return;
        }
    }
}

// --- Fatal errors --------------------------------------------------------------------------------

// A panic or abort in the Rust core (src/panic.rs): the message on the console as the port's
// fatal errors print it, then a reset, so the board comes back rather than hanging. The reset
// waits a moment first (a counted delay: interrupts may be off, so no tick) for a USB console to
// send the message out.
NORETURN void ubt_port_fatal(const char *msg, size_t len);

NORETURN void ubt_port_fatal(const char *msg, size_t len) {
    mp_hal_stdout_tx_strn("\r\nFATAL ERROR:\r\n", 16);
    mp_hal_stdout_tx_strn(msg, len);
    mp_hal_stdout_tx_strn("\r\n", 2);
    for (volatile uint32_t delay = 0; delay < 10000000; ++delay) {
    }
    NVIC_SystemReset();
}

// --- Soft reset ----------------------------------------------------------------------------------

void ubt_port_soft_reset(void);

// MICROPY_BOARD_START_SOFT_RESET (ubt_stm32_hooks.h), the first step of a soft reset: the UART
// and soft timers still work, so a running stack stops cleanly (its links end as with
// active(False)) before the GC heap is swept; then the board's own hook.
void ubt_stm32_start_soft_reset(boardctrl_state_t *state) {
    ubt_port_soft_reset();
    boardctrl_start_soft_reset(state);
}
