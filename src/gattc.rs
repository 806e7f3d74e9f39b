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
use core::{ptr, slice};

use alloc::vec::Vec;
use nimble_sys as ns;

use crate::ble;
use crate::error::{check, errno, Status, OK};
use crate::events::{self, IrqArg};
use crate::global::Global;
use crate::uuid::Uuid;

/// NimBLE's "procedure complete" code, which reaches scripts as status 0.
const BLE_HS_EDONE: u16 = ns::BLE_HS_EDONE as u16;
/// NimBLE's "not connected" code: the status of procedures ended by a disconnection.
const BLE_HS_ENOTCONN: u16 = ns::BLE_HS_ENOTCONN as u16;
/// Largest ATT MTU NimBLE negotiates; any single ATT value fits in this many bytes, so the
/// copy of a received value normally lives on the stack.
const ATT_MTU_MAX: usize = 527;

// --- UUIDs between NimBLE and Python -----------------------------------------------------------

/// Converts a UUID NimBLE reports (service, characteristic, descriptor) into ours.
///
/// All three sizes keep their size and value (little-endian). MicroPython's C module converts
/// the same way in this direction; `None` only for a type tag NimBLE never produces.
pub fn uuid_from_nimble(any: &ns::ble_uuid_any_t) -> Option<Uuid> {
    // SAFETY: every member of the union starts with the `ble_uuid_t` tag (all are repr(C)),
    // so the tag can always be read; the member read below is the one the tag names.
    let kind = unsafe { any.u.type_ } as u32;
    match kind {
        ns::BLE_UUID_TYPE_16 => {
            // SAFETY: the tag says this is a 16-bit UUID.
            let v = unsafe { any.u16_.value };
            Uuid::from_buffer(&v.to_le_bytes()).ok()
        }
        ns::BLE_UUID_TYPE_32 => {
            // SAFETY: the tag says this is a 32-bit UUID.
            let v = unsafe { any.u32_.value };
            Uuid::from_buffer(&v.to_le_bytes()).ok()
        }
        ns::BLE_UUID_TYPE_128 => {
            // SAFETY: the tag says this is a 128-bit UUID.
            let v = unsafe { any.u128_.value };
            Uuid::from_buffer(&v).ok()
        }
        _ => None,
    }
}

