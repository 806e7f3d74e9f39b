//! Scenarios through the shim-facing `extern "C"` functions, called as the shim calls them,
//! against the scripted controller: each asserts the events a script would see (number and
//! tuple) and what went over the HCI UART.

use std::vec;
use std::vec::Vec;

use super::controller::{CID_ATT, CID_SIG, CID_SMP};
use super::{
    advance, now_ms, set_handler, start, stop, take_events, with_controller, Arg, Event, Reply, Sim,
};
use crate::error::{errno, Status, OK};
use crate::event::*;
use crate::ffi;
use crate::ffi::{UbtOptBuf, UbtSecurityKey};
use crate::host::gatts::{GattsEntry, UBT_GATTS_CHARACTERISTIC, UBT_GATTS_SERVICE};
use crate::uuid::Uuid;

/// The peer's address, most-significant byte first.
const PEER: [u8; 6] = [0xc0, 0x01, 0x02, 0x03, 0x04, 0x05];
/// Python's characteristic flags.
const FLAG_READ: u16 = 0x0002;
const FLAG_WRITE: u16 = 0x0008;
const FLAG_NOTIFY: u16 = 0x0010;
const FLAG_INDICATE: u16 = 0x0020;

fn ev(num: u16, args: Vec<Arg>) -> Event {
    Event { num, args }
}

fn int(v: i64) -> Arg {
    Arg::Int(v)
}

fn bytes(b: &[u8]) -> Arg {
    Arg::Bytes(b.to_vec())
}

fn buf(data: &[u8]) -> UbtOptBuf {
    UbtOptBuf {
        ptr: data.as_ptr(),
        len: data.len(),
        present: true,
    }
}

const NO_BUF: UbtOptBuf = UbtOptBuf {
    ptr: core::ptr::null(),
    len: 0,
    present: false,
};

/// A fresh simulation with the stack started and start-up's events and commands forgotten.
fn started() -> Sim {
    let sim = Sim::new();
    assert_eq!(start(), OK);
    take_events();
    with_controller(|c| {
        c.commands.clear();
        c.acl_out.clear();
    });
    sim
}

/// The events recorded since last asked.
fn events() -> Vec<Event> {
    take_events()
}

/// The parameters of the last command with `opcode`.
fn last_sent(opcode: u16) -> Vec<u8> {
    with_controller(|c| c.sent(opcode).pop())
        .unwrap_or_else(|| panic!("the host never sent command {opcode:#06x}"))
}

fn advertise(interval_us: i64, adv: &[u8], connectable: bool) -> Status {
    // SAFETY: `adv` outlives the call.
    unsafe { ffi::ubt_ble_gap_advertise_start(interval_us, buf(adv), NO_BUF, connectable) }
}

/// A central (the peer) connects to our advertising: handle 1.
fn connect_as_peripheral() -> u16 {
    assert_eq!(advertise(100_000, &[2, 1, 6], true), OK);
    with_controller(|c| c.connection_complete(1, 1, 0, PEER, 24));
    advance(5);
    assert_eq!(
        events(),
        vec![ev(IRQ_CENTRAL_CONNECT, vec![int(1), int(0), bytes(&PEER)])]
    );
    1
}

/// After a link comes up, the host asks for the longest data length and the 2M PHY, once the
/// script has seen the connection, on links in either role.
#[test]
fn a_new_link_asks_for_data_length_and_the_2m_phy() {
    let _sim = started();
    let conn = connect_as_peripheral();
    let (dl, phy) = with_controller(|c| (c.sent(0x2022), c.sent(0x2032)));
    let [lo, hi] = conn.to_le_bytes();
    assert_eq!(
        dl,
        vec![vec![lo, hi, 251, 0, 0x48, 0x08]],
        "LE Set Data Length"
    );
    assert_eq!(
        phy,
        vec![vec![lo, hi, 0, 2, 2, 0, 0]],
        "LE Set PHY: 2M both ways"
    );
    assert!(events().is_empty(), "no event for the script");
    drop(_sim);
    // The same for a link we make as central.
    let _sim = started();
    let conn = connect_as_central();
    let [lo, hi] = conn.to_le_bytes();
    assert_eq!(
        with_controller(|c| c.sent(0x2022)),
        vec![vec![lo, hi, 251, 0, 0x48, 0x08]]
    );
    assert_eq!(
        with_controller(|c| c.sent(0x2032)),
        vec![vec![lo, hi, 0, 2, 2, 0, 0]]
    );
    assert!(events().is_empty(), "no event for the script");
}

/// Nothing is asked of a controller without the features, nor after a script turned the
/// upgrades off (which lasts across restarts and reads back).
#[test]
fn link_upgrades_need_the_feature_and_the_setting() {
    let _sim = Sim::new();
    // LE features without Data Packet Length Extension (bit 5) and LE 2M PHY (bit 8).
    with_controller(|c| c.le_features = 0x7fff & !(1 << 5) & !(1 << 8));
    assert_eq!(start(), OK);
    take_events();
    connect_as_peripheral();
    assert_eq!(
        with_controller(|c| (c.sent(0x2022).len(), c.sent(0x2032).len())),
        (0, 0)
    );
    drop(_sim);

    let _sim = started();
    ffi::ubt_ble_config_set_link_upgrade(ffi::UbtLinkUpgrade::DataLength, false);
    assert!(!ffi::ubt_ble_config_link_upgrade(
        ffi::UbtLinkUpgrade::DataLength
    ));
    assert!(ffi::ubt_ble_config_link_upgrade(ffi::UbtLinkUpgrade::Phy2m));
    connect_as_peripheral();
    assert_eq!(
        with_controller(|c| (c.sent(0x2022).len(), c.sent(0x2032).len())),
        (0, 1)
    );
    ffi::ubt_ble_config_set_link_upgrade(ffi::UbtLinkUpgrade::Phy2m, false);
    assert_eq!(start(), OK);
    take_events();
    with_controller(|c| c.commands.clear());
    connect_as_peripheral();
    assert_eq!(
        with_controller(|c| (c.sent(0x2022).len(), c.sent(0x2032).len())),
        (0, 0)
    );
    // Back to the defaults for the other tests.
    ffi::ubt_ble_config_set_link_upgrade(ffi::UbtLinkUpgrade::DataLength, true);
    ffi::ubt_ble_config_set_link_upgrade(ffi::UbtLinkUpgrade::Phy2m, true);
}

/// A controller that refuses both commands: the link carries on as before.
#[test]
fn refused_link_upgrades_leave_the_link_as_it_was() {
    let _sim = started();
    with_controller(|c| {
        c.fail.insert(0x2022, 0x11);
        c.fail.insert(0x2032, 0x11);
    });
    let conn = connect_as_peripheral();
    assert_eq!(
        with_controller(|c| (c.sent(0x2022).len(), c.sent(0x2032).len())),
        (1, 1)
    );
    let mut read = vec![0x02];
    read.extend(185u16.to_le_bytes());
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &read));
    advance(5);
    assert_eq!(att_out().len(), 1, "ATT still answers");
    assert!(ffi::ubt_ble_is_active());
}

/// We connect to the peer with `gap_connect`: handle 2.
fn connect_as_central() -> u16 {
    // SAFETY: PEER is 6 readable bytes.
    let st = unsafe { ffi::ubt_ble_gap_connect(0, PEER.as_ptr(), 2000, 0, 0) };
    assert_eq!(st, OK);
    with_controller(|c| c.connection_complete(2, 0, 0, PEER, 24));
    advance(5);
    assert_eq!(
        events(),
        vec![ev(
            IRQ_PERIPHERAL_CONNECT,
            vec![int(2), int(0), bytes(&PEER)]
        )]
    );
    2
}

/// The ATT PDUs the host sent since last asked.
fn att_out() -> Vec<Vec<u8>> {
    with_controller(|c| c.take_pdus(CID_ATT))
        .into_iter()
        .map(|p| p.payload)
        .collect()
}

// --- Life cycle -----------------------------------------------------------------------------------

#[test]
fn start_syncs_stop_closes_and_start_works_again() {
    let _sim = Sim::new();
    assert!(!ffi::ubt_ble_is_active());
    assert_eq!(start(), OK);
    assert!(ffi::ubt_ble_is_active());
    with_controller(|c| {
        assert!(c.uart_open);
        assert_eq!(c.commands[0].opcode, 0x0c03, "HCI Reset comes first");
        assert_eq!(c.sent(0x1009).len(), 1, "Read BD_ADDR");
        assert_eq!(c.bad_bytes, 0);
    });
    // The controller's public address, most-significant byte first.
    let (mut addr_type, mut addr) = (0xffu8, [0u8; 6]);
    // SAFETY: both out-parameters are writable (6 bytes for the address).
    let st = unsafe { ffi::ubt_ble_config_mac(&mut addr_type, addr.as_mut_ptr()) };
    assert_eq!(st, OK);
    assert_eq!((addr_type, addr), (0, [0x11, 0x22, 0x33, 0x44, 0x55, 0x66]));

    stop();
    assert!(!ffi::ubt_ble_is_active());
    assert!(with_controller(|c| !c.uart_open));

    assert_eq!(start(), OK);
    assert!(ffi::ubt_ble_is_active());
    assert_eq!(
        with_controller(|c| c.sent(0x0c03).len()),
        2,
        "a second Reset"
    );
}

#[test]
fn start_against_a_silent_controller_times_out() {
    let _sim = Sim::new();
    with_controller(|c| c.answers_left = 0);
    let t0 = now_ms();
    assert_eq!(start(), errno::ETIMEDOUT);
    assert!(!ffi::ubt_ble_is_active());
    assert!(
        with_controller(|c| !c.uart_open),
        "the UART is closed again"
    );
    assert!(now_ms().wrapping_sub(t0) >= super::STARTUP_TIMEOUT_MS);
    // Once the controller answers, start-up works.
    with_controller(|c| c.answers_left = u32::MAX);
    assert_eq!(start(), OK);
}

#[test]
fn a_poll_queued_before_a_reset_still_runs() {
    let _sim = Sim::new();
    // A poll the library asked for while stopping: the next start must not wait on it.
    crate::rt::sched::request_poll();
    super::reset();
    assert_eq!(start(), OK);
}

#[test]
fn a_late_answer_within_the_deadline_still_syncs() {
    let _sim = Sim::new();
    with_controller(|c| {
        c.delay.insert(0x0c03, 700);
    });
    let t0 = now_ms();
    assert_eq!(start(), OK);
    assert!(now_ms().wrapping_sub(t0) >= 700, "waited for the answer");
}

