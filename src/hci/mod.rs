//! The HCI link to the controller: H4 framing (plain Rust, [`h4`]) and the NimBLE transport
//! built on it ([`transport`]), and the checks on what a peer sends before the host sees it
//! ([`l2cap_guard`]).

pub mod h4;
pub mod l2cap_guard;
pub mod mbuf_pool;
pub mod transport;
