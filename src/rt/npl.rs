//! The NimBLE porting layer (NPL): event queues, callouts, mutexes, semaphores, time and
//! critical sections, for a host that runs on MicroPython's one thread.
//!
//! NimBLE declares these functions in `nimble/nimble_npl.h`; the struct layouts are ours
//! (`nimble/include/nimble/nimble_npl_os.h`). Nothing here blocks on another thread:
//! semaphores are only pended by the host while it waits for an HCI command to complete, and
//! that wait pumps the UART (never Python) until the controller answers or time runs out.
//! Callouts are timers checked against MicroPython's `ticks_ms` at each poll.

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use nimble_sys::{
    ble_npl_callout, ble_npl_error_BLE_NPL_OK as NPL_OK,
    ble_npl_error_BLE_NPL_TIMEOUT as NPL_TIMEOUT, ble_npl_error_t, ble_npl_event, ble_npl_event_fn,
    ble_npl_eventq, ble_npl_mutex, ble_npl_sem, ble_npl_time_t,
};

use crate::hci::transport;
use crate::port;
use crate::rt::sched;
use crate::thread::{Global, NimbleThread};

/// Heads of the intrusive lists of every initialised queue and callout.
struct Lists {
    queues: *mut ble_npl_eventq,
    callouts: *mut ble_npl_callout,
    critical_depth: u32,
}

static LISTS: Global<Lists> = Global::new(Lists {
    queues: ptr::null_mut(),
    callouts: ptr::null_mut(),
    critical_depth: 0,
});

fn lists<R>(f: impl FnOnce(&mut Lists) -> R) -> R {
    // The lists are only borrowed inside this module for a few pointer operations and never
    // across a call out of it, so the borrow cannot be taken twice.
    // SAFETY: NimBLE calls its porting layer only from its host, and the host only runs on
    // the NimBLE thread (inside polls and the shim's calls), as do the poll's own calls here.
    let t = unsafe { NimbleThread::new_unchecked() };
    match LISTS.with(t, f) {
        Some(r) => r,
        None => unreachable_borrow(),
    }
}

#[cold]
fn unreachable_borrow() -> ! {
    // A re-entrant borrow here would mean NimBLE called the NPL from inside the NPL, which
    // none of the functions below allow. Abort rather than corrupt the lists.
    port::abort()
}

/// The token for NimBLE's calls into its porting layer.
fn nimble_thread() -> NimbleThread {
    // SAFETY: as in `lists`: only the NimBLE thread runs NimBLE and its porting layer.
    unsafe { NimbleThread::new_unchecked() }
}

fn now() -> u32 {
    port::ticks_ms()
}

// --- Event queues -------------------------------------------------------------------------

/// # Safety
/// `evq` must point to a live queue.
unsafe fn queue_push(evq: *mut ble_npl_eventq, ev: *mut ble_npl_event) {
    // SAFETY: the caller guarantees both pointers are live NimBLE objects.
    unsafe {
        if (*ev).queued {
            return;
        }
        (*ev).next = ptr::null_mut();
        (*ev).queued = true;
        if (*evq).tail.is_null() {
            (*evq).head = ev;
        } else {
            (*(*evq).tail).next = ev;
        }
        (*evq).tail = ev;
    }
}

/// # Safety
/// `evq` must point to a live queue.
unsafe fn queue_pop(evq: *mut ble_npl_eventq) -> *mut ble_npl_event {
    // SAFETY: the caller guarantees `evq` is live; queued events are live while queued.
    unsafe {
        let ev = (*evq).head;
        if !ev.is_null() {
            (*evq).head = (*ev).next;
            if (*evq).head.is_null() {
                (*evq).tail = ptr::null_mut();
            }
            (*ev).next = ptr::null_mut();
            (*ev).queued = false;
        }
        ev
    }
}

/// # Safety
/// `evq` must point to a live queue.
unsafe fn queue_remove(evq: *mut ble_npl_eventq, ev: *mut ble_npl_event) {
    // SAFETY: the caller guarantees `evq` is live; queued events are live while queued.
    unsafe {
        if evq.is_null() || !(*ev).queued {
            return;
        }
        let mut prev: *mut ble_npl_event = ptr::null_mut();
        let mut cur = (*evq).head;
        while !cur.is_null() {
            if cur == ev {
                let next = (*cur).next;
                if prev.is_null() {
                    (*evq).head = next;
                } else {
                    (*prev).next = next;
                }
                if (*evq).tail == cur {
                    (*evq).tail = prev;
                }
                (*ev).next = ptr::null_mut();
                (*ev).queued = false;
                return;
            }
            prev = cur;
            cur = (*cur).next;
        }
    }
}