#[test]
fn start_asks_for_our_irk_and_offers_a_new_one() {
    let _sim = Sim::new();
    set_handler(|e| match e.num {
        IRQ_SET_SECRET => Reply::Int(1),
        _ => Reply::None,
    });
    assert_eq!(start(), OK);
    let secrets: Vec<Event> = take_events()
        .into_iter()
        .filter(|e| e.num == IRQ_GET_SECRET || e.num == IRQ_SET_SECRET)
        .collect();
    let irk_asked = ev(IRQ_GET_SECRET, vec![int(10), int(0), bytes(b"irk")]);
    let pos = secrets
        .iter()
        .position(|e| *e == irk_asked)
        .expect("GET_SECRET for our IRK");
    assert_eq!(
        secrets[0],
        ev(IRQ_GET_SECRET, vec![int(2), int(0), Arg::None]),
        "peer IRKs are restored first"
    );
    // Not found: 16 bytes from the controller's LE Rand are offered to the script.
    assert_eq!(
        secrets[pos + 1],
        ev(
            IRQ_SET_SECRET,
            vec![int(10), bytes(b"irk"), bytes(&[0xa5; 16])]
        )
    );

    // With the IRK stored, the next start uses it and offers nothing.
    set_handler(|e| match e.num {
        IRQ_GET_SECRET if e.args[0] == Arg::Int(10) => Reply::Buffer(vec![0x3c; 16]),
        _ => Reply::None,
    });
    stop();
    take_events();
    assert_eq!(start(), OK);
    let evs = take_events();
    assert!(evs.contains(&irk_asked));
    assert!(!evs.iter().any(|e| e.num == IRQ_SET_SECRET), "{evs:?}");
}

// --- Advertising and scanning -----------------------------------------------------------------------

#[test]
fn advertising_sends_interval_and_data() {
    let _sim = started();
    let adv = [2, 1, 6, 3, 0x03, 0x0f, 0x18];
    assert_eq!(advertise(100_000, &adv, true), OK);
    let data = last_sent(0x2008);
    assert_eq!(usize::from(data[0]), adv.len());
    assert_eq!(&data[1..1 + adv.len()], &adv);
    let params = last_sent(0x2006);
    // 100 ms in 0.625 ms units, both ends; connectable undirected (ADV_IND).
    assert_eq!(&params[0..4], &[160, 0, 160, 0]);
    assert_eq!(params[4], 0);
    assert_eq!(last_sent(0x200a), vec![1]);

    assert_eq!(ffi::ubt_ble_gap_advertise_stop(), OK);
    assert_eq!(last_sent(0x200a), vec![0]);

    // Non-connectable, 250 ms: general discoverable, so scannable (ADV_SCAN_IND), as the C
    // module's NimBLE parameters give.
    assert_eq!(advertise(250_000, &adv, false), OK);
    let params = last_sent(0x2006);
    assert_eq!(&params[0..4], &[144, 1, 144, 1]);
    assert_eq!(params[4], 2);
    assert_eq!(events(), vec![]);
}

#[test]
fn scan_reports_results_and_ends_after_its_duration() {
    let _sim = started();
    assert_eq!(ffi::ubt_ble_gap_scan_start(100, 30_000, 30_000, true), OK);
    let params = last_sent(0x200b);
    // Active scan, 30 ms interval and window (48 units).
    assert_eq!(&params[0..5], &[1, 48, 0, 48, 0]);
    assert_eq!(last_sent(0x200c)[0], 1);

    with_controller(|c| c.adv_report(0, 1, PEER, -60, &[2, 1, 6]));
    advance(10);
    assert_eq!(
        events(),
        vec![ev(
            IRQ_SCAN_RESULT,
            vec![int(1), bytes(&PEER), int(0), int(-60), bytes(&[2, 1, 6])]
        )]
    );
    with_controller(|c| c.adv_report(4, 0, PEER, -90, &[5, 9, b'n', b'a', b'm', b'e']));
    advance(100);
    assert_eq!(
        events(),
        vec![
            ev(
                IRQ_SCAN_RESULT,
                vec![
                    int(0),
                    bytes(&PEER),
                    int(4),
                    int(-90),
                    bytes(b"\x05\x09name")
                ]
            ),
            ev(IRQ_SCAN_DONE, vec![]),
        ]
    );
    assert_eq!(last_sent(0x200c)[0], 0, "the controller stopped scanning");
}

#[test]
fn scan_stop_raises_scan_done_before_returning() {
    let _sim = started();
    assert_eq!(ffi::ubt_ble_gap_scan_start(0, 1_280_000, 11_250, false), OK);
    assert_eq!(last_sent(0x200b)[0], 0, "passive");
    advance(50);
    assert_eq!(events(), vec![]);
    assert_eq!(ffi::ubt_ble_gap_scan_stop(), OK);
    assert_eq!(events(), vec![ev(IRQ_SCAN_DONE, vec![])]);
    assert_eq!(last_sent(0x200c)[0], 0);
}

// --- Connections ------------------------------------------------------------------------------------

#[test]
fn connections_in_either_role_and_their_end() {
    let _sim = started();
    let conn = connect_as_peripheral();
    with_controller(|c| c.disconnection_complete(conn, 0x13));
    advance(5);
    assert_eq!(
        events(),
        vec![ev(
            IRQ_CENTRAL_DISCONNECT,
            vec![int(1), int(0), bytes(&PEER)]
        )]
    );

    let conn = connect_as_central();
    // The LE Create Connection carried the peer's address, least-significant byte first.
    let create = last_sent(0x200d);
    let mut le = PEER;
    le.reverse();
    assert_eq!(&create[6..12], &le);
    let mut was_connected = false;
    // SAFETY: `was_connected` is writable.
    let st = unsafe { ffi::ubt_ble_gap_disconnect(conn, &mut was_connected) };
    assert_eq!(st, OK);
    assert!(was_connected);
    assert_eq!(last_sent(0x0406), vec![2, 0, 0x13]);
    advance(5);
    assert_eq!(
        events(),
        vec![ev(
            IRQ_PERIPHERAL_DISCONNECT,
            vec![int(2), int(0), bytes(&PEER)]
        )]
    );
}

#[test]
fn connection_update_is_reported_with_the_new_parameters() {
    let _sim = started();
    let conn = connect_as_peripheral();
    with_controller(|c| c.connection_update_complete(conn, 40, 2, 500));
    advance(5);
    assert_eq!(
        events(),
        vec![ev(
            IRQ_CONNECTION_UPDATE,
            vec![int(1), int(40), int(2), int(500), int(0)]
        )]
    );
}

#[test]
fn gap_connect_intervals_reach_le_create_connection() {
    let _sim = started();
    // 7.5 ms .. 31.24 ms: rounded down to 6 and 24 units of 1.25 ms.
    // SAFETY: PEER is 6 readable bytes.
    let st = unsafe { ffi::ubt_ble_gap_connect(0, PEER.as_ptr(), 2000, 7_500, 31_240) };
    assert_eq!(st, OK);
    let create = last_sent(0x200d);
    let u16_at = |i: usize| u16::from_le_bytes([create[i], create[i + 1]]);
    assert_eq!((u16_at(13), u16_at(15)), (6, 24), "interval min, max");
    assert_eq!(
        (u16_at(17), u16_at(19)),
        (0, 256),
        "latency, supervision timeout"
    );
    assert_eq!(ffi::ubt_ble_gap_connect_cancel(), OK);
    advance(5);
    assert_eq!(
        events().len(),
        1,
        "the cancelled attempt's disconnect event"
    );

    // 0 (None from a script) leaves NimBLE's 30-50 ms.
    // SAFETY: as above.
    let st = unsafe { ffi::ubt_ble_gap_connect(0, PEER.as_ptr(), 2000, 0, 0) };
    assert_eq!(st, OK);
    let create = last_sent(0x200d);
    let u16_at = |i: usize| u16::from_le_bytes([create[i], create[i + 1]]);
    assert_eq!((u16_at(13), u16_at(15)), (24, 40));
}

#[test]
fn update_as_central_sends_le_connection_update_and_reports_the_new_values() {
    let _sim = started();
    let conn = connect_as_central();
    // 15-30 ms, latency 2, 3 s: HCI units 12, 24, 2, 300.
    assert_eq!(
        ffi::ubt_ble_gap_update_conn(conn, 15_000, 30_000, 2, 3_000),
        OK
    );
    let mut expected = vec![];
    for v in [conn, 12, 24, 2, 300, 0, 0] {
        expected.extend(v.to_le_bytes());
    }
    assert_eq!(last_sent(0x2013), expected, "LE Connection Update");
    // A second request while the first is pending.
    assert_eq!(
        ffi::ubt_ble_gap_update_conn(conn, 15_000, 30_000, 2, 3_000),
        errno::EALREADY
    );
    with_controller(|c| c.connection_update_complete(conn, 20, 2, 300));
    advance(5);
    assert_eq!(
        events(),
        vec![ev(
            IRQ_CONNECTION_UPDATE,
            vec![int(2), int(20), int(2), int(300), int(0)]
        )]
    );
}

#[test]
fn update_as_peripheral_without_the_ll_procedure_uses_l2cap_and_reports_a_refusal() {
    let _sim = started();
    // The scripted controller never reports the peer's features, so NimBLE takes the peer
    // for one without the LL Connection Parameters Request procedure.
    let conn = connect_as_peripheral();
    assert_eq!(
        ffi::ubt_ble_gap_update_conn(conn, 15_000, 30_000, 2, 3_000),
        OK
    );
    assert!(with_controller(|c| c.sent(0x2013)).is_empty());
    let sig = with_controller(|c| c.take_pdus(CID_SIG));
    assert_eq!(sig.len(), 1, "{sig:?}");
    let req = &sig[0].payload;
    let mut expected = vec![0x12, req[1], 8, 0];
    for v in [12u16, 24, 2, 300] {
        expected.extend(v.to_le_bytes());
    }
    assert_eq!(req, &expected, "L2CAP Connection Parameter Update Request");
    // The central refuses: result 1. The event carries the parameters still in force.
    with_controller(|c| c.l2cap_to_host(conn, CID_SIG, &[0x13, req[1], 2, 0, 1, 0]));
    advance(5);
    assert_eq!(
        events(),
        vec![ev(
            IRQ_CONNECTION_UPDATE,
            vec![int(1), int(24), int(0), int(400), int(1)]
        )]
    );
}

#[test]
fn update_conn_argument_errors() {
    // Inactive, under the simulation's lock: other tests start the stack in parallel.
    let sim = Sim::new();
    assert_eq!(
        ffi::ubt_ble_gap_update_conn(1, 15_000, 30_000, 0, 2_560),
        errno::ENODEV,
        "inactive"
    );
    drop(sim);
    let _sim = started();
    assert_eq!(
        ffi::ubt_ble_gap_update_conn(7, 15_000, 30_000, 0, 2_560),
        errno::ENOTCONN,
        "no such connection"
    );
    let conn = connect_as_central();
    assert_eq!(
        ffi::ubt_ble_gap_update_conn(conn, 30_000, 15_000, 0, 2_560),
        errno::EINVAL,
        "min above max"
    );
    assert_eq!(
        ffi::ubt_ble_gap_update_conn(conn, 100_000, 100_000, 4, 1_000),
        errno::EINVAL,
        "timeout not above interval * (latency + 1) * 2"
    );
    assert!(with_controller(|c| c.sent(0x2013)).is_empty());
}

