//! GAP as `BLE` exposes it: our address and device name, the preferred MTU, advertising,
//! scanning and connections, and the fan-out of NimBLE's GAP events to the module that owns
//! each (spec §5, §6, §13).

use core::ffi::{c_int, c_void};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use nimble_sys as ns;

#[cfg(feature = "gatt-client")]
use super::gattc;
use super::gatts;
#[cfg(feature = "security")]
use super::security;
use super::state::{is_active, require_active, state, StackState};
use crate::error::{check, Error};
use crate::event::{self, addr_msb_first, Event};
use crate::handle::{AttrHandle, ConnHandle};
use crate::rt::sched;
use crate::sys;
use crate::thread::NimbleThread;

/// NimBLE's own-address type used for advertising, scanning and connecting.
static OWN_ADDR_TYPE: AtomicU8 = AtomicU8::new(ns::BLE_OWN_ADDR_PUBLIC as u8);
/// The address mode last selected (`config(addr_mode=)`), 0..=3.
static ADDR_MODE: AtomicU8 = AtomicU8::new(0);

/// NimBLE's "no timeout" duration (`BLE_HS_FOREVER`, `INT32_MAX`), which bindgen cannot
/// evaluate against newlib's headers.
const BLE_HS_FOREVER: i32 = i32::MAX;

/// Links open now: successful CONNECT events less DISCONNECT events since the stack started.
static LINKS: AtomicU8 = AtomicU8::new(0);
/// The advertising last started takes connections (meaningful while NimBLE says advertising
/// is on; a connection ends it).
static ADV_CONNECTABLE: AtomicBool = AtomicBool::new(false);

/// Whether a second procedure that ends in a new link (connectable advertising, `gap_connect`)
/// may start while the other runs. NimBLE looks for a free link slot only as each starts, and
/// when both complete with one slot left it uses a null connection for the second and
/// crashes; so both may run only while two slots are free.
pub fn second_link_procedure_fits(links: u8, max: u8) -> bool {
    max.saturating_sub(links) >= 2
}

/// Refuses the second of connectable advertising and `gap_connect` with `ENOMEM` (as NimBLE
/// refuses either with no slot left) unless two link slots are free. `other_running` says
/// whether the other procedure is on now.
fn check_second_link_procedure(other_running: bool) -> Result<(), Error> {
    let max = ns::MYNEWT_VAL_BLE_MAX_CONNECTIONS as u8;
    if other_running && !second_link_procedure_fits(LINKS.load(Ordering::Acquire), max) {
        return Err(Error::NoMem);
    }
    Ok(())
}

/// Forgets the links of the last run, at each stack start (the stop suppressed their
/// DISCONNECT events).
pub fn reset(_t: NimbleThread) {
    LINKS.store(0, Ordering::Release);
    ADV_CONNECTABLE.store(false, Ordering::Release);
}

fn own_addr_type() -> u8 {
    OWN_ADDR_TYPE.load(Ordering::Acquire)
}

/// At sync: uses the controller's public address when it has one, else a new static random
/// address (spec §13).
pub fn select_initial_address(t: NimbleThread) {
    if sys::addr::public(t).is_some() {
        OWN_ADDR_TYPE.store(ns::BLE_OWN_ADDR_PUBLIC as u8, Ordering::Release);
        ADDR_MODE.store(0, Ordering::Release);
    } else if sys::addr::set_new_random(t, false).is_ok() {
        OWN_ADDR_TYPE.store(ns::BLE_OWN_ADDR_RANDOM as u8, Ordering::Release);
        ADDR_MODE.store(1, Ordering::Release);
    }
}

/// `value / unit` for a script's integer. A script's integer is an `mp_int_t`: 64 bits on
/// Unix, but 32 on the 32-bit ports, whose bindings already refuse anything wider. There the
/// division is done in 32 bits, which the Cortex-M4 has an instruction for: a 64-bit one is a
/// library call of about 1 kB of flash.
fn script_div(value: i64, unit: i32) -> i64 {
    #[cfg(target_pointer_width = "32")]
    {
        let value = value.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        i64::from(value / unit)
    }
    #[cfg(not(target_pointer_width = "32"))]
    {
        value / i64::from(unit)
    }
}

// --- Configuration ------------------------------------------------------------------------------

