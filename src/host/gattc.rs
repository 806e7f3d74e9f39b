//! The GATT client: discovery, reads and writes on a peer's server, and the notifications and
//! indications it sends.
//!
//! Every operation starts a NimBLE GATT procedure and returns; results arrive later as events
//! (spec §6, events 9–19), raised from NimBLE's procedure callbacks. NimBLE guarantees exactly
//! one final callback per started procedure (a response, an error, the 30 s ATT timeout, or
//! `BLE_HS_ENOTCONN` when the link drops), so each operation that returned success yields
//! exactly one `*_DONE` event; one that failed synchronously yields none.
//!
//! Characteristic discovery is the one procedure with state of our own: a characteristic's
//! `end_handle` is only known once the next characteristic (or the end of the range) is seen,
//! so results are reported one behind (spec §9.1, [`ChrDiscovery`]). Like MicroPython's C
//! module, only one characteristic discovery runs at a time, across all connections; a second
//! one is refused with `EBUSY` (spec §5.6).
//!
//! Statuses in `*_DONE` events are NimBLE's codes as they are (`0x100 + ATT error`, `7` for a
//! dropped link, `13` for an ATT timeout); NimBLE's "done" (`BLE_HS_EDONE`) becomes 0.

use core::ffi::{c_int, c_void};
use core::ptr;

use nimble_sys as ns;

use super::state::{is_active, require_active};
use crate::error::{check, Error};
use crate::event::{self, Event};
use crate::handle::{AttrHandle, ConnHandle};
use crate::sys;
use crate::thread::{Global, NimbleThread};
use crate::uuid::Uuid;

/// NimBLE's "procedure complete" code, which reaches scripts as status 0.
const BLE_HS_EDONE: u16 = ns::BLE_HS_EDONE as u16;
/// NimBLE's "not connected" code: the status of procedures ended by a disconnection.
const BLE_HS_ENOTCONN: u16 = ns::BLE_HS_ENOTCONN as u16;
/// Largest ATT MTU NimBLE negotiates; any single ATT value fits in this many bytes, so the
/// copy of a received value normally lives on the stack.
const ATT_MTU_MAX: usize = 527;

// --- Service search UUIDs -----------------------------------------------------------

/// The Bluetooth base UUID `00000000-0000-1000-8000-00805f9b34fb`, little-endian; a 16- or
/// 32-bit UUID is this with its value in bytes 12..16.
const BASE_UUID_LE: [u8; 16] = [
    0xfb, 0x34, 0x9b, 0x5f, 0x80, 0x00, 0x00, 0x80, 0x00, 0x10, 0x00, 0x00, 0, 0, 0, 0,
];

/// The form in which a service UUID is looked for on the peer (ATT Find By Type Value).
///
/// ATT stores a 32-bit service UUID as its 128-bit form, and NimBLE sends a 32-bit search
/// value as 4 bytes that no server matches, so a 32-bit UUID is searched for as its 128-bit
/// form. (The C module, with its conversion bug on top, never finds a 32-bit service.) The
/// result then carries the 128-bit form, exactly as a discovery of all services reports it.
pub fn service_search_uuid(uuid: &Uuid) -> Uuid {
    match *uuid.as_bytes() {
        [b0, b1, b2, b3] => {
            let mut bytes = BASE_UUID_LE;
            bytes[12..].copy_from_slice(&[b0, b1, b2, b3]);
            Uuid { len: 16, bytes }
        }
        _ => *uuid,
    }
}

// --- Characteristic discovery: results one behind ----------------------------------------------

/// One `_IRQ_GATTC_CHARACTERISTIC_RESULT`, ready to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChrResult {
    /// Last handle belonging to the characteristic.
    pub end_handle: u16,
    /// Handle of its value.
    pub value_handle: u16,
    /// The declaration's property byte.
    pub properties: u8,
    /// Its UUID.
    pub uuid: Uuid,
}

