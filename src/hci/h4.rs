//! H4 (UART) framing of HCI packets, host side.
//!
//! On a UART the HCI packets are simply concatenated, each preceded by one packet-type byte.
//! This file owns that framing: [`H4Parser`] turns the controller's byte stream back into
//! events and ACL packets (skipping SCO/ISO and resynchronising after garbage), and
//! [`frame_command`] / [`frame_acl`] prefix outgoing packets. It does no I/O and never
//! allocates; the transport that drives it lives in `super::transport`.

/// Packet type byte of an HCI command (host to controller).
pub const H4_COMMAND: u8 = 0x01;
/// Packet type byte of HCI ACL data (both directions).
pub const H4_ACL: u8 = 0x02;
/// Packet type byte of HCI synchronous (SCO) data.
pub const H4_SCO: u8 = 0x03;
/// Packet type byte of an HCI event (controller to host).
pub const H4_EVENT: u8 = 0x04;
/// Packet type byte of HCI isochronous (ISO) data.
pub const H4_ISO: u8 = 0x05;

/// Largest ACL payload accepted from the controller; packets declaring more are consumed and
/// dropped (counted in [`H4Stats::oversized`]).
///
/// An LE link carries at most 251 bytes per packet (Data Length Extension), and a controller
/// only sends what fits the host's buffers, so 1024 leaves ample room (it also covers the
/// largest BR/EDR baseband packet, 1021 bytes) while keeping the parser's buffer small.
pub const ACL_MAX_DATA: usize = 1024;

/// HCI event header: event code, parameter length.
const EVENT_HDR: usize = 2;
/// HCI ACL header: handle and flags (u16 LE), data length (u16 LE).
const ACL_HDR: usize = 4;
/// HCI SCO header: handle and flags (u16 LE), data length (u8).
const SCO_HDR: usize = 3;
/// HCI ISO header: handle and flags (u16 LE), data length (u16 LE, low 14 bits).
const ISO_HDR: usize = 4;
/// The ISO data length field's top two bits are reserved.
const ISO_LEN_MASK: u16 = 0x3fff;
/// Largest HCI event: the parameter length is a single byte.
const EVENT_MAX: usize = EVENT_HDR + u8::MAX as usize;
/// Largest ACL packet kept.
const ACL_MAX: usize = ACL_HDR + ACL_MAX_DATA;
/// The receive buffer holds the largest packet we keep.
const BUF_LEN: usize = if ACL_MAX > EVENT_MAX {
    ACL_MAX
} else {
    EVENT_MAX
};

/// A complete packet from the controller, without its H4 type byte. It borrows the parser's
/// buffer, so it must be consumed before the next [`H4Parser::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// A whole HCI event: event code, parameter length, parameters.
    Event(&'a [u8]),
    /// A whole HCI ACL packet: the 4-byte header, then the data.
    Acl(&'a [u8]),
}

/// What the parser has thrown away since it was created or last [`H4Parser::reset`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct H4Stats {
    /// Bytes dropped because they arrived where a packet type was expected and were not
    /// one the controller may send (the stream was out of sync).
    pub bad_type: u32,
    /// ACL packets dropped because they declared more than [`ACL_MAX_DATA`] bytes.
    pub oversized: u32,
    /// SCO and ISO packets skipped (this host has no use for them).
    pub skipped: u32,
}

/// Which packet the parser is inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Event,
    Acl,
    Sco,
    Iso,
}

