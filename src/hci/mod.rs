//! The HCI link to the controller: H4 framing (plain Rust, [`h4`]) and the NimBLE transport
//! built on it ([`transport`]).

pub mod h4;
pub mod mbuf_pool;
pub mod transport;
