//! UUIDs between our [`Uuid`] and NimBLE's `ble_uuid_any_t`, size for size (both little-endian).

use nimble_sys as ns;

use crate::uuid::Uuid;

/// Converts a UUID NimBLE reports (service, characteristic, descriptor) into ours.
///
/// All three sizes keep their size and value. MicroPython's C module converts the same way in
/// this direction; `None` only for a type tag NimBLE never produces.
pub fn from_nimble(any: &ns::ble_uuid_any_t) -> Option<Uuid> {
    // SAFETY: every member of the union starts with the `ble_uuid_t` tag (all are repr(C)),
    // so the tag can always be read; the member read below is the one the tag names.
    let kind = unsafe { any.u.type_ } as u32;
    match kind {
        ns::BLE_UUID_TYPE_16 => {
            // SAFETY: the tag says this is a 16-bit UUID.
            let v = unsafe { any.u16_.value };
            Uuid::from_buffer(&v.to_le_bytes()).ok()
        }
        ns::BLE_UUID_TYPE_32 => {
            // SAFETY: the tag says this is a 32-bit UUID.
            let v = unsafe { any.u32_.value };
            Uuid::from_buffer(&v.to_le_bytes()).ok()
        }
        ns::BLE_UUID_TYPE_128 => {
            // SAFETY: the tag says this is a 128-bit UUID.
            let v = unsafe { any.u128_.value };
            Uuid::from_buffer(&v).ok()
        }
        _ => None,
    }
}

/// Converts one of our UUIDs into NimBLE's form, size for size; `None` for a length that is
/// not 2, 4 or 16 bytes.
///
/// A 32-bit UUID keeps all four of its bytes. (MicroPython v1.25's C module builds the 32-bit
/// value from the wrong bytes; the spec does not list that as behaviour to keep.)
pub fn to_nimble(uuid: &Uuid) -> Option<ns::ble_uuid_any_t> {
    let mut any = ns::ble_uuid_any_t::default();
    match *uuid.as_bytes() {
        [b0, b1] => {
            any.u16_ = ns::ble_uuid16_t {
                u: ns::ble_uuid_t {
                    type_: ns::BLE_UUID_TYPE_16 as u8,
                },
                value: u16::from_le_bytes([b0, b1]),
            };
        }
        [b0, b1, b2, b3] => {
            any.u32_ = ns::ble_uuid32_t {
                u: ns::ble_uuid_t {
                    type_: ns::BLE_UUID_TYPE_32 as u8,
                },
                value: u32::from_le_bytes([b0, b1, b2, b3]),
            };
        }
        ref b => {
            let value: [u8; 16] = b.try_into().ok()?;
            any.u128_ = ns::ble_uuid128_t {
                u: ns::ble_uuid_t {
                    type_: ns::BLE_UUID_TYPE_128 as u8,
                },
                value,
            };
        }
    }
    Some(any)
}