/// `config('mac')`: the address type and the address in use, most-significant byte first.
pub fn mac(t: NimbleThread) -> Result<(u8, [u8; 6]), Error> {
    require_active()?;
    if ADDR_MODE.load(Ordering::Acquire) == 2 {
        return Err(Error::InvalidArg);
    }
    let addr_type = if own_addr_type() == ns::BLE_OWN_ADDR_PUBLIC as u8 {
        ns::BLE_ADDR_PUBLIC as u8
    } else {
        ns::BLE_ADDR_RANDOM as u8
    };
    Ok((addr_type, addr_msb_first(sys::addr::ours(t, addr_type)?)))
}

/// `config(addr_mode=m)` (spec §13). Values outside 0..=3 are ignored, as in the C module.
pub fn set_addr_mode(t: NimbleThread, mode: u8) -> Result<(), Error> {
    require_active()?;
    let own = match mode {
        0 => {
            sys::addr::public(t).ok_or(Error::InvalidArg)?;
            ns::BLE_OWN_ADDR_PUBLIC
        }
        1 => {
            sys::addr::set_new_random(t, false)?;
            ns::BLE_OWN_ADDR_RANDOM
        }
        2 => {
            if sys::addr::public(t).is_some() {
                ns::BLE_OWN_ADDR_RPA_PUBLIC_DEFAULT
            } else {
                sys::addr::set_new_random(t, false)?;
                ns::BLE_OWN_ADDR_RPA_RANDOM_DEFAULT
            }
        }
        3 => {
            sys::addr::set_new_random(t, true)?;
            ns::BLE_OWN_ADDR_RANDOM
        }
        _ => return Ok(()),
    };
    OWN_ADDR_TYPE.store(own as u8, Ordering::Release);
    ADDR_MODE.store(mode, Ordering::Release);
    Ok(())
}

/// Longest GAP device name NimBLE stores.
pub const GAP_NAME_MAX: usize = 31;

/// `config('gap_name')`: copies the name into `out`, returns its length. Works inactive.
pub fn gap_name(_t: NimbleThread, out: &mut [u8]) -> usize {
    // SAFETY: NimBLE returns its static NUL-terminated name buffer; on the NimBLE thread.
    let name = unsafe { ns::ble_svc_gap_device_name() };
    if name.is_null() {
        return 0;
    }
    let mut n = 0;
    while n < out.len() && n < GAP_NAME_MAX {
        // SAFETY: the name is NUL-terminated within GAP_NAME_MAX + 1 bytes.
        let b = unsafe { *name.add(n) } as u8;
        if b == 0 {
            break;
        }
        out[n] = b;
        n += 1;
    }
    n
}

/// `config(gap_name=...)`: stored as a C string, so an embedded NUL ends it. Works inactive.
pub fn set_gap_name(_t: NimbleThread, name: &[u8]) -> Result<(), Error> {
    if name.len() > GAP_NAME_MAX {
        return Err(Error::InvalidArg);
    }
    let mut buf = [0u8; GAP_NAME_MAX + 1];
    buf[..name.len()].copy_from_slice(name);
    // SAFETY: `buf` is NUL-terminated; NimBLE copies it into its own buffer.
    check(unsafe { ns::ble_svc_gap_device_name_set(buf.as_ptr().cast()) })
}

/// `config('mtu')`.
pub fn mtu(_t: NimbleThread) -> Result<u16, Error> {
    require_active()?;
    // SAFETY: reads NimBLE's preferred-MTU setting on the NimBLE thread.
    Ok(unsafe { ns::ble_att_preferred_mtu() })
}

// --- Link upgrades after a connection ---------------------------------------------------------

/// A link upgrade the host asks for on every new connection, unless a script turned it off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkUpgrade {
    /// LE Data Packet Length Extension: the longest link-layer payload (251 bytes).
    DataLength,
    /// The LE 2M PHY.
    Phy2m,
}

static UPGRADE_DATA_LENGTH: AtomicBool = AtomicBool::new(true);
static UPGRADE_PHY_2M: AtomicBool = AtomicBool::new(true);

fn upgrade_flag(which: LinkUpgrade) -> &'static AtomicBool {
    match which {
        LinkUpgrade::DataLength => &UPGRADE_DATA_LENGTH,
        LinkUpgrade::Phy2m => &UPGRADE_PHY_2M,
    }
}

