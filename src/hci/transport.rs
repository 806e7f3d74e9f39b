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
use core::sync::atomic::{AtomicU32, Ordering};

use nimble_sys::{
    ble_hci_trans_rx_acl_fn, ble_hci_trans_rx_cmd_fn, ble_mbuf_hdr, os_mbuf, os_mbuf_append,
    os_mbuf_free_chain, os_mbuf_pkthdr, os_mempool_put_fn, BLE_HCI_TRANS_BUF_CMD,
    BLE_HCI_TRANS_BUF_EVT_HI, BLE_HCI_TRANS_BUF_EVT_LO, MYNEWT_VAL_BLE_ACL_BUF_COUNT,
    MYNEWT_VAL_BLE_ACL_BUF_SIZE,
};

use super::h4::{H4Parser, Packet};
use super::l2cap_guard::{self, FixedChannelDisconnect, Refusal};
use super::mbuf_pool::{MbufPool, POOL_ALIGN};
use crate::port;
use crate::thread::{Global, NimbleThread};

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
const HCI_EVT_CMD_COMPLETE: u8 = 0x0e;
const HCI_EVT_CMD_STATUS: u8 = 0x0f;
const HCI_EVT_LE_META: u8 = 0x3e;
const HCI_LE_SUBEV_ADV_RPT: u8 = 0x02;
const HCI_LE_SUBEV_CONN_COMPLETE: u8 = 0x01;
const HCI_LE_SUBEV_ENH_CONN_COMPLETE: u8 = 0x0a;

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

/// ACL data from the controller goes into a pool of its own, as in NimBLE's UART transport:
/// taken from NimBLE's shared pool, it was dropped whenever the host's own queued notifications
/// had used that pool up (four links notifying both ways lost most of their data). Each block
/// holds one packet of NimBLE's ACL buffer size with its HCI header and NimBLE's mbuf headers;
/// longer ones chain blocks.
const ACL_BUF_COUNT: u16 = MYNEWT_VAL_BLE_ACL_BUF_COUNT as u16;
const ACL_BLOCK_SIZE: usize = (core::mem::size_of::<os_mbuf>()
    + core::mem::size_of::<os_mbuf_pkthdr>()
    + core::mem::size_of::<ble_mbuf_hdr>()
    + 4
    + MYNEWT_VAL_BLE_ACL_BUF_SIZE as usize)
    .next_multiple_of(POOL_ALIGN);

struct AclPool {
    pool: UnsafeCell<MbufPool>,
    mem: UnsafeCell<[u64; ACL_BLOCK_SIZE * ACL_BUF_COUNT as usize / POOL_ALIGN]>,
}

// SAFETY: touched only by the thread that runs NimBLE (design rule 5), as the buffer pools.
unsafe impl Sync for AclPool {}

static ACL_RX: AclPool = AclPool {
    pool: UnsafeCell::new(MbufPool::new()),
    mem: UnsafeCell::new([0; ACL_BLOCK_SIZE * ACL_BUF_COUNT as usize / POOL_ALIGN]),
};

/// A packet-header mbuf from the ACL receive pool, or null when it is used up.
fn acl_rx_get() -> *mut os_mbuf {
    // SAFETY: NimBLE-thread only; the pool was set up by `reset` (before, it hands out null).
    unsafe { (*ACL_RX.pool.get()).get_pkthdr(core::mem::size_of::<ble_mbuf_hdr>() as u8) }
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
    /// Command Complete / Command Status events dropped because they answered no command the
    /// host was waiting for (see [`AWAITING_ACK`]).
    pub unexpected_acks: u32,
    /// Other events and ACL packets dropped because the host was not in sync with the
    /// controller.
    pub events_unsynced: u32,
    /// Events dropped because their fields are impossible (see [`event_is_sane`]).
    pub events_malformed: u32,
    /// ACL packets from a peer kept from the host (see [`super::l2cap_guard`]).
    pub acl_refused: u32,
}

impl RxDrops {
    /// Every packet dropped, whatever the reason.
    pub fn total(&self) -> u32 {
        self.events_no_buffer
            .wrapping_add(self.acl_no_mbuf)
            .wrapping_add(self.unexpected_acks)
            .wrapping_add(self.events_unsynced)
            .wrapping_add(self.events_malformed)
            .wrapping_add(self.acl_refused)
    }
}

