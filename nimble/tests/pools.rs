//! NimBLE's memory pools and mbufs on a 64-bit host, with the `OS_ALIGNMENT` our NPL header
//! picks (8 when pointers are 8 bytes).
//!
//! Run as `cargo test -p nimble-sys --features sanitize --test pools`: with the `sanitize`
//! feature the NimBLE C is built with `-fsanitize=undefined,alignment -fno-sanitize-recover=all`,
//! so any misaligned store or load inside `os_mempool.c` / `os_mbuf.c` ends the test process
//! with a UBSan report instead of passing silently. The Rust side checks what UBSan cannot see:
//! block placement, bounds, counts and data integrity.
//!
//! The C objects these tests pull in call a few porting-layer functions that the ubluetooth
//! crate provides in the product; this file defines test stand-ins for exactly those.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{c_char, c_int, c_void};
use std::mem::{align_of, size_of};
use std::ptr::{self, addr_of_mut};
use std::sync::{Mutex, MutexGuard, PoisonError};

use nimble_sys::*;

extern "C" {
    /// `porting/nimble/src/os_msys_init.c`: builds and registers the MSYS pools syscfg asks
    /// for. No NimBLE header declares it (nimble_port.c declares it locally), so bindgen
    /// does not bind it.
    fn os_msys_init();
}

/// The alignment every pool block must have: blocks are reused as `struct os_memblock`
/// (a pointer), `struct os_mbuf` (pointers) and `struct os_mbuf_pkthdr` (a pointer), and may
/// hold any 64-bit field a caller stores in them.
const REQUIRED_ALIGN: usize = {
    let mut a = align_of::<u64>();
    if align_of::<*mut c_void>() > a {
        a = align_of::<*mut c_void>();
    }
    if align_of::<os_mbuf>() > a {
        a = align_of::<os_mbuf>();
    }
    if align_of::<os_mbuf_pkthdr>() > a {
        a = align_of::<os_mbuf_pkthdr>();
    }
    a
};

/// Byte written around every pool buffer; any change to it is an out-of-bounds write.
const GUARD_BYTE: u8 = 0xC3;
const GUARD_LEN: usize = 64;

// ---------------------------------------------------------------------------------------------
// Porting-layer stand-ins. Of what os_mempool.o, os_mbuf.o, os_msys_init.o and mem.o
// reference, the linker needs only the two critical-section functions: the other references
// (ble_npl_event_init / ble_npl_eventq_put from os_mqueue_*, ubt_nimble_malloc / _free from
// mem_malloc_*) sit in functions nothing here calls, which -ffunction-sections plus the
// linker's --gc-sections drop. Critical sections are counted per thread so the tests can
// check that NimBLE enters and leaves them in balanced pairs.
// ---------------------------------------------------------------------------------------------

thread_local! {
    static CRIT_DEPTH: Cell<u32> = const { Cell::new(0) };
    static CRIT_ENTRIES: Cell<u64> = const { Cell::new(0) };
    static CRIT_MISMATCH: Cell<bool> = const { Cell::new(false) };
}

#[no_mangle]
extern "C" fn ble_npl_hw_enter_critical() -> u32 {
    CRIT_ENTRIES.with(|n| n.set(n.get() + 1));
    CRIT_DEPTH.with(|d| {
        let outer = d.get();
        d.set(outer + 1);
        outer
    })
}

#[no_mangle]
extern "C" fn ble_npl_hw_exit_critical(ctx: u32) {
    CRIT_DEPTH.with(|d| {
        let depth = d.get();
        // The context handed back must be the one enter returned for this nesting level.
        if depth == 0 || ctx != depth - 1 {
            CRIT_MISMATCH.with(|m| m.set(true));
        }
        d.set(depth.saturating_sub(1));
    });
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// NimBLE keeps every pool on one global list (`g_os_mempool_list`) and the msys pools on
/// another, both mutated without locks (our critical sections are per-thread counters), so the
/// tests run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    CRIT_DEPTH.with(|d| d.set(0));
    CRIT_MISMATCH.with(|m| m.set(false));
    guard
}

fn assert_critical_balanced() {
    assert_eq!(CRIT_DEPTH.with(Cell::get), 0, "critical section left open");
    assert!(
        !CRIT_MISMATCH.with(Cell::get),
        "critical section exit with a wrong context"
    );
}

fn round_up(n: usize, a: usize) -> usize {
    n.div_ceil(a) * a
}

/// Deterministic, non-periodic-looking test bytes (xorshift32).
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// An `os_mempool` and its block storage, with guard bytes on both sides of the storage.
///
/// Both are leaked on purpose: `os_mempool_init` links the pool into NimBLE's global pool
/// list and a later init writes through the previous tail, so a pool must never be freed.
struct TestPool {
    mp: *mut os_mempool,
    /// Start of the storage (GUARD_LEN bytes) before the pool area.
    storage: *mut u8,
    /// Start of the pool area handed to `os_mempool_init`.
    base: *mut u8,
    /// `OS_MEMPOOL_BYTES(blocks, block_size)`.
    bytes: usize,
    block_size: usize,
    blocks: usize,
}

