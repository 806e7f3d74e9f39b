//! Pairing, bonding and the key store (spec §11): `gap_pair`, `gap_passkey`, the `bond`, `mitm`,
//! `le_secure` and `io` settings, events 28–31, and NimBLE's store callbacks, which the script
//! answers through `_IRQ_GET_SECRET` / `_IRQ_SET_SECRET`.
//!
//! Records are NimBLE's security-value struct byte for byte (80 bytes), keyed by the peer's
//! address type and address (7 bytes), as MicroPython's C module stores them, so scripts and
//! bond files written for it keep working. Our IRK is sec_type 10 under the key `b'irk'`.
//!
//! `gap_unpair` (beyond MicroPython) removes bonds through the same store: it finds them with
//! indexed `_IRQ_GET_SECRET` reads, as NimBLE iterates its store, and deletes each with
//! `_IRQ_SET_SECRET` and value None.
//!
//! Differences from the C module, following the API document: `le_secure` defaults to False
//! (legacy pairing allowed); `_IRQ_PASSKEY_ACTION` is raised in both roles, so a central can
//! enter or compare a passkey too; `gap_pair` and `gap_passkey` check that the stack is active.

use alloc::vec::Vec;
use core::ffi::c_int;
use core::mem;
use core::sync::atomic::{AtomicBool, Ordering};

use nimble_sys as ns;

use super::state::{host_running, require_active};
use crate::error::{check, Error};
use crate::event::{self, Event};
use crate::handle::ConnHandle;
use crate::sys;
use crate::thread::NimbleThread;

/// `_IRQ_GET_SECRET` / `_IRQ_SET_SECRET` type of our own IRK (MicroPython's own number).
pub const SEC_TYPE_OUR_IRK: u8 = 10;
/// The key our IRK is stored under.
pub const OUR_IRK_KEY: &[u8] = b"irk";
/// Length of an IRK.
pub const IRK_LEN: usize = 16;
/// Length of a security record (NimBLE's `ble_store_value_sec`).
pub const SEC_RECORD_LEN: usize = mem::size_of::<ns::ble_store_value_sec>();
/// Length of a record key: address type then the 6 address bytes (little-endian).
pub const SEC_KEY_LEN: usize = 7;

/// `gap_passkey` actions (`_PASSKEY_ACTION_*`).
pub const PASSKEY_ACTION_INPUT: u8 = 2;
/// Show the passkey we pass.
pub const PASSKEY_ACTION_DISPLAY: u8 = 3;
/// Numeric comparison: accept or reject.
pub const PASSKEY_ACTION_NUMERIC_COMPARISON: u8 = 4;

// --- Pure helpers ------------------------------------------------------------------------------

/// The 7-byte key of a security record: address type, then the address as NimBLE holds it.
pub fn record_key(addr: &ns::ble_addr_t) -> [u8; SEC_KEY_LEN] {
    let mut key = [0u8; SEC_KEY_LEN];
    key[0] = addr.type_;
    key[1..].copy_from_slice(&addr.val);
    key
}

/// Whether a store lookup names no peer ("the index-th record of this type").
pub fn is_any_addr(addr: &ns::ble_addr_t) -> bool {
    addr.type_ == 0 && addr.val == [0; 6]
}

/// What `gap_passkey` injects into NimBLE's security manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasskeyReply {
    /// The passkey typed in or shown (actions INPUT and DISPLAY).
    Passkey(u32),
    /// The numeric comparison's answer.
    Compare(bool),
}

/// Validates `gap_passkey`'s action: any action but INPUT, DISPLAY and NUMCMP is `EINVAL`.
pub fn passkey_reply(action: u8, passkey: u32) -> Result<PasskeyReply, Error> {
    match action {
        PASSKEY_ACTION_INPUT | PASSKEY_ACTION_DISPLAY => Ok(PasskeyReply::Passkey(passkey)),
        PASSKEY_ACTION_NUMERIC_COMPARISON => Ok(PasskeyReply::Compare(passkey != 0)),
        _ => Err(Error::InvalidArg),
    }
}

