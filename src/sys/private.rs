//! NimBLE state outside its public headers, which the C module reaches the same way: the GATT
//! server's resource counters, an L2CAP channel's receive buffer, and the host's privacy
//! functions (our IRK, the controller's resolving list). Every access is checked or bounded
//! here, so the host logic never sees a raw private layout.

use core::ffi::{c_int, c_void};
use core::ptr;

use nimble_sys as ns;

use crate::error::{check, Error};
use crate::thread::NimbleThread;

extern "C" {
    // NimBLE's resource counters for the next `ble_gatts_start` (ble_hs.c). `ble_gatts_count_cfg`
    // only ever adds to them, so every re-registration has to zero them first or the tables
    // grow without bound.
    static mut ble_hs_max_attrs: u16;
    static mut ble_hs_max_services: u16;
    static mut ble_hs_max_client_configs: u16;

    fn ble_hs_hci_util_rand(dst: *mut c_void, len: c_int) -> c_int;
    fn ble_hs_pvcy_set_our_irk(irk: *const u8) -> c_int;
    fn ble_hs_misc_restore_irks() -> c_int;
    fn ble_hs_pvcy_remove_entry(addr_type: u8, addr: *const u8) -> c_int;
    fn ble_hs_hci_get_le_supported_feat() -> u32;
    fn ble_hs_hci_util_set_data_len(conn_handle: u16, tx_octets: u16, tx_time: u16) -> c_int;
    fn ble_l2cap_sig_le_credits(conn_handle: u16, scid: u16, credits: u16) -> c_int;
    fn ble_l2cap_sig_reject_invalid_cid_tx(
        conn_handle: u16,
        id: u8,
        src_cid: u16,
        dst_cid: u16,
    ) -> c_int;
}

/// The controller's LE features (the low 32 bits of LE Read Local Supported Features), as
/// NimBLE read them at start-up.
pub fn le_features(_t: NimbleThread) -> u32 {
    // SAFETY: a plain read of a value NimBLE set during sync, on the NimBLE thread.
    unsafe { ble_hs_hci_get_le_supported_feat() }
}

/// HCI LE Set Data Length for `conn_handle` (a blocking command).
pub fn set_data_len(
    _t: NimbleThread,
    conn_handle: u16,
    tx_octets: u16,
    tx_time: u16,
) -> Result<(), Error> {
    // SAFETY: HCI commands are sent on the NimBLE thread; the values are range-checked by
    // NimBLE before they are sent.
    check(unsafe { ble_hs_hci_util_set_data_len(conn_handle, tx_octets, tx_time) })
}

/// Answers a peer's signalling request `identifier` on `conn_handle` with a Command Reject,
/// "invalid CID in request", echoing the request's `dcid` (our side) and `scid` (the peer's).
pub fn reject_invalid_cid(
    _t: NimbleThread,
    conn_handle: u16,
    identifier: u8,
    dcid: u16,
    scid: u16,
) {
    // SAFETY: plain NimBLE call on the NimBLE thread; it allocates its own packet and drops
    // it if the link is gone.
    let _ = unsafe { ble_l2cap_sig_reject_invalid_cid_tx(conn_handle, identifier, scid, dcid) };
}

/// Zeroes NimBLE's GATT resource counters before the services are counted again.
pub fn reset_gatts_counters(_t: NimbleThread) {
    // SAFETY: plain u16 globals of NimBLE, only touched on the NimBLE thread (the token), and
    // not in use: they are read by `ble_gatts_start`, which is not running.
    unsafe {
        ptr::addr_of_mut!(ble_hs_max_attrs).write(0);
        ptr::addr_of_mut!(ble_hs_max_services).write(0);
        ptr::addr_of_mut!(ble_hs_max_client_configs).write(0);
    }
}

/// Random bytes from the controller (a blocking HCI command).
pub fn controller_rand(_t: NimbleThread, out: &mut [u8]) -> Result<(), Error> {
    // SAFETY: `out` is writable for its length; HCI commands are sent on the NimBLE thread.
    check(unsafe { ble_hs_hci_util_rand(out.as_mut_ptr().cast(), out.len() as c_int) })
}

/// Makes `irk` our identity resolving key. A new IRK clears the controller's resolving list,
/// so the peers' IRKs are then read from the store again (spec §11 step 4).
pub fn set_our_irk(_t: NimbleThread, irk: &[u8; 16]) {
    // SAFETY: `irk` holds 16 bytes, which NimBLE copies; on the NimBLE thread.
    unsafe {
        if ble_hs_pvcy_set_our_irk(irk.as_ptr()) == 0 {
            let _ = ble_hs_misc_restore_irks();
        }
    }
}

