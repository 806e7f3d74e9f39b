//! Fuzzes the whole controller-to-host path: H4 framing, our transport, NimBLE's host and our
//! event callbacks, with a misbehaving controller.
//!
//! Each run starts the real stack on the library's simulated firmware (`ubluetooth::testing`,
//! the `sim` feature), whose scripted controller answers every command the host sends, until
//! the host has synced. Then, depending on the first input byte, it advertises, scans and/or
//! connects, and feeds the rest of the input to the host as controller bytes, in chunks the
//! input sizes, with 7 virtual milliseconds (and whatever polls they bring) after each. The
//! controller may also fall silent part-way (another input bit). Last, the stack is stopped.
//! Nothing may crash, hang or read out of bounds; every event handed to the script is copied
//! (so its data must be readable), and the host must only ever write well-formed H4.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ubluetooth::{ffi, testing};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    testing::reset();
    assert_eq!(
        testing::start(),
        0,
        "the stack did not start against a well-behaved controller"
    );
    if mode & 1 != 0 {
        let adv = [2u8, 1, 6];
        let adv_data = ffi::UbtOptBuf {
            ptr: adv.as_ptr(),
            len: adv.len(),
            present: true,
        };
        let none = ffi::UbtOptBuf {
            ptr: core::ptr::null(),
            len: 0,
            present: false,
        };
        // SAFETY: `adv` outlives the call; `none` carries no pointer.
        let _ = unsafe { ffi::ubt_ble_gap_advertise_start(100_000, adv_data, none, true) };
    }
    if mode & 2 != 0 {
        let _ = ffi::ubt_ble_gap_scan_start(0, 30_000, 30_000, mode & 4 != 0);
    }
    if mode & 8 != 0 {
        let addr = [1u8, 2, 3, 4, 5, 6];
        // SAFETY: `addr` is 6 readable bytes.
        let _ = unsafe { ffi::ubt_ble_gap_connect(0, addr.as_ptr(), 2000, 0, 0) };
    }
    if mode & 0x10 != 0 {
        // The controller answers a few more commands, then falls silent for good.
        testing::with_controller(|c| c.answers_left = u32::from(mode >> 5));
    }
    // Chunks: a length byte, then that many controller bytes; 7 ms after each.
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        testing::with_controller(|c| c.raw_to_host(&tail[..n]));
        testing::advance(7);
        rest = &tail[n..];
    }
    testing::advance(50);
    testing::stop();
    assert!(!ffi::ubt_ble_is_active());
    assert_eq!(
        testing::with_controller(|c| c.bad_bytes),
        0,
        "host wrote bad H4"
    );
    // Events are only recorded; drop them so a long run doesn't keep them all.
    testing::take_events();
});
