//! The GATT server's methods (`gatts_*`), for the shim.

use core::ptr;

use super::{out, status, thread, UbtOptBuf};
use crate::error::Status;
use crate::handle::{AttrHandle, ConnHandle};
use crate::host::gatts::{self, GattsEntry};
use crate::sys::{slice, slice_mut};

/// `gatts_register_services`, step 1 (before parsing): `ENODEV` if inactive, `EBUSY` while
/// advertising, scanning, connecting or connected. Empties the server.
#[no_mangle]
pub extern "C" fn ubt_gatts_register_begin() -> Status {
    status(gatts::register_begin(thread()))
}

/// `gatts_register_services`, step 2: registers `entries` (services each followed by their
/// characteristics, each followed by its descriptors) and writes one handle per
/// characteristic/descriptor entry into `handles`, in order. At most
/// [`gatts::UBT_GATTS_MAX_SERVICES`] services, else `E2BIG`.
///
/// # Safety
/// `entries` must be valid for reads of `n_entries` items and `handles` for writes of
/// `n_handles` items (either may be null when its count is 0).
#[no_mangle]
pub unsafe extern "C" fn ubt_gatts_register(
    entries: *const GattsEntry,
    n_entries: usize,
    handles: *mut u16,
    n_handles: usize,
) -> Status {
    // SAFETY: the caller guarantees `n_entries` readable entries.
    let entries = unsafe { slice(entries, n_entries) };
    // SAFETY: the caller guarantees `n_handles` writable handles; `AttrHandle` is a
    // transparent `u16`.
    let handles = unsafe { slice_mut(handles.cast::<AttrHandle>(), n_handles) };
    status(gatts::register(thread(), entries, handles))
}

/// `gatts_read(handle)`: never fails. Writes a pointer to the value's bytes and their length
/// (0 for an unknown handle or an inactive stack); the bytes stay valid until the next call
/// of any `ubt_gatts_*` function.
///
/// # Safety
/// `data` and `len` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn ubt_gatts_read(value_handle: u16, data: *mut *const u8, len: *mut usize) {
    let (p, n) = gatts::read(thread(), AttrHandle(value_handle));
    // SAFETY: the caller guarantees both out-parameters are writable.
    unsafe {
        out(data, if n == 0 { ptr::null() } else { p });
        out(len, n);
    }
}

/// `gatts_write(handle, data, send_update)`.
///
/// # Safety
/// `data` must be valid for reads of `len` bytes (or null with `len` 0).
#[no_mangle]
pub unsafe extern "C" fn ubt_gatts_write(
    value_handle: u16,
    data: *const u8,
    len: usize,
    send_update: bool,
) -> Status {
    // SAFETY: the caller guarantees `len` readable bytes.
    let data = unsafe { slice(data, len) };
    status(gatts::write(
        thread(),
        AttrHandle(value_handle),
        data,
        send_update,
    ))
}

/// `gatts_set_buffer(handle, len, append)`; `len` is the Python int cast to `size_t`.
#[no_mangle]
pub extern "C" fn ubt_gatts_set_buffer(value_handle: u16, len: usize, append: bool) -> Status {
    status(gatts::set_buffer(
        thread(),
        AttrHandle(value_handle),
        len,
        append,
    ))
}

/// `gatts_notify(conn, handle, data=None)` (`indicate` false) or `gatts_indicate(...)`.
///
/// # Safety
/// A present `data` must be valid for reads of its length.
#[no_mangle]
pub unsafe extern "C" fn ubt_gatts_notify(
    conn_handle: u16,
    value_handle: u16,
    data: UbtOptBuf,
    indicate: bool,
) -> Status {
    // SAFETY: the caller guarantees a present buffer is readable.
    let data = unsafe { data.get() };
    status(gatts::notify(
        thread(),
        ConnHandle(conn_handle),
        AttrHandle(value_handle),
        data,
        indicate,
    ))
}
