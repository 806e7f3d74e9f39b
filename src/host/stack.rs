//! The stack's life cycle as `BLE.active()` drives it: start-up and shutdown of the NimBLE
//! host, and the poll that runs it. The other host modules hook in here (start, stop), and
//! NimBLE's GAP events reach them through [`super::gap`].
//!
//! Waiting (for host sync, for the stop to complete) happens in the C shim, which runs
//! MicroPython's scheduler between checks of [`is_active`] / [`is_stopped`]; Rust never blocks
//! with Python runnable. All state is in atomics, so a NimBLE callback that fires inside one
//! of our NimBLE calls (or a Python handler that calls back in) can always read it.

use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void};
use core::ptr;

use nimble_sys as ns;

#[cfg(feature = "gatt-client")]
use super::gattc;
#[cfg(feature = "l2cap")]
use super::l2cap;
#[cfg(feature = "security")]
use super::security;
use super::state::{is_active, set_state, state, StackState};
use super::{gap, gatts};
use crate::error::Error;
use crate::hci::transport;
use crate::port;
use crate::rt::{npl, sched};
use crate::sys;
use crate::thread::NimbleThread;

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
    // SAFETY: NimBLE calls its sync callback from its host, on the NimBLE thread.
    let t = unsafe { NimbleThread::new_unchecked() };
    gap::select_initial_address(t);
    set_state(StackState::Active);
    // After the state change, so the handler's GET_SECRET / SET_SECRET reach the script.
    #[cfg(feature = "security")]
    security::load_our_irk(t);
}

/// First half of `active(True)`: opens the UART and starts NimBLE. The shim then runs the
/// scheduler until [`is_active`] or 2 s pass, and calls [`start_finish`].
///
/// The caller has already stopped a running stack. Fails with `InvalidArg` (and the stack stays
/// off) when the port's UART settings are invalid.
pub fn start_begin(t: NimbleThread) -> Result<(), Error> {
    set_state(StackState::Starting);
    npl::reset(t);
    transport::reset(t);
    #[cfg(feature = "gatt-client")]
    gattc::reset(t);
    gap::reset(t);
    #[cfg(feature = "l2cap")]
    l2cap::reset(t);
    match port::uart_open(sched::WAKEUP) {
        // A setting that can never work: say so now rather than after the start-up timeout.
        Err(port::UartError::BadSetting) => {
            set_state(StackState::Off);
            return Err(Error::InvalidArg);
        }
        // If the UART does not open the host never syncs and start-up times out, as in the C
        // module.
        Err(port::UartError::Unavailable) | Ok(()) => {}
    }
    set_state(StackState::WaitingForSync);
    // SAFETY: NimBLE's init runs on the NimBLE thread (the token) with the host stopped.
    unsafe { ns::nimble_port_init() };
    sys::cfg::with(t, |cfg| cfg.sync_cb = Some(on_sync));
    #[cfg(feature = "security")]
    security::configure_host(t);
    sched::request_poll();
    Ok(())
}

/// Second half of `active(True)`, once the host synced (`synced`) or start-up timed out: on
/// sync, registers the GAP and GATT services; otherwise tears down and reports `TimedOut`.
pub fn start_finish(t: NimbleThread, synced: bool) -> Result<(), Error> {
    if !synced || !is_active() {
        force_off(t);
        return Err(Error::TimedOut);
    }
    // The GAP and GATT services, with the GATT server's value store (spec §14.4).
    gatts::on_start(t);
    Ok(())
}

// --- Shutdown -----------------------------------------------------------------------------------

extern "C" fn on_stopped(_status: c_int, _arg: *mut c_void) {
    set_state(StackState::Off);
}