impl Kind {
    const fn header_len(self) -> usize {
        match self {
            Kind::Event => EVENT_HDR,
            Kind::Acl => ACL_HDR,
            Kind::Sco => SCO_HDR,
            Kind::Iso => ISO_HDR,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for a packet type byte.
    Type,
    /// Collecting the header of a packet of this kind into the buffer.
    Header(Kind),
    /// Collecting a kept packet's body until the buffer holds `total` bytes.
    Body { kind: Kind, total: usize },
    /// Throwing away this many more body bytes of a dropped packet.
    Discard(usize),
}

/// Reassembles controller-to-host HCI packets from an H4 byte stream, one byte at a time.
///
/// Holds one packet's worth of buffer, so it can live in a `static`.
pub struct H4Parser {
    state: State,
    /// Bytes of the current packet (header included) stored in `buf`.
    pos: usize,
    buf: [u8; BUF_LEN],
    stats: H4Stats,
}

impl Default for H4Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl H4Parser {
    /// A parser waiting for the first packet type byte.
    pub const fn new() -> Self {
        H4Parser {
            state: State::Type,
            pos: 0,
            buf: [0; BUF_LEN],
            stats: H4Stats {
                bad_type: 0,
                oversized: 0,
                skipped: 0,
            },
        }
    }

    /// Forgets any partial packet and clears the counters.
    pub fn reset(&mut self) {
        self.state = State::Type;
        self.pos = 0;
        self.stats = H4Stats::default();
    }

    /// The drop counters.
    pub fn stats(&self) -> H4Stats {
        self.stats
    }

    /// Feeds one byte from the controller; returns the packet it completes, if any.
    pub fn push(&mut self, byte: u8) -> Option<Packet<'_>> {
        match self.state {
            State::Type => {
                let kind = match byte {
                    H4_EVENT => Kind::Event,
                    H4_ACL => Kind::Acl,
                    H4_SCO => Kind::Sco,
                    H4_ISO => Kind::Iso,
                    // Includes H4_COMMAND, which only the host sends. Dropping a single byte
                    // and looking again is the only resync H4 offers.
                    _ => {
                        self.stats.bad_type = self.stats.bad_type.saturating_add(1);
                        return None;
                    }
                };
                self.pos = 0;
                self.state = State::Header(kind);
                None
            }
            State::Header(kind) => {
                self.store(byte)?;
                if self.pos < kind.header_len() {
                    return None;
                }
                self.header_done(kind)
            }
            State::Body { kind, total } => {
                self.store(byte)?;
                if self.pos < total {
                    return None;
                }
                self.complete(kind)
            }
            State::Discard(left) => {
                self.state = match left.saturating_sub(1) {
                    0 => State::Type,
                    rest => State::Discard(rest),
                };
                None
            }
        }
    }

    /// Appends a byte to the current packet. The states bound `pos` below `BUF_LEN`, so the
    /// `None` path is unreachable; if it were ever hit, the packet is dropped rather than the
    /// program stopped.
    fn store(&mut self, byte: u8) -> Option<()> {
        match self.buf.get_mut(self.pos) {
            Some(slot) => {
                *slot = byte;
                self.pos += 1;
                Some(())
            }
            None => {
                self.stats.oversized = self.stats.oversized.saturating_add(1);
                self.state = State::Type;
                self.pos = 0;
                None
            }
        }
    }

    /// The header of a `kind` packet is in `buf`: decides to keep, drop or finish it.
    fn header_done(&mut self, kind: Kind) -> Option<Packet<'_>> {
        let hdr = kind.header_len();
        let body = match (kind, self.buf) {
            (Kind::Event, [_, len, ..]) => usize::from(len),
            (Kind::Acl, [_, _, lo, hi, ..]) => usize::from(u16::from_le_bytes([lo, hi])),
            (Kind::Sco, [_, _, len, ..]) => usize::from(len),
            (Kind::Iso, [_, _, lo, hi, ..]) => {
                usize::from(u16::from_le_bytes([lo, hi]) & ISO_LEN_MASK)
            }
        };
        let keep = match kind {
            Kind::Event => true, // A u8 length always fits.
            Kind::Acl if body <= ACL_MAX_DATA => true,
            Kind::Acl => {
                self.stats.oversized = self.stats.oversized.saturating_add(1);
                false
            }
            Kind::Sco | Kind::Iso => {
                self.stats.skipped = self.stats.skipped.saturating_add(1);
                false
            }
        };
        if !keep {
            // Counted as soon as the header says so; the body is still consumed so the next
            // packet's type byte is found where it belongs.
            self.pos = 0;
            self.state = if body == 0 {
                State::Type
            } else {
                State::Discard(body)
            };
            return None;
        }
        if body == 0 {
            return self.complete(kind);
        }
        self.state = State::Body {
            kind,
            total: hdr + body,
        };
        None
    }

