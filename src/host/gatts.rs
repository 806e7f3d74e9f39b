//! The GATT server: services registered from Python, their attribute values, and the events
//! peers cause (writes, read requests, indication confirmations).
//!
//! Three layers live here, from the bottom up:
//!
//! * The value store ([`Value`], [`Db`]): plain Rust, unit-tested on the host. One entry per
//!   characteristic value and user descriptor, each with a capacity (20 bytes unless a local
//!   write or `gatts_set_buffer` changed it), a current length and an append flag (spec §8.3,
//!   §8.4).
//! * The NimBLE service definitions ([`Generation`]): the `ble_gatt_svc_def` /
//!   `ble_gatt_chr_def` / `ble_gatt_dsc_def` arrays and the UUIDs they point to, built from the
//!   flat entry list the shim parsed out of the Python structure. NimBLE keeps pointers into
//!   them (its registration queue, its attribute table, its service table), so a generation of
//!   definitions is only freed at a point where NimBLE has provably let go of it.
//! * NimBLE's callbacks (register, access) and the operations behind `gatts_*`, with their FFI
//!   entry points `ubt_gatts_*`.
//!
//! No `Global` borrow is ever held while NimBLE may call back into this module or while the
//! Python handler runs: NimBLE's `ble_gatts_start` calls [`register_cb`], notify/indicate read
//! the value through [`access_cb`], and the handler may call any `gatts_*` method.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ffi::{c_int, c_void};
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use nimble_sys as ns;

use super::state::{is_active, require_active};
use crate::error::{check, Error};
use crate::event::{self, Event, IrqResult};
use crate::handle::{AttrHandle, ConnHandle};
use crate::sys;
use crate::thread::{Global, NimbleThread};
use crate::uuid::Uuid;

// --- What the shim shares with us ----------------------------------------------------------------

/// Most user services one registration may hold; more gives `OSError(E2BIG)` (spec §3.1).
pub const UBT_GATTS_MAX_SERVICES: usize = 8;

/// [`GattsEntry::kind`]: a service; the entries up to the next service belong to it.
pub const UBT_GATTS_SERVICE: u8 = 0;
/// [`GattsEntry::kind`]: a characteristic of the preceding service.
pub const UBT_GATTS_CHARACTERISTIC: u8 = 1;
/// [`GattsEntry::kind`]: a descriptor of the preceding characteristic.
pub const UBT_GATTS_DESCRIPTOR: u8 = 2;

/// One item of a registration, in definition order: a service, then each characteristic
/// followed by its descriptors. Every characteristic and descriptor gets one handle back.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GattsEntry {
    /// `UBT_GATTS_SERVICE`, `UBT_GATTS_CHARACTERISTIC` or `UBT_GATTS_DESCRIPTOR`.
    pub kind: u8,
    /// The Python flags, truncated to 16 bits as the C module does (unused for services).
    pub flags: u16,
    /// The UUID.
    pub uuid: Uuid,
}

// --- The value store -------------------------------------------------------------------------------

/// Capacity of a value nobody has resized (`MP_BLUETOOTH_DEFAULT_ATTR_LEN`).
const DEFAULT_CAPACITY: usize = 20;

/// One stored characteristic or descriptor value.
///
/// The buffer is allocated at the capacity, so a remote write (which must not fail on
/// allocation inside NimBLE's callback) never allocates. 24 bytes on a 64-bit host, 16 on
/// Cortex-M, plus the buffer: the store keeps one per attribute, NimBLE's own included.
#[derive(Debug)]
pub struct Value {
    /// Room for the whole capacity; the value is `buf[..len]`.
    buf: Box<[u8]>,
    len: u32,
    handle: AttrHandle,
    append: bool,
}

/// A zero-filled buffer of exactly `n` bytes, or `ENOMEM` (a negative Python length becomes a
/// huge one, which must raise rather than abort). Values are bounded by `u32` lengths.
fn try_buffer(n: usize) -> Result<Box<[u8]>, Error> {
    if u32::try_from(n).is_err() {
        return Err(Error::NoMem);
    }
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::NoMem)?;
    v.resize(n, 0);
    Ok(v.into_boxed_slice())
}

impl Value {
    /// An empty value with the default capacity.
    pub fn new(handle: AttrHandle) -> Result<Value, Error> {
        Ok(Value {
            buf: try_buffer(DEFAULT_CAPACITY)?,
            len: 0,
            handle,
            append: false,
        })
    }

    /// The stored bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    /// The largest value a remote write can leave.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Whether remote writes append.
    pub fn append(&self) -> bool {
        self.append
    }

    /// Stores `bytes`, which fit the buffer, as the value.
    fn set(&mut self, bytes: &[u8]) {
        self.buf[..bytes.len()].copy_from_slice(bytes);
        // The buffer's length fits a u32 (try_buffer), and so does anything that fits it.
        self.len = bytes.len() as u32;
    }

    /// `gatts_read`: copies the value into `out`; in append mode the value is then emptied.
    pub fn read_into(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.clear();
        out.try_reserve(self.bytes().len())
            .map_err(|_| Error::NoMem)?;
        out.extend_from_slice(self.bytes());
        if self.append {
            self.len = 0;
        }
        Ok(())
    }

    /// `gatts_write`: replaces the value. A value longer than the capacity grows the capacity
    /// to exactly its length; the capacity never shrinks here. The append flag is kept.
    pub fn local_write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if bytes.len() > self.capacity() {
            self.buf = try_buffer(bytes.len())?;
        }
        self.set(bytes);
        Ok(())
    }

    /// `gatts_set_buffer`: the capacity becomes exactly `len`, the value is emptied and the
    /// append flag set or cleared. On `ENOMEM` nothing changes.
    pub fn set_buffer(&mut self, len: usize, append: bool) -> Result<(), Error> {
        self.buf = try_buffer(len)?;
        self.len = 0;
        self.append = append;
        Ok(())
    }

    /// A write from a peer of at most `max_len` bytes. `fill` gets the room left (from the
    /// start, or after the current value in append mode, and no more than `max_len`) and
    /// returns how many bytes it wrote there; whatever does not fit is dropped, and that is
    /// still a successful write (spec §8.4).
    pub fn remote_write_with(&mut self, max_len: usize, fill: impl FnOnce(&mut [u8]) -> usize) {
        let start = if self.append { self.bytes().len() } else { 0 };
        // No allocation: the buffer always has room for the capacity.
        let end = self.capacity().min(start.saturating_add(max_len));
        let room = &mut self.buf[start..end];
        let written = fill(room).min(room.len());
        self.len = (start + written) as u32;
    }

    /// A write from a peer, from a flat buffer.
    pub fn remote_write(&mut self, incoming: &[u8]) {
        self.remote_write_with(incoming.len(), |room| {
            let n = incoming.len().min(room.len());
            room[..n].copy_from_slice(&incoming[..n]);
            n
        });
    }
}

/// Every stored value, by attribute handle.
#[derive(Debug, Default)]
pub struct Db {
    /// Sorted by handle. A sorted `Vec` rather than a map: NimBLE registers handles in
    /// increasing order, so each insert appends, and [`Db::shrink_to_fit`] leaves one
    /// [`Value`] a handle (a B-tree's first leaf alone takes 480 bytes).
    values: Vec<Value>,
}

