//! The only surface the C shim calls: plain C types in, a [`Status`] out.
//!
//! Every function here returns normally; none raises, longjmps or panics across the boundary
//! (design rule 1). The shim turns a non-zero [`Status`] into a Python exception after the
//! call has returned; this layer is the one place an [`Error`] becomes that status. Pointers
//! the shim passes are valid for the duration of the call only. The shim calls in only from
//! the MicroPython thread, so each entry point holds the [`NimbleThread`] token.

use crate::error::{Error, Status, OK};
use crate::host;
use crate::rt::sched;
use crate::thread::NimbleThread;

mod ble;
#[cfg(feature = "gatt-client")]
mod gattc;
mod gatts;
#[cfg(feature = "l2cap")]
mod l2cap;
mod uuid;

pub use self::ble::*;
#[cfg(feature = "gatt-client")]
pub use self::gattc::*;
pub use self::gatts::*;
#[cfg(feature = "l2cap")]
pub use self::l2cap::*;
pub use self::uuid::*;

/// The token for a call from the shim.
fn thread() -> NimbleThread {
    // SAFETY: the shim calls `ubt_*` functions only from the thread that runs the MicroPython
    // VM, which is the thread that runs NimBLE (design rule 5).
    unsafe { NimbleThread::new_unchecked() }
}

/// The status the shim raises from: `OK`, or the error's.
fn status<T, E: Into<Error>>(r: Result<T, E>) -> Status {
    match r {
        Ok(_) => OK,
        Err(e) => e.into().into(),
    }
}

/// Writes an out-parameter.
///
/// # Safety
/// `ptr` must be valid for writes.
unsafe fn out<T>(ptr: *mut T, value: T) {
    // SAFETY: the caller guarantees `ptr` is writable.
    unsafe { ptr.write(value) }
}

/// An optional buffer argument: `present` false means Python `None`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UbtOptBuf {
    /// The buffer's bytes (may be null when `len` is 0).
    pub ptr: *const u8,
    /// Its length.
    pub len: usize,
    /// False for `None`.
    pub present: bool,
}

impl UbtOptBuf {
    /// # Safety
    /// `ptr` must be valid for reads of `len` bytes when `present`.
    unsafe fn get<'a>(self) -> Option<&'a [u8]> {
        // SAFETY: guaranteed by the caller.
        self.present
            .then(|| unsafe { crate::sys::slice(self.ptr, self.len) })
    }
}

// --- Scheduler entry ----------------------------------------------------------------------------

/// Runs from MicroPython's scheduler: fires due timers and feeds received bytes to NimBLE.
#[no_mangle]
pub extern "C" fn ubt_poll() {
    sched::poll_started();
    host::stack::poll(thread());
}

/// For ports without a UART thread (bare metal), called from MicroPython's event hook: asks
/// for a poll when the HCI UART has bytes waiting or one of NimBLE's timers is due.
#[no_mangle]
pub extern "C" fn ubt_port_event(rx_waiting: bool) {
    sched::wake(rx_waiting);
}

/// For bare-metal ports, after a soft reset has wiped MicroPython's GC heap (where their heap
/// blocks live) and the stack was stopped: forgets every heap block without freeing it, and
/// any poll the reset scheduler will never run.
#[no_mangle]
pub extern "C" fn ubt_port_heap_lost() {
    let t = thread();
    host::gatts::forget_heap(t);
    #[cfg(feature = "l2cap")]
    host::l2cap::forget_heap(t);
    sched::poll_started();
}
