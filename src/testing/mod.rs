//! The firmware around the library, simulated in-process: for `cargo test` and, with the `sim`
//! feature, for the fuzz targets.
//!
//! It provides every C function the core imports from the firmware: MicroPython's clock
//! (virtual milliseconds), its scheduler (a flag [`run_scheduled`] acts on), the IRQ call
//! (each event is recorded with its decoded tuple, and may be answered by a handler a test
//! installs), NimBLE's heap (the C allocator) and the HCI UART, which leads to the scripted
//! [`controller::Controller`]. Everything is deterministic and single-threaded; the stack's
//! state is global, so a test takes [`serial`] (or a [`Sim`], which does) for its whole run.

extern crate std;

use std::boxed::Box;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::vec::Vec;

use crate::event::{IrqArg, IrqArgKind, IrqResult};
use crate::uuid::Uuid;

pub mod controller;
#[cfg(test)]
mod tests;

pub use controller::{AclOut, Controller};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that failed while holding a lock leaves consistent plain data behind.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// --- Serialisation ------------------------------------------------------------------------------

static SERIAL: Mutex<()> = Mutex::new(());

/// Held for a test's whole run by every test that touches the stack's global state (NimBLE,
/// the transport, the simulated firmware).
pub fn serial() -> MutexGuard<'static, ()> {
    lock(&SERIAL)
}

// --- Clock and scheduler ------------------------------------------------------------------------

static NOW_MS: AtomicU32 = AtomicU32::new(0);
static POLL_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Virtual milliseconds (what `ticks_ms()` returns).
pub fn now_ms() -> u32 {
    NOW_MS.load(Ordering::Acquire)
}

fn add_ms(ms: u32) {
    NOW_MS.fetch_add(ms, Ordering::AcqRel);
}

#[no_mangle]
extern "C" fn ubt_glue_ticks_ms() -> u32 {
    now_ms()
}

#[no_mangle]
extern "C" fn ubt_glue_schedule_poll() -> bool {
    POLL_REQUESTED.store(true, Ordering::Release);
    true
}

/// Runs what MicroPython's scheduler would: the polls the library asked for, plus the one a
/// port's event hook asks for when controller bytes wait or a timer is due. Returns how many
/// polls ran.
pub fn run_scheduled() -> u32 {
    let mut ran = 0;
    let waiting = with_controller(|c| c.has_bytes_for_host());
    crate::ffi::ubt_port_event(waiting);
    // Bounded, so a library that asks for polls forever shows up as a test failure, not a hang.
    while POLL_REQUESTED.swap(false, Ordering::AcqRel) && ran < 1000 {
        crate::ffi::ubt_poll();
        ran += 1;
    }
    ran
}

/// Lets `ms` virtual milliseconds pass one at a time, with the controller's delayed answers
/// released as they fall due and the scheduler run after each.
pub fn advance(ms: u32) {
    run_scheduled();
    for _ in 0..ms {
        add_ms(1);
        with_controller(|c| c.release_due(now_ms()));
        run_scheduled();
    }
}

/// Advances time until `done()` holds or `max_ms` pass; returns whether it held.
pub fn advance_until(max_ms: u32, mut done: impl FnMut() -> bool) -> bool {
    run_scheduled();
    for _ in 0..max_ms {
        if done() {
            return true;
        }
        advance(1);
    }
    done()
}

// --- IRQ events -----------------------------------------------------------------------------------

/// One item of an event's `data` tuple, decoded and copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    /// An `int`.
    Int(i64),
    /// A memoryview's bytes.
    Bytes(Vec<u8>),
    /// A `UUID`.
    Uuid(Uuid),
    /// `None`.
    None,
}