/// `config(le_data_length=)` / `config(le_2m_phy=)`: applies to links made afterwards, active
/// or not, and persists across restarts (as the security settings do).
pub fn set_link_upgrade(which: LinkUpgrade, on: bool) {
    upgrade_flag(which).store(on, Ordering::Release);
}

/// `config('le_data_length')` / `config('le_2m_phy')`.
pub fn link_upgrade(which: LinkUpgrade) -> bool {
    upgrade_flag(which).load(Ordering::Acquire)
}

/// LE feature bits (Core Vol 6 Part B 4.6): Data Packet Length Extension and the 2M PHY.
const LE_FEAT_DATA_LENGTH: u32 = 1 << 5;
const LE_FEAT_2M_PHY: u32 = 1 << 8;
/// The longest LE payload, and the time it takes on the 1M PHY ((251 + 14) bytes x 8 us).
const MAX_TX_OCTETS: u16 = 251;
const MAX_TX_TIME_US: u16 = 2120;

/// What to ask the controller for on a new link: only what it says it supports (a command for
/// a feature it lacks could fail or, on a poor controller, go unanswered) and the script has
/// not turned off.
pub fn link_upgrades(le_features: u32, data_length: bool, phy_2m: bool) -> (bool, bool) {
    (
        data_length && le_features & LE_FEAT_DATA_LENGTH != 0,
        phy_2m && le_features & LE_FEAT_2M_PHY != 0,
    )
}

/// Right after a link comes up (and the script has seen it): the longest data length and the
/// 2M PHY. The link layer settles both with the peer, which may refuse or not support them;
/// either way the link carries on, so failures are ignored, and no script event follows.
fn upgrade_link(t: NimbleThread, conn_handle: ConnHandle) {
    let (data_length, phy_2m) = link_upgrades(
        sys::private::le_features(t),
        link_upgrade(LinkUpgrade::DataLength),
        link_upgrade(LinkUpgrade::Phy2m),
    );
    if data_length {
        let _ = sys::private::set_data_len(t, conn_handle.0, MAX_TX_OCTETS, MAX_TX_TIME_US);
    }
    if phy_2m {
        let mask = ns::BLE_GAP_LE_PHY_2M_MASK as u8;
        // SAFETY: plain NimBLE call on the NimBLE thread.
        let _ = unsafe { ns::ble_gap_set_prefered_le_phy(conn_handle.0, mask, mask, 0) };
    }
}

/// `config(mtu=...)`: 23..=527, else `InvalidArg`.
pub fn set_mtu(_t: NimbleThread, mtu: u16) -> Result<(), Error> {
    require_active()?;
    if !(23..=527).contains(&mtu) {
        return Err(Error::InvalidArg);
    }
    // SAFETY: sets NimBLE's preferred-MTU setting; the value is in range.
    check(unsafe { ns::ble_att_set_preferred_mtu(mtu) })
}

// --- Advertising ----------------------------------------------------------------------------------

/// Legacy advertising and scan-response payloads are at most 31 bytes.
const ADV_DATA_MAX: usize = 31;
/// What the C module raises for over-long advertising data: the controller's "invalid HCI
/// command parameters" status, passed through negated (spec §5.4).
const ADV_DATA_TOO_LONG: Error = Error::Unmapped(0x12);

/// `gap_advertise(None)`: stops advertising if it is on. Never fails, even inactive.
pub fn advertise_stop(_t: NimbleThread) {
    if !is_active() {
        return;
    }
    // SAFETY: plain NimBLE queries/commands on the NimBLE thread.
    unsafe {
        if ns::ble_gap_adv_active() != 0 {
            ns::ble_gap_adv_stop();
        }
    }
}