/// The opcode of the command the host is waiting on, with bit 16 set; 0 when none.
///
/// NimBLE takes any Command Complete or Status that arrives while it is idle as the answer to
/// its *next* command. One spurious or late answer from the controller then shifts every
/// later answer by one command: each fails its opcode check, the host resets and resends,
/// and with a controller that answers at once this loops inside a single poll forever (the
/// controller fuzz target found it). So only the answer to the command last sent, by opcode,
/// reaches the host; an answer after a timeout, a duplicate or a stray one is dropped.
static AWAITING_ACK: AtomicU32 = AtomicU32::new(0);

/// The opcode an HCI Command Complete or Command Status event answers (0 is the controller's
/// "no command" credit update), or None for any other or a malformed event.
fn acked_opcode(ev: &[u8]) -> Option<u16> {
    match ev {
        [HCI_EVT_CMD_COMPLETE, _, _num_cmds, lo, hi, ..] => Some(u16::from_le_bytes([*lo, *hi])),
        [HCI_EVT_CMD_STATUS, _, _status, _num_cmds, lo, hi, ..] => {
            Some(u16::from_le_bytes([*lo, *hi]))
        }
        [HCI_EVT_CMD_COMPLETE | HCI_EVT_CMD_STATUS, ..] => Some(0),
        _ => None,
    }
}

/// False for events NimBLE would act on without checking what it relies on. A successful LE
/// (Enhanced) Connection Complete must say central (0) or peripheral (1) and carry a valid
/// handle: with any other role NimBLE creates a half-initialised connection, and later reads
/// an address through a pointer it never set (found by the controller fuzz target).
fn event_is_sane(ev: &[u8]) -> bool {
    match ev {
        [HCI_EVT_LE_META, _, sub @ (HCI_LE_SUBEV_CONN_COMPLETE | HCI_LE_SUBEV_ENH_CONN_COMPLETE), status, lo, hi, role, peer_type, ..] =>
        {
            let want_len = if *sub == HCI_LE_SUBEV_CONN_COMPLETE {
                19
            } else {
                31
            };
            usize::from(ev[1]) == want_len
                && (*status != 0
                    || (u16::from_le_bytes([*lo, *hi]) <= 0x0eff && *role <= 1 && *peer_type <= 3))
        }
        [HCI_EVT_LE_META, _, HCI_LE_SUBEV_CONN_COMPLETE | HCI_LE_SUBEV_ENH_CONN_COMPLETE, ..] => {
            false
        }
        _ => true,
    }
}

/// Whether `ev` is an LE Advertising Report.
fn is_adv_report(ev: &[u8]) -> bool {
    ev.len() >= 3 && ev[0] == HCI_EVT_LE_META && ev[2] == HCI_LE_SUBEV_ADV_RPT
}