impl Arg {
    /// The int, if this is one.
    pub fn int(&self) -> Option<i64> {
        match self {
            Arg::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The bytes, if this is a memoryview.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Arg::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// An event handed to the script's handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The event number (`_IRQ_*`).
    pub num: u16,
    /// The `data` tuple.
    pub args: Vec<Arg>,
}

/// What the simulated script's handler returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Reply {
    /// `None` (the default).
    #[default]
    None,
    /// An int (or bool).
    Int(i64),
    /// A buffer (for `_IRQ_GET_SECRET`).
    Buffer(Vec<u8>),
}

/// A script's handler: called with each event after it was recorded.
pub type Handler = Box<dyn FnMut(&Event) -> Reply + Send>;

static EVENTS: Mutex<VecDeque<Event>> = Mutex::new(VecDeque::new());
static HANDLER: Mutex<Option<Handler>> = Mutex::new(None);

/// Takes every event recorded so far, oldest first.
pub fn take_events() -> Vec<Event> {
    lock(&EVENTS).drain(..).collect()
}

/// Installs the handler that answers events (replacing any other); without one every event
/// gets `None`, like a script whose handler returns nothing.
pub fn set_handler(h: impl FnMut(&Event) -> Reply + Send + 'static) {
    *lock(&HANDLER) = Some(Box::new(h));
}

/// Removes the handler.
pub fn clear_handler() {
    *lock(&HANDLER) = None;
}

/// # Safety
/// `arg` must be a valid item as the library builds them: `Bytes` over `len` readable bytes,
/// `Uuid` pointing at a `Uuid`.
unsafe fn decode(arg: &IrqArg) -> Arg {
    match arg.kind {
        IrqArgKind::Int => Arg::Int(arg.value),
        IrqArgKind::Bytes if arg.len == 0 || arg.ptr.is_null() => Arg::Bytes(Vec::new()),
        IrqArgKind::Bytes => {
            // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
            let data = unsafe { std::slice::from_raw_parts(arg.ptr, arg.len) };
            Arg::Bytes(data.to_vec())
        }
        IrqArgKind::Uuid => {
            // SAFETY: the caller guarantees a valid `Uuid` at `ptr`.
            Arg::Uuid(unsafe { arg.ptr.cast::<Uuid>().read_unaligned() })
        }
        IrqArgKind::None => Arg::None,
    }
}

/// The script's side of an event: records it, then asks the installed handler. Re-entrant:
/// an event raised inside the handler is recorded and answered with `None`.
#[no_mangle]
unsafe extern "C" fn ubt_glue_irq(
    event: u16,
    args: *const IrqArg,
    n_args: usize,
    out: *mut u8,
    out_cap: usize,
) -> IrqResult {
    let args = if n_args == 0 || args.is_null() {
        &[][..]
    } else {
        // SAFETY: the library passes `n_args` valid items.
        unsafe { std::slice::from_raw_parts(args, n_args) }
    };
    let ev = Event {
        num: event,
        // SAFETY: each item is valid for the duration of this call.
        args: args.iter().map(|a| unsafe { decode(a) }).collect(),
    };
    lock(&EVENTS).push_back(ev.clone());
    // Taken out while it runs: the handler may call the library, which may raise events.
    let handler = lock(&HANDLER).take();
    let reply = match handler {
        Some(mut h) => {
            let r = h(&ev);
            let mut slot = lock(&HANDLER);
            if slot.is_none() {
                *slot = Some(h);
            }
            r
        }
        None => Reply::None,
    };
    let mut result = IrqResult {
        handled: true,
        value: 0,
        out_len: -1,
    };
    match reply {
        Reply::None => {}
        Reply::Int(v) => result.value = v,
        Reply::Buffer(b) => {
            if !out.is_null() {
                let n = b.len().min(out_cap);
                // SAFETY: the library passes `out_cap` writable bytes at `out`.
                unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), out, n) };
                result.out_len = b.len() as i64;
            }
        }
    }
    result
}

// --- NimBLE's heap --------------------------------------------------------------------------------

extern "C" {
    fn malloc(size: usize) -> *mut u8;
    fn free(ptr: *mut u8);
    fn realloc(ptr: *mut u8, size: usize) -> *mut u8;
}

#[no_mangle]
extern "C" fn ubt_nimble_malloc(size: usize) -> *mut u8 {
    // SAFETY: plain C allocation; NimBLE checks for null.
    unsafe { malloc(size) }
}

#[no_mangle]
unsafe extern "C" fn ubt_nimble_free(ptr: *mut u8) {
    // SAFETY: NimBLE frees only what it got from ubt_nimble_malloc/realloc (or null).
    unsafe { free(ptr) }
}

#[no_mangle]
unsafe extern "C" fn ubt_nimble_realloc(ptr: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: as for free: `ptr` is null or ours.
    unsafe { realloc(ptr, size) }
}

// --- The HCI UART ---------------------------------------------------------------------------------

static CONTROLLER: Mutex<Option<Controller>> = Mutex::new(None);