/// A characteristic seen but not reported yet: its end is still unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    value_handle: u16,
    properties: u8,
    uuid: Uuid,
}

/// The state of the (single) characteristic discovery, free of NimBLE and Python.
///
/// NimBLE reports a characteristic's declaration and value handles but not where it ends. The
/// end is one before the next declaration, or the end of the requested range when none
/// follows, so each characteristic is held back until the next one (or completion) arrives.
/// NimBLE is asked for every characteristic in the range and the UUID filter is applied here,
/// because a characteristic that does not match still marks where the previous one ends.
#[derive(Debug, PartialEq, Eq)]
pub struct ChrDiscovery {
    /// The connection the discovery runs on.
    conn_handle: u16,
    /// The requested range's end, reported as the last characteristic's end. Zero means no
    /// discovery is running, as in the C module (NimBLE refuses a range ending at 0).
    end_handle: u16,
    /// Only characteristics with this UUID (same size and value) are reported.
    filter: Option<Uuid>,
    /// The last matching characteristic, waiting for its end.
    held: Option<Held>,
}

impl Default for ChrDiscovery {
    fn default() -> Self {
        Self::new()
    }
}

impl ChrDiscovery {
    /// No discovery running.
    pub const fn new() -> Self {
        ChrDiscovery {
            conn_handle: 0,
            end_handle: 0,
            filter: None,
            held: None,
        }
    }

    /// True while a discovery runs.
    pub fn is_busy(&self) -> bool {
        self.end_handle != 0
    }

    /// True when NimBLE's callback for `conn_handle` belongs to the running discovery.
    pub fn is_running_on(&self, conn_handle: u16) -> bool {
        self.is_busy() && self.conn_handle == conn_handle
    }

    /// Starts tracking a discovery of `[.., end_handle]` on `conn_handle`; `EBUSY` while
    /// another one runs.
    pub fn begin(
        &mut self,
        conn_handle: u16,
        end_handle: u16,
        filter: Option<Uuid>,
    ) -> Result<(), Error> {
        if self.is_busy() {
            return Err(Error::Busy);
        }
        *self = ChrDiscovery {
            conn_handle,
            end_handle,
            filter,
            held: None,
        };
        Ok(())
    }

    /// NimBLE found the characteristic declared at `def_handle`. Returns the previously held
    /// one, which ends just before this declaration.
    pub fn on_characteristic(
        &mut self,
        def_handle: u16,
        value_handle: u16,
        properties: u8,
        uuid: Uuid,
    ) -> Option<ChrResult> {
        let previous = self.held.take().map(|h| ChrResult {
            // NimBLE only reports declarations after the range start (>= 1), so this does not
            // wrap for any real peer; wrapping keeps a hostile one from panicking us.
            end_handle: def_handle.wrapping_sub(1),
            value_handle: h.value_handle,
            properties: h.properties,
            uuid: h.uuid,
        });
        if self.filter.is_none_or(|f| f == uuid) {
            self.held = Some(Held {
                value_handle,
                properties,
                uuid,
            });
        }
        previous
    }

    /// The discovery ended (completed, failed or cut off). Returns the held characteristic,
    /// which runs to the end of the requested range, and frees the discovery for the next.
    pub fn finish(&mut self) -> Option<ChrResult> {
        let end_handle = self.end_handle;
        let last = self.held.take().map(|h| ChrResult {
            end_handle,
            value_handle: h.value_handle,
            properties: h.properties,
            uuid: h.uuid,
        });
        *self = ChrDiscovery::new();
        last
    }
}

/// The running characteristic discovery. Borrowed only briefly, never across a call into
/// NimBLE or Python (a handler may start the next discovery from the DONE event).
static CHR_DISCOVERY: Global<ChrDiscovery> = Global::new(ChrDiscovery::new());

/// Forgets any characteristic discovery. For a stack (re)start: NimBLE's procedures from
/// before are gone without a callback if the old stack stopped without its links closing.
pub fn reset(t: NimbleThread) {
    let _ = CHR_DISCOVERY.with(t, |d| *d = ChrDiscovery::new());
}