#[test]
fn encryption_restored_from_a_stored_key_is_reported() {
    let _sim = started();
    let conn = connect_as_peripheral();
    // The bond as the script stored it: NimBLE's 80-byte security record (spec §11).
    let ltk = [0x4b; 16];
    let mut record = [0u8; 80];
    record[1..7].copy_from_slice(&{
        let mut a = PEER;
        a.reverse();
        a
    });
    record[7] = 16; // key size
    record[8..10].copy_from_slice(&0x1234u16.to_le_bytes()); // EDIV
    record[16..24].copy_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes()); // Rand
    record[24..40].copy_from_slice(&ltk);
    record[40] = 1; // LTK present
    set_handler(move |e| match e.num {
        IRQ_GET_SECRET if e.args[0] == Arg::Int(1) => Reply::Buffer(record.to_vec()),
        _ => Reply::None,
    });
    // The central starts encryption: the controller asks the host for the key.
    with_controller(|c| c.ltk_request(conn, 0x0102_0304_0506_0708, 0x1234));
    advance(5);
    let reply = last_sent(0x201a);
    assert_eq!(&reply[0..2], &conn.to_le_bytes());
    assert_eq!(
        &reply[2..18],
        &ltk,
        "LE Long Term Key Request Reply carries the stored LTK"
    );
    let evs = events();
    let mut key = vec![0u8];
    key.extend(record[1..7].iter());
    assert_eq!(
        evs,
        vec![ev(IRQ_GET_SECRET, vec![int(1), int(0), Arg::Bytes(key)])]
    );

    with_controller(|c| c.encryption_change(conn, true));
    advance(5);
    // Encrypted, not authenticated (a Just Works key), bonded, 16-byte key.
    assert_eq!(
        events(),
        vec![ev(
            IRQ_ENCRYPTION_UPDATE,
            vec![int(1), int(1), int(0), int(1), int(16)]
        )]
    );
}

#[test]
fn ltk_request_without_a_bond_is_refused() {
    let _sim = started();
    let conn = connect_as_peripheral();
    with_controller(|c| c.ltk_request(conn, 1, 2));
    advance(5);
    assert_eq!(
        last_sent(0x201b),
        conn.to_le_bytes().to_vec(),
        "Negative Reply"
    );
    assert!(with_controller(|c| c.sent(0x201a).is_empty()));
}

// --- Unpairing ---------------------------------------------------------------------------------------

/// A script's bond store as a dict of (sec_type, key) -> record, answering GET/SET_SECRET for
/// types 1 and 2 the way the API document asks; returned so a test can look inside.
type BondStore =
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<(i64, Vec<u8>), Vec<u8>>>>;

fn bond_store(records: &[(i64, Vec<u8>)]) -> BondStore {
    let store: BondStore = Default::default();
    for (t, key) in records {
        // NimBLE's record starts with the peer's address as the key has it.
        let mut record = key.clone();
        record.resize(80, 0);
        store.lock().unwrap().insert((*t, key.clone()), record);
    }
    let s = store.clone();
    set_handler(move |e| {
        let sec_type = e.args.first().and_then(Arg::int).unwrap_or(0);
        if !(1..=2).contains(&sec_type) {
            return Reply::None;
        }
        let mut map = s.lock().unwrap();
        match (e.num, e.args.as_slice()) {
            (IRQ_GET_SECRET, [_, _, Arg::Bytes(key)]) => map
                .get(&(sec_type, key.clone()))
                .map_or(Reply::None, |v| Reply::Buffer(v.clone())),
            (IRQ_GET_SECRET, [_, Arg::Int(index), Arg::None]) => map
                .iter()
                .filter(|((t, _), _)| *t == sec_type)
                .nth(*index as usize)
                .map_or(Reply::None, |(_, v)| Reply::Buffer(v.clone())),
            (IRQ_SET_SECRET, [_, Arg::Bytes(key), Arg::None]) => {
                Reply::Int(map.remove(&(sec_type, key.clone())).is_some() as i64)
            }
            (IRQ_SET_SECRET, [_, Arg::Bytes(key), Arg::Bytes(value)]) => {
                map.insert((sec_type, key.clone()), value.clone());
                Reply::Int(1)
            }
            _ => Reply::None,
        }
    });
    store
}

/// The store key of an address given most-significant byte first: type, then LSB first.
fn store_key(addr_type: u8, addr: [u8; 6]) -> Vec<u8> {
    let mut key = vec![addr_type];
    key.extend(addr.iter().rev());
    key
}

fn unpair(peer: Option<(u8, [u8; 6])>) -> Status {
    match peer {
        // SAFETY: `addr` is 6 readable bytes.
        Some((t, addr)) => unsafe { ffi::ubt_ble_gap_unpair(t, addr.as_ptr()) },
        // SAFETY: a null address is the no-argument form.
        None => unsafe { ffi::ubt_ble_gap_unpair(0, core::ptr::null()) },
    }
}

#[test]
fn unpair_one_peer_deletes_its_records_resolving_entry_and_link() {
    let _sim = started();
    let key = store_key(0, PEER);
    let other = store_key(1, [0xc1, 2, 3, 4, 5, 6]);
    let store = bond_store(&[(1, key.clone()), (2, key.clone()), (2, other.clone())]);
    let conn = connect_as_peripheral();
    with_controller(|c| c.commands.clear());

    assert_eq!(unpair(Some((0, PEER))), OK);
    // Out of the resolving list: the identity address type and address, LSB first.
    assert_eq!(with_controller(|c| c.sent(0x2028)), vec![key.clone()]);
    // The live link is closed with "remote user terminated".
    let [lo, hi] = conn.to_le_bytes();
    assert_eq!(last_sent(0x0406), vec![lo, hi, 0x13]);
    assert_eq!(
        events(),
        vec![
            ev(IRQ_GET_SECRET, vec![int(1), int(0), bytes(&key)]),
            ev(IRQ_SET_SECRET, vec![int(1), bytes(&key), Arg::None]),
            ev(IRQ_SET_SECRET, vec![int(2), bytes(&key), Arg::None]),
        ]
    );
    assert_eq!(
        store.lock().unwrap().keys().cloned().collect::<Vec<_>>(),
        vec![(2, other)],
        "the other peer's bond stays"
    );
    advance(5);
    assert_eq!(
        events(),
        vec![ev(
            IRQ_CENTRAL_DISCONNECT,
            vec![int(i64::from(conn)), int(0), bytes(&PEER)]
        )]
    );

    // Now unknown: ENOENT, and nothing is sent.
    with_controller(|c| c.commands.clear());
    assert_eq!(unpair(Some((0, PEER))), errno::ENOENT);
    assert!(with_controller(|c| c.commands.is_empty()));
    assert_eq!(
        events(),
        vec![
            ev(IRQ_GET_SECRET, vec![int(1), int(0), bytes(&key)]),
            ev(IRQ_GET_SECRET, vec![int(2), int(0), bytes(&key)]),
        ]
    );
    // Only identity address types name a bond.
    assert_eq!(unpair(Some((2, PEER))), errno::EINVAL);
}

#[test]
fn unpair_all_walks_the_store_and_deletes_every_peer() {
    let _sim = started();
    let a = store_key(0, PEER);
    let b = store_key(1, [0xc1, 2, 3, 4, 5, 6]);
    let store = bond_store(&[(1, a.clone()), (2, a.clone()), (2, b.clone())]);

    assert_eq!(unpair(None), OK);
    assert!(store.lock().unwrap().is_empty());
    // Both peers left the resolving list.
    assert_eq!(
        with_controller(|c| c.sent(0x2028)),
        vec![a.clone(), b.clone()]
    );
    let evs = events();
    // The walk: type 1 by index until None, then type 2.
    let walk: Vec<Event> = evs
        .iter()
        .filter(|e| e.num == IRQ_GET_SECRET)
        .cloned()
        .collect();
    assert_eq!(
        walk,
        vec![
            ev(IRQ_GET_SECRET, vec![int(1), int(0), Arg::None]),
            ev(IRQ_GET_SECRET, vec![int(1), int(1), Arg::None]),
            ev(IRQ_GET_SECRET, vec![int(2), int(0), Arg::None]),
            ev(IRQ_GET_SECRET, vec![int(2), int(1), Arg::None]),
            ev(IRQ_GET_SECRET, vec![int(2), int(2), Arg::None]),
        ]
    );
    let deletes: Vec<Event> = evs
        .into_iter()
        .filter(|e| e.num == IRQ_SET_SECRET)
        .collect();
    assert_eq!(
        deletes,
        vec![
            ev(IRQ_SET_SECRET, vec![int(1), bytes(&a), Arg::None]),
            ev(IRQ_SET_SECRET, vec![int(2), bytes(&a), Arg::None]),
            ev(IRQ_SET_SECRET, vec![int(1), bytes(&b), Arg::None]),
            ev(IRQ_SET_SECRET, vec![int(2), bytes(&b), Arg::None]),
        ]
    );
    // An empty store is not an error.
    assert_eq!(unpair(None), OK);
}

#[test]
fn unpair_is_refused_while_advertising_scanning_or_refused_by_the_controller() {
    let _sim = started();
    let key = store_key(0, PEER);
    let store = bond_store(&[(1, key.clone()), (2, key.clone())]);

    assert_eq!(advertise(100_000, &[2, 1, 6], true), OK);
    assert_eq!(unpair(Some((0, PEER))), errno::EBUSY);
    assert_eq!(unpair(None), errno::EBUSY);
    ffi::ubt_ble_gap_advertise_stop();
    assert_eq!(ffi::ubt_ble_gap_scan_start(0, 1_280_000, 11_250, false), OK);
    assert_eq!(unpair(None), errno::EBUSY);
    assert_eq!(ffi::ubt_ble_gap_scan_stop(), OK);
    // Refused before anything was asked or sent.
    assert!(with_controller(|c| c.sent(0x2028).is_empty()));
    assert!(!events()
        .iter()
        .any(|e| e.num == IRQ_GET_SECRET || e.num == IRQ_SET_SECRET));

    // A controller that still refuses the resolving-list change: EBUSY, the bond stays.
    with_controller(|c| c.fail.insert(0x2028, 0x0c));
    assert_eq!(unpair(Some((0, PEER))), errno::EBUSY);
    assert_eq!(store.lock().unwrap().len(), 2);
    assert!(!events().iter().any(|e| e.num == IRQ_SET_SECRET));
    with_controller(|c| c.fail.clear());
    assert_eq!(unpair(Some((0, PEER))), OK);
    assert!(store.lock().unwrap().is_empty());

    // Inactive.
    stop();
    assert_eq!(unpair(None), errno::ENODEV);
}

// --- GATT server ------------------------------------------------------------------------------------

/// Registers one service with one read/write/notify/indicate characteristic, as the shim does;
/// returns the characteristic's value handle.
fn register_one_characteristic() -> u16 {
    assert_eq!(ffi::ubt_gatts_register_begin(), OK);
    let entries = [
        GattsEntry {
            kind: UBT_GATTS_SERVICE,
            flags: 0,
            uuid: Uuid::from_u16(0x1234),
        },
        GattsEntry {
            kind: UBT_GATTS_CHARACTERISTIC,
            flags: FLAG_READ | FLAG_WRITE | FLAG_NOTIFY | FLAG_INDICATE,
            uuid: Uuid::from_u16(0xabcd),
        },
    ];
    let mut handles = [0u16; 1];
    // SAFETY: both arrays are valid for their lengths.
    let st = unsafe {
        ffi::ubt_gatts_register(
            entries.as_ptr(),
            entries.len(),
            handles.as_mut_ptr(),
            handles.len(),
        )
    };
    assert_eq!(st, OK);
    handles[0]
}