impl Db {
    /// An empty store.
    pub const fn new() -> Db {
        Db { values: Vec::new() }
    }

    /// Forgets every value (registration and start-up begin with an empty store).
    pub fn clear(&mut self) {
        self.values.clear();
    }

    /// Gives back the room registration's appends left over.
    pub fn shrink_to_fit(&mut self) {
        self.values.shrink_to_fit();
    }

    /// Creates (or re-creates, empty) the value for `handle`.
    pub fn create(&mut self, handle: AttrHandle) -> Result<(), Error> {
        let value = Value::new(handle)?;
        match self.values.binary_search_by_key(&handle, |v| v.handle) {
            Ok(i) => self.values[i] = value,
            Err(i) => {
                self.values.try_reserve(1).map_err(|_| Error::NoMem)?;
                self.values.insert(i, value);
            }
        }
        Ok(())
    }

    fn index(&self, handle: AttrHandle) -> Option<usize> {
        self.values.binary_search_by_key(&handle, |v| v.handle).ok()
    }

    /// The value for `handle`.
    pub fn get(&self, handle: AttrHandle) -> Option<&Value> {
        self.index(handle).map(|i| &self.values[i])
    }

    /// The value for `handle`, or `InvalidArg` (the C module's answer for an unknown handle).
    pub fn get_mut(&mut self, handle: AttrHandle) -> Result<&mut Value, Error> {
        let i = self.index(handle).ok_or(Error::InvalidArg)?;
        Ok(&mut self.values[i])
    }
}

// --- Mapping Python flags and UUIDs to NimBLE ---------------------------------------------------

/// A descriptor's ATT permissions: only READ and WRITE / WRITE_NO_RESPONSE count; the security
/// bits are ignored on descriptors, as in the C module (spec §8.1). Characteristic flags need
/// no mapping: Python's bit values are NimBLE's `BLE_GATT_CHR_F_*`.
pub fn descriptor_att_flags(flags: u16) -> u8 {
    let flags = u32::from(flags);
    let mut att = 0;
    if flags & ns::BLE_GATT_CHR_F_READ != 0 {
        att |= ns::BLE_ATT_F_READ;
    }
    if flags & (ns::BLE_GATT_CHR_F_WRITE | ns::BLE_GATT_CHR_F_WRITE_NO_RSP) != 0 {
        att |= ns::BLE_ATT_F_WRITE;
    }
    att as u8
}

/// NimBLE's form of a UUID: `InvalidArg` for a length NimBLE has no form for.
fn nimble_uuid(uuid: &Uuid) -> Result<ns::ble_uuid_any_t, Error> {
    sys::uuid::to_nimble(uuid).ok_or(Error::InvalidArg)
}

/// Splits a flat entry list into services: the index ranges `[service, next service)`.
///
/// The shim never sends anything else, but the list still crosses the FFI, so a list that
/// does not start with a service or has a descriptor before any characteristic is `EINVAL`.
/// More than [`UBT_GATTS_MAX_SERVICES`] services is `E2BIG`.
pub fn split_services(entries: &[GattsEntry]) -> Result<Vec<(usize, usize)>, Error> {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut have_chr = false;
    for (i, e) in entries.iter().enumerate() {
        match e.kind {
            UBT_GATTS_SERVICE => {
                if let Some(last) = ranges.last_mut() {
                    last.1 = i;
                }
                if ranges.len() == UBT_GATTS_MAX_SERVICES {
                    return Err(Error::TooBig);
                }
                ranges.try_reserve(1).map_err(|_| Error::NoMem)?;
                ranges.push((i, entries.len()));
                have_chr = false;
            }
            UBT_GATTS_CHARACTERISTIC if !ranges.is_empty() => have_chr = true,
            UBT_GATTS_DESCRIPTOR if have_chr => {}
            _ => return Err(Error::InvalidArg),
        }
    }
    Ok(ranges)
}

// --- NimBLE service definitions --------------------------------------------------------------------

/// Fills a new `Vec` with `n` copies of `value`, or `ENOMEM`.
fn try_filled<T: Clone>(n: usize, value: T) -> Result<Vec<T>, Error> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::NoMem)?;
    v.resize(n, value);
    Ok(v)
}

/// Where each array of a [`Generation`] starts in its block (bytes; the service array starts at
/// 0), and the block's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DefsLayout {
    chrs: usize,
    dscs: usize,
    uuids: usize,
    handles: usize,
    end: usize,
}

impl DefsLayout {
    /// The layout for `n_svcs` services, `n_chrs` characteristic slots and `n_dscs`
    /// descriptor slots (terminators included), `n_uuids` UUIDs and `n_handles` handle slots;
    /// `None` if the sizes overflow.
    fn new(
        n_svcs: usize,
        n_chrs: usize,
        n_dscs: usize,
        n_uuids: usize,
        n_handles: usize,
    ) -> Option<DefsLayout> {
        use core::alloc::Layout;
        let svcs = Layout::array::<ns::ble_gatt_svc_def>(n_svcs.checked_mul(2)?).ok()?;
        let (block, chrs) = svcs
            .extend(Layout::array::<ns::ble_gatt_chr_def>(n_chrs).ok()?)
            .ok()?;
        let (block, dscs) = block
            .extend(Layout::array::<ns::ble_gatt_dsc_def>(n_dscs).ok()?)
            .ok()?;
        let (block, uuids) = block
            .extend(Layout::array::<ns::ble_uuid_any_t>(n_uuids).ok()?)
            .ok()?;
        let (block, handles) = block.extend(Layout::array::<u16>(n_handles).ok()?).ok()?;
        // The block is a Vec<u64>: nothing in it may need more.
        debug_assert!(block.align() <= core::mem::align_of::<u64>());
        Some(DefsLayout {
            chrs,
            dscs,
            uuids,
            handles,
            end: block.size(),
        })
    }
}

/// One registration's service definitions as NimBLE sees them, in a single heap block:
///
/// * per service, its `ble_gatt_svc_def` and a terminator (NimBLE is given one service at a
///   time, as in the C module);
/// * per service, its `ble_gatt_chr_def`s and a terminator;
/// * per characteristic with descriptors, its `ble_gatt_dsc_def`s and a terminator;
/// * one UUID per entry, services included, in entry order;
/// * one handle slot per characteristic/descriptor entry, in entry order: NimBLE writes the
///   characteristic value handles, [`register_cb`] the descriptor handles.
///
/// One block instead of an allocation per array and service (about 200 bytes less for the
/// Nordic UART service on a 64-bit host). The block is zero-filled first, which is a valid
/// value of every type in it and NimBLE's terminator. NimBLE keeps pointers into it; the block
/// is never resized, and Rust reaches it only through `Vec::as_ptr` / `as_mut_ptr` (which take
/// no reference to the whole buffer), so those pointers stay valid until it is dropped.
struct Generation {
    /// The block, as `u64`s for an alignment that suits every array in it.
    words: Vec<u64>,
    n_svcs: u32,
    /// Byte offset of the handle slots.
    handles_at: u32,
    n_handles: u32,
}

