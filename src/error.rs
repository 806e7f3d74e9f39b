//! Errors as the C shim raises them: one status integer crosses the FFI boundary.
//!
//! `0` is success. Values at or above [`PY_ERROR_BASE`] name a specific Python exception with a
//! fixed message (the shim owns the message text, so MicroPython's ROM-text compression applies
//! to it). Every other value is an `OSError` argument, which can be negative: NimBLE codes the
//! C module does not map pass through negated, and scripts see them (spec §3.1).

/// A status as returned to the C shim.
pub type Status = i32;

/// Success.
pub const OK: Status = 0;

/// Errno values. They are Linux's, which MicroPython's bare-metal errno table also uses.
pub mod errno {
    #![allow(missing_docs)] // the standard errno names document themselves
    pub const ENOENT: i32 = 2;
    pub const EIO: i32 = 5;
    pub const E2BIG: i32 = 7;
    pub const EAGAIN: i32 = 11;
    pub const ENOMEM: i32 = 12;
    pub const EBUSY: i32 = 16;
    pub const ENODEV: i32 = 19;
    pub const EINVAL: i32 = 22;
    pub const EOPNOTSUPP: i32 = 95;
    pub const ENOTCONN: i32 = 107;
    pub const ETIMEDOUT: i32 = 110;
    pub const EALREADY: i32 = 114;
}

/// First status value that is not an `OSError`.
pub const PY_ERROR_BASE: Status = 0x1_0000;

/// Python exceptions other than `OSError`, each with the message the C module uses.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PyError {
    /// `ValueError("invalid UUID")`
    InvalidUuid = 0x1_0000,
    /// `ValueError("invalid char in UUID")`
    UuidInvalidChar,
    /// `ValueError("UUID too long")`
    UuidTooLong,
    /// `ValueError("UUID too short")`
    UuidTooShort,
    /// `ValueError("unknown config param")`
    UnknownConfig,
}

// The C header needs the literal above; keep it in step with the base.
const _: () = assert!(PyError::InvalidUuid as i32 == PY_ERROR_BASE);

impl From<PyError> for Status {
    fn from(e: PyError) -> Status {
        e as Status
    }
}

impl From<crate::uuid::UuidError> for PyError {
    fn from(e: crate::uuid::UuidError) -> PyError {
        use crate::uuid::UuidError;
        match e {
            UuidError::Invalid => PyError::InvalidUuid,
            UuidError::InvalidChar => PyError::UuidInvalidChar,
            UuidError::TooLong => PyError::UuidTooLong,
            UuidError::TooShort => PyError::UuidTooShort,
        }
    }
}

/// Maps a NimBLE host return code to the `OSError` argument the C module raises.
///
/// The table is sparse on purpose: codes it leaves out reach Python negated (spec §3.1).
pub fn nimble_to_errno(rc: i32) -> Status {
    use errno::*;
    match rc {
        0 => OK,
        1 => EAGAIN,
        2 => EALREADY,
        3 => EINVAL,
        5 => ENOENT,
        6 => ENOMEM,
        7 => ENOTCONN,
        8 => EOPNOTSUPP,
        10 => EINVAL,
        13 => ETIMEDOUT,
        14 => EIO,
        15 => EBUSY,
        other => other.wrapping_neg(),
    }
}

/// `Ok(())` for NimBLE's 0, else the mapped status.
pub fn check(rc: i32) -> Result<(), Status> {
    match nimble_to_errno(rc) {
        OK => Ok(()),
        st => Err(st),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_codes() {
        assert_eq!(nimble_to_errno(0), 0);
        assert_eq!(nimble_to_errno(2), errno::EALREADY);
        assert_eq!(nimble_to_errno(6), errno::ENOMEM);
        assert_eq!(nimble_to_errno(10), errno::EINVAL);
        assert_eq!(nimble_to_errno(14), errno::EIO);
    }

    #[test]
    fn unmapped_codes_pass_through_negated() {
        assert_eq!(nimble_to_errno(9), -9);
        assert_eq!(nimble_to_errno(18), -18);
        assert_eq!(nimble_to_errno(0x212), -0x212);
    }

    #[test]
    fn python_errors_are_out_of_errno_range() {
        assert!(Status::from(PyError::InvalidUuid) >= PY_ERROR_BASE);
        assert!(Status::from(PyError::UnknownConfig) > Status::from(PyError::InvalidUuid));
    }
}
