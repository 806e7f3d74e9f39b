//! The Unix port's HCI UART: the tty named by `MICROPYBTUART` (default `/dev/ttyUSB0`) in raw
//! mode, and a reader thread that only moves bytes into a buffer and asks MicroPython's
//! scheduler for a poll (design rule 5). The thread also requests a poll when a NimBLE timer
//! is due, so callouts fire without any traffic.
//!
//! Compiled into the `ubluetooth` crate as `port::imp` when the `unix` feature is on.

use std::collections::VecDeque;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const DEFAULT_DEVICE: &str = "/dev/ttyUSB0";
/// How often the reader thread looks at timers while the line is quiet.
const IDLE_TICK_MS: i32 = 2;

struct Shared {
    rx: Mutex<VecDeque<u8>>,
    rx_ready: Condvar,
    stop: AtomicBool,
}

struct Uart {
    fd: i32,
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
}

static UART: Mutex<Option<Uart>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update of plain bytes; the data
    // is still usable, and panicking here would cross the FFI.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn shared() -> Option<Arc<Shared>> {
    lock(&UART).as_ref().map(|u| u.shared.clone())
}

fn configure_raw(fd: i32) {
    // SAFETY: `fd` is an open descriptor; termios is plain data we own on the stack.
    unsafe {
        let mut tio: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut tio) != 0 {
            return; // Not a tty (e.g. a socket or a file in tests): nothing to configure.
        }
        libc::cfmakeraw(&mut tio);
        tio.c_cflag |= libc::CLOCAL | libc::CREAD | libc::CRTSCTS;
        tio.c_cc[libc::VMIN] = 1;
        tio.c_cc[libc::VTIME] = 0;
        libc::cfsetispeed(&mut tio, libc::B1000000);
        libc::cfsetospeed(&mut tio, libc::B1000000);
        libc::tcsetattr(fd, libc::TCSANOW, &tio);
        libc::tcflush(fd, libc::TCIOFLUSH);
    }
}

fn reader_loop(fd: i32, shared: Arc<Shared>) {
    let mut buf = [0u8; 1024];
    while !shared.stop.load(Ordering::Acquire) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd for one descriptor.
        let ready = unsafe { libc::poll(&mut pfd, 1, IDLE_TICK_MS) };
        let mut got = false;
        if ready > 0 && pfd.revents & libc::POLLIN != 0 {
            // SAFETY: `buf` is writable for its whole length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                let n = n as usize;
                lock(&shared.rx).extend(&buf[..n]);
                shared.rx_ready.notify_all();
                got = true;
            }
        } else if ready > 0 {
            // Hang-up or error with nothing to read: don't spin on it.
            std::thread::sleep(Duration::from_millis(IDLE_TICK_MS as u64));
        }
        if got || crate::npl::callout_due(super::ticks_ms()) {
            crate::ffi::request_poll();
        }
    }
}

/// Opens and configures the tty and starts the reader thread.
pub fn uart_open() -> bool {
    uart_close();
    let path = std::env::var("MICROPYBTUART").unwrap_or_else(|_| DEFAULT_DEVICE.to_string());
    let Ok(cpath) = CString::new(path.clone()) else {
        return false;
    };
    // SAFETY: `cpath` is a valid NUL-terminated string.
    let fd = unsafe {
        libc::open(
            cpath.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        // The C module's message, on stdout, so scripts' output stays the same. Written
        // straight to fd 1 as MicroPython's own output is, so the two keep their order.
        let msg = format!("mp_bluetooth_hci_uart_init: Unable to open port {path}\n");
        // SAFETY: `msg` is a valid buffer of `msg.len()` bytes; fd 1 may be closed, which
        // write reports as an error we ignore.
        let _ = unsafe { libc::write(1, msg.as_ptr().cast(), msg.len()) };
        return false;
    }
    configure_raw(fd);
    let shared = Arc::new(Shared {
        rx: Mutex::new(VecDeque::with_capacity(4096)),
        rx_ready: Condvar::new(),
        stop: AtomicBool::new(false),
    });
    let thread_shared = shared.clone();
    let reader = std::thread::Builder::new()
        .name("hci-uart-rx".into())
        .spawn(move || reader_loop(fd, thread_shared))
        .ok();
    if reader.is_none() {
        // SAFETY: `fd` was opened above and is not shared with anyone yet.
        unsafe { libc::close(fd) };
        return false;
    }
    *lock(&UART) = Some(Uart { fd, shared, reader });
    true
}

/// Stops the reader thread and closes the tty. Idempotent.
pub fn uart_close() {
    let uart = lock(&UART).take();
    if let Some(mut u) = uart {
        u.shared.stop.store(true, Ordering::Release);
        if let Some(t) = u.reader.take() {
            let _ = t.join();
        }
        // SAFETY: the reader thread has exited, so nobody else uses `fd`.
        unsafe { libc::close(u.fd) };
    }
}

/// Writes all of `data`, waiting for the tty to drain when it is full (up to 1 s).
pub fn uart_write(data: &[u8]) -> bool {
    let fd = match lock(&UART).as_ref() {
        Some(u) => u.fd,
        None => return false,
    };
    let mut off = 0;
    let mut stalls = 0;
    while off < data.len() {
        let rest = &data[off..];
        // SAFETY: `rest` is a valid readable slice.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n > 0 {
            off += n as usize;
            continue;
        }
        let err = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        if n < 0 && err != libc::EAGAIN && err != libc::EINTR {
            return false;
        }
        stalls += 1;
        if stalls > 1000 {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd for one descriptor.
        unsafe { libc::poll(&mut pfd, 1, 1) };
    }
    true
}

/// Moves received bytes into `buf`; returns how many (0 when none are waiting).
pub fn uart_read(buf: &mut [u8]) -> usize {
    let Some(shared) = shared() else {
        return 0;
    };
    let mut rx = lock(&shared.rx);
    let n = rx.len().min(buf.len());
    for (dst, src) in buf.iter_mut().zip(rx.drain(..n)) {
        *dst = src;
    }
    n
}

/// Blocks until bytes are waiting or `timeout_ms` passes.
pub fn uart_wait_rx(timeout_ms: u32) {
    let Some(shared) = shared() else {
        std::thread::sleep(Duration::from_millis(timeout_ms as u64));
        return;
    };
    let rx = lock(&shared.rx);
    if rx.is_empty() {
        let _ = shared
            .rx_ready
            .wait_timeout(rx, Duration::from_millis(timeout_ms as u64));
    }
}
