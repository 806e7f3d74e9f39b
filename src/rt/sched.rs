//! Poll scheduling, the one state every thread may touch: whether a poll is queued, and when
//! NimBLE's next timer is due. A poll is a run of the host from MicroPython's scheduler; at
//! most one is queued at a time.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::port;

/// Set while a poll is queued on MicroPython's scheduler, so the watcher thread queues one at
/// most.
static POLL_PENDING: AtomicBool = AtomicBool::new(false);

/// Asks for one poll from MicroPython's scheduler. Callable from any thread. Returns true when
/// this call queued a new poll (false: one was already pending, or the queue was full), so the
/// Unix UART thread wakes the VM thread once per queued poll.
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
pub fn poll_pending() -> bool {
    POLL_PENDING.load(Ordering::Acquire)
}

/// The queued poll has started (or will never run: the scheduler was reset), so the next
/// request queues a new one.
pub fn poll_started() {
    POLL_PENDING.store(false, Ordering::Release);
}

/// Set by an event handler that told the script about a new link: the poll then stops handing
/// packets to the host, so the script's next lines (e.g. `l2cap_listen`) run before the peer's
/// first requests on that link are answered.
static SCRIPT_TURN: AtomicBool = AtomicBool::new(false);

/// Asks the running poll to stop after the current packet and let the script run.
pub fn give_script_its_turn() {
    SCRIPT_TURN.store(true, Ordering::Release);
}

/// Whether the script was given its turn since last asked (and clears it).
pub fn take_script_turn() -> bool {
    SCRIPT_TURN.swap(false, Ordering::AcqRel)
}

/// The earliest deadline of an armed NimBLE timer, published for the UART watcher thread and
/// bare-metal event hooks, so they can ask for a poll when a timer is due without traffic.
static NEXT_DEADLINE: AtomicU32 = AtomicU32::new(0);
static DEADLINE_ARMED: AtomicBool = AtomicBool::new(false);

/// Publishes the earliest armed timer's deadline (`None`: no timer armed).
pub fn set_next_deadline(deadline: Option<u32>) {
    match deadline {
        Some(d) => {
            NEXT_DEADLINE.store(d, Ordering::Release);
            DEADLINE_ARMED.store(true, Ordering::Release);
        }
        None => DEADLINE_ARMED.store(false, Ordering::Release),
    }
}

/// Whether a timer is due at `now`, read from any thread.
pub fn timer_due(now: u32) -> bool {
    DEADLINE_ARMED.load(Ordering::Acquire)
        && (now.wrapping_sub(NEXT_DEADLINE.load(Ordering::Acquire)) as i32) >= 0
}

/// Asks for a poll when the HCI UART has bytes waiting or one of NimBLE's timers is due. For
/// the port's UART (any thread) and bare-metal event hooks; true when it queued a new poll.
pub fn wake(rx_waiting: bool) -> bool {
    (rx_waiting || timer_due(port::ticks_ms())) && request_poll()
}

/// What the port's UART is given to ask for polls with.
pub const WAKEUP: port::Wakeup = port::Wakeup {
    request: wake,
    pending: poll_pending,
};