impl Generation {
    /// Builds the definitions for `entries`, split into services by `ranges`
    /// ([`split_services`]).
    fn build(entries: &[GattsEntry], ranges: &[(usize, usize)]) -> Result<Generation, Error> {
        let is_dsc = |e: &&GattsEntry| e.kind == UBT_GATTS_DESCRIPTOR;
        let n_svcs = ranges.len();
        let n_handles = entries.len() - n_svcs;
        let n_chrs = n_handles - entries.iter().filter(is_dsc).count() + n_svcs;
        let mut n_dscs = 0;
        for (i, e) in entries.iter().enumerate() {
            if e.kind == UBT_GATTS_CHARACTERISTIC {
                let n = entries[i + 1..].iter().take_while(is_dsc).count();
                if n > 0 {
                    n_dscs += n + 1;
                }
            }
        }
        let layout = DefsLayout::new(n_svcs, n_chrs, n_dscs, entries.len(), n_handles)
            .ok_or(Error::NoMem)?;
        let narrow = |n: usize| u32::try_from(n).map_err(|_| Error::NoMem);
        let mut generation = Generation {
            words: try_filled(layout.end.div_ceil(8), 0u64)?,
            n_svcs: narrow(n_svcs)?,
            handles_at: narrow(layout.handles)?,
            n_handles: narrow(n_handles)?,
        };

        let base = generation.words.as_mut_ptr().cast::<u8>();
        // For every `add` in this function: each offset is one DefsLayout computed for these
        // counts, within the block and aligned for its type, and each index stays below the
        // count it was placed with (the counts come from the same walk over `entries`).
        // SAFETY: the offsets lie within the block (DefsLayout).
        let (svcs, chrs, dscs, uuids, handles) = unsafe {
            (
                base.cast::<ns::ble_gatt_svc_def>(),
                base.add(layout.chrs).cast::<ns::ble_gatt_chr_def>(),
                base.add(layout.dscs).cast::<ns::ble_gatt_dsc_def>(),
                base.add(layout.uuids).cast::<ns::ble_uuid_any_t>(),
                base.add(layout.handles).cast::<u16>(),
            )
        };
        // The `u` member sits at offset 0 of every variant of the repr(C) union, which is how
        // NimBLE itself uses `ble_uuid_any_t`.
        let uuid_ptr = |i: usize| {
            // SAFETY: i < entries.len(), the number of UUIDs.
            unsafe { uuids.add(i) }
                .cast::<ns::ble_uuid_t>()
                .cast_const()
        };
        for (i, e) in entries.iter().enumerate() {
            let uuid = nimble_uuid(&e.uuid)?;
            // SAFETY: as for uuid_ptr.
            unsafe { uuids.add(i).write(uuid) };
        }

        let (mut chr_at, mut dsc_at, mut handle_at) = (0, 0, 0);
        for (s, &(start, end)) in ranges.iter().enumerate() {
            // SAFETY: s < n_svcs; the slot after it stays zero, the terminator.
            unsafe {
                svcs.add(2 * s).write(ns::ble_gatt_svc_def {
                    type_: ns::BLE_GATT_SVC_TYPE_PRIMARY as u8,
                    uuid: uuid_ptr(start),
                    includes: ptr::null_mut(),
                    characteristics: chrs.add(chr_at),
                })
            };
            let mut i = start + 1;
            while i < end {
                // split_services guarantees a characteristic here.
                if entries[i].kind != UBT_GATTS_CHARACTERISTIC {
                    return Err(Error::InvalidArg);
                }
                let n = entries[i + 1..end].iter().take_while(is_dsc).count();
                // SAFETY: every characteristic and descriptor entry has a handle slot.
                let val_handle = unsafe { handles.add(handle_at) };
                // 0xffff until NimBLE assigns the handle, as in the C module.
                // SAFETY: handle_at + n < n_handles, the slots of this entry and its descriptors.
                unsafe {
                    for k in 0..=n {
                        handles.add(handle_at + k).write(0xffff);
                    }
                }
                let descriptors = if n == 0 {
                    ptr::null_mut()
                } else {
                    for j in 0..n {
                        let dsc = &entries[i + 1 + j];
                        // SAFETY: this characteristic's n descriptor slots start at dsc_at, and
                        // the one after them stays zero, the terminator.
                        unsafe {
                            dscs.add(dsc_at + j).write(ns::ble_gatt_dsc_def {
                                uuid: uuid_ptr(i + 1 + j),
                                att_flags: descriptor_att_flags(dsc.flags),
                                min_key_size: 0,
                                access_cb: Some(access_cb),
                                // NimBLE has no handle out-pointer for descriptors:
                                // register_cb writes the handle through `arg`.
                                arg: handles.add(handle_at + 1 + j).cast(),
                            })
                        };
                    }
                    // SAFETY: as above.
                    let list = unsafe { dscs.add(dsc_at) };
                    dsc_at += n + 1;
                    list
                };
                // SAFETY: chr_at < n_chrs (this service's slots; its terminator follows).
                unsafe {
                    chrs.add(chr_at).write(ns::ble_gatt_chr_def {
                        uuid: uuid_ptr(i),
                        access_cb: Some(access_cb),
                        arg: ptr::null_mut(),
                        descriptors,
                        flags: entries[i].flags,
                        min_key_size: 0,
                        val_handle,
                    })
                };
                chr_at += 1;
                handle_at += 1 + n;
                i += 1 + n;
            }
            // This service's terminator stays zero.
            chr_at += 1;
        }
        Ok(generation)
    }

    /// Service `s`'s definition and its terminator, for `ble_gatts_add_svcs`.
    fn service(&self, s: usize) -> *const ns::ble_gatt_svc_def {
        debug_assert!(s < self.n_svcs as usize);
        // SAFETY: the service array starts the block and holds 2 * n_svcs entries.
        unsafe {
            self.words
                .as_ptr()
                .cast::<ns::ble_gatt_svc_def>()
                .add(2 * s)
        }
    }

    /// The handle slots' addresses.
    fn slots(&self) -> core::ops::Range<*const u16> {
        // SAFETY: the slots lie within the block (DefsLayout), at handles_at.
        let first = unsafe {
            self.words
                .as_ptr()
                .cast::<u8>()
                .add(self.handles_at as usize)
        };
        let first = first.cast::<u16>();
        // SAFETY: as above, n_handles slots.
        first..unsafe { first.add(self.n_handles as usize) }
    }

    /// The handles, one per characteristic/descriptor entry in definition order.
    fn handles(&self) -> &[u16] {
        // SAFETY: initialised slots within the block; NimBLE writes them only inside
        // ble_gatts_start, never while this borrow of `self` is held.
        unsafe { core::slice::from_raw_parts(self.slots().start, self.n_handles as usize) }
    }

    /// Whether `slot` is one of this generation's handle slots (a descriptor's `arg`).
    fn owns_slot(&self, slot: *const u16) -> bool {
        self.slots().contains(&slot)
    }

