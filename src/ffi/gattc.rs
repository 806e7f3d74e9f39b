//! The GATT client's methods (`gattc_*`), for the shim.

use super::{status, thread};
use crate::error::Status;
use crate::handle::{AttrHandle, ConnHandle};
use crate::host::gattc;
use crate::sys::slice;
use crate::uuid::Uuid;

/// `gattc_discover_services(conn_handle, uuid)`; `uuid` null for `None`.
///
/// # Safety
/// `uuid` must be null or point to a valid `Uuid` for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn ubt_gattc_discover_services(
    conn_handle: u16,
    uuid: *const Uuid,
) -> Status {
    // SAFETY: the caller guarantees a valid `Uuid` or null.
    let uuid = unsafe { uuid.as_ref() };
    status(gattc::discover_services(
        thread(),
        ConnHandle(conn_handle),
        uuid,
    ))
}

/// `gattc_discover_characteristics(conn_handle, start_handle, end_handle, uuid)`; `uuid` null
/// for `None`.
///
/// # Safety
/// `uuid` must be null or point to a valid `Uuid` for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn ubt_gattc_discover_characteristics(
    conn_handle: u16,
    start_handle: u16,
    end_handle: u16,
    uuid: *const Uuid,
) -> Status {
    // SAFETY: the caller guarantees a valid `Uuid` or null.
    let uuid = unsafe { uuid.as_ref() };
    status(gattc::discover_characteristics(
        thread(),
        ConnHandle(conn_handle),
        AttrHandle(start_handle),
        AttrHandle(end_handle),
        uuid,
    ))
}

/// `gattc_discover_descriptors(conn_handle, start_handle, end_handle)`.
#[no_mangle]
pub extern "C" fn ubt_gattc_discover_descriptors(
    conn_handle: u16,
    start_handle: u16,
    end_handle: u16,
) -> Status {
    status(gattc::discover_descriptors(
        thread(),
        ConnHandle(conn_handle),
        AttrHandle(start_handle),
        AttrHandle(end_handle),
    ))
}

/// `gattc_read(conn_handle, value_handle)`.
#[no_mangle]
pub extern "C" fn ubt_gattc_read(conn_handle: u16, value_handle: u16) -> Status {
    status(gattc::read(
        thread(),
        ConnHandle(conn_handle),
        AttrHandle(value_handle),
    ))
}

/// `gattc_write(conn_handle, value_handle, data, mode)`; `mode` as the C module's unsigned int.
///
/// # Safety
/// `data` must be valid for reads of `len` bytes (or `len` must be 0).
#[no_mangle]
pub unsafe extern "C" fn ubt_gattc_write(
    conn_handle: u16,
    value_handle: u16,
    data: *const u8,
    len: usize,
    mode: u32,
) -> Status {
    // SAFETY: the caller guarantees `len` readable bytes.
    let data = unsafe { slice(data, len) };
    status(gattc::write(
        thread(),
        ConnHandle(conn_handle),
        AttrHandle(value_handle),
        data,
        mode,
    ))
}

/// `gattc_exchange_mtu(conn_handle)`.
#[no_mangle]
pub extern "C" fn ubt_gattc_exchange_mtu(conn_handle: u16) -> Status {
    status(gattc::exchange_mtu(thread(), ConnHandle(conn_handle)))
}
