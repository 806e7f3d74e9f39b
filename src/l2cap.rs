//! L2CAP connection-oriented channels (`l2cap_*` methods, events 22–26; spec §5.7, §6, §10).
//!
//! One channel object exists at a time, as in MicroPython's C module: either a listener
//! (kept until the stack stops, reused for each accepted channel) or an outgoing connection
//! (freed when it closes). Beyond the C module: every call while inactive fails with
//! `ENODEV` instead of crashing, and a connect that NimBLE refuses at once frees the slot.
//!
//! Memory. NimBLE builds received SDUs in mbufs taken from the pool of the SDU buffer we hand
//! it, and takes SDUs to send as mbuf chains. Each channel owns two private pools (Rust heap,
//! 8-byte aligned, never linked into NimBLE's global pool list): one for sending, one for
//! receiving, so a large send can never starve reception. A pool only goes away once NimBLE
//! can no longer hold one of its mbufs (retired pools are dropped on the next channel
//! creation or stack restart).
//!
//! Receiving. A complete SDU is appended to the pending data, which scripts drain with
//! `l2cap_recvinto`. NimBLE returns credits to the peer only when it is handed a new receive
//! buffer through `ble_l2cap_recv_ready`, and it needs a receive buffer before the next
//! segment arrives, so while data is pending a fresh buffer is placed straight into the
//! channel (NimBLE's private channel record, mirrored and checked below) and credits are
//! returned only once pending is empty (spec §10).
//!
//! Sending. `l2cap_send` returns false ("stalled") on a credit stall or when NimBLE's shared
//! mbuf pool is at most half free; `_IRQ_L2CAP_SEND_READY` follows when the credits come or
//! when a later poll finds the pool at least three-quarters free.

use core::ffi::{c_int, c_void};
use core::{mem, ptr};

use alloc::boxed::Box;
use alloc::vec::Vec;
use nimble_sys as ns;

use crate::ble;
use crate::error::{check, errno, nimble_to_errno, Status, OK};
use crate::events::{self, IrqArg};
use crate::global::Global;
use crate::mbuf_pool::{MbufPool, POOL_ALIGN};

/// NimBLE's "sent part of the SDU, waiting for credits" return code.
const BLE_HS_ESTALLED: c_int = ns::BLE_HS_ESTALLED as c_int;
/// NimBLE's "no resources" code, used to refuse a second channel on a busy listener.
const BLE_HS_ENOMEM: c_int = ns::BLE_HS_ENOMEM as c_int;
/// NimBLE's MPS for our channels (syscfg `BLE_L2CAP_COC_MPS`).
const COC_MPS: usize = ns::MYNEWT_VAL_BLE_L2CAP_COC_MPS as usize;
/// Size of one block of a channel's pools, mbuf header included.
const BLOCK_SIZE: usize = 256;

// --- Pure sizing and validation ------------------------------------------------------------------

/// Data bytes one pool block holds (the block minus NimBLE's mbuf header).
pub const fn block_data_len() -> usize {
    BLOCK_SIZE - mem::size_of::<ns::os_mbuf>()
}

/// Credits NimBLE grants for a receive MTU: enough segments for one full SDU.
pub fn initial_credits(mtu: u16) -> usize {
    usize::from(mtu).div_ceil(COC_MPS).max(1)
}

/// Blocks of the send pool: one SDU of up to twice our MTU (the largest `l2cap_send`
/// accepts) in flight, plus the packet-header block and slack.
pub fn tx_pool_blocks(mtu: u16) -> usize {
    (2 * usize::from(mtu)).div_ceil(block_data_len()) + 2
}

/// Blocks of the receive pool. While data is pending the peer can still use the credits it
/// holds: each of up to `initial_credits` SDUs may arrive (each at most one MTU, each starting
/// a block of its own), plus the buffer being filled and the spare handed to NimBLE. Beyond
/// eight SDUs (MTUs over 2 KiB) the bound is capped: only a peer splitting SDUs on purpose
/// gets near it, and running out closes the channel rather than corrupting it.
pub fn rx_pool_blocks(mtu: u16) -> usize {
    let per_sdu = usize::from(mtu).div_ceil(block_data_len()) + 1;
    initial_credits(mtu).min(8) * per_sdu + per_sdu + 2
}

/// The `mtu` scripts pass, clamped as the C module does (before the u16 conversion).
pub fn clamp_mtu(mtu: i64) -> u16 {
    mtu.clamp(32, 65535) as u16
}

/// Whether an SDU of `len` bytes may be sent: not above the peer's MTU, nor above twice ours
/// (spec §5.7).
pub fn send_len_ok(len: usize, our_mtu: u16, peer_mtu: u16) -> bool {
    len <= usize::from(peer_mtu) && len <= 2 * usize::from(our_mtu)
}

/// The shared pool is "at most half free": back off (spec §10).
pub fn mem_stall(free: i32, count: i32) -> bool {
    free <= count / 2
}

