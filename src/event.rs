//! The events scripts see: [`Event`], one variant per `_IRQ_*` code, each encoded to the
//! `data` tuple MicroPython's C module passes (spec §6) by [`Event::encode`], the one place
//! that decides a tuple's shape; and their hand-off to the Python handler.
//!
//! Events are dispatched synchronously from NimBLE's callbacks, as MicroPython's C module does
//! on NimBLE ports: the shim builds the `data` tuple, with memoryviews aliasing the bytes we
//! pass, calls the handler under an exception guard, and returns what it returned. Callers
//! must not hold any `Global` borrow while dispatching: the handler may call back into `BLE`.

use core::ptr;

use crate::handle::{AttrHandle, Cid, ConnHandle, Psm};
use crate::thread::NimbleThread;
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

/// The most items an event's tuple has.
pub const MAX_ARGS: usize = 5;

/// One event for the script's handler. Addresses are most-significant byte first, as scripts
/// see them; `None` in an `Option` is Python's `None`.
#[allow(missing_docs)] // the fields are the tuple items the API document names
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// `_IRQ_CENTRAL_CONNECT`: a central connected to our advertising.
    CentralConnect {
        conn_handle: ConnHandle,
        addr_type: u8,
        addr: [u8; 6],
    },
    /// `_IRQ_CENTRAL_DISCONNECT`
    CentralDisconnect {
        conn_handle: ConnHandle,
        addr_type: u8,
        addr: [u8; 6],
    },
    /// `_IRQ_GATTS_WRITE`
    GattsWrite {
        conn_handle: ConnHandle,
        attr_handle: AttrHandle,
    },
    /// `_IRQ_GATTS_READ_REQUEST`: the handler's int return denies the read.
    GattsReadRequest {
        conn_handle: ConnHandle,
        attr_handle: AttrHandle,
    },
    /// `_IRQ_SCAN_RESULT`
    ScanResult {
        addr_type: u8,
        addr: [u8; 6],
        adv_type: u8,
        rssi: i8,
        adv_data: &'a [u8],
    },
    /// `_IRQ_SCAN_DONE`
    ScanDone,
    /// `_IRQ_PERIPHERAL_CONNECT`: our `gap_connect` succeeded.
    PeripheralConnect {
        conn_handle: ConnHandle,
        addr_type: u8,
        addr: [u8; 6],
    },
    /// `_IRQ_PERIPHERAL_DISCONNECT`
    PeripheralDisconnect {
        conn_handle: ConnHandle,
        addr_type: u8,
        addr: [u8; 6],
    },
    /// `_IRQ_GATTC_SERVICE_RESULT`
    GattcServiceResult {
        conn_handle: ConnHandle,
        start_handle: AttrHandle,
        end_handle: AttrHandle,
        uuid: &'a Uuid,
    },
    /// `_IRQ_GATTC_SERVICE_DONE`
    GattcServiceDone {
        conn_handle: ConnHandle,
        status: u16,
    },
    /// `_IRQ_GATTC_CHARACTERISTIC_RESULT`
    GattcCharacteristicResult {
        conn_handle: ConnHandle,
        end_handle: AttrHandle,
        value_handle: AttrHandle,
        properties: u8,
        uuid: &'a Uuid,
    },
    /// `_IRQ_GATTC_CHARACTERISTIC_DONE`
    GattcCharacteristicDone {
        conn_handle: ConnHandle,
        status: u16,
    },
    /// `_IRQ_GATTC_DESCRIPTOR_RESULT`
    GattcDescriptorResult {
        conn_handle: ConnHandle,
        dsc_handle: AttrHandle,
        uuid: &'a Uuid,
    },
    /// `_IRQ_GATTC_DESCRIPTOR_DONE`
    GattcDescriptorDone {
        conn_handle: ConnHandle,
        status: u16,
    },
    /// `_IRQ_GATTC_READ_RESULT`
    GattcReadResult {
        conn_handle: ConnHandle,
        value_handle: AttrHandle,
        char_data: &'a [u8],
    },
    /// `_IRQ_GATTC_READ_DONE`
    GattcReadDone {
        conn_handle: ConnHandle,
        value_handle: AttrHandle,
        status: u16,
    },
    /// `_IRQ_GATTC_WRITE_DONE`
    GattcWriteDone {
        conn_handle: ConnHandle,
        value_handle: AttrHandle,
        status: u16,
    },
    /// `_IRQ_GATTC_NOTIFY`
    GattcNotify {
        conn_handle: ConnHandle,
        value_handle: AttrHandle,
        notify_data: &'a [u8],
    },
    /// `_IRQ_GATTC_INDICATE`
    GattcIndicate {
        conn_handle: ConnHandle,
        value_handle: AttrHandle,
        notify_data: &'a [u8],
    },
    /// `_IRQ_GATTS_INDICATE_DONE`
    GattsIndicateDone {
        conn_handle: ConnHandle,
        value_handle: AttrHandle,
        status: u8,
    },
    /// `_IRQ_MTU_EXCHANGED`
    MtuExchanged { conn_handle: ConnHandle, mtu: u16 },
    /// `_IRQ_L2CAP_ACCEPT`: the handler's int return refuses the channel.
    L2capAccept {
        conn_handle: ConnHandle,
        cid: Cid,
        psm: Psm,
        our_mtu: u16,
        peer_mtu: u16,
    },
    /// `_IRQ_L2CAP_CONNECT`
    L2capConnect {
        conn_handle: ConnHandle,
        cid: Cid,
        psm: Psm,
        our_mtu: u16,
        peer_mtu: u16,
    },
    /// `_IRQ_L2CAP_DISCONNECT`
    L2capDisconnect {
        conn_handle: ConnHandle,
        cid: Cid,
        psm: Psm,
        status: i64,
    },
    /// `_IRQ_L2CAP_RECV`
    L2capRecv { conn_handle: ConnHandle, cid: Cid },
    /// `_IRQ_L2CAP_SEND_READY`
    L2capSendReady {
        conn_handle: ConnHandle,
        cid: Cid,
        status: u8,
    },
    /// `_IRQ_CONNECTION_UPDATE`
    ConnectionUpdate {
        conn_handle: ConnHandle,
        conn_interval: u16,
        conn_latency: u16,
        supervision_timeout: u16,
        status: u8,
    },
    /// `_IRQ_ENCRYPTION_UPDATE`
    EncryptionUpdate {
        conn_handle: ConnHandle,
        encrypted: bool,
        authenticated: bool,
        bonded: bool,
        key_size: u8,
    },
    /// `_IRQ_GET_SECRET`: the handler returns the value, or None.
    GetSecret {
        sec_type: u8,
        index: u8,
        key: Option<&'a [u8]>,
    },
    /// `_IRQ_SET_SECRET`: `value` None deletes; the handler returns whether it kept it.
    SetSecret {
        sec_type: u8,
        key: &'a [u8],
        value: Option<&'a [u8]>,
    },
    /// `_IRQ_PASSKEY_ACTION`
    PasskeyAction {
        conn_handle: ConnHandle,
        action: u8,
        passkey: u32,
    },
}