/// NimBLE's code for the controller's "command disallowed" (HCI status 0x0C): what a
/// resolving-list change answers while advertising, scanning or connecting.
const HCI_COMMAND_DISALLOWED: c_int = ns::BLE_HS_ERR_HCI_BASE as c_int + 0x0c;
/// HCI reason "remote user terminated connection", sent when unpairing a connected peer.
const HCI_REMOTE_USER_TERMINATED: u8 = 0x13;
/// `_IRQ_GET_SECRET` indices are a byte (NimBLE's `idx`), so a store walk ends after this many
/// even if the script's handler never says "no more".
const STORE_WALK_MAX: usize = 256;

/// The peer `gap_unpair(addr_type, addr)` names, `addr` most-significant byte first as in
/// `gap_connect`. Bonds are keyed by identity address, so only public (0) and static random
/// (1) are valid; anything else is `EINVAL`.
pub fn unpair_target(addr_type: u8, addr: &[u8; 6]) -> Result<ns::ble_addr_t, Error> {
    if addr_type != ns::BLE_ADDR_PUBLIC as u8 && addr_type != ns::BLE_ADDR_RANDOM as u8 {
        return Err(Error::InvalidArg);
    }
    Ok(sys::addr::from_script(addr_type, addr))
}

/// Appends `addr` unless it is already listed (a peer has up to one record per type).
pub fn add_unique(peers: &mut Vec<ns::ble_addr_t>, addr: ns::ble_addr_t) {
    if !peers
        .iter()
        .any(|p| p.type_ == addr.type_ && p.val == addr.val)
    {
        peers.push(addr);
    }
}

// --- Settings ------------------------------------------------------------------------------------

/// Set once the API document's defaults have been written over NimBLE's syscfg ones.
static DEFAULTS_APPLIED: AtomicBool = AtomicBool::new(false);

/// Applies the defaults once: `le_secure` False (the API document; the C module has True).
fn ensure_defaults(cfg: &mut ns::ble_hs_cfg) {
    if !DEFAULTS_APPLIED.swap(true, Ordering::AcqRel) {
        cfg.set_sm_sc(0);
    }
}

/// One of the security settings `config()` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// `bond`
    Bond(bool),
    /// `mitm`
    Mitm(bool),
    /// `le_secure`
    LeSecure(bool),
    /// `io`: the raw I/O capability.
    Io(u8),
}

/// `config(bond=|mitm=|le_secure=|io=)`: written into NimBLE's host configuration, which keeps
/// them across restarts (spec §5.2).
pub fn set(t: NimbleThread, setting: Setting) {
    sys::cfg::with(t, |cfg| {
        ensure_defaults(cfg);
        match setting {
            Setting::Bond(on) => cfg.set_sm_bonding(u32::from(on) as _),
            Setting::Mitm(on) => cfg.set_sm_mitm(u32::from(on) as _),
            Setting::LeSecure(on) => cfg.set_sm_sc(u32::from(on) as _),
            Setting::Io(io) => cfg.sm_io_cap = io,
        }
    })
}

/// Before the host starts: key distribution and the store callbacks (spec §11).
pub fn configure_host(t: NimbleThread) {
    sys::cfg::with(t, |cfg| {
        ensure_defaults(cfg);
        let dist = (ns::BLE_SM_PAIR_KEY_DIST_ENC
            | ns::BLE_SM_PAIR_KEY_DIST_ID
            | ns::BLE_SM_PAIR_KEY_DIST_SIGN) as u8;
        cfg.sm_our_key_dist = dist;
        cfg.sm_their_key_dist = dist;
        cfg.store_read_cb = Some(store_read);
        cfg.store_write_cb = Some(store_write);
        cfg.store_delete_cb = Some(store_delete);
        cfg.store_status_cb = Some(ns::ble_store_util_status_rr);
        cfg.store_status_arg = core::ptr::null_mut();
    })
}