/// The shared pool has recovered to at least three-quarters free.
pub fn mem_recovered(free: i32, count: i32) -> bool {
    free >= count * 3 / 4
}

// --- A private block pool ----------------------------------------------------------------------

/// A channel's mbuf pool over Rust heap memory. Boxed: NimBLE's mbufs point into `pool`.
struct Pool {
    pool: MbufPool,
    mem: Vec<u64>,
}

impl Pool {
    /// A pool of `blocks` blocks, or `None` if the memory is not available.
    fn new(blocks: usize) -> Option<Box<Pool>> {
        let blocks16 = u16::try_from(blocks).ok()?;
        let words = blocks * BLOCK_SIZE / POOL_ALIGN;
        let mut mem = Vec::new();
        mem.try_reserve_exact(words).ok()?;
        mem.resize(words, 0u64);
        let mut pool = Box::new(Pool {
            pool: MbufPool::new(),
            mem,
        });
        let base = pool.mem.as_mut_ptr().cast::<u8>();
        // SAFETY: `mem` holds blocks * BLOCK_SIZE bytes, u64-aligned; BLOCK_SIZE is a multiple
        // of POOL_ALIGN. The box keeps both in place, and a pool is only dropped once NimBLE
        // can no longer hold one of its mbufs (module docs).
        unsafe { pool.pool.init(base, blocks16, BLOCK_SIZE) };
        Some(pool)
    }

    /// A fresh packet-header mbuf, or null when the pool is empty.
    fn get(&mut self) -> *mut ns::os_mbuf {
        self.pool.get_pkthdr(0)
    }
}

// --- NimBLE's channel record ---------------------------------------------------------------------

/// One direction of a channel in NimBLE's private record (`ble_l2cap_coc_endpoint`).
#[repr(C)]
struct CocEndpoint {
    sdu: *mut ns::os_mbuf,
    mtu: u16,
    credits: u16,
    data_offset: u16,
    flags: u8,
}

/// NimBLE's private `struct ble_l2cap_chan` for our syscfg (COC on, enhanced COC off). Only
/// `coc_rx.sdu` is written, and only after [`layout_matches`] has confirmed the mirror against
/// what NimBLE's public API reports for the same channel.
#[repr(C)]
struct ChanRecord {
    next: *mut c_void,
    conn_handle: u16,
    dcid: u16,
    scid: u16,
    my_coc_mps: u16,
    peer_coc_mps: u16,
    flags: u8,
    rx_buf: *mut ns::os_mbuf,
    rx_len: u16,
    rx_fn: *mut c_void,
    psm: u16,
    coc_rx: CocEndpoint,
    coc_tx: CocEndpoint,
    initial_credits: u16,
    cb: *mut c_void,
    cb_arg: *mut c_void,
}

/// Checks the mirrored record against NimBLE's public view of `chan`, including our own
/// callback pointer. False means the NimBLE build differs: credits are then returned early
/// (safe, just less back-pressure) instead of writing into the record.
fn layout_matches(chan: *mut ns::ble_l2cap_chan, info: &ns::ble_l2cap_chan_info) -> bool {
    if chan.is_null() {
        return false;
    }
    // SAFETY: `chan` is a live NimBLE channel (we are in its callback); only reads.
    let rec = unsafe { &*chan.cast::<ChanRecord>() };
    let cb: unsafe extern "C" fn(*mut ns::ble_l2cap_event, *mut c_void) -> c_int = on_event;
    rec.scid == info.scid
        && rec.dcid == info.dcid
        && rec.psm == info.psm
        && rec.coc_rx.mtu == info.our_coc_mtu
        && rec.coc_tx.mtu == info.peer_coc_mtu
        && rec.my_coc_mps == info.our_l2cap_mtu
        && rec.cb == cb as *mut c_void
}

// --- The channel ---------------------------------------------------------------------------------

/// The single channel object.
struct Channel {
    /// Made by `l2cap_listen` (kept after each disconnection) rather than `l2cap_connect`.
    listening: bool,
    /// NimBLE's channel, from accept/connect until it closes; null otherwise.
    chan: *mut ns::ble_l2cap_chan,
    /// The channel is open (CONNECT raised, DISCONNECT not yet).
    connected: bool,
    conn_handle: u16,
    cid: u16,
    our_mtu: u16,
    peer_mtu: u16,
    /// NimBLE's record matches [`ChanRecord`].
    record_ok: bool,
    /// Received SDUs not yet read, one chain (from `rx`).
    rx_pending: *mut ns::os_mbuf,
    /// Inside the RECV handler: credits wait until it returns.
    in_recv_irq: bool,
    /// `l2cap_send` reported a shared-pool stall; SEND_READY is owed when it recovers.
    mem_stalled: bool,
    rx: Box<Pool>,
    tx: Box<Pool>,
}