fn gatts_value(handle: u16) -> Vec<u8> {
    let (mut p, mut n) = (core::ptr::null(), 0usize);
    // SAFETY: both out-parameters are writable; the bytes are copied before the next call.
    unsafe {
        ffi::ubt_gatts_read(handle, &mut p, &mut n);
        if n == 0 {
            Vec::new()
        } else {
            core::slice::from_raw_parts(p, n).to_vec()
        }
    }
}

#[test]
fn gatts_write_request_from_the_peer() {
    let _sim = started();
    let h = register_one_characteristic();
    // The first registration's first value handle (spec §8.2).
    assert_eq!(h, 21);
    let conn = connect_as_peripheral();
    // The response must go out after the script saw the write.
    let seen_before_response = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = seen_before_response.clone();
    set_handler(move |e| {
        if e.num == IRQ_GATTS_WRITE {
            *seen.lock().unwrap() = Some(with_controller(|c| c.acl_out.is_empty()));
        }
        Reply::None
    });
    let mut req = vec![0x12];
    req.extend(h.to_le_bytes());
    req.extend(b"hello");
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &req));
    advance(5);
    assert_eq!(
        events(),
        vec![ev(IRQ_GATTS_WRITE, vec![int(1), int(i64::from(h))])]
    );
    assert_eq!(att_out(), vec![vec![0x13]], "ATT Write Response");
    assert_eq!(*seen_before_response.lock().unwrap(), Some(true));
    assert_eq!(gatts_value(h), b"hello");
}

#[test]
fn gatts_remote_write_beyond_capacity_is_truncated_and_still_acknowledged() {
    let _sim = started();
    let h = register_one_characteristic();
    let conn = connect_as_peripheral();
    // An MTU of 256 first: at the default 23 a Write Request carries at most 20 bytes.
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &[0x02, 0x00, 0x01]));
    advance(5);
    assert_eq!(att_out().len(), 1);
    assert_eq!(events().len(), 1);
    let mut req = vec![0x12];
    req.extend(h.to_le_bytes());
    req.extend(0..25u8);
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &req));
    advance(5);
    assert_eq!(
        events(),
        vec![ev(IRQ_GATTS_WRITE, vec![int(1), int(i64::from(h))])]
    );
    assert_eq!(att_out(), vec![vec![0x13]]);
    // A value nobody resized holds 20 bytes; the rest is dropped (spec §8.4).
    assert_eq!(gatts_value(h), (0..20u8).collect::<Vec<u8>>());
}

#[test]
fn gatts_read_request_from_the_peer() {
    let _sim = started();
    let h = register_one_characteristic();
    let conn = connect_as_peripheral();
    let value = b"world";
    // SAFETY: `value` is readable for its length.
    let st = unsafe { ffi::ubt_gatts_write(h, value.as_ptr(), value.len(), false) };
    assert_eq!(st, OK);
    let mut req = vec![0x0a];
    req.extend(h.to_le_bytes());
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &req));
    advance(5);
    assert_eq!(
        events(),
        vec![ev(IRQ_GATTS_READ_REQUEST, vec![int(1), int(i64::from(h))])]
    );
    assert_eq!(att_out(), vec![b"\x0bworld".to_vec()], "ATT Read Response");

    // A handler returning non-zero denies the read with that ATT error.
    set_handler(|e| match e.num {
        IRQ_GATTS_READ_REQUEST => Reply::Int(2),
        _ => Reply::None,
    });
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &req));
    advance(5);
    assert_eq!(events().len(), 1);
    let [lo, hi] = h.to_le_bytes();
    assert_eq!(att_out(), vec![vec![0x01, 0x0a, lo, hi, 0x02]]);
}

#[test]
fn gatts_notify_goes_over_the_air() {
    let _sim = started();
    let h = register_one_characteristic();
    let conn = connect_as_peripheral();
    let data = b"abc";
    // SAFETY: `data` is readable for its length.
    let st = unsafe { ffi::ubt_gatts_notify(conn, h, buf(data), false) };
    assert_eq!(st, OK);
    advance(5);
    let [lo, hi] = h.to_le_bytes();
    assert_eq!(att_out(), vec![vec![0x1b, lo, hi, b'a', b'b', b'c']]);
    assert_eq!(events(), vec![]);
}

// --- GATT client ------------------------------------------------------------------------------------

#[test]
fn gattc_discovers_services() {
    let _sim = started();
    let conn = connect_as_central();
    // SAFETY: a null UUID means no filter.
    let st = unsafe { ffi::ubt_gattc_discover_services(conn, core::ptr::null()) };
    assert_eq!(st, OK);
    advance(5);
    // Read By Group Type, 1..0xffff, primary service.
    assert_eq!(att_out(), vec![vec![0x10, 1, 0, 0xff, 0xff, 0x00, 0x28]]);
    let rsp = [0x11, 6, 1, 0, 5, 0, 0x00, 0x18, 6, 0, 9, 0, 0x01, 0x18];
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &rsp));
    advance(5);
    assert_eq!(
        att_out(),
        vec![vec![0x10, 10, 0, 0xff, 0xff, 0x00, 0x28]],
        "the next range"
    );
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &[0x01, 0x10, 10, 0, 0x0a]));
    advance(5);
    assert_eq!(
        events(),
        vec![
            ev(
                IRQ_GATTC_SERVICE_RESULT,
                vec![int(2), int(1), int(5), Arg::Uuid(Uuid::from_u16(0x1800))]
            ),
            ev(
                IRQ_GATTC_SERVICE_RESULT,
                vec![int(2), int(6), int(9), Arg::Uuid(Uuid::from_u16(0x1801))]
            ),
            ev(IRQ_GATTC_SERVICE_DONE, vec![int(2), int(0)]),
        ]
    );
}

#[test]
fn gattc_read_result_then_done() {
    let _sim = started();
    let conn = connect_as_central();
    assert_eq!(ffi::ubt_gattc_read(conn, 3), OK);
    advance(5);
    assert_eq!(att_out(), vec![vec![0x0a, 3, 0]]);
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, b"\x0bname"));
    advance(5);
    assert_eq!(
        events(),
        vec![
            ev(IRQ_GATTC_READ_RESULT, vec![int(2), int(3), bytes(b"name")]),
            ev(IRQ_GATTC_READ_DONE, vec![int(2), int(3), int(0)]),
        ]
    );
    // An ATT error ends the read with 0x100 + its code and no result.
    assert_eq!(ffi::ubt_gattc_read(conn, 7), OK);
    advance(5);
    assert_eq!(att_out(), vec![vec![0x0a, 7, 0]]);
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &[0x01, 0x0a, 7, 0, 0x02]));
    advance(5);
    assert_eq!(
        events(),
        vec![ev(IRQ_GATTC_READ_DONE, vec![int(2), int(7), int(0x102)])]
    );
}

// --- L2CAP ------------------------------------------------------------------------------------------

/// A peer whose channel request arrives in the same instant as the connection (RootCanal over
/// TCP has no air time): the script, woken by the connection event, calls `l2cap_listen`
/// before the host answers the request, so the channel opens instead of being refused.
#[test]
fn a_channel_asked_for_with_the_connection_waits_for_the_scripts_listen() {
    let _sim = started();
    assert_eq!(advertise(100_000, &[2, 1, 6], true), OK);
    let mut req = vec![0x14, 1, 10, 0];
    for v in [0x80u16, 0x40, 256, 100, 5] {
        req.extend(v.to_le_bytes());
    }
    with_controller(|c| {
        c.connection_complete(1, 1, 0, PEER, 24);
        c.l2cap_to_host(1, CID_SIG, &req);
    });
    advance(1);
    assert_eq!(
        events(),
        vec![ev(IRQ_CENTRAL_CONNECT, vec![int(1), int(0), bytes(&PEER)])]
    );
    // What the script does on seeing the connection.
    assert_eq!(ffi::ubt_l2cap_listen(0x80, 512), OK);
    advance(5);
    let rsp = take_open_response(1);
    assert_eq!(&rsp[0..4], &[0x15, 1, 10, 0]);
    assert_eq!(&rsp[12..14], &[0, 0], "accepted");
    let nums: Vec<u16> = events().iter().map(|e| e.num).collect();
    assert_eq!(nums, vec![IRQ_L2CAP_ACCEPT, IRQ_L2CAP_CONNECT]);
}

#[test]
fn l2cap_accept_receive_and_credits_after_drain() {
    let _sim = started();
    assert_eq!(ffi::ubt_l2cap_listen(0x80, 512), OK);
    let conn = connect_as_peripheral();
    // LE Credit Based Connection Request: psm 0x80, peer cid 0x40, mtu 256, mps 100, 5 credits.
    let mut req = vec![0x14, 1, 10, 0];
    for v in [0x80u16, 0x40, 256, 100, 5] {
        req.extend(v.to_le_bytes());
    }
    with_controller(|c| c.l2cap_to_host(conn, CID_SIG, &req));
    advance(5);
    let rsp = take_open_response(1);
    assert_eq!(
        &rsp[0..4],
        &[0x15, 1, 10, 0],
        "LE Credit Based Connection Response"
    );
    let our_cid = u16::from_le_bytes([rsp[4], rsp[5]]);
    assert_eq!(&rsp[6..8], &512u16.to_le_bytes(), "our MTU");
    assert_eq!(&rsp[12..14], &[0, 0], "accepted");
    let cid = i64::from(our_cid);
    assert_eq!(
        events(),
        vec![
            ev(
                IRQ_L2CAP_ACCEPT,
                vec![int(1), int(cid), int(0x80), int(512), int(256)]
            ),
            ev(
                IRQ_L2CAP_CONNECT,
                vec![int(1), int(cid), int(0x80), int(512), int(256)]
            ),
        ]
    );

    // One SDU in one K-frame: its length, then the data.
    let mut kframe = 5u16.to_le_bytes().to_vec();
    kframe.extend(b"hello");
    with_controller(|c| c.l2cap_to_host(conn, our_cid, &kframe));
    advance(5);
    assert_eq!(events(), vec![ev(IRQ_L2CAP_RECV, vec![int(1), int(cid)])]);
    assert_eq!(
        with_controller(|c| c.take_pdus(CID_SIG)),
        vec![],
        "no credits back while the data waits"
    );

    let mut out = [0u8; 64];
    let mut len = out.len();
    // SAFETY: `out` is writable for `len` bytes; `len` is valid.
    let st = unsafe { ffi::ubt_l2cap_recvinto(conn, our_cid, out.as_mut_ptr(), &mut len) };
    assert_eq!(st, OK);
    assert_eq!(&out[..len], b"hello");
    advance(5);
    let sig = with_controller(|c| c.take_pdus(CID_SIG));
    assert_eq!(sig.len(), 1, "{sig:?}");
    let credit = &sig[0].payload;
    assert_eq!(credit[0], 0x16, "LE Flow Control Credit");
    assert_eq!(&credit[4..6], &our_cid.to_le_bytes());
    assert!(u16::from_le_bytes([credit[6], credit[7]]) >= 1);
}