/// At sync: our IRK from the script, or a new one it is asked to keep (spec §11 steps 2–4).
pub fn load_our_irk(t: NimbleThread) {
    let mut irk = [0u8; IRK_LEN];
    let get = Event::GetSecret {
        sec_type: SEC_TYPE_OUR_IRK,
        index: 0,
        key: Some(OUR_IRK_KEY),
    };
    if !event::dispatch_for_buffer(t, &get, &mut irk) {
        if sys::private::controller_rand(t, &mut irk).is_err() {
            return;
        }
        let set = Event::SetSecret {
            sec_type: SEC_TYPE_OUR_IRK,
            key: OUR_IRK_KEY,
            value: Some(&irk),
        };
        let kept = event::dispatch(t, &set);
        if !(kept.handled && kept.value != 0) {
            // Not stored: keep NimBLE's built-in IRK, as the C module does.
            return;
        }
    }
    sys::private::set_our_irk(t, &irk);
}

// --- Store callbacks ---------------------------------------------------------------------------

fn is_sec_type(obj_type: c_int) -> bool {
    obj_type == ns::BLE_STORE_OBJ_TYPE_OUR_SEC as c_int
        || obj_type == ns::BLE_STORE_OBJ_TYPE_PEER_SEC as c_int
}

unsafe extern "C" fn store_read(
    obj_type: c_int,
    key: *const ns::ble_store_key,
    dst: *mut ns::ble_store_value,
) -> c_int {
    // CCCD records never reach the script (spec §11), and nothing does while stopping. NimBLE
    // reads the peers' IRKs before it reports sync, so syncing counts as running.
    if !is_sec_type(obj_type) || key.is_null() || dst.is_null() || !host_running() {
        return ns::BLE_HS_ENOENT as c_int;
    }
    // SAFETY: NimBLE calls its store callbacks from its host, on the NimBLE thread.
    let t = unsafe { NimbleThread::new_unchecked() };
    // SAFETY: NimBLE passes a valid security key for these object types.
    let key = unsafe { &(*key).sec };
    let addr_key = record_key(&key.peer_addr);
    let get = Event::GetSecret {
        sec_type: obj_type as u8,
        index: key.idx,
        key: (!is_any_addr(&key.peer_addr)).then_some(&addr_key[..]),
    };
    let mut record = [0u8; SEC_RECORD_LEN];
    if !event::dispatch_for_buffer(t, &get, &mut record) {
        return ns::BLE_HS_ENOENT as c_int;
    }
    // SAFETY: `dst` is NimBLE's writable value; the record is exactly its `sec` member's size,
    // and any byte pattern is a valid `ble_store_value_sec` (integers, arrays, bitfields).
    unsafe {
        core::ptr::copy_nonoverlapping(
            record.as_ptr(),
            core::ptr::addr_of_mut!((*dst).sec).cast::<u8>(),
            SEC_RECORD_LEN,
        )
    };
    0
}

unsafe extern "C" fn store_write(obj_type: c_int, val: *const ns::ble_store_value) -> c_int {
    if !is_sec_type(obj_type) || val.is_null() {
        // CCCD writes are dropped silently (spec §11).
        return 0;
    }
    if !host_running() {
        return ns::BLE_HS_ESTORE_CAP as c_int;
    }
    // SAFETY: NimBLE calls its store callbacks from its host, on the NimBLE thread.
    let t = unsafe { NimbleThread::new_unchecked() };
    // SAFETY: NimBLE passes a valid security value for these object types.
    let sec = unsafe { &(*val).sec };
    let key = record_key(&sec.peer_addr);
    // SAFETY: the record is plain data of SEC_RECORD_LEN bytes, readable as bytes.
    let record = unsafe {
        core::slice::from_raw_parts(
            (sec as *const ns::ble_store_value_sec).cast::<u8>(),
            SEC_RECORD_LEN,
        )
    };
    let set = Event::SetSecret {
        sec_type: obj_type as u8,
        key: &key,
        value: Some(record),
    };
    let r = event::dispatch(t, &set);
    if r.handled && r.value != 0 {
        0
    } else {
        ns::BLE_HS_ESTORE_CAP as c_int
    }
}

