//! Fuzzes the H4 parser against a plain whole-buffer model of the framing: for any byte
//! stream the parser must hand out exactly the events and ACL packets the model finds, in
//! order, count the same drops, and never panic or read out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ubluetooth::hci::h4::{H4Parser, H4Stats, Packet, ACL_MAX_DATA};

#[derive(Debug, PartialEq, Eq)]
enum Got {
    Event(Vec<u8>),
    Acl(Vec<u8>),
}

/// The framing as the specification states it, over the whole input at once. Returns the
/// packets and the drop counters; a packet cut off by the end of input yields nothing.
fn model(data: &[u8]) -> (Vec<Got>, H4Stats) {
    let mut out = Vec::new();
    let mut stats = H4Stats::default();
    let mut i = 0;
    while i < data.len() {
        let kind = data[i];
        i += 1;
        // (header length, body length from the header)
        let header = |h: usize| data.get(i..i + h);
        let (hdr, body, keep) = match kind {
            0x04 => match header(2) {
                Some(h) => (2, usize::from(h[1]), true),
                None => break,
            },
            0x02 => match header(4) {
                Some(h) => {
                    let len = usize::from(u16::from_le_bytes([h[2], h[3]]));
                    if len > ACL_MAX_DATA {
                        stats.oversized += 1;
                    }
                    (4, len, len <= ACL_MAX_DATA)
                }
                None => break,
            },
            0x03 => match header(3) {
                Some(h) => {
                    stats.skipped += 1;
                    (3, usize::from(h[2]), false)
                }
                None => break,
            },
            0x05 => match header(4) {
                Some(h) => {
                    stats.skipped += 1;
                    (
                        4,
                        usize::from(u16::from_le_bytes([h[2], h[3]]) & 0x3fff),
                        false,
                    )
                }
                None => break,
            },
            _ => {
                stats.bad_type += 1;
                continue;
            }
        };
        let Some(pkt) = data.get(i..i + hdr + body) else {
            break;
        };
        i += hdr + body;
        if keep {
            out.push(if kind == 0x04 {
                Got::Event(pkt.to_vec())
            } else {
                Got::Acl(pkt.to_vec())
            });
        }
    }
    (out, stats)
}

fuzz_target!(|data: &[u8]| {
    let mut parser = H4Parser::new();
    let mut got = Vec::new();
    for &b in data {
        match parser.push(b) {
            Some(Packet::Event(e)) => got.push(Got::Event(e.to_vec())),
            Some(Packet::Acl(a)) => got.push(Got::Acl(a.to_vec())),
            None => {}
        }
    }
    let (want, stats) = model(data);
    assert_eq!(got, want);
    assert_eq!(parser.stats(), stats);
    // After a reset the parser starts clean: the same input gives the same result again.
    parser.reset();
    let again: usize = data.iter().filter(|&&b| parser.push(b).is_some()).count();
    assert_eq!(again, want.len());
});