// --- Events --------------------------------------------------------------------------------------

/// The status and attribute handle NimBLE reports with a callback, copied out at once:
/// NimBLE hands every procedure the same static error record, which a procedure started
/// from the Python handler would overwrite.
fn gatt_error(error: *const ns::ble_gatt_error) -> (u16, u16) {
    if error.is_null() {
        return (0, 0);
    }
    // SAFETY: NimBLE passes a valid error record for the duration of the callback.
    let e = unsafe { &*error };
    (e.status, e.att_handle)
}

/// Status of a `*_DONE` event: NimBLE's "done" is success.
fn done_status(status: u16) -> u16 {
    if status == BLE_HS_EDONE {
        0
    } else {
        status
    }
}

fn dispatch_chr_result(t: NimbleThread, conn_handle: ConnHandle, r: &ChrResult) {
    let ev = Event::GattcCharacteristicResult {
        conn_handle,
        end_handle: AttrHandle(r.end_handle),
        value_handle: AttrHandle(r.value_handle),
        properties: r.properties,
        uuid: &r.uuid,
    };
    event::dispatch(t, &ev);
}

/// The token for NimBLE's GATT client callbacks.
fn callback_thread() -> NimbleThread {
    // SAFETY: NimBLE calls its GATT client callbacks from its host, on the NimBLE thread.
    unsafe { NimbleThread::new_unchecked() }
}

/// The shape service and descriptor discovery share: while the status is 0 NimBLE passes one
/// item, which `result` reports; any other status ends the procedure with `done`'s event.
///
/// # Safety
/// `error` and `item` are what NimBLE passed to its callback: `item` is null or valid for the
/// call while the status is 0.
unsafe fn report_discovery<T>(
    conn_handle: u16,
    error: *const ns::ble_gatt_error,
    item: *const T,
    result: impl FnOnce(NimbleThread, ConnHandle, &T),
    done: impl FnOnce(ConnHandle, u16) -> Event<'static>,
) -> c_int {
    let (status, _) = gatt_error(error);
    if !is_active() {
        return 0;
    }
    let (t, conn_handle) = (callback_thread(), ConnHandle(conn_handle));
    if status != 0 {
        event::dispatch(t, &done(conn_handle, done_status(status)));
        return 0;
    }
    // SAFETY: with a zero status NimBLE passes a valid item (or null) for the call.
    if let Some(item) = unsafe { item.as_ref() } {
        result(t, conn_handle, item);
    }
    0
}

unsafe extern "C" fn on_service(
    conn_handle: u16,
    error: *const ns::ble_gatt_error,
    service: *const ns::ble_gatt_svc,
    _arg: *mut c_void,
) -> c_int {
    let result = |t, conn_handle, svc: &ns::ble_gatt_svc| {
        if let Some(uuid) = sys::uuid::from_nimble(&svc.uuid) {
            let ev = Event::GattcServiceResult {
                conn_handle,
                start_handle: AttrHandle(svc.start_handle),
                end_handle: AttrHandle(svc.end_handle),
                uuid: &uuid,
            };
            event::dispatch(t, &ev);
        }
    };
    let done = |conn_handle, status| Event::GattcServiceDone {
        conn_handle,
        status,
    };
    // SAFETY: NimBLE's own callback arguments.
    unsafe { report_discovery(conn_handle, error, service, result, done) }
}

