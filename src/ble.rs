//! The BLE stack as `bluetooth.BLE` drives it: start-up and shutdown of the NimBLE host,
//! address and device-name configuration, advertising and scanning.
//!
//! Waiting (for host sync, for the stop to complete) happens in the C shim, which runs
//! MicroPython's scheduler between checks of [`is_synced`] / [`is_stopped`]; Rust never blocks
//! with Python runnable. All state is in atomics, so a NimBLE callback that fires inside one
//! of our NimBLE calls (or a Python handler that calls back in) can always read it.

use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void};
use core::ptr;
use core::sync::atomic::{AtomicU8, Ordering};

use nimble_sys as ns;

use crate::error::{check, errno, Status};
use crate::events::{self, IrqArg};
use crate::{hci, npl, port};

/// The stack's life cycle, in the order it moves through.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackState {
    /// Not running; the UART is closed.
    Off = 0,
    /// Opening the UART and initialising NimBLE.
    Starting = 1,
    /// NimBLE is resetting and configuring the controller.
    WaitingForSync = 2,
    /// Synced: every API works.
    Active = 3,
    /// NimBLE is disconnecting and stopping; callbacks are ignored from here on.
    Stopping = 4,
}

static STATE: AtomicU8 = AtomicU8::new(StackState::Off as u8);
/// NimBLE's own-address type used for advertising, scanning and connecting.
static OWN_ADDR_TYPE: AtomicU8 = AtomicU8::new(ns::BLE_OWN_ADDR_PUBLIC as u8);
/// The address mode last selected (`config(addr_mode=)`), 0..=3.
static ADDR_MODE: AtomicU8 = AtomicU8::new(0);

/// NimBLE's "no timeout" duration (`BLE_HS_FOREVER`, `INT32_MAX`), which bindgen cannot
/// evaluate against newlib's headers.
const BLE_HS_FOREVER: i32 = i32::MAX;

/// The current state.
pub fn state() -> StackState {
    match STATE.load(Ordering::Acquire) {
        1 => StackState::Starting,
        2 => StackState::WaitingForSync,
        3 => StackState::Active,
        4 => StackState::Stopping,
        _ => StackState::Off,
    }
}

fn set_state(s: StackState) {
    STATE.store(s as u8, Ordering::Release);
}

/// True when the stack is up: the condition every "requires active" API checks.
pub fn is_active() -> bool {
    state() == StackState::Active
}

/// True while NimBLE runs for a script: syncing at `active(True)` (when it already reads the
/// key store) or active.
pub fn host_running() -> bool {
    matches!(state(), StackState::WaitingForSync | StackState::Active)
}

fn require_active() -> Result<(), Status> {
    if is_active() {
        Ok(())
    } else {
        Err(errno::ENODEV)
    }
}

/// Storage NimBLE keeps a pointer to for the duration of a stop.
struct StopListener(UnsafeCell<ns::ble_hs_stop_listener>);
// SAFETY: only the NimBLE thread touches it (design rule 5).
unsafe impl Sync for StopListener {}
static STOP_LISTENER: StopListener = StopListener(UnsafeCell::new(ns::ble_hs_stop_listener {
    fn_: None,
    arg: ptr::null_mut(),
    link: ns::ble_hs_stop_listener__bindgen_ty_1 {
        sle_next: ptr::null_mut(),
    },
}));

// --- Start-up ---------------------------------------------------------------------------------

extern "C" fn on_sync() {
    if state() != StackState::WaitingForSync {
        // A re-sync after a runtime reset: the C module re-selects nothing and raises nothing.
        return;
    }
    select_initial_address();
    set_state(StackState::Active);
    // After the state change, so the handler's GET_SECRET / SET_SECRET reach the script.
    crate::security::load_our_irk();
}

extern "C" fn on_reset(_reason: c_int) {}

/// Uses the controller's public address when it has one, else a new static random address
/// (spec §13).
fn select_initial_address() {
    let mut public = [0u8; 6];
    // SAFETY: `public` is a 6-byte buffer, as NimBLE requires.
    let rc = unsafe {
        ns::ble_hs_id_copy_addr(
            ns::BLE_ADDR_PUBLIC as u8,
            public.as_mut_ptr(),
            ptr::null_mut(),
        )
    };
    if rc == 0 && public != [0; 6] {
        OWN_ADDR_TYPE.store(ns::BLE_OWN_ADDR_PUBLIC as u8, Ordering::Release);
        ADDR_MODE.store(0, Ordering::Release);
    } else if new_static_random_address().is_ok() {
        OWN_ADDR_TYPE.store(ns::BLE_OWN_ADDR_RANDOM as u8, Ordering::Release);
        ADDR_MODE.store(1, Ordering::Release);
    }
}

