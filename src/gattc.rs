//! The GATT client: discovery, reads and writes on a peer's server, and the notifications and
//! indications it sends.

use nimble_sys as ns;

/// A connection went away: finish any client procedure still pending on it.
pub fn on_disconnect(_conn_handle: u16) {}

/// A notification or indication arrived (`BLE_GAP_EVENT_NOTIFY_RX`). NimBLE frees `om` after
/// the callback returns.
pub fn on_notify_rx(
    _conn_handle: u16,
    _attr_handle: u16,
    _indication: bool,
    _om: *mut ns::os_mbuf,
) {
}