impl Channel {
    fn new(listening: bool, mtu: u16) -> Result<Channel, Status> {
        let rx = Pool::new(rx_pool_blocks(mtu)).ok_or(errno::ENOMEM)?;
        let tx = Pool::new(tx_pool_blocks(mtu)).ok_or(errno::ENOMEM)?;
        Ok(Channel {
            listening,
            chan: ptr::null_mut(),
            connected: false,
            conn_handle: 0,
            cid: 0,
            our_mtu: mtu,
            peer_mtu: 0,
            record_ok: false,
            rx_pending: ptr::null_mut(),
            in_recv_irq: false,
            mem_stalled: false,
            rx,
            tx,
        })
    }

    fn matches(&self, conn_handle: u16, cid: u16) -> bool {
        self.connected && !self.chan.is_null() && self.conn_handle == conn_handle && self.cid == cid
    }

    /// Forgets the open channel (NimBLE has closed it) and drops unread data.
    fn close(&mut self) {
        self.chan = ptr::null_mut();
        self.connected = false;
        self.mem_stalled = false;
        self.in_recv_irq = false;
        if !self.rx_pending.is_null() {
            // SAFETY: the pending chain is ours (from our rx pool, still alive).
            unsafe { ns::os_mbuf_free_chain(self.rx_pending) };
            self.rx_pending = ptr::null_mut();
        }
    }
}

struct State {
    channel: Option<Channel>,
    /// Pools of closed channels NimBLE may still free mbufs into until its callback returns.
    retired: Vec<(Box<Pool>, Box<Pool>)>,
    /// Set while `l2cap_connect` is inside NimBLE: a synchronous failure's events are ours.
    connecting: bool,
}

/// The channel state. Never borrowed across a call into Python or into a NimBLE function that
/// can call back (send, connect, disconnect, recv_ready).
static STATE: Global<State> = Global::new(State {
    channel: None,
    retired: Vec::new(),
    connecting: false,
});

/// Moves the channel's pools to the retired list and frees the slot.
fn retire(s: &mut State) {
    if let Some(mut ch) = s.channel.take() {
        ch.close();
        s.retired.push((ch.rx, ch.tx));
    }
}

/// Forgets everything, for a stack (re)start or stop: NimBLE is reinitialised before it runs
/// again, so none of its old channels can touch these pools.
pub fn reset() {
    let _ = STATE.with(|s| {
        s.channel = None;
        s.retired.clear();
        s.connecting = false;
    });
}

/// The port's heap was wiped under us (see [`crate::gatts::forget_heap`]): drop every
/// reference into it without freeing anything.
pub fn forget_heap() {
    let _ = STATE.with(|s| {
        core::mem::forget(s.channel.take());
        core::mem::forget(core::mem::take(&mut s.retired));
        s.connecting = false;
    });
}

fn chan_info(chan: *mut ns::ble_l2cap_chan) -> ns::ble_l2cap_chan_info {
    let mut info = ns::ble_l2cap_chan_info::default();
    if !chan.is_null() {
        // SAFETY: `chan` is live for the callback or call it came from; `info` is an out-param.
        unsafe { ns::ble_l2cap_get_chan_info(chan, &mut info) };
    }
    info
}

// --- Events ---------------------------------------------------------------------------------------

fn dispatch_disconnect(conn_handle: u16, cid: u16, psm: u16, status: i64) {
    events::dispatch(
        events::IRQ_L2CAP_DISCONNECT,
        &[
            IrqArg::int(conn_handle.into()),
            IrqArg::int(cid.into()),
            IrqArg::int(psm.into()),
            IrqArg::int(status),
        ],
    );
}

fn dispatch_send_ready(conn_handle: u16, cid: u16, status: u8) {
    events::dispatch(
        events::IRQ_L2CAP_SEND_READY,
        &[
            IrqArg::int(conn_handle.into()),
            IrqArg::int(cid.into()),
            IrqArg::int(status.into()),
        ],
    );
}

unsafe extern "C" fn on_event(event: *mut ns::ble_l2cap_event, _arg: *mut c_void) -> c_int {
    if event.is_null() {
        return 0;
    }
    // SAFETY: NimBLE passes a valid event for the duration of the call.
    let event = unsafe { &*event };
    let u = &event.__bindgen_anon_1;
    match u32::from(event.type_) {
        ns::BLE_L2CAP_EVENT_COC_CONNECTED => {
            // SAFETY: the tag says `connect` is the valid member.
            let c = unsafe { u.connect };
            on_connected(c.conn_handle, c.chan, c.status);
            0
        }
        ns::BLE_L2CAP_EVENT_COC_DISCONNECTED => {
            // SAFETY: the tag says `disconnect` is the valid member.
            let d = unsafe { u.disconnect };
            on_disconnected(d.conn_handle, d.chan);
            0
        }
        ns::BLE_L2CAP_EVENT_COC_ACCEPT => {
            // SAFETY: the tag says `accept` is the valid member.
            let a = unsafe { u.accept };
            on_accept(a.conn_handle, a.chan)
        }
        ns::BLE_L2CAP_EVENT_COC_DATA_RECEIVED => {
            // SAFETY: the tag says `receive` is the valid member.
            let r = unsafe { u.receive };
            on_receive(r.conn_handle, r.chan, r.sdu_rx);
            0
        }
        ns::BLE_L2CAP_EVENT_COC_TX_UNSTALLED => {
            // SAFETY: the tag says `tx_unstalled` is the valid member.
            let t = unsafe { u.tx_unstalled };
            on_unstalled(t.conn_handle, t.chan, t.status);
            0
        }
        _ => 0,
    }
}