fn new_static_random_address() -> Result<(), Status> {
    let mut addr = ns::ble_addr_t::default();
    // SAFETY: `addr` is a valid out-parameter.
    check(unsafe { ns::ble_hs_id_gen_rnd(0, &mut addr) })?;
    // SAFETY: `addr.val` is 6 readable bytes.
    check(unsafe { ns::ble_hs_id_set_rnd(addr.val.as_ptr()) })
}

/// First half of `active(True)`: opens the UART and starts NimBLE. The shim then runs the
/// scheduler until [`is_synced`] or 2 s pass, and calls [`start_finish`].
///
/// The caller has already stopped a running stack.
pub fn start_begin() -> Status {
    set_state(StackState::Starting);
    npl::reset();
    hci::transport::reset();
    crate::gattc::reset();
    crate::l2cap::reset();
    // If the UART does not open the host never syncs and start-up times out, as in the C module.
    let _ = port::uart_open();
    set_state(StackState::WaitingForSync);
    // SAFETY: NimBLE's init functions run on the NimBLE thread with the host stopped;
    // `ble_hs_cfg` is NimBLE's global configuration, written before the host starts.
    unsafe {
        ns::nimble_port_init();
        let cfg = &mut *ptr::addr_of_mut!(ns::ble_hs_cfg);
        cfg.sync_cb = Some(on_sync);
        cfg.reset_cb = Some(on_reset);
    }
    crate::security::configure_host();
    crate::ffi::request_poll();
    crate::error::OK
}

/// True once NimBLE has synced with the controller.
pub fn is_synced() -> bool {
    is_active()
}

/// Second half of `active(True)`: on sync, registers the GAP and GATT services; otherwise
/// tears down and reports `ETIMEDOUT`.
pub fn start_finish(synced: bool) -> Status {
    if !synced || !is_active() {
        force_off();
        return errno::ETIMEDOUT;
    }
    // The GAP and GATT services, with the GATT server's value store (spec §14.4).
    crate::gatts::on_start();
    crate::error::OK
}

// --- Shutdown -----------------------------------------------------------------------------------

extern "C" fn on_stopped(_status: c_int, _arg: *mut c_void) {
    set_state(StackState::Off);
}

/// First half of `active(False)`. Returns true when the shim must run the scheduler until
/// [`is_stopped`] (NimBLE is disconnecting peers), false when the stack is already off.
pub fn stop_begin() -> bool {
    match state() {
        StackState::Off => false,
        StackState::Active => {
            let _ = advertise_stop();
            let _ = scan_stop();
            set_state(StackState::Stopping);
            // SAFETY: the listener is a static NimBLE may keep until it calls `on_stopped`.
            let rc = unsafe {
                ns::ble_hs_stop(STOP_LISTENER.0.get(), Some(on_stopped), ptr::null_mut())
            };
            if rc != 0 {
                set_state(StackState::Off);
            }
            state() != StackState::Off
        }
        _ => {
            set_state(StackState::Off);
            false
        }
    }
}

/// True once the stop has completed.
pub fn is_stopped() -> bool {
    state() == StackState::Off
}

/// Second half of `active(False)`: closes the UART and forgets pending work.
pub fn stop_finish() {
    force_off();
}

fn force_off() {
    set_state(StackState::Off);
    crate::gatts::on_stop();
    crate::l2cap::reset();
    port::uart_close();
    npl::reset();
    hci::transport::reset();
}

// --- Poll ---------------------------------------------------------------------------------------

/// One scheduled poll: fire due timers, move UART bytes into the host and run its events.
pub fn poll() {
    match state() {
        StackState::Off | StackState::Starting => return,
        _ => {}
    }
    // Bytes already received came in before any timer that is due now, so they go first: a
    // scan's last reports must reach the handler before its duration timer ends the scan.
    npl::set_in_poll(true);
    let mut budget = POLL_PACKET_BUDGET;
    let mut caught_up = drain_rx(&mut budget);
    if caught_up {
        // Only once every earlier byte is in: a due timer must not overtake them.
        npl::process_callouts();
        npl::run_all_events();
        caught_up = drain_rx(&mut budget);
    }
    npl::set_in_poll(false);
    if !caught_up {
        // The rest in the next poll, so the script runs in between even if the controller
        // never stops sending.
        crate::ffi::request_poll();
    }
    // NimBLE's shared pool may have drained since a send backed off (spec §10).
    crate::l2cap::check_mem_unstall();
}