impl Event<'_> {
    /// The `_IRQ_*` number.
    pub fn code(&self) -> u16 {
        match self {
            Event::CentralConnect { .. } => IRQ_CENTRAL_CONNECT,
            Event::CentralDisconnect { .. } => IRQ_CENTRAL_DISCONNECT,
            Event::GattsWrite { .. } => IRQ_GATTS_WRITE,
            Event::GattsReadRequest { .. } => IRQ_GATTS_READ_REQUEST,
            Event::ScanResult { .. } => IRQ_SCAN_RESULT,
            Event::ScanDone => IRQ_SCAN_DONE,
            Event::PeripheralConnect { .. } => IRQ_PERIPHERAL_CONNECT,
            Event::PeripheralDisconnect { .. } => IRQ_PERIPHERAL_DISCONNECT,
            Event::GattcServiceResult { .. } => IRQ_GATTC_SERVICE_RESULT,
            Event::GattcServiceDone { .. } => IRQ_GATTC_SERVICE_DONE,
            Event::GattcCharacteristicResult { .. } => IRQ_GATTC_CHARACTERISTIC_RESULT,
            Event::GattcCharacteristicDone { .. } => IRQ_GATTC_CHARACTERISTIC_DONE,
            Event::GattcDescriptorResult { .. } => IRQ_GATTC_DESCRIPTOR_RESULT,
            Event::GattcDescriptorDone { .. } => IRQ_GATTC_DESCRIPTOR_DONE,
            Event::GattcReadResult { .. } => IRQ_GATTC_READ_RESULT,
            Event::GattcReadDone { .. } => IRQ_GATTC_READ_DONE,
            Event::GattcWriteDone { .. } => IRQ_GATTC_WRITE_DONE,
            Event::GattcNotify { .. } => IRQ_GATTC_NOTIFY,
            Event::GattcIndicate { .. } => IRQ_GATTC_INDICATE,
            Event::GattsIndicateDone { .. } => IRQ_GATTS_INDICATE_DONE,
            Event::MtuExchanged { .. } => IRQ_MTU_EXCHANGED,
            Event::L2capAccept { .. } => IRQ_L2CAP_ACCEPT,
            Event::L2capConnect { .. } => IRQ_L2CAP_CONNECT,
            Event::L2capDisconnect { .. } => IRQ_L2CAP_DISCONNECT,
            Event::L2capRecv { .. } => IRQ_L2CAP_RECV,
            Event::L2capSendReady { .. } => IRQ_L2CAP_SEND_READY,
            Event::ConnectionUpdate { .. } => IRQ_CONNECTION_UPDATE,
            Event::EncryptionUpdate { .. } => IRQ_ENCRYPTION_UPDATE,
            Event::GetSecret { .. } => IRQ_GET_SECRET,
            Event::SetSecret { .. } => IRQ_SET_SECRET,
            Event::PasskeyAction { .. } => IRQ_PASSKEY_ACTION,
        }
    }

    /// The `data` tuple's items, which point into `self` and its borrows: valid while they are.
    pub fn encode(&self) -> ([IrqArg; MAX_ARGS], usize) {
        use IrqArg as A;
        let int = |v: i64| A::int(v);
        let opt = |b: Option<&[u8]>| b.map_or_else(A::none, A::bytes);
        let mut out = [A::none(); MAX_ARGS];
        let items: &[IrqArg] = match self {
            Event::CentralConnect {
                conn_handle,
                addr_type,
                addr,
            }
            | Event::CentralDisconnect {
                conn_handle,
                addr_type,
                addr,
            }
            | Event::PeripheralConnect {
                conn_handle,
                addr_type,
                addr,
            }
            | Event::PeripheralDisconnect {
                conn_handle,
                addr_type,
                addr,
            } => &[
                int((*conn_handle).into()),
                int((*addr_type).into()),
                A::bytes(addr),
            ],
            Event::GattsWrite {
                conn_handle,
                attr_handle,
            }
            | Event::GattsReadRequest {
                conn_handle,
                attr_handle,
            } => &[int((*conn_handle).into()), int((*attr_handle).into())],
            Event::ScanResult {
                addr_type,
                addr,
                adv_type,
                rssi,
                adv_data,
            } => &[
                int((*addr_type).into()),
                A::bytes(addr),
                int((*adv_type).into()),
                int((*rssi).into()),
                A::bytes(adv_data),
            ],
            Event::ScanDone => &[],
            Event::GattcServiceResult {
                conn_handle,
                start_handle,
                end_handle,
                uuid,
            } => &[
                int((*conn_handle).into()),
                int((*start_handle).into()),
                int((*end_handle).into()),
                A::uuid(uuid),
            ],
            Event::GattcServiceDone {
                conn_handle,
                status,
            }
            | Event::GattcCharacteristicDone {
                conn_handle,
                status,
            }
            | Event::GattcDescriptorDone {
                conn_handle,
                status,
            } => &[int((*conn_handle).into()), int((*status).into())],
            Event::GattcCharacteristicResult {
                conn_handle,
                end_handle,
                value_handle,
                properties,
                uuid,
            } => &[
                int((*conn_handle).into()),
                int((*end_handle).into()),
                int((*value_handle).into()),
                int((*properties).into()),
                A::uuid(uuid),
            ],
            Event::GattcDescriptorResult {
                conn_handle,
                dsc_handle,
                uuid,
            } => &[
                int((*conn_handle).into()),
                int((*dsc_handle).into()),
                A::uuid(uuid),
            ],
            Event::GattcReadResult {
                conn_handle,
                value_handle,
                char_data: data,
            }
            | Event::GattcNotify {
                conn_handle,
                value_handle,
                notify_data: data,
            }
            | Event::GattcIndicate {
                conn_handle,
                value_handle,
                notify_data: data,
            } => &[
                int((*conn_handle).into()),
                int((*value_handle).into()),
                A::bytes(data),
            ],
            Event::GattcReadDone {
                conn_handle,
                value_handle,
                status,
            }
            | Event::GattcWriteDone {
                conn_handle,
                value_handle,
                status,
            } => &[
                int((*conn_handle).into()),
                int((*value_handle).into()),
                int((*status).into()),
            ],
            Event::GattsIndicateDone {
                conn_handle,
                value_handle,
                status,
            } => &[
                int((*conn_handle).into()),
                int((*value_handle).into()),
                int((*status).into()),
            ],
            Event::MtuExchanged { conn_handle, mtu } => {
                &[int((*conn_handle).into()), int((*mtu).into())]
            }
            Event::L2capAccept {
                conn_handle,
                cid,
                psm,
                our_mtu,
                peer_mtu,
            }
            | Event::L2capConnect {
                conn_handle,
                cid,
                psm,
                our_mtu,
                peer_mtu,
            } => &[
                int((*conn_handle).into()),
                int((*cid).into()),
                int((*psm).into()),
                int((*our_mtu).into()),
                int((*peer_mtu).into()),
            ],
            Event::L2capDisconnect {
                conn_handle,
                cid,
                psm,
                status,
            } => &[
                int((*conn_handle).into()),
                int((*cid).into()),
                int((*psm).into()),
                int(*status),
            ],
            Event::L2capRecv { conn_handle, cid } => {
                &[int((*conn_handle).into()), int((*cid).into())]
            }
            Event::L2capSendReady {
                conn_handle,
                cid,
                status,
            } => &[
                int((*conn_handle).into()),
                int((*cid).into()),
                int((*status).into()),
            ],
            Event::ConnectionUpdate {
                conn_handle,
                conn_interval,
                conn_latency,
                supervision_timeout,
                status,
            } => &[
                int((*conn_handle).into()),
                int((*conn_interval).into()),
                int((*conn_latency).into()),
                int((*supervision_timeout).into()),
                int((*status).into()),
            ],
            Event::EncryptionUpdate {
                conn_handle,
                encrypted,
                authenticated,
                bonded,
                key_size,
            } => &[
                int((*conn_handle).into()),
                int((*encrypted).into()),
                int((*authenticated).into()),
                int((*bonded).into()),
                int((*key_size).into()),
            ],
            Event::GetSecret {
                sec_type,
                index,
                key,
            } => &[int((*sec_type).into()), int((*index).into()), opt(*key)],
            Event::SetSecret {
                sec_type,
                key,
                value,
            } => &[int((*sec_type).into()), A::bytes(key), opt(*value)],
            Event::PasskeyAction {
                conn_handle,
                action,
                passkey,
            } => &[
                int((*conn_handle).into()),
                int((*action).into()),
                int((*passkey).into()),
            ],
        };
        out[..items.len()].copy_from_slice(items);
        (out, items.len())
    }
}