    /// Records `handle` in the slot a descriptor's `arg` points to, if the slot is ours.
    fn record(&mut self, slot: *const u16, handle: u16) -> bool {
        if !self.owns_slot(slot) {
            return false;
        }
        let slots = self.slots();
        // In range (checked above), so the byte distance is a whole number of u16s.
        let byte = self.handles_at as usize + (slot as usize - slots.start as usize);
        // SAFETY: a slot inside the block, aligned (a whole number of u16s from an aligned
        // start); written through the block's own pointer.
        unsafe {
            self.words
                .as_mut_ptr()
                .cast::<u8>()
                .add(byte)
                .cast::<u16>()
                .write(handle)
        };
        true
    }
}

// --- Server state ----------------------------------------------------------------------------------

/// Everything the server keeps between calls.
struct Server {
    /// The stored values.
    db: Db,
    /// Every generation of service definitions NimBLE may still point to, oldest first. The
    /// last one is the current registration's.
    defs: Vec<Generation>,
    /// The copy `gatts_read` hands to the shim, valid until the next `gatts_read`.
    read_buf: Vec<u8>,
}

static SERVER: Global<Server> = Global::new(Server {
    db: Db::new(),
    defs: Vec::new(),
    read_buf: Vec::new(),
});

/// How many of our access callbacks are running the Python handler right now. NimBLE frames
/// below them hold pointers into our definitions, so no generation is freed meanwhile.
static ACCESS_DEPTH: AtomicUsize = AtomicUsize::new(0);

/// Frees every definition generation but the newest `keep` ones, unless an access callback is
/// on the stack (then the next free point does it).
fn release_old_defs(server: &mut Server, keep: usize) {
    if ACCESS_DEPTH.load(Ordering::Acquire) == 0 {
        let old = server.defs.len().saturating_sub(keep);
        server.defs.drain(..old);
    }
}

/// Runs the Python handler for an event raised from inside an access callback.
fn dispatch_in_access(t: NimbleThread, event: &Event<'_>) -> IrqResult {
    ACCESS_DEPTH.fetch_add(1, Ordering::AcqRel);
    let r = event::dispatch(t, event);
    ACCESS_DEPTH.fetch_sub(1, Ordering::AcqRel);
    r
}

/// Queues NimBLE's GAP (0x1800) and GATT (0x1801) services.
fn queue_default_services() {
    // SAFETY: NimBLE's own static definitions; the host is synced and its service set is
    // mutable (callers have just reset it or are starting up).
    unsafe {
        ns::ble_svc_gap_init();
        ns::ble_svc_gatt_init();
    }
}

// --- Life cycle hooks (host/stack.rs) ---------------------------------------------------------------

/// After host sync: registers the default GAP and GATT services (handles 1–9) with an empty
/// value store.
pub fn on_start(t: NimbleThread) {
    sys::private::reset_gatts_counters(t);
    sys::cfg::with(t, |cfg| cfg.gatts_register_cb = Some(register_cb));
    let _ = SERVER.with(t, |s| s.db.clear());
    queue_default_services();
    // SAFETY: the host is synced and idle; register_cb only borrows SERVER, which is free.
    unsafe { ns::ble_gatts_start() };
    // The host's re-initialisation emptied its attribute table, and ble_gatts_start has
    // rebuilt its service table and drained its queue: nothing points at old definitions.
    let _ = SERVER.with(t, |s| release_old_defs(s, 0));
}

/// The stack stopped: the values go (spec §14.6). Definitions stay until the next start,
/// because NimBLE's service table still points at them.
pub fn on_stop(t: NimbleThread) {
    let _ = SERVER.with(t, |s| {
        s.db.clear();
        s.read_buf = Vec::new();
    });
}

/// The port's heap was wiped under us (a bare-metal soft reset frees the whole GC heap): drop
/// every reference into it without freeing anything.
pub fn forget_heap(t: NimbleThread) {
    let _ = SERVER.with(t, |s| {
        core::mem::forget(core::mem::replace(&mut s.db, Db::new()));
        core::mem::forget(core::mem::take(&mut s.defs));
        core::mem::forget(core::mem::take(&mut s.read_buf));
    });
}

/// NimBLE finished sending a notification or indication (`BLE_GAP_EVENT_NOTIFY_TX`).
///
/// Only indications that ended (confirmed: `BLE_HS_EDONE`, or failed) are reported, as
/// `_IRQ_GATTS_INDICATE_DONE` with status 0 or the NimBLE code truncated to 8 bits; the event
/// NimBLE raises when an indication or notification is merely sent (status 0) is not.
pub fn on_notify_tx(
    t: NimbleThread,
    conn_handle: ConnHandle,
    value_handle: AttrHandle,
    status: i32,
    indication: bool,
) {
    if !indication || status == 0 {
        return;
    }
    let status = if status == ns::BLE_HS_EDONE as i32 {
        0
    } else {
        status as u8
    };
    let ev = Event::GattsIndicateDone {
        conn_handle,
        value_handle,
        status,
    };
    event::dispatch(t, &ev);
}

// --- NimBLE callbacks --------------------------------------------------------------------------------

/// `ble_hs_cfg.gatts_register_cb`: NimBLE registered an attribute. Every characteristic value
/// and descriptor (NimBLE's own services' included, CCCDs excluded since NimBLE does not report
/// them) gets an empty value (spec §8.3); our descriptors also get their handle recorded.
unsafe extern "C" fn register_cb(ctxt: *mut ns::ble_gatt_register_ctxt, _arg: *mut c_void) {
    if ctxt.is_null() || !is_active() {
        return;
    }
    // SAFETY: NimBLE calls its register callback from its host, on the NimBLE thread.
    let t = unsafe { NimbleThread::new_unchecked() };
    // SAFETY: NimBLE passes a valid context for the duration of the call.
    let ctxt = unsafe { &*ctxt };
    match u32::from(ctxt.op) {
        ns::BLE_GATT_REGISTER_OP_CHR => {
            // SAFETY: the op tag says `chr` is the valid member.
            let handle = unsafe { ctxt.__bindgen_anon_1.chr.val_handle };
            let _ = SERVER.with(t, |s| s.db.create(AttrHandle(handle)));
        }
        ns::BLE_GATT_REGISTER_OP_DSC => {
            // SAFETY: the op tag says `dsc` is the valid member.
            let dsc = unsafe { ctxt.__bindgen_anon_1.dsc };
            let _ = SERVER.with(t, |s| {
                let _ = s.db.create(AttrHandle(dsc.handle));
                if dsc.dsc_def.is_null() {
                    return;
                }
                // SAFETY: NimBLE passes the definition it is registering, which is valid.
                let slot = unsafe { (*dsc.dsc_def).arg }.cast::<u16>().cast_const();
                // Only a slot inside one of our own handle arrays is ours; another
                // registrant's descriptor may use `arg` for something else.
                for generation in s.defs.iter_mut() {
                    if generation.record(slot, dsc.handle) {
                        break;
                    }
                }
            });
        }
        _ => {}
    }
}