impl TestPool {
    fn new(blocks: u16, block_size: u32, name: &'static std::ffi::CStr) -> TestPool {
        let block_size_us = block_size as usize;
        // OS_MEMPOOL_BYTES: whole os_membuf_t units per block, times the block count.
        let bytes = round_up(block_size_us, size_of::<os_membuf_t>()) * blocks as usize;
        let total = GUARD_LEN + bytes + GUARD_LEN;
        // u64 storage so the pool area is 8-aligned whatever os_membuf_t is.
        let words: &'static mut [u64] = Box::leak(vec![0u64; total.div_ceil(8)].into_boxed_slice());
        let storage = words.as_mut_ptr().cast::<u8>();
        // SAFETY: `storage` points to `words.len() * 8 >= total` writable bytes we own.
        unsafe { ptr::write_bytes(storage, GUARD_BYTE, total) };
        // SAFETY: GUARD_LEN < total, so `base` stays inside the allocation.
        let base = unsafe { storage.add(GUARD_LEN) };
        let mp = Box::into_raw(Box::<os_mempool>::default());
        // SAFETY: `mp` is a valid, leaked os_mempool; `base` has `bytes` writable bytes, the
        // size NimBLE's OS_MEMPOOL_BYTES asks for, and lives forever; `name` is a static
        // NUL-terminated string that NimBLE only reads.
        let rc = unsafe {
            os_mempool_init(
                mp,
                blocks,
                block_size,
                base.cast(),
                name.as_ptr() as *mut c_char,
            )
        };
        assert_eq!(
            rc, os_error_OS_OK,
            "os_mempool_init({blocks}, {block_size})"
        );
        TestPool {
            mp,
            storage,
            base,
            bytes,
            block_size: block_size_us,
            blocks: blocks as usize,
        }
    }

    /// Distance between consecutive blocks, as os_mempool.c computes it.
    fn stride(&self) -> usize {
        round_up(self.block_size, OS_ALIGNMENT as usize)
    }

    fn num_free(&self) -> usize {
        // SAFETY: `self.mp` is a leaked, initialised pool only touched by this (serialised) test.
        usize::from(unsafe { (*self.mp).mp_num_free })
    }

    fn min_free(&self) -> usize {
        // SAFETY: as in `num_free`.
        usize::from(unsafe { (*self.mp).mp_min_free })
    }

    fn get(&self) -> *mut u8 {
        // SAFETY: `self.mp` is an initialised pool whose storage lives forever.
        let b = unsafe { os_memblock_get(self.mp) };
        assert_critical_balanced();
        b.cast()
    }

    fn put(&self, block: *mut u8) {
        // SAFETY: callers only pass blocks they got from this pool and have not put back.
        let rc = unsafe { os_memblock_put(self.mp, block.cast()) };
        assert_eq!(rc, os_error_OS_OK);
        assert_critical_balanced();
    }

    /// Index of `block` in the pool, after checking it is a proper block of this pool.
    fn index_of(&self, block: *mut u8) -> usize {
        let addr = block as usize;
        let base = self.base as usize;
        assert!(!block.is_null());
        assert_eq!(
            addr % REQUIRED_ALIGN,
            0,
            "block {addr:#x} not {REQUIRED_ALIGN}-aligned"
        );
        assert!(
            addr >= base,
            "block {addr:#x} before the pool buffer {base:#x}"
        );
        assert!(
            addr + self.block_size <= base + self.bytes,
            "block {addr:#x}+{} past the pool buffer end {:#x}",
            self.block_size,
            base + self.bytes
        );
        assert_eq!(
            (addr - base) % self.stride(),
            0,
            "block not on a block boundary"
        );
        // SAFETY: `self.mp` is initialised; os_memblock_from only compares addresses.
        assert_eq!(unsafe { os_memblock_from(self.mp, block.cast()) }, 1);
        (addr - base) / self.stride()
    }

    fn assert_guards_intact(&self) {
        // SAFETY: `storage` has GUARD_LEN + bytes + GUARD_LEN initialised bytes we own; NimBLE
        // may be writing the middle only through blocks, which this shared read does not touch
        // concurrently (tests are serialised and single-threaded).
        let (front, back) = unsafe {
            (
                std::slice::from_raw_parts(self.storage, GUARD_LEN),
                std::slice::from_raw_parts(self.base.add(self.bytes), GUARD_LEN),
            )
        };
        assert!(
            front.iter().all(|&b| b == GUARD_BYTE),
            "guard before the pool overwritten"
        );
        assert!(
            back.iter().all(|&b| b == GUARD_BYTE),
            "guard after the pool overwritten"
        );
    }

    fn assert_sane(&self) {
        // SAFETY: `self.mp` is initialised; the check only walks its free list.
        let sane = unsafe { os_mempool_is_sane(self.mp) };
        assert!(sane, "free list holds a foreign block");
    }
}

