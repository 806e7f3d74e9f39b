//! The only surface the C shim calls: plain C types in, a [`Status`] out.
//!
//! Every function here returns normally; none raises, longjmps or panics across the boundary
//! (design rule 1). The shim turns a non-zero [`Status`] into a Python exception after the
//! call has returned. Pointers the shim passes are valid for the duration of the call only.

use core::slice;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::ble;
use crate::error::{PyError, Status, OK};
use crate::port;
use crate::uuid::Uuid;

/// Set while a poll is queued on MicroPython's scheduler, so the reader thread queues one at
/// most.
static POLL_PENDING: AtomicBool = AtomicBool::new(false);

/// Asks for one run of [`ubt_poll`] from MicroPython's scheduler. Callable from any thread.
/// Returns true when this call queued a new poll (false: one was already pending, or the
/// queue was full), so the Unix UART thread wakes the VM thread once per queued poll.
pub fn request_poll() -> bool {
    if POLL_PENDING.swap(true, Ordering::AcqRel) {
        return false;
    }
    if !port::schedule_poll() {
        // The scheduler queue was full: let the next request try again.
        POLL_PENDING.store(false, Ordering::Release);
        return false;
    }
    true
}

/// Whether a queued poll has not started running yet.
#[cfg_attr(any(not(feature = "unix"), test, feature = "sim"), allow(dead_code))]
pub fn poll_pending() -> bool {
    POLL_PENDING.load(Ordering::Acquire)
}

/// Builds a byte slice from a pointer the shim got from the buffer protocol.
///
/// # Safety
/// `ptr` must be valid for reads of `len` bytes, or `len` must be 0.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 || ptr.is_null() {
        &[]
    } else {
        // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
        unsafe { slice::from_raw_parts(ptr, len) }
    }
}

fn status(r: Result<(), Status>) -> Status {
    match r {
        Ok(()) => OK,
        Err(st) => st,
    }
}

// --- Scheduler entry ----------------------------------------------------------------------------

/// Runs from MicroPython's scheduler: fires due timers and feeds received bytes to NimBLE.
#[no_mangle]
pub extern "C" fn ubt_poll() {
    POLL_PENDING.store(false, Ordering::Release);
    ble::poll();
}

/// For ports without a UART thread (bare metal), called from MicroPython's event hook: asks
/// for a poll when the HCI UART has bytes waiting or one of NimBLE's timers is due.
#[no_mangle]
pub extern "C" fn ubt_port_event(rx_waiting: bool) {
    if rx_waiting || crate::npl::callout_due(port::ticks_ms()) {
        request_poll();
    }
}

/// For bare-metal ports, after a soft reset has wiped MicroPython's GC heap (where their heap
/// blocks live) and the stack was stopped: forgets every heap block without freeing it, and
/// any poll the reset scheduler will never run.
#[no_mangle]
pub extern "C" fn ubt_port_heap_lost() {
    crate::gatts::forget_heap();
    crate::l2cap::forget_heap();
    POLL_PENDING.store(false, Ordering::Release);
}

// --- UUID ---------------------------------------------------------------------------------------

/// `UUID(int)`.
///
/// # Safety
/// `out` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn ubt_uuid_from_int(value: i64, out: *mut Uuid) -> Status {
    match Uuid::from_int(value) {
        Ok(u) => {
            // SAFETY: the caller guarantees `out` is writable.
            unsafe { out.write(u) };
            OK
        }
        Err(e) => PyError::from(e).into(),
    }
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
    let data = unsafe { bytes(buf, len) };
    match Uuid::from_buffer(data) {
        Ok(u) => {
            // SAFETY: the caller guarantees `out` is writable.
            unsafe { out.write(u) };
            OK
        }
        Err(e) => PyError::from(e).into(),
    }
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

// --- BLE life cycle -----------------------------------------------------------------------------

/// True when the stack is up.
#[no_mangle]
pub extern "C" fn ubt_ble_is_active() -> bool {
    ble::is_active()
}

/// Starts the stack; the shim then waits with the scheduler running until
/// [`ubt_ble_is_synced`] or the start-up timeout, and calls [`ubt_ble_start_finish`].
#[no_mangle]
pub extern "C" fn ubt_ble_start_begin() -> Status {
    ble::start_begin()
}

/// True once the host has synced with the controller.
#[no_mangle]
pub extern "C" fn ubt_ble_is_synced() -> bool {
    ble::is_synced()
}

/// Completes start-up: `OK`, or `ETIMEDOUT` with the stack torn down.
#[no_mangle]
pub extern "C" fn ubt_ble_start_finish(synced: bool) -> Status {
    ble::start_finish(synced)
}