fn on_connected(conn_handle: u16, chan: *mut ns::ble_l2cap_chan, status: c_int) {
    let info = chan_info(chan);
    let sync_failure = STATE.with(|s| s.connecting).unwrap_or(false);
    if status == 0 {
        let ok = STATE
            .with(|s| match s.channel.as_mut() {
                Some(ch) if !ch.connected => {
                    ch.chan = chan;
                    ch.connected = true;
                    ch.conn_handle = conn_handle;
                    ch.cid = info.scid;
                    ch.our_mtu = info.our_coc_mtu;
                    ch.peer_mtu = info.peer_coc_mtu;
                    ch.record_ok = layout_matches(chan, &info);
                    true
                }
                _ => false,
            })
            .unwrap_or(false);
        if ok && ble::is_active() {
            events::dispatch(
                events::IRQ_L2CAP_CONNECT,
                &[
                    IrqArg::int(conn_handle.into()),
                    IrqArg::int(info.scid.into()),
                    IrqArg::int(info.psm.into()),
                    IrqArg::int(info.our_coc_mtu.into()),
                    IrqArg::int(info.peer_coc_mtu.into()),
                ],
            );
        }
    } else {
        if sync_failure {
            // l2cap_connect reports it as its own error and frees the slot.
            return;
        }
        if ble::is_active() {
            dispatch_disconnect(conn_handle, info.scid, info.psm, status.into());
        }
        let _ = STATE.with(|s| match s.channel.as_mut() {
            Some(ch) if ch.listening => ch.close(),
            Some(_) => retire(s),
            None => {}
        });
    }
}

fn on_disconnected(conn_handle: u16, chan: *mut ns::ble_l2cap_chan) {
    let (sync_failure, have_channel) = STATE
        .with(|s| (s.connecting, s.channel.is_some()))
        .unwrap_or((false, false));
    // A connect NimBLE refused inside l2cap_connect: reported as that call's error.
    if sync_failure || !have_channel {
        return;
    }
    let info = chan_info(chan);
    if ble::is_active() {
        dispatch_disconnect(conn_handle, info.scid, info.psm, 0);
    }
    let _ = STATE.with(|s| match s.channel.as_mut() {
        Some(ch) if ch.listening => ch.close(),
        Some(_) => retire(s),
        None => {}
    });
}

fn on_accept(conn_handle: u16, chan: *mut ns::ble_l2cap_chan) -> c_int {
    let free = STATE
        .with(|s| {
            s.channel
                .as_ref()
                .is_some_and(|ch| ch.listening && !ch.connected && ch.chan.is_null())
        })
        .unwrap_or(false);
    if !free || !ble::is_active() {
        // One channel at a time: a second one on a busy listener gets "no resources".
        return BLE_HS_ENOMEM;
    }
    let info = chan_info(chan);
    let result = events::dispatch(
        events::IRQ_L2CAP_ACCEPT,
        &[
            IrqArg::int(conn_handle.into()),
            IrqArg::int(info.scid.into()),
            IrqArg::int(info.psm.into()),
            IrqArg::int(info.our_coc_mtu.into()),
            IrqArg::int(info.peer_coc_mtu.into()),
        ],
    );
    if result.value != 0 {
        // NimBLE turns the code into the L2CAP result sent to the peer (spec §6.3).
        return result.value as c_int;
    }
    let sdu = STATE
        .with(|s| match s.channel.as_mut() {
            Some(ch) if ch.listening && !ch.connected => ch.rx.get(),
            _ => ptr::null_mut(),
        })
        .unwrap_or(ptr::null_mut());
    if sdu.is_null() {
        return BLE_HS_ENOMEM;
    }
    // SAFETY: `chan` is the channel being accepted; `sdu` is a fresh mbuf NimBLE now owns.
    unsafe { ns::ble_l2cap_recv_ready(chan, sdu) }
}

/// What the receive path decided under the borrow, acted on after it.
enum RxNext {
    /// Not our channel: free the SDU.
    Drop,
    /// Raise RECV; `early_sdu` must be handed over with recv_ready first (no record access).
    Raise {
        cid: u16,
        early_sdu: *mut ns::os_mbuf,
    },
    /// The receive pool ran dry: the channel is closed (its pending data was dropped).
    Overflow { fresh: *mut ns::os_mbuf },
}