/// Takes every block of `pool`, checking placement and counts, then checks exhaustion.
fn take_all(pool: &TestPool) -> Vec<*mut u8> {
    let mut seen = HashSet::new();
    let mut blocks = Vec::new();
    for i in 0..pool.blocks {
        assert_eq!(pool.num_free(), pool.blocks - i);
        let b = pool.get();
        assert!(
            !b.is_null(),
            "pool ran dry after {i} of {} blocks",
            pool.blocks
        );
        assert!(seen.insert(pool.index_of(b)), "block handed out twice");
        blocks.push(b);
    }
    assert_eq!(pool.num_free(), 0);
    assert_eq!(pool.min_free(), 0);
    assert!(pool.get().is_null(), "exhausted pool returned a block");
    assert!(pool.get().is_null(), "exhausted pool returned a block");
    assert_eq!(pool.num_free(), 0);
    blocks
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

#[test]
fn alignment_config_matches_host() {
    assert_eq!(
        REQUIRED_ALIGN,
        align_of::<*mut c_void>().max(align_of::<u64>())
    );
    if cfg!(target_pointer_width = "64") {
        assert_eq!(REQUIRED_ALIGN, 8);
        assert_eq!(OS_ALIGNMENT, 8, "64-bit hosts need OS_ALIGNMENT 8");
        assert_eq!(size_of::<os_membuf_t>(), 8);
    }
    assert!(OS_ALIGNMENT as usize >= REQUIRED_ALIGN);
    // A free block holds a struct os_memblock, so even a 1-byte block must have room for one.
    assert!(round_up(1, OS_ALIGNMENT as usize) >= size_of::<os_memblock>());
    // The packet header sits at the start of om_databuf; it must be aligned there.
    assert_eq!(
        std::mem::offset_of!(os_mbuf, om_databuf) % align_of::<os_mbuf_pkthdr>(),
        0
    );
}

// ---------------------------------------------------------------------------------------------
// os_mempool
// ---------------------------------------------------------------------------------------------

#[test]
fn mempool_blocks_are_aligned_distinct_and_bounded() {
    let _serial = serial();
    let cases: &[(u16, u32, &'static std::ffi::CStr)] = &[
        (9, 1, c"pool_1"),
        (5, 7, c"pool_7"),
        (4, 8, c"pool_8"),
        (7, 13, c"pool_13"),
        (3, 24, c"pool_24"),
        (5, 260, c"pool_260"),
        (12, 292, c"pool_292"),
        (1, 13, c"pool_13x1"),
    ];
    for &(count, size, name) in cases {
        let pool = TestPool::new(count, size, name);
        // SAFETY: `pool.mp` was just initialised and is only used by this test.
        let mp = unsafe { *pool.mp };
        assert_eq!(mp.mp_block_size, size);
        assert_eq!(usize::from(mp.mp_num_blocks), pool.blocks);
        assert_eq!(usize::from(mp.mp_num_free), pool.blocks);
        assert_eq!(usize::from(mp.mp_min_free), pool.blocks);
        assert_eq!(mp.mp_membuf_addr, pool.base as usize);
        assert!(
            pool.stride() * pool.blocks <= pool.bytes,
            "pool needs more than OS_MEMPOOL_BYTES"
        );
        pool.assert_sane();

        let mut blocks = take_all(&pool);
        let mut sorted: Vec<usize> = blocks.iter().map(|&b| b as usize).collect();
        sorted.sort_unstable();
        for pair in sorted.windows(2) {
            assert!(
                pair[0] + pool.block_size <= pair[1],
                "blocks overlap ({size} bytes)"
            );
        }

        // Fill every block completely with its own pattern, then check none was disturbed.
        let contents: Vec<Vec<u8>> = (0..blocks.len())
            .map(|i| pattern(pool.block_size, size * 100 + i as u32))
            .collect();
        for (b, data) in blocks.iter().zip(&contents) {
            // SAFETY: `b` is a block of at least block_size bytes we own until we put it back,
            // and `data` has block_size bytes.
            unsafe { ptr::copy_nonoverlapping(data.as_ptr(), *b, data.len()) };
        }
        for (b, data) in blocks.iter().zip(&contents) {
            // SAFETY: `b` is a live block of block_size initialised bytes (written above).
            let now = unsafe { std::slice::from_raw_parts(*b, pool.block_size) };
            assert_eq!(
                now,
                &data[..],
                "a neighbour's write reached this {size}-byte block"
            );
        }
        pool.assert_guards_intact();

        // Return them in a scrambled order; each put must give one block back.
        let n = blocks.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (i * 5 + 3) % n.max(1) * n + i);
        for (k, &i) in order.iter().enumerate() {
            pool.put(blocks[i]);
            assert_eq!(pool.num_free(), k + 1);
            assert_eq!(
                pool.min_free(),
                0,
                "min_free must remember the low-water mark"
            );
        }
        pool.assert_sane();
        pool.assert_guards_intact();

        // The same blocks, and only those, come back out.
        let again = take_all(&pool);
        let mut first: Vec<usize> = blocks.drain(..).map(|b| b as usize).collect();
        let mut second: Vec<usize> = again.iter().map(|&b| b as usize).collect();
        first.sort_unstable();
        second.sort_unstable();
        assert_eq!(first, second);

        // A returned block is handed out again before the pool reports exhaustion.
        pool.put(again[0]);
        let reused = pool.get();
        assert_eq!(reused, again[0]);
        assert!(pool.get().is_null());
        for b in again {
            pool.put(b);
        }
        assert_eq!(pool.num_free(), pool.blocks);

        // os_mempool_clear rebuilds the full free list even with blocks outstanding.
        let held = pool.get();
        assert!(!held.is_null());
        // SAFETY: the pool is initialised; `held` is abandoned (never put back) after clearing.
        assert_eq!(unsafe { os_mempool_clear(pool.mp) }, os_error_OS_OK);
        assert_eq!(pool.num_free(), pool.blocks);
        pool.assert_sane();
        for b in take_all(&pool) {
            pool.put(b);
        }
        assert_eq!(pool.num_free(), pool.blocks);
        pool.assert_guards_intact();
    }
}

#[test]
fn mempool_rejects_bad_arguments() {
    let _serial = serial();
    let pool = TestPool::new(2, 16, c"pool_args");
    let mut scratch = os_mempool::default();
    // SAFETY: `base + 4` is inside the pool's storage; init must reject it before writing
    // anything to it (it is not OS_ALIGNMENT-aligned), so `scratch` is never linked anywhere.
    let rc = unsafe {
        os_mempool_init(
            &mut scratch,
            2,
            16,
            pool.base.add(4).cast(),
            ptr::null_mut(),
        )
    };
    assert_eq!(rc, os_error_OS_MEM_NOT_ALIGNED);
    // SAFETY: a zero block size is rejected before the pool or buffer are touched.
    let rc = unsafe { os_mempool_init(&mut scratch, 2, 0, pool.base.cast(), ptr::null_mut()) };
    assert_eq!(rc, os_error_OS_INVALID_PARM);
    // SAFETY: blocks without a buffer are rejected before anything is written.
    let rc = unsafe { os_mempool_init(&mut scratch, 2, 16, ptr::null_mut(), ptr::null_mut()) };
    assert_eq!(rc, os_error_OS_INVALID_PARM);
    // SAFETY: os_memblock_put rejects a null block without touching the pool.
    let rc = unsafe { os_memblock_put(pool.mp, ptr::null_mut()) };
    assert_eq!(rc, os_error_OS_INVALID_PARM);
    assert_eq!(pool.num_free(), 2);
    // Addresses inside the buffer but off a block boundary, or outside it, are not blocks.
    // SAFETY: os_memblock_from only compares the addresses with the pool's range.
    unsafe {
        assert_eq!(os_memblock_from(pool.mp, pool.base.add(8).cast()), 0);
        assert_eq!(
            os_memblock_from(pool.mp, pool.base.add(pool.bytes).cast()),
            0
        );
        assert_eq!(os_memblock_from(pool.mp, pool.storage.cast()), 0);
    }
    pool.assert_guards_intact();
}

// ---------------------------------------------------------------------------------------------
// mbufs
// ---------------------------------------------------------------------------------------------

/// An mbuf pool over a `TestPool`, leaked for the same reason.
struct MbufPool {
    pool: TestPool,
    omp: *mut os_mbuf_pool,
    databuf_len: usize,
}

impl MbufPool {
    /// `data_len` bytes of data per mbuf, after the `struct os_mbuf` header.
    fn new(blocks: u16, data_len: usize, name: &'static std::ffi::CStr) -> MbufPool {
        let buf_len = u16::try_from(size_of::<os_mbuf>() + data_len).expect("mbuf size");
        let pool = TestPool::new(blocks, u32::from(buf_len), name);
        let omp = Box::into_raw(Box::<os_mbuf_pool>::default());
        // SAFETY: `omp` is a leaked mbuf pool; `pool.mp` is an initialised mempool whose
        // blocks are `buf_len` bytes, as os_mbuf_pool_init expects.
        let rc = unsafe { os_mbuf_pool_init(omp, pool.mp, buf_len, blocks) };
        assert_eq!(rc, 0);
        // SAFETY: `omp` was just initialised.
        let databuf_len = usize::from(unsafe { (*omp).omp_databuf_len });
        assert_eq!(databuf_len, data_len);
        MbufPool {
            pool,
            omp,
            databuf_len,
        }
    }

    fn in_use(&self) -> usize {
        self.pool.blocks - self.pool.num_free()
    }

    fn assert_full(&self) {
        assert_eq!(
            self.pool.num_free(),
            self.pool.blocks,
            "mbufs leaked or double-freed"
        );
        self.pool.assert_sane();
        self.pool.assert_guards_intact();
        assert_critical_balanced();
    }
}

/// The mbufs of a chain, head first.
///
/// # Safety
/// `om` is null or the head of a well-formed chain of live mbufs.
unsafe fn chain(om: *const os_mbuf) -> Vec<*mut os_mbuf> {
    let mut v = Vec::new();
    let mut cur = om as *mut os_mbuf;
    while !cur.is_null() {
        v.push(cur);
        // SAFETY: `cur` is a live mbuf of the chain (caller's contract).
        cur = unsafe { (*cur).om_next.sle_next };
    }
    v
}

/// Pointer to the start of an mbuf's data area (`om_databuf`).
///
/// # Safety
/// `om` points to a live mbuf.
unsafe fn databuf(om: *mut os_mbuf) -> *mut u8 {
    // SAFETY: `om` is live (caller's contract); we only take a field address.
    unsafe { addr_of_mut!((*om).om_databuf).cast() }
}

/// The packet header of a packet-header mbuf.
///
/// # Safety
/// `om` points to a live mbuf with `om_pkthdr_len >= sizeof(struct os_mbuf_pkthdr)`.
unsafe fn pkthdr(om: *mut os_mbuf) -> *mut os_mbuf_pkthdr {
    // SAFETY: the packet header is the first thing in om_databuf (caller's contract).
    unsafe { databuf(om).cast() }
}

/// Checks the structure of a chain against `pool` and returns its bytes, read both by walking
/// the chain directly and through os_mbuf_copydata (which must agree).
///
/// # Safety
/// `om` is the head of a well-formed chain of live mbufs from `pool`.
unsafe fn check_chain(pool: &MbufPool, om: *mut os_mbuf, has_pkthdr: bool) -> Vec<u8> {
    // SAFETY: caller's contract.
    let mbufs = unsafe { chain(om) };
    let mut walked = Vec::new();
    for (i, &m) in mbufs.iter().enumerate() {
        pool.pool.index_of(m.cast());
        // SAFETY: `m` is a live mbuf of the chain; we read its header and the `om_len`
        // initialised data bytes it points to, which lie inside its block (checked first).
        unsafe {
            assert_eq!((*m).om_omp, pool.omp, "mbuf from another pool in the chain");
            let start = databuf(m) as usize;
            let end = start + pool.databuf_len;
            let pkthdr_len = usize::from((*m).om_pkthdr_len);
            if i == 0 && has_pkthdr {
                assert!(pkthdr_len >= size_of::<os_mbuf_pkthdr>());
                assert_eq!(pkthdr(m) as usize % align_of::<os_mbuf_pkthdr>(), 0);
            } else {
                assert_eq!(pkthdr_len, 0, "packet header on a non-head mbuf");
            }
            let data = (*m).om_data as usize;
            let len = usize::from((*m).om_len);
            assert!(
                data >= start + pkthdr_len,
                "data overlaps the packet header"
            );
            assert!(data + len <= end, "data runs past the mbuf");
            walked.extend_from_slice(std::slice::from_raw_parts((*m).om_data, len));
        }
    }
    if has_pkthdr {
        // SAFETY: the head is a packet-header mbuf (checked above).
        let pktlen = usize::from(unsafe { (*pkthdr(om)).omp_len });
        assert_eq!(
            pktlen,
            walked.len(),
            "packet length disagrees with the chain"
        );
    }
    let mut copied = vec![0u8; walked.len()];
    // SAFETY: the chain holds `walked.len()` bytes and `copied` has room for all of them.
    let rc = unsafe { os_mbuf_copydata(om, 0, walked.len() as c_int, copied.as_mut_ptr().cast()) };
    assert_eq!(rc, 0);
    assert_eq!(copied, walked, "os_mbuf_copydata disagrees with the chain");
    walked
}

/// os_mbuf_copydata of a sub-range.
///
/// # Safety
/// `om` is the head of a well-formed chain of live mbufs.
unsafe fn copy_range(om: *mut os_mbuf, off: usize, len: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; len];
    // SAFETY: `out` has `len` writable bytes; the chain is live (caller's contract).
    let rc = unsafe { os_mbuf_copydata(om, off as c_int, len as c_int, out.as_mut_ptr().cast()) };
    (rc == 0).then_some(out)
}

