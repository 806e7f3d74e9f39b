//! NimBLE's host-side HCI transport (`ble_hci_trans_*`), over an H4 UART.
//!
//! NimBLE hands us commands in buffers it allocated from us and ACL data in mbufs; we frame
//! them with an H4 type byte and write them to the port's UART. Bytes from the controller go
//! through [`super::h4::H4Parser`]; each complete event is copied into one of our event
//! buffers and given to the host, each ACL packet into an mbuf from NimBLE's system pool.
//! Anything malformed or that does not fit is dropped and counted, never trusted.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ptr;

use nimble_sys::{
    ble_hci_trans_rx_acl_fn, ble_hci_trans_rx_cmd_fn, ble_mbuf_hdr, os_mbuf, os_mbuf_append,
    os_mbuf_free_chain, os_mempool_put_fn, os_msys_get_pkthdr, BLE_HCI_TRANS_BUF_CMD,
    BLE_HCI_TRANS_BUF_EVT_HI, BLE_HCI_TRANS_BUF_EVT_LO,
};

use super::h4::{H4Parser, Packet};
use crate::global::Global;
use crate::port;

/// Command buffers hold an opcode, a length and up to 255 parameter bytes (NimBLE sizes them
/// as 260).
const CMD_BUF_SIZE: usize = 260;
/// Event buffers hold the largest HCI event: code, length and 255 parameter bytes.
const EVT_BUF_SIZE: usize = 2 + 255;
const CMD_BUF_COUNT: usize = 1;
const EVT_HI_COUNT: usize = 8;
const EVT_LO_COUNT: usize = 8;

/// HCI status codes NimBLE understands from a transport.
const BLE_ERR_MEM_CAPACITY: i32 = 0x07;
const BLE_ERR_UNSUPPORTED: i32 = 0x11;

const H4_COMMAND: u8 = 0x01;
const H4_ACL: u8 = 0x02;
const HCI_EVT_LE_META: u8 = 0x3e;
const HCI_LE_SUBEV_ADV_RPT: u8 = 0x02;

#[repr(C, align(8))]
struct Slot<const N: usize>([u8; N]);

/// A fixed pool of byte buffers lent to NimBLE by raw pointer.
struct BufPool<const N: usize, const K: usize> {
    slots: UnsafeCell<[Slot<N>; K]>,
    used: UnsafeCell<[bool; K]>,
}

// SAFETY: pools are only used from the NimBLE thread (design rule 5).
unsafe impl<const N: usize, const K: usize> Sync for BufPool<N, K> {}

impl<const N: usize, const K: usize> BufPool<N, K> {
    const fn new() -> Self {
        BufPool {
            slots: UnsafeCell::new([const { Slot([0; N]) }; K]),
            used: UnsafeCell::new([false; K]),
        }
    }

    fn alloc(&self) -> *mut u8 {
        // SAFETY: single-threaded access; `used` is only touched by alloc/free/reset.
        let used = unsafe { &mut *self.used.get() };
        for (i, u) in used.iter_mut().enumerate() {
            if !*u {
                *u = true;
                // SAFETY: `i < K`, so the slot exists; the pointer stays valid (static).
                return unsafe { (*self.slots.get())[i].0.as_mut_ptr() };
            }
        }
        ptr::null_mut()
    }

    /// Returns true if `buf` was one of ours.
    fn free(&self, buf: *mut u8) -> bool {
        // SAFETY: single-threaded access, as in `alloc`.
        let used = unsafe { &mut *self.used.get() };
        for (i, u) in used.iter_mut().enumerate() {
            // SAFETY: `i < K`; only the address is taken.
            let p = unsafe { (*self.slots.get())[i].0.as_mut_ptr() };
            if p == buf {
                *u = false;
                return true;
            }
        }
        false
    }

    fn reset(&self) {
        // SAFETY: single-threaded access, as in `alloc`.
        unsafe { *self.used.get() = [false; K] };
    }
}

static CMD_BUFS: BufPool<CMD_BUF_SIZE, CMD_BUF_COUNT> = BufPool::new();
static EVT_HI_BUFS: BufPool<EVT_BUF_SIZE, EVT_HI_COUNT> = BufPool::new();
static EVT_LO_BUFS: BufPool<EVT_BUF_SIZE, EVT_LO_COUNT> = BufPool::new();

#[derive(Clone, Copy)]
struct HostCallbacks {
    evt_cb: ble_hci_trans_rx_cmd_fn,
    evt_arg: *mut c_void,
    acl_cb: ble_hci_trans_rx_acl_fn,
    acl_arg: *mut c_void,
}

/// Counters of what the transport refused, for diagnostics and tests.
#[derive(Clone, Copy, Default, Debug)]
pub struct RxDrops {
    /// Events dropped because every event buffer was lent out.
    pub events_no_buffer: u32,
    /// ACL packets dropped because the mbuf pool was empty.
    pub acl_no_mbuf: u32,
}