/// Always true: the host runs whenever MicroPython polls it.
#[no_mangle]
pub extern "C" fn ble_npl_os_started() -> bool {
    true
}

/// The one task the host runs on.
#[no_mangle]
pub extern "C" fn ble_npl_get_current_task_id() -> *mut c_void {
    // One task: any stable non-null value identifies it.
    ptr::addr_of!(LISTS) as *mut c_void
}

/// # Safety
/// `evq` must point to writable memory for a queue that outlives the host session.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_eventq_init(evq: *mut ble_npl_eventq) {
    lists(|l| {
        // SAFETY: NimBLE passes its static queue objects, which live for the whole program.
        unsafe {
            (*evq).head = ptr::null_mut();
            (*evq).tail = ptr::null_mut();
            let mut q = l.queues;
            while !q.is_null() {
                if q == evq {
                    return;
                }
                q = (*q).next_queue;
            }
            (*evq).next_queue = l.queues;
            l.queues = evq;
        }
    })
}

/// # Safety
/// `evq` must be an initialised queue.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_eventq_get(
    evq: *mut ble_npl_eventq,
    _tmo: ble_npl_time_t,
) -> *mut ble_npl_event {
    // Only nimble_port_run() waits on a queue, and we never call it: the poll drains queues.
    // SAFETY: `evq` is an initialised queue per the contract.
    unsafe { queue_pop(evq) }
}

/// # Safety
/// `evq` and `ev` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_eventq_put(evq: *mut ble_npl_eventq, ev: *mut ble_npl_event) {
    // SAFETY: both are initialised NimBLE objects per the contract.
    unsafe { queue_push(evq, ev) };
    // Work queued from an API call (e.g. a notification NimBLE sends later) must not wait for
    // unrelated controller traffic: outside a poll, ask for one.
    if !IN_POLL.load(Ordering::Acquire) {
        let _ = sched::request_poll();
    }
}

/// Set while [`run_all_events`]'s caller, the poll, is running: events queued then run in
/// the same poll.
static IN_POLL: AtomicBool = AtomicBool::new(false);

/// Marks the start and end of a poll (see [`IN_POLL`]).
pub fn set_in_poll(on: bool) {
    IN_POLL.store(on, Ordering::Release);
}

/// # Safety
/// `evq` and `ev` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_eventq_remove(evq: *mut ble_npl_eventq, ev: *mut ble_npl_event) {
    // SAFETY: both are initialised NimBLE objects per the contract.
    unsafe { queue_remove(evq, ev) }
}

/// # Safety
/// `ev` must point to writable event memory.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_event_init(
    ev: *mut ble_npl_event,
    fn_: ble_npl_event_fn,
    arg: *mut c_void,
) {
    // SAFETY: `ev` is writable per the contract.
    unsafe {
        (*ev).fn_ = fn_;
        (*ev).arg = arg;
        (*ev).next = ptr::null_mut();
        (*ev).queued = false;
    }
}

/// # Safety
/// `ev` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_event_is_queued(ev: *mut ble_npl_event) -> bool {
    // SAFETY: `ev` is initialised per the contract.
    unsafe { (*ev).queued }
}

/// # Safety
/// `ev` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_event_get_arg(ev: *mut ble_npl_event) -> *mut c_void {
    // SAFETY: `ev` is initialised per the contract.
    unsafe { (*ev).arg }
}

/// # Safety
/// `ev` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_event_set_arg(ev: *mut ble_npl_event, arg: *mut c_void) {
    // SAFETY: `ev` is initialised per the contract.
    unsafe { (*ev).arg = arg }
}

/// # Safety
/// `evq` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_eventq_is_empty(evq: *mut ble_npl_eventq) -> bool {
    // SAFETY: `evq` is initialised per the contract.
    unsafe { (*evq).head.is_null() }
}

/// # Safety
/// `ev` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_event_run(ev: *mut ble_npl_event) {
    // SAFETY: `ev` is initialised; its function, if any, is NimBLE's own handler for it.
    unsafe {
        if let Some(f) = (*ev).fn_ {
            f(ev);
        }
    }
}

/// Runs queued events until every queue is empty.
///
/// Stops early when the event just run put itself back on a queue: NimBLE's host-reset event
/// re-queues itself while the controller does not answer, and running it again at once would
/// spin without ever returning to MicroPython.
pub fn run_all_events(_t: NimbleThread) {
    loop {
        let ev = lists(|l| {
            let mut q = l.queues;
            while !q.is_null() {
                // SAFETY: queues on the list are NimBLE statics, live for the program.
                let ev = unsafe { queue_pop(q) };
                if !ev.is_null() {
                    return ev;
                }
                // SAFETY: as above.
                q = unsafe { (*q).next_queue };
            }
            ptr::null_mut()
        });
        if ev.is_null() {
            return;
        }
        // SAFETY: a popped event is a live NimBLE object; running it is what it was queued for.
        unsafe {
            ble_npl_event_run(ev);
            if (*ev).queued {
                return;
            }
        }
    }
}

