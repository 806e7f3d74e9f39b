//! What the core needs from the firmware it is linked into: time, scheduling a poll, and the
//! HCI UART.
//!
//! Time and scheduling come from the C shim (MicroPython's `ticks_ms` and scheduler). The UART
//! is the port's: on Unix a tty with a watcher thread (`ports/unix/hci_uart.rs`); on bare metal
//! the port's C driver, reached through `ubt_port_hci_uart_*`.

extern "C" {
    /// MicroPython's `ticks_ms()`; safe to call from any thread on Unix.
    fn ubt_glue_ticks_ms() -> u32;
    /// Queues one run of the shim's poll entry on MicroPython's scheduler. Thread-safe;
    /// returns false when the scheduler queue is full.
    fn ubt_glue_schedule_poll() -> bool;
}

/// Milliseconds from MicroPython's tick counter (wraps).
pub fn ticks_ms() -> u32 {
    // SAFETY: a plain C function with no arguments and no Python side effects.
    unsafe { ubt_glue_ticks_ms() }
}

/// Asks MicroPython to run a poll soon; duplicate requests are merged.
pub fn schedule_poll() -> bool {
    // SAFETY: the shim's function is thread-safe and cannot raise.
    unsafe { ubt_glue_schedule_poll() }
}

#[cfg(not(feature = "std"))]
mod panic;

/// Stops the program: used where continuing would corrupt NimBLE's state. On bare metal the
/// port prints why and resets the board.
#[cold]
pub fn abort() -> ! {
    #[cfg(feature = "std")]
    std::process::abort();
    #[cfg(not(feature = "std"))]
    panic::fatal(b"ubluetooth: abort")
}

/// How a port's UART asks the runtime for a poll, from any thread. Handed over at
/// [`uart_open`], so this layer needs nothing from the layers above it.
#[derive(Clone, Copy)]
pub struct Wakeup {
    /// Asks for a poll when `rx_waiting` or one of NimBLE's timers is due; true when this call
    /// queued a new one.
    pub request: fn(rx_waiting: bool) -> bool,
    /// Whether a queued poll has not started running yet.
    pub pending: fn() -> bool,
}

/// Why the HCI UART did not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartError {
    /// The device or endpoint isn't there (or refused us). Start-up carries on and times out,
    /// as the C module's does for a missing tty.
    Unavailable,
    /// The port's settings are invalid; the port has printed which one. Start-up fails at once.
    BadSetting,
}

// Under test and with `sim` the UART is the simulated controller (crate::testing), reached
// like a bare-metal port's driver.
#[cfg(all(feature = "unix", not(any(test, feature = "sim"))))]
#[path = "../../ports/unix/hci_uart.rs"]
mod imp;

/// Under test the Unix UART is still compiled, for its own unit tests (settings parsing), but
/// not used; cbindgen reads it once, as `imp`.
///
/// cbindgen:ignore
#[cfg(all(feature = "unix", test))]
#[path = "../../ports/unix/hci_uart.rs"]
#[allow(dead_code)]
mod unix_uart;

#[cfg(any(not(feature = "unix"), test, feature = "sim"))]
mod imp {
    extern "C" {
        fn ubt_port_hci_uart_open() -> i32;
        fn ubt_port_hci_uart_close();
        fn ubt_port_hci_uart_write(buf: *const u8, len: usize) -> i32;
        fn ubt_port_hci_uart_read(buf: *mut u8, len: usize) -> usize;
        fn ubt_port_hci_uart_wait_rx(timeout_ms: u32);
    }

    /// Opens the HCI UART. Bare-metal ports ask for polls through `ubt_port_event` instead of
    /// `_wakeup`; their UART settings are fixed at build time, so any failure is `Unavailable`.
    pub fn uart_open(_wakeup: super::Wakeup) -> Result<(), super::UartError> {
        // SAFETY: the port's driver takes no pointers here.
        match unsafe { ubt_port_hci_uart_open() } {
            0 => Ok(()),
            _ => Err(super::UartError::Unavailable),
        }
    }

    /// Closes the HCI UART.
    pub fn uart_close() {
        // SAFETY: as above.
        unsafe { ubt_port_hci_uart_close() }
    }

    /// Writes all of `data`; false on a write error.
    pub fn uart_write(data: &[u8]) -> bool {
        // SAFETY: `data` is a valid slice for the duration of the call.
        unsafe { ubt_port_hci_uart_write(data.as_ptr(), data.len()) == 0 }
    }

    /// Moves received bytes into `buf` without waiting; returns how many.
    pub fn uart_read(buf: &mut [u8]) -> usize {
        // SAFETY: `buf` is a valid writable slice; the driver writes at most `len` bytes.
        let n = unsafe { ubt_port_hci_uart_read(buf.as_mut_ptr(), buf.len()) };
        n.min(buf.len())
    }

    /// Waits up to `timeout_ms` for received bytes (the HCI command wait).
    pub fn uart_wait_rx(timeout_ms: u32) {
        // SAFETY: no pointers.
        unsafe { ubt_port_hci_uart_wait_rx(timeout_ms) }
    }
}

pub use imp::{uart_close, uart_open, uart_read, uart_wait_rx, uart_write};