/// `gap_advertise(interval_us, adv_data, resp_data=, connectable=)`. `None` payloads keep what
/// the controller has.
pub fn advertise_start(
    t: NimbleThread,
    interval_us: i64,
    adv_data: Option<&[u8]>,
    resp_data: Option<&[u8]>,
    connectable: bool,
) -> Result<(), Error> {
    require_active()?;
    if connectable {
        // SAFETY: plain NimBLE query on the NimBLE thread.
        check_second_link_procedure(unsafe { ns::ble_gap_conn_active() } != 0)?;
    }
    advertise_stop(t);
    if let Some(data) = adv_data {
        if data.len() > ADV_DATA_MAX {
            return Err(ADV_DATA_TOO_LONG);
        }
        // SAFETY: `data` is a valid slice of at most 31 bytes.
        check(unsafe { ns::ble_gap_adv_set_data(data.as_ptr(), data.len() as c_int) })?;
    }
    if let Some(data) = resp_data {
        if data.len() > ADV_DATA_MAX {
            return Err(Error::InvalidArg);
        }
        // SAFETY: as above.
        check(unsafe { ns::ble_gap_adv_rsp_set_data(data.as_ptr(), data.len() as c_int) })?;
    }
    let itvl = script_div(interval_us, 625) as u16;
    let params = ns::ble_gap_adv_params {
        conn_mode: if connectable {
            ns::BLE_GAP_CONN_MODE_UND
        } else {
            ns::BLE_GAP_CONN_MODE_NON
        } as u8,
        disc_mode: ns::BLE_GAP_DISC_MODE_GEN as u8,
        itvl_min: itvl,
        itvl_max: itvl,
        ..Default::default()
    };
    // SAFETY: `params` is valid for the call; the callback is a plain extern fn.
    check(unsafe {
        ns::ble_gap_adv_start(
            own_addr_type(),
            ptr::null(),
            BLE_HS_FOREVER,
            &params,
            Some(gap_event_as_peripheral),
            ptr::null_mut(),
        )
    })?;
    ADV_CONNECTABLE.store(connectable, Ordering::Release);
    Ok(())
}

// --- Connections ----------------------------------------------------------------------------------

/// Which side of a connection we are, which decides the event numbers scripts see.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OurRole {
    /// A central connected to our advertising: `_IRQ_CENTRAL_CONNECT`/`_DISCONNECT`.
    Peripheral,
    /// We connected with `gap_connect`: `_IRQ_PERIPHERAL_CONNECT`/`_DISCONNECT`.
    Central,
}

impl OurRole {
    /// The event a connection made (`connected`) or ended raises, with the peer's identity
    /// address as NimBLE holds it.
    fn conn_event(
        self,
        connected: bool,
        conn_handle: ConnHandle,
        addr_type: u8,
        addr_le: [u8; 6],
    ) -> Event<'static> {
        let addr = addr_msb_first(addr_le);
        match (self, connected) {
            (OurRole::Peripheral, true) => Event::CentralConnect {
                conn_handle,
                addr_type,
                addr,
            },
            (OurRole::Peripheral, false) => Event::CentralDisconnect {
                conn_handle,
                addr_type,
                addr,
            },
            (OurRole::Central, true) => Event::PeripheralConnect {
                conn_handle,
                addr_type,
                addr,
            },
            (OurRole::Central, false) => Event::PeripheralDisconnect {
                conn_handle,
                addr_type,
                addr,
            },
        }
    }
}

/// Events of connections where we are the peripheral (made from our advertising).
unsafe extern "C" fn gap_event_as_peripheral(
    event: *mut ns::ble_gap_event,
    _arg: *mut c_void,
) -> c_int {
    // SAFETY: NimBLE calls its GAP callbacks from its host, on the NimBLE thread, with a valid
    // event for the duration of the call.
    unsafe { gap_event(NimbleThread::new_unchecked(), OurRole::Peripheral, event) }
}

/// Events of connections where we are the central (made by `gap_connect`).
unsafe extern "C" fn gap_event_as_central(
    event: *mut ns::ble_gap_event,
    _arg: *mut c_void,
) -> c_int {
    // SAFETY: as above.
    unsafe { gap_event(NimbleThread::new_unchecked(), OurRole::Central, event) }
}

