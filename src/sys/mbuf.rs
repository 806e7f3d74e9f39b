//! Reading NimBLE's mbuf chains.

use alloc::vec::Vec;
use core::ffi::c_int;

use nimble_sys as ns;

/// Sum of the data in an mbuf chain.
///
/// # Safety
/// `om` must be null or a valid chain.
pub unsafe fn chain_len(om: *const ns::os_mbuf) -> usize {
    let mut n = 0;
    let mut m = om;
    while !m.is_null() {
        // SAFETY: `m` is a link of the valid chain.
        let link = unsafe { &*m };
        n += usize::from(link.om_len);
        m = link.om_next.sle_next;
    }
    n
}

/// Runs `f` over the bytes of an mbuf chain, joined into one slice: on the stack when they fit
/// in `STACK` bytes, else on the heap. `None` if the heap had no room (the caller drops what
/// it was for rather than abort the firmware) or the chain could not be read.
///
/// # Safety
/// `om` must be null or a valid mbuf chain that stays alive for the call.
pub unsafe fn with_data<const STACK: usize, R>(
    om: *const ns::os_mbuf,
    f: impl FnOnce(&[u8]) -> R,
) -> Option<R> {
    // SAFETY: the caller guarantees a valid chain or null.
    let len = unsafe { chain_len(om) };
    let copy = |dst: &mut [u8]| -> bool {
        if dst.is_empty() {
            return true;
        }
        // SAFETY: `om` is a valid chain of `len == dst.len()` bytes; `dst` is writable.
        let rc =
            unsafe { ns::os_mbuf_copydata(om, 0, dst.len() as c_int, dst.as_mut_ptr().cast()) };
        rc == 0
    };
    if len <= STACK {
        let mut buf = [0u8; STACK];
        let data = &mut buf[..len];
        copy(data).then(|| f(data))
    } else {
        let mut v = Vec::new();
        v.try_reserve_exact(len).ok()?;
        v.resize(len, 0);
        copy(&mut v).then(|| f(&v))
    }
}