/// How many controller packets one poll hands to the host at most.
const POLL_PACKET_BUDGET: u32 = 64;

/// Hands received packets to the host one at a time, running its events after each, until
/// the UART is empty (true) or `budget` packets have gone in (false).
fn drain_rx(budget: &mut u32) -> bool {
    loop {
        if *budget == 0 {
            return false;
        }
        let got = hci::transport::pump_rx();
        npl::run_all_events();
        if !got {
            return true;
        }
        *budget -= 1;
    }
}

// --- Configuration ------------------------------------------------------------------------------

/// `config('mac')`: the address in use, most-significant byte first.
pub fn mac() -> Result<(u8, [u8; 6]), Status> {
    require_active()?;
    let mode = ADDR_MODE.load(Ordering::Acquire);
    if mode == 2 {
        return Err(errno::EINVAL);
    }
    let addr_type = if OWN_ADDR_TYPE.load(Ordering::Acquire) == ns::BLE_OWN_ADDR_PUBLIC as u8 {
        ns::BLE_ADDR_PUBLIC as u8
    } else {
        ns::BLE_ADDR_RANDOM as u8
    };
    let mut addr = [0u8; 6];
    // SAFETY: `addr` is a 6-byte buffer.
    check(unsafe { ns::ble_hs_id_copy_addr(addr_type, addr.as_mut_ptr(), ptr::null_mut()) })?;
    addr.reverse();
    Ok((addr_type, addr))
}

/// `config(addr_mode=m)` (spec §13). Values outside 0..=3 are ignored, as in the C module.
pub fn set_addr_mode(mode: u8) -> Result<(), Status> {
    require_active()?;
    match mode {
        0 => {
            let mut public = [0u8; 6];
            // SAFETY: `public` is a 6-byte buffer.
            let rc = unsafe {
                ns::ble_hs_id_copy_addr(
                    ns::BLE_ADDR_PUBLIC as u8,
                    public.as_mut_ptr(),
                    ptr::null_mut(),
                )
            };
            if rc != 0 || public == [0; 6] {
                return Err(errno::EINVAL);
            }
            OWN_ADDR_TYPE.store(ns::BLE_OWN_ADDR_PUBLIC as u8, Ordering::Release);
        }
        1 => {
            new_static_random_address()?;
            OWN_ADDR_TYPE.store(ns::BLE_OWN_ADDR_RANDOM as u8, Ordering::Release);
        }
        2 => {
            let mut public = [0u8; 6];
            // SAFETY: `public` is a 6-byte buffer.
            let rc = unsafe {
                ns::ble_hs_id_copy_addr(
                    ns::BLE_ADDR_PUBLIC as u8,
                    public.as_mut_ptr(),
                    ptr::null_mut(),
                )
            };
            let own = if rc == 0 && public != [0; 6] {
                ns::BLE_OWN_ADDR_RPA_PUBLIC_DEFAULT
            } else {
                new_static_random_address()?;
                ns::BLE_OWN_ADDR_RPA_RANDOM_DEFAULT
            };
            OWN_ADDR_TYPE.store(own as u8, Ordering::Release);
        }
        3 => {
            let mut addr = ns::ble_addr_t::default();
            // SAFETY: `addr` is a valid out-parameter.
            check(unsafe { ns::ble_hs_id_gen_rnd(1, &mut addr) })?;
            // SAFETY: `addr.val` is 6 readable bytes.
            check(unsafe { ns::ble_hs_id_set_rnd(addr.val.as_ptr()) })?;
            OWN_ADDR_TYPE.store(ns::BLE_OWN_ADDR_RANDOM as u8, Ordering::Release);
        }
        _ => return Ok(()),
    }
    ADDR_MODE.store(mode, Ordering::Release);
    Ok(())
}

/// Longest GAP device name NimBLE stores.
pub const GAP_NAME_MAX: usize = 31;