/// # Safety
/// `event` is null or points to a valid NimBLE GAP event.
unsafe fn gap_event(t: NimbleThread, role: OurRole, event: *mut ns::ble_gap_event) -> c_int {
    // While stopping, every callback is ignored: deinit suppresses disconnect events.
    if !is_active() || event.is_null() {
        return 0;
    }
    // SAFETY: NimBLE passes a valid event; each arm reads the union member its tag names.
    let event = unsafe { &*event };
    // SAFETY: (for every union read below) the match arm is the event's type tag.
    let u = &event.__bindgen_anon_1;
    match event.type_ as u32 {
        ns::BLE_GAP_EVENT_CONNECT => {
            // SAFETY: tag is CONNECT.
            let c = unsafe { &u.connect };
            let conn_handle = ConnHandle(c.conn_handle);
            if c.status == 0 {
                LINKS.fetch_add(1, Ordering::AcqRel);
                if let Some(desc) = sys::addr::conn_desc(t, conn_handle) {
                    let peer = desc.peer_id_addr;
                    event::dispatch(t, &role.conn_event(true, conn_handle, peer.type_, peer.val));
                    // The script's next lines, which may set up for this link, run before
                    // the host reads the peer's first requests.
                    sched::give_script_its_turn();
                }
                // The handler may have ended the link or stopped the stack meanwhile.
                if is_active() && sys::addr::conn_desc(t, conn_handle).is_some() {
                    upgrade_link(t, conn_handle);
                }
            } else {
                // A failed connect: 65535 on timeout or cancel, as NimBLE reports it.
                event::dispatch(t, &role.conn_event(false, conn_handle, 0xff, [0; 6]));
            }
        }
        ns::BLE_GAP_EVENT_DISCONNECT => {
            // SAFETY: tag is DISCONNECT.
            let d = unsafe { &u.disconnect };
            let _ = LINKS.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
            let conn_handle = ConnHandle(d.conn.conn_handle);
            let peer = d.conn.peer_id_addr;
            event::dispatch(
                t,
                &role.conn_event(false, conn_handle, peer.type_, peer.val),
            );
            #[cfg(feature = "gatt-client")]
            gattc::on_disconnect(t, conn_handle);
        }
        ns::BLE_GAP_EVENT_CONN_UPDATE => {
            // SAFETY: tag is CONN_UPDATE.
            let c = unsafe { &u.conn_update };
            let conn_handle = ConnHandle(c.conn_handle);
            if let Some(desc) = sys::addr::conn_desc(t, conn_handle) {
                let ev = Event::ConnectionUpdate {
                    conn_handle,
                    conn_interval: desc.conn_itvl,
                    conn_latency: desc.conn_latency,
                    supervision_timeout: desc.supervision_timeout,
                    status: u8::from(c.status != 0),
                };
                event::dispatch(t, &ev);
            }
        }
        ns::BLE_GAP_EVENT_MTU => {
            // SAFETY: tag is MTU.
            let m = unsafe { &u.mtu };
            if u32::from(m.channel_id) == ns::BLE_L2CAP_CID_ATT {
                let ev = Event::MtuExchanged {
                    conn_handle: ConnHandle(m.conn_handle),
                    mtu: m.value,
                };
                event::dispatch(t, &ev);
            }
        }
        // Without the GATT client they are not for the script (NimBLE frees the value).
        #[cfg(feature = "gatt-client")]
        ns::BLE_GAP_EVENT_NOTIFY_RX => {
            // SAFETY: tag is NOTIFY_RX.
            let n = unsafe { &u.notify_rx };
            let (conn_handle, value_handle) =
                (ConnHandle(n.conn_handle), AttrHandle(n.attr_handle));
            // SAFETY: NimBLE's notify-rx event carries a valid chain (or null) for the call.
            unsafe { gattc::on_notify_rx(t, conn_handle, value_handle, n.indication() != 0, n.om) };
        }
        // Indication confirmations are reported for peripheral-role connections only, as in
        // MicroPython's C module (spec §6, event 20).
        ns::BLE_GAP_EVENT_NOTIFY_TX if role == OurRole::Peripheral => {
            // SAFETY: tag is NOTIFY_TX.
            let n = unsafe { &u.notify_tx };
            let (conn_handle, value_handle) =
                (ConnHandle(n.conn_handle), AttrHandle(n.attr_handle));
            gatts::on_notify_tx(t, conn_handle, value_handle, n.status, n.indication() != 0);
        }
        #[cfg(feature = "security")]
        ns::BLE_GAP_EVENT_ENC_CHANGE => {
            // SAFETY: tag is ENC_CHANGE.
            let e = unsafe { &u.enc_change };
            security::on_enc_change(t, ConnHandle(e.conn_handle));
        }
        #[cfg(feature = "security")]
        ns::BLE_GAP_EVENT_PASSKEY_ACTION => {
            // SAFETY: tag is PASSKEY_ACTION.
            let p = unsafe { &u.passkey };
            let conn_handle = ConnHandle(p.conn_handle);
            security::on_passkey_action(t, conn_handle, p.params.action, p.params.numcmp);
        }
        #[cfg(feature = "security")]
        ns::BLE_GAP_EVENT_REPEAT_PAIRING => {
            // SAFETY: tag is REPEAT_PAIRING.
            let r = unsafe { &u.repeat_pairing };
            return security::on_repeat_pairing(t, ConnHandle(r.conn_handle));
        }
        _ => {}
    }
    0
}

