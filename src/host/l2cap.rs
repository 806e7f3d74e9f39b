//! L2CAP connection-oriented channels (`l2cap_*` methods, events 22–26; spec §5.7, §6, §10).
//!
//! Several channels at once, beyond MicroPython's C module (which has one): a table of
//! listening PSMs and a table of channels, open or opening, each named by `(conn_handle, cid)`
//! as every call and event already does. Both hold at most [`MAX_CHANNELS`] entries (build
//! setting `UBT_L2CAP_MAX_CHANNELS`, which also sizes NimBLE's channel and server pools).
//! Past it `l2cap_connect` and `l2cap_listen` fail with `ENOMEM` and a peer's request is
//! refused with "no resources"; listening twice on one PSM fails with `EALREADY`. Beyond the
//! C module too: every call while inactive fails with `ENODEV` instead of crashing, and a
//! connect that NimBLE refuses at once frees its entry.
//!
//! Memory. NimBLE builds received SDUs in mbufs taken from the pool of the SDU buffer we hand
//! it, and takes SDUs to send as mbuf chains. Each channel owns two private pools (Rust heap,
//! 8-byte aligned, never linked into NimBLE's global pool list), made when it is connected or
//! accepted: one for sending, one for receiving, so a large send can never starve reception
//! and no channel can starve another. A pool only goes away once NimBLE can no longer hold
//! one of its mbufs (pools of a closed channel are retired, then dropped after the poll).
//!
//! Receiving. A complete SDU is appended to the channel's pending data, which scripts drain
//! with `l2cap_recvinto`. NimBLE returns credits to the peer only when it is handed a new
//! receive buffer through `ble_l2cap_recv_ready`, and it needs a receive buffer before the next
//! segment arrives, so while data is pending a fresh buffer is placed straight into the
//! channel (NimBLE's private channel record, mirrored and checked below) and credits are
//! returned only once pending is empty (spec §10). So a channel whose receiver stops reading
//! stalls only its own sender. NimBLE's credits cover one SDU; a firmware built with
//! `UBT_L2CAP_RX_CREDITS` above that gives the peer up to that many once a channel is open (an
//! LE Flow Control Credit for the difference, and NimBLE tops it up to that from then on), so
//! on a radio it keeps sending while the script reads the last SDU, and the receive pool is
//! sized for every K-frame those credits allow. Off by default (see docs/api.md).
//!
//! Sending. `l2cap_send` returns false ("stalled") on a credit stall or when NimBLE's shared
//! mbuf pool is at most half free; that channel's `_IRQ_L2CAP_SEND_READY` follows once both
//! are over: its credits came (NimBLE's TX_UNSTALLED for that channel) and a later poll finds
//! the pool at least three-quarters free. Raising it for the pool alone while NimBLE still
//! waits for credits would make the script's next send fail with `EBUSY`. Both stalls are
//! kept per channel: every channel that was told "stalled" gets its own SEND_READY, and a
//! credit stall holds none of the shared pool (NimBLE makes K-frames only as credits allow),
//! so one channel's stalled peer does not hold up another channel.

use core::ffi::{c_int, c_void};
use core::{mem, ptr};

use alloc::boxed::Box;
use alloc::vec::Vec;
use nimble_sys as ns;

use super::state::{is_active, require_active};
use crate::error::{check, Error};
use crate::event::{self, Event};
use crate::handle::{Cid, ConnHandle, Psm};
use crate::hci::mbuf_pool::{MbufPool, POOL_ALIGN};
use crate::sys;
use crate::sys::private::ChanRecord;
use crate::thread::{Global, NimbleThread};

/// NimBLE's L2CAP event callback type, for comparing the pointer NimBLE keeps with ours.
type L2capEventFn = unsafe extern "C" fn(*mut ns::ble_l2cap_event, *mut c_void) -> c_int;

/// NimBLE's "sent part of the SDU, waiting for credits" return code.
const BLE_HS_ESTALLED: c_int = ns::BLE_HS_ESTALLED as c_int;
/// NimBLE's "no resources" code: a request past the channel maximum is refused with it.
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

/// Credits the peer holds on a channel we receive on (build setting `UBT_L2CAP_RX_CREDITS`),
/// when more than NimBLE's [`initial_credits`].
const RX_CREDITS: usize = ns::UBT_L2CAP_RX_CREDITS as usize;

/// A scenario test's value for the setting (simulated firmware only; `usize::MAX`: none).
#[cfg(any(test, feature = "sim"))]
static RX_CREDITS_FOR_TESTS: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(usize::MAX);

