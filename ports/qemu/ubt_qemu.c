// The bluetooth module's port layer for MicroPython's qemu port on the MPS2-AN386 board
// (Cortex-M4F, QEMU machine mps2-an386): what the Rust core and NimBLE need from bare metal.
//
// - Heap: micropython_glue/ubt_bare_metal.c (GC heap blocks listed from a root pointer).
// - HCI UART: the CMSDK APB UART1 at 0x40005000, QEMU's second -serial. QEMU holds an incoming
//   byte until the guest reads it, so polling loses nothing.
// - Time: the CMSDK APB timer 0, a 32-bit down-counter on the 25 MHz system clock, and a small
//   `time` module on it (the port has none).
// - Polls: a 1 kHz SysTick interrupt asks the core for a poll (queued on MicroPython's scheduler)
//   whenever a byte is waiting or a NimBLE timer is due, so the host runs while a script computes,
//   busy-waits or sits at the REPL. MicroPython's event hook (ubt_qemu_hooks.h) asks too, so wait
//   loops don't wait for the next tick.
// - Ctrl-C: the HCI command wait never runs that hook (Rust frames are below it); it notices a
//   Ctrl-C on the console and leaves a pending KeyboardInterrupt for the VM (see below).
// - Panics in the Rust core: ubt_port_fatal prints the message and resets the board.
// - Soft reset: the stack is stopped and the heap the reset swept is forgotten (see below).
// - The FPU: hard-float code needs it on before the first floating-point instruction; the port's
//   start-up code doesn't, so the link wraps its first call (mp_semihosting_init).

#include <stdint.h>
#include <string.h>

#include "py/gc.h"
#include "py/mphal.h"
#include "py/runtime.h"
#include "py/smallint.h"

#include "ubluetooth.h"

// --- Registers -----------------------------------------------------------------------------------

typedef struct {
    volatile uint32_t data;
    volatile uint32_t state;
    volatile uint32_t ctrl;
    volatile uint32_t intstatus;
    volatile uint32_t bauddiv;
} ubt_cmsdk_uart_t;

#define UBT_UART_STATE_TX_FULL (1u << 0)
#define UBT_UART_STATE_RX_FULL (1u << 1)
#define UBT_UART_CTRL_TX_EN (1u << 0)
#define UBT_UART_CTRL_RX_EN (1u << 1)
#define UBT_HCI_UART ((ubt_cmsdk_uart_t *)0x40005000)

typedef struct {
    volatile uint32_t ctrl;
    volatile uint32_t value;
    volatile uint32_t reload;
    volatile uint32_t intstatus;
} ubt_cmsdk_timer_t;

#define UBT_TIMER ((ubt_cmsdk_timer_t *)0x40000000)
#define UBT_TIMER_CTRL_EN (1u << 0)
#define UBT_SYSCLK_PER_MS (25000u)

#define UBT_CPACR (*(volatile uint32_t *)0xE000ED88)

typedef struct {
    volatile uint32_t ctrl;
    volatile uint32_t load;
    volatile uint32_t val;
    volatile uint32_t calib;
} ubt_systick_t;

#define UBT_SYSTICK ((ubt_systick_t *)0xE000E010)
#define UBT_SYSTICK_ENABLE (1u << 0)
#define UBT_SYSTICK_TICKINT (1u << 1)
#define UBT_SYSTICK_CPU_CLOCK (1u << 2)

// --- FPU -----------------------------------------------------------------------------------------

void __real_mp_semihosting_init(void);
void __wrap_mp_semihosting_init(void);

void __wrap_mp_semihosting_init(void) {
    // Full access to coprocessors 10 and 11 (the FPU).
    UBT_CPACR |= 0xfu << 20;
    __asm volatile ("dsb\n isb" ::: "memory");
    __real_mp_semihosting_init();
}

// --- Time ----------------------------------------------------------------------------------------

static uint32_t ubt_timer_last;
static uint64_t ubt_timer_cycles;