// --- Pairing ----------------------------------------------------------------------------------------

#[test]
fn pairing_request_is_answered_with_our_io_capabilities() {
    for io in [3u8, 1] {
        let _sim = Sim::new();
        ffi::ubt_ble_config_set_security(UbtSecurityKey::Io, io);
        ffi::ubt_ble_config_set_security(UbtSecurityKey::Bond, 1);
        assert_eq!(start(), OK);
        take_events();
        let conn = connect_as_peripheral();
        // Pairing Request: NoInputNoOutput, no OOB, bonding + SC, 16-byte keys, all keys.
        let req = [0x01, 0x03, 0x00, 0x09, 16, 0x07, 0x07];
        with_controller(|c| c.l2cap_to_host(conn, CID_SMP, &req));
        advance(5);
        let smp = with_controller(|c| c.take_pdus(CID_SMP));
        assert_eq!(smp.len(), 1, "{smp:?}");
        let rsp = &smp[0].payload;
        assert_eq!(rsp[0], 0x02, "Pairing Response");
        assert_eq!(rsp[1], io, "our IO capabilities");
        assert_eq!(rsp[3] & 0x01, 0x01, "bonding");
        stop();
    }
}

#[test]
fn passkey_display_is_asked_for_in_legacy_pairing_with_mitm() {
    let _sim = Sim::new();
    // We can only display; the peer can only type: passkey entry, we display.
    ffi::ubt_ble_config_set_security(UbtSecurityKey::Io, 0);
    ffi::ubt_ble_config_set_security(UbtSecurityKey::Mitm, 1);
    ffi::ubt_ble_config_set_security(UbtSecurityKey::LeSecure, 0);
    assert_eq!(start(), OK);
    take_events();
    let conn = connect_as_peripheral();
    // Pairing Request: KeyboardOnly, no OOB, bonding + MITM (legacy), 16-byte keys.
    let req = [0x01, 0x02, 0x00, 0x05, 16, 0x07, 0x07];
    with_controller(|c| c.l2cap_to_host(conn, CID_SMP, &req));
    advance(5);
    let smp = with_controller(|c| c.take_pdus(CID_SMP));
    assert_eq!(smp.first().map(|p| p.payload[0]), Some(0x02), "{smp:?}");
    let mut key = vec![0u8];
    key.extend(PEER.iter().rev());
    assert_eq!(
        events(),
        vec![
            // NimBLE first looks for an existing bond with the peer.
            ev(IRQ_GET_SECRET, vec![int(2), int(0), Arg::Bytes(key)]),
            ev(IRQ_PASSKEY_ACTION, vec![int(1), int(3), int(0)]),
        ]
    );
}

// --- More of the link ----------------------------------------------------------------------------

#[test]
fn acl_waits_for_number_of_completed_packets() {
    let _sim = started();
    let h = register_one_characteristic();
    let conn = connect_as_peripheral();
    with_controller(|c| c.complete_acl = false);
    for i in 0..10u8 {
        let data = [i];
        // SAFETY: `data` is readable for its length.
        let st = unsafe { ffi::ubt_gatts_notify(conn, h, buf(&data), false) };
        assert_eq!(st, OK);
    }
    advance(5);
    // The controller has 8 ACL buffers: the host holds the rest back.
    let sent = att_out();
    assert_eq!(sent.len(), 8);
    with_controller(|c| c.number_of_completed_packets(conn, 8));
    advance(5);
    let [lo, hi] = h.to_le_bytes();
    assert_eq!(
        att_out(),
        vec![vec![0x1b, lo, hi, 8], vec![0x1b, lo, hi, 9]],
        "the rest after Number of Completed Packets"
    );
}

#[test]
fn packets_that_arrive_while_a_command_waits_are_all_delivered() {
    let _sim = started();
    let h = register_one_characteristic();
    let conn = connect_as_peripheral();
    with_controller(|c| c.complete_acl = false);
    // Nine notifications: eight fill the controller's buffers, the ninth waits in the host.
    for i in 0..9u8 {
        let data = [i];
        // SAFETY: `data` is readable for its length.
        let st = unsafe { ffi::ubt_gatts_notify(conn, h, buf(&data), false) };
        assert_eq!(st, OK);
    }
    advance(5);
    assert_eq!(att_out().len(), 8);
    // Before the answer to the host's next command, the controller completes the eight
    // packets with an event each (as RootCanal does) and the peer notifies sixteen times:
    // more events than the transport has event buffers, more ACL packets than its ACL pool.
    with_controller(|c| {
        for _ in 0..8 {
            c.number_of_completed_packets(conn, 1);
        }
        for i in 0..16u8 {
            c.l2cap_to_host(conn, CID_ATT, &[0x1b, 5, 0, i]);
        }
        c.delay.insert(0x2006, 5); // LE Set Advertising Parameters
    });
    let t0 = now_ms();
    assert_eq!(advertise(100_000, &[2, 1, 6], false), OK);
    assert!(now_ms().wrapping_sub(t0) < 100, "answered, not timed out");
    advance(5);
    assert_eq!(ffi::ubt_ble_config_rx_dropped(), 0, "nothing dropped");
    let notified: Vec<Event> = (0..16u8)
        .map(|i| {
            ev(
                IRQ_GATTC_NOTIFY,
                vec![int(conn.into()), int(5), bytes(&[i])],
            )
        })
        .collect();
    assert_eq!(events(), notified, "every notification, in order");
    // The completions reached the host: the ninth notification went out.
    let [lo, hi] = h.to_le_bytes();
    assert_eq!(att_out(), vec![vec![0x1b, lo, hi, 8]]);
}

#[test]
fn stopping_disconnects_without_events() {
    let _sim = started();
    let conn = connect_as_peripheral();
    assert_eq!(ffi::ubt_ble_gap_scan_start(0, 30_000, 30_000, false), OK);
    stop();
    assert!(!ffi::ubt_ble_is_active());
    assert_eq!(last_sent(0x0406), vec![conn as u8, 0, 0x13]);
    // Only the scan's end: connections close silently once stopping (spec §14.6).
    assert_eq!(events(), vec![ev(IRQ_SCAN_DONE, vec![])]);
}

#[test]
fn stop_waits_for_a_withheld_disconnection() {
    let _sim = started();
    let _conn = connect_as_peripheral();
    with_controller(|c| {
        c.delay.insert(0x0406, 1500);
    });
    let t0 = now_ms();
    assert!(ffi::ubt_ble_stop_begin());
    assert!(!ffi::ubt_ble_is_stopped());
    assert!(super::advance_until(super::STOP_TIMEOUT_MS, || {
        ffi::ubt_ble_is_stopped()
    }));
    ffi::ubt_ble_stop_finish();
    assert!(
        now_ms().wrapping_sub(t0) >= 1500,
        "stopped only once the link was down"
    );
}

#[test]
fn connect_cancel_reports_a_failed_connection() {
    let _sim = started();
    // SAFETY: PEER is 6 readable bytes.
    let st = unsafe { ffi::ubt_ble_gap_connect(0, PEER.as_ptr(), 2000, 0, 0) };
    assert_eq!(st, OK);
    assert_eq!(ffi::ubt_ble_gap_connect_cancel(), OK);
    advance(5);
    assert_eq!(
        events(),
        vec![ev(
            IRQ_PERIPHERAL_DISCONNECT,
            vec![int(65535), int(255), bytes(&[0; 6])]
        )]
    );
}

#[test]
fn gatts_indicate_is_confirmed() {
    let _sim = started();
    let h = register_one_characteristic();
    let conn = connect_as_peripheral();
    // The peer subscribes to indications: its CCCD write raises no event (spec §6).
    let [lo, hi] = (h + 1).to_le_bytes();
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &[0x12, lo, hi, 0x02, 0x00]));
    advance(5);
    assert_eq!(att_out(), vec![vec![0x13]]);
    assert_eq!(events(), vec![]);
    // Without data the value is read locally first: READ_REQUEST(65535, h) inside the call.
    // SAFETY: no buffer is passed.
    let st = unsafe { ffi::ubt_gatts_notify(conn, h, NO_BUF, true) };
    assert_eq!(st, OK);
    assert_eq!(
        events(),
        vec![ev(
            IRQ_GATTS_READ_REQUEST,
            vec![int(65535), int(i64::from(h))]
        )]
    );
    advance(5);
    let [lo, hi] = h.to_le_bytes();
    assert_eq!(
        att_out(),
        vec![vec![0x1d, lo, hi]],
        "Handle Value Indication"
    );
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &[0x1e]));
    advance(5);
    assert_eq!(
        events(),
        vec![ev(
            IRQ_GATTS_INDICATE_DONE,
            vec![int(1), int(i64::from(h)), int(0)]
        )]
    );
}

#[test]
fn mtu_exchange_from_the_peer() {
    let _sim = started();
    let mut ours = 0u16;
    // SAFETY: `ours` is writable.
    assert_eq!(unsafe { ffi::ubt_ble_config_mtu(&mut ours) }, OK);
    let conn = connect_as_peripheral();
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &[0x02, 0x00, 0x01]));
    advance(5);
    let [lo, hi] = ours.to_le_bytes();
    assert_eq!(att_out(), vec![vec![0x03, lo, hi]], "Exchange MTU Response");
    assert_eq!(
        events(),
        vec![ev(
            IRQ_MTU_EXCHANGED,
            vec![int(1), int(i64::from(ours.min(256)))]
        )]
    );
}

#[test]
fn gattc_characteristics_lag_by_one_and_notifications_arrive() {
    let _sim = started();
    let conn = connect_as_central();
    // SAFETY: a null UUID means no filter.
    let st = unsafe { ffi::ubt_gattc_discover_characteristics(conn, 1, 0xffff, core::ptr::null()) };
    assert_eq!(st, OK);
    advance(5);
    // Read By Type, 1..0xffff, characteristic declarations.
    assert_eq!(att_out(), vec![vec![0x08, 1, 0, 0xff, 0xff, 0x03, 0x28]]);
    let rsp = [
        0x09, 7, 2, 0, 0x02, 3, 0, 0x00, 0x2a, 4, 0, 0x1a, 5, 0, 0x01, 0x2a,
    ];
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &rsp));
    advance(5);
    assert_eq!(att_out(), vec![vec![0x08, 5, 0, 0xff, 0xff, 0x03, 0x28]]);
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &[0x01, 0x08, 5, 0, 0x0a]));
    advance(5);
    assert_eq!(
        events(),
        vec![
            // (conn, end_handle, value_handle, properties, uuid): end is the next one's
            // declaration - 1, or the end asked for.
            ev(
                IRQ_GATTC_CHARACTERISTIC_RESULT,
                vec![
                    int(2),
                    int(3),
                    int(3),
                    int(2),
                    Arg::Uuid(Uuid::from_u16(0x2a00))
                ]
            ),
            ev(
                IRQ_GATTC_CHARACTERISTIC_RESULT,
                vec![
                    int(2),
                    int(65535),
                    int(5),
                    int(0x1a),
                    Arg::Uuid(Uuid::from_u16(0x2a01))
                ]
            ),
            ev(IRQ_GATTC_CHARACTERISTIC_DONE, vec![int(2), int(0)]),
        ]
    );

    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &[0x1b, 5, 0, 7, 8, 9]));
    advance(5);
    assert_eq!(
        events(),
        vec![ev(
            IRQ_GATTC_NOTIFY,
            vec![int(2), int(5), bytes(&[7, 8, 9])]
        )]
    );
}

