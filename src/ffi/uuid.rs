//! The `UUID` type's constructors and protocols, for the shim.

use super::status;
use crate::error::Status;
use crate::sys::slice;
use crate::uuid::Uuid;

/// `UUID(int)`.
///
/// # Safety
/// `out` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn ubt_uuid_from_int(value: i64, out: *mut Uuid) -> Status {
    // SAFETY: the caller guarantees `out` is writable.
    status(Uuid::from_int(value).map(|u| unsafe { super::out(out, u) }))
}

/// `UUID(buffer)`.
///
/// # Safety
/// `buf` must be valid for reads of `len` bytes; `out` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn ubt_uuid_from_buffer(
    buf: *const u8,
    len: usize,
    out: *mut Uuid,
) -> Status {
    // SAFETY: the caller guarantees `len` readable bytes at `buf`.
    let data = unsafe { slice(buf, len) };
    // SAFETY: the caller guarantees `out` is writable.
    status(Uuid::from_buffer(data).map(|u| unsafe { super::out(out, u) }))
}

/// `hash(uuid)`.
///
/// # Safety
/// `uuid` must point to a valid `Uuid`.
#[no_mangle]
pub unsafe extern "C" fn ubt_uuid_hash(uuid: *const Uuid) -> usize {
    // SAFETY: the caller guarantees a valid `Uuid`.
    unsafe { (*uuid).mp_hash() as usize }
}

/// Three-way comparison for `<`, `<=`, `>`, `>=`: negative, zero or positive.
///
/// # Safety
/// Both pointers must point to valid `Uuid`s.
#[no_mangle]
pub unsafe extern "C" fn ubt_uuid_cmp(a: *const Uuid, b: *const Uuid) -> i32 {
    // SAFETY: the caller guarantees valid `Uuid`s.
    let (a, b) = unsafe { (&*a, &*b) };
    a.mp_cmp(b) as i32
}

/// Longest `repr()` of a UUID: `UUID('` + 36 + `')`.
pub const UBT_UUID_REPR_MAX: usize = 48;

/// Writes `repr(uuid)` into `out` (at least [`UBT_UUID_REPR_MAX`] bytes), returns its length.
///
/// # Safety
/// `uuid` must point to a valid `Uuid` and `out` to `UBT_UUID_REPR_MAX` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ubt_uuid_repr(uuid: *const Uuid, out: *mut u8) -> usize {
    // SAFETY: the caller guarantees a buffer of UBT_UUID_REPR_MAX bytes.
    let out = unsafe { &mut *out.cast::<[u8; UBT_UUID_REPR_MAX]>() };
    // SAFETY: the caller guarantees a valid `Uuid`.
    unsafe { (*uuid).format_repr(out) }
}