/// First half of `active(False)`. Returns true when the shim must run the scheduler until
/// [`is_stopped`] (NimBLE is disconnecting peers), false when the stack is already off.
pub fn stop_begin(t: NimbleThread) -> bool {
    match state() {
        StackState::Off => false,
        StackState::Active => {
            gap::advertise_stop(t);
            let _ = gap::scan_stop(t);
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
pub fn stop_finish(t: NimbleThread) {
    force_off(t);
}

fn force_off(t: NimbleThread) {
    set_state(StackState::Off);
    gatts::on_stop(t);
    #[cfg(feature = "l2cap")]
    l2cap::reset(t);
    port::uart_close();
    npl::reset(t);
    transport::reset(t);
}

// --- Poll ---------------------------------------------------------------------------------------

/// How long the script runs undisturbed after the event of a new link. A peer (or a
/// controller with no air time, such as RootCanal over TCP) may send its first L2CAP or ATT
/// request in the same instant as the connection: the script waiting for the connection event
/// must get to call `l2cap_listen` before that request is answered, as it does on a real radio.
pub const SCRIPT_TURN_MS: u32 = 3;

/// Runs while the script has its turn; the poll that follows its deadline carries on.
static SCRIPT_TURN: npl::OneShot = npl::OneShot::new();

unsafe extern "C" fn on_script_turn_over(_ev: *mut ns::ble_npl_event) {
    // The poll that fired this carries on draining the UART.
}

fn start_script_turn(t: NimbleThread) {
    SCRIPT_TURN.arm(t, SCRIPT_TURN_MS, on_script_turn_over);
}

/// How a run of [`drain_rx`] ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// The UART has nothing more.
    CaughtUp,
    /// The poll's packet budget is spent; more may be waiting.
    OutOfBudget,
    /// A handler told the script about a new link: the rest waits for its turn to end.
    ScriptsTurn,
}

/// One scheduled poll: fire due timers, move UART bytes into the host and run its events.
pub fn poll(t: NimbleThread) {
    match state() {
        StackState::Off | StackState::Starting => return,
        _ => {}
    }
    if SCRIPT_TURN.is_running(t) {
        // The timer's deadline is published, so a poll comes when the turn is over.
        return;
    }
    // Bytes already received came in before any timer that is due now, so they go first: a
    // scan's last reports must reach the handler before its duration timer ends the scan.
    npl::set_in_poll(true);
    let mut budget = POLL_PACKET_BUDGET;
    let mut drained = drain_rx(t, &mut budget);
    if drained == Drained::CaughtUp {
        // Only once every earlier byte is in: a due timer must not overtake them.
        npl::process_callouts(t);
        npl::run_all_events(t);
        drained = if sched::take_script_turn() {
            Drained::ScriptsTurn
        } else {
            drain_rx(t, &mut budget)
        };
    }
    npl::set_in_poll(false);
    match drained {
        Drained::CaughtUp => {}
        // The rest in the next poll, so the script runs in between even if the controller
        // never stops sending.
        Drained::OutOfBudget => {
            sched::request_poll();
        }
        Drained::ScriptsTurn => start_script_turn(t),
    }
    // NimBLE's shared pool may have drained since a send backed off (spec §10).
    #[cfg(feature = "l2cap")]
    l2cap::check_mem_unstall(t);
}

/// How many controller packets one poll hands to the host at most.
const POLL_PACKET_BUDGET: u32 = 64;

/// Hands received packets to the host one at a time, running its events after each, until
/// the UART is empty, `budget` packets have gone in, or a handler gave the script its turn.
fn drain_rx(t: NimbleThread, budget: &mut u32) -> Drained {
    loop {
        if *budget == 0 {
            return Drained::OutOfBudget;
        }
        let got = transport::pump_rx(t);
        while let Some(req) = transport::take_refused_disconnect(t) {
            sys::private::reject_invalid_cid(
                t,
                req.conn_handle,
                req.identifier,
                req.dcid,
                req.scid,
            );
        }
        npl::run_all_events(t);
        if sched::take_script_turn() {
            return Drained::ScriptsTurn;
        }
        if !got {
            return Drained::CaughtUp;
        }
        *budget -= 1;
    }
}