/// Reads and writes of our characteristic values and descriptors, from peers or (for
/// notify/indicate without data) from NimBLE itself with connection handle 65535.
unsafe extern "C" fn access_cb(
    conn_handle: u16,
    attr_handle: u16,
    ctxt: *mut ns::ble_gatt_access_ctxt,
    _arg: *mut c_void,
) -> c_int {
    if !is_active() || ctxt.is_null() {
        return 0;
    }
    // SAFETY: NimBLE calls its access callbacks from its host, on the NimBLE thread.
    let t = unsafe { NimbleThread::new_unchecked() };
    // SAFETY: NimBLE passes a valid context for the duration of the call.
    let (op, om) = unsafe { ((*ctxt).op, (*ctxt).om) };
    let (conn_handle, attr_handle) = (ConnHandle(conn_handle), AttrHandle(attr_handle));
    match u32::from(op) {
        ns::BLE_GATT_ACCESS_OP_READ_CHR | ns::BLE_GATT_ACCESS_OP_READ_DSC => {
            // The handler may deny the read (its int is the ATT error) or update the value
            // with gatts_write first; it runs before the value is looked up (spec §6.3).
            let request = Event::GattsReadRequest {
                conn_handle,
                attr_handle,
            };
            let r = dispatch_in_access(t, &request);
            // Truncated to a C int first, as the C module does: only its low bits decide.
            let denial = if r.handled { r.value as c_int } else { 0 };
            if denial != 0 {
                return denial;
            }
            SERVER
                .with(t, |s| match s.db.get(attr_handle) {
                    None => ns::BLE_ATT_ERR_ATTR_NOT_FOUND as c_int,
                    Some(v) => {
                        let data = v.bytes();
                        // SAFETY: `om` is NimBLE's response buffer for this call; `data` is
                        // valid for reads of its length.
                        let rc = unsafe {
                            ns::os_mbuf_append(om, data.as_ptr().cast(), data.len() as u16)
                        };
                        if rc == 0 {
                            0
                        } else {
                            ns::BLE_ATT_ERR_INSUFFICIENT_RES as c_int
                        }
                    }
                })
                .unwrap_or(ns::BLE_ATT_ERR_UNLIKELY as c_int)
        }
        ns::BLE_GATT_ACCESS_OP_WRITE_CHR | ns::BLE_GATT_ACCESS_OP_WRITE_DSC => {
            let stored = SERVER
                .with(t, |s| match s.db.get_mut(attr_handle) {
                    Err(_) => false,
                    Ok(v) => {
                        // ATT values are at most 512 bytes (prepared writes included).
                        let max_len = ns::BLE_ATT_ATTR_MAX_LEN as usize;
                        v.remote_write_with(max_len, |room| {
                            let mut copied = 0u16;
                            let max = room.len().min(usize::from(u16::MAX)) as u16;
                            // SAFETY: `om` holds the written value; `room` is valid for
                            // writes of `max` bytes. NimBLE copies at most `max`.
                            unsafe {
                                ns::ble_hs_mbuf_to_flat(
                                    om,
                                    room.as_mut_ptr().cast(),
                                    max,
                                    &mut copied,
                                );
                            }
                            usize::from(copied)
                        });
                        true
                    }
                })
                .unwrap_or(false);
            if !stored {
                return ns::BLE_ATT_ERR_ATTR_NOT_FOUND as c_int;
            }
            // After the value is stored and before NimBLE answers the peer (spec §6, event 3).
            dispatch_in_access(
                t,
                &Event::GattsWrite {
                    conn_handle,
                    attr_handle,
                },
            );
            0
        }
        _ => ns::BLE_ATT_ERR_UNLIKELY as c_int,
    }
}

// --- Operations --------------------------------------------------------------------------------------

/// Runs `f` on the server state. A re-entrant borrow cannot happen (no borrow is held across
/// NimBLE or Python calls), but if it did, `EBUSY` beats corrupting the state.
fn with_server<R>(
    t: NimbleThread,
    f: impl FnOnce(&mut Server) -> Result<R, Error>,
) -> Result<R, Error> {
    SERVER.with(t, f).unwrap_or(Err(Error::Busy))
}

/// First step of `gatts_register_services`, before the shim parses the services: checks
/// that the stack is active and the service set may change, then drops every attribute and
/// value. A parse error after this leaves the server empty, as in the C module.
pub fn register_begin(t: NimbleThread) -> Result<(), Error> {
    require_active()?;
    // SAFETY: plain NimBLE call on the NimBLE thread. EBUSY while advertising, scanning,
    // connecting or connected.
    check(unsafe { ns::ble_gatts_reset() })?;
    with_server(t, |s| {
        s.db.clear();
        Ok(())
    })
}

/// Second step: registers the GAP and GATT services and then `entries` (spec §8.1) and writes
/// one handle per characteristic/descriptor entry into `handles`, in definition order.
pub fn register(
    t: NimbleThread,
    entries: &[GattsEntry],
    handles: &mut [AttrHandle],
) -> Result<(), Error> {
    require_active()?;
    let ranges = split_services(entries)?;
    let n_handles = entries.len() - ranges.len();
    if handles.len() < n_handles {
        return Err(Error::InvalidArg);
    }
    let generation = Generation::build(entries, &ranges)?;
    // Moving the generation into SERVER does not move its block. At most
    // UBT_GATTS_MAX_SERVICES services (split_services).
    let mut services = [ptr::null(); UBT_GATTS_MAX_SERVICES];
    for (i, svc) in services.iter_mut().enumerate().take(ranges.len()) {
        *svc = generation.service(i);
    }
    // Python ran while the shim parsed (iterators, __len__): start from a clean attribute
    // table again, so that only this registration's definitions are referenced afterwards.
    // SAFETY: plain NimBLE call on the NimBLE thread.
    check(unsafe { ns::ble_gatts_reset() })?;
    with_server(t, |s| {
        s.db.clear();
        s.defs.try_reserve(1).map_err(|_| Error::NoMem)?;
        s.defs.push(generation);
        Ok(())
    })?;

    sys::private::reset_gatts_counters(t);
    queue_default_services();
    let mut result = Ok(());
    for &svc in &services[..ranges.len()] {
        // SAFETY: `svc` points into a generation now owned by SERVER, which stays until a
        // later free point; NimBLE reads it here and in ble_gatts_start.
        let rc = unsafe {
            match ns::ble_gatts_count_cfg(svc) {
                0 => ns::ble_gatts_add_svcs(svc),
                rc => rc,
            }
        };
        if rc != 0 {
            result = check(rc);
            break;
        }
    }
    // Always start, even after an error: it empties NimBLE's queue of definitions, which
    // would otherwise leak into (and break) the next registration.
    // SAFETY: no SERVER borrow is held; register_cb takes its own.
    let rc = unsafe { ns::ble_gatts_start() };
    if result.is_ok() {
        result = check(rc);
    }
    with_server(t, |s| {
        // The attribute table was reset above and the service table rebuilt: only the
        // newest generation is referenced now.
        release_old_defs(s, 1);
        s.defs.shrink_to_fit();
        s.db.shrink_to_fit();
        if let Some(current) = s.defs.last() {
            for (out, &h) in handles.iter_mut().zip(current.handles()) {
                *out = AttrHandle(h);
            }
        }
        Ok(())
    })?;
    result
}

/// `gatts_read`: a copy of the value, or nothing (inactive, unknown handle). The returned
/// slice lives in the server's read buffer until the next read.
pub fn read(t: NimbleThread, handle: AttrHandle) -> (*const u8, usize) {
    if !is_active() {
        return (ptr::null(), 0);
    }
    SERVER
        .with(t, |s| {
            let Server { db, read_buf, .. } = s;
            match db.get_mut(handle).and_then(|v| v.read_into(read_buf)) {
                Ok(()) => (read_buf.as_ptr(), read_buf.len()),
                Err(_) => (ptr::null(), 0),
            }
        })
        .unwrap_or((ptr::null(), 0))
}