unsafe extern "C" fn on_characteristic(
    conn_handle: u16,
    error: *const ns::ble_gatt_error,
    chr: *const ns::ble_gatt_chr,
    _arg: *mut c_void,
) -> c_int {
    let (status, _) = gatt_error(error);
    let t = callback_thread();
    // The discovery state is kept in step even while the stack stops (when nothing is
    // reported), so a restarted stack never finds a stale discovery blocking the next.
    if status == 0 {
        if chr.is_null() {
            return 0;
        }
        // SAFETY: NimBLE passes a valid characteristic with a zero status, for the call.
        let c = unsafe { &*chr };
        let Some(uuid) = sys::uuid::from_nimble(&c.uuid) else {
            return 0;
        };
        let ready = CHR_DISCOVERY
            .with(t, |d| {
                d.is_running_on(conn_handle)
                    .then(|| d.on_characteristic(c.def_handle, c.val_handle, c.properties, uuid))
                    .flatten()
            })
            .flatten();
        if let (Some(r), true) = (ready, is_active()) {
            dispatch_chr_result(t, ConnHandle(conn_handle), &r);
        }
    } else {
        // `None`: not the discovery we track (already finished by a disconnection).
        let Some(last) = CHR_DISCOVERY
            .with(t, |d| d.is_running_on(conn_handle).then(|| d.finish()))
            .flatten()
        else {
            return 0;
        };
        if is_active() {
            finish_chr_discovery(t, ConnHandle(conn_handle), last, done_status(status));
        }
    }
    0
}

/// Reports a finished characteristic discovery: the result still held back, then DONE.
fn finish_chr_discovery(
    t: NimbleThread,
    conn_handle: ConnHandle,
    last: Option<ChrResult>,
    status: u16,
) {
    if let Some(r) = last {
        dispatch_chr_result(t, conn_handle, &r);
    }
    event::dispatch(
        t,
        &Event::GattcCharacteristicDone {
            conn_handle,
            status,
        },
    );
}

unsafe extern "C" fn on_descriptor(
    conn_handle: u16,
    error: *const ns::ble_gatt_error,
    _chr_val_handle: u16,
    dsc: *const ns::ble_gatt_dsc,
    _arg: *mut c_void,
) -> c_int {
    let result = |t, conn_handle, d: &ns::ble_gatt_dsc| {
        if let Some(uuid) = sys::uuid::from_nimble(&d.uuid) {
            let ev = Event::GattcDescriptorResult {
                conn_handle,
                dsc_handle: AttrHandle(d.handle),
                uuid: &uuid,
            };
            event::dispatch(t, &ev);
        }
    };
    let done = |conn_handle, status| Event::GattcDescriptorDone {
        conn_handle,
        status,
    };
    // SAFETY: NimBLE's own callback arguments.
    unsafe { report_discovery(conn_handle, error, dsc, result, done) }
}

/// The handle a READ_DONE/WRITE_DONE reports: the attribute's when NimBLE gives one, else
/// the handle from the ATT error response (0 when the failure was not an ATT error).
fn reported_handle(attr: *const ns::ble_gatt_attr, error: *const ns::ble_gatt_error) -> AttrHandle {
    AttrHandle(if !attr.is_null() {
        // SAFETY: NimBLE passes a valid attribute for the duration of the callback.
        unsafe { (*attr).handle }
    } else if !error.is_null() {
        gatt_error(error).1
    } else {
        0xffff
    })
}

unsafe extern "C" fn on_read(
    conn_handle: u16,
    error: *const ns::ble_gatt_error,
    attr: *mut ns::ble_gatt_attr,
    _arg: *mut c_void,
) -> c_int {
    let (status, _) = gatt_error(error);
    let value_handle = reported_handle(attr, error);
    if !is_active() {
        return 0;
    }
    let (t, conn_handle) = (callback_thread(), ConnHandle(conn_handle));
    if status == 0 && !attr.is_null() {
        // SAFETY: NimBLE passes a valid attribute whose `om` holds the value; NimBLE frees
        // it after we return, so it is only read here.
        let om = unsafe { (*attr).om };
        // SAFETY: `om` is NimBLE's valid chain (or null) for the duration of the callback.
        unsafe {
            sys::mbuf::with_data::<ATT_MTU_MAX, _>(om, |char_data| {
                let ev = Event::GattcReadResult {
                    conn_handle,
                    value_handle,
                    char_data,
                };
                event::dispatch(t, &ev);
            })
        };
    }
    let ev = Event::GattcReadDone {
        conn_handle,
        value_handle,
        status,
    };
    event::dispatch(t, &ev);
    0
}

