//! The Bluetooth UUID value behind MicroPython's `bluetooth.UUID`.
//!
//! This file owns the value type ([`Uuid`]) and every piece of `UUID` behaviour that does not
//! need the Python runtime: construction from an int or a buffer (raw bytes or a 128-bit hex
//! string), hashing, ordering and the `repr` text. The rules follow MicroPython v1.25 so that
//! scripts behave the same as on the upstream ports, quirks included (see [`Uuid::mp_cmp`]).

use core::cmp::Ordering;
use core::fmt;

/// A 16-, 32- or 128-bit Bluetooth UUID.
///
/// `#[repr(C)]` because the C shim reads it directly. The value is stored little-endian, as
/// it travels over the air, and bytes past `len` are always zero so the derived equality
/// matches MicroPython's.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uuid {
    /// Size of the value in bytes: 2, 4 or 16.
    pub len: u8,
    /// The value, little-endian; bytes from `len` on are zero.
    pub bytes: [u8; 16],
}

/// Why a `UUID(...)` argument was refused; each maps to MicroPython's `ValueError` text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UuidError {
    /// An integer above 65535 ("invalid UUID").
    Invalid,
    /// A string character that is neither a hex digit nor `-` ("invalid char in UUID").
    InvalidChar,
    /// A string with more than 32 hex digits ("UUID too long").
    TooLong,
    /// A string with fewer than 32 hex digits ("UUID too short").
    TooShort,
}

/// Digits of a 128-bit UUID string.
const HEX_DIGITS_128: usize = 32;

/// Number of bytes [`Uuid::format_repr`] can write at most.
const REPR_MAX: usize = 48;

impl Uuid {
    /// A 16-bit UUID, e.g. `Uuid::from_u16(0x180d)` for the Heart Rate service.
    pub const fn from_u16(v: u16) -> Uuid {
        let le = v.to_le_bytes();
        let mut bytes = [0u8; 16];
        bytes[0] = le[0];
        bytes[1] = le[1];
        Uuid { len: 2, bytes }
    }

    /// `UUID(int)`: always a 16-bit UUID.
    ///
    /// Values above 65535 are refused, but negative values are not: MicroPython just keeps
    /// their low 16 bits, so `UUID(-1) == UUID(0xffff)`.
    pub fn from_int(v: i64) -> Result<Uuid, UuidError> {
        if v > 0xffff {
            return Err(UuidError::Invalid);
        }
        // Truncation is the intended (upstream) behaviour for negative values.
        Ok(Uuid::from_u16(v as u16))
    }

    /// `UUID(buffer)`: raw bytes or a 128-bit UUID string.
    ///
    /// A buffer of 2, 4 or 16 bytes is taken as the little-endian value itself, its length
    /// picking the UUID size, even if it happens to be text (`'180d'` is the 32-bit UUID
    /// `0x64303831`). Anything else is parsed as a 128-bit hex string, most significant digit
    /// first: `-` is ignored wherever it appears, any other non-hex character is
    /// [`UuidError::InvalidChar`], a 33rd digit is [`UuidError::TooLong`] at once (before any
    /// later bad character is looked at) and fewer than 32 digits is [`UuidError::TooShort`].
    pub fn from_buffer(buf: &[u8]) -> Result<Uuid, UuidError> {
        if matches!(buf.len(), 2 | 4 | 16) {
            let mut bytes = [0u8; 16];
            let (dst, _) = bytes.split_at_mut(buf.len());
            dst.copy_from_slice(buf);
            // The match above bounds the length to 16, so this cannot truncate.
            return Ok(Uuid {
                len: buf.len() as u8,
                bytes,
            });
        }

        let mut bytes = [0u8; 16];
        // Digits still to come; the first digit read is digit 31, the most significant nibble,
        // which lands in the high half of bytes[15] because the value is stored little-endian.
        let mut left = HEX_DIGITS_128;
        for &c in buf {
            if c == b'-' {
                continue;
            }
            let nibble = hex_value(c).ok_or(UuidError::InvalidChar)?;
            left = left.checked_sub(1).ok_or(UuidError::TooLong)?;
            if let Some(byte) = bytes.get_mut(left / 2) {
                *byte |= if left % 2 == 1 { nibble << 4 } else { nibble };
            }
        }
        if left > 0 {
            return Err(UuidError::TooShort);
        }
        Ok(Uuid { len: 16, bytes })
    }

