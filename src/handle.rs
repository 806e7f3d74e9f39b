//! The numbers that name things in the Bluetooth API, each its own type so that a connection
//! handle can't be passed where an attribute handle belongs. They are plain `u16`s on the wire
//! and in the C ABI; [`crate::ffi`] wraps them on the way in.

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[repr(transparent)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u16);

        impl From<$name> for i64 {
            fn from(h: $name) -> i64 {
                h.0.into()
            }
        }
    };
}

handle!(
    /// A connection handle (`conn_handle`), as the controller assigns it.
    ConnHandle
);
handle!(
    /// An attribute handle in a GATT database: a characteristic's value handle, a descriptor's
    /// handle, or a service's start or end handle.
    AttrHandle
);
handle!(
    /// An L2CAP channel identifier (our source CID of a connection-oriented channel).
    Cid
);
handle!(
    /// An L2CAP protocol/service multiplexer.
    Psm
);

impl ConnHandle {
    /// The handle NimBLE uses for "no connection" (and for its own reads of a value).
    pub const NONE: ConnHandle = ConnHandle(0xffff);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_bare_u16s() {
        assert_eq!(core::mem::size_of::<ConnHandle>(), 2);
        assert_eq!(i64::from(AttrHandle(0x1234)), 0x1234);
        assert_ne!(ConnHandle(1), ConnHandle::NONE);
    }
}