/// Appends `data` in pieces of the given sizes.
///
/// # Safety
/// `om` is the head of a well-formed chain of live mbufs.
unsafe fn append_pieces(om: *mut os_mbuf, data: &[u8], pieces: &[usize]) {
    let mut off = 0;
    for &n in pieces {
        // SAFETY: `data[off..off + n]` is readable; the chain is live (caller's contract).
        let rc = unsafe { os_mbuf_append(om, data[off..].as_ptr().cast(), n as u16) };
        assert_eq!(rc, 0, "os_mbuf_append of {n} bytes at {off}");
        assert_critical_balanced();
        off += n;
    }
    assert_eq!(off, data.len());
}

#[test]
fn mbuf_get_and_free() {
    let _serial = serial();
    let mp = MbufPool::new(6, 75, c"mbuf_basic");
    let hdr = size_of::<os_mbuf_pkthdr>();

    // SAFETY: every mbuf used below comes from `mp.omp` and is freed exactly once before the
    // end of the block; we only read header fields of live mbufs.
    unsafe {
        let om = os_mbuf_get(mp.omp, 10);
        assert!(!om.is_null());
        mp.pool.index_of(om.cast());
        assert_eq!((*om).om_len, 0);
        assert_eq!((*om).om_flags, 0);
        assert_eq!((*om).om_pkthdr_len, 0);
        assert_eq!((*om).om_omp, mp.omp);
        assert!((*om).om_next.sle_next.is_null());
        assert_eq!((*om).om_data, databuf(om).add(10));
        assert_eq!(mp.in_use(), 1);
        // Leading space larger than the data area is refused without taking a block.
        assert!(os_mbuf_get(mp.omp, mp.databuf_len as u16 + 1).is_null());
        assert_eq!(mp.in_use(), 1);
        assert_eq!(os_mbuf_free(om), 0);
        mp.assert_full();

        let om = os_mbuf_get_pkthdr(mp.omp, 4);
        assert!(!om.is_null());
        assert_eq!(usize::from((*om).om_pkthdr_len), hdr + 4);
        assert_eq!((*om).om_data, databuf(om).add(hdr + 4));
        let ph = pkthdr(om);
        assert_eq!(ph as usize % align_of::<os_mbuf_pkthdr>(), 0);
        assert_eq!((*ph).omp_len, 0);
        assert_eq!((*ph).omp_flags, 0);
        assert!((*ph).omp_next.stqe_next.is_null());
        // A packet header that cannot fit in the data area is refused.
        assert!(os_mbuf_get_pkthdr(mp.omp, (mp.databuf_len - hdr + 1) as u8).is_null());
        assert_eq!(mp.in_use(), 1);
        assert_eq!(os_mbuf_free_chain(om), 0);
        mp.assert_full();

        // Exhaust the pool one mbuf at a time, then give everything back.
        let all: Vec<_> = (0..mp.pool.blocks)
            .map(|_| os_mbuf_get(mp.omp, 0))
            .collect();
        assert!(all.iter().all(|m| !m.is_null()));
        assert!(os_mbuf_get(mp.omp, 0).is_null());
        assert!(os_mbuf_get_pkthdr(mp.omp, 0).is_null());
        for m in all {
            assert_eq!(os_mbuf_free(m), 0);
        }
        mp.assert_full();
    }
}