/// True if the host is waiting for the answer to `opcode` (which then ends the wait).
fn ack_awaited(opcode: u16) -> bool {
    let want = 0x1_0000 | u32::from(opcode);
    opcode != 0
        && AWAITING_ACK
            .compare_exchange(want, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
}

/// How many bytes are taken from the UART at a time.
const STAGE_SIZE: usize = 256;

/// Bytes of packets held back while the host waits for a command's answer (see [`Held`]).
pub const HELD_SIZE: usize = 4096;
/// What one held packet takes at most: its kind, its length and the longest ACL packet.
const HELD_ENTRY_MAX: usize = 3 + 4 + super::h4::ACL_MAX_DATA;
const HELD_EVENT: u8 = 0;
const HELD_ACL: u8 = 1;

/// Packets from the controller that arrived while the host waited for the answer to a
/// command, kept whole and in order until the next poll hands them to the host.
///
/// While it waits, the host runs none of its events, so every packet handed to it then keeps
/// its buffer: a Number of Completed Packets event per ACL packet the controller sent (many
/// links notifying), or a few ACL packets, used up the eight event buffers or the ACL pool in
/// a few milliseconds. What came next was dropped: notifications, the Number of Completed
/// Packets the host needs to send its queued data, a Disconnection Complete, and then the
/// command's answer itself, so the command timed out after 2 s and NimBLE reset the host,
/// ending every link. Now only the answer (and advertising reports, which have their own event
/// buffers and are dropped when those run out, as before) goes in at once; the rest waits
/// here. When this buffer cannot take the longest packet any more the transport stops reading:
/// nothing is dropped and the bytes wait in the UART's buffer, but an answer behind them is
/// out of reach until NimBLE's 2 s command timeout (it then resets the host).
struct Held {
    /// Entries back to back: kind ([`HELD_EVENT`] or [`HELD_ACL`]), length (u16 LE), bytes.
    bytes: [u8; HELD_SIZE],
    len: usize,
}

impl Held {
    fn has_room(&self) -> bool {
        HELD_SIZE - self.len >= HELD_ENTRY_MAX
    }

    fn push(&mut self, pkt: &Packet<'_>) {
        let (kind, data) = match pkt {
            Packet::Event(d) => (HELD_EVENT, *d),
            Packet::Acl(d) => (HELD_ACL, *d),
        };
        // The parser never yields more than HELD_ENTRY_MAX - 3 bytes, and callers check
        // `has_room` before parsing a packet; should either ever fail, the packet is dropped
        // rather than overflow.
        let Ok(n) = u16::try_from(data.len()) else {
            return;
        };
        let end = self.len + 3 + data.len();
        if end > HELD_SIZE {
            return;
        }
        self.bytes[self.len] = kind;
        self.bytes[self.len + 1..self.len + 3].copy_from_slice(&n.to_le_bytes());
        self.bytes[self.len + 3..end].copy_from_slice(data);
        self.len = end;
    }

    /// The oldest entry: (kind, bytes), or None when empty.
    fn front(&self) -> Option<(u8, &[u8])> {
        if self.len < 3 {
            return None;
        }
        let n = usize::from(u16::from_le_bytes([self.bytes[1], self.bytes[2]]));
        Some((self.bytes[0], self.bytes.get(3..3 + n)?))
    }

    fn pop_front(&mut self) {
        if let Some((_, data)) = self.front() {
            let used = 3 + data.len();
            self.bytes.copy_within(used..self.len, 0);
            self.len -= used;
        } else {
            self.len = 0;
        }
    }
}

struct Rx {
    parser: H4Parser,
    host: Option<HostCallbacks>,
    drops: RxDrops,
    /// Bytes read from the UART and not yet parsed: `stage[pos..len]`.
    stage: [u8; STAGE_SIZE],
    pos: usize,
    len: usize,
    held: Held,
    /// Disconnection Requests for fixed channels kept from the host, waiting for the host
    /// layer to answer them ([`take_refused_disconnect`]). More at once are dropped unanswered.
    refused: [Option<FixedChannelDisconnect>; 4],
}

static RX: Global<Rx> = Global::new(Rx {
    parser: H4Parser::new(),
    host: None,
    drops: RxDrops {
        events_no_buffer: 0,
        acl_no_mbuf: 0,
        unexpected_acks: 0,
        events_unsynced: 0,
        events_malformed: 0,
        acl_refused: 0,
    },
    stage: [0; STAGE_SIZE],
    pos: 0,
    len: 0,
    held: Held {
        bytes: [0; HELD_SIZE],
        len: 0,
    },
    refused: [None; 4],
});

/// Forgets partial input and lent buffers; used at each host start.
pub fn reset(t: NimbleThread) {
    AWAITING_ACK.store(0, Ordering::Release);
    RX.with(t, |rx| {
        rx.parser.reset();
        rx.drops = RxDrops::default();
        rx.pos = 0;
        rx.len = 0;
        rx.held.len = 0;
        rx.refused = [None; 4];
    });
    CMD_BUFS.reset();
    EVT_HI_BUFS.reset();
    EVT_LO_BUFS.reset();
    // SAFETY: the memory is static, u64-aligned and ACL_BUF_COUNT blocks long; ACL_BLOCK_SIZE
    // is a multiple of POOL_ALIGN. As with the buffer pools, the host holds no mbuf from the
    // previous session: it is stopped, and its start discards its queues.
    unsafe {
        (*ACL_RX.pool.get()).init(ACL_RX.mem.get().cast(), ACL_BUF_COUNT, ACL_BLOCK_SIZE);
    }
}

/// What has been dropped since the last [`reset`].
pub fn drops(t: NimbleThread) -> RxDrops {
    RX.with(t, |rx| rx.drops).unwrap_or_default()
}

/// Hands one packet to the host: the oldest held one (see [`Held`]), else the next one parsed
/// from the UART; returns false when no byte was waiting. Runs no host events. One packet per
/// call lets the caller, the poll, run the host's events between packets, so a burst of
/// reports never finds every event buffer still lent out.
pub fn pump_rx(t: NimbleThread) -> bool {
    pump(t, false)
}

/// For the host's waits for a command's answer (it runs no events then): parses received
/// bytes until one packet is complete, hands it to the host if it is a command's answer and
/// holds it for the next poll otherwise. Returns false when no byte was waiting, or when the
/// held packets fill their buffer (the rest stays in the UART's).
pub fn pump_rx_for_answer(t: NimbleThread) -> bool {
    pump(t, true)
}

fn pump(t: NimbleThread, waiting_for_answer: bool) -> bool {
    // The host callbacks only queue work or complete the pending command; they never call
    // back into the transport's receive side, so holding RX across them is sound. Should one
    // ever do, `with` refuses the nested borrow and nothing is parsed twice.
    RX.with(t, |rx| {
        let Rx {
            parser,
            host,
            drops,
            stage,
            pos,
            len,
            held,
            refused,
        } = rx;
        if !waiting_for_answer {
            // Held packets came before any byte still in the stage or the UART.
            if let Some((kind, data)) = held.front() {
                let pkt = if kind == HELD_ACL {
                    Packet::Acl(data)
                } else {
                    Packet::Event(data)
                };
                deliver(pkt, *host, drops, refused);
                held.pop_front();
                return true;
            }
        }
        let mut any = false;
        loop {
            if waiting_for_answer && !held.has_room() {
                return any;
            }
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
                    // A command's answer (or a stray one, which `deliver` drops) goes in at
                    // once; so do advertising reports, which have event buffers of their own
                    // and may be dropped when those run out (a flood of them must not fill the
                    // held packets and keep the answer out of reach). Anything else waits for
                    // the poll while the host can't run it.
                    let now = matches!(pkt, Packet::Event(ev)
                        if acked_opcode(ev).is_some() || is_adv_report(ev));
                    if waiting_for_answer && !now {
                        held.push(&pkt);
                    } else {
                        deliver(pkt, *host, drops, refused);
                    }
                    return true;
                }
            }
        }
    })
    .unwrap_or(false)
}