    /// The value's `len` bytes, little-endian (what the buffer protocol exposes).
    pub fn as_bytes(&self) -> &[u8] {
        // `len` is a public field; clamp it rather than trust it.
        let (value, _) = self
            .bytes
            .split_at(usize::from(self.len).min(self.bytes.len()));
        value
    }

    /// `hash(uuid)`: MicroPython hashes the raw bytes with its qstr hash (djb2, xor variant,
    /// cut to 16 bits, never zero).
    pub fn mp_hash(&self) -> u16 {
        let mut h: u32 = 5381;
        for &b in self.as_bytes() {
            h = h.wrapping_mul(33) ^ u32::from(b);
        }
        // Only the low 16 bits are kept, as with the upstream two-byte qstr hash.
        match (h & 0xffff) as u16 {
            0 => 1, // Zero means "no hash computed" to MicroPython, so it is never produced.
            v => v,
        }
    }

    /// Rich comparison as MicroPython does it.
    ///
    /// UUIDs of different sizes order by size (16-bit < 32-bit < 128-bit). Same-size UUIDs
    /// compare their little-endian bytes lexicographically, so the least significant byte
    /// decides first: `UUID(0x0100) < UUID(0x0001)`.
    pub fn mp_cmp(&self, other: &Uuid) -> Ordering {
        match self.len.cmp(&other.len) {
            Ordering::Equal => self.as_bytes().cmp(other.as_bytes()),
            by_len => by_len,
        }
    }

    /// Writes the `repr` text into `out` and returns its length.
    ///
    /// 16- and 32-bit UUIDs print as a zero-padded lowercase hex int (`UUID(0x180d)`,
    /// `UUID(0x64303831)`); 128-bit ones as the quoted 8-4-4-4-12 string, most significant
    /// byte first (`UUID('6e400001-b5a3-f393-e0a9-e50e24dcca9e')`). 48 bytes always suffice.
    pub fn format_repr(&self, out: &mut [u8; REPR_MAX]) -> usize {
        let mut w = ReprWriter { out, pos: 0 };
        let value = self.as_bytes();
        let short = value.len() <= 4;
        w.put_str(if short { b"UUID(0x" } else { b"UUID('" });
        for (i, &b) in value.iter().rev().enumerate() {
            // Dashes sit before the 5th, 7th, 9th and 11th printed byte (8-4-4-4-12 digits).
            if !short && matches!(i, 4 | 6 | 8 | 10) {
                w.put(b'-');
            }
            w.put(hex_digit(b >> 4));
            w.put(hex_digit(b & 0x0f));
        }
        w.put_str(if short { b")" } else { b"')" });
        w.pos
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; REPR_MAX];
        let n = self.format_repr(&mut buf);
        let text = buf.get(..n).ok_or(fmt::Error)?;
        // format_repr only writes ASCII, so this never fails in practice.
        f.write_str(core::str::from_utf8(text).map_err(|_| fmt::Error)?)
    }
}

/// Appends to a fixed buffer, silently stopping at its end (which the longest repr never
/// reaches) instead of panicking.
struct ReprWriter<'a> {
    out: &'a mut [u8; REPR_MAX],
    pos: usize,
}

impl ReprWriter<'_> {
    fn put(&mut self, b: u8) {
        if let Some(slot) = self.out.get_mut(self.pos) {
            *slot = b;
            self.pos += 1;
        }
    }

    fn put_str(&mut self, s: &[u8]) {
        for &b in s {
            self.put(b);
        }
    }
}