// Timer cycles since the first read.
static uint64_t ubt_cycles(void) {
    // The SysTick interrupt reads the time too.
    uint32_t irq_state = MICROPY_BEGIN_ATOMIC_SECTION();
    if (!(UBT_TIMER->ctrl & UBT_TIMER_CTRL_EN)) {
        UBT_TIMER->reload = 0xffffffffu;
        UBT_TIMER->value = 0xffffffffu;
        UBT_TIMER->ctrl = UBT_TIMER_CTRL_EN;
        ubt_timer_last = 0xffffffffu;
    }
    // A down-counter: the cycles since the last read, modulo 2^32 (it wraps every 171 s, and
    // SysTick reads it every millisecond once the stack has started).
    uint32_t now = UBT_TIMER->value;
    ubt_timer_cycles += (uint32_t)(ubt_timer_last - now);
    ubt_timer_last = now;
    uint64_t cycles = ubt_timer_cycles;
    MICROPY_END_ATOMIC_SECTION(irq_state);
    return cycles;
}

mp_uint_t mp_hal_ticks_ms(void) {
    return (mp_uint_t)(ubt_cycles() / UBT_SYSCLK_PER_MS);
}

mp_uint_t mp_hal_ticks_us(void) {
    return (mp_uint_t)(ubt_cycles() / (UBT_SYSCLK_PER_MS / 1000));
}

// --- The time module -----------------------------------------------------------------------------

// The qemu port leaves MicroPython's time module out; scripts, MicroPython's multitests among
// them, need its ticks and sleeps. Sleeping runs the scheduler, so the host keeps running.
#define UBT_TICKS_PERIOD (MP_SMALL_INT_POSITIVE_MASK + 1)

static mp_obj_t ubt_time_ticks_ms(void) {
    return MP_OBJ_NEW_SMALL_INT(mp_hal_ticks_ms() & (UBT_TICKS_PERIOD - 1));
}
static MP_DEFINE_CONST_FUN_OBJ_0(ubt_time_ticks_ms_obj, ubt_time_ticks_ms);

static mp_obj_t ubt_time_ticks_us(void) {
    return MP_OBJ_NEW_SMALL_INT(mp_hal_ticks_us() & (UBT_TICKS_PERIOD - 1));
}
static MP_DEFINE_CONST_FUN_OBJ_0(ubt_time_ticks_us_obj, ubt_time_ticks_us);

static mp_obj_t ubt_time_ticks_diff(mp_obj_t end_in, mp_obj_t start_in) {
    mp_uint_t diff = (MP_OBJ_SMALL_INT_VALUE(end_in) - MP_OBJ_SMALL_INT_VALUE(start_in)
        + UBT_TICKS_PERIOD / 2) & (UBT_TICKS_PERIOD - 1);
    return MP_OBJ_NEW_SMALL_INT((mp_int_t)diff - UBT_TICKS_PERIOD / 2);
}
static MP_DEFINE_CONST_FUN_OBJ_2(ubt_time_ticks_diff_obj, ubt_time_ticks_diff);

static mp_obj_t ubt_time_ticks_add(mp_obj_t ticks_in, mp_obj_t delta_in) {
    mp_uint_t sum = MP_OBJ_SMALL_INT_VALUE(ticks_in) + mp_obj_get_int(delta_in);
    return MP_OBJ_NEW_SMALL_INT(sum & (UBT_TICKS_PERIOD - 1));
}
static MP_DEFINE_CONST_FUN_OBJ_2(ubt_time_ticks_add_obj, ubt_time_ticks_add);

static void ubt_sleep_ms(mp_int_t ms) {
    mp_uint_t t0 = mp_hal_ticks_ms();
    while ((mp_int_t)(mp_hal_ticks_ms() - t0) < ms) {
        mp_event_wait_ms(1);
    }
}

static mp_obj_t ubt_time_sleep_ms(mp_obj_t ms_in) {
    ubt_sleep_ms(mp_obj_get_int(ms_in));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(ubt_time_sleep_ms_obj, ubt_time_sleep_ms);

static mp_obj_t ubt_time_sleep_us(mp_obj_t us_in) {
    ubt_sleep_ms((mp_obj_get_int(us_in) + 999) / 1000);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(ubt_time_sleep_us_obj, ubt_time_sleep_us);

static mp_obj_t ubt_time_sleep(mp_obj_t seconds_in) {
    ubt_sleep_ms((mp_int_t)(mp_obj_get_float(seconds_in) * 1000));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(ubt_time_sleep_obj, ubt_time_sleep);

static const mp_rom_map_elem_t ubt_time_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_time) },
    { MP_ROM_QSTR(MP_QSTR_ticks_ms), MP_ROM_PTR(&ubt_time_ticks_ms_obj) },
    { MP_ROM_QSTR(MP_QSTR_ticks_us), MP_ROM_PTR(&ubt_time_ticks_us_obj) },
    { MP_ROM_QSTR(MP_QSTR_ticks_diff), MP_ROM_PTR(&ubt_time_ticks_diff_obj) },
    { MP_ROM_QSTR(MP_QSTR_ticks_add), MP_ROM_PTR(&ubt_time_ticks_add_obj) },
    { MP_ROM_QSTR(MP_QSTR_sleep_ms), MP_ROM_PTR(&ubt_time_sleep_ms_obj) },
    { MP_ROM_QSTR(MP_QSTR_sleep_us), MP_ROM_PTR(&ubt_time_sleep_us_obj) },
    { MP_ROM_QSTR(MP_QSTR_sleep), MP_ROM_PTR(&ubt_time_sleep_obj) },
};
static MP_DEFINE_CONST_DICT(ubt_time_globals, ubt_time_globals_table);

