//! L2CAP channel methods (`l2cap_*`), for the shim.

use super::{out, status, thread};
use crate::error::{Error, Status};
use crate::handle::{Cid, ConnHandle, Psm};
use crate::host::l2cap;
use crate::sys::{slice, slice_mut};

/// `l2cap_listen(psm, mtu)`; `mtu` already clamped by [`ubt_l2cap_clamp_mtu`].
#[no_mangle]
pub extern "C" fn ubt_l2cap_listen(psm: u16, mtu: u16) -> Status {
    status(l2cap::listen(thread(), Psm(psm), mtu))
}

/// `l2cap_connect(conn_handle, psm, mtu)`.
#[no_mangle]
pub extern "C" fn ubt_l2cap_connect(conn_handle: u16, psm: u16, mtu: u16) -> Status {
    status(l2cap::connect(
        thread(),
        ConnHandle(conn_handle),
        Psm(psm),
        mtu,
    ))
}

/// `l2cap_disconnect(conn_handle, cid)`.
#[no_mangle]
pub extern "C" fn ubt_l2cap_disconnect(conn_handle: u16, cid: u16) -> Status {
    status(l2cap::disconnect(
        thread(),
        ConnHandle(conn_handle),
        Cid(cid),
    ))
}

/// The script's `mtu` argument clamped to 32..=65535, as the C module does.
#[no_mangle]
pub extern "C" fn ubt_l2cap_clamp_mtu(mtu: i64) -> u16 {
    l2cap::clamp_mtu(mtu)
}

/// `l2cap_send(conn_handle, cid, data)`; `*more` is the method's bool result.
///
/// # Safety
/// `data` must be valid for reads of `len` bytes (or `len` 0); `more` must be writable.
#[no_mangle]
pub unsafe extern "C" fn ubt_l2cap_send(
    conn_handle: u16,
    cid: u16,
    data: *const u8,
    len: usize,
    more: *mut bool,
) -> Status {
    // SAFETY: the caller guarantees `len` readable bytes.
    let data = unsafe { slice(data, len) };
    let r = l2cap::send(thread(), ConnHandle(conn_handle), Cid(cid), data);
    status(r.map(|m| {
        if !more.is_null() {
            // SAFETY: the caller guarantees `more` is writable.
            unsafe { out(more, m) };
        }
    }))
}

/// `l2cap_recvinto(conn_handle, cid, buf)`; `buf` null for `None`. `*len` is the buffer's
/// size on entry and the result on return.
///
/// # Safety
/// `buf` must be null or valid for writes of `*len` bytes; `len` must be valid.
#[no_mangle]
pub unsafe extern "C" fn ubt_l2cap_recvinto(
    conn_handle: u16,
    cid: u16,
    buf: *mut u8,
    len: *mut usize,
) -> Status {
    if len.is_null() {
        return Error::InvalidArg.into();
    }
    // SAFETY: `len` is valid (the caller's contract) and not null.
    let cap = unsafe { *len };
    // SAFETY: the caller guarantees `cap` writable bytes at a non-null `buf`.
    let buf = (!buf.is_null()).then(|| unsafe { slice_mut(buf, cap) });
    let r = l2cap::recvinto(thread(), ConnHandle(conn_handle), Cid(cid), buf);
    // SAFETY: `len` is valid for writes.
    status(r.map(|n| unsafe { out(len, n) }))
}
