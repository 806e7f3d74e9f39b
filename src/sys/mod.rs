//! The NimBLE-facing helpers: the only code that writes NimBLE's global host configuration
//! ([`cfg`]) or its private state ([`private`]), and the conversions between our values and
//! NimBLE's ([`uuid`], [`mbuf`], [`addr`]).

pub mod addr;
pub mod cfg;
pub mod mbuf;
pub mod private;
pub mod uuid;

/// A slice over an array C handed us (the shim's buffer-protocol pointers and arrays, NimBLE's
/// report data): empty for a null pointer or a zero length.
///
/// # Safety
/// `ptr` must be valid for reads of `len` items for `'a`, or `len` must be 0, or `ptr` null.
pub unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if len == 0 || ptr.is_null() {
        &[]
    } else {
        // SAFETY: the caller guarantees `len` readable items at `ptr`.
        unsafe { core::slice::from_raw_parts(ptr, len) }
    }
}

/// A writable slice over an array C handed us: empty for a null pointer or a zero length.
///
/// # Safety
/// `ptr` must be valid for writes of `len` items for `'a` and not aliased, or `len` must be
/// 0, or `ptr` null.
pub unsafe fn slice_mut<'a, T>(ptr: *mut T, len: usize) -> &'a mut [T] {
    if len == 0 || ptr.is_null() {
        &mut []
    } else {
        // SAFETY: the caller guarantees `len` writable, unaliased items at `ptr`.
        unsafe { core::slice::from_raw_parts_mut(ptr, len) }
    }
}