/// Begins a stop. True when the shim must wait (scheduler running) for [`ubt_ble_is_stopped`].
#[no_mangle]
pub extern "C" fn ubt_ble_stop_begin() -> bool {
    ble::stop_begin()
}

/// True once a stop has completed.
#[no_mangle]
pub extern "C" fn ubt_ble_is_stopped() -> bool {
    ble::is_stopped()
}

/// Completes a stop (also after a stop wait timed out): closes the UART, forgets pending work.
#[no_mangle]
pub extern "C" fn ubt_ble_stop_finish() {
    ble::stop_finish()
}

// --- config -------------------------------------------------------------------------------------

/// `config('mac')`: writes the address type and the address (most-significant byte first).
///
/// # Safety
/// `addr_type` must be writable; `addr` must be 6 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ubt_ble_config_mac(addr_type: *mut u8, addr: *mut u8) -> Status {
    match ble::mac() {
        Ok((t, a)) => {
            // SAFETY: the caller guarantees the out-parameters are writable (6 bytes for addr).
            unsafe {
                addr_type.write(t);
                core::ptr::copy_nonoverlapping(a.as_ptr(), addr, a.len());
            }
            OK
        }
        Err(st) => st,
    }
}

/// `config(addr_mode=mode)`; the shim has truncated the value to u8 as the C module does.
#[no_mangle]
pub extern "C" fn ubt_ble_config_set_addr_mode(mode: u8) -> Status {
    status(ble::set_addr_mode(mode))
}

/// Longest GAP device name, for the shim's buffer.
pub const UBT_GAP_NAME_MAX: usize = 31;
const _: () = assert!(UBT_GAP_NAME_MAX == ble::GAP_NAME_MAX);

/// `config('gap_name')`: copies the name into `out` (at least [`UBT_GAP_NAME_MAX`] bytes) and
/// returns its length.
///
/// # Safety
/// `out` must be valid for writes of `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn ubt_ble_config_gap_name(out: *mut u8, cap: usize) -> usize {
    if out.is_null() {
        return 0;
    }
    // SAFETY: the caller guarantees `cap` writable bytes at `out`.
    let out = unsafe { slice::from_raw_parts_mut(out, cap) };
    ble::gap_name(out)
}

/// `config(gap_name=...)`.
///
/// # Safety
/// `name` must be valid for reads of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn ubt_ble_config_set_gap_name(name: *const u8, len: usize) -> Status {
    // SAFETY: the caller guarantees `len` readable bytes.
    status(ble::set_gap_name(unsafe { bytes(name, len) }))
}

/// `config('mtu')`.
///
/// # Safety
/// `mtu` must be writable.
#[no_mangle]
pub unsafe extern "C" fn ubt_ble_config_mtu(mtu: *mut u16) -> Status {
    match ble::mtu() {
        Ok(v) => {
            // SAFETY: the caller guarantees `mtu` is writable.
            unsafe { mtu.write(v) };
            OK
        }
        Err(st) => st,
    }
}

/// `config('rx_dropped')`: how many packets from the controller the host refused since the
/// stack last started (no event buffer free, no mbuf, malformed, unexpected or before sync).
/// Events are otherwise delivered synchronously, so this is every event a script can miss.
#[no_mangle]
pub extern "C" fn ubt_ble_config_rx_dropped() -> u32 {
    crate::hci::transport::drops().total()
}

/// `config(mtu=...)`; truncated to u16 by the shim, as in the C module.
#[no_mangle]
pub extern "C" fn ubt_ble_config_set_mtu(mtu: u16) -> Status {
    status(ble::set_mtu(mtu))
}

/// Security settings (`config(bond=, mitm=, le_secure=, io=)`), which persist across restarts.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UbtSecurityKey {
    /// `bond`
    Bond = 0,
    /// `mitm`
    Mitm = 1,
    /// `le_secure`
    LeSecure = 2,
    /// `io`
    Io = 3,
}

/// `config(bond=|mitm=|le_secure=|io=)`: stored in NimBLE's host configuration, active or not.
#[no_mangle]
pub extern "C" fn ubt_ble_config_set_security(key: UbtSecurityKey, value: u8) {
    crate::security::set(key, value)
}

/// `gap_pair(conn_handle)`.
#[no_mangle]
pub extern "C" fn ubt_ble_gap_pair(conn_handle: u16) -> Status {
    status(crate::security::pair(conn_handle))
}