/// `config('gap_name')`: copies the name into `out`, returns its length. Works inactive.
pub fn gap_name(out: &mut [u8]) -> usize {
    // SAFETY: NimBLE returns its static NUL-terminated name buffer.
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
pub fn set_gap_name(name: &[u8]) -> Result<(), Status> {
    if name.len() > GAP_NAME_MAX {
        return Err(errno::EINVAL);
    }
    let mut buf = [0u8; GAP_NAME_MAX + 1];
    buf[..name.len()].copy_from_slice(name);
    // SAFETY: `buf` is NUL-terminated; NimBLE copies it into its own buffer.
    check(unsafe { ns::ble_svc_gap_device_name_set(buf.as_ptr().cast()) })
}

/// `config('mtu')`.
pub fn mtu() -> Result<u16, Status> {
    require_active()?;
    // SAFETY: reads NimBLE's preferred-MTU setting.
    Ok(unsafe { ns::ble_att_preferred_mtu() })
}

/// `config(mtu=...)`: 23..=527, else `EINVAL`.
pub fn set_mtu(mtu: u16) -> Result<(), Status> {
    require_active()?;
    if !(23..=527).contains(&mtu) {
        return Err(errno::EINVAL);
    }
    // SAFETY: sets NimBLE's preferred-MTU setting; the value is in range.
    check(unsafe { ns::ble_att_set_preferred_mtu(mtu) })
}

// --- Advertising ----------------------------------------------------------------------------------

/// Legacy advertising and scan-response payloads are at most 31 bytes.
const ADV_DATA_MAX: usize = 31;
/// The `OSError` argument the C module raises for over-long advertising data: the controller's
/// "invalid HCI command parameters" status, passed through negated (spec §5.4).
const ADV_DATA_TOO_LONG: Status = -0x12;

/// `gap_advertise(None)`: stops advertising if it is on. Never fails, even inactive.
pub fn advertise_stop() -> Result<(), Status> {
    if !is_active() {
        return Ok(());
    }
    // SAFETY: plain NimBLE queries/commands on the NimBLE thread.
    unsafe {
        if ns::ble_gap_adv_active() != 0 {
            ns::ble_gap_adv_stop();
        }
    }
    Ok(())
}

/// `gap_advertise(interval_us, adv_data, resp_data=, connectable=)`. `None` payloads keep what
/// the controller has.
pub fn advertise_start(
    interval_us: i64,
    adv_data: Option<&[u8]>,
    resp_data: Option<&[u8]>,
    connectable: bool,
) -> Result<(), Status> {
    require_active()?;
    advertise_stop()?;
    if let Some(data) = adv_data {
        if data.len() > ADV_DATA_MAX {
            return Err(ADV_DATA_TOO_LONG);
        }
        // SAFETY: `data` is a valid slice of at most 31 bytes.
        check(unsafe { ns::ble_gap_adv_set_data(data.as_ptr(), data.len() as c_int) })?;
    }
    if let Some(data) = resp_data {
        if data.len() > ADV_DATA_MAX {
            return Err(errno::EINVAL);
        }
        // SAFETY: as above.
        check(unsafe { ns::ble_gap_adv_rsp_set_data(data.as_ptr(), data.len() as c_int) })?;
    }
    let itvl = (interval_us / 625) as u16;
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
            OWN_ADDR_TYPE.load(Ordering::Acquire),
            ptr::null(),
            BLE_HS_FOREVER,
            &params,
            Some(gap_event_as_peripheral),
            ptr::null_mut(),
        )
    })
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
    fn connect_event(self) -> u16 {
        match self {
            OurRole::Peripheral => events::IRQ_CENTRAL_CONNECT,
            OurRole::Central => events::IRQ_PERIPHERAL_CONNECT,
        }
    }

    fn disconnect_event(self) -> u16 {
        match self {
            OurRole::Peripheral => events::IRQ_CENTRAL_DISCONNECT,
            OurRole::Central => events::IRQ_PERIPHERAL_DISCONNECT,
        }
    }
}

/// The connection's descriptor, if NimBLE knows the handle.
pub fn conn_desc(conn_handle: u16) -> Option<ns::ble_gap_conn_desc> {
    let mut desc = ns::ble_gap_conn_desc::default();
    // SAFETY: `desc` is a valid out-parameter.
    (unsafe { ns::ble_gap_conn_find(conn_handle, &mut desc) } == 0).then_some(desc)
}

fn dispatch_conn(event: u16, conn_handle: u16, addr_type: u8, addr_le: [u8; 6]) {
    let mut addr = addr_le;
    addr.reverse();
    events::dispatch(
        event,
        &[
            IrqArg::int(conn_handle.into()),
            IrqArg::int(addr_type.into()),
            IrqArg::bytes(&addr),
        ],
    );
}

