//! MicroPython's `bluetooth` module (`ubluetooth`) on the Apache NimBLE host.
//!
//! The C shim in `micropython_glue/` parses Python arguments and raises exceptions; everything
//! else lives here: the BLE stack's lifecycle and GAP ([`ble`]), the GATT server ([`gatts`])
//! and client ([`gattc`]), L2CAP channels ([`l2cap`]), the events handed to the Python handler
//! ([`events`]), the UUID type ([`uuid`]), NimBLE's porting layer ([`npl`]) and its HCI
//! transport over H4 ([`hci`]). [`ffi`] and the `ubt_*` functions of the GATT and L2CAP
//! modules are the surface the shim calls.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod ble;
pub mod error;
pub mod events;
pub mod ffi;
pub mod gattc;
pub mod gatts;
pub mod global;
pub mod hci;
pub mod l2cap;
pub mod mbuf_pool;
pub mod npl;
pub mod port;
pub mod security;
pub mod uuid;

#[cfg(any(test, feature = "sim"))]
pub mod testing;

/// Stops the program: used where continuing would corrupt NimBLE's state.
#[cold]
pub fn abort() -> ! {
    #[cfg(feature = "std")]
    std::process::abort();
    #[cfg(not(feature = "std"))]
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(all(not(feature = "std"), not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    abort()
}

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