#[test]
fn mbuf_chain_append_copy_adj_pullup_prepend() {
    let _serial = serial();
    // An odd data size (75) over an odd block size (107): the pool rounds the stride to 8.
    let mp = MbufPool::new(10, 75, c"mbuf_chain");
    let hdr = size_of::<os_mbuf_pkthdr>();
    let usr = [0xDE, 0xAD, 0xBE, 0xEF];
    let data = pattern(300, 7);

    // SAFETY: `m` is always the head of a well-formed chain from `mp.omp` (each NimBLE call
    // below returns the new head or consumes the chain); every raw access is to a live mbuf
    // of that chain, within its data area.
    unsafe {
        let mut m = os_mbuf_get_pkthdr(mp.omp, usr.len() as u8);
        assert!(!m.is_null());
        // The user header follows the packet header inside om_databuf.
        ptr::copy_nonoverlapping(usr.as_ptr(), databuf(m).add(hdr), usr.len());

        // 300 bytes in pieces 1, 7, 13, 260, 19: head holds 75 - 20 = 55, then 75 per mbuf.
        append_pieces(m, &data, &[1, 7, 13, 260, 19]);
        assert_eq!(check_chain(&mp, m, true), data);
        assert_eq!(chain(m).len(), 5);
        assert_eq!(mp.in_use(), 5);
        let lens: Vec<u16> = chain(m).iter().map(|&c| (*c).om_len).collect();
        assert_eq!(lens, [55, 75, 75, 75, 20]);

        // Sub-ranges, including ones that straddle mbuf boundaries.
        for (off, len) in [
            (0, 1),
            (54, 2),
            (55, 75),
            (129, 3),
            (123, 177),
            (299, 1),
            (0, 300),
        ] {
            assert_eq!(
                copy_range(m, off, len).as_deref(),
                Some(&data[off..off + len]),
                "copydata({off}, {len})"
            );
        }
        assert!(
            copy_range(m, 290, 11).is_none(),
            "copydata past the end must fail"
        );
        assert!(
            copy_range(m, 301, 1).is_none(),
            "copydata past the end must fail"
        );

        // Trim from the head: within the first mbuf, then through it into the second.
        let mut expect = data.clone();
        os_mbuf_adj(m, 5);
        expect.drain(..5);
        assert_eq!(check_chain(&mp, m, true), expect);
        os_mbuf_adj(m, 60);
        expect.drain(..60);
        assert_eq!(check_chain(&mp, m, true), expect);
        assert_eq!((*m).om_len, 0, "emptied head stays in the chain");
        assert_eq!(mp.in_use(), 5);

        // Trim from the tail: within the last mbuf, then across it (the tail mbuf is freed).
        os_mbuf_adj(m, -9);
        expect.truncate(expect.len() - 9);
        assert_eq!(check_chain(&mp, m, true), expect);
        os_mbuf_adj(m, -30);
        expect.truncate(expect.len() - 30);
        assert_eq!(check_chain(&mp, m, true), expect);
        assert_eq!(expect.len(), 196);
        assert_eq!(chain(m).len(), 4);
        assert_eq!(mp.in_use(), 4);

        // Pull 40 bytes to the front. The emptied head kept its data pointer 5 bytes in (adj
        // does not move it once an mbuf is empty), so it still has 50 bytes of room: pullup
        // fills it from the next mbuf and keeps the same head.
        let head = m;
        m = os_mbuf_pullup(m, 40);
        assert_eq!(m, head);
        assert_eq!((*m).om_len, 40);
        assert_eq!(std::slice::from_raw_parts((*m).om_data, 40), &expect[..40]);
        assert_eq!(check_chain(&mp, m, true), expect);
        assert_eq!(
            std::slice::from_raw_parts(databuf(m).add(hdr), usr.len()),
            usr
        );
        assert_eq!(chain(m).len(), 4);
        assert_eq!(mp.in_use(), 4);
        // Already contiguous: pullup is a no-op.
        assert_eq!(os_mbuf_pullup(m, 40), m);

        // Prepend 3 bytes: they fit in the head's 5 bytes of leading space.
        let leading =
            (*m).om_data as usize - (databuf(m) as usize + usize::from((*m).om_pkthdr_len));
        assert_eq!(leading, 5);
        m = os_mbuf_prepend(m, 3);
        assert_eq!(m, head);
        let front = [0x11, 0x22, 0x33];
        assert_eq!(os_mbuf_copyinto(m, 0, front.as_ptr().cast(), 3), 0);
        expect.splice(0..0, front);
        assert_eq!(check_chain(&mp, m, true), expect);
        assert_eq!(mp.in_use(), 4);

        // Prepend 100 bytes: 2 fit in front of the head, then two new packet-header heads are
        // put in front (55 + 43 bytes); the packet header and user header move to the newest
        // and the older heads lose theirs (check_chain checks that).
        m = os_mbuf_prepend(m, 100);
        assert!(!m.is_null());
        assert_ne!(m, head);
        assert_eq!((*head).om_pkthdr_len, 0);
        let front = pattern(100, 99);
        assert_eq!(os_mbuf_copyinto(m, 0, front.as_ptr().cast(), 100), 0);
        expect.splice(0..0, front.iter().copied());
        assert_eq!(check_chain(&mp, m, true), expect);
        assert_eq!(
            std::slice::from_raw_parts(databuf(m).add(hdr), usr.len()),
            usr
        );
        let lens: Vec<u16> = chain(m).iter().map(|&c| (*c).om_len).collect();
        assert_eq!(lens, [43, 55, 45, 25, 75, 56]);
        assert_eq!(mp.in_use(), 6);

        // Pull 50 bytes up: the head's data sits at the end of its mbuf, so pullup takes a new
        // head, copies the packet header to it and frees the emptied old head.
        let head = m;
        m = os_mbuf_pullup(m, 50);
        assert!(!m.is_null());
        assert_ne!(m, head);
        assert_eq!((*m).om_len, 50);
        assert_eq!(std::slice::from_raw_parts((*m).om_data, 50), &expect[..50]);
        assert_eq!(check_chain(&mp, m, true), expect);
        assert_eq!(
            std::slice::from_raw_parts(databuf(m).add(hdr), usr.len()),
            usr
        );
        let lens: Vec<u16> = chain(m).iter().map(|&c| (*c).om_len).collect();
        assert_eq!(lens, [50, 48, 45, 25, 75, 56]);
        assert_eq!(mp.in_use(), 6);

        assert_eq!(os_mbuf_free_chain(m), 0);
        mp.assert_full();
    }
}