/// Events of connections where we are the peripheral (made from our advertising).
unsafe extern "C" fn gap_event_as_peripheral(
    event: *mut ns::ble_gap_event,
    _arg: *mut c_void,
) -> c_int {
    // SAFETY: NimBLE passes a valid event for the duration of the call.
    unsafe { gap_event(OurRole::Peripheral, event) }
}

/// Events of connections where we are the central (made by `gap_connect`).
unsafe extern "C" fn gap_event_as_central(
    event: *mut ns::ble_gap_event,
    _arg: *mut c_void,
) -> c_int {
    // SAFETY: as above.
    unsafe { gap_event(OurRole::Central, event) }
}

/// # Safety
/// `event` is null or points to a valid NimBLE GAP event.
unsafe fn gap_event(role: OurRole, event: *mut ns::ble_gap_event) -> c_int {
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
            if c.status == 0 {
                if let Some(desc) = conn_desc(c.conn_handle) {
                    dispatch_conn(
                        role.connect_event(),
                        c.conn_handle,
                        desc.peer_id_addr.type_,
                        desc.peer_id_addr.val,
                    );
                }
            } else {
                // A failed connect: 65535 on timeout or cancel, as NimBLE reports it.
                dispatch_conn(role.disconnect_event(), c.conn_handle, 0xff, [0; 6]);
            }
        }
        ns::BLE_GAP_EVENT_DISCONNECT => {
            // SAFETY: tag is DISCONNECT.
            let d = unsafe { &u.disconnect };
            dispatch_conn(
                role.disconnect_event(),
                d.conn.conn_handle,
                d.conn.peer_id_addr.type_,
                d.conn.peer_id_addr.val,
            );
            crate::gatts::on_disconnect(d.conn.conn_handle);
            crate::gattc::on_disconnect(d.conn.conn_handle);
        }
        ns::BLE_GAP_EVENT_CONN_UPDATE => {
            // SAFETY: tag is CONN_UPDATE.
            let c = unsafe { &u.conn_update };
            if let Some(desc) = conn_desc(c.conn_handle) {
                events::dispatch(
                    events::IRQ_CONNECTION_UPDATE,
                    &[
                        IrqArg::int(c.conn_handle.into()),
                        IrqArg::int(desc.conn_itvl.into()),
                        IrqArg::int(desc.conn_latency.into()),
                        IrqArg::int(desc.supervision_timeout.into()),
                        IrqArg::int(i64::from(c.status != 0)),
                    ],
                );
            }
        }
        ns::BLE_GAP_EVENT_MTU => {
            // SAFETY: tag is MTU.
            let m = unsafe { &u.mtu };
            if u32::from(m.channel_id) == ns::BLE_L2CAP_CID_ATT {
                events::dispatch(
                    events::IRQ_MTU_EXCHANGED,
                    &[
                        IrqArg::int(m.conn_handle.into()),
                        IrqArg::int(m.value.into()),
                    ],
                );
            }
        }
        ns::BLE_GAP_EVENT_NOTIFY_RX => {
            // SAFETY: tag is NOTIFY_RX.
            let n = unsafe { &u.notify_rx };
            crate::gattc::on_notify_rx(n.conn_handle, n.attr_handle, n.indication() != 0, n.om);
        }
        // Indication confirmations are reported for peripheral-role connections only, as in
        // MicroPython's C module (spec §6, event 20).
        ns::BLE_GAP_EVENT_NOTIFY_TX if role == OurRole::Peripheral => {
            // SAFETY: tag is NOTIFY_TX.
            let n = unsafe { &u.notify_tx };
            crate::gatts::on_notify_tx(n.conn_handle, n.attr_handle, n.status, n.indication() != 0);
        }
        ns::BLE_GAP_EVENT_ENC_CHANGE => {
            // SAFETY: tag is ENC_CHANGE.
            let e = unsafe { &u.enc_change };
            crate::security::on_enc_change(e.conn_handle);
        }
        ns::BLE_GAP_EVENT_PASSKEY_ACTION => {
            // SAFETY: tag is PASSKEY_ACTION.
            let p = unsafe { &u.passkey };
            crate::security::on_passkey_action(p.conn_handle, p.params.action, p.params.numcmp);
        }
        ns::BLE_GAP_EVENT_REPEAT_PAIRING => {
            // SAFETY: tag is REPEAT_PAIRING.
            let r = unsafe { &u.repeat_pairing };
            return crate::security::on_repeat_pairing(r.conn_handle);
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
    addr_type: u8,
    addr: &[u8; 6],
    duration_ms: i32,
    min_conn_interval_us: i32,
    max_conn_interval_us: i32,
) -> Result<(), Status> {
    require_active()?;
    // SAFETY: plain NimBLE query on the NimBLE thread.
    if unsafe { ns::ble_gap_disc_active() } != 0 {
        scan_stop()?;
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
    let mut peer = ns::ble_addr_t {
        type_: addr_type,
        val: *addr,
    };
    peer.val.reverse();
    // SAFETY: `peer` and `params` are valid for the call (NimBLE copies them).
    check(unsafe {
        ns::ble_gap_connect(
            OWN_ADDR_TYPE.load(Ordering::Acquire),
            &peer,
            duration_ms,
            &params,
            Some(gap_event_as_central),
            ptr::null_mut(),
        )
    })
}

/// `gap_connect(None)`: cancels a pending connect.
pub fn connect_cancel() -> Result<(), Status> {
    require_active()?;
    // SAFETY: plain NimBLE command on the NimBLE thread.
    check(unsafe { ns::ble_gap_conn_cancel() })
}

/// `gap_disconnect(conn_handle)`: `Ok(false)` for an unknown handle.
pub fn disconnect(conn_handle: u16) -> Result<bool, Status> {
    require_active()?;
    // SAFETY: plain NimBLE command on the NimBLE thread.
    let rc = unsafe { ns::ble_gap_terminate(conn_handle, HCI_REMOTE_USER_TERMINATED) };
    match crate::error::nimble_to_errno(rc) {
        crate::error::OK => Ok(true),
        errno::ENOTCONN => Ok(false),
        st => Err(st),
    }
}

// --- Scanning ---------------------------------------------------------------------------------------

/// Scan interval and window are in 0.625 ms units, clamped to what HCI allows.
fn scan_units(us: i64) -> u16 {
    (us / 625).clamp(0x0004, 0x4000) as u16
}

/// `gap_scan(duration_ms, interval_us, window_us, active)`.
pub fn scan_start(
    duration_ms: i64,
    interval_us: i64,
    window_us: i64,
    active: bool,
) -> Result<(), Status> {
    require_active()?;
    let itvl = scan_units(interval_us);
    let window = scan_units(window_us);
    if window > itvl {
        return Err(errno::EINVAL);
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
            OWN_ADDR_TYPE.load(Ordering::Acquire),
            duration,
            &params,
            Some(gap_scan_cb),
            ptr::null_mut(),
        )
    })
}