/// Runs `f` on the controller (a default one is made on first use). Never call the library
/// inside `f`: the UART functions take the same lock.
pub fn with_controller<R>(f: impl FnOnce(&mut Controller) -> R) -> R {
    f(lock(&CONTROLLER).get_or_insert_with(Controller::default))
}

#[no_mangle]
extern "C" fn ubt_port_hci_uart_open() -> i32 {
    with_controller(|c| {
        c.uart_open = true;
        0
    })
}

#[no_mangle]
extern "C" fn ubt_port_hci_uart_close() {
    with_controller(|c| c.uart_open = false);
}

#[no_mangle]
unsafe extern "C" fn ubt_port_hci_uart_write(buf: *const u8, len: usize) -> i32 {
    let data = if len == 0 || buf.is_null() {
        &[][..]
    } else {
        // SAFETY: the library passes `len` readable bytes.
        unsafe { std::slice::from_raw_parts(buf, len) }
    };
    with_controller(|c| c.from_host(data, now_ms()));
    0
}

#[no_mangle]
unsafe extern "C" fn ubt_port_hci_uart_read(buf: *mut u8, len: usize) -> usize {
    if len == 0 || buf.is_null() {
        return 0;
    }
    // SAFETY: the library passes `len` writable bytes.
    let out = unsafe { std::slice::from_raw_parts_mut(buf, len) };
    with_controller(|c| c.to_host(out))
}

/// The HCI command wait: nothing arrives unless already there or delayed until within
/// `timeout_ms`, so time jumps to the earlier of the two.
#[no_mangle]
extern "C" fn ubt_port_hci_uart_wait_rx(timeout_ms: u32) {
    let now = now_ms();
    let step = with_controller(|c| {
        if c.has_bytes_for_host() {
            return 0;
        }
        match c.next_due() {
            Some(due) if due.wrapping_sub(now) <= timeout_ms => due.wrapping_sub(now),
            _ => timeout_ms,
        }
    });
    add_ms(step);
    with_controller(|c| c.release_due(now_ms()));
}

// --- A whole run --------------------------------------------------------------------------------

/// A clean simulated firmware for one test: holds [`serial`], stops whatever an earlier test
/// left running, and starts with a fresh controller, no events and no handler. Stops the stack
/// again when dropped, and then fails the test if the host wrote a malformed H4 stream.
pub struct Sim {
    _serial: MutexGuard<'static, ()>,
}

/// How long the shim waits for sync at `active(True)`.
pub const STARTUP_TIMEOUT_MS: u32 = 2000;
/// The shim's backstop for `active(False)`.
pub const STOP_TIMEOUT_MS: u32 = 3000;

impl Sim {
    /// Takes the lock and resets everything.
    pub fn new() -> Self {
        let guard = serial();
        reset();
        Sim { _serial: guard }
    }
}

impl Default for Sim {
    fn default() -> Self {
        Sim::new()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        clear_handler();
        stop();
        // Every scenario also checks that the host only ever wrote well-formed H4.
        let bad = with_controller(|c| c.bad_bytes);
        if !std::thread::panicking() {
            assert_eq!(
                bad, 0,
                "the host wrote bytes that are not an H4 command or ACL"
            );
        }
    }
}

/// Stops the stack, then replaces the controller and forgets events and the handler.
pub fn reset() {
    clear_handler();
    stop();
    with_controller(|c| *c = Controller::default());
    // A poll still queued runs (on a stopped stack it only clears the request), as
    // MicroPython's scheduler would run it: dropped, the library would wait for it forever.
    if POLL_REQUESTED.swap(false, Ordering::AcqRel) {
        crate::ffi::ubt_poll();
    }
    take_events();
}

/// `active(True)` as the shim does it: stop, begin, run the scheduler until synced or 2 s
/// passed, finish. Returns the status.
pub fn start() -> crate::error::Status {
    stop();
    let st = crate::ffi::ubt_ble_start_begin();
    if st != crate::error::OK {
        return st;
    }
    let synced = advance_until(STARTUP_TIMEOUT_MS, || crate::ffi::ubt_ble_is_active());
    crate::ffi::ubt_ble_start_finish(synced)
}

/// `active(False)` as the shim does it.
pub fn stop() {
    if crate::ffi::ubt_ble_stop_begin() {
        advance_until(STOP_TIMEOUT_MS, || crate::ffi::ubt_ble_is_stopped());
    }
    crate::ffi::ubt_ble_stop_finish();
}