// --- Callouts -----------------------------------------------------------------------------

/// # Safety
/// `co` must point to writable callout memory that outlives the host session.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_callout_init(
    co: *mut ble_npl_callout,
    evq: *mut ble_npl_eventq,
    ev_cb: ble_npl_event_fn,
    ev_arg: *mut c_void,
) {
    lists(|l| {
        // SAFETY: NimBLE passes static or long-lived callout objects.
        unsafe {
            ble_npl_event_init(ptr::addr_of_mut!((*co).ev), ev_cb, ev_arg);
            (*co).evq = evq;
            (*co).deadline = 0;
            (*co).active = false;
            let mut c = l.callouts;
            while !c.is_null() {
                if c == co {
                    return;
                }
                c = (*c).next_callout;
            }
            (*co).next_callout = l.callouts;
            l.callouts = co;
        }
    });
    publish_next_deadline();
}

/// # Safety
/// `co` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_callout_reset(
    co: *mut ble_npl_callout,
    ticks: ble_npl_time_t,
) -> ble_npl_error_t {
    // SAFETY: `co` is initialised per the contract.
    unsafe {
        (*co).deadline = now().wrapping_add(ticks);
        (*co).active = true;
    }
    publish_next_deadline();
    NPL_OK
}

/// # Safety
/// `co` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_callout_stop(co: *mut ble_npl_callout) {
    // SAFETY: `co` is initialised per the contract; a stopped timer must not fire later
    // from the queue either.
    unsafe {
        (*co).active = false;
        queue_remove((*co).evq, ptr::addr_of_mut!((*co).ev));
    }
    publish_next_deadline();
}

/// # Safety
/// `co` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_callout_is_active(co: *mut ble_npl_callout) -> bool {
    // SAFETY: `co` is initialised per the contract.
    unsafe { (*co).active }
}

/// # Safety
/// `co` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_callout_get_ticks(co: *mut ble_npl_callout) -> ble_npl_time_t {
    // SAFETY: `co` is initialised per the contract.
    unsafe { (*co).deadline }
}

/// # Safety
/// `co` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_callout_remaining_ticks(
    co: *mut ble_npl_callout,
    time: ble_npl_time_t,
) -> ble_npl_time_t {
    // SAFETY: `co` is initialised per the contract.
    let deadline = unsafe { (*co).deadline };
    let left = deadline.wrapping_sub(time) as i32;
    if left > 0 {
        left as u32
    } else {
        0
    }
}

/// # Safety
/// `co` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_callout_set_arg(co: *mut ble_npl_callout, arg: *mut c_void) {
    // SAFETY: `co` is initialised per the contract.
    unsafe { (*co).ev.arg = arg }
}

/// A timer of our own (not NimBLE's) on the same callout list, so the poll fires it and the
/// UART watcher and event hooks see its deadline. It has no queue: its function runs from
/// [`process_callouts`], inside a poll.
pub struct OneShot(core::cell::UnsafeCell<ble_npl_callout>);

// SAFETY: the callout is only touched through methods that take a `NimbleThread`, and by the
// porting layer, which runs on that same thread.
unsafe impl Sync for OneShot {}

impl OneShot {
    /// A timer not yet armed.
    pub const fn new() -> Self {
        OneShot(core::cell::UnsafeCell::new(ble_npl_callout {
            ev: ble_npl_event {
                fn_: None,
                arg: ptr::null_mut(),
                next: ptr::null_mut(),
                queued: false,
            },
            evq: ptr::null_mut(),
            deadline: 0,
            active: false,
            next_callout: ptr::null_mut(),
        }))
    }

    /// Whether the timer is armed (it may already be due, waiting for the next poll).
    pub fn is_armed(&self, _t: NimbleThread) -> bool {
        // SAFETY: a plain read of our own callout on the NimBLE thread.
        unsafe { (*self.0.get()).active }
    }

    /// Whether the timer is armed and not yet due.
    pub fn is_running(&self, t: NimbleThread) -> bool {
        // SAFETY: as above; the callout is initialised or all zero, both valid to read.
        self.is_armed(t) && unsafe { ble_npl_callout_remaining_ticks(self.0.get(), now()) } > 0
    }

