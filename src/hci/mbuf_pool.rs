//! NimBLE mbuf pools over memory we own: each L2CAP channel's send and receive pools, and the
//! transport's pool for ACL data from the controller.
//!
//! The free list is built here rather than by `os_mempool_init`, which would also link the pool
//! into NimBLE's global list of pools for good: a dangling entry once a channel's pool is
//! dropped, and a loop in the list once a static pool is set up again at the next start.

use core::{mem, ptr};

use nimble_sys as ns;

/// Storage alignment of every pool; our NPL's `OS_ALIGNMENT` is at most this.
pub const POOL_ALIGN: usize = 8;

/// NimBLE's pool records for one block pool. `omp` points at `mp`, so a pool must not move
/// once [`MbufPool::init`] has run.
pub struct MbufPool {
    mp: ns::os_mempool,
    omp: ns::os_mbuf_pool,
}

impl Default for MbufPool {
    fn default() -> Self {
        Self::new()
    }
}

impl MbufPool {
    /// An empty pool: `get_pkthdr` returns null until [`MbufPool::init`].
    pub const fn new() -> Self {
        // SAFETY: both are plain C structs of integers and pointers, for which all-zero is
        // a valid value (no blocks, null pointers); NimBLE never sees them before `init`.
        unsafe { mem::zeroed() }
    }

    /// Makes all `blocks` blocks of `block_size` bytes at `mem` free.
    ///
    /// # Safety
    /// `mem` is valid for `blocks * block_size` bytes, aligned to [`POOL_ALIGN`], and
    /// `block_size` is a multiple of [`POOL_ALIGN`] larger than an `os_mbuf`. Neither `mem`
    /// nor `self` moves or is reused while an mbuf from an earlier `init` is still held.
    pub unsafe fn init(&mut self, mem: *mut u8, blocks: u16, block_size: usize) {
        for i in 0..usize::from(blocks) {
            let next = if i + 1 < usize::from(blocks) {
                // SAFETY: block i + 1 lies inside `mem` (the caller's size guarantee).
                unsafe { mem.add((i + 1) * block_size) }
            } else {
                ptr::null_mut()
            };
            // SAFETY: block i lies inside `mem` and is aligned for a pointer store (aligned
            // base, block size a multiple of the alignment).
            unsafe { mem.add(i * block_size).cast::<*mut u8>().write(next) };
        }
        self.mp.mp_block_size = block_size as u32;
        self.mp.mp_num_blocks = blocks;
        self.mp.mp_num_free = blocks;
        self.mp.mp_min_free = blocks;
        self.mp.mp_flags = 0;
        self.mp.mp_membuf_addr = mem as usize;
        self.mp.__bindgen_anon_1.slh_first = if blocks == 0 {
            ptr::null_mut()
        } else {
            mem.cast()
        };
        self.omp.omp_databuf_len = (block_size - mem::size_of::<ns::os_mbuf>()) as u16;
        self.omp.omp_pool = &mut self.mp;
    }

    /// A fresh packet-header mbuf with `user_hdr_len` bytes of user header, or null when the
    /// pool is empty.
    pub fn get_pkthdr(&mut self, user_hdr_len: u8) -> *mut ns::os_mbuf {
        if self.omp.omp_pool.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: `omp` is initialised, and the caller of `init` keeps it in place while any
        // mbuf from it lives.
        unsafe { ns::os_mbuf_get_pkthdr(&mut self.omp, user_hdr_len) }
    }

    /// Free blocks.
    pub fn num_free(&self) -> u16 {
        self.mp.mp_num_free
    }
}