/// Converts one of our UUIDs into NimBLE's form, size for size.
///
/// A 32-bit UUID keeps all four of its bytes. (MicroPython v1.25's C module builds the 32-bit
/// value from the wrong bytes; the spec does not list that as behaviour to keep.)
pub fn uuid_to_nimble(uuid: &Uuid) -> Option<ns::ble_uuid_any_t> {
    let b = uuid.as_bytes();
    let mut any = ns::ble_uuid_any_t::default();
    match *b {
        [b0, b1] => {
            any.u16_ = ns::ble_uuid16_t {
                u: ns::ble_uuid_t {
                    type_: ns::BLE_UUID_TYPE_16 as u8,
                },
                value: u16::from_le_bytes([b0, b1]),
            };
        }
        [b0, b1, b2, b3] => {
            any.u32_ = ns::ble_uuid32_t {
                u: ns::ble_uuid_t {
                    type_: ns::BLE_UUID_TYPE_32 as u8,
                },
                value: u32::from_le_bytes([b0, b1, b2, b3]),
            };
        }
        _ => {
            let value: [u8; 16] = b.try_into().ok()?;
            any.u128_ = ns::ble_uuid128_t {
                u: ns::ble_uuid_t {
                    type_: ns::BLE_UUID_TYPE_128 as u8,
                },
                value,
            };
        }
    }
    Some(any)
}

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
    ) -> Result<(), Status> {
        if self.is_busy() {
            return Err(errno::EBUSY);
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
pub fn reset() {
    let _ = CHR_DISCOVERY.with(|d| *d = ChrDiscovery::new());
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

fn dispatch_done(event: u16, conn_handle: u16, status: u16) {
    events::dispatch(
        event,
        &[IrqArg::int(conn_handle.into()), IrqArg::int(status.into())],
    );
}

fn dispatch_chr_result(conn_handle: u16, r: &ChrResult) {
    events::dispatch(
        events::IRQ_GATTC_CHARACTERISTIC_RESULT,
        &[
            IrqArg::int(conn_handle.into()),
            IrqArg::int(r.end_handle.into()),
            IrqArg::int(r.value_handle.into()),
            IrqArg::int(r.properties.into()),
            IrqArg::uuid(&r.uuid),
        ],
    );
}

/// Runs `f` over the bytes of an mbuf chain, joined into one slice.
///
/// # Safety
/// `om` must be null or a valid mbuf chain that stays alive for the call.
unsafe fn with_mbuf_data<R>(om: *const ns::os_mbuf, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    let mut len: usize = 0;
    let mut m = om;
    while !m.is_null() {
        // SAFETY: `m` is a link of the valid chain.
        let link = unsafe { &*m };
        len += usize::from(link.om_len);
        m = link.om_next.sle_next;
    }
    let copy = |dst: &mut [u8]| -> bool {
        if dst.is_empty() {
            return true;
        }
        // SAFETY: `om` is a valid chain of `len == dst.len()` bytes; `dst` is writable.
        let rc =
            unsafe { ns::os_mbuf_copydata(om, 0, dst.len() as c_int, dst.as_mut_ptr().cast()) };
        rc == 0
    };
    if len <= ATT_MTU_MAX {
        let mut buf = [0u8; ATT_MTU_MAX];
        let data = &mut buf[..len];
        copy(data).then(|| f(data))
    } else {
        // Longer than any ATT value we negotiate; tolerated, on the heap. If memory is short
        // the event is dropped rather than aborting the firmware.
        let mut v = Vec::new();
        v.try_reserve_exact(len).ok()?;
        v.resize(len, 0);
        copy(&mut v).then(|| f(&v))
    }
}

unsafe extern "C" fn on_service(
    conn_handle: u16,
    error: *const ns::ble_gatt_error,
    service: *const ns::ble_gatt_svc,
    _arg: *mut c_void,
) -> c_int {
    let (status, _) = gatt_error(error);
    if !ble::is_active() {
        return 0;
    }
    if status == 0 {
        if service.is_null() {
            return 0;
        }
        // SAFETY: NimBLE passes a valid service with a zero status, for the call.
        let svc = unsafe { &*service };
        let (start, end) = (svc.start_handle, svc.end_handle);
        if let Some(uuid) = uuid_from_nimble(&svc.uuid) {
            events::dispatch(
                events::IRQ_GATTC_SERVICE_RESULT,
                &[
                    IrqArg::int(conn_handle.into()),
                    IrqArg::int(start.into()),
                    IrqArg::int(end.into()),
                    IrqArg::uuid(&uuid),
                ],
            );
        }
    } else {
        dispatch_done(
            events::IRQ_GATTC_SERVICE_DONE,
            conn_handle,
            done_status(status),
        );
    }
    0
}

unsafe extern "C" fn on_characteristic(
    conn_handle: u16,
    error: *const ns::ble_gatt_error,
    chr: *const ns::ble_gatt_chr,
    _arg: *mut c_void,
) -> c_int {
    let (status, _) = gatt_error(error);
    // The discovery state is kept in step even while the stack stops (when nothing is
    // reported), so a restarted stack never finds a stale discovery blocking the next.
    if status == 0 {
        if chr.is_null() {
            return 0;
        }
        // SAFETY: NimBLE passes a valid characteristic with a zero status, for the call.
        let c = unsafe { &*chr };
        let Some(uuid) = uuid_from_nimble(&c.uuid) else {
            return 0;
        };
        let ready = CHR_DISCOVERY
            .with(|d| {
                d.is_running_on(conn_handle)
                    .then(|| d.on_characteristic(c.def_handle, c.val_handle, c.properties, uuid))
                    .flatten()
            })
            .flatten();
        if let (Some(r), true) = (ready, ble::is_active()) {
            dispatch_chr_result(conn_handle, &r);
        }
    } else {
        // `None`: not the discovery we track (already finished by a disconnection).
        let Some(last) = CHR_DISCOVERY
            .with(|d| d.is_running_on(conn_handle).then(|| d.finish()))
            .flatten()
        else {
            return 0;
        };
        if ble::is_active() {
            if let Some(r) = last {
                dispatch_chr_result(conn_handle, &r);
            }
            dispatch_done(
                events::IRQ_GATTC_CHARACTERISTIC_DONE,
                conn_handle,
                done_status(status),
            );
        }
    }
    0
}

unsafe extern "C" fn on_descriptor(
    conn_handle: u16,
    error: *const ns::ble_gatt_error,
    _chr_val_handle: u16,
    dsc: *const ns::ble_gatt_dsc,
    _arg: *mut c_void,
) -> c_int {
    let (status, _) = gatt_error(error);
    if !ble::is_active() {
        return 0;
    }
    if status == 0 {
        if dsc.is_null() {
            return 0;
        }
        // SAFETY: NimBLE passes a valid descriptor with a zero status, for the call.
        let d = unsafe { &*dsc };
        let handle = d.handle;
        if let Some(uuid) = uuid_from_nimble(&d.uuid) {
            events::dispatch(
                events::IRQ_GATTC_DESCRIPTOR_RESULT,
                &[
                    IrqArg::int(conn_handle.into()),
                    IrqArg::int(handle.into()),
                    IrqArg::uuid(&uuid),
                ],
            );
        }
    } else {
        dispatch_done(
            events::IRQ_GATTC_DESCRIPTOR_DONE,
            conn_handle,
            done_status(status),
        );
    }
    0
}

/// The handle a READ_DONE/WRITE_DONE reports: the attribute's when NimBLE gives one, else
/// the handle from the ATT error response (0 when the failure was not an ATT error).
fn reported_handle(attr: *const ns::ble_gatt_attr, error: *const ns::ble_gatt_error) -> u16 {
    if !attr.is_null() {
        // SAFETY: NimBLE passes a valid attribute for the duration of the callback.
        unsafe { (*attr).handle }
    } else if !error.is_null() {
        gatt_error(error).1
    } else {
        0xffff
    }
}

unsafe extern "C" fn on_read(
    conn_handle: u16,
    error: *const ns::ble_gatt_error,
    attr: *mut ns::ble_gatt_attr,
    _arg: *mut c_void,
) -> c_int {
    let (status, _) = gatt_error(error);
    let handle = reported_handle(attr, error);
    if !ble::is_active() {
        return 0;
    }
    if status == 0 && !attr.is_null() {
        // SAFETY: NimBLE passes a valid attribute whose `om` holds the value; NimBLE frees
        // it after we return, so it is only read here.
        let om = unsafe { (*attr).om };
        // SAFETY: `om` is NimBLE's valid chain (or null) for the duration of the callback.
        unsafe {
            with_mbuf_data(om, |data| {
                events::dispatch(
                    events::IRQ_GATTC_READ_RESULT,
                    &[
                        IrqArg::int(conn_handle.into()),
                        IrqArg::int(handle.into()),
                        IrqArg::bytes(data),
                    ],
                );
            })
        };
    }
    dispatch_read_write_done(events::IRQ_GATTC_READ_DONE, conn_handle, handle, status);
    0
}

unsafe extern "C" fn on_write(
    conn_handle: u16,
    error: *const ns::ble_gatt_error,
    attr: *mut ns::ble_gatt_attr,
    _arg: *mut c_void,
) -> c_int {
    let (status, _) = gatt_error(error);
    let handle = reported_handle(attr, error);
    if ble::is_active() {
        dispatch_read_write_done(events::IRQ_GATTC_WRITE_DONE, conn_handle, handle, status);
    }
    0
}

fn dispatch_read_write_done(event: u16, conn_handle: u16, handle: u16, status: u16) {
    events::dispatch(
        event,
        &[
            IrqArg::int(conn_handle.into()),
            IrqArg::int(handle.into()),
            IrqArg::int(status.into()),
        ],
    );
}

/// A connection went away: finish any client procedure still pending on it.
///
/// NimBLE fails every procedure of a broken link with `BLE_HS_ENOTCONN` before it reports the
/// disconnection, so each pending read, write and discovery has had its DONE by now. This only
/// catches a characteristic discovery NimBLE did not report (it should not happen), so that it
/// neither blocks the next discovery nor goes without its DONE.
pub fn on_disconnect(conn_handle: u16) {
    let Some(last) = CHR_DISCOVERY
        .with(|d| d.is_running_on(conn_handle).then(|| d.finish()))
        .flatten()
    else {
        return;
    };
    if let Some(r) = last {
        dispatch_chr_result(conn_handle, &r);
    }
    dispatch_done(
        events::IRQ_GATTC_CHARACTERISTIC_DONE,
        conn_handle,
        BLE_HS_ENOTCONN,
    );
}

/// A notification or indication arrived (`BLE_GAP_EVENT_NOTIFY_RX`). NimBLE frees `om` after
/// the callback returns (and sends an indication's confirmation after that).
///
/// Crate-private because `om` must be the event's own mbuf chain (or null): only the GAP
/// event handler calls this.
pub(crate) fn on_notify_rx(
    conn_handle: u16,
    attr_handle: u16,
    indication: bool,
    om: *mut ns::os_mbuf,
) {
    let event = if indication {
        events::IRQ_GATTC_INDICATE
    } else {
        events::IRQ_GATTC_NOTIFY
    };
    // SAFETY: NimBLE's notify-rx event carries a valid chain (or null) for the callback.
    unsafe {
        with_mbuf_data(om, |data| {
            events::dispatch(
                event,
                &[
                    IrqArg::int(conn_handle.into()),
                    IrqArg::int(attr_handle.into()),
                    IrqArg::bytes(data),
                ],
            );
        })
    };
}

// --- Operations ------------------------------------------------------------------------------------

fn require_active() -> Result<(), Status> {
    if ble::is_active() {
        Ok(())
    } else {
        Err(errno::ENODEV)
    }
}

/// `gattc_discover_services(conn, uuid=None)`: all primary services, or those with `uuid`.
pub fn discover_services(conn_handle: u16, uuid: Option<&Uuid>) -> Result<(), Status> {
    require_active()?;
    match uuid {
        Some(u) => {
            let any = uuid_to_nimble(&service_search_uuid(u)).ok_or(errno::EINVAL)?;
            // SAFETY: NimBLE copies the UUID before returning; the callback is a plain fn.
            check(unsafe {
                ns::ble_gattc_disc_svc_by_uuid(
                    conn_handle,
                    &any.u,
                    Some(on_service),
                    ptr::null_mut(),
                )
            })
        }
        // SAFETY: plain NimBLE call on the NimBLE thread; the callback is a plain fn.
        None => check(unsafe {
            ns::ble_gattc_disc_all_svcs(conn_handle, Some(on_service), ptr::null_mut())
        }),
    }
}

/// Forgets a discovery whose connection no longer exists. NimBLE ends a link's procedures
/// (calling back) before it forgets the link, so such a discovery can only be left over from
/// a stack that stopped without its links closing; it must not refuse new ones with `EBUSY`.
fn drop_stale_discovery() {
    let Some(Some(conn_handle)) = CHR_DISCOVERY.with(|d| d.is_busy().then_some(d.conn_handle))
    else {
        return;
    };
    let mut desc = ns::ble_gap_conn_desc::default();
    // SAFETY: `desc` is a valid out-parameter; a plain query on the NimBLE thread.
    if unsafe { ns::ble_gap_conn_find(conn_handle, &mut desc) } != 0 {
        reset();
    }
}

/// `gattc_discover_characteristics(conn, start, end, uuid=None)`.
pub fn discover_characteristics(
    conn_handle: u16,
    start_handle: u16,
    end_handle: u16,
    uuid: Option<&Uuid>,
) -> Result<(), Status> {
    require_active()?;
    drop_stale_discovery();
    CHR_DISCOVERY
        .with(|d| d.begin(conn_handle, end_handle, uuid.copied()))
        .unwrap_or(Err(errno::EBUSY))?;
    // The state is set first so that no callback, however early, finds it missing; it is
    // undone if NimBLE refuses the procedure (then no callback ever comes).
    // SAFETY: plain NimBLE call on the NimBLE thread; the callback is a plain fn.
    let rc = unsafe {
        ns::ble_gattc_disc_all_chrs(
            conn_handle,
            start_handle,
            end_handle,
            Some(on_characteristic),
            ptr::null_mut(),
        )
    };
    if rc != 0 {
        let _ = CHR_DISCOVERY.with(|d| d.finish());
    }
    check(rc)
}

/// `gattc_discover_descriptors(conn, start, end)`. NimBLE starts after `start`.
pub fn discover_descriptors(
    conn_handle: u16,
    start_handle: u16,
    end_handle: u16,
) -> Result<(), Status> {
    require_active()?;
    // SAFETY: plain NimBLE call on the NimBLE thread; the callback is a plain fn.
    check(unsafe {
        ns::ble_gattc_disc_all_dscs(
            conn_handle,
            start_handle,
            end_handle,
            Some(on_descriptor),
            ptr::null_mut(),
        )
    })
}

/// `gattc_read(conn, handle)`: a single ATT Read Request.
pub fn read(conn_handle: u16, handle: u16) -> Result<(), Status> {
    require_active()?;
    // SAFETY: plain NimBLE call on the NimBLE thread; the callback is a plain fn.
    check(unsafe { ns::ble_gattc_read(conn_handle, handle, Some(on_read), ptr::null_mut()) })
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
pub fn write(conn_handle: u16, handle: u16, data: &[u8], mode: u32) -> Result<(), Status> {
    require_active()?;
    let len = data.len() as u16;
    let rc = match mode {
        // SAFETY: NimBLE copies `len` bytes of `data` into an mbuf before returning.
        WRITE_NO_RESPONSE => unsafe {
            ns::ble_gattc_write_no_rsp_flat(conn_handle, handle, data.as_ptr().cast(), len)
        },
        // SAFETY: as above; the callback is a plain fn.
        WRITE_WITH_RESPONSE => unsafe {
            ns::ble_gattc_write_flat(
                conn_handle,
                handle,
                data.as_ptr().cast(),
                len,
                Some(on_write),
                ptr::null_mut(),
            )
        },
        _ => return Err(errno::EINVAL),
    };
    check(rc)
}

/// `gattc_exchange_mtu(conn)`. No active check, as in the C module: NimBLE answers by itself
/// (`ENOMEM` before the first activation, `ENOTCONN` once stopped). The result is the
/// `_IRQ_MTU_EXCHANGED` raised from the GAP MTU event.
pub fn exchange_mtu(conn_handle: u16) -> Result<(), Status> {
    // SAFETY: NimBLE's statics are zeroed before the first start (the proc pool is then empty
    // and the call fails cleanly) and stay initialised afterwards; no callback is passed.
    check(unsafe { ns::ble_gattc_exchange_mtu(conn_handle, None, ptr::null_mut()) })
}

// --- FFI -----------------------------------------------------------------------------------------

fn status(r: Result<(), Status>) -> Status {
    r.err().unwrap_or(OK)
}

/// `gattc_discover_services(conn_handle, uuid)`; `uuid` null for `None`.
///
/// # Safety
/// `uuid` must be null or point to a valid `Uuid` for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn ubt_gattc_discover_services(
    conn_handle: u16,
    uuid: *const Uuid,
) -> Status {
    // SAFETY: the caller guarantees `uuid` is null or valid.
    let uuid = unsafe { uuid.as_ref() };
    status(discover_services(conn_handle, uuid))
}

/// `gattc_discover_characteristics(conn_handle, start_handle, end_handle, uuid)`; `uuid` null
/// for `None`.
///
/// # Safety
/// `uuid` must be null or point to a valid `Uuid` for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn ubt_gattc_discover_characteristics(
    conn_handle: u16,
    start_handle: u16,
    end_handle: u16,
    uuid: *const Uuid,
) -> Status {
    // SAFETY: the caller guarantees `uuid` is null or valid.
    let uuid = unsafe { uuid.as_ref() };
    status(discover_characteristics(
        conn_handle,
        start_handle,
        end_handle,
        uuid,
    ))
}

/// `gattc_discover_descriptors(conn_handle, start_handle, end_handle)`.
#[no_mangle]
pub extern "C" fn ubt_gattc_discover_descriptors(
    conn_handle: u16,
    start_handle: u16,
    end_handle: u16,
) -> Status {
    status(discover_descriptors(conn_handle, start_handle, end_handle))
}

/// `gattc_read(conn_handle, value_handle)`.
#[no_mangle]
pub extern "C" fn ubt_gattc_read(conn_handle: u16, value_handle: u16) -> Status {
    status(read(conn_handle, value_handle))
}

/// `gattc_write(conn_handle, value_handle, data, mode)`; `mode` as the C module's unsigned int.
///
/// # Safety
/// `data` must be valid for reads of `len` bytes (or `len` must be 0).
#[no_mangle]
pub unsafe extern "C" fn ubt_gattc_write(
    conn_handle: u16,
    value_handle: u16,
    data: *const u8,
    len: usize,
    mode: u32,
) -> Status {
    let data = if data.is_null() || len == 0 {
        &[][..]
    } else {
        // SAFETY: the caller guarantees `len` readable bytes at `data`.
        unsafe { slice::from_raw_parts(data, len) }
    };
    status(write(conn_handle, value_handle, data, mode))
}

/// `gattc_exchange_mtu(conn_handle)`.
#[no_mangle]
pub extern "C" fn ubt_gattc_exchange_mtu(conn_handle: u16) -> Status {
    status(exchange_mtu(conn_handle))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(d.begin(0, 10, None), Err(errno::EBUSY));
        assert_eq!(d.begin(1, 10, None), Err(errno::EBUSY));
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