#[test]
fn mbuf_pool_exhaustion_and_failure_paths() {
    let _serial = serial();
    let mp = MbufPool::new(10, 75, c"mbuf_exhaust");
    let hdr = size_of::<os_mbuf_pkthdr>();
    let data = pattern(2000, 3);

    // SAFETY: as in mbuf_chain_append_copy_adj_pullup_prepend: `m` is always a live chain
    // from `mp.omp` or null after NimBLE consumed it.
    unsafe {
        // Appending more than the pool holds fills every mbuf, keeps what fit, and says so.
        let m = os_mbuf_get_pkthdr(mp.omp, 0);
        assert!(!m.is_null());
        let rc = os_mbuf_append(m, data.as_ptr().cast(), data.len() as u16);
        assert_eq!(rc, os_error_OS_ENOMEM as c_int);
        assert_critical_balanced();
        let fit = (mp.databuf_len - hdr) + (mp.pool.blocks - 1) * mp.databuf_len;
        assert_eq!(mp.pool.num_free(), 0);
        assert_eq!(check_chain(&mp, m, true), &data[..fit]);
        assert!(os_mbuf_get(mp.omp, 0).is_null());
        assert_eq!(os_mbuf_free_chain(m), 0);
        mp.assert_full();

        // A pullup that can never fit in one mbuf fails and frees the whole chain.
        let m = os_mbuf_get_pkthdr(mp.omp, 0);
        append_pieces(m, &data[..200], &[13, 7, 1, 179]);
        assert_eq!(check_chain(&mp, m, true), &data[..200]);
        let too_long = (mp.databuf_len - hdr + 1) as u16;
        assert!(os_mbuf_pullup(m, too_long).is_null());
        mp.assert_full();

        // A prepend the pool cannot satisfy frees the chain too.
        let m = os_mbuf_get(mp.omp, 0);
        append_pieces(m, &data[..75 * 9], &[260, 260, 155]);
        assert_eq!(check_chain(&mp, m, false), &data[..75 * 9]);
        assert_eq!(mp.in_use(), 9);
        assert!(os_mbuf_prepend(m, 200).is_null());
        mp.assert_full();
    }
}