unsafe extern "C" fn on_write(
    conn_handle: u16,
    error: *const ns::ble_gatt_error,
    attr: *mut ns::ble_gatt_attr,
    _arg: *mut c_void,
) -> c_int {
    let (status, _) = gatt_error(error);
    let value_handle = reported_handle(attr, error);
    if is_active() {
        let ev = Event::GattcWriteDone {
            conn_handle: ConnHandle(conn_handle),
            value_handle,
            status,
        };
        event::dispatch(callback_thread(), &ev);
    }
    0
}

/// A connection went away: finish any client procedure still pending on it.
///
/// NimBLE fails every procedure of a broken link with `BLE_HS_ENOTCONN` before it reports the
/// disconnection, so each pending read, write and discovery has had its DONE by now. This only
/// catches a characteristic discovery NimBLE did not report (it should not happen), so that it
/// neither blocks the next discovery nor goes without its DONE.
pub fn on_disconnect(t: NimbleThread, conn_handle: ConnHandle) {
    let Some(last) = CHR_DISCOVERY
        .with(t, |d| d.is_running_on(conn_handle.0).then(|| d.finish()))
        .flatten()
    else {
        return;
    };
    finish_chr_discovery(t, conn_handle, last, BLE_HS_ENOTCONN);
}

/// A notification or indication arrived (`BLE_GAP_EVENT_NOTIFY_RX`). NimBLE frees `om` after
/// the callback returns (and sends an indication's confirmation after that).
///
/// # Safety
/// `om` must be the event's own mbuf chain (or null), alive for the call.
pub unsafe fn on_notify_rx(
    t: NimbleThread,
    conn_handle: ConnHandle,
    value_handle: AttrHandle,
    indication: bool,
    om: *mut ns::os_mbuf,
) {
    // SAFETY: the caller guarantees a valid chain (or null) for the call.
    unsafe {
        sys::mbuf::with_data::<ATT_MTU_MAX, _>(om, |notify_data| {
            let ev = if indication {
                Event::GattcIndicate {
                    conn_handle,
                    value_handle,
                    notify_data,
                }
            } else {
                Event::GattcNotify {
                    conn_handle,
                    value_handle,
                    notify_data,
                }
            };
            event::dispatch(t, &ev);
        })
    };
}

// --- Operations ------------------------------------------------------------------------------------

/// `gattc_discover_services(conn, uuid=None)`: all primary services, or those with `uuid`.
pub fn discover_services(
    _t: NimbleThread,
    conn_handle: ConnHandle,
    uuid: Option<&Uuid>,
) -> Result<(), Error> {
    require_active()?;
    match uuid {
        Some(u) => {
            let any = sys::uuid::to_nimble(&service_search_uuid(u)).ok_or(Error::InvalidArg)?;
            // SAFETY: NimBLE copies the UUID before returning; the callback is a plain fn.
            check(unsafe {
                ns::ble_gattc_disc_svc_by_uuid(
                    conn_handle.0,
                    &any.u,
                    Some(on_service),
                    ptr::null_mut(),
                )
            })
        }
        // SAFETY: plain NimBLE call on the NimBLE thread; the callback is a plain fn.
        None => check(unsafe {
            ns::ble_gattc_disc_all_svcs(conn_handle.0, Some(on_service), ptr::null_mut())
        }),
    }
}

/// Forgets a discovery whose connection no longer exists. NimBLE ends a link's procedures
/// (calling back) before it forgets the link, so such a discovery can only be left over from
/// a stack that stopped without its links closing; it must not refuse new ones with `EBUSY`.
fn drop_stale_discovery(t: NimbleThread) {
    let Some(Some(conn_handle)) = CHR_DISCOVERY.with(t, |d| d.is_busy().then_some(d.conn_handle))
    else {
        return;
    };
    if sys::addr::conn_desc(t, ConnHandle(conn_handle)).is_none() {
        reset(t);
    }
}