unsafe extern "C" fn store_delete(obj_type: c_int, key: *const ns::ble_store_key) -> c_int {
    if !is_sec_type(obj_type) || key.is_null() || !host_running() {
        return ns::BLE_HS_ENOENT as c_int;
    }
    // SAFETY: NimBLE calls its store callbacks from its host, on the NimBLE thread.
    let t = unsafe { NimbleThread::new_unchecked() };
    // SAFETY: NimBLE passes a valid security key for these object types.
    let key = record_key(unsafe { &(*key).sec.peer_addr });
    let delete = Event::SetSecret {
        sec_type: obj_type as u8,
        key: &key,
        value: None,
    };
    let r = event::dispatch(t, &delete);
    if r.handled && r.value != 0 {
        0
    } else {
        ns::BLE_HS_ENOENT as c_int
    }
}

// --- GAP events ----------------------------------------------------------------------------------

/// `_IRQ_ENCRYPTION_UPDATE` after an encryption change (either role; failures show encrypted=0).
pub fn on_enc_change(t: NimbleThread, conn_handle: ConnHandle) {
    let Some(desc) = sys::addr::conn_desc(t, conn_handle) else {
        return;
    };
    let s = desc.sec_state;
    let ev = Event::EncryptionUpdate {
        conn_handle,
        encrypted: s.encrypted() != 0,
        authenticated: s.authenticated() != 0,
        bonded: s.bonded() != 0,
        key_size: s.key_size() as u8,
    };
    event::dispatch(t, &ev);
}

/// `_IRQ_PASSKEY_ACTION`: the script answers with `gap_passkey`, now or later.
pub fn on_passkey_action(t: NimbleThread, conn_handle: ConnHandle, action: u8, numcmp: u32) {
    let passkey = if action == PASSKEY_ACTION_NUMERIC_COMPARISON {
        numcmp
    } else {
        0
    };
    let ev = Event::PasskeyAction {
        conn_handle,
        action,
        passkey,
    };
    event::dispatch(t, &ev);
}

/// A bonded peer pairs again: forget the old bond and let the pairing go on.
pub fn on_repeat_pairing(t: NimbleThread, conn_handle: ConnHandle) -> c_int {
    if let Some(desc) = sys::addr::conn_desc(t, conn_handle) {
        delete_records(&desc.peer_id_addr);
    }
    ns::BLE_GAP_REPEAT_PAIRING_RETRY as c_int
}

// --- Unpairing ------------------------------------------------------------------------------------

/// A store key for a peer's security records; the zero address with an index is NimBLE's
/// "index-th record of any peer" (as `ble_store_iterate` asks).
fn sec_key(peer: &ns::ble_addr_t, idx: u8) -> ns::ble_store_key {
    ns::ble_store_key {
        sec: ns::ble_store_key_sec {
            peer_addr: *peer,
            idx,
            ..Default::default()
        },
    }
}

/// Reads one security record through NimBLE's store, i.e. the script's `_IRQ_GET_SECRET`.
fn read_sec(obj_type: u32, key: &ns::ble_store_key) -> Option<ns::ble_store_value_sec> {
    let mut value = ns::ble_store_value {
        sec: ns::ble_store_value_sec::default(),
    };
    // SAFETY: `key` and `value` are valid for the call; NimBLE calls our store callback, which
    // writes at most the `sec` member.
    let rc = unsafe { ns::ble_store_read(obj_type as c_int, key, &mut value) };
    // SAFETY: `value` was made through its `sec` member, which a security read fills.
    (rc == 0).then_some(unsafe { value.sec })
}