/// An address as NimBLE stores it (least-significant byte first), as scripts see it.
pub fn addr_msb_first(addr_le: [u8; 6]) -> [u8; 6] {
    let mut addr = addr_le;
    addr.reverse();
    addr
}

/// Calls the Python handler with `event`. Never unwinds into Rust.
pub fn dispatch(_t: NimbleThread, event: &Event<'_>) -> IrqResult {
    let (args, n) = event.encode();
    // SAFETY: `args` and the memory its items point to (`event` and its borrows) are valid for
    // the duration of the call, and the shim never raises past its own nlr guard (design rules
    // 1 and 2).
    unsafe { ubt_glue_irq(event.code(), args.as_ptr(), n, ptr::null_mut(), 0) }
}

/// Calls the handler for an event that answers with a buffer (`_IRQ_GET_SECRET`): true when it
/// returned a buffer of exactly `out.len()` bytes, now in `out`; false for None, any other
/// length or no handler.
pub fn dispatch_for_buffer(_t: NimbleThread, event: &Event<'_>, out: &mut [u8]) -> bool {
    let (args, n) = event.encode();
    // SAFETY: as in `dispatch`; `out` is writable for `out.len()` bytes during the call.
    let r = unsafe { ubt_glue_irq(event.code(), args.as_ptr(), n, out.as_mut_ptr(), out.len()) };
    r.handled && r.out_len == out.len() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each item's kind as a letter: i(nt), b(ytes), u(uid), n(one).
    fn shape(ev: &Event<'_>) -> (u16, String) {
        let (args, n) = ev.encode();
        let s = args[..n]
            .iter()
            .map(|a| match a.kind {
                IrqArgKind::Int => 'i',
                IrqArgKind::Bytes => 'b',
                IrqArgKind::Uuid => 'u',
                IrqArgKind::None => 'n',
            })
            .collect();
        (ev.code(), s)
    }

    /// Every event's number and tuple shape, against the API document's table (spec §6).
    #[test]
    fn every_event_has_the_c_modules_tuple() {
        let c = ConnHandle(64);
        let h = AttrHandle(21);
        let u = Uuid::from_u16(0x180f);
        let a = [1, 2, 3, 4, 5, 6];
        let d: &[u8] = b"xy";
        let table: &[(Event<'_>, u16, &str)] = &[
            (
                Event::CentralConnect {
                    conn_handle: c,
                    addr_type: 0,
                    addr: a,
                },
                1,
                "iib",
            ),
            (
                Event::CentralDisconnect {
                    conn_handle: c,
                    addr_type: 0,
                    addr: a,
                },
                2,
                "iib",
            ),
            (
                Event::GattsWrite {
                    conn_handle: c,
                    attr_handle: h,
                },
                3,
                "ii",
            ),
            (
                Event::GattsReadRequest {
                    conn_handle: c,
                    attr_handle: h,
                },
                4,
                "ii",
            ),
            (
                Event::ScanResult {
                    addr_type: 1,
                    addr: a,
                    adv_type: 0,
                    rssi: -40,
                    adv_data: d,
                },
                5,
                "ibiib",
            ),
            (Event::ScanDone, 6, ""),
            (
                Event::PeripheralConnect {
                    conn_handle: c,
                    addr_type: 0,
                    addr: a,
                },
                7,
                "iib",
            ),
            (
                Event::PeripheralDisconnect {
                    conn_handle: c,
                    addr_type: 0,
                    addr: a,
                },
                8,
                "iib",
            ),
            (
                Event::GattcServiceResult {
                    conn_handle: c,
                    start_handle: h,
                    end_handle: h,
                    uuid: &u,
                },
                9,
                "iiiu",
            ),
            (
                Event::GattcServiceDone {
                    conn_handle: c,
                    status: 0,
                },
                10,
                "ii",
            ),
            (
                Event::GattcCharacteristicResult {
                    conn_handle: c,
                    end_handle: h,
                    value_handle: h,
                    properties: 2,
                    uuid: &u,
                },
                11,
                "iiiiu",
            ),
            (
                Event::GattcCharacteristicDone {
                    conn_handle: c,
                    status: 0,
                },
                12,
                "ii",
            ),
            (
                Event::GattcDescriptorResult {
                    conn_handle: c,
                    dsc_handle: h,
                    uuid: &u,
                },
                13,
                "iiu",
            ),
            (
                Event::GattcDescriptorDone {
                    conn_handle: c,
                    status: 0,
                },
                14,
                "ii",
            ),
            (
                Event::GattcReadResult {
                    conn_handle: c,
                    value_handle: h,
                    char_data: d,
                },
                15,
                "iib",
            ),
            (
                Event::GattcReadDone {
                    conn_handle: c,
                    value_handle: h,
                    status: 0,
                },
                16,
                "iii",
            ),
            (
                Event::GattcWriteDone {
                    conn_handle: c,
                    value_handle: h,
                    status: 0,
                },
                17,
                "iii",
            ),
            (
                Event::GattcNotify {
                    conn_handle: c,
                    value_handle: h,
                    notify_data: d,
                },
                18,
                "iib",
            ),
            (
                Event::GattcIndicate {
                    conn_handle: c,
                    value_handle: h,
                    notify_data: d,
                },
                19,
                "iib",
            ),
            (
                Event::GattsIndicateDone {
                    conn_handle: c,
                    value_handle: h,
                    status: 0,
                },
                20,
                "iii",
            ),
            (
                Event::MtuExchanged {
                    conn_handle: c,
                    mtu: 100,
                },
                21,
                "ii",
            ),
            (
                Event::L2capAccept {
                    conn_handle: c,
                    cid: Cid(64),
                    psm: Psm(22),
                    our_mtu: 512,
                    peer_mtu: 256,
                },
                22,
                "iiiii",
            ),
            (
                Event::L2capConnect {
                    conn_handle: c,
                    cid: Cid(64),
                    psm: Psm(22),
                    our_mtu: 512,
                    peer_mtu: 256,
                },
                23,
                "iiiii",
            ),
            (
                Event::L2capDisconnect {
                    conn_handle: c,
                    cid: Cid(64),
                    psm: Psm(22),
                    status: 0,
                },
                24,
                "iiii",
            ),
            (
                Event::L2capRecv {
                    conn_handle: c,
                    cid: Cid(64),
                },
                25,
                "ii",
            ),
            (
                Event::L2capSendReady {
                    conn_handle: c,
                    cid: Cid(64),
                    status: 0,
                },
                26,
                "iii",
            ),
            (
                Event::ConnectionUpdate {
                    conn_handle: c,
                    conn_interval: 24,
                    conn_latency: 0,
                    supervision_timeout: 400,
                    status: 0,
                },
                27,
                "iiiii",
            ),
            (
                Event::EncryptionUpdate {
                    conn_handle: c,
                    encrypted: true,
                    authenticated: false,
                    bonded: true,
                    key_size: 16,
                },
                28,
                "iiiii",
            ),
            (
                Event::GetSecret {
                    sec_type: 1,
                    index: 0,
                    key: Some(d),
                },
                29,
                "iib",
            ),
            (
                Event::GetSecret {
                    sec_type: 1,
                    index: 0,
                    key: None,
                },
                29,
                "iin",
            ),
            (
                Event::SetSecret {
                    sec_type: 1,
                    key: d,
                    value: Some(d),
                },
                30,
                "ibb",
            ),
            (
                Event::SetSecret {
                    sec_type: 1,
                    key: d,
                    value: None,
                },
                30,
                "ibn",
            ),
            (
                Event::PasskeyAction {
                    conn_handle: c,
                    action: 2,
                    passkey: 0,
                },
                31,
                "iii",
            ),
        ];
        for (ev, code, want) in table {
            assert_eq!(shape(ev), (*code, want.to_string()), "{ev:?}");
        }
    }

    #[test]
    fn items_carry_the_values() {
        let ev = Event::ScanResult {
            addr_type: 1,
            addr: addr_msb_first([6, 5, 4, 3, 2, 1]),
            adv_type: 4,
            rssi: -40,
            adv_data: b"abc",
        };
        let (args, n) = ev.encode();
        assert_eq!(n, 5);
        assert_eq!(args[0].value, 1);
        // SAFETY: the item points into `ev`, which is alive.
        let addr = unsafe { core::slice::from_raw_parts(args[1].ptr, args[1].len) };
        assert_eq!(addr, [1, 2, 3, 4, 5, 6]);
        assert_eq!(args[3].value, -40);
        assert_eq!(args[4].len, 3);
        let ev = Event::EncryptionUpdate {
            conn_handle: ConnHandle(7),
            encrypted: true,
            authenticated: false,
            bonded: true,
            key_size: 16,
        };
        let (args, _) = ev.encode();
        let values: Vec<i64> = args.iter().map(|a| a.value).collect();
        assert_eq!(values, [7, 1, 0, 1, 16]);
    }
}