#[test]
fn gattc_write_with_response_is_done_once_answered() {
    let _sim = started();
    let conn = connect_as_central();
    let data = b"on";
    // SAFETY: `data` is readable for its length.
    let st = unsafe { ffi::ubt_gattc_write(conn, 5, data.as_ptr(), data.len(), 1) };
    assert_eq!(st, OK);
    advance(5);
    assert_eq!(att_out(), vec![b"\x12\x05\x00on".to_vec()], "Write Request");
    assert_eq!(events(), vec![]);
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &[0x13]));
    advance(5);
    assert_eq!(
        events(),
        vec![ev(IRQ_GATTC_WRITE_DONE, vec![int(2), int(5), int(0)])]
    );
}

#[test]
fn l2cap_send_goes_out_as_a_k_frame() {
    let _sim = started();
    assert_eq!(ffi::ubt_l2cap_listen(0x80, 512), OK);
    let conn = connect_as_peripheral();
    let our_cid = peer_opens_channel(conn, 1, 0x80, 0x40, 5);
    events();
    let mut more = false;
    let data = b"ping";
    // SAFETY: `data` is readable for its length; `more` is writable.
    let st = unsafe { ffi::ubt_l2cap_send(conn, our_cid, data.as_ptr(), data.len(), &mut more) };
    assert_eq!(st, OK);
    assert!(more, "room for more");
    advance(5);
    // On the peer's CID: the SDU length, then the data.
    let frames = with_controller(|c| c.take_pdus(0x40));
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].payload, b"\x04\x00ping".to_vec());

    // The peer disconnects the channel.
    let mut dis = vec![0x06, 2, 4, 0];
    dis.extend(our_cid.to_le_bytes());
    dis.extend(0x40u16.to_le_bytes());
    with_controller(|c| c.l2cap_to_host(conn, CID_SIG, &dis));
    advance(5);
    assert_eq!(
        events(),
        vec![ev(
            IRQ_L2CAP_DISCONNECT,
            vec![int(1), int(i64::from(our_cid)), int(0x80), int(0)]
        )]
    );
}

/// A peer's Disconnection Request naming a fixed channel (signalling, ATT, SMP) must leave the
/// link as it was: NimBLE would delete that channel, and for the signalling channel itself
/// crash while handling the packet (the hostile-peer suite found it). The same request split
/// over two fragments is dropped too, and the link goes on answering ATT and signalling.
#[test]
fn disconnecting_a_fixed_channel_is_ignored() {
    let _sim = started();
    let h = register_one_characteristic();
    assert_eq!(ffi::ubt_l2cap_listen(0x80, 512), OK);
    let conn = connect_as_peripheral();
    for (ident, cid) in [(3u8, CID_SIG), (4, CID_ATT), (5, CID_SMP)] {
        let mut dis = vec![0x06, ident, 4, 0];
        dis.extend(cid.to_le_bytes());
        dis.extend(cid.to_le_bytes());
        with_controller(|c| c.l2cap_to_host(conn, CID_SIG, &dis));
        advance(5);
    }
    // The same request for the signalling channel in two ACL fragments.
    let mut pdu = vec![8, 0, 5, 0, 0x06, 6, 4, 0, 5, 0, 5, 0];
    let rest = pdu.split_off(6);
    with_controller(|c| {
        c.acl_to_host(conn, 2, &pdu);
        c.acl_to_host(conn, 1, &rest);
    });
    advance(5);
    // Each whole request gets a Command Reject, "invalid CID in request" (0x0002), echoing
    // its identifier and channels; the split one is dropped.
    let rejects: Vec<Vec<u8>> = with_controller(|c| c.take_pdus(CID_SIG))
        .into_iter()
        .map(|p| p.payload)
        .collect();
    let reject = |ident: u8, cid: u8| vec![0x01, ident, 6, 0, 2, 0, cid, 0, cid, 0];
    assert_eq!(
        rejects,
        vec![reject(3, 5), reject(4, 4), reject(5, 6)],
        "Command Rejects"
    );
    assert!(events().is_empty());
    // ATT still answers on the link.
    let mut read = vec![0x0a];
    read.extend(h.to_le_bytes());
    with_controller(|c| c.l2cap_to_host(conn, CID_ATT, &read));
    advance(5);
    assert_eq!(
        att_out(),
        vec![vec![0x0b]],
        "ATT Read Response (empty value)"
    );
    // Signalling still answers: a channel to the listener opens.
    peer_opens_channel(conn, 7, 0x80, 0x40, 5);
}

/// A peer that makes NimBLE disconnect one channel twice (two credit packets that each
/// overflow 65535) and then answers both Disconnection Requests: the first answer frees the
/// channel, and the second used to free it again (SIGSEGV). The over-the-air fuzzer found it;
/// nimble/csrc/ubt_l2cap_sig.c makes the pending procedure forget a freed channel.
#[test]
fn a_channel_disconnected_twice_is_freed_once() {
    let _sim = started();
    assert_eq!(ffi::ubt_l2cap_listen(0x80, 512), OK);
    let conn = connect_as_peripheral();
    // The peer's channel 0x40 opens with 65535 credits for us.
    let our_cid = peer_opens_channel(conn, 1, 0x80, 0x40, 0xffff);
    events();
    // Two credit packets, each past 65535.
    for ident in [2u8, 3] {
        let mut credits = vec![0x16, ident, 4, 0];
        credits.extend(0x40u16.to_le_bytes());
        credits.extend(1u16.to_le_bytes());
        with_controller(|c| c.l2cap_to_host(conn, CID_SIG, &credits));
        advance(5);
    }
    let requests: Vec<Vec<u8>> = with_controller(|c| c.take_pdus(CID_SIG))
        .into_iter()
        .map(|p| p.payload)
        .filter(|p| p[0] == 0x06)
        .collect();
    assert!(!requests.is_empty(), "NimBLE disconnects the channel");
    // The peer answers every Disconnection Request.
    for r in &requests {
        let mut answer = vec![0x07, r[1], 4, 0];
        answer.extend_from_slice(&r[4..8]);
        with_controller(|c| c.l2cap_to_host(conn, CID_SIG, &answer));
        advance(5);
    }
    assert_eq!(
        events(),
        vec![ev(
            IRQ_L2CAP_DISCONNECT,
            vec![int(1), int(i64::from(our_cid)), int(0x80), int(0)]
        )]
    );
    // The link still works: another channel opens.
    peer_opens_channel(conn, 9, 0x80, 0x41, 5);
}

/// An `l2cap_send` that stalls both for credits and for NimBLE's shared pool: the pool
/// recovering must not raise SEND_READY while NimBLE still holds the rest of the SDU (the next
/// send would fail with EBUSY); the peer's credits then raise it, once.
#[test]
fn l2cap_send_ready_waits_for_credits_after_the_pool_recovers() {
    let _sim = started();
    let h = register_one_characteristic();
    assert_eq!(ffi::ubt_l2cap_listen(0x80, 512), OK);
    let conn = connect_as_peripheral();
    // LE Credit Based Connection Request: psm 0x80, peer cid 0x40, mtu 1024, mps 100,
    // 7 credits: seven K-frames of an SDU that needs eleven.
    let mut req = vec![0x14, 1, 10, 0];
    for v in [0x80u16, 0x40, 1024, 100, 7] {
        req.extend(v.to_le_bytes());
    }
    with_controller(|c| c.l2cap_to_host(conn, CID_SIG, &req));
    advance(5);
    let rsp = with_controller(|c| c.take_pdus(CID_SIG)).remove(0).payload;
    let our_cid = u16::from_le_bytes([rsp[4], rsp[5]]);
    events();

    // The controller's 8 ACL buffers fill and stay taken, so the K-frames queue in the host,
    // each holding a block of NimBLE's shared pool.
    with_controller(|c| c.complete_acl = false);
    for i in 0..8u8 {
        let data = [i];
        // SAFETY: `data` is readable for its length.
        let st = unsafe { ffi::ubt_gatts_notify(conn, h, buf(&data), false) };
        assert_eq!(st, OK);
    }
    advance(5);
    assert_eq!(att_out().len(), 8);

    let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let mut more = true;
    // SAFETY: `data` is readable for its length; `more` is writable.
    let st = unsafe { ffi::ubt_l2cap_send(conn, our_cid, data.as_ptr(), data.len(), &mut more) };
    assert_eq!(st, OK);
    assert!(
        !more,
        "stalled: out of credits and the pool at most half free"
    );

    // The controller completes its packets: the queued K-frames go out and the pool recovers,
    // but four K-frames still wait for credits.
    with_controller(|c| {
        c.complete_acl = true;
        c.number_of_completed_packets(conn, 8);
    });
    advance(5);
    assert_eq!(with_controller(|c| c.take_pdus(0x40)).len(), 7);
    assert_eq!(events(), vec![], "no SEND_READY while NimBLE holds the SDU");

    // LE Flow Control Credit: 10 more credits for our channel's peer side.
    let mut credit = vec![0x16, 2, 4, 0];
    credit.extend(0x40u16.to_le_bytes());
    credit.extend(10u16.to_le_bytes());
    with_controller(|c| c.l2cap_to_host(conn, CID_SIG, &credit));
    advance(5);
    let frames = with_controller(|c| c.take_pdus(0x40));
    assert_eq!(frames.len(), 4, "the rest of the SDU");
    assert_eq!(
        events(),
        vec![ev(
            IRQ_L2CAP_SEND_READY,
            vec![int(1), int(i64::from(our_cid)), int(0)]
        )]
    );
    // SAFETY: as above.
    let st = unsafe { ffi::ubt_l2cap_send(conn, our_cid, data.as_ptr(), 10, &mut more) };
    assert_eq!(st, OK, "NimBLE took the next SDU");
}

/// Takes the signalling PDUs after a channel we accepted opened: NimBLE's LE Credit Based
/// Connection Response (identifier `id`), then, where the build gives the peer more credits
/// than one SDU of our MTU 512 (`UBT_L2CAP_RX_CREDITS`), one LE Flow Control Credit for the
/// rest. Returns the response.
fn take_open_response(id: u8) -> Vec<u8> {
    let sig = with_controller(|c| c.take_pdus(CID_SIG));
    let extra = crate::host::l2cap::rx_credits(512) - 2;
    assert_eq!(sig.len(), 1 + usize::from(extra > 0), "{sig:?}");
    let rsp = sig[0].payload.clone();
    assert_eq!(
        &rsp[0..2],
        &[0x15, id],
        "LE Credit Based Connection Response"
    );
    assert_eq!(
        &rsp[10..12],
        &2u16.to_le_bytes(),
        "NimBLE's credits: one SDU"
    );
    if extra > 0 {
        let credit = &sig[1].payload;
        assert_eq!(&credit[0..1], &[0x16], "LE Flow Control Credit");
        assert_eq!(&credit[2..4], &4u16.to_le_bytes());
        assert_eq!(&credit[4..6], &rsp[4..6], "for our CID");
        assert_eq!(&credit[6..8], &extra.to_le_bytes());
    }
    rsp
}

