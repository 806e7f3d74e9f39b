//! A scripted Bluetooth LE controller on the far side of the simulated HCI UART.
//!
//! It answers every HCI command the host sends (with the values NimBLE needs to sync), unless
//! told to withhold or delay answers, and records each command. ACL data from the host is
//! reassembled into L2CAP PDUs a test can inspect, and each packet is completed with Number of
//! Completed Packets. A test plays the peer by queueing events and ACL data for the host:
//! advertising reports, connections, disconnections, encryption changes and L2CAP PDUs (ATT,
//! signalling, SMP, credit-based channel data).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::vec::Vec;

/// H4 packet types.
const H4_COMMAND: u8 = 0x01;
const H4_ACL: u8 = 0x02;
const H4_EVENT: u8 = 0x04;

/// Event codes.
const EVT_DISCONN_COMPLETE: u8 = 0x05;
const EVT_ENCRYPT_CHANGE: u8 = 0x08;
const EVT_CMD_COMPLETE: u8 = 0x0e;
const EVT_CMD_STATUS: u8 = 0x0f;
const EVT_NUM_COMP_PKTS: u8 = 0x13;
const EVT_LE_META: u8 = 0x3e;
const LE_SUBEV_CONN_COMPLETE: u8 = 0x01;
const LE_SUBEV_ADV_RPT: u8 = 0x02;
const LE_SUBEV_CONN_UPD_COMPLETE: u8 = 0x03;
const LE_SUBEV_LTK_REQ: u8 = 0x05;

/// The ACL buffers the controller reports (LE Read Buffer Size): 251 bytes, 8 of them.
pub const ACL_BUF_LEN: usize = 251;

/// L2CAP channel IDs of the fixed channels.
pub const CID_ATT: u16 = 0x0004;
/// LE signalling channel.
pub const CID_SIG: u16 = 0x0005;
/// Security Manager.
pub const CID_SMP: u16 = 0x0006;

/// A command the host sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The opcode (OGF << 10 | OCF).
    pub opcode: u16,
    /// Its parameters.
    pub params: Vec<u8>,
}

/// One L2CAP PDU the host sent, reassembled from its ACL fragments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclOut {
    /// The connection handle.
    pub handle: u16,
    /// The destination channel.
    pub cid: u16,
    /// The PDU's payload (without the basic L2CAP header).
    pub payload: Vec<u8>,
}

/// The controller. Public fields are the script; the rest is its record of the host's side.
pub struct Controller {
    /// Answer commands only while this is non-zero; counts down with each command answered.
    pub answers_left: u32,
    /// Opcodes that are never answered.
    pub withhold: BTreeSet<u16>,
    /// Opcodes whose answer comes this many milliseconds late.
    pub delay: BTreeMap<u16, u32>,
    /// Opcodes answered with a status (in Command Complete or Command Status) other than 0.
    pub fail: BTreeMap<u16, u8>,
    /// Our public address as HCI carries it (least-significant byte first).
    pub bd_addr: [u8; 6],
    /// Complete every ACL packet from the host at once with Number of Completed Packets.
    pub complete_acl: bool,
    /// What LE Read Local Supported Features reports (little-endian bit mask).
    pub le_features: u64,
    /// The host opened the UART and has not closed it.
    pub uart_open: bool,
    /// Every command the host sent, in order (answered or not).
    pub commands: Vec<Command>,
    /// Every L2CAP PDU the host sent, in order.
    pub acl_out: Vec<AclOut>,
    /// Bytes the host wrote that were not a command or ACL data (the host must never do so).
    pub bad_bytes: usize,
    to_host: VecDeque<u8>,
    /// Bytes for the host that fall due later: (due time in ms, bytes), in due order.
    later: Vec<(u32, Vec<u8>)>,
    from_host: Vec<u8>,
    /// Fragments of an L2CAP PDU being reassembled, per connection handle.
    partial: BTreeMap<u16, Vec<u8>>,
}

impl Default for Controller {
    fn default() -> Self {
        Controller {
            answers_left: u32::MAX,
            withhold: BTreeSet::new(),
            delay: BTreeMap::new(),
            fail: BTreeMap::new(),
            bd_addr: [0x66, 0x55, 0x44, 0x33, 0x22, 0x11],
            complete_acl: true,
            le_features: 0x7fff,
            uart_open: false,
            commands: Vec::new(),
            acl_out: Vec::new(),
            bad_bytes: 0,
            to_host: VecDeque::new(),
            later: Vec::new(),
            from_host: Vec::new(),
            partial: BTreeMap::new(),
        }
    }
}

/// UBT_SIM_TRACE set: print each command and ACL packet (read once).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("UBT_SIM_TRACE").is_some())
}

