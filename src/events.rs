//! IRQ events: their codes, and the hand-off of one event to the Python handler.
//!
//! Events are dispatched synchronously from NimBLE's callbacks, as MicroPython's C module does
//! on NimBLE ports: the shim builds the `data` tuple on its stack, with memoryviews aliasing
//! the bytes we pass, calls the handler under an exception guard, and returns what it
//! returned. Callers must not hold any `Global` borrow while dispatching: the handler may call
//! back into `BLE`.

use core::ptr;

use crate::uuid::Uuid;

// The event numbers scripts see (spec §6).
/// `_IRQ_CENTRAL_CONNECT`
pub const IRQ_CENTRAL_CONNECT: u16 = 1;
/// `_IRQ_CENTRAL_DISCONNECT`
pub const IRQ_CENTRAL_DISCONNECT: u16 = 2;
/// `_IRQ_GATTS_WRITE`
pub const IRQ_GATTS_WRITE: u16 = 3;
/// `_IRQ_GATTS_READ_REQUEST`
pub const IRQ_GATTS_READ_REQUEST: u16 = 4;
/// `_IRQ_SCAN_RESULT`
pub const IRQ_SCAN_RESULT: u16 = 5;
/// `_IRQ_SCAN_DONE`
pub const IRQ_SCAN_DONE: u16 = 6;
/// `_IRQ_PERIPHERAL_CONNECT`
pub const IRQ_PERIPHERAL_CONNECT: u16 = 7;
/// `_IRQ_PERIPHERAL_DISCONNECT`
pub const IRQ_PERIPHERAL_DISCONNECT: u16 = 8;
/// `_IRQ_GATTC_SERVICE_RESULT`
pub const IRQ_GATTC_SERVICE_RESULT: u16 = 9;
/// `_IRQ_GATTC_SERVICE_DONE`
pub const IRQ_GATTC_SERVICE_DONE: u16 = 10;
/// `_IRQ_GATTC_CHARACTERISTIC_RESULT`
pub const IRQ_GATTC_CHARACTERISTIC_RESULT: u16 = 11;
/// `_IRQ_GATTC_CHARACTERISTIC_DONE`
pub const IRQ_GATTC_CHARACTERISTIC_DONE: u16 = 12;
/// `_IRQ_GATTC_DESCRIPTOR_RESULT`
pub const IRQ_GATTC_DESCRIPTOR_RESULT: u16 = 13;
/// `_IRQ_GATTC_DESCRIPTOR_DONE`
pub const IRQ_GATTC_DESCRIPTOR_DONE: u16 = 14;
/// `_IRQ_GATTC_READ_RESULT`
pub const IRQ_GATTC_READ_RESULT: u16 = 15;
/// `_IRQ_GATTC_READ_DONE`
pub const IRQ_GATTC_READ_DONE: u16 = 16;
/// `_IRQ_GATTC_WRITE_DONE`
pub const IRQ_GATTC_WRITE_DONE: u16 = 17;
/// `_IRQ_GATTC_NOTIFY`
pub const IRQ_GATTC_NOTIFY: u16 = 18;
/// `_IRQ_GATTC_INDICATE`
pub const IRQ_GATTC_INDICATE: u16 = 19;
/// `_IRQ_GATTS_INDICATE_DONE`
pub const IRQ_GATTS_INDICATE_DONE: u16 = 20;
/// `_IRQ_MTU_EXCHANGED`
pub const IRQ_MTU_EXCHANGED: u16 = 21;
/// `_IRQ_L2CAP_ACCEPT`
pub const IRQ_L2CAP_ACCEPT: u16 = 22;
/// `_IRQ_L2CAP_CONNECT`
pub const IRQ_L2CAP_CONNECT: u16 = 23;
/// `_IRQ_L2CAP_DISCONNECT`
pub const IRQ_L2CAP_DISCONNECT: u16 = 24;
/// `_IRQ_L2CAP_RECV`
pub const IRQ_L2CAP_RECV: u16 = 25;
/// `_IRQ_L2CAP_SEND_READY`
pub const IRQ_L2CAP_SEND_READY: u16 = 26;
/// `_IRQ_CONNECTION_UPDATE`
pub const IRQ_CONNECTION_UPDATE: u16 = 27;
/// `_IRQ_ENCRYPTION_UPDATE`
pub const IRQ_ENCRYPTION_UPDATE: u16 = 28;
/// `_IRQ_GET_SECRET`
pub const IRQ_GET_SECRET: u16 = 29;
/// `_IRQ_SET_SECRET`
pub const IRQ_SET_SECRET: u16 = 30;
/// `_IRQ_PASSKEY_ACTION`
pub const IRQ_PASSKEY_ACTION: u16 = 31;