/// The peer's LE Credit Based Connection Request on `psm` from its `peer_cid` (MTU 256, MPS
/// 100, `credits`), with signalling identifier `id`; returns our CID from the response, which
/// must accept.
fn peer_opens_channel(conn: u16, id: u8, psm: u16, peer_cid: u16, credits: u16) -> u16 {
    let mut req = vec![0x14, id, 10, 0];
    for v in [psm, peer_cid, 256, 100, credits] {
        req.extend(v.to_le_bytes());
    }
    with_controller(|c| c.l2cap_to_host(conn, CID_SIG, &req));
    advance(5);
    let rsp = take_open_response(id);
    assert_eq!(&rsp[12..14], &[0, 0], "accepted");
    u16::from_le_bytes([rsp[4], rsp[5]])
}

fn l2cap_send(conn: u16, cid: u16, data: &[u8]) -> (Status, bool) {
    let mut more = false;
    // SAFETY: `data` is readable for its length; `more` is writable.
    let st = unsafe { ffi::ubt_l2cap_send(conn, cid, data.as_ptr(), data.len(), &mut more) };
    (st, more)
}

fn l2cap_pending(conn: u16, cid: u16) -> usize {
    let mut len = 0;
    // SAFETY: a null buffer asks for the count; `len` is valid.
    let st = unsafe { ffi::ubt_l2cap_recvinto(conn, cid, core::ptr::null_mut(), &mut len) };
    assert_eq!(st, OK);
    len
}

/// The LE Flow Control Credit packets the host sent: (our CID, credits).
fn credits_out() -> Vec<(u16, u16)> {
    with_controller(|c| c.take_pdus(CID_SIG))
        .into_iter()
        .map(|p| p.payload)
        .filter(|p| p[0] == 0x16)
        .map(|p| {
            (
                u16::from_le_bytes([p[4], p[5]]),
                u16::from_le_bytes([p[6], p[7]]),
            )
        })
        .collect()
}

/// With more credits than one SDU (`UBT_L2CAP_RX_CREDITS=24`), the peer sends that many
/// K-frames ahead while nothing is read: every SDU is kept, in order, no credit goes back
/// meanwhile, and reading everything tops the peer up again, to the full number.
#[test]
fn l2cap_a_peer_with_more_credits_sends_ahead_of_the_reader() {
    let _sim = started();
    /// Back to the build setting however the test ends.
    struct Setting;
    impl Drop for Setting {
        fn drop(&mut self) {
            crate::host::l2cap::set_rx_credits_for_tests(None);
        }
    }
    let _setting = Setting;
    crate::host::l2cap::set_rx_credits_for_tests(Some(24));
    let window = crate::host::l2cap::rx_credits(512);
    assert_eq!(window, 24);
    assert_eq!(ffi::ubt_l2cap_listen(0x80, 512), OK);
    let conn = connect_as_peripheral();
    let cid = peer_opens_channel(conn, 1, 0x80, 0x40, 5);
    events();
    // One K-frame per SDU of 200 bytes: `window` of them, none read.
    let mut expected = Vec::new();
    for i in 0..window {
        let mut kframe = 200u16.to_le_bytes().to_vec();
        let sdu: Vec<u8> = (0..200).map(|j| (usize::from(i) * 7 + j) as u8).collect();
        kframe.extend(&sdu);
        expected.extend(sdu);
        with_controller(|c| c.l2cap_to_host(conn, cid, &kframe));
        advance(1);
    }
    advance(5);
    assert_eq!(events().len(), usize::from(window), "one RECV per SDU");
    assert_eq!(credits_out(), vec![], "no credits while data waits");
    assert_eq!(
        l2cap_pending(conn, cid),
        200 * usize::from(window),
        "all of it waits"
    );
    let mut got = Vec::new();
    let mut out = [0u8; 512];
    while got.len() < expected.len() {
        let mut len = out.len();
        // SAFETY: `out` is writable for `len` bytes; `len` is valid.
        let st = unsafe { ffi::ubt_l2cap_recvinto(conn, cid, out.as_mut_ptr(), &mut len) };
        assert_eq!(st, OK);
        assert!(len > 0, "data for every K-frame the credits allowed");
        got.extend_from_slice(&out[..len]);
    }
    assert_eq!(got, expected);
    advance(5);
    assert_eq!(
        credits_out(),
        vec![(cid, window)],
        "topped up to the full number"
    );
    assert!(ffi::ubt_ble_is_active());
}

/// Two channels on one link, through two listening PSMs: each has its own data, its own
/// credits back to the peer and its own send stall. A receiver that does not read one channel
/// and a peer that gives one channel no credits leave the other channel running.
#[test]
fn l2cap_two_channels_on_one_link_keep_their_own_credits() {
    let _sim = started();
    assert_eq!(ffi::ubt_l2cap_listen(0x80, 512), OK);
    assert_eq!(ffi::ubt_l2cap_listen(0x81, 512), OK, "a second PSM");
    assert_eq!(
        ffi::ubt_l2cap_listen(0x80, 512),
        errno::EALREADY,
        "the same PSM again"
    );
    let conn = connect_as_peripheral();
    // Channel A gets 1 credit from the peer, channel B 5.
    let a = peer_opens_channel(conn, 1, 0x80, 0x40, 1);
    let b = peer_opens_channel(conn, 2, 0x81, 0x41, 5);
    assert_ne!(a, b);
    let (ia, ib) = (i64::from(a), i64::from(b));
    assert_eq!(
        events(),
        vec![
            ev(
                IRQ_L2CAP_ACCEPT,
                vec![int(1), int(ia), int(0x80), int(512), int(256)]
            ),
            ev(
                IRQ_L2CAP_CONNECT,
                vec![int(1), int(ia), int(0x80), int(512), int(256)]
            ),
            ev(
                IRQ_L2CAP_ACCEPT,
                vec![int(1), int(ib), int(0x81), int(512), int(256)]
            ),
            ev(
                IRQ_L2CAP_CONNECT,
                vec![int(1), int(ib), int(0x81), int(512), int(256)]
            ),
        ]
    );

    // Receiving: one SDU on each; only B is read, so only B's peer gets credits back.
    with_controller(|c| {
        c.l2cap_to_host(conn, a, b"\x05\x00hello");
        c.l2cap_to_host(conn, b, b"\x05\x00world");
    });
    advance(5);
    assert_eq!(
        events(),
        vec![
            ev(IRQ_L2CAP_RECV, vec![int(1), int(ia)]),
            ev(IRQ_L2CAP_RECV, vec![int(1), int(ib)]),
        ]
    );
    let mut out = [0u8; 16];
    let mut len = out.len();
    // SAFETY: `out` is writable for `len` bytes; `len` is valid.
    let st = unsafe { ffi::ubt_l2cap_recvinto(conn, b, out.as_mut_ptr(), &mut len) };
    assert_eq!(st, OK);
    assert_eq!(&out[..len], b"world");
    advance(5);
    let credits = credits_out();
    assert_eq!(credits.len(), 1, "{credits:?}");
    assert_eq!(credits[0].0, b, "credits for B only");
    assert_eq!(l2cap_pending(conn, a), 5, "A's data still waits");
    // B keeps receiving while A is not read.
    with_controller(|c| c.l2cap_to_host(conn, b, b"\x02\x00ok"));
    advance(5);
    assert_eq!(events(), vec![ev(IRQ_L2CAP_RECV, vec![int(1), int(ib)])]);
    assert_eq!(l2cap_pending(conn, b), 2);

    // Sending: a 150-byte SDU needs two K-frames (MPS 100); A has one credit and stalls.
    let data: Vec<u8> = (0..150u32).map(|i| i as u8).collect();
    assert_eq!(l2cap_send(conn, a, &data), (OK, false), "A stalled");
    assert_eq!(l2cap_send(conn, a, b"x").0, errno::EBUSY, "A is busy");
    assert_eq!(l2cap_send(conn, b, &data), (OK, true), "B is not");
    advance(5);
    assert_eq!(
        with_controller(|c| c.take_pdus(0x40)).len(),
        1,
        "A's first K-frame"
    );
    assert_eq!(
        with_controller(|c| c.take_pdus(0x41)).len(),
        2,
        "all of B's SDU"
    );
    assert_eq!(
        events(),
        vec![],
        "no SEND_READY for A without credits, none for B"
    );

    // The peer's credit for A: the rest of A's SDU, and SEND_READY for A alone.
    let mut credit = vec![0x16, 3, 4, 0];
    credit.extend(0x40u16.to_le_bytes());
    credit.extend(3u16.to_le_bytes());
    with_controller(|c| c.l2cap_to_host(conn, CID_SIG, &credit));
    advance(5);
    assert_eq!(with_controller(|c| c.take_pdus(0x40)).len(), 1);
    assert_eq!(
        events(),
        vec![ev(IRQ_L2CAP_SEND_READY, vec![int(1), int(ia), int(0)])]
    );

    // Closing B leaves A open.
    assert_eq!(ffi::ubt_l2cap_disconnect(conn, b), OK);
    advance(5);
    let req = with_controller(|c| c.take_pdus(CID_SIG)).remove(0).payload;
    assert_eq!(req[0], 0x06, "Disconnection Request");
    let mut rsp = vec![0x07, req[1], 4, 0];
    rsp.extend(&req[4..8]);
    with_controller(|c| c.l2cap_to_host(conn, CID_SIG, &rsp));
    advance(5);
    assert_eq!(
        events(),
        vec![ev(
            IRQ_L2CAP_DISCONNECT,
            vec![int(1), int(ib), int(0x81), int(0)]
        )]
    );
    assert_eq!(l2cap_pending(conn, a), 5);
    assert_eq!(l2cap_send(conn, a, b"still"), (OK, true));
}