// ---------------------------------------------------------------------------------------------
// msys
// ---------------------------------------------------------------------------------------------

#[test]
fn msys_registered_pools() {
    let _serial = serial();
    let small = MbufPool::new(4, 48, c"msys_small");
    let large = MbufPool::new(3, 260, c"msys_large");
    let hdr = size_of::<os_mbuf_pkthdr>();

    // SAFETY: the msys list only ever holds the leaked pools registered here (it is reset
    // first and tests are serialised); every mbuf taken is freed before the block ends.
    unsafe {
        os_msys_reset();
        assert_eq!(os_msys_count(), 0);
        assert!(os_msys_get_pkthdr(10, 0).is_null(), "no pools registered");
        // Registered smallest first, as os_msys_init does.
        assert_eq!(os_msys_register(small.omp), 0);
        assert_eq!(os_msys_register(large.omp), 0);
        assert_eq!(os_msys_count(), 7);
        assert_eq!(os_msys_num_free(), 7);

        // The smallest pool whose data area fits the request (plus packet header) serves it.
        let a = os_msys_get_pkthdr((48 - hdr) as u16, 0);
        let b = os_msys_get_pkthdr((48 - hdr + 1) as u16, 0);
        let c = os_msys_get(48, 0);
        let d = os_msys_get(49, 0);
        let e = os_msys_get_pkthdr(5000, 4);
        for (m, pool) in [
            (a, &small),
            (b, &large),
            (c, &small),
            (d, &large),
            (e, &large),
        ] {
            assert!(!m.is_null());
            assert_eq!((*m).om_omp, pool.omp);
            pool.pool.index_of(m.cast());
        }
        assert_eq!(os_msys_num_free(), 2);
        assert_eq!(usize::from((*e).om_pkthdr_len), hdr + 4);

        // Chains grown by append stay in the pool the head came from.
        // 32 bytes fit after the packet header, then 48 per mbuf: 128 takes both spare mbufs.
        let data = pattern(128, 11);
        append_pieces(a, &data, &[1, 7, 13, 107]);
        assert_eq!(check_chain(&small, a, true), data);
        assert_eq!(small.pool.num_free(), 0);
        // The small pool is dry now; requests it would serve get nothing.
        assert!(os_msys_get_pkthdr(1, 0).is_null());
        assert!(os_msys_get(1, 0).is_null());

        for m in [a, b, c, d, e] {
            assert_eq!(os_mbuf_free_chain(m), 0);
        }
        assert_eq!(os_msys_num_free(), 7);
        small.assert_full();
        large.assert_full();
        os_msys_reset();
    }
}