const mp_obj_module_t ubt_time_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&ubt_time_globals,
};

MP_REGISTER_MODULE(MP_QSTR_time, ubt_time_module);

// --- Console Ctrl-C ------------------------------------------------------------------------------

// The port reads its console (CMSDK UART0) only when the REPL or sys.stdin asks for a key, so a
// Ctrl-C typed while a script runs is seen by nothing. The HCI wait below looks for it: bytes
// it reads that are not the interrupt character are kept here, in order, and handed to the
// port's reader first (the UART has no way to peek at a byte without taking it).
#define UBT_CONSOLE ((ubt_cmsdk_uart_t *)0x40004000)
#define UBT_CONSOLE_HELD_LEN (64)

static uint8_t ubt_console_held[UBT_CONSOLE_HELD_LEN];
static size_t ubt_console_held_head;
static size_t ubt_console_held_len;

// While a script runs (pyexec sets mp_interrupt_char only then), moves waiting console bytes
// aside and turns the interrupt character into a pending KeyboardInterrupt. Never raises.
static void ubt_console_take_interrupt(void) {
    while (mp_interrupt_char >= 0 && ubt_console_held_len < UBT_CONSOLE_HELD_LEN
           && (UBT_CONSOLE->state & UBT_UART_STATE_RX_FULL)) {
        uint8_t c = (uint8_t)UBT_CONSOLE->data;
        if (c == mp_interrupt_char) {
            mp_sched_keyboard_interrupt();
        } else {
            size_t tail = (ubt_console_held_head + ubt_console_held_len) % UBT_CONSOLE_HELD_LEN;
            ubt_console_held[tail] = c;
            ++ubt_console_held_len;
        }
    }
}

// --- HCI UART ------------------------------------------------------------------------------------

static bool ubt_uart_open;

int32_t ubt_port_hci_uart_open(void) {
    // QEMU ignores the rate; it only wants a divider of at least 16.
    UBT_HCI_UART->bauddiv = 16;
    UBT_HCI_UART->ctrl = UBT_UART_CTRL_TX_EN | UBT_UART_CTRL_RX_EN;
    ubt_uart_open = true;
    if (!(UBT_SYSTICK->ctrl & UBT_SYSTICK_ENABLE)) {
        UBT_SYSTICK->load = UBT_SYSCLK_PER_MS - 1;
        UBT_SYSTICK->val = 0;
        UBT_SYSTICK->ctrl = UBT_SYSTICK_ENABLE | UBT_SYSTICK_TICKINT | UBT_SYSTICK_CPU_CLOCK;
    }
    return 0;
}

void ubt_port_hci_uart_close(void) {
    ubt_uart_open = false;
    UBT_HCI_UART->ctrl = 0;
}

int32_t ubt_port_hci_uart_write(const uint8_t *buf, size_t len) {
    if (!ubt_uart_open) {
        return -1;
    }
    for (size_t i = 0; i < len; ++i) {
        while (UBT_HCI_UART->state & UBT_UART_STATE_TX_FULL) {
        }
        UBT_HCI_UART->data = buf[i];
    }
    return 0;
}

size_t ubt_port_hci_uart_read(uint8_t *buf, size_t len) {
    size_t n = 0;
    while (ubt_uart_open && n < len && (UBT_HCI_UART->state & UBT_UART_STATE_RX_FULL)) {
        buf[n++] = (uint8_t)UBT_HCI_UART->data;
    }
    return n;
}

