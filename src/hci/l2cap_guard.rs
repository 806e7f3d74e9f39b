//! The L2CAP signalling a peer may not bring into NimBLE: checks on ACL data from the
//! controller, before the host sees it, for requests our NimBLE tree acts on unsafely.
//!
//! NimBLE's LE signalling handler answers a Disconnection Request by deleting whichever of
//! the link's channels has the CIDs named, fixed channels included. Naming the signalling
//! channel itself (0x0005) frees it while its own packet is being handled, and the firmware
//! crashes; naming ATT (0x0004) or SMP (0x0006) leaves the link without them. One packet from
//! anyone in radio range does it, with no pairing. Only dynamic channels (0x0040 and up) can
//! be disconnected (Core Vol 3 Part A 4.6), so a request naming a lower CID is kept from the
//! host here, and the host layer answers it as the specification says: a Command Reject,
//! "invalid CID in request".
//!
//! The check needs the whole command, so a signalling packet has to arrive in one ACL
//! fragment: every LE signalling command fits the smallest one (27 bytes), and hosts send
//! whole fragments. A signalling packet split over several is dropped: NimBLE then discards
//! its continuations, as it does any continuation without a start.

/// A Disconnection Request for a fixed channel, and what its Command Reject must echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedChannelDisconnect {
    /// The link it came on.
    pub conn_handle: u16,
    /// The request's identifier, which the reject repeats.
    pub identifier: u8,
    /// The channel named on our side.
    pub dcid: u16,
    /// The channel named on the peer's side.
    pub scid: u16,
}

/// Why a packet from the controller was kept from the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A Disconnection Request for a fixed channel: to be answered with a Command Reject.
    FixedChannelDisconnect(FixedChannelDisconnect),
    /// A signalling packet that does not arrive whole in its first fragment.
    FragmentedSignaling,
}

const ACL_HEADER_LEN: usize = 4;
const L2CAP_HEADER_LEN: usize = 4;
/// The Packet Boundary flag of a first, automatically flushable fragment: the only kind of
/// first fragment the host takes.
const PB_FIRST_FLUSHABLE: u16 = 0b10;
const CID_LE_SIGNALING: u16 = 0x0005;
const SIG_DISCONNECTION_REQUEST: u8 = 0x06;
/// Fixed channels take the CIDs below this (Core Vol 3 Part A 2.1).
const FIRST_DYNAMIC_CID: u16 = 0x0040;

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Whether the ACL packet `acl` (HCI ACL header and data) must be kept from the host.
pub fn refusal(acl: &[u8]) -> Option<Refusal> {
    let handle_flags = le16(acl, 0)?;
    if (handle_flags >> 12) & 0b11 != PB_FIRST_FLUSHABLE {
        return None;
    }
    let data_len = usize::from(le16(acl, 2)?);
    let data = acl.get(ACL_HEADER_LEN..)?;
    let data = &data[..data_len.min(data.len())];
    let l2cap_len = usize::from(le16(data, 0)?);
    if le16(data, 2)? != CID_LE_SIGNALING {
        return None;
    }
    let payload = &data[L2CAP_HEADER_LEN..];
    let Some(command) = payload.get(..l2cap_len) else {
        return Some(Refusal::FragmentedSignaling);
    };
    // Code, identifier, length, then the Disconnection Request's DCID (the channel on our
    // side) and SCID.
    if command.first() == Some(&SIG_DISCONNECTION_REQUEST) {
        if let (Some(dcid), Some(scid)) = (le16(command, 4), le16(command, 6)) {
            if dcid < FIRST_DYNAMIC_CID {
                return Some(Refusal::FixedChannelDisconnect(FixedChannelDisconnect {
                    conn_handle: handle_flags & 0x0fff,
                    identifier: command[1],
                    dcid,
                    scid,
                }));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ACL packet with handle 1 and Packet Boundary flag `pb` carrying `data`.
    fn acl(pb: u16, data: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend((1u16 | pb << 12).to_le_bytes());
        p.extend((data.len() as u16).to_le_bytes());
        p.extend_from_slice(data);
        p
    }

    /// A whole L2CAP PDU on `cid`.
    fn l2cap(cid: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend((payload.len() as u16).to_le_bytes());
        p.extend(cid.to_le_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn disconnect_request(dcid: u16, scid: u16) -> Vec<u8> {
        let mut c = vec![SIG_DISCONNECTION_REQUEST, 7, 4, 0];
        c.extend(dcid.to_le_bytes());
        c.extend(scid.to_le_bytes());
        c
    }

    #[test]
    fn disconnecting_a_fixed_channel_is_refused() {
        for cid in [0x0004, 0x0005, 0x0006, 0x0000, 0x003f] {
            let p = acl(2, &l2cap(5, &disconnect_request(cid, 0x0041)));
            let want = FixedChannelDisconnect {
                conn_handle: 1,
                identifier: 7,
                dcid: cid,
                scid: 0x0041,
            };
            assert_eq!(
                refusal(&p),
                Some(Refusal::FixedChannelDisconnect(want)),
                "{cid:#x}"
            );
        }
    }

    #[test]
    fn disconnecting_a_dynamic_channel_goes_through() {
        let p = acl(2, &l2cap(5, &disconnect_request(0x0040, 0x0041)));
        assert_eq!(refusal(&p), None);
        let p = acl(2, &l2cap(5, &disconnect_request(0xffff, 0x0005)));
        assert_eq!(refusal(&p), None);
    }

    #[test]
    fn other_channels_and_commands_go_through() {
        // The same bytes on ATT, and other signalling commands.
        assert_eq!(refusal(&acl(2, &l2cap(4, &disconnect_request(5, 5)))), None);
        let conn_req = [0x14, 1, 10, 0, 0x80, 0, 0x40, 0, 0xc2, 1, 0x17, 0, 1, 0];
        assert_eq!(refusal(&acl(2, &l2cap(5, &conn_req))), None);
        // A Disconnection Request too short to name both channels: NimBLE refuses it itself.
        assert_eq!(
            refusal(&acl(2, &l2cap(5, &[SIG_DISCONNECTION_REQUEST, 1, 2, 0, 5]))),
            None
        );
        assert_eq!(refusal(&acl(2, &l2cap(5, &[]))), None);
    }

    #[test]
    fn a_signalling_packet_split_over_fragments_is_refused() {
        let pdu = l2cap(5, &disconnect_request(5, 5));
        assert_eq!(
            refusal(&acl(2, &pdu[..7])),
            Some(Refusal::FragmentedSignaling)
        );
        // Continuations are left to NimBLE, which drops them without their start.
        assert_eq!(refusal(&acl(1, &pdu[7..])), None);
        // An ATT PDU may be split.
        assert_eq!(refusal(&acl(2, &l2cap(4, &[0x0a; 40])[..27])), None);
    }

    #[test]
    fn short_or_odd_packets_are_left_to_the_host() {
        assert_eq!(refusal(&[]), None);
        assert_eq!(refusal(&[1, 0x20]), None);
        assert_eq!(refusal(&acl(2, &[4, 0, 5])), None);
        // A first non-flushable fragment: the host drops those itself.
        assert_eq!(refusal(&acl(0, &l2cap(5, &disconnect_request(5, 5)))), None);
        // Data beyond the ACL header's length is not looked at.
        let mut p = acl(2, &l2cap(5, &disconnect_request(0x40, 0x40)));
        p[2] = 7;
        assert_eq!(refusal(&p), Some(Refusal::FragmentedSignaling));
    }
}