fn on_receive(conn_handle: u16, chan: *mut ns::ble_l2cap_chan, sdu: *mut ns::os_mbuf) {
    let next = STATE
        .with(|s| {
            let Some(ch) = s
                .channel
                .as_mut()
                .filter(|ch| ch.chan == chan && ch.connected)
            else {
                return RxNext::Drop;
            };
            if ch.rx_pending.is_null() {
                ch.rx_pending = sdu;
            } else {
                // SAFETY: both chains are ours; `sdu` is handed to us by this event.
                unsafe { ns::os_mbuf_concat(ch.rx_pending, sdu) };
            }
            let mut fresh = ch.rx.get();
            let mut overflow = false;
            if fresh.is_null() {
                // Only a peer splitting SDUs on purpose gets here (see rx_pool_blocks).
                // SAFETY: the pending chain is ours.
                unsafe { ns::os_mbuf_free_chain(ch.rx_pending) };
                ch.rx_pending = ptr::null_mut();
                fresh = ch.rx.get();
                overflow = true;
            }
            if ch.record_ok {
                // SAFETY: the record layout was checked at connect; NimBLE cleared this
                // field before the callback and reads it for the next segment. The mbuf
                // (possibly null, which only happens with overflow, handled below) is
                // NimBLE's from here.
                unsafe { (*chan.cast::<ChanRecord>()).coc_rx.sdu = fresh };
            }
            if overflow {
                return RxNext::Overflow { fresh };
            }
            ch.in_recv_irq = true;
            RxNext::Raise {
                cid: ch.cid,
                early_sdu: if ch.record_ok { ptr::null_mut() } else { fresh },
            }
        })
        .unwrap_or(RxNext::Drop);
    match next {
        RxNext::Drop => {
            // SAFETY: the event hands us `sdu`; nobody else holds it.
            unsafe { ns::os_mbuf_free_chain(sdu) };
        }
        RxNext::Overflow { fresh } => {
            if !fresh.is_null() {
                // SAFETY: live channel in its callback; NimBLE takes `fresh`.
                unsafe { ns::ble_l2cap_recv_ready(chan, fresh) };
            }
            // SAFETY: live channel; the DISCONNECT event follows from NimBLE.
            unsafe { ns::ble_l2cap_disconnect(chan) };
        }
        RxNext::Raise { cid, early_sdu } => {
            if !early_sdu.is_null() {
                // SAFETY: live channel in its callback; NimBLE takes the fresh buffer.
                unsafe { ns::ble_l2cap_recv_ready(chan, early_sdu) };
            }
            if ble::is_active() {
                events::dispatch(
                    events::IRQ_L2CAP_RECV,
                    &[IrqArg::int(conn_handle.into()), IrqArg::int(cid.into())],
                );
            }
            let give = STATE
                .with(|s| match s.channel.as_mut() {
                    Some(ch) if ch.chan == chan && ch.connected => {
                        ch.in_recv_irq = false;
                        ch.rx_pending.is_null() && ch.record_ok
                    }
                    _ => false,
                })
                .unwrap_or(false);
            if give {
                return_credits(chan);
            }
        }
    }
}

/// Hands NimBLE its current receive buffer again, which returns the peer's credits.
fn return_credits(chan: *mut ns::ble_l2cap_chan) {
    // SAFETY: the record layout was checked (callers test `record_ok`); reading the buffer
    // NimBLE holds.
    let sdu = unsafe { (*chan.cast::<ChanRecord>()).coc_rx.sdu };
    if !sdu.is_null() {
        // SAFETY: live channel; `sdu` is already NimBLE's receive buffer.
        unsafe { ns::ble_l2cap_recv_ready(chan, sdu) };
    }
}

fn on_unstalled(conn_handle: u16, chan: *mut ns::ble_l2cap_chan, status: c_int) {
    let cid = STATE
        .with(|s| match s.channel.as_ref() {
            Some(ch) if ch.chan == chan && ch.connected && !ch.mem_stalled => Some(ch.cid),
            _ => None,
        })
        .flatten();
    if let (Some(cid), true) = (cid, ble::is_active()) {
        dispatch_send_ready(conn_handle, cid, u8::from(status != 0));
    }
}

/// After each poll: a send that backed off for the shared pool is told it may go on once the
/// pool is at least three-quarters free again.
pub fn check_mem_unstall() {
    // SAFETY: plain reads of NimBLE's msys counters on the NimBLE thread.
    let (free, count) = unsafe { (ns::os_msys_num_free(), ns::os_msys_count()) };
    if !mem_recovered(free, count) {
        return;
    }
    let ready = STATE
        .with(|s| match s.channel.as_mut() {
            Some(ch) if ch.mem_stalled && ch.connected => {
                ch.mem_stalled = false;
                Some((ch.conn_handle, ch.cid))
            }
            _ => None,
        })
        .flatten();
    if let (Some((conn, cid)), true) = (ready, ble::is_active()) {
        dispatch_send_ready(conn, cid, 0);
    }
}