/// The value of an ASCII hex digit (either case).
fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The lowercase hex digit for a nibble (only the low 4 bits are used).
fn hex_digit(nibble: u8) -> u8 {
    let n = nibble & 0x0f;
    if n < 10 {
        b'0' + n
    } else {
        b'a' + (n - 10)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::string::{String, ToString};

    const NUS: &str = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";
    /// NUS's value, little-endian.
    const NUS_LE: [u8; 16] = [
        0x9e, 0xca, 0xdc, 0x24, 0x0e, 0xe5, 0xa9, 0xe0, 0x93, 0xf3, 0xa3, 0xb5, 0x01, 0x00, 0x40,
        0x6e,
    ];

    fn repr(u: &Uuid) -> String {
        let mut buf = [0u8; 48];
        let n = u.format_repr(&mut buf);
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn s(text: &str) -> Result<Uuid, UuidError> {
        Uuid::from_buffer(text.as_bytes())
    }

    #[test]
    fn from_u16_is_16_bit_le() {
        let u = Uuid::from_u16(0x180d);
        assert_eq!(u.len, 2);
        assert_eq!(u.as_bytes(), &[0x0d, 0x18]);
        assert!(u.bytes[2..].iter().all(|&b| b == 0));
    }

    #[test]
    fn from_u16_is_const() {
        const HR: Uuid = Uuid::from_u16(0x180d);
        assert_eq!(HR, Uuid::from_u16(0x180d));
    }

    #[test]
    fn from_int_range() {
        assert_eq!(Uuid::from_int(0x180d), Ok(Uuid::from_u16(0x180d)));
        assert_eq!(Uuid::from_int(0), Ok(Uuid::from_u16(0)));
        assert_eq!(Uuid::from_int(65535), Ok(Uuid::from_u16(0xffff)));
        assert_eq!(Uuid::from_int(65536), Err(UuidError::Invalid));
        assert_eq!(Uuid::from_int(0x1_0000_180d), Err(UuidError::Invalid));
        assert_eq!(Uuid::from_int(i64::MAX), Err(UuidError::Invalid));
    }

    #[test]
    fn from_int_negative_keeps_low_16_bits() {
        assert_eq!(Uuid::from_int(-1), Ok(Uuid::from_u16(0xffff)));
        assert_eq!(Uuid::from_int(-2), Ok(Uuid::from_u16(0xfffe)));
        assert_eq!(Uuid::from_int(-65536), Ok(Uuid::from_u16(0)));
        assert_eq!(Uuid::from_int(-65536 + 0x180d), Ok(Uuid::from_u16(0x180d)));
        assert_eq!(Uuid::from_int(i64::MIN), Ok(Uuid::from_u16(0)));
        assert_eq!(Uuid::from_int(-1).unwrap().len, 2);
    }

    #[test]
    fn two_raw_bytes_are_16_bit() {
        assert_eq!(Uuid::from_buffer(b"\x0d\x18"), Ok(Uuid::from_u16(0x180d)));
    }

    #[test]
    fn four_raw_bytes_are_32_bit_even_if_text() {
        let u = s("180d").unwrap();
        assert_eq!(u.len, 4);
        assert_eq!(u.as_bytes(), b"180d");
        assert_eq!(u.bytes[4..], [0u8; 12]);
        assert_eq!(repr(&u), "UUID(0x64303831)");
        assert_eq!(
            Uuid::from_buffer(&[0x78, 0x56, 0x34, 0x12]).map(|u| repr(&u)),
            Ok("UUID(0x12345678)".into())
        );
    }

    #[test]
    fn sixteen_raw_bytes_are_128_bit() {
        let u = Uuid::from_buffer(&NUS_LE).unwrap();
        assert_eq!(u.len, 16);
        assert_eq!(u.bytes, NUS_LE);
        assert_eq!(u.as_bytes(), &NUS_LE);
        assert_eq!(repr(&u), "UUID('6e400001-b5a3-f393-e0a9-e50e24dcca9e')");
        // Sixteen characters are raw bytes too, never parsed as hex.
        let t = s("0123456789abcdef").unwrap();
        assert_eq!(t.as_bytes(), b"0123456789abcdef");
    }

    #[test]
    fn hex_prefix_is_invalid_char() {
        // Six bytes: not a raw length, so it is parsed as a string and 'x' is refused.
        assert_eq!(s("0x180d"), Err(UuidError::InvalidChar));
    }

    #[test]
    fn odd_raw_length_is_parsed_as_string() {
        assert_eq!(
            Uuid::from_buffer(b"\x01\x02\x03"),
            Err(UuidError::InvalidChar)
        );
        assert_eq!(Uuid::from_buffer(b"\x01"), Err(UuidError::InvalidChar));
        assert_eq!(
            Uuid::from_buffer(b"\xff\xfe\xfd"),
            Err(UuidError::InvalidChar)
        );
    }

    #[test]
    fn string_parses_most_significant_first() {
        let u = s(NUS).unwrap();
        assert_eq!(u.len, 16);
        assert_eq!(u.bytes, NUS_LE);
        assert_eq!(u.bytes[15], 0x6e);
        assert_eq!(u.bytes[0], 0x9e);
    }

    #[test]
    fn string_round_trips_through_repr() {
        let u = s(NUS).unwrap();
        let r = repr(&u);
        assert_eq!(r, "UUID('6e400001-b5a3-f393-e0a9-e50e24dcca9e')");
        let inner = r
            .strip_prefix("UUID('")
            .unwrap()
            .strip_suffix("')")
            .unwrap();
        assert_eq!(s(inner), Ok(u));
    }

    #[test]
    fn dashes_anywhere_any_count() {
        let want = s(NUS).unwrap();
        assert_eq!(s("6e40-0001b5a3f393e0a9e50e24dcca9e---"), Ok(want));
        assert_eq!(s("6e400001b5a3f393e0a9e50e24dcca9e"), Ok(want));
        assert_eq!(s("-6-e-4-0-0-0-0-1-b5a3f393e0a9e50e24dcca9e"), Ok(want));
        assert_eq!(s("--------6e400001b5a3f393e0a9e50e24dcca9e"), Ok(want));
    }

    #[test]
    fn uppercase_and_mixed_case() {
        let want = s(NUS).unwrap();
        assert_eq!(s("6E400001-B5A3-F393-E0A9-E50E24DCCA9E"), Ok(want));
        assert_eq!(s("6e400001-B5a3-f393-E0a9-e50e24DccA9e"), Ok(want));
    }

    #[test]
    fn all_hex_digit_values() {
        let u = s("0123456789abcdefABCDEF0123456789").unwrap();
        assert_eq!(repr(&u), "UUID('01234567-89ab-cdef-abcd-ef0123456789')");
    }

    #[test]
    fn too_long() {
        let d33 = "6e400001b5a3f393e0a9e50e24dcca9e0";
        assert_eq!(d33.len(), 33);
        assert_eq!(s(d33), Err(UuidError::TooLong));
        // The 33rd digit is reported before a later bad character is seen.
        assert_eq!(
            s("6e400001b5a3f393e0a9e50e24dcca9e0x"),
            Err(UuidError::TooLong)
        );
        assert_eq!(
            s("6e400001b5a3f393e0a9e50e24dcca9e0-"),
            Err(UuidError::TooLong)
        );
        assert_eq!(
            s("6e400001-b5a3-f393-e0a9-e50e24dcca9e00000000"),
            Err(UuidError::TooLong)
        );
    }

    #[test]
    fn bad_char_after_32_digits_is_invalid_char() {
        // Exactly 32 digits then junk: the junk is looked at before any 33rd digit.
        assert_eq!(
            s("6e400001b5a3f393e0a9e50e24dcca9ex"),
            Err(UuidError::InvalidChar)
        );
        assert_eq!(
            s("6e400001b5a3f393e0a9e50e24dcca9e "),
            Err(UuidError::InvalidChar)
        );
    }

    #[test]
    fn bad_char_before_too_short_is_invalid_char() {
        assert_eq!(s("6e40g"), Err(UuidError::InvalidChar));
        assert_eq!(
            s("{6e400001-b5a3-f393-e0a9-e50e24dcca9e}"),
            Err(UuidError::InvalidChar)
        );
    }

    #[test]
    fn too_short() {
        let d31 = "6e400001b5a3f393e0a9e50e24dcca9";
        assert_eq!(d31.len(), 31);
        assert_eq!(s(d31), Err(UuidError::TooShort));
        assert_eq!(s(""), Err(UuidError::TooShort));
        assert_eq!(s("-"), Err(UuidError::TooShort));
        assert_eq!(s("---"), Err(UuidError::TooShort));
        assert_eq!(s("abc"), Err(UuidError::TooShort));
        assert_eq!(
            s("6e400001-b5a3-f393-e0a9-e50e24dcca9"),
            Err(UuidError::TooShort)
        );
    }

    #[test]
    fn hash_values() {
        assert_eq!(Uuid::from_u16(0x180d).mp_hash(), 27312);
        // Reference: the djb2-xor loop written out independently.
        fn reference(bytes: &[u8]) -> u16 {
            let mut h: u64 = 5381;
            for &b in bytes {
                // Only the low 16 bits matter, so reducing each step keeps u64 from overflowing.
                h = (((h << 5) + h) ^ u64::from(b)) & 0xffff;
            }
            match h & 0xffff {
                0 => 1,
                v => v as u16,
            }
        }
        for u in [
            Uuid::from_u16(0),
            Uuid::from_u16(0xffff),
            s("180d").unwrap(),
            s(NUS).unwrap(),
        ] {
            assert_eq!(u.mp_hash(), reference(u.as_bytes()));
            assert_ne!(u.mp_hash(), 0);
        }
        // Equal values hash equal whichever way they were built.
        assert_eq!(
            Uuid::from_int(-1).unwrap().mp_hash(),
            Uuid::from_u16(0xffff).mp_hash()
        );
    }

    #[test]
    fn hash_is_never_zero() {
        // No 16-bit UUID hits a raw hash of 0 (mod 2^16); check them all against the formula.
        for v in 0..=u16::MAX {
            let [a, b] = v.to_le_bytes();
            let raw = ((5381u32.wrapping_mul(33) ^ u32::from(a)).wrapping_mul(33) ^ u32::from(b))
                & 0xffff;
            assert_eq!(u32::from(Uuid::from_u16(v).mp_hash()), raw);
        }
        // This 32-bit value's raw hash is exactly 0 (found by search); it must come out as 1.
        let z = Uuid::from_buffer(&[0x00, 0x00, 0x88, 0x0d]).unwrap();
        let raw = [0x00u32, 0x00, 0x88, 0x0d]
            .iter()
            .fold(5381u32, |h, &b| h.wrapping_mul(33) ^ b);
        assert_eq!(raw & 0xffff, 0);
        assert_eq!(z.mp_hash(), 1);
    }

    #[test]
    fn ordering_by_size_first() {
        let u16_ = Uuid::from_u16(0xffff);
        let u32_ = s("0000").unwrap();
        let u128_ = Uuid::from_buffer(&[0u8; 16]).unwrap();
        assert_eq!(u16_.mp_cmp(&u32_), Ordering::Less);
        assert_eq!(u32_.mp_cmp(&u128_), Ordering::Less);
        assert_eq!(u16_.mp_cmp(&u128_), Ordering::Less);
        assert_eq!(u128_.mp_cmp(&u16_), Ordering::Greater);
    }

    #[test]
    fn ordering_same_size_is_le_bytewise() {
        // The quirk: the least significant byte is compared first.
        assert_eq!(
            Uuid::from_u16(0x0100).mp_cmp(&Uuid::from_u16(0x0001)),
            Ordering::Less
        );
        assert_eq!(
            Uuid::from_u16(0x0001).mp_cmp(&Uuid::from_u16(0x0100)),
            Ordering::Greater
        );
        assert_eq!(
            Uuid::from_u16(0x0001).mp_cmp(&Uuid::from_u16(0x0002)),
            Ordering::Less
        );
        assert_eq!(
            Uuid::from_u16(0x180d).mp_cmp(&Uuid::from_u16(0x180d)),
            Ordering::Equal
        );
        let a = s(NUS).unwrap();
        let mut b_bytes = NUS_LE;
        b_bytes[0] = 0x9f;
        let b = Uuid::from_buffer(&b_bytes).unwrap();
        assert_eq!(a.mp_cmp(&b), Ordering::Less);
        assert_eq!(a.mp_cmp(&a), Ordering::Equal);
    }

    #[test]
    fn equality() {
        assert_eq!(
            Uuid::from_u16(0x180d),
            Uuid::from_buffer(b"\x0d\x18").unwrap()
        );
        assert_ne!(Uuid::from_u16(0x180d), Uuid::from_u16(0x0d18));
        // Same leading bytes, different size: not equal.
        assert_ne!(
            Uuid::from_u16(0x180d),
            Uuid::from_buffer(b"\x0d\x18\x00\x00").unwrap()
        );
    }

    #[test]
    fn repr_zero_padding() {
        assert_eq!(repr(&Uuid::from_u16(0x0001)), "UUID(0x0001)");
        assert_eq!(repr(&Uuid::from_u16(0)), "UUID(0x0000)");
        assert_eq!(repr(&Uuid::from_u16(0x180d)), "UUID(0x180d)");
        assert_eq!(repr(&Uuid::from_u16(0xABCD)), "UUID(0xabcd)");
        assert_eq!(
            repr(&Uuid::from_buffer(&[1, 0, 0, 0]).unwrap()),
            "UUID(0x00000001)"
        );
        assert_eq!(
            repr(&Uuid::from_buffer(&[0u8; 16]).unwrap()),
            "UUID('00000000-0000-0000-0000-000000000000')"
        );
    }

    #[test]
    fn display_matches_repr() {
        for u in [Uuid::from_u16(0x2a37), s("180d").unwrap(), s(NUS).unwrap()] {
            assert_eq!(u.to_string(), repr(&u));
        }
    }

    #[test]
    fn malformed_len_field_does_not_panic() {
        // `len` is public; out-of-range values must not make any method panic.
        for len in [0u8, 1, 3, 5, 15, 17, 200, 255] {
            let u = Uuid {
                len,
                bytes: [0xab; 16],
            };
            assert!(u.as_bytes().len() <= 16);
            let mut buf = [0u8; 48];
            let n = u.format_repr(&mut buf);
            assert!(n <= 48);
            let _ = u.mp_hash();
            let _ = u.mp_cmp(&Uuid::from_u16(1));
            let _ = u.to_string();
        }
        assert_eq!(
            Uuid {
                len: 200,
                bytes: [0; 16]
            }
            .as_bytes()
            .len(),
            16
        );
    }

    #[test]
    fn from_buffer_never_panics_on_junk() {
        // Pseudo-random buffers of every length up to 40 drawn from a hex-heavy alphabet.
        let alphabet = b"0123456789abcdefABCDEF---xg \x00\xff";
        let mut seed: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let len = (seed >> 16) as usize % 41;
            let mut buf = [0u8; 40];
            for b in buf.iter_mut().take(len) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *b = alphabet[(seed >> 16) as usize % alphabet.len()];
            }
            if let Ok(u) = Uuid::from_buffer(&buf[..len]) {
                assert!(matches!(u.len, 2 | 4 | 16));
                assert_eq!(
                    u.bytes[usize::from(u.len)..]
                        .iter()
                        .filter(|&&b| b != 0)
                        .count(),
                    0
                );
                let mut out = [0u8; 48];
                assert!(u.format_repr(&mut out) <= 44);
            }
        }
    }
}