/// What one tuple item is.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqArgKind {
    /// An `int` (`value`).
    Int = 0,
    /// A read-only memoryview over `len` bytes at `ptr`, valid only during the handler.
    Bytes = 1,
    /// A `UUID` built from the `Uuid` at `ptr`.
    Uuid = 2,
    /// `None`.
    None = 3,
}

/// One item of an event's `data` tuple.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IrqArg {
    /// How to convert the argument.
    pub kind: IrqArgKind,
    /// The value of an `Int`.
    pub value: i64,
    /// The data of `Bytes` or `Uuid`.
    pub ptr: *const u8,
    /// The length of `Bytes` data.
    pub len: usize,
}

impl IrqArg {
    /// An integer item.
    pub fn int(value: i64) -> Self {
        IrqArg {
            kind: IrqArgKind::Int,
            value,
            ptr: ptr::null(),
            len: 0,
        }
    }

    /// A memoryview item over `data`, which must outlive the dispatch.
    pub fn bytes(data: &[u8]) -> Self {
        IrqArg {
            kind: IrqArgKind::Bytes,
            value: 0,
            ptr: data.as_ptr(),
            len: data.len(),
        }
    }

    /// A UUID item.
    pub fn uuid(uuid: &Uuid) -> Self {
        IrqArg {
            kind: IrqArgKind::Uuid,
            value: 0,
            ptr: (uuid as *const Uuid).cast(),
            len: core::mem::size_of::<Uuid>(),
        }
    }

    /// `None`.
    pub fn none() -> Self {
        IrqArg {
            kind: IrqArgKind::None,
            value: 0,
            ptr: ptr::null(),
            len: 0,
        }
    }
}

/// What the handler returned.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IrqResult {
    /// True if a handler ran and returned normally.
    pub handled: bool,
    /// The return value as an int: ints and bools convert; anything else (None included) is 0.
    pub value: i64,
    /// With an output buffer: the length of the buffer the handler returned (its first bytes
    /// copied, up to the output's size), or -1 when it returned None or no buffer.
    pub out_len: i64,
}

extern "C" {
    /// Calls the registered handler with `(event, tuple(args))` under an exception guard.
    /// When `out` is not null, a returned buffer is copied into it (up to `out_cap` bytes).
    fn ubt_glue_irq(
        event: u16,
        args: *const IrqArg,
        n_args: usize,
        out: *mut u8,
        out_cap: usize,
    ) -> IrqResult;
}

/// Calls the Python handler for `event` with `args`. Never unwinds into Rust.
pub fn dispatch(event: u16, args: &[IrqArg]) -> IrqResult {
    // SAFETY: `args` and the memory its items point to are valid for the duration of the call,
    // and the shim never raises past its own nlr guard (design rules 1 and 2).
    unsafe { ubt_glue_irq(event, args.as_ptr(), args.len(), ptr::null_mut(), 0) }
}

/// Calls the handler for an event that answers with a buffer (`_IRQ_GET_SECRET`): true when it
/// returned a buffer of exactly `out.len()` bytes, now in `out`; false for None, any other
/// length or no handler.
pub fn dispatch_for_buffer(event: u16, args: &[IrqArg], out: &mut [u8]) -> bool {
    // SAFETY: as in `dispatch`; `out` is writable for `out.len()` bytes during the call.
    let r = unsafe {
        ubt_glue_irq(
            event,
            args.as_ptr(),
            args.len(),
            out.as_mut_ptr(),
            out.len(),
        )
    };
    r.handled && r.out_len == out.len() as i64
}