    /// The packet in `buf[..pos]` is whole: hands it out and waits for the next one.
    fn complete(&mut self, kind: Kind) -> Option<Packet<'_>> {
        let len = self.pos;
        self.pos = 0;
        self.state = State::Type;
        let pkt = self.buf.get(..len)?;
        match kind {
            Kind::Event => Some(Packet::Event(pkt)),
            Kind::Acl => Some(Packet::Acl(pkt)),
            // Never kept, so never completed; dropping is the safe answer anyway.
            Kind::Sco | Kind::Iso => None,
        }
    }
}

/// Writes `cmd` (opcode LE, parameter length, parameters, as NimBLE builds it) to `out` behind
/// the [`H4_COMMAND`] byte; returns the bytes written.
///
/// `None` if `cmd` is malformed (shorter than its 3-byte header, or its length byte disagrees
/// with the parameters present) or `out` is too small.
pub fn frame_command(cmd: &[u8], out: &mut [u8]) -> Option<usize> {
    let [_, _, param_len, params @ ..] = cmd else {
        return None;
    };
    if usize::from(*param_len) != params.len() {
        return None;
    }
    frame(H4_COMMAND, cmd, out)
}

/// Writes `acl` (4-byte header, then data) to `out` behind the [`H4_ACL`] byte; returns the
/// bytes written.
///
/// `None` if `acl` is malformed (shorter than its header, or the header's data length
/// disagrees with the data present) or `out` is too small.
pub fn frame_acl(acl: &[u8], out: &mut [u8]) -> Option<usize> {
    let [_, _, lo, hi, data @ ..] = acl else {
        return None;
    };
    if usize::from(u16::from_le_bytes([*lo, *hi])) != data.len() {
        return None;
    }
    frame(H4_ACL, acl, out)
}

