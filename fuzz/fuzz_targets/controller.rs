//! Fuzzes the whole controller-to-host path: H4 framing, our transport, NimBLE's host and our
//! event callbacks, with a misbehaving controller.
//!
//! Each run starts the real stack (the library built without the Unix port, so its UART is the
//! `ubt_port_hci_uart_*` functions below) against an in-process controller that answers every
//! command the host sends, until the host has synced. Then, depending on the first input byte,
//! it advertises, scans and/or connects, and feeds the rest of the input to the host as
//! controller bytes, in chunks the input sizes, with polls and time passing in between. The
//! controller may also fall silent part-way (another input bit). Last, the stack is stopped.
//! Nothing may crash, hang or read out of bounds, and every event handed to the script must
//! have readable data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ubluetooth::ffi;

mod firmware;
use firmware::{with, Controller};

// --- The run ----------------------------------------------------------------------------------

fn poll_for(ms: u32) {
    for _ in 0..ms.div_ceil(5).max(1) {
        with(|c| c.now_ms = c.now_ms.wrapping_add(5));
        ffi::ubt_poll();
    }
}

fn start() -> bool {
    with(|c| {
        *c = Controller {
            answers_left: u32::MAX,
            now_ms: c.now_ms,
            ..Default::default()
        }
    });
    if ffi::ubt_ble_start_begin() != 0 {
        return false;
    }
    for _ in 0..400 {
        if ffi::ubt_ble_is_active() {
            break;
        }
        poll_for(5);
    }
    let synced = ffi::ubt_ble_is_active();
    ffi::ubt_ble_start_finish(synced);
    synced
}

fn stop() {
    if ffi::ubt_ble_stop_begin() {
        for _ in 0..400 {
            if ffi::ubt_ble_is_stopped() {
                break;
            }
            poll_for(5);
        }
    }
    ffi::ubt_ble_stop_finish();
    assert!(!ffi::ubt_ble_is_active());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    assert!(
        start(),
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
        with(|c| c.answers_left = u32::from(mode >> 5));
    }
    // Chunks: a length byte, then that many controller bytes; a poll and 7 ms after each.
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        with(|c| c.to_host.extend(&tail[..n]));
        poll_for(7);
        rest = &tail[n..];
    }
    poll_for(50);
    stop();
});