/// `gatts_write(handle, data, send_update)`.
pub fn write(
    t: NimbleThread,
    handle: AttrHandle,
    data: &[u8],
    send_update: bool,
) -> Result<(), Error> {
    require_active()?;
    with_server(t, |s| s.db.get_mut(handle)?.local_write(data))?;
    if send_update {
        // Subscribed peers are notified from a later poll; NimBLE reads the value back
        // through access_cb then. No SERVER borrow is held here.
        // NimBLE queues the notifications as a host event; queueing it outside a poll
        // requests one (npl::ble_npl_eventq_put), so they leave without other traffic.
        // SAFETY: plain NimBLE call on the NimBLE thread.
        unsafe { ns::ble_gatts_chr_updated(handle.0) };
    }
    Ok(())
}

/// `gatts_set_buffer(handle, len, append)`.
pub fn set_buffer(
    t: NimbleThread,
    handle: AttrHandle,
    len: usize,
    append: bool,
) -> Result<(), Error> {
    require_active()?;
    with_server(t, |s| s.db.get_mut(handle)?.set_buffer(len, append))
}

/// Blocks of NimBLE's shared mbuf pool that `gatts_notify`/`gatts_indicate` leave free (they
/// raise `OSError(ENOMEM)` instead, as when the pool is empty), so the host can still answer a
/// peer's requests while a script notifies as fast as it can. Without the reserve the answers
/// found the pool used up and the peer's GATT requests timed out (tests/peer/test_exit.py).
const NOTIFY_POOL_RESERVE: i32 = 2;