/// `gattc_discover_characteristics(conn, start, end, uuid=None)`.
pub fn discover_characteristics(
    t: NimbleThread,
    conn_handle: ConnHandle,
    start_handle: AttrHandle,
    end_handle: AttrHandle,
    uuid: Option<&Uuid>,
) -> Result<(), Error> {
    require_active()?;
    drop_stale_discovery(t);
    CHR_DISCOVERY
        .with(t, |d| d.begin(conn_handle.0, end_handle.0, uuid.copied()))
        .unwrap_or(Err(Error::Busy))?;
    // The state is set first so that no callback, however early, finds it missing; it is
    // undone if NimBLE refuses the procedure (then no callback ever comes).
    // SAFETY: plain NimBLE call on the NimBLE thread; the callback is a plain fn.
    let rc = unsafe {
        ns::ble_gattc_disc_all_chrs(
            conn_handle.0,
            start_handle.0,
            end_handle.0,
            Some(on_characteristic),
            ptr::null_mut(),
        )
    };
    if rc != 0 {
        let _ = CHR_DISCOVERY.with(t, |d| d.finish());
    }
    check(rc)
}

/// `gattc_discover_descriptors(conn, start, end)`. NimBLE starts after `start`.
pub fn discover_descriptors(
    _t: NimbleThread,
    conn_handle: ConnHandle,
    start_handle: AttrHandle,
    end_handle: AttrHandle,
) -> Result<(), Error> {
    require_active()?;
    // SAFETY: plain NimBLE call on the NimBLE thread; the callback is a plain fn.
    check(unsafe {
        ns::ble_gattc_disc_all_dscs(
            conn_handle.0,
            start_handle.0,
            end_handle.0,
            Some(on_descriptor),
            ptr::null_mut(),
        )
    })
}

/// `gattc_read(conn, handle)`: a single ATT Read Request.
pub fn read(_t: NimbleThread, conn_handle: ConnHandle, handle: AttrHandle) -> Result<(), Error> {
    require_active()?;
    // SAFETY: plain NimBLE call on the NimBLE thread; the callback is a plain fn.
    check(unsafe { ns::ble_gattc_read(conn_handle.0, handle.0, Some(on_read), ptr::null_mut()) })
}

/// `gattc_write(..., mode=0)`: Write Command, no event.
const WRITE_NO_RESPONSE: u32 = 0;
/// `gattc_write(..., mode=1)`: Write Request, then `_IRQ_GATTC_WRITE_DONE`.
const WRITE_WITH_RESPONSE: u32 = 1;

/// `gattc_write(conn, handle, data, mode)`.
///
/// Both modes send one ATT PDU (no long write), so NimBLE cuts the data to ATT_MTU − 3. The
/// length is passed as NimBLE's u16, truncating as the C module does for buffers of 64 KiB and
/// more.
pub fn write(
    _t: NimbleThread,
    conn_handle: ConnHandle,
    handle: AttrHandle,
    data: &[u8],
    mode: u32,
) -> Result<(), Error> {
    require_active()?;
    let len = data.len() as u16;
    let (conn, attr) = (conn_handle.0, handle.0);
    let rc = match mode {
        // SAFETY: NimBLE copies `len` bytes of `data` into an mbuf before returning.
        WRITE_NO_RESPONSE => unsafe {
            ns::ble_gattc_write_no_rsp_flat(conn, attr, data.as_ptr().cast(), len)
        },
        // SAFETY: as above; the callback is a plain fn.
        WRITE_WITH_RESPONSE => unsafe {
            ns::ble_gattc_write_flat(
                conn,
                attr,
                data.as_ptr().cast(),
                len,
                Some(on_write),
                ptr::null_mut(),
            )
        },
        _ => return Err(Error::InvalidArg),
    };
    check(rc)
}

