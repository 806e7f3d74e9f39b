//! MicroPython's `bluetooth` module (`ubluetooth`) on the Apache NimBLE host.
//!
//! The C shim in `micropython_glue/` parses Python arguments and raises exceptions; everything
//! else lives here, in layers that only call downwards (docs/how-it-works.md draws them, and
//! `tools/check_layers.py` checks the order below on every `make test`):
//!
//! 1. [`ffi`]: the `extern "C"` functions the shim calls and their C value types; the only place
//!    a [`error::Error`] becomes the status integer the shim raises from.
//! 2. [`host`]: the stack's life cycle and poll, GAP, the GATT server and client, L2CAP channels,
//!    pairing and the key store.
//! 3. [`event`]: the events scripts see, each encoded to its `data` tuple in one place.
//! 4. [`sys`]: the only code that touches NimBLE's global configuration and private state, and
//!    the conversions between our values and NimBLE's (UUIDs, mbufs, addresses).
//! 5. [`rt`]: the runtime NimBLE runs on: poll scheduling and the porting layer (NPL).
//! 6. [`hci`]: H4 framing and the HCI transport.
//! 7. [`port`]: what the firmware provides: time, the scheduler and the HCI UART.
//! 8. Values every layer may use: [`error`], [`thread`] (the NimBLE-thread token and the cell
//!    it guards), [`handle`] (connection and attribute handles, CIDs, PSMs) and [`uuid`].
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod ffi;
pub mod host;

pub mod event;

pub mod sys;

pub mod rt;

pub mod hci;

pub mod port;

pub mod error;
pub mod handle;
pub mod thread;
pub mod uuid;

#[cfg(any(test, feature = "sim"))]
pub mod testing;

/// NimBLE's heap (GATT server tables) on Unix: the C allocator, which the GC never sweeps and
/// which holds no Python objects (design rule 3). Simulated firmware ([`testing`]) has its own.
#[cfg(all(feature = "unix", not(any(test, feature = "sim"))))]
mod nimble_heap {
    use core::ffi::c_void;

    #[no_mangle]
    extern "C" fn ubt_nimble_malloc(size: usize) -> *mut c_void {
        // SAFETY: plain C allocation; NimBLE checks for null.
        unsafe { libc::malloc(size) }
    }

    #[no_mangle]
    unsafe extern "C" fn ubt_nimble_free(ptr: *mut c_void) {
        // SAFETY: NimBLE only frees what ubt_nimble_malloc/realloc returned (or null).
        unsafe { libc::free(ptr) }
    }

    #[no_mangle]
    unsafe extern "C" fn ubt_nimble_realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
        // SAFETY: as for free: `ptr` is null or ours.
        unsafe { libc::realloc(ptr, size) }
    }
}

/// Heap memory on bare metal comes from the firmware: MicroPython's GC heap, with every block
/// reachable from a root pointer the port keeps (design rule 3).
#[cfg(not(feature = "std"))]
mod port_heap {
    use core::alloc::{GlobalAlloc, Layout};

    extern "C" {
        /// Returns `size` bytes aligned to `align`, or null.
        fn ubt_port_alloc(size: usize, align: usize) -> *mut u8;
        /// Frees a block from `ubt_port_alloc`.
        fn ubt_port_free(ptr: *mut u8);
    }

    struct PortHeap;

    // SAFETY: delegates to the port's allocator, which honours size and alignment and returns
    // null on exhaustion, as GlobalAlloc requires.
    unsafe impl GlobalAlloc for PortHeap {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: plain call into the port's allocator.
            unsafe { ubt_port_alloc(layout.size(), layout.align()) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
            // SAFETY: `ptr` came from `alloc` above, per GlobalAlloc's contract.
            unsafe { ubt_port_free(ptr) }
        }
    }

    #[global_allocator]
    static HEAP: PortHeap = PortHeap;
}