/// How many bytes are taken from the UART at a time.
const STAGE_SIZE: usize = 256;

struct Rx {
    parser: H4Parser,
    host: Option<HostCallbacks>,
    drops: RxDrops,
    /// Bytes read from the UART and not yet parsed: `stage[pos..len]`.
    stage: [u8; STAGE_SIZE],
    pos: usize,
    len: usize,
}

static RX: Global<Rx> = Global::new(Rx {
    parser: H4Parser::new(),
    host: None,
    drops: RxDrops {
        events_no_buffer: 0,
        acl_no_mbuf: 0,
    },
    stage: [0; STAGE_SIZE],
    pos: 0,
    len: 0,
});

/// Forgets partial input and lent buffers; used at each host start.
pub fn reset() {
    RX.with(|rx| {
        rx.parser.reset();
        rx.drops = RxDrops::default();
        rx.pos = 0;
        rx.len = 0;
    });
    CMD_BUFS.reset();
    EVT_HI_BUFS.reset();
    EVT_LO_BUFS.reset();
}

/// What has been dropped since the last [`reset`].
pub fn drops() -> RxDrops {
    RX.with(|rx| rx.drops).unwrap_or_default()
}

/// Parses received bytes until one packet has been handed to the host; returns false when no
/// byte was waiting. Runs no host events, so it is safe while the host waits for a command to
/// finish. One packet per call lets the caller run the host's events between packets, so a
/// burst of reports never finds every event buffer still lent out.
pub fn pump_rx() -> bool {
    // The host callbacks only queue work or complete the pending command; they never call
    // back into the transport's receive side, so holding RX across them is sound. Should one
    // ever do, `with` refuses the nested borrow and nothing is parsed twice.
    RX.with(|rx| {
        let Rx {
            parser,
            host,
            drops,
            stage,
            pos,
            len,
        } = rx;
        let mut any = false;
        loop {
            if *pos >= *len {
                *pos = 0;
                *len = port::uart_read(stage).min(STAGE_SIZE);
                if *len == 0 {
                    return any;
                }
            }
            any = true;
            while *pos < *len {
                let b = stage[*pos];
                *pos += 1;
                if let Some(pkt) = parser.push(b) {
                    deliver(pkt, *host, drops);
                    return true;
                }
            }
        }
    })
    .unwrap_or(false)
}

fn deliver(pkt: Packet<'_>, host: Option<HostCallbacks>, drops: &mut RxDrops) {
    let Some(host) = host else {
        return; // Host not configured yet: nothing can consume it.
    };
    match pkt {
        Packet::Event(ev) => {
            let is_adv_report =
                ev.len() >= 3 && ev[0] == HCI_EVT_LE_META && ev[2] == HCI_LE_SUBEV_ADV_RPT;
            // Advertising reports come in floods; they use their own pool so they can never
            // starve command completions.
            let buf = if is_adv_report {
                EVT_LO_BUFS.alloc()
            } else {
                EVT_HI_BUFS.alloc()
            };
            if buf.is_null() || ev.len() > EVT_BUF_SIZE {
                drops.events_no_buffer = drops.events_no_buffer.wrapping_add(1);
                return;
            }
            // SAFETY: `buf` is a free slot of EVT_BUF_SIZE bytes and `ev.len()` fits in it.
            unsafe { ptr::copy_nonoverlapping(ev.as_ptr(), buf, ev.len()) };
            if let Some(cb) = host.evt_cb {
                // SAFETY: NimBLE's event handler takes ownership of the buffer and returns it
                // through ble_hci_trans_buf_free.
                unsafe { cb(buf, host.evt_arg) };
            } else {
                ble_hci_trans_buf_free(buf);
            }
        }
        Packet::Acl(acl) => {
            let Ok(len) = u16::try_from(acl.len()) else {
                drops.acl_no_mbuf = drops.acl_no_mbuf.wrapping_add(1);
                return;
            };
            // SAFETY: os_msys_get_pkthdr is NimBLE's allocator; a null return is handled.
            let om =
                unsafe { os_msys_get_pkthdr(len, core::mem::size_of::<ble_mbuf_hdr>() as u16) };
            if om.is_null() {
                drops.acl_no_mbuf = drops.acl_no_mbuf.wrapping_add(1);
                return;
            }
            // SAFETY: `om` is a fresh packet mbuf; `acl` is a valid slice of `len` bytes.
            let rc = unsafe { os_mbuf_append(om, acl.as_ptr().cast(), len) };
            if rc != 0 {
                // SAFETY: `om` is ours to free.
                unsafe { os_mbuf_free_chain(om) };
                drops.acl_no_mbuf = drops.acl_no_mbuf.wrapping_add(1);
                return;
            }
            match host.acl_cb {
                // SAFETY: the host takes ownership of the mbuf chain.
                Some(cb) => unsafe {
                    cb(om, host.acl_arg);
                },
                // SAFETY: nobody else holds `om`.
                None => unsafe {
                    os_mbuf_free_chain(om);
                },
            }
        }
    }
}