/// NimBLE's initial connection interval range, 30–50 ms in 1.25 ms units (its macros for these
/// are function-like, which bindgen skips).
const INITIAL_CONN_ITVL_MIN: u16 = 30 * 4 / 5;
const INITIAL_CONN_ITVL_MAX: u16 = 50 * 4 / 5;
/// HCI reason "remote user terminated connection", which `gap_disconnect` sends.
const HCI_REMOTE_USER_TERMINATED: u8 = 0x13;

/// `gap_connect(addr_type, addr, scan_duration_ms, min_conn_interval_us, max_conn_interval_us)`
/// with `addr` most-significant byte first. A running scan is stopped first (raising
/// `_IRQ_SCAN_DONE`).
pub fn connect(
    t: NimbleThread,
    addr_type: u8,
    addr: &[u8; 6],
    duration_ms: i32,
    min_conn_interval_us: i32,
    max_conn_interval_us: i32,
) -> Result<(), Error> {
    require_active()?;
    // SAFETY: plain NimBLE query on the NimBLE thread.
    let advertising = unsafe { ns::ble_gap_adv_active() } != 0;
    check_second_link_procedure(advertising && ADV_CONNECTABLE.load(Ordering::Acquire))?;
    // SAFETY: plain NimBLE query on the NimBLE thread.
    if unsafe { ns::ble_gap_disc_active() } != 0 {
        scan_stop(t)?;
    }
    // 1.25 ms units; 0 leaves NimBLE's initial 30–50 ms.
    let itvl = |us: i32, dflt: u16| if us == 0 { dflt } else { (us / 1250) as u16 };
    let params = ns::ble_gap_conn_params {
        scan_itvl: 0x0010,
        scan_window: 0x0010,
        itvl_min: itvl(min_conn_interval_us, INITIAL_CONN_ITVL_MIN),
        itvl_max: itvl(max_conn_interval_us, INITIAL_CONN_ITVL_MAX),
        latency: 0,
        supervision_timeout: 0x0100,
        min_ce_len: 0,
        max_ce_len: 0,
    };
    let peer = sys::addr::from_script(addr_type, addr);
    // SAFETY: `peer` and `params` are valid for the call (NimBLE copies them).
    check(unsafe {
        ns::ble_gap_connect(
            own_addr_type(),
            &peer,
            duration_ms,
            &params,
            Some(gap_event_as_central),
            ptr::null_mut(),
        )
    })
}

/// Connection parameters as HCI carries them: intervals in 1.25 ms units, the supervision
/// timeout in 10 ms units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnParams {
    /// Shortest acceptable connection interval.
    pub itvl_min: u16,
    /// Longest acceptable connection interval.
    pub itvl_max: u16,
    /// Peripheral latency: connection events the peripheral may skip.
    pub latency: u16,
    /// Supervision timeout.
    pub supervision_timeout: u16,
}

/// Spec limits of LE Connection Update (Core Vol 4 Part E 7.8.18): 7.5 ms..4 s intervals,
/// latency up to 499, 100 ms..32 s supervision timeout.
const CONN_ITVL_RANGE: core::ops::RangeInclusive<i64> = 0x0006..=0x0C80;
const CONN_LATENCY_MAX: i64 = 0x01F3;
const SUPERVISION_TIMEOUT_RANGE: core::ops::RangeInclusive<i64> = 0x000A..=0x0C80;

impl ConnParams {
    /// From `gap_update_conn`'s units (µs for intervals, ms for the timeout), rounded down to
    /// HCI units as `gap_connect` rounds its intervals. `InvalidArg` unless the result is one
    /// the specification allows, including that the timeout outlasts
    /// `max_interval * (latency + 1) * 2`, so no controller or peer sees a request it must refuse.
    pub fn from_script(
        min_interval_us: i64,
        max_interval_us: i64,
        latency: i64,
        supervision_timeout_ms: i64,
    ) -> Result<ConnParams, Error> {
        let (itvl_min, itvl_max) = (
            script_div(min_interval_us, 1250),
            script_div(max_interval_us, 1250),
        );
        let timeout = script_div(supervision_timeout_ms, 10);
        let valid = CONN_ITVL_RANGE.contains(&itvl_min)
            && CONN_ITVL_RANGE.contains(&itvl_max)
            && itvl_min <= itvl_max
            && (0..=CONN_LATENCY_MAX).contains(&latency)
            && SUPERVISION_TIMEOUT_RANGE.contains(&timeout)
            // timeout * 10 ms > (1 + latency) * itvl_max * 1.25 ms * 2
            && timeout * 4 > (1 + latency) * itvl_max;
        if !valid {
            return Err(Error::InvalidArg);
        }
        // Each value is within u16 after the range checks above.
        Ok(ConnParams {
            itvl_min: itvl_min as u16,
            itvl_max: itvl_max as u16,
            latency: latency as u16,
            supervision_timeout: timeout as u16,
        })
    }
}