// --- Operations ------------------------------------------------------------------------------------

fn require_active() -> Result<(), Status> {
    if ble::is_active() {
        Ok(())
    } else {
        Err(errno::ENODEV)
    }
}

/// Takes the slot for a new channel; `EALREADY` if one exists.
fn claim(listening: bool, mtu: u16) -> Result<(), Status> {
    STATE
        .with(|s| {
            if s.channel.is_some() {
                return Err(errno::EALREADY);
            }
            // No NimBLE channel uses a retired pool any more: they closed before now.
            s.retired.clear();
            s.channel = Some(Channel::new(listening, mtu)?);
            Ok(())
        })
        .unwrap_or(Err(errno::EBUSY))
}

fn release_slot() {
    let _ = STATE.with(retire);
}

/// `l2cap_listen(psm, mtu)`.
pub fn listen(psm: u16, mtu: u16) -> Result<(), Status> {
    require_active()?;
    claim(true, mtu)?;
    // SAFETY: plain NimBLE call on the NimBLE thread; the callback is a plain fn.
    let rc = unsafe { ns::ble_l2cap_create_server(psm, mtu, Some(on_event), ptr::null_mut()) };
    if rc != 0 {
        release_slot();
    }
    check(rc)
}

/// `l2cap_connect(conn_handle, psm, mtu)`. A refusal frees the slot (unlike the C module).
pub fn connect(conn_handle: u16, psm: u16, mtu: u16) -> Result<(), Status> {
    require_active()?;
    claim(false, mtu)?;
    let sdu = STATE
        .with(|s| {
            s.connecting = true;
            s.channel.as_mut().map_or(ptr::null_mut(), |ch| ch.rx.get())
        })
        .unwrap_or(ptr::null_mut());
    let rc = if sdu.is_null() {
        BLE_HS_ENOMEM
    } else {
        // SAFETY: plain NimBLE call; `sdu` is a fresh mbuf from the channel's pool, which
        // outlives NimBLE's use of it (retired, not freed, when the channel ends).
        unsafe {
            ns::ble_l2cap_connect(conn_handle, psm, mtu, sdu, Some(on_event), ptr::null_mut())
        }
    };
    let _ = STATE.with(|s| s.connecting = false);
    if rc != 0 {
        release_slot();
    }
    check(rc)
}

/// `l2cap_disconnect(conn_handle, cid)`: `EINVAL` unless it names the open channel.
pub fn disconnect(conn_handle: u16, cid: u16) -> Result<(), Status> {
    require_active()?;
    let chan = STATE
        .with(|s| {
            s.channel
                .as_ref()
                .filter(|ch| ch.matches(conn_handle, cid))
                .map(|ch| ch.chan)
        })
        .flatten()
        .ok_or(errno::EINVAL)?;
    // SAFETY: `chan` is the open channel; NimBLE reports the end with an event.
    check(unsafe { ns::ble_l2cap_disconnect(chan) })
}

/// `l2cap_send(conn_handle, cid, data)`: `Ok(true)` when more may be sent now, `Ok(false)`
/// when stalled (wait for `_IRQ_L2CAP_SEND_READY`).
pub fn send(conn_handle: u16, cid: u16, data: &[u8]) -> Result<bool, Status> {
    require_active()?;
    let (chan, sdu) = STATE
        .with(|s| {
            let ch = s
                .channel
                .as_mut()
                .filter(|ch| ch.matches(conn_handle, cid))
                .ok_or(errno::EINVAL)?;
            if !send_len_ok(data.len(), ch.our_mtu, ch.peer_mtu) {
                return Err(errno::EINVAL);
            }
            let sdu = ch.tx.get();
            if sdu.is_null() {
                return Err(errno::ENOMEM);
            }
            // SAFETY: `sdu` is a fresh mbuf of ours; the length fits a u16 (≤ 2 × MTU is
            // checked against the peer's u16 MTU above).
            let rc = unsafe { ns::os_mbuf_append(sdu, data.as_ptr().cast(), data.len() as u16) };
            if rc != 0 {
                // SAFETY: still ours.
                unsafe { ns::os_mbuf_free_chain(sdu) };
                return Err(errno::ENOMEM);
            }
            Ok((ch.chan, sdu))
        })
        .unwrap_or(Err(errno::EBUSY))?;
    // SAFETY: `chan` is the open channel; NimBLE takes `sdu` on success or stall.
    let rc = unsafe { ns::ble_l2cap_send(chan, sdu) };
    let mut stalled = false;
    let result = match rc {
        0 => Ok(()),
        BLE_HS_ESTALLED => {
            stalled = true;
            Ok(())
        }
        // Refused before NimBLE took it (busy, too big): still ours.
        rc if rc == ns::BLE_HS_EBUSY as c_int || rc == ns::BLE_HS_EBADDATA as c_int => {
            // SAFETY: NimBLE did not take `sdu` on these codes.
            unsafe { ns::os_mbuf_free_chain(sdu) };
            Err(nimble_to_errno(rc))
        }
        // Other failures happen after NimBLE took the SDU (and freed it).
        rc => Err(nimble_to_errno(rc)),
    };
    // SAFETY: plain reads of NimBLE's msys counters.
    let (free, count) = unsafe { (ns::os_msys_num_free(), ns::os_msys_count()) };
    if mem_stall(free, count) {
        let _ = STATE.with(|s| {
            if let Some(ch) = s.channel.as_mut().filter(|ch| ch.chan == chan) {
                ch.mem_stalled = true;
            }
        });
        stalled = true;
        crate::ffi::request_poll();
    }
    result.map(|()| !stalled)
}