// --- The ble_hci_trans_* API NimBLE's host calls ---------------------------------------------

/// # Safety
/// Called by NimBLE with its own callbacks.
#[no_mangle]
pub unsafe extern "C" fn ble_hci_trans_cfg_hs(
    evt_cb: ble_hci_trans_rx_cmd_fn,
    evt_arg: *mut c_void,
    acl_cb: ble_hci_trans_rx_acl_fn,
    acl_arg: *mut c_void,
) {
    RX.with(|rx| {
        rx.host = Some(HostCallbacks {
            evt_cb,
            evt_arg,
            acl_cb,
            acl_arg,
        })
    });
}

/// Lends NimBLE a command or event buffer from our static pools (null when exhausted).
#[no_mangle]
pub extern "C" fn ble_hci_trans_buf_alloc(buf_type: i32) -> *mut u8 {
    match buf_type as u32 {
        BLE_HCI_TRANS_BUF_CMD => CMD_BUFS.alloc(),
        BLE_HCI_TRANS_BUF_EVT_HI => EVT_HI_BUFS.alloc(),
        BLE_HCI_TRANS_BUF_EVT_LO => {
            let b = EVT_LO_BUFS.alloc();
            if b.is_null() {
                EVT_HI_BUFS.alloc()
            } else {
                b
            }
        }
        _ => ptr::null_mut(),
    }
}

/// Returns a buffer lent by [`ble_hci_trans_buf_alloc`].
#[no_mangle]
pub extern "C" fn ble_hci_trans_buf_free(buf: *mut u8) {
    // A pointer that is not ours (e.g. lent out before a reset) is ignored.
    let _ = CMD_BUFS.free(buf) || EVT_HI_BUFS.free(buf) || EVT_LO_BUFS.free(buf);
}

/// # Safety
/// `cmd` must be a command buffer from [`ble_hci_trans_buf_alloc`].
#[no_mangle]
pub unsafe extern "C" fn ble_hci_trans_hs_cmd_tx(cmd: *mut u8) -> i32 {
    if cmd.is_null() {
        return BLE_ERR_MEM_CAPACITY;
    }
    // SAFETY: NimBLE filled the buffer as opcode(2), length(1), parameters; the header is
    // always present and the declared length is bounded by the buffer size.
    let body = unsafe {
        let plen = *cmd.add(2) as usize;
        core::slice::from_raw_parts(cmd, (3 + plen).min(CMD_BUF_SIZE))
    };
    let mut frame = [0u8; 1 + CMD_BUF_SIZE];
    frame[0] = H4_COMMAND;
    frame[1..1 + body.len()].copy_from_slice(body);
    let ok = port::uart_write(&frame[..1 + body.len()]);
    ble_hci_trans_buf_free(cmd);
    if ok {
        0
    } else {
        BLE_ERR_MEM_CAPACITY
    }
}

/// # Safety
/// `om` must be a packet mbuf chain holding an HCI ACL packet (header included).
#[no_mangle]
pub unsafe extern "C" fn ble_hci_trans_hs_acl_tx(om: *mut os_mbuf) -> i32 {
    let mut frame = [0u8; 1 + 4 + 1024];
    frame[0] = H4_ACL;
    let mut len = 1;
    let mut m = om;
    let mut too_long = false;
    while !m.is_null() {
        // SAFETY: `m` walks NimBLE's chain; each link's data pointer and length are valid.
        let (data, n, next) =
            unsafe { ((*m).om_data, (*m).om_len as usize, (*m).om_next.sle_next) };
        if len + n > frame.len() {
            too_long = true;
            break;
        }
        // SAFETY: `data` holds `n` readable bytes; the destination range was checked above.
        unsafe { ptr::copy_nonoverlapping(data, frame.as_mut_ptr().add(len), n) };
        len += n;
        m = next;
    }
    // SAFETY: the transport owns the chain once handed over, success or not.
    unsafe { os_mbuf_free_chain(om) };
    if too_long || !port::uart_write(&frame[..len]) {
        return BLE_ERR_MEM_CAPACITY;
    }
    0
}

/// Drops any partial packet from the controller; NimBLE calls it before an HCI reset.
#[no_mangle]
pub extern "C" fn ble_hci_trans_reset() -> i32 {
    RX.with(|rx| rx.parser.reset());
    0
}

/// Host flow control hook; unsupported because flow control is off in our syscfg.
#[no_mangle]
pub extern "C" fn ble_hci_trans_set_acl_free_cb(_cb: os_mempool_put_fn, _arg: *mut c_void) -> i32 {
    // Only needed for host flow control, which this build leaves off.
    BLE_ERR_UNSUPPORTED
}