/// Makes channels opened from now on use `credits` instead of the build setting (`None`: the
/// build setting again). Simulated firmware only.
#[cfg(any(test, feature = "sim"))]
pub fn set_rx_credits_for_tests(credits: Option<usize>) {
    let v = credits.unwrap_or(usize::MAX);
    RX_CREDITS_FOR_TESTS.store(v, core::sync::atomic::Ordering::Release);
}

fn rx_credits_setting() -> usize {
    #[cfg(any(test, feature = "sim"))]
    {
        let v = RX_CREDITS_FOR_TESTS.load(core::sync::atomic::Ordering::Acquire);
        if v != usize::MAX {
            return v;
        }
    }
    RX_CREDITS
}

/// The credits the peer gets on a channel with receive MTU `mtu`: one SDU's worth, or the
/// build setting when larger.
pub fn rx_credits(mtu: u16) -> u16 {
    rx_credits_for(mtu, rx_credits_setting())
}

fn rx_credits_for(mtu: u16, setting: usize) -> u16 {
    initial_credits(mtu).max(setting).min(usize::from(u16::MAX)) as u16
}

/// Blocks of the receive pool. While data is pending the peer can still use the credits it
/// holds: each of up to `initial_credits` SDUs may arrive (each at most one MTU, each starting
/// a block of its own), plus the buffer being filled and the spare handed to NimBLE. Beyond
/// eight SDUs (MTUs over 2 KiB) the bound is capped: only a peer splitting SDUs on purpose
/// gets near it, and running out closes the channel rather than corrupting it. With more
/// credits (`UBT_L2CAP_RX_CREDITS`), at least what they carry: one K-frame of up to the MPS
/// each, every one possibly starting an SDU (a block of its own).
pub fn rx_pool_blocks(mtu: u16) -> usize {
    rx_pool_blocks_for(mtu, rx_credits_setting())
}