    /// Runs `on_due` in the first poll `ms` milliseconds from now. Armed already, it keeps the
    /// earlier deadline.
    pub fn arm(&self, t: NimbleThread, ms: u32, on_due: unsafe extern "C" fn(*mut ble_npl_event)) {
        if self.is_armed(t) {
            return;
        }
        let co = self.0.get();
        // SAFETY: `co` is a static that lives for the program; init links it into the callout
        // list once, and both calls run on the NimBLE thread.
        unsafe {
            ble_npl_callout_init(co, ptr::null_mut(), Some(on_due), ptr::null_mut());
            ble_npl_callout_reset(co, ms);
        }
    }
}

impl Default for OneShot {
    fn default() -> Self {
        Self::new()
    }
}

/// Fires every armed callout whose deadline has passed: its event goes on its queue, or runs
/// at once when it has none.
pub fn process_callouts(_t: NimbleThread) {
    let t = now();
    loop {
        let due = lists(|l| {
            let mut c = l.callouts;
            while !c.is_null() {
                // SAFETY: callouts on the list are NimBLE statics, live for the program.
                unsafe {
                    if (*c).active && (t.wrapping_sub((*c).deadline) as i32) >= 0 {
                        (*c).active = false;
                        return c;
                    }
                    c = (*c).next_callout;
                }
            }
            ptr::null_mut()
        });
        if due.is_null() {
            break;
        }
        // SAFETY: `due` is a live callout; its event belongs to it.
        unsafe {
            let ev = ptr::addr_of_mut!((*due).ev);
            if (*due).evq.is_null() {
                ble_npl_event_run(ev);
            } else {
                queue_push((*due).evq, ev);
            }
        }
    }
    publish_next_deadline();
}

/// Forgets every callout and queue: called when the host is torn down, so that timers of a
/// stopped session can never fire into the next one.
pub fn reset(_t: NimbleThread) {
    lists(|l| {
        let mut c = l.callouts;
        while !c.is_null() {
            // SAFETY: callouts on the list are NimBLE statics, live for the program.
            unsafe {
                (*c).active = false;
                c = (*c).next_callout;
            }
        }
        let mut q = l.queues;
        while !q.is_null() {
            // SAFETY: as above, for queues; popping unlinks each event cleanly.
            unsafe {
                while !queue_pop(q).is_null() {}
                q = (*q).next_queue;
            }
        }
    });
    publish_next_deadline();
}

fn publish_next_deadline() {
    let next = lists(|l| {
        let t = now();
        let mut best: Option<u32> = None;
        let mut c = l.callouts;
        while !c.is_null() {
            // SAFETY: callouts on the list are NimBLE statics, live for the program.
            unsafe {
                if (*c).active {
                    let left = (*c).deadline.wrapping_sub(t) as i32;
                    let cur = best.map(|b| b.wrapping_sub(t) as i32);
                    if cur.is_none_or(|b| left < b) {
                        best = Some((*c).deadline);
                    }
                }
                c = (*c).next_callout;
            }
        }
        best
    });
    sched::set_next_deadline(next);
}

// --- Mutexes and semaphores -----------------------------------------------------------------

/// # Safety
/// `mu` must point to writable mutex memory.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_mutex_init(mu: *mut ble_npl_mutex) -> ble_npl_error_t {
    // SAFETY: `mu` is writable per the contract.
    unsafe { (*mu).depth = 0 };
    NPL_OK
}

/// # Safety
/// `mu` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_mutex_pend(
    mu: *mut ble_npl_mutex,
    _timeout: ble_npl_time_t,
) -> ble_npl_error_t {
    // One thread: the lock is always free to its only user; the depth is kept for debugging.
    // SAFETY: `mu` is initialised per the contract.
    unsafe { (*mu).depth = (*mu).depth.wrapping_add(1) };
    NPL_OK
}

/// # Safety
/// `mu` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_mutex_release(mu: *mut ble_npl_mutex) -> ble_npl_error_t {
    // SAFETY: `mu` is initialised per the contract.
    unsafe { (*mu).depth = (*mu).depth.saturating_sub(1) };
    NPL_OK
}

/// # Safety
/// `sem` must point to writable semaphore memory.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_sem_init(sem: *mut ble_npl_sem, tokens: u16) -> ble_npl_error_t {
    // SAFETY: `sem` is writable per the contract.
    unsafe { (*sem).count = tokens };
    NPL_OK
}

