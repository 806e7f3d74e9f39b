//! A cell for state owned by the one thread that runs NimBLE (design rule 5).
//!
//! `RefCell` semantics without the panic: a re-entrant borrow (a Python handler calling back
//! into `BLE` while Rust still holds the state) is reported as `None`, never a panic across
//! the FFI. Callers keep borrows short and never hold one across a call into Python.

use core::cell::RefCell;

/// State reachable from a `static`, touched only by the NimBLE/MicroPython thread.
pub struct Global<T>(RefCell<T>);

// SAFETY: every `Global` is only accessed from the single thread that runs the MicroPython VM
// and NimBLE (design rule 5); the UART reader thread never touches one.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Global(RefCell::new(value))
    }

    /// Runs `f` with exclusive access, or returns `None` if the state is already borrowed.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut guard = self.0.try_borrow_mut().ok()?;
        Some(f(&mut guard))
    }
}