/// `gap_update_conn(conn_handle, ...)`: asks for new parameters on a live connection, from
/// either role. NimBLE picks the procedure: as central an LL connection update; as peripheral
/// the LL Connection Parameters Request when the peer's controller has it, else an L2CAP
/// Connection Parameter Update Request. `_IRQ_CONNECTION_UPDATE` reports the outcome.
/// Intervals in µs and the timeout in ms, checked by [`ConnParams::from_script`] after the
/// active check.
pub fn update_conn(
    _t: NimbleThread,
    conn_handle: ConnHandle,
    min_interval_us: i64,
    max_interval_us: i64,
    latency: i64,
    supervision_timeout_ms: i64,
) -> Result<(), Error> {
    require_active()?;
    let params = ConnParams::from_script(
        min_interval_us,
        max_interval_us,
        latency,
        supervision_timeout_ms,
    )?;
    let upd = ns::ble_gap_upd_params {
        itvl_min: params.itvl_min,
        itvl_max: params.itvl_max,
        latency: params.latency,
        supervision_timeout: params.supervision_timeout,
        min_ce_len: 0,
        max_ce_len: 0,
    };
    // SAFETY: `upd` is valid for the call (NimBLE copies it); on the NimBLE thread.
    check(unsafe { ns::ble_gap_update_params(conn_handle.0, &upd) })
}

/// `gap_connect(None)`: cancels a pending connect.
pub fn connect_cancel(_t: NimbleThread) -> Result<(), Error> {
    require_active()?;
    // SAFETY: plain NimBLE command on the NimBLE thread.
    check(unsafe { ns::ble_gap_conn_cancel() })
}

/// `gap_disconnect(conn_handle)`: `Ok(false)` for an unknown handle.
pub fn disconnect(_t: NimbleThread, conn_handle: ConnHandle) -> Result<bool, Error> {
    require_active()?;
    // SAFETY: plain NimBLE command on the NimBLE thread.
    let rc = unsafe { ns::ble_gap_terminate(conn_handle.0, HCI_REMOTE_USER_TERMINATED) };
    match check(rc) {
        Ok(()) => Ok(true),
        Err(Error::NotConnected) => Ok(false),
        Err(e) => Err(e),
    }
}

// --- Scanning ---------------------------------------------------------------------------------------

/// Scan interval and window are in 0.625 ms units, clamped to what HCI allows.
fn scan_units(us: i64) -> u16 {
    script_div(us, 625).clamp(0x0004, 0x4000) as u16
}

/// `gap_scan(duration_ms, interval_us, window_us, active)`.
pub fn scan_start(
    _t: NimbleThread,
    duration_ms: i64,
    interval_us: i64,
    window_us: i64,
    active: bool,
) -> Result<(), Error> {
    require_active()?;
    let itvl = scan_units(interval_us);
    let window = scan_units(window_us);
    if window > itvl {
        return Err(Error::InvalidArg);
    }
    let mut params = ns::ble_gap_disc_params {
        itvl,
        window,
        ..Default::default()
    };
    params.set_passive(u8::from(!active));
    params.set_filter_duplicates(0);
    params.set_limited(0);
    let duration = if duration_ms == 0 {
        BLE_HS_FOREVER
    } else {
        duration_ms as i32
    };
    // SAFETY: `params` is valid for the call; the callback is a plain extern fn.
    check(unsafe {
        ns::ble_gap_disc(
            own_addr_type(),
            duration,
            &params,
            Some(gap_scan_cb),
            ptr::null_mut(),
        )
    })
}

