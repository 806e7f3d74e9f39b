//! `BLE`'s life cycle, `config()`, GAP and pairing, for the shim.

#[cfg(feature = "peripheral")]
use super::UbtOptBuf;
use super::{out, status, thread};
use crate::error::Status;
#[cfg(feature = "peripheral")]
use crate::error::OK;
use crate::handle::ConnHandle;
use crate::hci::transport;
#[cfg(feature = "security")]
use crate::host::security;
use crate::host::{gap, stack, state};
use crate::sys::slice;

// --- Life cycle ---------------------------------------------------------------------------------

/// True when the stack is up (also what the shim waits for after [`ubt_ble_start_begin`]).
#[no_mangle]
pub extern "C" fn ubt_ble_is_active() -> bool {
    state::is_active()
}

/// Starts the stack; the shim then waits with the scheduler running until
/// [`ubt_ble_is_active`] or the start-up timeout, and calls [`ubt_ble_start_finish`].
/// `EINVAL` (nothing to wait for, the stack is off) when the port's UART settings are invalid.
#[no_mangle]
pub extern "C" fn ubt_ble_start_begin() -> Status {
    status(stack::start_begin(thread()))
}

/// Completes start-up: `OK`, or `ETIMEDOUT` with the stack torn down.
#[no_mangle]
pub extern "C" fn ubt_ble_start_finish(synced: bool) -> Status {
    status(stack::start_finish(thread(), synced))
}

/// Begins a stop. True when the shim must wait (scheduler running) for [`ubt_ble_is_stopped`].
#[no_mangle]
pub extern "C" fn ubt_ble_stop_begin() -> bool {
    stack::stop_begin(thread())
}

/// True once a stop has completed.
#[no_mangle]
pub extern "C" fn ubt_ble_is_stopped() -> bool {
    stack::is_stopped()
}

/// Completes a stop (also after a stop wait timed out): closes the UART, forgets pending work.
#[no_mangle]
pub extern "C" fn ubt_ble_stop_finish() {
    stack::stop_finish(thread())
}

// --- config -------------------------------------------------------------------------------------

/// `config('mac')`: writes the address type and the address (most-significant byte first).
///
/// # Safety
/// `addr_type` must be writable; `addr` must be 6 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ubt_ble_config_mac(addr_type: *mut u8, addr: *mut u8) -> Status {
    // SAFETY: the caller guarantees the out-parameters are writable (6 bytes for addr).
    status(gap::mac(thread()).map(|(t, a)| unsafe {
        out(addr_type, t);
        out(addr.cast::<[u8; 6]>(), a);
    }))
}

/// `config(addr_mode=mode)`; the shim has truncated the value to u8 as the C module does.
#[no_mangle]
pub extern "C" fn ubt_ble_config_set_addr_mode(mode: u8) -> Status {
    status(gap::set_addr_mode(thread(), mode))
}

/// Longest GAP device name, for the shim's buffer.
pub const UBT_GAP_NAME_MAX: usize = 31;
const _: () = assert!(UBT_GAP_NAME_MAX == gap::GAP_NAME_MAX);

/// `config('gap_name')`: copies the name into `out` (at least [`UBT_GAP_NAME_MAX`] bytes) and
/// returns its length.
///
/// # Safety
/// `out` must be valid for writes of `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn ubt_ble_config_gap_name(out: *mut u8, cap: usize) -> usize {
    // SAFETY: the caller guarantees `cap` writable bytes at `out`.
    gap::gap_name(thread(), unsafe { crate::sys::slice_mut(out, cap) })
}

/// `config(gap_name=...)`.
///
/// # Safety
/// `name` must be valid for reads of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn ubt_ble_config_set_gap_name(name: *const u8, len: usize) -> Status {
    // SAFETY: the caller guarantees `len` readable bytes.
    status(gap::set_gap_name(thread(), unsafe { slice(name, len) }))
}

/// `config('mtu')`.
///
/// # Safety
/// `mtu` must be writable.
#[no_mangle]
pub unsafe extern "C" fn ubt_ble_config_mtu(mtu: *mut u16) -> Status {
    // SAFETY: the caller guarantees `mtu` is writable.
    status(gap::mtu(thread()).map(|v| unsafe { out(mtu, v) }))
}

/// `config('rx_dropped')`: how many packets from the controller the host refused since the
/// stack last started (no event buffer free, no mbuf, malformed, unexpected or before sync).
/// Events are otherwise delivered synchronously, so this is every event a script can miss.
#[no_mangle]
pub extern "C" fn ubt_ble_config_rx_dropped() -> u32 {
    transport::drops(thread()).total()
}

/// `config(mtu=...)`; truncated to u16 by the shim, as in the C module.
#[no_mangle]
pub extern "C" fn ubt_ble_config_set_mtu(mtu: u16) -> Status {
    status(gap::set_mtu(thread(), mtu))
}

#[cfg(feature = "security")]
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

#[cfg(feature = "security")]
/// `config(bond=|mitm=|le_secure=|io=)`: stored in NimBLE's host configuration, active or not.
#[no_mangle]
pub extern "C" fn ubt_ble_config_set_security(key: UbtSecurityKey, value: u8) {
    let setting = match key {
        UbtSecurityKey::Bond => security::Setting::Bond(value != 0),
        UbtSecurityKey::Mitm => security::Setting::Mitm(value != 0),
        UbtSecurityKey::LeSecure => security::Setting::LeSecure(value != 0),
        UbtSecurityKey::Io => security::Setting::Io(value),
    };
    security::set(thread(), setting)
}