/// `gattc_exchange_mtu(conn)`. No active check, as in the C module: NimBLE answers by itself
/// (`ENOMEM` before the first activation, `ENOTCONN` once stopped). The result is the
/// `_IRQ_MTU_EXCHANGED` raised from the GAP MTU event.
pub fn exchange_mtu(_t: NimbleThread, conn_handle: ConnHandle) -> Result<(), Error> {
    // SAFETY: NimBLE's statics are zeroed before the first start (the proc pool is then empty
    // and the call fails cleanly) and stay initialised afterwards; no callback is passed.
    check(unsafe { ns::ble_gattc_exchange_mtu(conn_handle.0, None, ptr::null_mut()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::uuid::{from_nimble as uuid_from_nimble, to_nimble as uuid_to_nimble};

    fn u16uuid(v: u16) -> Uuid {
        Uuid::from_u16(v)
    }

    fn u128uuid(s: &str) -> Uuid {
        Uuid::from_buffer(s.as_bytes()).unwrap()
    }

    #[test]
    fn nimble_uuids_keep_size_and_value() {
        let mut any = ns::ble_uuid_any_t::default();
        any.u16_ = ns::ble_uuid16_t {
            u: ns::ble_uuid_t {
                type_: ns::BLE_UUID_TYPE_16 as u8,
            },
            value: 0x180d,
        };
        assert_eq!(uuid_from_nimble(&any), Some(u16uuid(0x180d)));

        any.u32_ = ns::ble_uuid32_t {
            u: ns::ble_uuid_t {
                type_: ns::BLE_UUID_TYPE_32 as u8,
            },
            value: 0x1234_5678,
        };
        let u = uuid_from_nimble(&any).unwrap();
        assert_eq!(u.as_bytes(), &[0x78, 0x56, 0x34, 0x12]);

        let text = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";
        let want = u128uuid(text);
        let mut raw = [0u8; 16];
        raw.copy_from_slice(want.as_bytes());
        any.u128_ = ns::ble_uuid128_t {
            u: ns::ble_uuid_t {
                type_: ns::BLE_UUID_TYPE_128 as u8,
            },
            value: raw,
        };
        assert_eq!(uuid_from_nimble(&any), Some(want));

        any.u = ns::ble_uuid_t { type_: 7 };
        assert_eq!(uuid_from_nimble(&any), None);
    }

    #[test]
    fn uuids_round_trip_through_nimble() {
        for u in [
            u16uuid(0x2902),
            Uuid::from_buffer(&[1, 2, 3, 4]).unwrap(),
            u128uuid("12345678-1234-5678-1234-56789abcdef0"),
        ] {
            let any = uuid_to_nimble(&u).unwrap();
            assert_eq!(uuid_from_nimble(&any), Some(u));
        }
    }

    #[test]
    fn thirty_two_bit_uuid_keeps_all_its_bytes() {
        // The C module's conversion would give 0x02020201 here.
        let any = uuid_to_nimble(&Uuid::from_buffer(&[1, 2, 3, 4]).unwrap()).unwrap();
        // SAFETY: uuid_to_nimble wrote the 32-bit member for a 4-byte UUID.
        let (kind, value) = unsafe { (any.u.type_, any.u32_.value) };
        assert_eq!(u32::from(kind), ns::BLE_UUID_TYPE_32);
        assert_eq!(value, 0x0403_0201);
    }

    #[test]
    fn services_are_searched_for_in_their_att_form() {
        let short = u16uuid(0x180d);
        assert_eq!(service_search_uuid(&short), short);
        let long = u128uuid("6e400001-b5a3-f393-e0a9-e50e24dcca9e");
        assert_eq!(service_search_uuid(&long), long);
        let u32 = Uuid::from_buffer(&[0x78, 0x56, 0x34, 0x12]).unwrap();
        assert_eq!(
            service_search_uuid(&u32),
            u128uuid("12345678-0000-1000-8000-00805f9b34fb")
        );
    }

    fn result(end: u16, value: u16, props: u8, uuid: Uuid) -> Option<ChrResult> {
        Some(ChrResult {
            end_handle: end,
            value_handle: value,
            properties: props,
            uuid,
        })
    }

    #[test]
    fn results_lag_by_one_and_end_before_the_next_declaration() {
        let mut d = ChrDiscovery::new();
        d.begin(0, 0xffff, None).unwrap();
        let (a, b, c) = (u16uuid(0x2a00), u16uuid(0x2a01), u16uuid(0x2a05));
        assert_eq!(d.on_characteristic(2, 3, 0x02, a), None);
        assert_eq!(d.on_characteristic(4, 5, 0x02, b), result(3, 3, 0x02, a));
        assert_eq!(d.on_characteristic(7, 8, 0x20, c), result(6, 5, 0x02, b));
        // The last one runs to the end as requested, not to the service's real end.
        assert_eq!(d.finish(), result(0xffff, 8, 0x20, c));
        assert!(!d.is_busy());
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn filter_skips_results_but_not_their_boundaries() {
        let mut d = ChrDiscovery::new();
        let want = u128uuid("6e400003-b5a3-f393-e0a9-e50e24dcca9e");
        let other = u128uuid("6e400002-b5a3-f393-e0a9-e50e24dcca9e");
        d.begin(1, 40, Some(want)).unwrap();
        assert_eq!(d.on_characteristic(20, 21, 0x12, want), None);
        // A non-matching characteristic ends the held one and is not held itself.
        assert_eq!(
            d.on_characteristic(23, 24, 0x08, other),
            result(22, 21, 0x12, want)
        );
        assert_eq!(d.on_characteristic(25, 26, 0x08, u16uuid(0x2a37)), None);
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn filter_compares_size_and_bytes() {
        // The 16-bit UUID and its 128-bit Bluetooth-base form are different UUIDs.
        let mut d = ChrDiscovery::new();
        d.begin(0, 30, Some(u16uuid(0x2a37))).unwrap();
        let long = u128uuid("00002a37-0000-1000-8000-00805f9b34fb");
        assert_eq!(d.on_characteristic(10, 11, 0x10, long), None);
        assert_eq!(d.finish(), None);

        d.begin(0, 30, Some(u16uuid(0x2a37))).unwrap();
        assert_eq!(d.on_characteristic(10, 11, 0x10, u16uuid(0x2a37)), None);
        assert_eq!(d.finish(), result(30, 11, 0x10, u16uuid(0x2a37)));
    }

    #[test]
    fn one_discovery_at_a_time_across_connections() {
        let mut d = ChrDiscovery::new();
        d.begin(0, 10, None).unwrap();
        assert_eq!(d.begin(0, 10, None), Err(Error::Busy));
        assert_eq!(d.begin(1, 10, None), Err(Error::Busy));
        assert!(d.is_running_on(0));
        assert!(!d.is_running_on(1));
        d.finish();
        assert!(!d.is_running_on(0));
        d.begin(1, 10, None).unwrap();
        assert!(d.is_running_on(1));
    }

    #[test]
    fn a_new_discovery_starts_clean() {
        let mut d = ChrDiscovery::new();
        d.begin(0, 10, Some(u16uuid(1))).unwrap();
        d.on_characteristic(2, 3, 2, u16uuid(1));
        d.finish();
        d.begin(0, 20, None).unwrap();
        assert_eq!(d.on_characteristic(5, 6, 8, u16uuid(2)), None);
        assert_eq!(d.finish(), result(20, 6, 8, u16uuid(2)));
    }

    #[test]
    fn done_status_maps_only_edone() {
        assert_eq!(done_status(0), 0);
        assert_eq!(done_status(BLE_HS_EDONE), 0);
        assert_eq!(done_status(BLE_HS_ENOTCONN), 7);
        assert_eq!(done_status(0x10a), 0x10a);
    }
}
