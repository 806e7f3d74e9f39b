//! The host logic behind the `BLE` methods: what each call does to NimBLE, and what NimBLE's
//! callbacks turn into events.
//!
//! [`stack`] owns the life cycle and the poll, [`gap`] fans NimBLE's GAP events out to the
//! module that owns each, and the others own one area of the API each; [`state`] is the
//! life-cycle state they all read.

pub mod gap;
#[cfg(feature = "gatt-client")]
pub mod gattc;
pub mod gatts;
#[cfg(feature = "l2cap")]
pub mod l2cap;
#[cfg(feature = "security")]
pub mod security;
pub mod stack;
pub mod state;
