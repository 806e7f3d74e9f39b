//! Panics and aborts on bare metal (`no_std` builds). Nothing can unwind (`panic = "abort"`), and spinning
//! silently would leave a board that looks hung: the message goes to the port's console and the
//! port resets the board, as MicroPython's own fatal errors do there (`ubt_port_fatal`, in
//! `ports/qemu` and `ports/stm32`). With `std`, Rust's default handler prints and aborts.

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

/// A panic message put together on the stack: no heap, which may be what failed. Nothing
/// here uses `core::fmt`: its formatting machinery (integer and padding code, `fmt::write`)
/// was about 2.5 kB of the bare-metal module's flash, pulled in by this handler alone.
struct Message {
    buf: [u8; MESSAGE_MAX],
    len: usize,
}

impl Message {
    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(MESSAGE_MAX - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn push_decimal(&mut self, mut n: u32) {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
}

/// Set by the first panic: a panic while putting its message together reports a fixed one.
static PANICKING: AtomicBool = AtomicBool::new(false);

/// "ubluetooth panicked at FILE:LINE:COL:\nMESSAGE", as std prints it. A message with
/// arguments (say, an index out of bounds) is shown by its location only.
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
    msg.push(b"ubluetooth panicked at ");
    if let Some(at) = info.location() {
        msg.push(at.file().as_bytes());
        msg.push(b":");
        msg.push_decimal(at.line());
        msg.push(b":");
        msg.push_decimal(at.column());
    }
    msg.push(b":\n");
    msg.push(
        info.message()
            .as_str()
            .unwrap_or("(a message with arguments)")
            .as_bytes(),
    );
    fatal(&msg.buf[..msg.len])
}

/// The panic test's trigger (tests/qemu): panics as a bug in the core would. Only in a build with the `panic-test` feature, never in a normal firmware.
///
/// cbindgen:ignore
#[cfg(feature = "panic-test")]
#[no_mangle]
pub extern "C" fn ubt_test_panic(code: u32) -> ! {
    if code == 1234 {
        panic!("test panic 1234")
    }
    panic!("test panic")
}
