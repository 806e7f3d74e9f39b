//! Panics and aborts on bare metal (`no_std` builds). Nothing can unwind (`panic = "abort"`), and spinning
//! silently would leave a board that looks hung: the message goes to the port's console and the
//! port resets the board, as MicroPython's own fatal errors do there (`ubt_port_fatal`, in
//! `ports/qemu` and `ports/stm32`). With `std`, Rust's default handler prints and aborts.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

/// The port's fatal-error path, declared by the port's own C file (with `char` text), so it
/// stays out of the generated header.
///
/// cbindgen:ignore
#[allow(unused_doc_comments)] // the doc comment is cbindgen's annotation
extern "C" {
    /// Prints `len` bytes at `msg` on the console and resets the board.
    fn ubt_port_fatal(msg: *const u8, len: usize) -> !;
}

/// Reports `msg` on the console and resets the board.
#[cold]
pub fn fatal(msg: &[u8]) -> ! {
    // SAFETY: `msg` is a valid slice for the call, which does not return.
    unsafe { ubt_port_fatal(msg.as_ptr(), msg.len()) }
}

/// Long enough for a location and a typical message; longer ones are cut short.
const MESSAGE_MAX: usize = 160;

/// A panic message formatted on the stack: no heap, which may be what failed.
struct Message {
    buf: [u8; MESSAGE_MAX],
    len: usize,
}

impl Write for Message {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(MESSAGE_MAX - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Set by the first panic: a panic while formatting its message reports without formatting.
static PANICKING: AtomicBool = AtomicBool::new(false);

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if PANICKING.swap(true, Ordering::Relaxed) {
        fatal(b"ubluetooth: panic while panicking")
    }
    let mut msg = Message {
        buf: [0; MESSAGE_MAX],
        len: 0,
    };
    // PanicInfo prints as "panicked at FILE:LINE:COL:\nMESSAGE".
    let _ = write!(msg, "ubluetooth {info}");
    fatal(&msg.buf[..msg.len])
}

/// The panic test's trigger (tests/qemu): panics as a bug in the core would, with a formatted
/// message. Only in a build with the `panic-test` feature, never in a normal firmware.
///
/// cbindgen:ignore
#[cfg(feature = "panic-test")]
#[no_mangle]
pub extern "C" fn ubt_test_panic(code: u32) -> ! {
    panic!("test panic {code}")
}