/// Sum of the data in an mbuf chain.
///
/// # Safety
/// `om` must be null or a valid chain.
unsafe fn chain_len(om: *const ns::os_mbuf) -> usize {
    let mut n = 0;
    let mut m = om;
    while !m.is_null() {
        // SAFETY: `m` is a link of the valid chain.
        let link = unsafe { &*m };
        n += usize::from(link.om_len);
        m = link.om_next.sle_next;
    }
    n
}

/// `l2cap_recvinto(conn_handle, cid, buf)`: with `None` the number of bytes pending; else
/// copies up to `buf.len()` of them into `buf` and returns how many. Credits go back to the
/// peer once everything pending is read (after the RECV handler, if called from it).
pub fn recvinto(conn_handle: u16, cid: u16, buf: Option<&mut [u8]>) -> Result<usize, Status> {
    require_active()?;
    let (n, give, chan) = STATE
        .with(|s| {
            let ch = s
                .channel
                .as_mut()
                .filter(|ch| ch.matches(conn_handle, cid))
                .ok_or(errno::EINVAL)?;
            // SAFETY: the pending chain is ours and valid.
            let avail = unsafe { chain_len(ch.rx_pending) };
            let Some(buf) = buf else {
                return Ok((avail, false, ch.chan));
            };
            let n = buf.len().min(avail);
            if n == 0 {
                return Ok((0, false, ch.chan));
            }
            // SAFETY: the chain holds `avail >= n` bytes; `buf` has room for `n`.
            unsafe { ns::os_mbuf_copydata(ch.rx_pending, 0, n as c_int, buf.as_mut_ptr().cast()) };
            if n == avail {
                // SAFETY: ours; nothing else refers to it.
                unsafe { ns::os_mbuf_free_chain(ch.rx_pending) };
                ch.rx_pending = ptr::null_mut();
                Ok((n, !ch.in_recv_irq && ch.record_ok, ch.chan))
            } else {
                // SAFETY: ours; drop the bytes read, then free emptied leading blocks.
                unsafe {
                    ns::os_mbuf_adj(ch.rx_pending, n as c_int);
                    ch.rx_pending = ns::os_mbuf_trim_front(ch.rx_pending);
                }
                Ok((n, false, ch.chan))
            }
        })
        .unwrap_or(Err(errno::EBUSY))?;
    if give {
        return_credits(chan);
    }
    Ok(n)
}

// --- FFI -------------------------------------------------------------------------------------------

/// `l2cap_listen(psm, mtu)`; `mtu` already clamped by [`ubt_l2cap_clamp_mtu`].
#[no_mangle]
pub extern "C" fn ubt_l2cap_listen(psm: u16, mtu: u16) -> Status {
    listen(psm, mtu).err().unwrap_or(OK)
}

/// `l2cap_connect(conn_handle, psm, mtu)`.
#[no_mangle]
pub extern "C" fn ubt_l2cap_connect(conn_handle: u16, psm: u16, mtu: u16) -> Status {
    connect(conn_handle, psm, mtu).err().unwrap_or(OK)
}

/// `l2cap_disconnect(conn_handle, cid)`.
#[no_mangle]
pub extern "C" fn ubt_l2cap_disconnect(conn_handle: u16, cid: u16) -> Status {
    disconnect(conn_handle, cid).err().unwrap_or(OK)
}

/// The script's `mtu` argument clamped to 32..=65535, as the C module does.
#[no_mangle]
pub extern "C" fn ubt_l2cap_clamp_mtu(mtu: i64) -> u16 {
    clamp_mtu(mtu)
}

/// `l2cap_send(conn_handle, cid, data)`; `*more` is the method's bool result.
///
/// # Safety
/// `data` must be valid for reads of `len` bytes (or `len` 0); `more` must be writable.
#[no_mangle]
pub unsafe extern "C" fn ubt_l2cap_send(
    conn_handle: u16,
    cid: u16,
    data: *const u8,
    len: usize,
    more: *mut bool,
) -> Status {
    let data = if data.is_null() || len == 0 {
        &[][..]
    } else {
        // SAFETY: the caller guarantees `len` readable bytes at `data`.
        unsafe { core::slice::from_raw_parts(data, len) }
    };
    match send(conn_handle, cid, data) {
        Ok(m) => {
            if !more.is_null() {
                // SAFETY: the caller guarantees `more` is writable.
                unsafe { *more = m };
            }
            OK
        }
        Err(st) => st,
    }
}