/// `gap_scan(None)`: cancels a running scan and raises `_IRQ_SCAN_DONE` before returning.
pub fn scan_stop() -> Result<(), Status> {
    require_active()?;
    // SAFETY: plain NimBLE query on the NimBLE thread.
    if unsafe { ns::ble_gap_disc_active() } == 0 {
        return Ok(());
    }
    // SAFETY: as above.
    let rc = unsafe { ns::ble_gap_disc_cancel() };
    if rc == 0 {
        events::dispatch(events::IRQ_SCAN_DONE, &[]);
    }
    check(rc)
}

unsafe extern "C" fn gap_scan_cb(event: *mut ns::ble_gap_event, _arg: *mut c_void) -> c_int {
    if state() != StackState::Active || event.is_null() {
        return 0;
    }
    // SAFETY: NimBLE passes a valid event; the union member read matches its type tag.
    let event = unsafe { &*event };
    match event.type_ as u32 {
        ns::BLE_GAP_EVENT_DISC => {
            // SAFETY: the tag says `disc` is the valid member.
            let disc = unsafe { &event.__bindgen_anon_1.disc };
            let mut addr = disc.addr.val;
            addr.reverse();
            let data: &[u8] = if disc.data.is_null() {
                &[]
            } else {
                // SAFETY: NimBLE's report holds `length_data` bytes at `data` for this call.
                unsafe { core::slice::from_raw_parts(disc.data, disc.length_data as usize) }
            };
            events::dispatch(
                events::IRQ_SCAN_RESULT,
                &[
                    IrqArg::int(disc.addr.type_ as i64),
                    IrqArg::bytes(&addr),
                    IrqArg::int(disc.event_type as i64),
                    IrqArg::int(disc.rssi as i64),
                    IrqArg::bytes(data),
                ],
            );
        }
        ns::BLE_GAP_EVENT_DISC_COMPLETE => {
            events::dispatch(events::IRQ_SCAN_DONE, &[]);
        }
        _ => {}
    }
    0
}