// The HCI command wait: Rust and NimBLE frames are live below it, so it runs nothing that can
// raise (no event hook, no scheduler). A Ctrl-C typed meanwhile only becomes a pending
// KeyboardInterrupt, which the VM raises at its next branch, after the Rust call has returned.
void ubt_port_hci_uart_wait_rx(uint32_t timeout_ms) {
    mp_uint_t t0 = mp_hal_ticks_ms();
    while (ubt_uart_open && !(UBT_HCI_UART->state & UBT_UART_STATE_RX_FULL)
           && mp_hal_ticks_ms() - t0 < timeout_ms) {
        ubt_console_take_interrupt();
    }
}

// --- Polls ---------------------------------------------------------------------------------------

void ubt_qemu_event_hook(void) {
    ubt_port_event(ubt_uart_open && (UBT_HCI_UART->state & UBT_UART_STATE_RX_FULL));
}

// The port waits for console input by spinning on uart_rx_chr, running nothing else, so a script
// blocked in sys.stdin.readline() (multitest.wait does that) got no events until a key came.
// The link wraps the call: keys the HCI wait set aside come first; while no key is waiting,
// scheduled work runs, as MICROPY_EVENT_POLL_HOOK does in other ports' input loops.
int __real_uart_rx_chr(void);
int __wrap_uart_rx_chr(void);

int __wrap_uart_rx_chr(void) {
    if (ubt_console_held_len > 0) {
        int held = ubt_console_held[ubt_console_held_head];
        ubt_console_held_head = (ubt_console_held_head + 1) % UBT_CONSOLE_HELD_LEN;
        --ubt_console_held_len;
        return held;
    }
    int c = __real_uart_rx_chr();
    if (c < 0) {
        mp_handle_pending(true);
    }
    return c;
}

// The port's vector table names SysTick_Handler, which its own file defines as a fault; the link
// wraps that reference, so this runs instead. It only queues work: the poll itself runs on the
// VM's thread of execution, from the scheduler.
void __wrap_SysTick_Handler(void);

void __wrap_SysTick_Handler(void) {
    ubt_qemu_event_hook();
}

// --- Fatal errors --------------------------------------------------------------------------------

#define UBT_AIRCR (*(volatile uint32_t *)0xE000ED0C)
#define UBT_AIRCR_VECTKEY (0x05FAu << 16)
#define UBT_AIRCR_SYSRESETREQ (1u << 2)

// A panic or abort in the Rust core (src/panic.rs): the message on the console, then a system
// reset, which QEMU's mps2 machine turns into a reboot (the port's own exit() would end QEMU
// instead, and a board can't do that). Writes the UART directly: nothing here may raise or
// wait for an interrupt.
NORETURN void ubt_port_fatal(const char *msg, size_t len);

NORETURN void ubt_port_fatal(const char *msg, size_t len) {
    __asm volatile ("cpsid i" ::: "memory");
    mp_hal_stdout_tx_strn("\r\nFATAL ERROR:\r\n", 16);
    mp_hal_stdout_tx_strn(msg, len);
    mp_hal_stdout_tx_strn("\r\n", 2);
    __asm volatile ("dsb" ::: "memory");
    UBT_AIRCR = UBT_AIRCR_VECTKEY | UBT_AIRCR_SYSRESETREQ;
    __asm volatile ("dsb" ::: "memory");
    for (;;) {
    }
}

#if UBT_PANIC_TEST
// Only in the panic test's firmware (make qemu-panic-test, tests/qemu): makes the core panic.
NORETURN void ubt_test_panic(uint32_t code);

static mp_obj_t ubt_panic_test_panic(mp_obj_t code_in) {
    ubt_test_panic((uint32_t)mp_obj_get_int(code_in));
}
static MP_DEFINE_CONST_FUN_OBJ_1(ubt_panic_test_panic_obj, ubt_panic_test_panic);

static const mp_rom_map_elem_t ubt_panic_test_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__ubt_panic_test) },
    { MP_ROM_QSTR(MP_QSTR_panic), MP_ROM_PTR(&ubt_panic_test_panic_obj) },
};
static MP_DEFINE_CONST_DICT(ubt_panic_test_globals, ubt_panic_test_globals_table);

const mp_obj_module_t ubt_panic_test_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&ubt_panic_test_globals,
};

MP_REGISTER_MODULE(MP_QSTR__ubt_panic_test, ubt_panic_test_module);
#endif