/// `gap_scan(None)`: cancels a running scan and raises `_IRQ_SCAN_DONE` before returning.
pub fn scan_stop(t: NimbleThread) -> Result<(), Error> {
    require_active()?;
    // SAFETY: plain NimBLE query on the NimBLE thread.
    if unsafe { ns::ble_gap_disc_active() } == 0 {
        return Ok(());
    }
    // SAFETY: as above.
    let rc = unsafe { ns::ble_gap_disc_cancel() };
    if rc == 0 {
        event::dispatch(t, &Event::ScanDone);
    }
    check(rc)
}

unsafe extern "C" fn gap_scan_cb(event: *mut ns::ble_gap_event, _arg: *mut c_void) -> c_int {
    if state() != StackState::Active || event.is_null() {
        return 0;
    }
    // SAFETY: NimBLE calls its GAP callbacks from its host, on the NimBLE thread.
    let t = unsafe { NimbleThread::new_unchecked() };
    // SAFETY: NimBLE passes a valid event; the union member read matches its type tag.
    let event = unsafe { &*event };
    match event.type_ as u32 {
        ns::BLE_GAP_EVENT_DISC => {
            // SAFETY: the tag says `disc` is the valid member.
            let disc = unsafe { &event.__bindgen_anon_1.disc };
            // SAFETY: NimBLE's report holds `length_data` bytes at `data` for this call.
            let adv_data = unsafe { sys::slice(disc.data, disc.length_data.into()) };
            let ev = Event::ScanResult {
                addr_type: disc.addr.type_,
                addr: addr_msb_first(disc.addr.val),
                adv_type: disc.event_type,
                rssi: disc.rssi,
                adv_data,
            };
            event::dispatch(t, &ev);
        }
        ns::BLE_GAP_EVENT_DISC_COMPLETE => {
            event::dispatch(t, &Event::ScanDone);
        }
        _ => {}
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_upgrades_follow_the_controller_and_the_script() {
        let both = LE_FEAT_DATA_LENGTH | LE_FEAT_2M_PHY;
        assert_eq!(link_upgrades(both, true, true), (true, true));
        assert_eq!(
            link_upgrades(LE_FEAT_DATA_LENGTH, true, true),
            (true, false)
        );
        assert_eq!(link_upgrades(LE_FEAT_2M_PHY, true, true), (false, true));
        assert_eq!(link_upgrades(0, true, true), (false, false));
        assert_eq!(link_upgrades(both, false, true), (false, true));
        assert_eq!(link_upgrades(both, true, false), (true, false));
    }

    #[test]
    fn conn_params_round_down_to_hci_units() {
        let p = ConnParams::from_script(7_500, 30_624, 4, 2_569).unwrap();
        assert_eq!(
            p,
            ConnParams {
                itvl_min: 6,
                itvl_max: 24,
                latency: 4,
                supervision_timeout: 256,
            }
        );
    }

    #[test]
    fn conn_params_spec_limits_are_accepted() {
        assert!(ConnParams::from_script(7_500, 4_000_000, 0, 32_000).is_ok());
        assert!(ConnParams::from_script(7_500, 7_500, 499, 32_000).is_ok());
        assert!(ConnParams::from_script(7_500, 7_500, 0, 100).is_ok());
    }

    #[test]
    fn conn_params_outside_the_spec_are_invalid() {
        let bad = [
            (50_000, 30_000, 0, 2_560),       // min > max
            (6_249, 30_000, 0, 2_560),        // below 7.5 ms
            (7_500, 4_001_250, 0, 32_000),    // above 4 s
            (-1_250, 30_000, 0, 2_560),       // negative
            (30_000, 30_000, 500, 32_000),    // latency above 499
            (30_000, 30_000, -1, 2_560),      // negative latency
            (7_500, 7_500, 0, 99),            // timeout below 100 ms
            (7_500, 7_500, 0, 32_010),        // timeout above 32 s
            (1_000_000, 1_000_000, 0, 2_000), // timeout == interval * 2
            (100_000, 100_000, 4, 1_000),     // timeout == interval * (latency + 1) * 2
        ];
        for (min, max, lat, to) in bad {
            assert_eq!(
                ConnParams::from_script(min, max, lat, to),
                Err(Error::InvalidArg),
                "{min} {max} {lat} {to}"
            );
        }
        // Just above the latency bound is enough.
        assert!(ConnParams::from_script(100_000, 100_000, 4, 1_010).is_ok());
    }
}