/// The oldest Disconnection Request for a fixed channel kept from the host, for the host
/// layer to answer with a Command Reject (see [`l2cap_guard`]).
pub fn take_refused_disconnect(t: NimbleThread) -> Option<FixedChannelDisconnect> {
    RX.with(t, |rx| {
        let first = rx.refused[0].take();
        rx.refused.rotate_left(1);
        first
    })
    .flatten()
}

/// Whether bytes read from the UART, or packets held while the host waited for a command's
/// answer, are still waiting in the transport.
pub fn rx_buffered(t: NimbleThread) -> bool {
    RX.with(t, |rx| rx.pos < rx.len || rx.held.len > 0)
        .unwrap_or(false)
}

fn deliver(
    pkt: Packet<'_>,
    host: Option<HostCallbacks>,
    drops: &mut RxDrops,
    refused: &mut [Option<FixedChannelDisconnect>; 4],
) {
    let Some(host) = host else {
        return; // Host not configured yet: nothing can consume it.
    };
    match pkt {
        Packet::Event(ev) => {
            match acked_opcode(ev) {
                Some(opcode) if !ack_awaited(opcode) => {
                    drops.unexpected_acks = drops.unexpected_acks.wrapping_add(1);
                    return;
                }
                Some(_) => {}
                None if !event_is_sane(ev) => {
                    drops.events_malformed = drops.events_malformed.wrapping_add(1);
                    return;
                }
                // Until the host has synced (at start, and again after it reset itself because
                // the controller misbehaved) it only expects answers to its start-up commands.
                // NimBLE would still act on a connection event then, with its own address not
                // yet known, and crash (the controller fuzz target found it): nothing else
                // goes in.
                // SAFETY: plain NimBLE query on the NimBLE thread.
                None if unsafe { nimble_sys::ble_hs_synced() } == 0 => {
                    drops.events_unsynced = drops.events_unsynced.wrapping_add(1);
                    return;
                }
                None => {}
            }
            // Advertising reports come in floods; they use their own pool so they can never
            // starve command completions.
            let buf = if is_adv_report(ev) {
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
            // No connection survives a host reset, so no data is due before sync either.
            // SAFETY: plain NimBLE query on the NimBLE thread.
            if unsafe { nimble_sys::ble_hs_synced() } == 0 {
                drops.events_unsynced = drops.events_unsynced.wrapping_add(1);
                return;
            }
            if let Some(why) = l2cap_guard::refusal(acl) {
                drops.acl_refused = drops.acl_refused.wrapping_add(1);
                if let Refusal::FixedChannelDisconnect(req) = why {
                    if let Some(slot) = refused.iter_mut().find(|r| r.is_none()) {
                        *slot = Some(req);
                    }
                }
                return;
            }
            let Ok(len) = u16::try_from(acl.len()) else {
                drops.acl_no_mbuf = drops.acl_no_mbuf.wrapping_add(1);
                return;
            };
            let om = acl_rx_get();
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
    // SAFETY: NimBLE calls its transport only from its host, which runs on the NimBLE thread.
    let t = unsafe { NimbleThread::new_unchecked() };
    RX.with(t, |rx| {
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
    // From now on only this command's answer is one (an earlier command's late answer isn't).
    AWAITING_ACK.store(
        0x1_0000 | u32::from(u16::from_le_bytes([body[0], body[1]])),
        Ordering::Release,
    );
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
    AWAITING_ACK.store(0, Ordering::Release);
    // SAFETY: NimBLE calls its transport only from its host, which runs on the NimBLE thread.
    let t = unsafe { NimbleThread::new_unchecked() };
    RX.with(t, |rx| rx.parser.reset());
    0
}

/// Host flow control hook; unsupported because flow control is off in our syscfg.
#[no_mangle]
pub extern "C" fn ble_hci_trans_set_acl_free_cb(_cb: os_mempool_put_fn, _arg: *mut c_void) -> i32 {
    // Only needed for host flow control, which this build leaves off.
    BLE_ERR_UNSUPPORTED
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the transport lets through: any event but an answer nobody awaits.
    fn ack_wanted(ev: &[u8]) -> bool {
        acked_opcode(ev).is_none_or(ack_awaited)
    }

    #[test]
    fn only_the_awaited_answer_reaches_the_host() {
        // AWAITING_ACK is the running stack's too (crate::testing's scenarios).
        let _serial = crate::testing::serial();
        let reset_complete = [0x0e, 4, 1, 0x03, 0x0c, 0];
        let reset_status = [0x0f, 4, 0, 1, 0x03, 0x0c];
        let version_complete = [0x0e, 4, 1, 0x01, 0x10, 0];
        let nop = [0x0e, 3, 1, 0, 0];
        let truncated = [0x0e, 1, 1];
        let disconnection = [0x05, 4, 0, 1, 0, 0x13];

        AWAITING_ACK.store(0, Ordering::Release);
        // Idle: no answer is wanted, other events always are.
        assert!(!ack_wanted(&reset_complete));
        assert!(ack_wanted(&disconnection));
        // Waiting for Reset: another command's answer, a credit update and a malformed one
        // are dropped; the answer itself passes once.
        AWAITING_ACK.store(0x1_0c03, Ordering::Release);
        assert!(!ack_wanted(&version_complete));
        assert!(!ack_wanted(&nop));
        assert!(!ack_wanted(&truncated));
        assert!(ack_wanted(&reset_status));
        assert!(
            !ack_wanted(&reset_complete),
            "a second answer to the same command"
        );
        AWAITING_ACK.store(0, Ordering::Release);
    }

    fn conn_complete(status: u8, handle: u16, role: u8, peer_type: u8) -> Vec<u8> {
        let mut ev = vec![HCI_EVT_LE_META, 19, HCI_LE_SUBEV_CONN_COMPLETE, status];
        ev.extend(handle.to_le_bytes());
        ev.extend([role, peer_type, 1, 2, 3, 4, 5, 6, 24, 0, 0, 0, 0x90, 1, 0]);
        ev
    }

    #[test]
    fn impossible_connection_events_are_refused() {
        assert!(event_is_sane(&conn_complete(0, 1, 0, 0)));
        assert!(event_is_sane(&conn_complete(0, 0x0eff, 1, 3)));
        assert!(!event_is_sane(&conn_complete(0, 1, 9, 0)), "role");
        assert!(!event_is_sane(&conn_complete(0, 0x0f00, 1, 0)), "handle");
        assert!(
            !event_is_sane(&conn_complete(0, 1, 1, 4)),
            "peer address type"
        );
        // A failed connection's other fields mean nothing.
        assert!(event_is_sane(&conn_complete(0x3e, 0xffff, 0xff, 0xff)));
        let mut short = conn_complete(0, 1, 0, 0);
        short.pop();
        short[1] = 18;
        assert!(!event_is_sane(&short), "length");
        assert!(
            event_is_sane(&[0x05, 4, 0, 1, 0, 0x13]),
            "other events pass"
        );
    }
}