/// `l2cap_recvinto(conn_handle, cid, buf)`; `buf` null for `None`. `*len` is the buffer's
/// size on entry and the result on return.
///
/// # Safety
/// `buf` must be null or valid for writes of `*len` bytes; `len` must be valid.
#[no_mangle]
pub unsafe extern "C" fn ubt_l2cap_recvinto(
    conn_handle: u16,
    cid: u16,
    buf: *mut u8,
    len: *mut usize,
) -> Status {
    if len.is_null() {
        return errno::EINVAL;
    }
    // SAFETY: the caller guarantees `len` is valid.
    let cap = unsafe { *len };
    let buf = if buf.is_null() {
        None
    } else if cap == 0 {
        Some(&mut [][..])
    } else {
        // SAFETY: the caller guarantees `cap` writable bytes at `buf`.
        Some(unsafe { core::slice::from_raw_parts_mut(buf, cap) })
    };
    match recvinto(conn_handle, cid, buf) {
        Ok(n) => {
            // SAFETY: as above.
            unsafe { *len = n };
            OK
        }
        Err(st) => st,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtu_is_clamped_like_the_c_module() {
        assert_eq!(clamp_mtu(0), 32);
        assert_eq!(clamp_mtu(-5), 32);
        assert_eq!(clamp_mtu(450), 450);
        assert_eq!(clamp_mtu(70000), 65535);
    }

    #[test]
    fn credits_cover_one_sdu() {
        assert_eq!(initial_credits(32), 1);
        assert_eq!(initial_credits(284), 1);
        assert_eq!(initial_credits(285), 2);
        assert_eq!(initial_credits(512), 2);
        assert_eq!(initial_credits(65535), 231);
    }

    #[test]
    fn send_length_limits() {
        assert!(send_len_ok(450, 450, 450));
        assert!(!send_len_ok(451, 450, 450));
        // Twice our MTU, if the peer takes it.
        assert!(send_len_ok(100, 50, 512));
        assert!(!send_len_ok(101, 50, 512));
        assert!(send_len_ok(0, 32, 32));
    }

    #[test]
    fn pools_hold_what_can_be_in_flight() {
        for mtu in [32u16, 100, 284, 450, 512, 1000, 2048] {
            let data = block_data_len();
            // One SDU of up to 2 × MTU, with its packet header, fits the send pool.
            assert!(tx_pool_blocks(mtu) * data >= 2 * usize::from(mtu) + 16);
            // Every SDU the peer's credits allow, each up to one MTU and starting its own
            // block, plus the buffer being filled and the spare, fit the receive pool.
            let sdus = initial_credits(mtu);
            let need = (sdus + 1) * (usize::from(mtu).div_ceil(data) + 1) + 1;
            assert!(rx_pool_blocks(mtu) >= need, "mtu {mtu}");
        }
        // Huge MTUs are capped rather than allocating per credit.
        assert!(rx_pool_blocks(65535) < 10 * (65535usize.div_ceil(block_data_len()) + 2));
    }

    #[test]
    fn shared_pool_stall_and_recovery_thresholds() {
        // 12 blocks (spec §12): stall at 6 free or fewer, recover at 9 or more.
        assert!(mem_stall(6, 12));
        assert!(!mem_stall(7, 12));
        assert!(!mem_recovered(8, 12));
        assert!(mem_recovered(9, 12));
    }

    #[test]
    fn record_mirror_has_nimbles_shape() {
        // Pointer-sized fields are where C puts them on this target.
        let p = mem::size_of::<*const u8>();
        assert_eq!(mem::offset_of!(ChanRecord, conn_handle), p);
        assert_eq!(mem::offset_of!(ChanRecord, flags), p + 10);
        assert_eq!(
            mem::offset_of!(ChanRecord, rx_buf),
            (p + 11).div_ceil(p) * p
        );
        assert_eq!(mem::offset_of!(CocEndpoint, mtu), p);
    }

    #[test]
    fn pool_hands_out_distinct_aligned_blocks() {
        // NimBLE's mbuf calls enter the NPL's critical sections, shared with the running stack
        // of crate::testing's scenarios.
        let _serial = crate::testing::serial();
        let mut pool = Pool::new(4).unwrap();
        let mut got = Vec::new();
        for _ in 0..4 {
            let m = pool.get();
            assert!(!m.is_null());
            assert_eq!(m as usize % POOL_ALIGN, 0);
            got.push(m);
        }
        assert!(pool.get().is_null());
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 4);
        for m in got {
            // SAFETY: each is a live mbuf of this pool.
            unsafe { ns::os_mbuf_free_chain(m) };
        }
        assert_eq!(pool.pool.num_free(), 4);
    }
}