/// Writes `kind` then `pkt` to the start of `out`.
fn frame(kind: u8, pkt: &[u8], out: &mut [u8]) -> Option<usize> {
    let (first, rest) = out.split_first_mut()?;
    let dst = rest.get_mut(..pkt.len())?;
    *first = kind;
    dst.copy_from_slice(pkt);
    Some(pkt.len() + 1)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// An owned copy of a parsed packet, so tests can keep it past the next push.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Owned {
        Event(Vec<u8>),
        Acl(Vec<u8>),
    }

    fn own(p: Packet<'_>) -> Owned {
        match p {
            Packet::Event(b) => Owned::Event(b.to_vec()),
            Packet::Acl(b) => Owned::Acl(b.to_vec()),
        }
    }

    fn feed(p: &mut H4Parser, bytes: &[u8]) -> Vec<Owned> {
        bytes.iter().filter_map(|&b| p.push(b).map(own)).collect()
    }

    /// An event's H4 bytes and the expected parsed packet.
    fn event(code: u8, params: &[u8]) -> (Vec<u8>, Owned) {
        let mut pkt = vec![code, params.len() as u8];
        pkt.extend_from_slice(params);
        let mut wire = vec![H4_EVENT];
        wire.extend_from_slice(&pkt);
        (wire, Owned::Event(pkt))
    }

    /// An ACL packet's H4 bytes and the expected parsed packet.
    fn acl(handle: u16, data: &[u8]) -> (Vec<u8>, Owned) {
        let mut pkt = handle.to_le_bytes().to_vec();
        pkt.extend_from_slice(&(data.len() as u16).to_le_bytes());
        pkt.extend_from_slice(data);
        let mut wire = vec![H4_ACL];
        wire.extend_from_slice(&pkt);
        (wire, Owned::Acl(pkt))
    }

    /// Command Complete for HCI_Reset, status 0.
    const RESET_COMPLETE: [u8; 7] = [H4_EVENT, 0x0e, 0x04, 0x01, 0x03, 0x0c, 0x00];

    #[test]
    fn single_event() {
        let mut p = H4Parser::new();
        for &b in &RESET_COMPLETE[..RESET_COMPLETE.len() - 1] {
            assert_eq!(p.push(b), None);
        }
        assert_eq!(p.push(0x00), Some(Packet::Event(&RESET_COMPLETE[1..])));
        assert_eq!(p.stats(), H4Stats::default());
    }

    #[test]
    fn event_split_across_pushes() {
        let mut p = H4Parser::new();
        let (wire, want) = event(0x0f, &[0x00, 0x01, 0x05, 0x04]);
        let (a, b) = wire.split_at(3);
        assert!(feed(&mut p, a).is_empty());
        assert_eq!(feed(&mut p, b), vec![want]);
    }

    #[test]
    fn event_without_params() {
        let mut p = H4Parser::new();
        let (wire, want) = event(0x1a, &[]);
        assert_eq!(feed(&mut p, &wire), vec![want]);
    }

    #[test]
    fn back_to_back_packets() {
        let mut p = H4Parser::new();
        let (e1, w1) = event(0x0e, &[1, 2, 3]);
        let (a1, w2) = acl(0x2001, &[9, 8, 7, 6, 5]);
        let (e2, w3) = event(0x3e, &[0x02, 1]);
        let (a2, w4) = acl(0x1002, &[]);
        let stream: Vec<u8> = [e1, a1, e2, a2].concat();
        assert_eq!(feed(&mut p, &stream), vec![w1, w2, w3, w4]);
        assert_eq!(p.stats(), H4Stats::default());
    }

    #[test]
    fn max_length_event() {
        let mut p = H4Parser::new();
        let params: Vec<u8> = (0..255u32).map(|i| i as u8).collect();
        let (wire, want) = event(0x3e, &params);
        assert_eq!(wire.len(), 258);
        let got = feed(&mut p, &wire);
        assert_eq!(got, vec![want]);
        if let Owned::Event(ev) = &got[0] {
            assert_eq!(ev.len(), 257);
        }
        // And the parser is ready for more.
        assert_eq!(feed(&mut p, &RESET_COMPLETE).len(), 1);
    }

    #[test]
    fn acl_zero_length() {
        let mut p = H4Parser::new();
        let (wire, want) = acl(0x0040, &[]);
        assert_eq!(wire.len(), 5);
        assert_eq!(feed(&mut p, &wire), vec![want]);
    }

    #[test]
    fn acl_max_length() {
        let mut p = H4Parser::new();
        let data: Vec<u8> = (0..ACL_MAX_DATA).map(|i| (i * 7) as u8).collect();
        let (wire, want) = acl(0x0fff, &data);
        assert_eq!(feed(&mut p, &wire), vec![want]);
        assert_eq!(p.stats().oversized, 0);
    }

    #[test]
    fn oversized_acl_is_dropped_and_stream_continues() {
        let mut p = H4Parser::new();
        // Its body is full of plausible type bytes, which must not be taken for packets.
        let data = vec![H4_EVENT; ACL_MAX_DATA + 1];
        let (big, _) = acl(0x0001, &data);
        let (ev, want) = event(0x13, &[1, 1, 0, 1, 0]);
        let stream: Vec<u8> = [big, ev].concat();
        assert_eq!(feed(&mut p, &stream), vec![want]);
        assert_eq!(
            p.stats(),
            H4Stats {
                oversized: 1,
                ..H4Stats::default()
            }
        );
    }

    #[test]
    fn largest_declared_acl_is_consumed() {
        let mut p = H4Parser::new();
        let mut stream = vec![H4_ACL, 0x01, 0x00, 0xff, 0xff];
        stream.extend(core::iter::repeat_n(0xaa, 0xffff));
        stream.extend_from_slice(&RESET_COMPLETE);
        assert_eq!(
            feed(&mut p, &stream),
            vec![Owned::Event(RESET_COMPLETE[1..].to_vec())]
        );
        assert_eq!(p.stats().oversized, 1);
    }

    #[test]
    fn garbage_before_packet_resyncs() {
        let mut p = H4Parser::new();
        let mut stream = vec![0x00, 0xff, 0x42, H4_COMMAND, 0x06];
        stream.extend_from_slice(&RESET_COMPLETE);
        assert_eq!(
            feed(&mut p, &stream),
            vec![Owned::Event(RESET_COMPLETE[1..].to_vec())]
        );
        assert_eq!(
            p.stats(),
            H4Stats {
                bad_type: 5,
                ..H4Stats::default()
            }
        );
    }

    #[test]
    fn garbage_between_packets() {
        let mut p = H4Parser::new();
        let (ev, want) = event(0x05, &[0, 0x40, 0, 0x13]);
        let stream: Vec<u8> = [&RESET_COMPLETE[..], &[0x80, 0x00], &ev].concat();
        assert_eq!(
            feed(&mut p, &stream),
            vec![Owned::Event(RESET_COMPLETE[1..].to_vec()), want]
        );
        assert_eq!(p.stats().bad_type, 2);
    }

    #[test]
    fn sco_is_skipped() {
        let mut p = H4Parser::new();
        let stream: Vec<u8> = [&[H4_SCO, 0x01, 0x00, 0x03, 4, 4, 4][..], &RESET_COMPLETE].concat();
        assert_eq!(
            feed(&mut p, &stream),
            vec![Owned::Event(RESET_COMPLETE[1..].to_vec())]
        );
        assert_eq!(
            p.stats(),
            H4Stats {
                skipped: 1,
                ..H4Stats::default()
            }
        );
    }

    #[test]
    fn empty_sco_and_iso_are_skipped() {
        let mut p = H4Parser::new();
        let stream: Vec<u8> = [
            &[H4_SCO, 0x01, 0x00, 0x00][..],
            &[H4_ISO, 0x01, 0x00, 0x00, 0x00],
            &RESET_COMPLETE,
        ]
        .concat();
        assert_eq!(feed(&mut p, &stream).len(), 1);
        assert_eq!(p.stats().skipped, 2);
    }

    #[test]
    fn iso_is_skipped_using_14_bit_length() {
        let mut p = H4Parser::new();
        // Length field 0xc003: the reserved top bits are set, the length is 3.
        let stream: Vec<u8> = [
            &[H4_ISO, 0x01, 0x00, 0x03, 0xc0, 4, 4, 4][..],
            &RESET_COMPLETE,
        ]
        .concat();
        assert_eq!(
            feed(&mut p, &stream),
            vec![Owned::Event(RESET_COMPLETE[1..].to_vec())]
        );
        assert_eq!(
            p.stats(),
            H4Stats {
                skipped: 1,
                ..H4Stats::default()
            }
        );
    }

    #[test]
    fn large_iso_is_skipped_not_oversized() {
        let mut p = H4Parser::new();
        let mut stream = vec![H4_ISO, 0x01, 0x00, 0xff, 0x3f];
        stream.extend(core::iter::repeat_n(H4_EVENT, 0x3fff));
        stream.extend_from_slice(&RESET_COMPLETE);
        assert_eq!(feed(&mut p, &stream).len(), 1);
        assert_eq!(
            p.stats(),
            H4Stats {
                skipped: 1,
                ..H4Stats::default()
            }
        );
    }

    #[test]
    fn reset_mid_packet() {
        let mut p = H4Parser::new();
        assert!(feed(&mut p, &[0x00, H4_EVENT, 0x0e, 0x04, 0x01]).is_empty());
        assert_eq!(p.stats().bad_type, 1);
        p.reset();
        assert_eq!(p.stats(), H4Stats::default());
        assert_eq!(
            feed(&mut p, &RESET_COMPLETE),
            vec![Owned::Event(RESET_COMPLETE[1..].to_vec())]
        );
    }

    #[test]
    fn reset_mid_discard() {
        let mut p = H4Parser::new();
        assert!(feed(&mut p, &[H4_SCO, 0x01, 0x00, 0x10, 1, 2]).is_empty());
        p.reset();
        assert_eq!(feed(&mut p, &RESET_COMPLETE).len(), 1);
    }

    #[test]
    fn default_is_new() {
        let mut p = H4Parser::default();
        assert_eq!(p.stats(), H4Stats::default());
        assert_eq!(feed(&mut p, &RESET_COMPLETE).len(), 1);
    }

    #[test]
    fn parser_can_live_in_a_static() {
        static P: std::sync::Mutex<H4Parser> = std::sync::Mutex::new(H4Parser::new());
        let mut p = P.lock().unwrap();
        assert_eq!(feed(&mut p, &RESET_COMPLETE).len(), 1);
    }

    #[test]
    fn frame_command_ok() {
        let cmd = [0x03, 0x0c, 0x00]; // HCI_Reset
        let mut out = [0u8; 8];
        assert_eq!(frame_command(&cmd, &mut out), Some(4));
        assert_eq!(out[..4], [H4_COMMAND, 0x03, 0x0c, 0x00]);

        let cmd = [0x01, 0x20, 0x03, 0xaa, 0xbb, 0xcc];
        let mut out = [0u8; 7];
        assert_eq!(frame_command(&cmd, &mut out), Some(7));
        assert_eq!(out, [H4_COMMAND, 0x01, 0x20, 0x03, 0xaa, 0xbb, 0xcc]);
    }

    #[test]
    fn frame_command_max_params() {
        let mut cmd = vec![0x08, 0x20, 0xff];
        cmd.extend(core::iter::repeat_n(0x5a, 255));
        let mut out = vec![0u8; 259];
        assert_eq!(frame_command(&cmd, &mut out), Some(259));
        assert_eq!(out[0], H4_COMMAND);
        assert_eq!(out[1..], cmd[..]);
    }

    #[test]
    fn frame_command_rejects_malformed() {
        let mut out = [0u8; 16];
        assert_eq!(frame_command(&[], &mut out), None);
        assert_eq!(frame_command(&[0x03, 0x0c], &mut out), None);
        assert_eq!(frame_command(&[0x03, 0x0c, 0x01], &mut out), None);
        assert_eq!(frame_command(&[0x03, 0x0c, 0x00, 0x00], &mut out), None);
        assert_eq!(frame_command(&[0x03, 0x0c, 0x02, 0x00], &mut out), None);
        assert_eq!(out, [0u8; 16], "nothing written on refusal");
    }

    #[test]
    fn frame_command_rejects_small_output() {
        let cmd = [0x03, 0x0c, 0x01, 0x00];
        assert_eq!(frame_command(&cmd, &mut []), None);
        assert_eq!(frame_command(&cmd, &mut [0u8; 4]), None);
        assert_eq!(frame_command(&cmd, &mut [0u8; 5]), Some(5));
    }

    #[test]
    fn frame_acl_ok() {
        let (wire, Owned::Acl(pkt)) = acl(0x2001, &[1, 2, 3]) else {
            unreachable!()
        };
        let mut out = [0u8; 16];
        assert_eq!(frame_acl(&pkt, &mut out), Some(8));
        assert_eq!(out[..8], wire[..]);

        let empty = [0x01, 0x20, 0x00, 0x00];
        assert_eq!(frame_acl(&empty, &mut out), Some(5));
        assert_eq!(out[..5], [H4_ACL, 0x01, 0x20, 0x00, 0x00]);
    }

    #[test]
    fn frame_acl_rejects_malformed_and_small_output() {
        let mut out = [0u8; 16];
        assert_eq!(frame_acl(&[], &mut out), None);
        assert_eq!(frame_acl(&[0x01, 0x20, 0x00], &mut out), None);
        assert_eq!(frame_acl(&[0x01, 0x20, 0x01, 0x00], &mut out), None);
        assert_eq!(frame_acl(&[0x01, 0x20, 0x00, 0x00, 0x99], &mut out), None);
        // Length 0x0100 must not be read as 0x01.
        assert_eq!(frame_acl(&[0x01, 0x20, 0x01, 0x01, 0x99], &mut out), None);
        assert_eq!(out, [0u8; 16]);
        let pkt = [0x01, 0x20, 0x02, 0x00, 0xaa, 0xbb];
        assert_eq!(frame_acl(&pkt, &mut [0u8; 6]), None);
        assert_eq!(frame_acl(&pkt, &mut [0u8; 7]), Some(7));
    }

    #[test]
    fn framed_packets_parse_back() {
        let mut p = H4Parser::new();
        let pkt = [0x40, 0x00, 0x03, 0x00, 7, 8, 9];
        let mut out = [0u8; 8];
        let n = frame_acl(&pkt, &mut out).unwrap();
        assert_eq!(feed(&mut p, &out[..n]), vec![Owned::Acl(pkt.to_vec())]);
    }

    /// A tiny LCG, enough to shake the state machine without extra crates.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u8 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as u8
        }
    }

    #[test]
    fn random_stream_never_panics() {
        for seed in 0..8u64 {
            let mut rng = Lcg(seed);
            let mut p = H4Parser::new();
            let mut packets = 0u32;
            for i in 0..200_000u32 {
                // Bias toward valid type bytes and small lengths now and then, so the
                // parser spends time in every state rather than mostly resyncing.
                let b = match rng.next() % 8 {
                    0 => H4_EVENT,
                    1 => H4_ACL,
                    2 => H4_ISO,
                    3 => H4_SCO,
                    4 => rng.next() % 4,
                    _ => rng.next(),
                };
                if let Some(pkt) = p.push(b) {
                    packets += 1;
                    match pkt {
                        Packet::Event(ev) => {
                            assert!(ev.len() >= 2);
                            assert_eq!(ev.len(), 2 + usize::from(ev[1]));
                        }
                        Packet::Acl(a) => {
                            assert!(a.len() >= 4);
                            let n = usize::from(u16::from_le_bytes([a[2], a[3]]));
                            assert!(n <= ACL_MAX_DATA);
                            assert_eq!(a.len(), 4 + n);
                        }
                    }
                }
                if i % 50_000 == 25_000 && seed & 1 == 0 {
                    p.reset();
                }
            }
            assert!(packets > 0);
            let s = p.stats();
            assert!(s.bad_type > 0 || s.skipped > 0 || s.oversized > 0);
        }
    }

    #[test]
    fn random_packets_round_trip_with_noise() {
        // Valid packets with junk (never a type byte) between them all come back intact.
        let mut rng = Lcg(42);
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for _ in 0..500 {
            for _ in 0..rng.next() % 3 {
                stream.push(0x06 | (rng.next() & 0xf8));
            }
            let len = usize::from(rng.next());
            let body: Vec<u8> = (0..len).map(|_| rng.next()).collect();
            let (wire, owned) = if rng.next() & 1 == 0 {
                event(rng.next(), &body)
            } else {
                acl(u16::from(rng.next()), &body)
            };
            stream.extend_from_slice(&wire);
            want.push(owned);
        }
        let mut p = H4Parser::new();
        assert_eq!(feed(&mut p, &stream), want);
        assert_eq!(p.stats().oversized, 0);
        assert_eq!(p.stats().skipped, 0);
    }
}