fn rx_pool_blocks_for(mtu: u16, rx_credits_setting: usize) -> usize {
    let per_sdu = usize::from(mtu).div_ceil(block_data_len()) + 1;
    let one_sdu = initial_credits(mtu).min(8) * per_sdu + per_sdu + 2;
    let credits = usize::from(rx_credits_for(mtu, rx_credits_setting));
    let ahead = (credits * COC_MPS).div_ceil(block_data_len()) + credits + per_sdu + 2;
    one_sdu.max(ahead)
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

// --- The channel table -------------------------------------------------------------------------

/// The most channels open or opening at once, over all links, and the most listening PSMs:
/// NimBLE's channel and server pools hold this many (build setting `UBT_L2CAP_MAX_CHANNELS`).
pub const MAX_CHANNELS: usize = ns::MYNEWT_VAL_BLE_L2CAP_COC_MAX_NUM as usize;

/// One channel, from `l2cap_connect` or an accepted request until it closes.
struct Channel {
    /// An outgoing channel's callback argument, by which its CONNECTED event is matched before
    /// NimBLE's channel is known; 0 for accepted channels (their listener's argument is null).
    token: usize,
    /// NimBLE's channel: from accept, or from CONNECTED for outgoing ones; null before.
    chan: *mut ns::ble_l2cap_chan,
    /// The channel is open (CONNECT raised, DISCONNECT not yet).
    connected: bool,
    conn_handle: ConnHandle,
    cid: Cid,
    our_mtu: u16,
    peer_mtu: u16,
    /// NimBLE's private record, when it matched our mirror; without it credits are
    /// returned early.
    record: Option<ChanRecord>,
    /// Received SDUs not yet read, one chain (from `rx`).
    rx_pending: *mut ns::os_mbuf,
    /// Inside the RECV handler: credits wait until it returns.
    in_recv_irq: bool,
    /// `l2cap_send` on this channel reported a shared-pool stall; this channel's SEND_READY
    /// is owed when the pool recovers.
    mem_stalled: bool,
    /// NimBLE still holds part of this channel's last SDU, waiting for the peer's credits:
    /// until its TX_UNSTALLED event a further `ble_l2cap_send` fails with `EBUSY`, so no
    /// SEND_READY may be raised for the pool alone.
    credit_stalled: bool,
    rx: Box<Pool>,
    tx: Box<Pool>,
}

impl Channel {
    fn new(token: usize, mtu: u16) -> Result<Channel, Error> {
        let rx = Pool::new(rx_pool_blocks(mtu)).ok_or(Error::NoMem)?;
        let tx = Pool::new(tx_pool_blocks(mtu)).ok_or(Error::NoMem)?;
        Ok(Channel {
            token,
            chan: ptr::null_mut(),
            connected: false,
            conn_handle: ConnHandle(0),
            cid: Cid(0),
            our_mtu: mtu,
            peer_mtu: 0,
            record: None,
            rx_pending: ptr::null_mut(),
            in_recv_irq: false,
            mem_stalled: false,
            credit_stalled: false,
            rx,
            tx,
        })
    }

    fn matches(&self, conn_handle: ConnHandle, cid: Cid) -> bool {
        self.connected && !self.chan.is_null() && self.conn_handle == conn_handle && self.cid == cid
    }

    /// Drops unread data: NimBLE has closed the channel (or never opened it).
    fn close(&mut self) {
        if !self.rx_pending.is_null() {
            // SAFETY: the pending chain is ours (from our rx pool, still alive).
            unsafe { ns::os_mbuf_free_chain(self.rx_pending) };
            self.rx_pending = ptr::null_mut();
        }
    }
}

struct State {
    /// PSMs we listen on (each a NimBLE server, kept until the stack stops).
    listeners: Vec<Psm>,
    /// Channels open or opening, at most [`MAX_CHANNELS`].
    channels: Vec<Channel>,
    /// Pools of closed channels NimBLE may still free mbufs into until its callback returns;
    /// dropped after the poll (or call) in which they were retired.
    retired: Vec<(Box<Pool>, Box<Pool>)>,
    /// The token of the channel `l2cap_connect` is opening inside NimBLE (0: none): a
    /// synchronous failure's events are that call's.
    connecting: usize,
    /// The last token handed out.
    last_token: usize,
}

impl State {
    /// The channel NimBLE knows as `chan`.
    fn by_chan(&mut self, chan: *mut ns::ble_l2cap_chan) -> Option<&mut Channel> {
        if chan.is_null() {
            return None;
        }
        self.channels.iter_mut().find(|ch| ch.chan == chan)
    }

    /// The open channel a script names.
    fn open(&mut self, conn_handle: ConnHandle, cid: Cid) -> Option<&mut Channel> {
        self.channels
            .iter_mut()
            .find(|ch| ch.matches(conn_handle, cid))
    }

    /// Removes the channel at `i`, keeping its pools until NimBLE is done with them.
    fn retire_at(&mut self, i: usize) {
        let mut ch = self.channels.swap_remove(i);
        ch.close();
        self.retired.push((ch.rx, ch.tx));
    }

    fn retire_chan(&mut self, chan: *mut ns::ble_l2cap_chan) {
        if let Some(i) = self
            .channels
            .iter()
            .position(|ch| !chan.is_null() && ch.chan == chan)
        {
            self.retire_at(i);
        }
    }

    fn retire_token(&mut self, token: usize) {
        if let Some(i) = self.channels.iter().position(|ch| ch.token == token) {
            self.retire_at(i);
        }
    }

    /// Room for one more channel: `ENOMEM` past the maximum or without memory for the table.
    fn reserve_channel(&mut self) -> Result<(), Error> {
        if self.channels.len() >= MAX_CHANNELS {
            return Err(Error::NoMem);
        }
        self.channels.try_reserve(1).map_err(|_| Error::NoMem)?;
        // Room for every channel, this one included, to retire its pools without allocating
        // inside a NimBLE callback.
        self.retired
            .try_reserve(self.channels.len() + 1)
            .map_err(|_| Error::NoMem)
    }
}

/// The channel state. Never borrowed across a call into Python or into a NimBLE function that
/// can call back (send, connect, disconnect, recv_ready).
static STATE: Global<State> = Global::new(State {
    listeners: Vec::new(),
    channels: Vec::new(),
    retired: Vec::new(),
    connecting: 0,
    last_token: 0,
});

/// Forgets everything, for a stack (re)start or stop: NimBLE is reinitialised before it runs
/// again, so none of its old channels can touch these pools.
pub fn reset(t: NimbleThread) {
    let _ = STATE.with(t, |s| {
        s.listeners = Vec::new();
        s.channels = Vec::new();
        s.retired = Vec::new();
        s.connecting = 0;
    });
}

/// The port's heap was wiped under us (see [`super::gatts::forget_heap`]): drop every
/// reference into it without freeing anything.
pub fn forget_heap(t: NimbleThread) {
    let _ = STATE.with(t, |s| {
        core::mem::forget(core::mem::take(&mut s.listeners));
        core::mem::forget(core::mem::take(&mut s.channels));
        core::mem::forget(core::mem::take(&mut s.retired));
        s.connecting = 0;
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

fn dispatch_disconnect(
    t: NimbleThread,
    conn_handle: ConnHandle,
    info: &ns::ble_l2cap_chan_info,
    status: i64,
) {
    let ev = Event::L2capDisconnect {
        conn_handle,
        cid: Cid(info.scid),
        psm: Psm(info.psm),
        status,
    };
    event::dispatch(t, &ev);
}

fn dispatch_send_ready(t: NimbleThread, conn_handle: ConnHandle, cid: Cid, status: u8) {
    let ev = Event::L2capSendReady {
        conn_handle,
        cid,
        status,
    };
    event::dispatch(t, &ev);
}

unsafe extern "C" fn on_event(event: *mut ns::ble_l2cap_event, arg: *mut c_void) -> c_int {
    if event.is_null() {
        return 0;
    }
    // SAFETY: NimBLE calls its L2CAP callbacks from its host, on the NimBLE thread.
    let t = unsafe { NimbleThread::new_unchecked() };
    // SAFETY: NimBLE passes a valid event for the duration of the call.
    let event = unsafe { &*event };
    let u = &event.__bindgen_anon_1;
    match u32::from(event.type_) {
        ns::BLE_L2CAP_EVENT_COC_CONNECTED => {
            // SAFETY: the tag says `connect` is the valid member.
            let c = unsafe { u.connect };
            on_connected(t, ConnHandle(c.conn_handle), c.chan, c.status, arg as usize);
            0
        }
        ns::BLE_L2CAP_EVENT_COC_DISCONNECTED => {
            // SAFETY: the tag says `disconnect` is the valid member.
            let d = unsafe { u.disconnect };
            on_disconnected(t, ConnHandle(d.conn_handle), d.chan);
            0
        }
        ns::BLE_L2CAP_EVENT_COC_ACCEPT => {
            // SAFETY: the tag says `accept` is the valid member.
            let a = unsafe { u.accept };
            on_accept(t, ConnHandle(a.conn_handle), a.chan)
        }
        ns::BLE_L2CAP_EVENT_COC_DATA_RECEIVED => {
            // SAFETY: the tag says `receive` is the valid member.
            let r = unsafe { u.receive };
            on_receive(t, ConnHandle(r.conn_handle), r.chan, r.sdu_rx);
            0
        }
        ns::BLE_L2CAP_EVENT_COC_TX_UNSTALLED => {
            // SAFETY: the tag says `tx_unstalled` is the valid member.
            let un = unsafe { u.tx_unstalled };
            on_unstalled(t, ConnHandle(un.conn_handle), un.chan, un.status);
            0
        }
        _ => 0,
    }
}

/// A channel opened (status 0) or failed to. `token` is the callback argument: an outgoing
/// channel's token, or 0 for an accepted one (known by `chan` since its ACCEPT).
fn on_connected(
    t: NimbleThread,
    conn_handle: ConnHandle,
    chan: *mut ns::ble_l2cap_chan,
    status: c_int,
    token: usize,
) {
    let info = chan_info(chan);
    let sync_failure = token != 0 && STATE.with(t, |s| s.connecting == token).unwrap_or(false);
    if status == 0 {
        let ok = STATE
            .with(t, |s| {
                let ch = if token != 0 {
                    s.channels.iter_mut().find(|ch| ch.token == token)
                } else {
                    s.by_chan(chan)
                };
                match ch {
                    Some(ch) if !ch.connected => {
                        ch.chan = chan;
                        ch.connected = true;
                        ch.conn_handle = conn_handle;
                        ch.cid = Cid(info.scid);
                        ch.our_mtu = info.our_coc_mtu;
                        ch.peer_mtu = info.peer_coc_mtu;
                        let cb: L2capEventFn = on_event;
                        // SAFETY: `chan` is live in its callback and until NimBLE reports it
                        // disconnected, when the channel is removed from the table.
                        ch.record = unsafe { ChanRecord::check(chan, &info, cb as *mut c_void) };
                        true
                    }
                    _ => false,
                }
            })
            .unwrap_or(false);
        if ok {
            // More credits than NimBLE's one SDU, so the peer sends ahead (build setting).
            let record = STATE
                .with(t, |s| s.by_chan(chan).and_then(|ch| ch.record))
                .flatten();
            if let Some(record) = record {
                record.grant_rx_credits(t, rx_credits(info.our_coc_mtu));
            }
        }
        if ok && is_active() {
            let ev = Event::L2capConnect {
                conn_handle,
                cid: Cid(info.scid),
                psm: Psm(info.psm),
                our_mtu: info.our_coc_mtu,
                peer_mtu: info.peer_coc_mtu,
            };
            event::dispatch(t, &ev);
        }
    } else {
        if sync_failure {
            // l2cap_connect reports it as its own error and frees the entry.
            return;
        }
        let known = STATE
            .with(t, |s| {
                if token != 0 {
                    s.channels.iter().any(|ch| ch.token == token)
                } else {
                    s.by_chan(chan).is_some()
                }
            })
            .unwrap_or(false);
        if !known {
            return;
        }
        if is_active() {
            dispatch_disconnect(t, conn_handle, &info, status.into());
        }
        // NimBLE frees the channel without a DISCONNECTED event.
        let _ = STATE.with(t, |s| {
            if token != 0 {
                s.retire_token(token);
            } else {
                s.retire_chan(chan);
            }
        });
    }
}

fn on_disconnected(t: NimbleThread, conn_handle: ConnHandle, chan: *mut ns::ble_l2cap_chan) {
    // A connect NimBLE refused inside l2cap_connect never had its `chan` recorded: reported
    // as that call's error.
    let known = STATE
        .with(t, |s| s.by_chan(chan).is_some())
        .unwrap_or(false);
    if !known {
        return;
    }
    let info = chan_info(chan);
    if is_active() {
        dispatch_disconnect(t, conn_handle, &info, 0);
    }
    let _ = STATE.with(t, |s| s.retire_chan(chan));
}

fn on_accept(t: NimbleThread, conn_handle: ConnHandle, chan: *mut ns::ble_l2cap_chan) -> c_int {
    if !is_active() {
        return BLE_HS_ENOMEM;
    }
    let info = chan_info(chan);
    // The channel gets its pools before the script hears of it: past the maximum, or without
    // memory, the peer is refused with "no resources" and no event.
    let made = STATE
        .with(t, |s| {
            s.reserve_channel()?;
            let mut ch = Channel::new(0, info.our_coc_mtu)?;
            ch.chan = chan;
            s.channels.push(ch);
            Ok::<(), Error>(())
        })
        .unwrap_or(Err(Error::Busy));
    if made.is_err() {
        return BLE_HS_ENOMEM;
    }
    let accept = Event::L2capAccept {
        conn_handle,
        cid: Cid(info.scid),
        psm: Psm(info.psm),
        our_mtu: info.our_coc_mtu,
        peer_mtu: info.peer_coc_mtu,
    };
    let result = event::dispatch(t, &accept);
    let sdu = STATE
        .with(t, |s| match s.by_chan(chan) {
            Some(ch) if result.value == 0 => ch.rx.get(),
            _ => ptr::null_mut(),
        })
        .unwrap_or(ptr::null_mut());
    let rc = if result.value != 0 {
        // NimBLE turns the code into the L2CAP result sent to the peer (spec §6.3).
        result.value as c_int
    } else if sdu.is_null() {
        BLE_HS_ENOMEM
    } else {
        // SAFETY: `chan` is the channel being accepted; `sdu` is a fresh mbuf NimBLE now owns.
        unsafe { ns::ble_l2cap_recv_ready(chan, sdu) }
    };
    if rc != 0 {
        // NimBLE drops a refused channel without further events.
        let _ = STATE.with(t, |s| s.retire_chan(chan));
    }
    rc
}

/// What the receive path decided under the borrow, acted on after it.
enum RxNext {
    /// Not our channel: free the SDU.
    Drop,
    /// Raise RECV; `early_sdu` must be handed over with recv_ready first (no record access).
    Raise {
        cid: Cid,
        early_sdu: *mut ns::os_mbuf,
    },
    /// The receive pool ran dry: the channel is closed (its pending data was dropped).
    Overflow { fresh: *mut ns::os_mbuf },
}

fn on_receive(
    t: NimbleThread,
    conn_handle: ConnHandle,
    chan: *mut ns::ble_l2cap_chan,
    sdu: *mut ns::os_mbuf,
) {
    let next = STATE
        .with(t, |s| {
            let Some(ch) = s.by_chan(chan).filter(|ch| ch.connected) else {
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
            if let Some(record) = ch.record {
                // The mbuf (possibly null, which only happens with overflow, handled below)
                // is NimBLE's from here.
                record.set_rx_sdu(t, fresh);
            }
            if overflow {
                return RxNext::Overflow { fresh };
            }
            ch.in_recv_irq = true;
            RxNext::Raise {
                cid: ch.cid,
                early_sdu: if ch.record.is_some() {
                    ptr::null_mut()
                } else {
                    fresh
                },
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
            if is_active() {
                event::dispatch(t, &Event::L2capRecv { conn_handle, cid });
            }
            // The handler may have closed this channel (and NimBLE reused `chan` for another
            // one only after a later event), so the lookup is by `chan` again.
            let give = STATE
                .with(t, |s| match s.by_chan(chan) {
                    Some(ch) if ch.connected => {
                        ch.in_recv_irq = false;
                        ch.record.filter(|_| ch.rx_pending.is_null())
                    }
                    _ => None,
                })
                .flatten();
            if let Some(record) = give {
                return_credits(t, chan, record);
            }
        }
    }
}

/// Hands NimBLE its current receive buffer again, which returns the peer's credits.
fn return_credits(t: NimbleThread, chan: *mut ns::ble_l2cap_chan, record: ChanRecord) {
    let sdu = record.rx_sdu(t);
    if !sdu.is_null() {
        // SAFETY: live channel; `sdu` is already NimBLE's receive buffer.
        unsafe { ns::ble_l2cap_recv_ready(chan, sdu) };
    }
}

fn on_unstalled(
    t: NimbleThread,
    conn_handle: ConnHandle,
    chan: *mut ns::ble_l2cap_chan,
    status: c_int,
) {
    // This channel's credit stall is over; its SEND_READY now unless its pool stall still
    // owes it.
    let cid = STATE
        .with(t, |s| match s.by_chan(chan) {
            Some(ch) if ch.connected => {
                ch.credit_stalled = false;
                (!ch.mem_stalled).then_some(ch.cid)
            }
            _ => None,
        })
        .flatten();
    if let (Some(cid), true) = (cid, is_active()) {
        dispatch_send_ready(t, conn_handle, cid, u8::from(status != 0));
    }
}

/// After each poll: every channel whose send backed off for the shared pool is told it may go
/// on once the pool is at least three-quarters free again, unless NimBLE still waits for that
/// channel's credits to finish its SDU (then its TX_UNSTALLED event raises SEND_READY). Also
/// drops the pools retired during the poll: every NimBLE callback has returned.
pub fn check_mem_unstall(t: NimbleThread) {
    // SAFETY: plain reads of NimBLE's msys counters on the NimBLE thread.
    let (free, count) = unsafe { (ns::os_msys_num_free(), ns::os_msys_count()) };
    let recovered = mem_recovered(free, count);
    let ready = STATE
        .with(t, |s| {
            s.retired.clear();
            let mut ready = Vec::new();
            if !recovered {
                return ready;
            }
            for ch in s.channels.iter_mut() {
                if ch.mem_stalled && ch.connected {
                    ch.mem_stalled = false;
                    if !ch.credit_stalled {
                        ready.push((ch.conn_handle, ch.cid));
                    }
                }
            }
            ready
        })
        .unwrap_or_default();
    for (conn, cid) in ready {
        if is_active() {
            dispatch_send_ready(t, conn, cid, 0);
        }
    }
}

// --- Operations ------------------------------------------------------------------------------------

/// `l2cap_listen(psm, mtu)`: `EALREADY` if already listening on `psm`, `ENOMEM` with
/// [`MAX_CHANNELS`] PSMs listening.
pub fn listen(t: NimbleThread, psm: Psm, mtu: u16) -> Result<(), Error> {
    require_active()?;
    STATE
        .with(t, |s| {
            if s.listeners.contains(&psm) {
                return Err(Error::Already);
            }
            if s.listeners.len() >= MAX_CHANNELS {
                return Err(Error::NoMem);
            }
            s.listeners.try_reserve(1).map_err(|_| Error::NoMem)
        })
        .unwrap_or(Err(Error::Busy))?;
    // SAFETY: plain NimBLE call on the NimBLE thread; the callback is a plain fn, its argument
    // null (accepted channels are known by their NimBLE channel).
    let rc = unsafe { ns::ble_l2cap_create_server(psm.0, mtu, Some(on_event), ptr::null_mut()) };
    check(rc)?;
    let _ = STATE.with(t, |s| s.listeners.push(psm));
    Ok(())
}

/// `l2cap_connect(conn_handle, psm, mtu)`: `ENOMEM` with [`MAX_CHANNELS`] channels open or
/// opening. A refusal frees the entry (unlike the C module, which keeps its slot).
pub fn connect(t: NimbleThread, conn_handle: ConnHandle, psm: Psm, mtu: u16) -> Result<(), Error> {
    require_active()?;
    let (token, sdu) = STATE
        .with(t, |s| {
            // No NimBLE channel uses a retired pool any more: they closed before this call.
            s.retired.clear();
            s.reserve_channel()?;
            s.last_token = s.last_token.wrapping_add(1).max(1);
            let token = s.last_token;
            let mut ch = Channel::new(token, mtu)?;
            let sdu = ch.rx.get();
            s.channels.push(ch);
            s.connecting = token;
            Ok((token, sdu))
        })
        .unwrap_or(Err(Error::Busy))?;
    let rc = if sdu.is_null() {
        BLE_HS_ENOMEM
    } else {
        // SAFETY: plain NimBLE call; `sdu` is a fresh mbuf from the channel's pool, which
        // outlives NimBLE's use of it (retired, not freed, when the channel ends). The token
        // is an opaque number NimBLE hands back to `on_event`.
        unsafe {
            ns::ble_l2cap_connect(
                conn_handle.0,
                psm.0,
                mtu,
                sdu,
                Some(on_event),
                token as *mut c_void,
            )
        }
    };
    let _ = STATE.with(t, |s| {
        s.connecting = 0;
        if rc != 0 {
            s.retire_token(token);
        }
    });
    check(rc)
}

/// `l2cap_disconnect(conn_handle, cid)`: `EINVAL` unless it names an open channel.
pub fn disconnect(t: NimbleThread, conn_handle: ConnHandle, cid: Cid) -> Result<(), Error> {
    require_active()?;
    let chan = STATE
        .with(t, |s| s.open(conn_handle, cid).map(|ch| ch.chan))
        .flatten()
        .ok_or(Error::InvalidArg)?;
    // SAFETY: `chan` is an open channel; NimBLE reports the end with an event.
    check(unsafe { ns::ble_l2cap_disconnect(chan) })
}

/// `l2cap_send(conn_handle, cid, data)`: `Ok(true)` when more may be sent now, `Ok(false)`
/// when this channel is stalled (wait for its `_IRQ_L2CAP_SEND_READY`).
pub fn send(
    t: NimbleThread,
    conn_handle: ConnHandle,
    cid: Cid,
    data: &[u8],
) -> Result<bool, Error> {
    require_active()?;
    let (chan, sdu) = STATE
        .with(t, |s| {
            let ch = s.open(conn_handle, cid).ok_or(Error::InvalidArg)?;
            if !send_len_ok(data.len(), ch.our_mtu, ch.peer_mtu) {
                return Err(Error::InvalidArg);
            }
            let sdu = ch.tx.get();
            if sdu.is_null() {
                return Err(Error::NoMem);
            }
            // SAFETY: `sdu` is a fresh mbuf of ours; the length fits a u16 (≤ 2 × MTU is
            // checked against the peer's u16 MTU above).
            let rc = unsafe { ns::os_mbuf_append(sdu, data.as_ptr().cast(), data.len() as u16) };
            if rc != 0 {
                // SAFETY: still ours.
                unsafe { ns::os_mbuf_free_chain(sdu) };
                return Err(Error::NoMem);
            }
            Ok((ch.chan, sdu))
        })
        .unwrap_or(Err(Error::Busy))?;
    // SAFETY: `chan` is an open channel; NimBLE takes `sdu` on success or stall.
    let rc = unsafe { ns::ble_l2cap_send(chan, sdu) };
    let mut stalled = false;
    let result = match rc {
        0 => Ok(()),
        BLE_HS_ESTALLED => {
            stalled = true;
            let _ = STATE.with(t, |s| {
                if let Some(ch) = s.by_chan(chan) {
                    ch.credit_stalled = true;
                }
            });
            Ok(())
        }
        // Refused before NimBLE took it (busy, too big): still ours.
        rc if rc == ns::BLE_HS_EBUSY as c_int || rc == ns::BLE_HS_EBADDATA as c_int => {
            // SAFETY: NimBLE did not take `sdu` on these codes.
            unsafe { ns::os_mbuf_free_chain(sdu) };
            check(rc)
        }
        // Other failures happen after NimBLE took the SDU (and freed it).
        rc => check(rc),
    };
    // The shared pool is every channel's: the channel that finds it low backs off and is
    // owed its own SEND_READY; others find out on their own next send.
    // SAFETY: plain reads of NimBLE's msys counters.
    let (free, count) = unsafe { (ns::os_msys_num_free(), ns::os_msys_count()) };
    if mem_stall(free, count) {
        let _ = STATE.with(t, |s| {
            if let Some(ch) = s.by_chan(chan) {
                ch.mem_stalled = true;
            }
        });
        stalled = true;
        crate::rt::sched::request_poll();
    }
    result.map(|()| !stalled)
}

/// `l2cap_recvinto(conn_handle, cid, buf)`: with `None` the number of bytes pending; else
/// copies up to `buf.len()` of them into `buf` and returns how many. Credits go back to the
/// peer once everything pending is read (after the RECV handler, if called from it).
pub fn recvinto(
    t: NimbleThread,
    conn_handle: ConnHandle,
    cid: Cid,
    buf: Option<&mut [u8]>,
) -> Result<usize, Error> {
    require_active()?;
    let (n, give, chan) = STATE
        .with(t, |s| {
            let ch = s.open(conn_handle, cid).ok_or(Error::InvalidArg)?;
            // SAFETY: the pending chain is ours and valid.
            let avail = unsafe { sys::mbuf::chain_len(ch.rx_pending) };
            let Some(buf) = buf else {
                return Ok((avail, None, ch.chan));
            };
            let n = buf.len().min(avail);
            if n == 0 {
                return Ok((0, None, ch.chan));
            }
            // SAFETY: the chain holds `avail >= n` bytes; `buf` has room for `n`.
            unsafe { ns::os_mbuf_copydata(ch.rx_pending, 0, n as c_int, buf.as_mut_ptr().cast()) };
            if n == avail {
                // SAFETY: ours; nothing else refers to it.
                unsafe { ns::os_mbuf_free_chain(ch.rx_pending) };
                ch.rx_pending = ptr::null_mut();
                Ok((n, ch.record.filter(|_| !ch.in_recv_irq), ch.chan))
            } else {
                // SAFETY: ours; drop the bytes read, then free emptied leading blocks.
                unsafe {
                    ns::os_mbuf_adj(ch.rx_pending, n as c_int);
                    ch.rx_pending = ns::os_mbuf_trim_front(ch.rx_pending);
                }
                Ok((n, None, ch.chan))
            }
        })
        .unwrap_or(Err(Error::Busy))?;
    if let Some(record) = give {
        return_credits(t, chan, record);
    }
    Ok(n)
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
    fn heap_per_channel_at_mtu_512_is_what_the_docs_say() {
        // docs/api.md, "Several L2CAP channels": 7 send and 14 receive blocks of 256 bytes,
        // 5,376 bytes, with NimBLE's one SDU of credits (the default); 61 receive blocks,
        // 17,408 bytes, with UBT_L2CAP_RX_CREDITS=24 (the same with 32- and 64-bit mbuf
        // headers).
        assert_eq!(tx_pool_blocks(512), 7);
        assert_eq!(rx_pool_blocks_for(512, 0), 14);
        assert_eq!((7 + rx_pool_blocks_for(512, 0)) * BLOCK_SIZE, 5376);
        assert_eq!(rx_pool_blocks_for(512, 24), 61);
        assert_eq!((7 + rx_pool_blocks_for(512, 24)) * BLOCK_SIZE, 17_408);
        assert_eq!(
            rx_pool_blocks(512),
            rx_pool_blocks_for(512, rx_credits_setting())
        );
    }

    #[test]
    fn more_credits_only_when_the_setting_exceeds_one_sdu() {
        assert_eq!(rx_credits_for(512, 0), 2);
        assert_eq!(rx_credits_for(512, 24), 24);
        assert_eq!(rx_credits_for(65535, 24), 231);
        // Every credit's K-frame fits the pool, each starting an SDU of its own.
        let data = block_data_len();
        for credits in [0, 8, 24, 255] {
            for mtu in [32u16, 284, 512, 2048] {
                let c = usize::from(rx_credits_for(mtu, credits));
                let need = (c * COC_MPS).div_ceil(data) + c;
                assert!(
                    rx_pool_blocks_for(mtu, credits) >= need,
                    "mtu {mtu} credits {credits}"
                );
            }
        }
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
