//! The stack's life-cycle state, which every other host module reads (a leaf, so that the
//! life cycle in [`super::stack`] can call into the others without a cycle). Atomics, so a
//! NimBLE callback that fires inside one of our NimBLE calls, or a Python handler that calls
//! back in, can always read it.

use core::sync::atomic::{AtomicU8, Ordering};

use crate::error::Error;

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

/// Moves to `s`; only the life cycle in `super::stack` does.
pub(super) fn set_state(s: StackState) {
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

/// `Err(NotActive)` unless the stack is up: the check every "requires active" method makes.
pub fn require_active() -> Result<(), Error> {
    if is_active() {
        Ok(())
    } else {
        Err(Error::NotActive)
    }
}
