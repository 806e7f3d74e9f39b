//! MicroPython's `bluetooth` module (`ubluetooth`) on the Apache NimBLE host.
//!
//! The C shim in `micropython_glue/` parses Python arguments and raises exceptions; everything
//! else lives here: the BLE stack's lifecycle and operations ([`ble`]), the events handed to
//! the Python handler ([`events`]), the UUID type ([`uuid`]), NimBLE's porting layer ([`npl`])
//! and its HCI transport over H4 ([`hci`]). [`ffi`] is the only surface the shim calls.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

pub mod ble;
pub mod error;
pub mod events;
pub mod ffi;
pub mod global;
pub mod hci;
pub mod npl;
pub mod port;
pub mod uuid;

#[cfg(test)]
mod test_support;

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
/// which holds no Python objects (design rule 3).
#[cfg(feature = "unix")]
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