/// Commands answered with Command Status (their result comes later as an event).
fn answered_with_status(opcode: u16) -> bool {
    matches!(
        opcode,
        0x0405 | 0x0406 | 0x041d | 0x200d | 0x2013 | 0x2016 | 0x2019 | 0x2025 | 0x2026 | 0x2032
    )
}

impl Controller {
    // --- The UART side ----------------------------------------------------------------------

    /// Whether bytes wait for the host now.
    pub fn has_bytes_for_host(&self) -> bool {
        !self.to_host.is_empty()
    }

    /// When the earliest delayed answer falls due.
    pub fn next_due(&self) -> Option<u32> {
        self.later.first().map(|(t, _)| *t)
    }

    /// Moves delayed bytes that are due at `now` to the host.
    pub fn release_due(&mut self, now: u32) {
        while let Some((t, _)) = self.later.first() {
            if (now.wrapping_sub(*t) as i32) < 0 {
                break;
            }
            let (_, bytes) = self.later.remove(0);
            self.to_host.extend(bytes);
        }
    }

    /// The UART read: moves waiting bytes into `out`, returns how many.
    pub fn to_host(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.to_host.len());
        for (o, b) in out.iter_mut().zip(self.to_host.drain(..n)) {
            *o = b;
        }
        n
    }

    /// The UART write: takes whole H4 packets and acts on them.
    pub fn from_host(&mut self, data: &[u8], now: u32) {
        self.from_host.extend_from_slice(data);
        loop {
            match self.from_host.as_slice() {
                [H4_COMMAND, lo, hi, len, rest @ ..] if rest.len() >= usize::from(*len) => {
                    let opcode = u16::from_le_bytes([*lo, *hi]);
                    let params = rest[..usize::from(*len)].to_vec();
                    self.from_host.drain(..4 + usize::from(*len));
                    self.command(opcode, params, now);
                }
                [H4_ACL, h0, h1, lo, hi, rest @ ..]
                    if rest.len() >= usize::from(u16::from_le_bytes([*lo, *hi])) =>
                {
                    let n = usize::from(u16::from_le_bytes([*lo, *hi]));
                    let hf = u16::from_le_bytes([*h0, *h1]);
                    let data = rest[..n].to_vec();
                    self.from_host.drain(..5 + n);
                    self.acl(hf & 0x0fff, (hf >> 12) & 3, data);
                }
                [] => return,
                [H4_COMMAND, ..] | [H4_ACL, ..] => return, // not whole yet
                _ => {
                    // The host never writes anything else: counted, so a test can fail on it.
                    self.bad_bytes += self.from_host.len();
                    self.from_host.clear();
                    return;
                }
            }
        }
    }

    fn queue(&mut self, bytes: Vec<u8>, due: Option<u32>) {
        match due {
            None => self.to_host.extend(bytes),
            Some(t) => {
                let at = self
                    .later
                    .iter()
                    .position(|(u, _)| (t.wrapping_sub(*u) as i32) < 0)
                    .unwrap_or(self.later.len());
                self.later.insert(at, (t, bytes));
            }
        }
    }

    fn event_bytes(code: u8, params: &[u8]) -> Vec<u8> {
        let mut b = vec![H4_EVENT, code, params.len() as u8];
        b.extend_from_slice(params);
        b
    }

    /// Queues raw bytes for the host, well-formed or not (the fuzz target's input).
    pub fn raw_to_host(&mut self, bytes: &[u8]) {
        self.to_host.extend(bytes);
    }

    /// Queues an HCI event for the host (`params` at most 255 bytes).
    pub fn event(&mut self, code: u8, params: &[u8]) {
        self.queue(Self::event_bytes(code, params), None);
    }

    // --- Commands ---------------------------------------------------------------------------

    /// Return parameters (after the status byte) of a Command Complete for `opcode`: zeros of
    /// the length NimBLE checks, with the values it needs to make progress set.
    fn return_params(&self, opcode: u16, params: &[u8]) -> Vec<u8> {
        match opcode {
            // LE LTK (Negative) Reply, LE Set Data Length: the connection handle they name.
            0x201a | 0x201b | 0x2022 => params.get(..2).unwrap_or(&[0, 0]).to_vec(),
            0x1001 => vec![0x0b, 0, 0, 0x0b, 0xff, 0xff, 0, 0], // Read Local Version: 5.2
            0x1002 => vec![0xff; 64],                           // Read Local Supported Commands
            0x1003 => vec![0xff; 8],                            // Read Local Supported Features
            0x1005 => vec![0xfb, 0, 0, 8, 0, 0, 0],             // Read Buffer Size
            0x1009 => self.bd_addr.to_vec(),                    // Read BD_ADDR
            0x1405 => vec![0, 0, 0],                            // Read RSSI
            0x2002 => vec![ACL_BUF_LEN as u8, 0, 8],            // LE Read Buffer Size: 251 x 8
            0x2003 => self.le_features.to_le_bytes().to_vec(),  // LE Read Local Features
            0x2007 => vec![0],                                  // LE Read Adv Channel TX Power
            0x200f => vec![8],                                  // LE Read Accept List Size
            0x2017 => vec![0x5a; 16],                           // LE Encrypt
            0x2018 => vec![0xa5; 8],                            // LE Rand
            0x201c => vec![0xff; 8],                            // LE Read Supported States
            0x2023 => vec![0xfb, 0, 0x48, 0x08],                // LE Read Suggested Default DL
            0x202a => vec![8],                                  // LE Read Resolving List Size
            0x202f => vec![0xfb, 0, 0x48, 0x08, 0xfb, 0, 0x48, 0x08], // LE Read Maximum DL
            0x2030 => vec![0, 0, 1, 1],                         // LE Read PHY
            _ => Vec::new(),
        }
    }

    fn command(&mut self, opcode: u16, params: Vec<u8>, now: u32) {
        if trace() {
            eprintln!("{now:>8} ms  command {opcode:04x} {params:02x?}");
        }
        self.commands.push(Command {
            opcode,
            params: params.clone(),
        });
        if self.answers_left == 0 || self.withhold.contains(&opcode) {
            return;
        }
        self.answers_left -= 1;
        let due = self.delay.get(&opcode).map(|d| now.wrapping_add(*d));
        let status = self.fail.get(&opcode).copied().unwrap_or(0);
        let [lo, hi] = opcode.to_le_bytes();
        if answered_with_status(opcode) {
            self.queue(Self::event_bytes(EVT_CMD_STATUS, &[status, 1, lo, hi]), due);
            if opcode == 0x0406 && status == 0 && params.len() >= 2 {
                // Disconnect: the link goes down at once ("terminated by local host").
                let p = [0, params[0], params[1], 0x16];
                self.queue(Self::event_bytes(EVT_DISCONN_COMPLETE, &p), due);
            }
            return;
        }
        let mut p = vec![1, lo, hi, status];
        if status == 0 {
            p.extend(self.return_params(opcode, &params));
        }
        self.queue(Self::event_bytes(EVT_CMD_COMPLETE, &p), due);
        if opcode == 0x200e && status == 0 {
            // LE Create Connection Cancel: the pending connection ends with "unknown
            // connection identifier".
            let mut p = vec![LE_SUBEV_CONN_COMPLETE, 0x02];
            p.extend([0u8; 17]);
            self.queue(Self::event_bytes(EVT_LE_META, &p), due);
        }
    }

    /// The commands with `opcode` the host sent, their parameters in order.
    pub fn sent(&self, opcode: u16) -> Vec<Vec<u8>> {
        self.commands
            .iter()
            .filter(|c| c.opcode == opcode)
            .map(|c| c.params.clone())
            .collect()
    }

    // --- ACL ----------------------------------------------------------------------------------

    fn acl(&mut self, handle: u16, pb: u16, data: Vec<u8>) {
        if trace() {
            eprintln!("            ACL out {handle:#x} pb {pb} {data:02x?}");
        }
        if self.complete_acl {
            self.number_of_completed_packets(handle, 1);
        }
        let buf = self.partial.entry(handle).or_default();
        if pb != 1 {
            // A first fragment starts a new PDU.
            buf.clear();
        }
        buf.extend(data);
        if buf.len() >= 4 {
            let len = usize::from(u16::from_le_bytes([buf[0], buf[1]]));
            if buf.len() >= 4 + len {
                let cid = u16::from_le_bytes([buf[2], buf[3]]);
                let payload = buf[4..4 + len].to_vec();
                buf.clear();
                self.acl_out.push(AclOut {
                    handle,
                    cid,
                    payload,
                });
            }
        }
    }

    /// Takes the L2CAP PDUs the host sent on `cid` so far.
    pub fn take_pdus(&mut self, cid: u16) -> Vec<AclOut> {
        let (taken, kept) = std::mem::take(&mut self.acl_out)
            .into_iter()
            .partition(|p| p.cid == cid);
        self.acl_out = kept;
        taken
    }

    /// Queues an L2CAP PDU from the peer on `cid` of connection `handle`, in ACL packets of at
    /// most [`ACL_BUF_LEN`] bytes.
    pub fn l2cap_to_host(&mut self, handle: u16, cid: u16, payload: &[u8]) {
        let mut pdu = Vec::with_capacity(4 + payload.len());
        pdu.extend((payload.len() as u16).to_le_bytes());
        pdu.extend(cid.to_le_bytes());
        pdu.extend_from_slice(payload);
        for (i, chunk) in pdu.chunks(ACL_BUF_LEN).enumerate() {
            // First automatically-flushable fragment, then continuations.
            let pb: u16 = if i == 0 { 2 } else { 1 };
            let mut b = vec![H4_ACL];
            b.extend((handle | pb << 12).to_le_bytes());
            b.extend((chunk.len() as u16).to_le_bytes());
            b.extend_from_slice(chunk);
            self.queue(b, None);
        }
    }

    /// Queues one ACL packet from the peer as given: Packet Boundary flag `pb` and `data`
    /// (L2CAP bytes, whole or a fragment), for PDUs a peer splits its own way.
    pub fn acl_to_host(&mut self, handle: u16, pb: u16, data: &[u8]) {
        let mut b = vec![H4_ACL];
        b.extend((handle | pb << 12).to_le_bytes());
        b.extend((data.len() as u16).to_le_bytes());
        b.extend_from_slice(data);
        self.queue(b, None);
    }

    // --- Events a peer causes -----------------------------------------------------------------

    /// A legacy LE Advertising Report: `addr` most-significant byte first, as scripts see it.
    pub fn adv_report(
        &mut self,
        adv_type: u8,
        addr_type: u8,
        addr: [u8; 6],
        rssi: i8,
        data: &[u8],
    ) {
        let mut p = vec![LE_SUBEV_ADV_RPT, 1, adv_type, addr_type];
        p.extend(addr.iter().rev());
        p.push(data.len() as u8);
        p.extend_from_slice(data);
        p.push(rssi as u8);
        self.event(EVT_LE_META, &p);
    }

    /// LE Connection Complete (success): `role` 0 when we are central, 1 peripheral; `addr`
    /// most-significant byte first; interval in 1.25 ms units.
    pub fn connection_complete(
        &mut self,
        handle: u16,
        role: u8,
        peer_type: u8,
        addr: [u8; 6],
        interval: u16,
    ) {
        let mut p = vec![LE_SUBEV_CONN_COMPLETE, 0];
        p.extend(handle.to_le_bytes());
        p.extend([role, peer_type]);
        p.extend(addr.iter().rev());
        p.extend(interval.to_le_bytes());
        p.extend(0u16.to_le_bytes()); // latency
        p.extend(400u16.to_le_bytes()); // supervision timeout, 4 s
        p.push(0); // central clock accuracy
        self.event(EVT_LE_META, &p);
    }

    /// A failed LE Connection Complete (e.g. 0x02 after LE Create Connection Cancel).
    pub fn connection_failed(&mut self, status: u8) {
        let mut p = vec![LE_SUBEV_CONN_COMPLETE, status];
        p.extend([0u8; 17]);
        self.event(EVT_LE_META, &p);
    }

    /// LE Connection Update Complete (status 0): interval in 1.25 ms units, supervision
    /// timeout in 10 ms units.
    pub fn connection_update_complete(
        &mut self,
        handle: u16,
        interval: u16,
        latency: u16,
        timeout: u16,
    ) {
        let mut p = vec![LE_SUBEV_CONN_UPD_COMPLETE, 0];
        for v in [handle, interval, latency, timeout] {
            p.extend(v.to_le_bytes());
        }
        self.event(EVT_LE_META, &p);
    }

    /// Disconnection Complete.
    pub fn disconnection_complete(&mut self, handle: u16, reason: u8) {
        let mut p = vec![0];
        p.extend(handle.to_le_bytes());
        p.push(reason);
        self.event(EVT_DISCONN_COMPLETE, &p);
    }

    /// Encryption Change (status 0).
    pub fn encryption_change(&mut self, handle: u16, enabled: bool) {
        let mut p = vec![0];
        p.extend(handle.to_le_bytes());
        p.push(u8::from(enabled));
        self.event(EVT_ENCRYPT_CHANGE, &p);
    }

    /// LE Long Term Key Request (the central started encryption with this Rand and EDIV).
    pub fn ltk_request(&mut self, handle: u16, rand: u64, ediv: u16) {
        let mut p = vec![LE_SUBEV_LTK_REQ];
        p.extend(handle.to_le_bytes());
        p.extend(rand.to_le_bytes());
        p.extend(ediv.to_le_bytes());
        self.event(EVT_LE_META, &p);
    }

    /// Number of Completed Packets for one connection.
    pub fn number_of_completed_packets(&mut self, handle: u16, n: u16) {
        let mut p = vec![1];
        p.extend(handle.to_le_bytes());
        p.extend(n.to_le_bytes());
        self.event(EVT_NUM_COMP_PKTS, &p);
    }
}