/// Waits for a token. The only waiter is the host blocked on an HCI command, and only the
/// controller's answer releases the token, so the wait moves UART bytes into the transport
/// (which completes commands) and runs no events and no Python.
///
/// # Safety
/// `sem` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_sem_pend(
    sem: *mut ble_npl_sem,
    timeout: ble_npl_time_t,
) -> ble_npl_error_t {
    let start = now();
    loop {
        // SAFETY: `sem` is initialised per the contract; the transport may release it while
        // we pump, through NimBLE's command-complete handler, on this same thread.
        unsafe {
            if (*sem).count > 0 {
                (*sem).count -= 1;
                // What the controller sent right after the answer may already sit in the
                // transport's buffer, read from the UART during the wait. Nothing else would
                // ask for a poll to take it in on a bare-metal port, whose poll requests come
                // from bytes waiting in the UART itself (a Disconnection Complete that followed
                // Disconnect's Command Status was never delivered).
                if transport::rx_buffered(nimble_thread()) && !IN_POLL.load(Ordering::Acquire) {
                    sched::request_poll();
                }
                return NPL_OK;
            }
        }
        let waited = now().wrapping_sub(start);
        if timeout != nimble_sys::BLE_NPL_TIME_FOREVER && waited >= timeout {
            return NPL_TIMEOUT;
        }
        let left = if timeout == nimble_sys::BLE_NPL_TIME_FOREVER {
            10
        } else {
            (timeout - waited).min(10)
        };
        if !transport::pump_rx_for_answer(nimble_thread()) {
            port::uart_wait_rx(left.max(1));
        }
    }
}

/// # Safety
/// `sem` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_sem_release(sem: *mut ble_npl_sem) -> ble_npl_error_t {
    // SAFETY: `sem` is initialised per the contract.
    unsafe { (*sem).count = (*sem).count.saturating_add(1) };
    NPL_OK
}

/// # Safety
/// `sem` must be initialised.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_sem_get_count(sem: *mut ble_npl_sem) -> u16 {
    // SAFETY: `sem` is initialised per the contract.
    unsafe { (*sem).count }
}

// --- Time -----------------------------------------------------------------------------------

/// Now, in ticks (milliseconds from MicroPython's `ticks_ms`).
#[no_mangle]
pub extern "C" fn ble_npl_time_get() -> ble_npl_time_t {
    now()
}

/// # Safety
/// `out_ticks` must be writable.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_time_ms_to_ticks(
    ms: u32,
    out_ticks: *mut ble_npl_time_t,
) -> ble_npl_error_t {
    // SAFETY: `out_ticks` is writable per the contract.
    unsafe { *out_ticks = ms };
    NPL_OK
}

/// # Safety
/// `out_ms` must be writable.
#[no_mangle]
pub unsafe extern "C" fn ble_npl_time_ticks_to_ms(
    ticks: ble_npl_time_t,
    out_ms: *mut u32,
) -> ble_npl_error_t {
    // SAFETY: `out_ms` is writable per the contract.
    unsafe { *out_ms = ticks };
    NPL_OK
}

/// Ticks are milliseconds.
#[no_mangle]
pub extern "C" fn ble_npl_time_ms_to_ticks32(ms: u32) -> ble_npl_time_t {
    ms
}

/// Ticks are milliseconds.
#[no_mangle]
pub extern "C" fn ble_npl_time_ticks_to_ms32(ticks: ble_npl_time_t) -> u32 {
    ticks
}

/// Delays by moving UART bytes for `ticks` ms (+1, so a delay is never shorter than asked).
#[no_mangle]
pub extern "C" fn ble_npl_time_delay(ticks: ble_npl_time_t) {
    let start = now();
    let total = ticks.saturating_add(1);
    loop {
        let waited = now().wrapping_sub(start);
        if waited >= total {
            return;
        }
        // Like a command's wait, a delay runs no host events.
        if !transport::pump_rx_for_answer(nimble_thread()) {
            port::uart_wait_rx((total - waited).min(10));
        }
    }
}

// --- Critical sections ----------------------------------------------------------------------

/// Enters a critical section (a nesting count: nothing preempts the host thread).
#[no_mangle]
pub extern "C" fn ble_npl_hw_enter_critical() -> u32 {
    // Nothing else runs NimBLE code, so a critical section only needs to nest correctly.
    lists(|l| {
        l.critical_depth += 1;
        l.critical_depth
    })
}

/// Leaves a critical section.
#[no_mangle]
pub extern "C" fn ble_npl_hw_exit_critical(_ctx: u32) {
    lists(|l| l.critical_depth = l.critical_depth.saturating_sub(1))
}

/// Whether a critical section is open.
#[no_mangle]
pub extern "C" fn ble_npl_hw_is_in_critical() -> bool {
    lists(|l| l.critical_depth > 0)
}