/// `gatts_notify` / `gatts_indicate`. Without `data`, NimBLE reads the stored value through
/// access_cb (raising `_IRQ_GATTS_READ_REQUEST(65535, handle)` first); with it, `data` is sent
/// and the stored value left alone.
pub fn notify(
    _t: NimbleThread,
    conn_handle: ConnHandle,
    value_handle: AttrHandle,
    data: Option<&[u8]>,
    indicate: bool,
) -> Result<(), Error> {
    require_active()?;
    // SAFETY: plain NimBLE query on the NimBLE thread.
    if unsafe { ns::os_msys_num_free() } <= NOTIFY_POOL_RESERVE {
        return Err(Error::NoMem);
    }
    let om = match data {
        // Lengths are truncated to 16 bits, as the C module's call does; NimBLE truncates the
        // payload to the ATT MTU.
        // SAFETY: `d` is valid for reads of its length; NimBLE copies it.
        Some(d) => match unsafe { ns::ble_hs_mbuf_from_flat(d.as_ptr().cast(), d.len() as u16) } {
            om if om.is_null() => return Err(Error::NoMem),
            om => om,
        },
        None => ptr::null_mut(),
    };
    // SAFETY: NimBLE takes ownership of `om` (freeing it on failure too). No SERVER borrow is
    // held: NimBLE may call access_cb and the NOTIFY_TX event handler from inside.
    let rc = unsafe {
        if indicate {
            ns::ble_gattc_indicate_custom(conn_handle.0, value_handle.0, om)
        } else {
            ns::ble_gattc_notify_custom(conn_handle.0, value_handle.0, om)
        }
    };
    check(rc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: u8, flags: u16, uuid: u16) -> GattsEntry {
        GattsEntry {
            kind,
            flags,
            uuid: Uuid::from_u16(uuid),
        }
    }

    const S: u8 = UBT_GATTS_SERVICE;
    const C: u8 = UBT_GATTS_CHARACTERISTIC;
    const D: u8 = UBT_GATTS_DESCRIPTOR;

    #[test]
    fn new_value_is_empty_with_default_capacity() {
        let v = Value::new(AttrHandle(1)).unwrap();
        assert_eq!(v.bytes(), b"");
        assert_eq!(v.capacity(), 20);
        assert!(!v.append());
    }

    #[test]
    fn remote_write_is_truncated_to_capacity() {
        let mut v = Value::new(AttrHandle(1)).unwrap();
        v.remote_write(&[7; 25]);
        assert_eq!(v.bytes(), &[7; 20][..]);
        v.remote_write(b"abc");
        assert_eq!(v.bytes(), b"abc");
        v.remote_write(b"");
        assert_eq!(v.bytes(), b"");
    }

    #[test]
    fn local_write_grows_capacity_exactly_and_never_shrinks() {
        let mut v = Value::new(AttrHandle(1)).unwrap();
        v.local_write(&[1; 30]).unwrap();
        assert_eq!(v.capacity(), 30);
        assert_eq!(v.bytes(), &[1; 30][..]);
        v.local_write(b"xy").unwrap();
        assert_eq!(v.capacity(), 30);
        assert_eq!(v.bytes(), b"xy");
        // A remote write may now be as long as the grown capacity.
        v.remote_write(&[2; 40]);
        assert_eq!(v.bytes(), &[2; 30][..]);
    }

    #[test]
    fn set_buffer_resizes_clears_and_sets_append() {
        let mut v = Value::new(AttrHandle(1)).unwrap();
        v.local_write(b"hello").unwrap();
        v.set_buffer(4, true).unwrap();
        assert_eq!(v.capacity(), 4);
        assert_eq!(v.bytes(), b"");
        assert!(v.append());
        v.set_buffer(100, false).unwrap();
        assert_eq!(v.capacity(), 100);
        assert!(!v.append());
    }

    #[test]
    fn set_buffer_with_a_huge_length_is_enomem_and_changes_nothing() {
        let mut v = Value::new(AttrHandle(1)).unwrap();
        v.local_write(b"keep").unwrap();
        // What a negative Python length becomes once cast to size_t.
        assert_eq!(v.set_buffer(usize::MAX - 5, true), Err(Error::NoMem));
        assert_eq!(v.bytes(), b"keep");
        assert_eq!(v.capacity(), 20);
        assert!(!v.append());
    }

    #[test]
    fn append_mode_accumulates_up_to_capacity_and_read_empties() {
        let mut v = Value::new(AttrHandle(1)).unwrap();
        v.set_buffer(8, true).unwrap();
        v.remote_write(b"abc");
        v.remote_write(b"def");
        assert_eq!(v.bytes(), b"abcdef");
        v.remote_write(b"ghij");
        assert_eq!(v.bytes(), b"abcdefgh");
        // Full: accepts nothing more, and that is not an error.
        v.remote_write(b"k");
        assert_eq!(v.bytes(), b"abcdefgh");
        let mut out = Vec::new();
        v.read_into(&mut out).unwrap();
        assert_eq!(out, b"abcdefgh");
        assert_eq!(v.bytes(), b"");
        v.remote_write(b"z");
        v.read_into(&mut out).unwrap();
        assert_eq!(out, b"z");
    }

    #[test]
    fn read_keeps_the_value_outside_append_mode() {
        let mut v = Value::new(AttrHandle(1)).unwrap();
        v.local_write(b"same").unwrap();
        let mut out = Vec::new();
        v.read_into(&mut out).unwrap();
        v.read_into(&mut out).unwrap();
        assert_eq!(out, b"same");
        assert_eq!(v.bytes(), b"same");
    }

    #[test]
    fn local_write_in_append_mode_replaces_and_keeps_append() {
        let mut v = Value::new(AttrHandle(1)).unwrap();
        v.set_buffer(4, true).unwrap();
        v.remote_write(b"ab");
        v.local_write(b"123456").unwrap();
        assert_eq!(v.bytes(), b"123456");
        assert_eq!(v.capacity(), 6);
        assert!(v.append());
        // Full after the local write: a remote append stores nothing.
        v.remote_write(b"x");
        assert_eq!(v.bytes(), b"123456");
    }

    #[test]
    fn remote_write_fill_cannot_overrun() {
        let mut v = Value::new(AttrHandle(1)).unwrap();
        v.remote_write_with(usize::MAX, |room| {
            room.fill(9);
            usize::MAX
        });
        assert_eq!(v.bytes(), &[9; 20][..]);
    }

    #[test]
    fn remote_write_room_is_bounded_by_the_incoming_length() {
        let mut v = Value::new(AttrHandle(1)).unwrap();
        v.set_buffer(1000, true).unwrap();
        v.remote_write(b"ab");
        v.remote_write_with(3, |room| {
            assert_eq!(room.len(), 3);
            room.copy_from_slice(b"cde");
            3
        });
        assert_eq!(v.bytes(), b"abcde");
        v.set_buffer(4, true).unwrap();
        v.remote_write(b"xyz");
        v.remote_write_with(512, |room| {
            assert_eq!(room.len(), 1);
            room[0] = b'!';
            1
        });
        assert_eq!(v.bytes(), b"xyz!");
    }

    #[test]
    fn db_unknown_handles_are_einval() {
        let mut db = Db::new();
        db.create(AttrHandle(21)).unwrap();
        assert!(db.get(AttrHandle(21)).is_some());
        assert_eq!(db.get_mut(AttrHandle(22)).err(), Some(Error::InvalidArg));
        db.get_mut(AttrHandle(21))
            .unwrap()
            .local_write(b"v")
            .unwrap();
        // Re-creating empties the value.
        db.create(AttrHandle(21)).unwrap();
        assert_eq!(db.get(AttrHandle(21)).unwrap().bytes(), b"");
        db.clear();
        assert!(db.get(AttrHandle(21)).is_none());
    }

    #[test]
    fn descriptor_flags_keep_only_read_and_write() {
        assert_eq!(descriptor_att_flags(0x0002), ns::BLE_ATT_F_READ as u8);
        assert_eq!(descriptor_att_flags(0x0008), ns::BLE_ATT_F_WRITE as u8);
        assert_eq!(descriptor_att_flags(0x0004), ns::BLE_ATT_F_WRITE as u8);
        assert_eq!(
            descriptor_att_flags(0x000a),
            (ns::BLE_ATT_F_READ | ns::BLE_ATT_F_WRITE) as u8
        );
        // Notify/indicate and every security bit are ignored on descriptors.
        assert_eq!(descriptor_att_flags(0x0010 | 0x0020 | 0x0200 | 0x1000), 0);
    }

    #[test]
    fn python_flags_are_nimble_characteristic_flags() {
        // Registration passes characteristic flags through unchanged, so the bit values of
        // the documented FLAG_* constants must be NimBLE's.
        let pairs = [
            (0x0001, ns::BLE_GATT_CHR_F_BROADCAST),
            (0x0002, ns::BLE_GATT_CHR_F_READ),
            (0x0004, ns::BLE_GATT_CHR_F_WRITE_NO_RSP),
            (0x0008, ns::BLE_GATT_CHR_F_WRITE),
            (0x0010, ns::BLE_GATT_CHR_F_NOTIFY),
            (0x0020, ns::BLE_GATT_CHR_F_INDICATE),
            (0x0040, ns::BLE_GATT_CHR_F_AUTH_SIGN_WRITE),
            (0x0100, ns::BLE_GATT_CHR_F_AUX_WRITE),
            (0x0200, ns::BLE_GATT_CHR_F_READ_ENC),
            (0x0400, ns::BLE_GATT_CHR_F_READ_AUTHEN),
            (0x0800, ns::BLE_GATT_CHR_F_READ_AUTHOR),
            (0x1000, ns::BLE_GATT_CHR_F_WRITE_ENC),
            (0x2000, ns::BLE_GATT_CHR_F_WRITE_AUTHEN),
            (0x4000, ns::BLE_GATT_CHR_F_WRITE_AUTHOR),
        ];
        for (py, nimble) in pairs {
            assert_eq!(py, nimble);
        }
    }

    #[test]
    fn uuids_convert_to_nimble_form() {
        let u16_ = nimble_uuid(&Uuid::from_u16(0x180d)).unwrap();
        // SAFETY: reading the members the conversion wrote.
        unsafe {
            assert_eq!(u16_.u.type_, ns::BLE_UUID_TYPE_16 as u8);
            assert_eq!(u16_.u16_.value, 0x180d);
        }
        let u32_ = nimble_uuid(&Uuid::from_buffer(b"\x01\x02\x03\x04").unwrap()).unwrap();
        // SAFETY: as above.
        unsafe {
            assert_eq!(u32_.u.type_, ns::BLE_UUID_TYPE_32 as u8);
            assert_eq!(u32_.u32_.value, 0x0403_0201);
        }
        let long = Uuid::from_buffer(b"6E400001-B5A3-F393-E0A9-E50E24DCCA9E").unwrap();
        let u128_ = nimble_uuid(&long).unwrap();
        // SAFETY: as above.
        unsafe {
            assert_eq!(u128_.u.type_, ns::BLE_UUID_TYPE_128 as u8);
            assert_eq!(u128_.u128_.value, long.bytes);
            assert_eq!(u128_.u128_.value[15], 0x6e);
        }
        let bad = Uuid {
            len: 3,
            bytes: [0; 16],
        };
        assert!(nimble_uuid(&bad).is_err());
    }

    #[test]
    fn entries_split_into_services() {
        let e = [
            entry(S, 0, 0x180d),
            entry(C, 0x12, 0x2a37),
            entry(D, 2, 0x2901),
            entry(S, 0, 0x180f),
            entry(S, 0, 0x1810),
            entry(C, 2, 0x2a19),
        ];
        assert_eq!(split_services(&e).unwrap(), [(0, 3), (3, 4), (4, 6)]);
        assert_eq!(split_services(&[]).unwrap(), []);
    }

    #[test]
    fn malformed_entry_lists_are_refused() {
        assert_eq!(split_services(&[entry(C, 2, 1)]), Err(Error::InvalidArg));
        assert_eq!(
            split_services(&[entry(S, 0, 1), entry(D, 2, 2)]),
            Err(Error::InvalidArg)
        );
        assert_eq!(
            split_services(&[entry(S, 0, 1), entry(7, 0, 2)]),
            Err(Error::InvalidArg)
        );
    }

    #[test]
    fn more_than_eight_services_is_e2big() {
        let eight: Vec<GattsEntry> = (0..8).map(|i| entry(S, 0, i)).collect();
        assert_eq!(split_services(&eight).unwrap().len(), 8);
        let nine: Vec<GattsEntry> = (0..9).map(|i| entry(S, 0, i)).collect();
        assert_eq!(split_services(&nine), Err(Error::TooBig));
    }

    /// Builds the generation for `e`, which must be well formed.
    fn generation(e: &[GattsEntry]) -> Generation {
        Generation::build(e, &split_services(e).unwrap()).unwrap()
    }

    fn uuid16(p: *const ns::ble_uuid_t) -> u16 {
        // SAFETY: every UUID pointer in these tests points at a 16-bit ble_uuid_any_t.
        unsafe { (*p.cast::<ns::ble_uuid16_t>()).value }
    }

    /// Service `s` of `g` and its characteristic list, up to and including the terminator.
    fn service(g: &Generation, s: usize) -> (&ns::ble_gatt_svc_def, &[ns::ble_gatt_chr_def]) {
        // SAFETY: service(s) points at a definition and its terminator inside the block.
        let pair = unsafe { core::slice::from_raw_parts(g.service(s), 2) };
        assert!(pair[1].uuid.is_null() && pair[1].type_ == 0);
        let mut n = 0;
        // SAFETY: the characteristic list ends with a terminator (null UUID).
        while !unsafe { &*pair[0].characteristics.add(n) }.uuid.is_null() {
            n += 1;
        }
        // SAFETY: n characteristics and the terminator.
        let chrs = unsafe { core::slice::from_raw_parts(pair[0].characteristics, n + 1) };
        (&pair[0], chrs)
    }

    #[test]
    fn definitions_point_at_their_uuids_flags_and_handle_slots() {
        let e = [
            entry(S, 0, 0x180d),
            entry(C, 0x0012, 0x2a37),
            entry(D, 0x000a, 0x2901),
            entry(D, 0x1002, 0x2902),
            entry(C, 0x0008, 0x2a38),
        ];
        let g = generation(&e);
        assert_eq!(g.handles(), [0xffff; 4]);
        let slot = |i: usize| g.slots().start.wrapping_add(i).cast_mut();
        let (svc, chrs) = service(&g, 0);
        assert_eq!(u32::from(svc.type_), ns::BLE_GATT_SVC_TYPE_PRIMARY);
        assert_eq!(uuid16(svc.uuid), 0x180d);
        assert_eq!(chrs.len(), 3);

        let c0 = &chrs[0];
        assert_eq!(uuid16(c0.uuid), 0x2a37);
        assert_eq!(c0.flags, 0x0012);
        assert_eq!(c0.val_handle, slot(0));
        assert!(c0.access_cb.is_some() && c0.arg.is_null());
        // SAFETY: the descriptor list of c0 has 2 entries and a terminator.
        let d = unsafe { core::slice::from_raw_parts(c0.descriptors, 3) };
        assert_eq!(uuid16(d[0].uuid), 0x2901);
        assert_eq!(
            d[0].att_flags,
            (ns::BLE_ATT_F_READ | ns::BLE_ATT_F_WRITE) as u8
        );
        assert!(g.owns_slot(d[0].arg.cast()));
        assert_eq!(d[0].arg.cast::<u16>(), slot(1));
        // A user 0x2902 is an ordinary descriptor; its security bit is dropped.
        assert_eq!(uuid16(d[1].uuid), 0x2902);
        assert_eq!(d[1].att_flags, ns::BLE_ATT_F_READ as u8);
        assert_eq!(d[1].arg.cast::<u16>(), slot(2));
        assert!(d[2].uuid.is_null() && d[2].access_cb.is_none());

        let c1 = &chrs[1];
        assert_eq!(uuid16(c1.uuid), 0x2a38);
        assert!(c1.descriptors.is_null());
        assert_eq!(c1.val_handle, slot(3));
        assert!(chrs[2].val_handle.is_null() && chrs[2].access_cb.is_none());

        let outside = 0u16;
        assert!(!g.owns_slot(&outside));
        assert!(!g.owns_slot(slot(4)));
    }

    #[test]
    fn services_have_their_own_lists_and_handles_follow_entry_order() {
        let e = [
            entry(S, 0, 0x1800 + 1),
            entry(C, 0x02, 0x2a01),
            entry(D, 0x02, 0x2901),
            entry(S, 0, 0x1800 + 2),
            entry(S, 0, 0x1800 + 3),
            entry(C, 0x10, 0x2a02),
            entry(C, 0x08, 0x2a03),
            entry(D, 0x08, 0x2902),
        ];
        let mut g = generation(&e);
        assert_eq!(g.n_svcs, 3);
        let slot = |g: &Generation, i: usize| g.slots().start.wrapping_add(i);
        let (svc, chrs) = service(&g, 0);
        assert_eq!(uuid16(svc.uuid), 0x1801);
        assert_eq!(chrs.len(), 2);
        assert_eq!(chrs[0].val_handle.cast_const(), slot(&g, 0));
        let (svc, chrs) = service(&g, 1);
        assert_eq!(uuid16(svc.uuid), 0x1802);
        assert_eq!(chrs.len(), 1);
        let (svc, chrs) = service(&g, 2);
        assert_eq!(uuid16(svc.uuid), 0x1803);
        assert_eq!(
            chrs.iter()
                .map(|c| uuid16(c.uuid))
                .take(2)
                .collect::<Vec<_>>(),
            [0x2a02, 0x2a03]
        );
        assert_eq!(chrs[0].val_handle.cast_const(), slot(&g, 2));
        assert_eq!(chrs[1].val_handle.cast_const(), slot(&g, 3));
        // SAFETY: one descriptor and its terminator.
        let d = unsafe { core::slice::from_raw_parts(chrs[1].descriptors, 2) };
        assert_eq!(uuid16(d[0].uuid), 0x2902);
        assert!(d[1].uuid.is_null());

        // What NimBLE does for characteristics and register_cb for descriptors.
        let chr_slots = [
            service(&g, 0).1[0].val_handle,
            chrs[0].val_handle,
            chrs[1].val_handle,
        ];
        for (slot, h) in chr_slots.into_iter().zip([3u16, 10, 12]) {
            // SAFETY: a slot of this generation, as NimBLE writes a value handle.
            unsafe { slot.write(h) };
        }
        let first_dsc = service(&g, 0).1[0].descriptors;
        // SAFETY: characteristic 0x2a01's one descriptor.
        assert!(g.record(unsafe { (*first_dsc).arg }.cast(), 4));
        assert!(g.record(d[0].arg.cast(), 13));
        assert_eq!(g.handles(), [3, 4, 10, 12, 13]);
        let other = 7u16;
        assert!(!g.record(&other, 1));
    }

    #[test]
    fn empty_service_has_only_a_terminator() {
        let g = generation(&[entry(S, 0, 0x1234)]);
        assert!(g.handles().is_empty());
        let (svc, chrs) = service(&g, 0);
        assert_eq!(uuid16(svc.uuid), 0x1234);
        assert_eq!(chrs.len(), 1);
        assert!(chrs[0].uuid.is_null());
    }

    #[test]
    fn a_value_is_three_words() {
        assert!(core::mem::size_of::<Value>() <= 3 * core::mem::size_of::<usize>());
    }
}