/// NimBLE's shared pool is every channel's: two channels that each found it at most half free
/// each get their own SEND_READY once it recovers.
#[test]
fn l2cap_each_channel_stalled_on_the_shared_pool_gets_its_own_send_ready() {
    let _sim = started();
    let h = register_one_characteristic();
    assert_eq!(ffi::ubt_l2cap_listen(0x80, 512), OK);
    let conn = connect_as_peripheral();
    let a = peer_opens_channel(conn, 1, 0x80, 0x40, 10);
    let b = peer_opens_channel(conn, 2, 0x80, 0x41, 10);
    events();
    // The controller's 8 ACL buffers fill and stay taken, so 3 more packets queue in the
    // host, each holding two blocks of NimBLE's shared pool (12): half of it.
    with_controller(|c| c.complete_acl = false);
    for i in 0..11u8 {
        // SAFETY: `[i]` is readable for its length.
        let st = unsafe { ffi::ubt_gatts_notify(conn, h, buf(&[i]), false) };
        assert_eq!(st, OK);
        advance(5);
    }
    assert_eq!(
        l2cap_send(conn, a, b"one"),
        (OK, false),
        "A finds the pool half used"
    );
    assert_eq!(l2cap_send(conn, b, b"two"), (OK, false), "so does B");
    advance(5);
    assert_eq!(events(), vec![]);
    with_controller(|c| {
        c.complete_acl = true;
        c.number_of_completed_packets(conn, 8);
    });
    advance(5);
    let mut evs = events();
    evs.sort_by_key(|e| format!("{:?}", e.args));
    let mut want = vec![
        ev(
            IRQ_L2CAP_SEND_READY,
            vec![int(1), int(i64::from(a)), int(0)],
        ),
        ev(
            IRQ_L2CAP_SEND_READY,
            vec![int(1), int(i64::from(b)), int(0)],
        ),
    ];
    want.sort_by_key(|e| format!("{:?}", e.args));
    assert_eq!(evs, want);
    assert_eq!(with_controller(|c| c.take_pdus(0x40)).len(), 1);
    assert_eq!(with_controller(|c| c.take_pdus(0x41)).len(), 1);
}

/// Up to the build's maximum of channels at once: past it `l2cap_connect` raises
/// `OSError(ENOMEM)` and a peer's request is refused with "no resources" (0x0004), without an
/// event. A channel that ends frees its place.
#[test]
fn l2cap_channels_past_the_maximum() {
    let max = crate::host::l2cap::MAX_CHANNELS;
    assert!(max >= 2, "the default build allows several channels");
    let _sim = started();
    let conn = connect_as_central();
    for _ in 0..max {
        assert_eq!(ffi::ubt_l2cap_connect(conn, 0x80, 512), OK);
    }
    assert_eq!(ffi::ubt_l2cap_connect(conn, 0x80, 512), errno::ENOMEM);
    advance(5);
    let reqs = with_controller(|c| c.take_pdus(CID_SIG));
    assert_eq!(
        reqs.len(),
        max,
        "one request per channel, none past the maximum"
    );

    // The peer asks for a channel too: refused, and the script hears nothing of it.
    assert_eq!(ffi::ubt_l2cap_listen(0x90, 512), OK);
    let mut req = vec![0x14, 0x77, 10, 0];
    for v in [0x90u16, 0x40, 256, 100, 5] {
        req.extend(v.to_le_bytes());
    }
    with_controller(|c| c.l2cap_to_host(conn, CID_SIG, &req));
    advance(5);
    let rsp = with_controller(|c| c.take_pdus(CID_SIG)).remove(0).payload;
    assert_eq!(&rsp[0..2], &[0x15, 0x77]);
    assert_eq!(&rsp[12..14], &4u16.to_le_bytes(), "no resources");
    assert_eq!(events(), vec![]);

    // The peer refuses our first request (LE_PSM not supported): that channel is gone ...
    let first = &reqs[0].payload;
    let mut refuse = vec![0x15, first[1], 10, 0];
    for v in [0u16, 0, 0, 0, 2] {
        refuse.extend(v.to_le_bytes());
    }
    with_controller(|c| c.l2cap_to_host(conn, CID_SIG, &refuse));
    advance(5);
    let evs = events();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].num, IRQ_L2CAP_DISCONNECT);
    assert_ne!(evs[0].args[3], int(0), "a failed connect");
    // ... so one more fits, and again no more.
    assert_eq!(ffi::ubt_l2cap_connect(conn, 0x80, 512), OK);
    assert_eq!(ffi::ubt_l2cap_connect(conn, 0x80, 512), errno::ENOMEM);
}

// --- A peer or a controller that stops answering ----------------------------------------------

/// NimBLE's ATT transaction timeout (Core spec Vol 3 Part F 3.3.3: 30 s).
const ATT_TIMEOUT_MS: u32 = 30_000;

#[test]
fn gattc_write_unanswered_times_out_and_ends_the_link() {
    let _sim = started();
    let conn = connect_as_central();
    with_controller(|c| c.commands.clear());
    let data = b"on";
    // SAFETY: `data` is readable for its length.
    let st = unsafe { ffi::ubt_gattc_write(conn, 5, data.as_ptr(), data.len(), 1) };
    assert_eq!(st, OK);
    advance(5);
    assert_eq!(att_out(), vec![b"\x12\x05\x00on".to_vec()], "Write Request");
    // The peer never answers: nothing happens until the ATT timeout ...
    advance(ATT_TIMEOUT_MS - 100);
    assert_eq!(events(), vec![]);
    assert!(with_controller(|c| c.sent(0x0406).is_empty()));
    // ... then the write is done with status 13 (BLE_HS_ETIMEOUT), and the link is ended
    // (HCI Disconnect, "remote user terminated connection"), as the spec requires of a client
    // whose transaction timed out: no further ATT PDU may go over that bearer.
    advance(200);
    assert_eq!(
        events(),
        vec![
            ev(IRQ_GATTC_WRITE_DONE, vec![int(2), int(5), int(13)]),
            ev(
                IRQ_PERIPHERAL_DISCONNECT,
                vec![int(2), int(0), bytes(&PEER)]
            ),
        ]
    );
    assert_eq!(
        last_sent(0x0406),
        vec![2, 0, 0x13],
        "Disconnect, reason 0x13"
    );
    // The stack carries on: a new write on the ended link is refused at once.
    // SAFETY: as above.
    let st = unsafe { ffi::ubt_gattc_write(conn, 5, data.as_ptr(), data.len(), 1) };
    assert_eq!(st, errno::ENOTCONN);
}

#[test]
fn a_controller_that_stops_answering_fails_the_call_and_the_stack_still_stops() {
    let _sim = started();
    connect_as_peripheral();
    // From here on the controller takes commands and answers none.
    with_controller(|c| c.answers_left = 0);
    let t0 = now_ms();
    let st = advertise(100_000, &[2, 1, 6], true);
    let waited = now_ms().wrapping_sub(t0);
    // NimBLE gives up on a command after 2 s: OSError(-19), BLE_HS_ETIMEOUT_HCI passed
    // through negated like every stack code without an errno of its own.
    assert_eq!(st, -19);
    assert!(
        (2000..2100).contains(&waited),
        "NimBLE's 2 s command timeout, waited {waited} ms"
    );
    // NimBLE then resets its host: the link is reported as ended ...
    advance(1);
    assert_eq!(
        events(),
        vec![ev(
            IRQ_CENTRAL_DISCONNECT,
            vec![int(1), int(0), bytes(&PEER)]
        )]
    );
    // ... and it tries to sync again (HCI Reset), so the stack still reports active, but until
    // it has synced every call fails at once with OSError(-22) (BLE_HS_ENOTSYNCED).
    assert!(ffi::ubt_ble_is_active());
    assert!(with_controller(|c| !c.sent(0x0c03).is_empty()));
    let t1 = now_ms();
    assert_eq!(advertise(100_000, &[2, 1, 6], true), -22);
    assert_eq!(now_ms(), t1, "no wait");
    // active(False) completes and closes the UART.
    stop();
    assert!(!ffi::ubt_ble_is_active());
    assert!(with_controller(|c| !c.uart_open));
    // Once the controller answers again, the stack starts.
    with_controller(|c| c.answers_left = u32::MAX);
    assert_eq!(start(), OK);
}

/// With one link slot left, connectable advertising and `gap_connect` may not both run: each
/// checks for a free slot only as it starts, and if both completed NimBLE would use a null
/// connection for the second. So the second to start raises `OSError(ENOMEM)`; with two slots
/// free both may run, and both links come up.
#[test]
fn advertising_and_connecting_need_two_free_slots() {
    let max = ns_max_connections();
    assert!(max >= 3, "the default host build allows several links");
    let _sim = started();
    // Every slot but two taken by centrals connecting to our advertising.
    for handle in 1..=max - 2 {
        assert_eq!(advertise(100_000, &[2, 1, 6], true), OK);
        // Not PEER, which `gap_connect` targets below (NimBLE refuses a second link to a peer).
        let peer = [0xc2, 0, 0, 0, 0, handle as u8];
        with_controller(|c| c.connection_complete(handle, 1, 0, peer, 24));
        advance(5);
    }
    assert_eq!(events().len(), usize::from(max - 2));

    // Two free: both procedures at once, and both links come up.
    assert_eq!(advertise(100_000, &[2, 1, 6], true), OK);
    // SAFETY: PEER is 6 readable bytes.
    let st = unsafe { ffi::ubt_ble_gap_connect(0, PEER.as_ptr(), 2000, 0, 0) };
    assert_eq!(st, OK);
    let (central_handle, peripheral_handle) = (0x40, 0x41);
    with_controller(|c| {
        c.connection_complete(central_handle, 0, 0, PEER, 24);
        c.connection_complete(peripheral_handle, 1, 0, [0xc0, 0, 0, 0, 0, 0x99], 24);
    });
    advance(5);
    let nums: Vec<u16> = events().iter().map(|e| e.num).collect();
    assert_eq!(nums, vec![IRQ_PERIPHERAL_CONNECT, IRQ_CENTRAL_CONNECT]);

    // One slot free again after a link ends.
    with_controller(|c| c.disconnection_complete(peripheral_handle, 0x13));
    advance(5);
    take_events();
    // Connectable advertising first: a connect (to a peer not yet linked) is refused, and
    // nothing is sent for it.
    let other: [u8; 6] = [0xc3, 1, 2, 3, 4, 5];
    assert_eq!(advertise(100_000, &[2, 1, 6], true), OK);
    let creates = with_controller(|c| c.sent(0x200d).len());
    // SAFETY: `other` is 6 readable bytes.
    let st = unsafe { ffi::ubt_ble_gap_connect(0, other.as_ptr(), 2000, 0, 0) };
    assert_eq!(st, errno::ENOMEM);
    assert_eq!(with_controller(|c| c.sent(0x200d).len()), creates);
    // Non-connectable advertising takes no slot: the connect may go on.
    assert_eq!(advertise(100_000, &[2, 1, 6], false), OK);
    // SAFETY: as above.
    let st = unsafe { ffi::ubt_ble_gap_connect(0, other.as_ptr(), 2000, 0, 0) };
    assert_eq!(st, OK);
    // A connect running: connectable advertising is refused, and the advertising that was on
    // stays on.
    assert_eq!(advertise(100_000, &[2, 1, 6], true), errno::ENOMEM);
    // SAFETY: plain NimBLE query on the test thread, which runs the simulated host.
    assert_ne!(unsafe { nimble_sys::ble_gap_adv_active() }, 0);
    assert_eq!(ffi::ubt_ble_gap_connect_cancel(), OK);
    with_controller(|c| c.connection_failed(0x02));
    advance(5);
    take_events();
    assert_eq!(
        advertise(100_000, &[2, 1, 6], true),
        OK,
        "alone, one slot is enough"
    );
}

fn ns_max_connections() -> u16 {
    nimble_sys::MYNEWT_VAL_BLE_MAX_CONNECTIONS as u16
}
