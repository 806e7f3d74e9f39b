//! Errors: the [`Error`] the host logic returns, and the status integer it becomes at the FFI
//! boundary, the only thing that crosses it.
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

/// Why a call failed, as the host logic sees it. Each variant is one Python exception; the
/// conversion to the status the shim raises from happens once, in [`crate::ffi`], through
/// `Status::from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// `OSError(EAGAIN)`: try again later.
    Again,
    /// `OSError(EALREADY)`: already in progress.
    Already,
    /// `OSError(EINVAL)`: a value out of range or not valid now.
    InvalidArg,
    /// `OSError(ENOENT)`: no such thing.
    NotFound,
    /// `OSError(ENOMEM)`: out of memory or buffers.
    NoMem,
    /// `OSError(ENOTCONN)`: no such connection.
    NotConnected,
    /// `OSError(EOPNOTSUPP)`: not supported.
    NotSupported,
    /// `OSError(ETIMEDOUT)`.
    TimedOut,
    /// `OSError(EIO)`.
    Io,
    /// `OSError(EBUSY)`: the stack is doing something that forbids this now.
    Busy,
    /// `OSError(ENODEV)`: the stack is not active.
    NotActive,
    /// `OSError(E2BIG)`: too many items.
    TooBig,
    /// A NimBLE or controller code the C module does not map: scripts see it negated as the
    /// `OSError` argument (spec §3.1).
    Unmapped(i32),
    /// A Python exception other than `OSError`.
    Py(PyError),
}

impl Error {
    /// The error for a non-zero NimBLE host return code, mapped as MicroPython's C module maps
    /// it. The table is sparse on purpose: codes it leaves out reach Python negated.
    pub fn from_nimble(rc: i32) -> Error {
        match rc {
            1 => Error::Again,
            2 => Error::Already,
            3 | 10 => Error::InvalidArg,
            5 => Error::NotFound,
            6 => Error::NoMem,
            7 => Error::NotConnected,
            8 => Error::NotSupported,
            13 => Error::TimedOut,
            14 => Error::Io,
            15 => Error::Busy,
            other => Error::Unmapped(other),
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        use errno::*;
        match e {
            Error::Again => EAGAIN,
            Error::Already => EALREADY,
            Error::InvalidArg => EINVAL,
            Error::NotFound => ENOENT,
            Error::NoMem => ENOMEM,
            Error::NotConnected => ENOTCONN,
            Error::NotSupported => EOPNOTSUPP,
            Error::TimedOut => ETIMEDOUT,
            Error::Io => EIO,
            Error::Busy => EBUSY,
            Error::NotActive => ENODEV,
            Error::TooBig => E2BIG,
            Error::Unmapped(rc) => rc.wrapping_neg(),
            Error::Py(p) => p.into(),
        }
    }
}

impl From<PyError> for Error {
    fn from(e: PyError) -> Error {
        Error::Py(e)
    }
}

impl From<crate::uuid::UuidError> for Error {
    fn from(e: crate::uuid::UuidError) -> Error {
        Error::Py(e.into())
    }
}

/// `Ok(())` for NimBLE's 0, else the mapped error.
pub fn check(rc: i32) -> Result<(), Error> {
    match rc {
        0 => Ok(()),
        rc => Err(Error::from_nimble(rc)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(rc: i32) -> Status {
        match check(rc) {
            Ok(()) => OK,
            Err(e) => e.into(),
        }
    }

    #[test]
    fn mapped_codes() {
        assert_eq!(status_of(0), 0);
        assert_eq!(status_of(2), errno::EALREADY);
        assert_eq!(status_of(6), errno::ENOMEM);
        assert_eq!(status_of(10), errno::EINVAL);
        assert_eq!(status_of(14), errno::EIO);
        assert_eq!(Status::from(Error::NotActive), errno::ENODEV);
    }

    #[test]
    fn unmapped_codes_pass_through_negated() {
        assert_eq!(status_of(9), -9);
        assert_eq!(status_of(18), -18);
        assert_eq!(status_of(0x212), -0x212);
    }

    #[test]
    fn python_errors_are_out_of_errno_range() {
        assert!(Status::from(PyError::InvalidUuid) >= PY_ERROR_BASE);
        assert!(Status::from(PyError::UnknownConfig) > Status::from(PyError::InvalidUuid));
    }
}