/// Takes a peer's identity address out of the controller's resolving list (HCI LE Remove
/// Device From Resolving List, a blocking command). Returns NimBLE's code: the controller's
/// status comes back as `BLE_HS_ERR_HCI_BASE + status`, e.g. "unknown connection identifier"
/// for a peer that never gave us an IRK, or "command disallowed" while advertising, scanning
/// or connecting.
pub fn remove_from_resolving_list(_t: NimbleThread, peer: &ns::ble_addr_t) -> c_int {
    // SAFETY: `peer.val` holds 6 bytes, which NimBLE copies into the command; HCI commands are
    // sent on the NimBLE thread (the token).
    unsafe { ble_hs_pvcy_remove_entry(peer.type_, peer.val.as_ptr()) }
}

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
/// `coc_rx.sdu` is read or written, and only through a [`ChanRecord`] whose mirror was
/// confirmed against what NimBLE's public API reports for the same channel.
#[repr(C)]
struct ChanLayout {
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

/// A live NimBLE channel whose private record is known to match our mirror: the right to
/// read and replace its receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChanRecord(*mut ns::ble_l2cap_chan);

impl ChanRecord {
    /// Checks the mirrored record against NimBLE's public view of `chan`, including the
    /// callback pointer `cb` the channel was made with. `None` means the NimBLE build differs:
    /// the caller then returns credits early (safe, just less back-pressure).
    ///
    /// # Safety
    /// `chan` must be null or a live NimBLE channel, and stay live while the record is used.
    pub unsafe fn check(
        chan: *mut ns::ble_l2cap_chan,
        info: &ns::ble_l2cap_chan_info,
        cb: *mut c_void,
    ) -> Option<ChanRecord> {
        if chan.is_null() {
            return None;
        }
        // SAFETY: `chan` is a live NimBLE channel (the caller's contract); only reads.
        let rec = unsafe { &*chan.cast::<ChanLayout>() };
        let same = rec.scid == info.scid
            && rec.dcid == info.dcid
            && rec.psm == info.psm
            && rec.coc_rx.mtu == info.our_coc_mtu
            && rec.coc_tx.mtu == info.peer_coc_mtu
            && rec.my_coc_mps == info.our_l2cap_mtu
            && rec.cb == cb;
        same.then_some(ChanRecord(chan))
    }

    /// The buffer NimBLE receives the next SDU into.
    pub fn rx_sdu(self, _t: NimbleThread) -> *mut ns::os_mbuf {
        // SAFETY: the layout was confirmed by `check`, and the channel is live (its contract).
        unsafe { (*self.0.cast::<ChanLayout>()).coc_rx.sdu }
    }

    /// Raises the credits the peer holds on this channel to `target` when NimBLE granted fewer
    /// (an LE Flow Control Credit for the difference), and makes `target` what NimBLE tops
    /// the peer up to each time it is handed a receive buffer. Returns the credits sent.
    pub fn grant_rx_credits(self, _t: NimbleThread, target: u16) -> u16 {
        // SAFETY: as in `rx_sdu`; NimBLE reads both fields only on this thread.
        let rec = unsafe { &mut *self.0.cast::<ChanLayout>() };
        if rec.initial_credits >= target {
            return 0;
        }
        let extra = target - rec.initial_credits;
        rec.initial_credits = target;
        rec.coc_rx.credits = rec.coc_rx.credits.saturating_add(extra);
        // SAFETY: a signalling packet on a live channel's link, sent on the NimBLE thread.
        let _ = unsafe { ble_l2cap_sig_le_credits(rec.conn_handle, rec.scid, extra) };
        extra
    }

    /// Gives NimBLE `sdu` to receive the next SDU into, from inside its receive callback
    /// (NimBLE cleared the field before the callback and reads it for the next segment).
    pub fn set_rx_sdu(self, _t: NimbleThread, sdu: *mut ns::os_mbuf) {
        // SAFETY: as in `rx_sdu`; NimBLE owns the mbuf from here.
        unsafe { (*self.0.cast::<ChanLayout>()).coc_rx.sdu = sdu };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem;

    #[test]
    fn record_mirror_has_nimbles_shape() {
        // Pointer-sized fields are where C puts them on this target.
        let p = mem::size_of::<*const u8>();
        assert_eq!(mem::offset_of!(ChanLayout, conn_handle), p);
        assert_eq!(mem::offset_of!(ChanLayout, flags), p + 10);
        assert_eq!(
            mem::offset_of!(ChanLayout, rx_buf),
            (p + 11).div_ceil(p) * p
        );
        assert_eq!(mem::offset_of!(CocEndpoint, mtu), p);
    }
}