/// Whether the script's store holds a record of either type for `peer`.
fn is_bonded(peer: &ns::ble_addr_t) -> bool {
    let key = sec_key(peer, 0);
    [
        ns::BLE_STORE_OBJ_TYPE_OUR_SEC,
        ns::BLE_STORE_OBJ_TYPE_PEER_SEC,
    ]
    .into_iter()
    .any(|obj_type| read_sec(obj_type, &key).is_some())
}

/// Every peer with a record of either type, found as NimBLE walks its store: `_IRQ_GET_SECRET`
/// with key None and a rising index until the script answers None.
fn bonded_peers() -> Vec<ns::ble_addr_t> {
    let mut peers = Vec::new();
    for obj_type in [
        ns::BLE_STORE_OBJ_TYPE_OUR_SEC,
        ns::BLE_STORE_OBJ_TYPE_PEER_SEC,
    ] {
        for idx in 0..STORE_WALK_MAX {
            let key = sec_key(&ns::ble_addr_t::default(), idx as u8);
            match read_sec(obj_type, &key) {
                Some(record) => add_unique(&mut peers, record.peer_addr),
                None => break,
            }
        }
    }
    peers
}

/// Forgets one bonded peer: out of the controller's resolving list first (the only step that
/// can be refused, so a refusal changes nothing), then its link is terminated and its records
/// are deleted from the script's store.
fn forget(t: NimbleThread, peer: &ns::ble_addr_t) -> Result<(), Error> {
    // A peer that never sent an IRK is not in the list: the controller says "unknown
    // identifier", which is fine here.
    if sys::private::remove_from_resolving_list(t, peer) == HCI_COMMAND_DISALLOWED {
        return Err(Error::Busy);
    }
    let mut desc = ns::ble_gap_conn_desc::default();
    // SAFETY: `peer` and `desc` are valid for the call; on the NimBLE thread.
    if unsafe { ns::ble_gap_conn_find_by_addr(peer, &mut desc) } == 0 {
        // The disconnect event follows from the controller, as after `gap_disconnect`. A link
        // already going down answers EALREADY, which is fine.
        // SAFETY: plain NimBLE command on the NimBLE thread.
        let _ = unsafe { ns::ble_gap_terminate(desc.conn_handle, HCI_REMOTE_USER_TERMINATED) };
    }
    delete_records(peer);
    Ok(())
}

/// Deletes `peer`'s two security records from the script's store (`_IRQ_SET_SECRET` with
/// `None`). One delete per type: the script keys records by (type, address), so there is at
/// most one each. NimBLE's own helper repeats until "not found", which never ends with a
/// handler that always answers True.
fn delete_records(peer: &ns::ble_addr_t) {
    let key = sec_key(peer, 0);
    for obj_type in [
        ns::BLE_STORE_OBJ_TYPE_OUR_SEC,
        ns::BLE_STORE_OBJ_TYPE_PEER_SEC,
    ] {
        // SAFETY: `key` is valid for the call; NimBLE calls our store callback.
        let _ = unsafe { ns::ble_store_delete(obj_type as c_int, &key) };
    }
}

/// `gap_unpair()` (every bond) or `gap_unpair(addr_type, addr)` (one peer, `addr`
/// most-significant byte first). Refused with `EBUSY` while advertising, scanning or
/// connecting, when the controller may not change its resolving list, and with `ENOENT` when
/// the one peer has no record in the store; both before anything changes.
pub fn unpair(t: NimbleThread, peer: Option<(u8, [u8; 6])>) -> Result<(), Error> {
    require_active()?;
    let peer = peer
        .map(|(addr_type, addr)| unpair_target(addr_type, &addr))
        .transpose()?;
    // SAFETY: plain NimBLE queries on the NimBLE thread.
    let busy = unsafe {
        ns::ble_gap_adv_active() != 0
            || ns::ble_gap_disc_active() != 0
            || ns::ble_gap_conn_active() != 0
    };
    if busy {
        return Err(Error::Busy);
    }
    match peer {
        Some(peer) => {
            if !is_bonded(&peer) {
                return Err(Error::NotFound);
            }
            forget(t, &peer)
        }
        None => bonded_peers().iter().try_for_each(|p| forget(t, p)),
    }
}

