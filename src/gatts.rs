//! The GATT server: services registered from Python, their attribute values, and the events
//! peers cause (writes, read requests, indication confirmations).

use nimble_sys as ns;

/// A connection went away: forget per-connection server state.
pub fn on_disconnect(_conn_handle: u16) {}

/// NimBLE finished sending a notification or indication (`BLE_GAP_EVENT_NOTIFY_TX`).
pub fn on_notify_tx(_conn_handle: u16, _attr_handle: u16, _status: i32, _indication: bool) {
    let _ = ns::BLE_HS_EDONE;
}