#[test]
fn msys_default_pool_from_syscfg() {
    let _serial = serial();
    // SAFETY: os_msys_init (re)registers NimBLE's static MSYS_1 pool; this is the only test
    // that calls it, so its mempool is linked into the global pool list exactly once.
    unsafe { os_msys_init() };
    assert_critical_balanced();
    // SAFETY: msys now holds only NimBLE's own static pool; every mbuf taken below is checked
    // for placement and freed before the block ends.
    unsafe {
        let count = usize::try_from(os_msys_count()).expect("count");
        assert!(count > 0, "syscfg configures MSYS_1");
        assert_eq!(os_msys_num_free(), count as c_int);

        let mut taken = Vec::new();
        let mut seen = HashSet::new();
        loop {
            let m = os_msys_get_pkthdr(0, 0);
            if m.is_null() {
                break;
            }
            assert_eq!(m as usize % REQUIRED_ALIGN, 0, "msys block not aligned");
            assert!(seen.insert(m as usize), "msys block handed out twice");
            let omp = (*m).om_omp;
            assert_eq!(os_memblock_from((*omp).omp_pool, m.cast()), 1);
            taken.push(m);
        }
        assert_eq!(taken.len(), count);
        assert_eq!(os_msys_num_free(), 0);

        // Fill every mbuf's data area to the brim, then check none disturbed another.
        let room = usize::from((*(*taken[0]).om_omp).omp_databuf_len) - size_of::<os_mbuf_pkthdr>();
        let contents: Vec<Vec<u8>> = (0..count).map(|i| pattern(room, 500 + i as u32)).collect();
        for (&m, data) in taken.iter().zip(&contents) {
            assert_eq!(os_mbuf_append(m, data.as_ptr().cast(), room as u16), 0);
            assert_eq!(
                chain(m).len(),
                1,
                "a full-size append must not need a second mbuf"
            );
        }
        for (&m, data) in taken.iter().zip(&contents) {
            assert_eq!(copy_range(m, 0, room).as_deref(), Some(&data[..]));
            assert_eq!(usize::from((*pkthdr(m)).omp_len), room);
        }
        for m in taken {
            assert_eq!(os_mbuf_free_chain(m), 0);
        }
        assert_eq!(os_msys_num_free(), count as c_int);
        assert_critical_balanced();
    }
}