// --- Operations ------------------------------------------------------------------------------------

/// `gap_pair(conn_handle)`: starts pairing (or encryption with a bond's keys).
pub fn pair(_t: NimbleThread, conn_handle: ConnHandle) -> Result<(), Error> {
    require_active()?;
    // SAFETY: plain NimBLE call on the NimBLE thread.
    check(unsafe { ns::ble_gap_security_initiate(conn_handle.0) })
}

/// `gap_passkey(conn_handle, action, passkey)`.
pub fn passkey(
    _t: NimbleThread,
    conn_handle: ConnHandle,
    action: u8,
    passkey: u32,
) -> Result<(), Error> {
    require_active()?;
    let mut io = ns::ble_sm_io {
        action,
        ..Default::default()
    };
    match passkey_reply(action, passkey)? {
        PasskeyReply::Passkey(p) => io.__bindgen_anon_1.passkey = p,
        PasskeyReply::Compare(ok) => io.__bindgen_anon_1.numcmp_accept = u8::from(ok),
    }
    // SAFETY: `io` is a valid, initialised request; NimBLE only reads it.
    check(unsafe { ns::ble_sm_inject_io(conn_handle.0, &mut io) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_the_c_modules_80_bytes() {
        assert_eq!(SEC_RECORD_LEN, 80);
        let v = ns::ble_store_value_sec::default();
        let base = &v as *const _ as usize;
        assert_eq!(&v.key_size as *const _ as usize - base, 7);
        assert_eq!(&v.ediv as *const _ as usize - base, 8);
        assert_eq!(&v.rand_num as *const _ as usize - base, 16);
        assert_eq!(&v.ltk as *const _ as usize - base, 24);
        assert_eq!(&v.irk as *const _ as usize - base, 41);
        assert_eq!(&v.csrk as *const _ as usize - base, 58);
    }

    #[test]
    fn record_key_is_type_then_address() {
        let addr = ns::ble_addr_t {
            type_: 1,
            val: [1, 2, 3, 4, 5, 6],
        };
        assert_eq!(record_key(&addr), [1, 1, 2, 3, 4, 5, 6]);
        assert!(!is_any_addr(&addr));
        assert!(is_any_addr(&ns::ble_addr_t::default()));
    }

    #[test]
    fn unpair_names_identity_addresses_only() {
        let addr = [0xc0, 1, 2, 3, 4, 5];
        let t = unpair_target(1, &addr).unwrap();
        assert_eq!((t.type_, t.val), (1, [5, 4, 3, 2, 1, 0xc0]));
        assert_eq!(record_key(&t), [1, 5, 4, 3, 2, 1, 0xc0]);
        assert!(unpair_target(0, &addr).is_ok());
        for bad in [2, 3, 255] {
            assert!(matches!(unpair_target(bad, &addr), Err(Error::InvalidArg)));
        }
    }

    #[test]
    fn peers_are_listed_once() {
        let a = ns::ble_addr_t {
            type_: 0,
            val: [1; 6],
        };
        let b = ns::ble_addr_t { type_: 1, ..a };
        let mut peers = Vec::new();
        for p in [a, b, a, b] {
            add_unique(&mut peers, p);
        }
        assert_eq!(peers.len(), 2);
    }

    #[test]
    fn passkey_actions() {
        assert_eq!(passkey_reply(2, 123456), Ok(PasskeyReply::Passkey(123456)));
        assert_eq!(passkey_reply(3, 42), Ok(PasskeyReply::Passkey(42)));
        assert_eq!(passkey_reply(4, 1), Ok(PasskeyReply::Compare(true)));
        assert_eq!(passkey_reply(4, 0), Ok(PasskeyReply::Compare(false)));
        for bad in [0, 1, 5, 255] {
            assert_eq!(passkey_reply(bad, 1), Err(Error::InvalidArg));
        }
    }
}