/// `gap_passkey(conn_handle, action, passkey)`; the shim has truncated the values as the C
/// module does (u16, u8, u32).
#[no_mangle]
pub extern "C" fn ubt_ble_gap_passkey(conn_handle: u16, action: u8, passkey: u32) -> Status {
    status(crate::security::passkey(conn_handle, action, passkey))
}

// --- GAP ----------------------------------------------------------------------------------------

/// `gap_advertise(None)`: stops advertising. Never fails.
#[no_mangle]
pub extern "C" fn ubt_ble_gap_advertise_stop() -> Status {
    status(ble::advertise_stop())
}

/// An optional buffer argument: `present` false means Python `None`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UbtOptBuf {
    /// The buffer's bytes (may be null when `len` is 0).
    pub ptr: *const u8,
    /// Its length.
    pub len: usize,
    /// False for `None`.
    pub present: bool,
}

impl UbtOptBuf {
    /// # Safety
    /// `ptr` must be valid for reads of `len` bytes when `present`.
    unsafe fn get<'a>(self) -> Option<&'a [u8]> {
        // SAFETY: guaranteed by the caller.
        self.present.then(|| unsafe { bytes(self.ptr, self.len) })
    }
}

/// `gap_advertise(interval_us, adv_data, resp_data=, connectable=)` with a non-None interval.
///
/// # Safety
/// Present buffers must be valid for reads of their length.
#[no_mangle]
pub unsafe extern "C" fn ubt_ble_gap_advertise_start(
    interval_us: i64,
    adv_data: UbtOptBuf,
    resp_data: UbtOptBuf,
    connectable: bool,
) -> Status {
    // SAFETY: the caller guarantees the buffers.
    let (adv, resp) = unsafe { (adv_data.get(), resp_data.get()) };
    status(ble::advertise_start(interval_us, adv, resp, connectable))
}

/// `gap_scan(duration_ms, interval_us, window_us, active)`.
#[no_mangle]
pub extern "C" fn ubt_ble_gap_scan_start(
    duration_ms: i64,
    interval_us: i64,
    window_us: i64,
    active: bool,
) -> Status {
    status(ble::scan_start(duration_ms, interval_us, window_us, active))
}

/// `gap_scan(None)`.
#[no_mangle]
pub extern "C" fn ubt_ble_gap_scan_stop() -> Status {
    status(ble::scan_stop())
}

/// `gap_connect(addr_type, addr, scan_duration_ms, min_conn_interval_us, max_conn_interval_us)`.
///
/// # Safety
/// `addr` must point to 6 readable bytes (most-significant first).
#[no_mangle]
pub unsafe extern "C" fn ubt_ble_gap_connect(
    addr_type: u8,
    addr: *const u8,
    scan_duration_ms: i32,
    min_conn_interval_us: i32,
    max_conn_interval_us: i32,
) -> Status {
    // SAFETY: the caller guarantees 6 readable bytes.
    let addr = unsafe { &*addr.cast::<[u8; 6]>() };
    status(ble::connect(
        addr_type,
        addr,
        scan_duration_ms,
        min_conn_interval_us,
        max_conn_interval_us,
    ))
}

/// `gap_connect(None)`.
#[no_mangle]
pub extern "C" fn ubt_ble_gap_connect_cancel() -> Status {
    status(ble::connect_cancel())
}

/// `gap_disconnect(conn_handle)`: writes whether the handle was connected.
///
/// # Safety
/// `was_connected` must be writable.
#[no_mangle]
pub unsafe extern "C" fn ubt_ble_gap_disconnect(
    conn_handle: u16,
    was_connected: *mut bool,
) -> Status {
    match ble::disconnect(conn_handle) {
        Ok(found) => {
            // SAFETY: the caller guarantees `was_connected` is writable.
            unsafe { was_connected.write(found) };
            OK
        }
        Err(st) => st,
    }
}

// --- GATT and L2CAP ---------------------------------------------------------------------------

// Their entry points live with the modules; re-exported so every function the shim calls is
// reachable as `ffi::ubt_*`.
pub use crate::gattc::{
    ubt_gattc_discover_characteristics, ubt_gattc_discover_descriptors,
    ubt_gattc_discover_services, ubt_gattc_exchange_mtu, ubt_gattc_read, ubt_gattc_write,
};
pub use crate::gatts::{
    ubt_gatts_notify, ubt_gatts_read, ubt_gatts_register, ubt_gatts_register_begin,
    ubt_gatts_set_buffer, ubt_gatts_write,
};
pub use crate::l2cap::{
    ubt_l2cap_clamp_mtu, ubt_l2cap_connect, ubt_l2cap_disconnect, ubt_l2cap_listen,
    ubt_l2cap_recvinto, ubt_l2cap_send,
};