/// The link upgrades the host asks for on each new connection
/// (`config(le_data_length=, le_2m_phy=)`, ours).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UbtLinkUpgrade {
    /// `le_data_length`
    DataLength = 0,
    /// `le_2m_phy`
    Phy2m = 1,
}

impl From<UbtLinkUpgrade> for gap::LinkUpgrade {
    fn from(key: UbtLinkUpgrade) -> Self {
        match key {
            UbtLinkUpgrade::DataLength => gap::LinkUpgrade::DataLength,
            UbtLinkUpgrade::Phy2m => gap::LinkUpgrade::Phy2m,
        }
    }
}

/// `config(le_data_length=|le_2m_phy=)`: for links made afterwards, active or not.
#[no_mangle]
pub extern "C" fn ubt_ble_config_set_link_upgrade(key: UbtLinkUpgrade, on: bool) {
    gap::set_link_upgrade(key.into(), on)
}

/// `config('le_data_length')` / `config('le_2m_phy')`.
#[no_mangle]
pub extern "C" fn ubt_ble_config_link_upgrade(key: UbtLinkUpgrade) -> bool {
    gap::link_upgrade(key.into())
}

#[cfg(feature = "security")]
/// `gap_pair(conn_handle)`.
#[no_mangle]
pub extern "C" fn ubt_ble_gap_pair(conn_handle: u16) -> Status {
    status(security::pair(thread(), ConnHandle(conn_handle)))
}

#[cfg(feature = "security")]
/// `gap_passkey(conn_handle, action, passkey)`; the shim has truncated the values as the C
/// module does (u16, u8, u32).
#[no_mangle]
pub extern "C" fn ubt_ble_gap_passkey(conn_handle: u16, action: u8, passkey: u32) -> Status {
    status(security::passkey(
        thread(),
        ConnHandle(conn_handle),
        action,
        passkey,
    ))
}

#[cfg(feature = "security")]
/// `gap_unpair()` (every bond, `addr` null) or `gap_unpair(addr_type, addr)` with `addr` most-
/// significant byte first; the shim has truncated `addr_type` to u8 as `gap_connect` does.
///
/// # Safety
/// `addr` must be null or point to 6 readable bytes.
#[no_mangle]
pub unsafe extern "C" fn ubt_ble_gap_unpair(addr_type: u8, addr: *const u8) -> Status {
    let peer = if addr.is_null() {
        None
    } else {
        // SAFETY: the caller guarantees 6 readable bytes.
        Some((addr_type, unsafe { *addr.cast::<[u8; 6]>() }))
    };
    status(security::unpair(thread(), peer))
}

// --- GAP ----------------------------------------------------------------------------------------

#[cfg(feature = "peripheral")]
/// `gap_advertise(None)`: stops advertising. Never fails.
#[no_mangle]
pub extern "C" fn ubt_ble_gap_advertise_stop() -> Status {
    gap::advertise_stop(thread());
    OK
}

#[cfg(feature = "peripheral")]
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
    status(gap::advertise_start(
        thread(),
        interval_us,
        adv,
        resp,
        connectable,
    ))
}

#[cfg(feature = "central")]
/// `gap_scan(duration_ms, interval_us, window_us, active)`.
#[no_mangle]
pub extern "C" fn ubt_ble_gap_scan_start(
    duration_ms: i64,
    interval_us: i64,
    window_us: i64,
    active: bool,
) -> Status {
    status(gap::scan_start(
        thread(),
        duration_ms,
        interval_us,
        window_us,
        active,
    ))
}

#[cfg(feature = "central")]
/// `gap_scan(None)`.
#[no_mangle]
pub extern "C" fn ubt_ble_gap_scan_stop() -> Status {
    status(gap::scan_stop(thread()))
}

#[cfg(feature = "central")]
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
    status(gap::connect(
        thread(),
        addr_type,
        addr,
        scan_duration_ms,
        min_conn_interval_us,
        max_conn_interval_us,
    ))
}

#[cfg(feature = "central")]
/// `gap_connect(None)`.
#[no_mangle]
pub extern "C" fn ubt_ble_gap_connect_cancel() -> Status {
    status(gap::connect_cancel(thread()))
}

/// `gap_update_conn(conn_handle, min_conn_interval_us, max_conn_interval_us, conn_latency,
/// supervision_timeout_ms)`; the shim passes the script's integers untruncated so that
/// out-of-range values fail with `EINVAL` instead of wrapping.
#[no_mangle]
pub extern "C" fn ubt_ble_gap_update_conn(
    conn_handle: u16,
    min_conn_interval_us: i64,
    max_conn_interval_us: i64,
    conn_latency: i64,
    supervision_timeout_ms: i64,
) -> Status {
    status(gap::update_conn(
        thread(),
        ConnHandle(conn_handle),
        min_conn_interval_us,
        max_conn_interval_us,
        conn_latency,
        supervision_timeout_ms,
    ))
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
    // SAFETY: the caller guarantees `was_connected` is writable.
    status(
        gap::disconnect(thread(), ConnHandle(conn_handle))
            .map(|found| unsafe { out(was_connected, found) }),
    )
}
