//! The rule that one thread runs NimBLE (design rule 5), checked by the compiler.
//!
//! [`NimbleThread`] is a zero-sized token that says "this code runs on the thread that runs the
//! MicroPython VM and NimBLE". It can't be sent to another thread, and it is only made where
//! that thread enters the crate: the `extern "C"` functions the shim calls, and the callbacks
//! NimBLE makes from inside them or from a poll. State reachable from a `static` lives in a
//! [`Global`], which only hands out access to a holder of the token.

use core::cell::RefCell;
use core::marker::PhantomData;

/// Proof that the caller runs on the NimBLE thread. `Copy`, zero-sized, neither `Send` nor
/// `Sync`, so it can't reach the Unix UART watcher thread.
#[derive(Clone, Copy, Debug)]
pub struct NimbleThread {
    _not_send: PhantomData<*const ()>,
}

impl NimbleThread {
    /// Makes the token.
    ///
    /// # Safety
    /// The caller runs on the thread that runs the MicroPython VM and NimBLE: it is an entry
    /// point the C shim calls, or a callback NimBLE or MicroPython's scheduler makes on that
    /// thread.
    #[inline(always)]
    pub unsafe fn new_unchecked() -> Self {
        NimbleThread {
            _not_send: PhantomData,
        }
    }
}

/// State reachable from a `static`, only touched on the NimBLE thread.
///
/// `RefCell` semantics without the panic: a re-entrant borrow (a Python handler calling back
/// into `BLE` while Rust still holds the state) is reported as `None`, never a panic across
/// the FFI. Callers keep borrows short and never hold one across a call into Python.
pub struct Global<T>(RefCell<T>);

// SAFETY: the contents are only reachable through `with`, which takes a `NimbleThread`, and
// that token exists only on the one thread that runs NimBLE, so no two threads ever touch it.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Global(RefCell::new(value))
    }

    /// Runs `f` with exclusive access, or returns `None` if the state is already borrowed.
    pub fn with<R>(&self, _t: NimbleThread, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut guard = self.0.try_borrow_mut().ok()?;
        Some(f(&mut guard))
    }
}
