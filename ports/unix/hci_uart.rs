//! The Unix port's HCI UART: the tty named by `MICROPYBTUART` (default `/dev/ttyUSB0`) in raw
//! mode, or a TCP connection to an H4 endpoint (`MICROPYBTUART=tcp:HOST:PORT`: RootCanal's
//! `-hci_port`, Bumble's `tcp-server:` transport, an emulator's HCI socket), and a watcher
//! thread that only notices bytes waiting and asks MicroPython's scheduler for a poll (design
//! rule 5). The host reads the descriptor itself, from the VM thread, so no receive buffer of
//! ours sits between the kernel's and the host's: the kernel's buffer (and, on a tty, RTS/CTS
//! flow control) holds what the host hasn't taken yet, as for the C module. The thread also
//! requests a poll when a NimBLE timer is due, so callouts fire without any traffic. A tty runs at `MICROPYBTBAUD` (default 1000000) with RTS/CTS
//! unless `MICROPYBTFLOW=0`; see [`Settings`]. `MICROPYBTTRACE=FILE` appends every chunk of
//! H4 bytes in and out to FILE with a timestamp (see [`trace`]), the host's own view beside a
//! controller's HCI sniffer.
//!
//! MicroPython runs scheduled work only when the VM looks for it, which it doesn't do while
//! the script blocks in a system call (`sys.stdin.readline()`, `time.sleep(1.0)`,
//! `select.poll().poll(ms)`, `socket.recv()`...). It does look when such a call fails with
//! EINTR (PEP 475 retries: `MP_HAL_RETRY_SYSCALL`, and the same in `time.sleep` and
//! `poll`), so when a queued poll hasn't started after [`WAKE_GRACE`] and the VM thread is
//! blocked in such a call, the watcher thread sends it a signal whose handler does nothing
//! and is installed without `SA_RESTART` (see [`vm_wake`]). The host then answers peers and
//! delivers events while the script blocks.
//!
//! Compiled into the `ubluetooth` crate as `port::imp` when the `unix` feature is on.

use std::ffi::CString;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vm_wake::{VmWaker, Woken};

const DEFAULT_DEVICE: &str = "/dev/ttyUSB0";
/// How long a TCP connect may take before the endpoint counts as unavailable. A refused
/// connection fails at once; this bounds a host that drops the SYN.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The baud rates termios names (`Bxxx`), which are the ones a tty can be set to here.
const BAUD_RATES: [(u32, libc::speed_t); 18] = [
    (9600, libc::B9600),
    (19200, libc::B19200),
    (38400, libc::B38400),
    (57600, libc::B57600),
    (115_200, libc::B115200),
    (230_400, libc::B230400),
    (460_800, libc::B460800),
    (500_000, libc::B500000),
    (576_000, libc::B576000),
    (921_600, libc::B921600),
    (1_000_000, libc::B1000000),
    (1_152_000, libc::B1152000),
    (1_500_000, libc::B1500000),
    (2_000_000, libc::B2000000),
    (2_500_000, libc::B2500000),
    (3_000_000, libc::B3000000),
    (3_500_000, libc::B3500000),
    (4_000_000, libc::B4000000),
];
/// How often the watcher thread looks at timers while the line is quiet.
const IDLE_TICK_MS: i32 = 2;
/// How long a queued poll may wait before the VM thread is signalled. A VM running bytecode
/// or `time.sleep_ms` starts it well within this, so it gets no signal at all; only one that
/// is stuck in a system call does.
const WAKE_GRACE: Duration = Duration::from_millis(2);
/// If the poll still hasn't run after a signal (it reached the VM thread just before a
/// blocking call began, or the scheduler is locked) or the VM thread was left alone (it was
/// running, or in a call a signal would upset), look again after this long, doubling up to
/// [`WAKE_RETRY_MAX`].
const WAKE_RETRY_FIRST: Duration = Duration::from_millis(4);
const WAKE_RETRY_MAX: Duration = Duration::from_millis(64);

/// What the watcher thread and the host's reads share.
///
/// The watcher waits for the descriptor to become readable, asks for a poll, and then stops
/// watching it ("disarmed": the bytes are the host's to read, and a level-triggered wait would
/// return at once until they are) until the host's read comes up short, which means the
/// kernel's buffer is empty again; that read re-arms the watcher through `rearm`, an eventfd
/// the watcher also waits on. Both sides decide under `armed`'s lock, and the watcher looks at
/// the kernel's byte count before disarming, so no byte can arrive unnoticed in between.
struct Shared {
    armed: Mutex<bool>,
    /// An eventfd: written by the host's read to re-arm the watcher, and by `uart_close`.
    rearm: i32,
    stop: AtomicBool,
}

impl Shared {
    /// Wakes the watcher from its wait.
    fn kick(&self) {
        let one: u64 = 1;
        // SAFETY: `rearm` is our open eventfd until the watcher has been joined and the
        // Shared dropped; an eventfd takes exactly 8 bytes.
        let _ = unsafe { libc::write(self.rearm, (&one as *const u64).cast(), 8) };
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: the last reference is gone, so nobody waits on or writes `rearm` any more.
        unsafe { libc::close(self.rearm) };
    }
}

/// Bytes waiting in the kernel's receive buffer of `fd` (0 on error or end of stream).
fn bytes_waiting(fd: i32) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int to `n`, which lives for the call.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    if rc == 0 && n > 0 {
        n as usize
    } else {
        0
    }
}

/// Interrupting the VM thread's blocking system call (Linux only; elsewhere a stand-in that
/// never signals, which keeps the old behaviour).
#[cfg(target_os = "linux")]
mod vm_wake {
    use core::ptr;
    use std::ffi::CString;

    extern "C" {
        /// `MICROPY_BEGIN_ATOMIC_SECTION()`, from the C shim; returns the state to pass back.
        fn ubt_glue_atomic_begin() -> usize;
        /// `MICROPY_END_ATOMIC_SECTION(state)`.
        fn ubt_glue_atomic_end(state: usize);
    }

    /// The signal: the sixth realtime signal. MicroPython's Unix port uses SIGINT (Ctrl-C),
    /// ignores SIGPIPE, and uses SIGRTMIN + 5 to make threads scan their stacks for the GC
    /// (avoiding SIGUSR1 because programs commonly use it); glibc keeps the realtime
    /// signals below SIGRTMIN for itself, and Rust's std uses none. SIGUSR1/SIGUSR2 are the
    /// ones users and other libraries are likeliest to claim, so we stay in the realtime
    /// range, next to MicroPython's own.
    fn signal() -> libc::c_int {
        libc::SIGRTMIN() + 6
    }

    /// Does nothing: the signal exists only to make the VM thread's system call return EINTR.
    /// (An empty function is trivially async-signal-safe.)
    extern "C" fn on_signal(_sig: libc::c_int) {}

    fn handler() -> libc::sighandler_t {
        on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t
    }

    /// The signal's current disposition, or None if it can't be read.
    fn disposition(sig: libc::c_int) -> Option<libc::sigaction> {
        // SAFETY: `act` is a plain C struct we own; a null new action only queries.
        unsafe {
            let mut act: libc::sigaction = core::mem::zeroed();
            (libc::sigaction(sig, ptr::null(), &mut act) == 0).then_some(act)
        }
    }

    fn is_ours(act: &libc::sigaction) -> bool {
        act.sa_sigaction == handler() && act.sa_flags & libc::SA_SIGINFO == 0
    }

    /// Installs the handler unless the signal already has a disposition someone else chose
    /// (a handler, or SIG_IGN): we never replace that. True when ours is in place. Once
    /// installed it stays, even after the UART closes: restoring SIG_DFL (which terminates
    /// the process for a realtime signal) could race with a signal still in flight.
    fn install(sig: libc::c_int) -> bool {
        let Some(old) = disposition(sig) else {
            return false;
        };
        if is_ours(&old) {
            return true;
        }
        if old.sa_sigaction != libc::SIG_DFL {
            return false;
        }
        // SAFETY: `act` is fully initialised (zeroed, then handler, flags and an empty mask
        // set); `on_signal` is an `extern "C" fn(c_int)`, the shape a handler without
        // SA_SIGINFO must have.
        unsafe {
            let mut act: libc::sigaction = core::mem::zeroed();
            act.sa_sigaction = handler();
            // Deliberately no SA_RESTART: the interrupted call must fail with EINTR so that
            // MicroPython runs its pending work; a restarted one would just keep blocking.
            act.sa_flags = 0;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, ptr::null_mut()) == 0
        }
    }

    /// Whether `fd` is a socket with a send/receive timeout (`settimeout`) set.
    fn has_socket_timeout(fd: libc::c_int, option: libc::c_int) -> bool {
        // SAFETY: `tv` and `len` are ours and `len` is `tv`'s size. `fd` may be stale or not
        // a socket; getsockopt then fails, which means "no timeout".
        unsafe {
            let mut tv: libc::timeval = core::mem::zeroed();
            let mut len = core::mem::size_of::<libc::timeval>() as libc::socklen_t;
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&mut tv as *mut libc::timeval).cast(),
                &mut len,
            ) == 0
                && (tv.tv_sec != 0 || tv.tv_usec != 0)
        }
    }

    /// Whether interrupting system call `nr` (first argument `arg0`) makes MicroPython run
    /// its pending work and then carry on as if nothing happened. Calls it doesn't handle
    /// that way are left alone: `time.sleep_us` (clock_nanosleep) would return early, a
    /// socket timeout (SO_RCVTIMEO/SO_SNDTIMEO) would start over with every signal, and
    /// futex waits (locks, the GC's wait for other threads) don't run pending work anyway.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn interruptible(nr: libc::c_long, arg0: u64) -> Option<bool> {
        let fd = arg0 as libc::c_int;
        #[cfg(target_arch = "x86_64")]
        let legacy_wait = matches!(nr, libc::SYS_select | libc::SYS_poll | libc::SYS_epoll_wait);
        #[cfg(not(target_arch = "x86_64"))]
        let legacy_wait = false;
        Some(match nr {
            // time.sleep(float), select.poll().poll(), select.select(): MicroPython retries
            // with the time left.
            libc::SYS_pselect6 | libc::SYS_ppoll | libc::SYS_epoll_pwait => true,
            _ if legacy_wait => true,
            // Reads and writes retried by MP_HAL_RETRY_SYSCALL (stdin, files, sockets).
            libc::SYS_read
            | libc::SYS_readv
            | libc::SYS_recvfrom
            | libc::SYS_recvmsg
            | libc::SYS_accept
            | libc::SYS_accept4 => !has_socket_timeout(fd, libc::SO_RCVTIMEO),
            libc::SYS_write | libc::SYS_writev | libc::SYS_sendto | libc::SYS_sendmsg => {
                !has_socket_timeout(fd, libc::SO_SNDTIMEO)
            }
            _ => false,
        })
    }

    /// Other architectures: no table of system call numbers here, so always interrupt.
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn interruptible(_nr: libc::c_long, _arg0: u64) -> Option<bool> {
        None
    }

    /// What a signal would do now.
    enum Verdict {
        /// Blocked in a call that handles EINTR by running pending work, or unknown.
        Interrupt,
        /// Running (it will find the poll itself), or blocked in a call that mustn't be
        /// interrupted.
        Leave,
    }

    /// Signals the thread that opened the UART, i.e. the VM thread.
    pub struct VmWaker {
        thread: libc::pthread_t,
        sig: libc::c_int,
        /// `/proc/self/task/<tid>/syscall`: the system call the thread is blocked in.
        syscall_path: CString,
    }

    /// The outcome of [`VmWaker::wake`].
    pub enum Woken {
        /// Signalled.
        Sent,
        /// Not signalled this time (see [`Verdict::Leave`]); ask again later.
        NotNow,
        /// The signal no longer has our handler (someone replaced it): stop waking.
        Gone,
    }

    impl VmWaker {
        /// Call on the VM thread. None when that isn't the process's main thread (the only
        /// one MicroPython's scheduler runs on, as the Unix port has no GIL) or when the
        /// signal belongs to someone else.
        pub fn for_current_thread() -> Option<Self> {
            // SAFETY: gettid and getpid have no preconditions.
            let (tid, pid) = unsafe { (libc::gettid(), libc::getpid()) };
            let sig = signal();
            if tid != pid || sig > libc::SIGRTMAX() || !install(sig) {
                return None;
            }
            Some(VmWaker {
                // SAFETY: no preconditions. The main thread lives as long as the process
                // (MicroPython never calls pthread_exit on it), so the id stays valid.
                thread: unsafe { libc::pthread_self() },
                sig,
                syscall_path: CString::new(format!("/proc/self/task/{tid}/syscall")).ok()?,
            })
        }

        /// Reads what the VM thread is doing. If /proc can't tell us, interrupt: that is the
        /// point of the signal, and MicroPython's own blocking calls all cope.
        fn verdict(&self) -> Verdict {
            let mut buf = [0u8; 256];
            // SAFETY: `syscall_path` is a valid C string; `buf` is writable for its length;
            // the descriptor is closed before returning. Plain syscalls (no std::fs) keep
            // this allocation-free.
            let n = unsafe {
                let fd = libc::open(self.syscall_path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Verdict::Interrupt;
                }
                let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                libc::close(fd);
                n
            };
            if n <= 0 {
                return Verdict::Interrupt;
            }
            let text = core::str::from_utf8(&buf[..n as usize]).unwrap_or("");
            let mut fields = text.split_ascii_whitespace();
            // "running", "-1 sp pc" (blocked outside a system call) or "nr arg0 ... sp pc".
            let Some(Ok(nr)) = fields.next().map(str::parse::<libc::c_long>) else {
                return Verdict::Leave;
            };
            if nr < 0 {
                return Verdict::Leave;
            }
            let arg0 = fields
                .next()
                .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
                .unwrap_or(u64::MAX);
            match interruptible(nr, arg0) {
                Some(false) => Verdict::Leave,
                Some(true) | None => Verdict::Interrupt,
            }
        }

        /// Signals the VM thread if it is blocked in a call that copes with it.
        pub fn wake(&self) -> Woken {
            if !disposition(self.sig).is_some_and(|act| is_ours(&act)) {
                return Woken::Gone;
            }
            if let Verdict::Leave = self.verdict() {
                return Woken::NotNow;
            }
            // The signal must not interrupt the `sem_wait` in which MicroPython's GC
            // (mp_thread_gc_others) waits for other threads to scan their stacks: without
            // SA_RESTART that wait would end early and the GC would free objects those
            // threads still use. The GC waits inside MicroPython's atomic section, so we
            // send while holding it: the VM thread is then not in that wait, and it can only
            // get there through a pthread_kill system call, on whose return the pending
            // signal is delivered (it is never blocked outside our own handler).
            // SAFETY: the shim's atomic section is the recursive mutex that mp_sched_schedule
            // already takes from this thread; begin and end are paired. `self.thread` is the
            // live main thread (see `for_current_thread`) and `self.sig` has our handler, so
            // the signal can't terminate the process.
            unsafe {
                let state = ubt_glue_atomic_begin();
                libc::pthread_kill(self.thread, self.sig);
                ubt_glue_atomic_end(state);
            }
            Woken::Sent
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod vm_wake {
    /// Never signals: the host runs only when the VM looks for scheduled work.
    pub struct VmWaker;

    pub enum Woken {
        Gone,
    }

    impl VmWaker {
        pub fn for_current_thread() -> Option<Self> {
            None
        }

        pub fn wake(&self) -> Woken {
            Woken::Gone
        }
    }
}

/// What `MICROPYBTUART` names.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint {
    Tty(String),
    /// `tcp:HOST:PORT`; `host` without the brackets of an IPv6 literal.
    Tcp {
        host: String,
        port: u16,
    },
}

/// The port's settings, read from the environment at every `active(True)`.
#[derive(Debug, PartialEq, Eq)]
struct Settings {
    endpoint: Endpoint,
    /// `MICROPYBTBAUD`: one of [`BAUD_RATES`]; only a tty uses it.
    baud: libc::speed_t,
    /// `MICROPYBTFLOW`: `1` RTS/CTS, `0` none; only a tty uses it.
    rts_cts: bool,
    /// `MICROPYBTTRACE`: the file the H4 trace is appended to; none when unset.
    trace: Option<String>,
}

impl Settings {
    /// Reads the settings through `var` (the environment, or a table in tests). An unset or
    /// empty variable takes its default. Every variable is checked even when the endpoint
    /// doesn't use it, so a typo never goes unnoticed. `Err` is the one-line reason.
    fn read(var: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let get = |name| var(name).filter(|v: &String| !v.is_empty());
        let endpoint = match get("MICROPYBTUART") {
            Some(v) => parse_endpoint(&v).map_err(|why| format!("MICROPYBTUART={v}: {why}"))?,
            None => Endpoint::Tty(DEFAULT_DEVICE.into()),
        };
        let baud = match get("MICROPYBTBAUD") {
            Some(v) => parse_baud(&v).ok_or_else(|| {
                let rates: Vec<String> = BAUD_RATES.iter().map(|r| r.0.to_string()).collect();
                format!(
                    "MICROPYBTBAUD={v}: not a supported baud rate (one of {})",
                    rates.join(", ")
                )
            })?,
            // 1 Mbaud, what the C module sets.
            None => libc::B1000000,
        };
        let rts_cts = match get("MICROPYBTFLOW").as_deref() {
            None | Some("1") => true,
            Some("0") => false,
            Some(v) => {
                return Err(format!(
                    "MICROPYBTFLOW={v}: not 0 (no flow control) or 1 (RTS/CTS)"
                ))
            }
        };
        Ok(Settings {
            endpoint,
            baud,
            rts_cts,
            trace: get("MICROPYBTTRACE"),
        })
    }
}

fn parse_baud(v: &str) -> Option<libc::speed_t> {
    let rate: u32 = v.parse().ok()?;
    BAUD_RATES.iter().find(|r| r.0 == rate).map(|r| r.1)
}

/// A tty path, or `SCHEME:...`. Only a value that starts like a URL scheme (a letter, then
/// letters, digits, `+`, `-`, `.`) up to its first colon is taken as one, so tty paths with
/// colons (`/dev/serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0`) stay paths.
fn parse_endpoint(v: &str) -> Result<Endpoint, String> {
    let Some((scheme, rest)) = v.split_once(':') else {
        return Ok(Endpoint::Tty(v.into()));
    };
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !is_scheme {
        return Ok(Endpoint::Tty(v.into()));
    }
    if !scheme.eq_ignore_ascii_case("tcp") {
        return Err(format!(
            "unknown scheme '{scheme}:' (use a tty path or tcp:HOST:PORT)"
        ));
    }
    let bad = || "not tcp:HOST:PORT (PORT 1..65535, an IPv6 HOST in brackets)".to_string();
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().ok().filter(|&p| p != 0).ok_or_else(bad)?;
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) if v6.contains(':') => v6,
        Some(_) => return Err(bad()),
        None if host.is_empty() || host.contains([':', '[', ']']) => return Err(bad()),
        None => host,
    };
    Ok(Endpoint::Tcp {
        host: host.into(),
        port,
    })
}

/// Writes one line to stdout the way MicroPython writes its own output (straight to fd 1), so
/// the two keep their order.
fn say(line: &str) {
    let msg = format!("{line}\n");
    // SAFETY: `msg` is a valid buffer of `msg.len()` bytes; fd 1 may be closed, which write
    // reports as an error we ignore.
    let _ = unsafe { libc::write(1, msg.as_ptr().cast(), msg.len()) };
}

/// Opens the tty read-write and non-blocking; None if it can't be opened.
fn open_tty(path: &str) -> Option<i32> {
    let cpath = CString::new(path).ok()?;
    // SAFETY: `cpath` is a valid NUL-terminated string.
    let fd = unsafe {
        libc::open(
            cpath.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    (fd >= 0).then_some(fd)
}

/// Connects to the first of `host`'s addresses that accepts, with Nagle off (an HCI command
/// must not wait for the previous one's ACK); a non-blocking descriptor, or None.
fn connect_tcp(host: &str, port: u16) -> Option<i32> {
    let addrs = (host, port).to_socket_addrs().ok()?;
    for addr in addrs {
        let Ok(stream) = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) else {
            continue;
        };
        if stream.set_nodelay(true).is_ok() && stream.set_nonblocking(true).is_ok() {
            // std opens sockets close-on-exec.
            return Some(stream.into_raw_fd());
        }
    }
    None
}

/// The H4 trace file (`MICROPYBTTRACE`), open from `uart_open` to `uart_close`.
static TRACE: Mutex<Option<File>> = Mutex::new(None);
/// Whether [`TRACE`] is open: without a trace, the byte paths skip its lock.
static TRACING: AtomicBool = AtomicBool::new(false);

/// Appends one line to the H4 trace: the wall-clock time (seconds since 1970, to the
/// microsecond, comparable with a controller's pcap timestamps), `what`, the byte count and
/// the bytes in hex when `data` is given. `what` is `tx` (the host wrote these bytes to the
/// controller), `tx-fail` (the write failed or timed out part-way), `ready` (the watcher thread
/// saw this many bytes waiting and asked for a poll) or `rx` (the host read them from the
/// descriptor, in a poll or while it waited for a command's answer).
fn trace(what: &str, len: usize, data: Option<&[u8]>) {
    if !TRACING.load(Ordering::Acquire) {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut line = format!("{}.{:06} {what} {len}", now.as_secs(), now.subsec_micros());
    if let Some(bytes) = data {
        line.push(' ');
        for b in bytes {
            let _ = write!(line, "{b:02x}");
        }
    }
    line.push('\n');
    if let Some(f) = lock(&TRACE).as_mut() {
        // One write per line, unbuffered: the trace survives a crash or a kill up to its last
        // line. A full disk only loses trace lines.
        let _ = f.write_all(line.as_bytes());
    }
}

/// Opens `path` for the H4 trace (appending, so every `active(True)` of a script is kept).
fn trace_open(path: &str, endpoint: &str) -> Result<(), String> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("MICROPYBTTRACE={path}: {e}"))?;
    *lock(&TRACE) = Some(f);
    TRACING.store(true, Ordering::Release);
    trace(&format!("open {endpoint}"), 0, None);
    Ok(())
}

fn trace_close() {
    TRACING.store(false, Ordering::Release);
    *lock(&TRACE) = None;
}

struct Uart {
    fd: i32,
    /// A TCP socket rather than a tty: written with `send`, so a closed peer can't raise
    /// SIGPIPE.
    socket: bool,
    shared: Arc<Shared>,
    reader: Option<WatcherThread>,
}

static UART: Mutex<Option<Uart>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update of plain bytes; the data
    // is still usable, and panicking here would cross the FFI.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn configure_raw(fd: i32, baud: libc::speed_t, rts_cts: bool) {
    // SAFETY: `fd` is an open descriptor; termios is plain data we own on the stack.
    unsafe {
        let mut tio: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut tio) != 0 {
            return; // Not a tty (e.g. a file in tests): nothing to configure.
        }
        libc::cfmakeraw(&mut tio);
        tio.c_cflag |= libc::CLOCAL | libc::CREAD;
        if rts_cts {
            tio.c_cflag |= libc::CRTSCTS;
        } else {
            tio.c_cflag &= !libc::CRTSCTS;
        }
        tio.c_cc[libc::VMIN] = 1;
        tio.c_cc[libc::VTIME] = 0;
        libc::cfsetispeed(&mut tio, baud);
        libc::cfsetospeed(&mut tio, baud);
        libc::tcsetattr(fd, libc::TCSANOW, &tio);
        libc::tcflush(fd, libc::TCIOFLUSH);
    }
}

/// When to signal the VM thread next, and the retry delay after that.
struct Wake {
    at: Instant,
    retry: Duration,
}

/// Acknowledges what a TCP socket received at once. Many H4 endpoints send without
/// TCP_NODELAY, so each small packet waits for the ACK of the one before: with Linux's delayed
/// ACK that is up to 40 ms a packet (RootCanal: 48 ms per HCI command round trip instead of
/// under 1 ms). Linux clears the flag again by itself, so it is set after every read.
fn quick_ack(fd: i32) {
    let on: libc::c_int = 1;
    // SAFETY: `fd` is our open TCP socket; `on` is a valid c_int for the call's duration.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn watcher_loop(
    fd: i32,
    socket: bool,
    shared: Arc<Shared>,
    wakeup: super::Wakeup,
    mut waker: Option<VmWaker>,
) {
    let mut wake: Option<Wake> = None;
    while !shared.stop.load(Ordering::Acquire) {
        let watching = *lock(&shared.armed);
        let mut pfds = [
            libc::pollfd {
                fd: shared.rearm,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let count = if watching { 2 } else { 1 };
        // SAFETY: `pfds` holds `count` valid pollfds.
        let ready = unsafe { libc::poll(pfds.as_mut_ptr(), count, IDLE_TICK_MS) };
        if ready > 0 && pfds[0].revents & libc::POLLIN != 0 {
            let mut n: u64 = 0;
            // SAFETY: reading an eventfd's 8-byte counter into `n`, which lives for the call.
            let _ = unsafe { libc::read(shared.rearm, (&mut n as *mut u64).cast(), 8) };
        }
        let mut got = false;
        if watching && ready > 0 && pfds[1].revents != 0 {
            let mut armed = lock(&shared.armed);
            let waiting = bytes_waiting(fd);
            if waiting > 0 {
                // The host's read that empties the buffer re-arms us (see Shared).
                *armed = false;
                got = true;
            }
            drop(armed);
            if got {
                if socket {
                    quick_ack(fd);
                }
                trace("ready", waiting, None);
            } else {
                // Hang-up, end of stream (the TCP peer closed) or an error, with nothing to
                // read: the descriptor stays ready, so don't spin on it.
                std::thread::sleep(Duration::from_millis(IDLE_TICK_MS as u64));
            }
        }
        let queued = (wakeup.request)(got);
        // A newly queued poll gets a signal if it hasn't started after the grace time. So does
        // one the VM thread queued itself (a notification from `gatts_write(.., True)`), which
        // is looked for on every tick: the script may have gone straight into a blocking call,
        // and with the line quiet nothing else would ever start that poll.
        if queued || (wake.is_none() && (wakeup.pending)()) {
            wake = Some(Wake {
                at: Instant::now() + WAKE_GRACE,
                retry: WAKE_RETRY_FIRST,
            });
        }
        if let (Some(w), Some(pending)) = (waker.as_ref(), wake.as_mut()) {
            let now = Instant::now();
            if !(wakeup.pending)() {
                wake = None;
            } else if now >= pending.at {
                if let Woken::Gone = w.wake() {
                    waker = None;
                } else {
                    // Sent but the poll hasn't run yet, or not sent this time: look again.
                    pending.at = now + pending.retry;
                    pending.retry = (pending.retry * 2).min(WAKE_RETRY_MAX);
                }
            }
        }
    }
}

/// Starts the watcher thread with every asynchronous signal blocked, so that a signal sent to
/// the process (Ctrl-C's SIGINT above all) is handled on a MicroPython thread: MicroPython's
/// SIGINT handler raises KeyboardInterrupt right there and crashes on a thread without VM
/// state. The kernel hands such a signal to another thread whenever the main thread already
/// has one pending, which our wake-up signal makes common.
fn spawn_without_signals(f: impl FnOnce() + Send + 'static) -> Option<WatcherThread> {
    // SAFETY: `all` and `old` are signal sets we own, initialised by sigfillset and
    // pthread_sigmask before use; the calling thread's mask is restored before returning
    // (the new thread inherits the blocked one).
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        // Faults are delivered to the faulting thread and can't be deferred.
        for sig in [
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGTRAP,
            libc::SIGSYS,
        ] {
            libc::sigdelset(&mut all, sig);
        }
        let mut old: libc::sigset_t = core::mem::zeroed();
        let blocked = libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old) == 0;
        let thread = WatcherThread::spawn(Box::new(f));
        if blocked {
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        }
        thread
    }
}

/// The watcher thread, started with pthreads directly rather than `std::thread`: std keeps a
/// handle, a result slot, a name and a thread-local record on the heap for every thread
/// (about 300 bytes here), none of which this one needs.
struct WatcherThread(libc::pthread_t);

/// The watcher's stack: its loop and the H4 trace's formatting need a few KiB.
const WATCHER_STACK: usize = 2 * 1024 * 1024;

impl WatcherThread {
    fn spawn(f: Box<dyn FnOnce() + Send>) -> Option<WatcherThread> {
        extern "C" fn start(arg: *mut libc::c_void) -> *mut libc::c_void {
            // SAFETY: `arg` is the Box<Box<dyn FnOnce>> leaked by `spawn`, handed over once.
            let f = unsafe { Box::from_raw(arg.cast::<Box<dyn FnOnce() + Send>>()) };
            f();
            core::ptr::null_mut()
        }
        let arg = Box::into_raw(Box::new(f));
        // SAFETY: `attr` is initialised before use and destroyed after; `thread` is written by
        // pthread_create; on failure the leaked box is taken back and dropped.
        unsafe {
            let mut attr: libc::pthread_attr_t = core::mem::zeroed();
            if libc::pthread_attr_init(&mut attr) != 0 {
                drop(Box::from_raw(arg));
                return None;
            }
            libc::pthread_attr_setstacksize(&mut attr, WATCHER_STACK);
            let mut thread: libc::pthread_t = core::mem::zeroed();
            let rc = libc::pthread_create(&mut thread, &attr, start, arg.cast());
            libc::pthread_attr_destroy(&mut attr);
            if rc != 0 {
                drop(Box::from_raw(arg));
                return None;
            }
            #[cfg(target_os = "linux")]
            libc::pthread_setname_np(thread, c"hci-uart".as_ptr());
            Some(WatcherThread(thread))
        }
    }

    fn join(self) {
        // SAFETY: the thread was created joinable and is joined once, here.
        unsafe { libc::pthread_join(self.0, core::ptr::null_mut()) };
    }
}

/// Opens and configures the tty, or connects to the TCP endpoint, and starts the watcher
/// thread, which asks for polls through `wakeup`.
pub fn uart_open(wakeup: super::Wakeup) -> Result<(), super::UartError> {
    uart_close();
    let settings = Settings::read(|name| std::env::var(name).ok()).map_err(|why| {
        say(&format!("mp_bluetooth_hci_uart_init: {why}"));
        super::UartError::BadSetting
    })?;
    let (fd, socket, name) = match &settings.endpoint {
        Endpoint::Tty(path) => (open_tty(path), false, path.clone()),
        Endpoint::Tcp { host, port } => {
            let name = if host.contains(':') {
                format!("tcp:[{host}]:{port}")
            } else {
                format!("tcp:{host}:{port}")
            };
            (connect_tcp(host, *port), true, name)
        }
    };
    let Some(fd) = fd else {
        // The C module's message, on stdout, so scripts' output stays the same.
        say(&format!(
            "mp_bluetooth_hci_uart_init: Unable to open port {name}"
        ));
        return Err(super::UartError::Unavailable);
    };
    if !socket {
        configure_raw(fd, settings.baud, settings.rts_cts);
    }
    if let Some(path) = &settings.trace {
        if let Err(why) = trace_open(path, &name) {
            say(&format!("mp_bluetooth_hci_uart_init: {why}"));
            // SAFETY: `fd` was opened above and is not shared with anyone yet.
            unsafe { libc::close(fd) };
            return Err(super::UartError::BadSetting);
        }
    }
    // SAFETY: plain eventfd creation; the descriptor is owned by the Shared below.
    let rearm = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if rearm < 0 {
        // SAFETY: `fd` was opened above and is not shared with anyone yet.
        unsafe { libc::close(fd) };
        return Err(super::UartError::Unavailable);
    }
    // uart_open runs on the VM thread: the one to interrupt. Once the watcher thread (the
    // only user of the waker) has been joined by uart_close, nothing is signalled any more.
    let waker = VmWaker::for_current_thread();
    let shared = Arc::new(Shared {
        armed: Mutex::new(true),
        rearm,
        stop: AtomicBool::new(false),
    });
    let thread_shared = shared.clone();
    let reader =
        spawn_without_signals(move || watcher_loop(fd, socket, thread_shared, wakeup, waker));
    if reader.is_none() {
        // SAFETY: `fd` was opened above and is not shared with anyone yet.
        unsafe { libc::close(fd) };
        return Err(super::UartError::Unavailable);
    }
    *lock(&UART) = Some(Uart {
        fd,
        socket,
        shared,
        reader,
    });
    Ok(())
}

/// Stops the reader thread and closes the tty or socket. Idempotent.
pub fn uart_close() {
    let uart = lock(&UART).take();
    if let Some(mut u) = uart {
        u.shared.stop.store(true, Ordering::Release);
        u.shared.kick();
        if let Some(t) = u.reader.take() {
            t.join();
        }
        // SAFETY: the reader thread has exited, so nobody else uses `fd`.
        unsafe { libc::close(u.fd) };
    }
    trace_close();
}

/// Writes all of `data`, waiting for the tty or socket to drain when it is full (up to 1 s).
pub fn uart_write(data: &[u8]) -> bool {
    let (fd, socket) = match lock(&UART).as_ref() {
        Some(u) => (u.fd, u.socket),
        None => return false,
    };
    trace("tx", data.len(), Some(data));
    let mut off = 0;
    let mut stalls = 0;
    while off < data.len() {
        let rest = &data[off..];
        // SAFETY: `rest` is a valid readable slice.
        let n = unsafe {
            if socket {
                libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL)
            } else {
                libc::write(fd, rest.as_ptr().cast(), rest.len())
            }
        };
        if n > 0 {
            off += n as usize;
            continue;
        }
        let err = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        if n < 0 && err != libc::EAGAIN && err != libc::EINTR {
            trace("tx-fail", off, None);
            return false;
        }
        stalls += 1;
        if stalls > 1000 {
            trace("tx-fail", off, None);
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

/// Reads received bytes into `buf`; returns how many (0 when none are waiting). A read that
/// comes up short found the kernel's buffer empty, so the watcher may look again.
pub fn uart_read(buf: &mut [u8]) -> usize {
    let uart = lock(&UART);
    let Some(u) = uart.as_ref() else {
        return 0;
    };
    // SAFETY: `buf` is writable for its whole length; `u.fd` is open while the Uart is in
    // UART, whose lock we hold.
    let n = unsafe { libc::read(u.fd, buf.as_mut_ptr().cast(), buf.len()) };
    let n = if n > 0 { n as usize } else { 0 };
    if n < buf.len() {
        let mut armed = lock(&u.shared.armed);
        if !*armed {
            *armed = true;
            drop(armed);
            u.shared.kick();
        }
    }
    drop(uart);
    if n > 0 {
        trace("rx", n, Some(&buf[..n]));
    }
    n
}

/// Blocks until bytes are waiting or `timeout_ms` passes.
pub fn uart_wait_rx(timeout_ms: u32) {
    let fd = lock(&UART).as_ref().map(|u| u.fd);
    let Some(fd) = fd else {
        std::thread::sleep(Duration::from_millis(timeout_ms as u64));
        return;
    };
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let t0 = Instant::now();
    // SAFETY: `pfd` is a valid pollfd for one descriptor. Only this thread (the VM's) closes
    // it, in uart_close, so it is open for the whole wait.
    let ready = unsafe { libc::poll(&mut pfd, 1, timeout_ms.min(i32::MAX as u32) as i32) };
    if ready > 0 && bytes_waiting(fd) == 0 {
        // Hang-up or end of stream: ready at once with nothing to read. Wait out the time
        // rather than have the caller spin.
        let left = Duration::from_millis(timeout_ms as u64).saturating_sub(t0.elapsed());
        std::thread::sleep(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Settings, String> {
        Settings::read(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn defaults_are_todays_tty() {
        let want = Settings {
            endpoint: Endpoint::Tty(DEFAULT_DEVICE.into()),
            baud: libc::B1000000,
            rts_cts: true,
            trace: None,
        };
        assert_eq!(read(&[]), Ok(want));
        let empty = read(&[
            ("MICROPYBTUART", ""),
            ("MICROPYBTBAUD", ""),
            ("MICROPYBTFLOW", ""),
        ]);
        assert_eq!(
            empty.map(|s| s.endpoint),
            Ok(Endpoint::Tty(DEFAULT_DEVICE.into()))
        );
    }

    #[test]
    fn endpoints() {
        let ep = |v| parse_endpoint(v);
        assert_eq!(ep("/dev/ttyACM0"), Ok(Endpoint::Tty("/dev/ttyACM0".into())));
        assert_eq!(ep("hci0"), Ok(Endpoint::Tty("hci0".into())));
        let by_path = "/dev/serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0";
        assert_eq!(ep(by_path), Ok(Endpoint::Tty(by_path.into())));
        assert_eq!(ep("tcp:127.0.0.1:6402"), Ok(tcp("127.0.0.1", 6402)));
        assert_eq!(ep("TCP:localhost:1"), Ok(tcp("localhost", 1)));
        assert_eq!(ep("tcp:[::1]:65535"), Ok(tcp("::1", 65535)));
        for bad in [
            "foo:bar",
            "serial:/dev/ttyUSB0",
            "tcp:",
            "tcp:localhost",
            "tcp:localhost:",
            "tcp:localhost:0",
            "tcp:localhost:65536",
            "tcp:localhost:x",
            "tcp::6402",
            "tcp:::1:6402",
            "tcp:[localhost]:6402",
            "tcp:[::1:6402",
        ] {
            assert!(ep(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn baud_and_flow() {
        let s = read(&[("MICROPYBTBAUD", "115200"), ("MICROPYBTFLOW", "0")]).unwrap();
        assert_eq!((s.baud, s.rts_cts), (libc::B115200, false));
        let s = read(&[("MICROPYBTBAUD", "3000000"), ("MICROPYBTFLOW", "1")]).unwrap();
        assert_eq!((s.baud, s.rts_cts), (libc::B3000000, true));
        for bad in ["fast", "115201", "-1", "0", " 115200"] {
            let e = read(&[("MICROPYBTBAUD", bad)]).unwrap_err();
            assert!(e.starts_with(&format!("MICROPYBTBAUD={bad}: ")), "{e}");
        }
        for bad in ["2", "yes", "on"] {
            let e = read(&[("MICROPYBTFLOW", bad)]).unwrap_err();
            assert!(e.starts_with(&format!("MICROPYBTFLOW={bad}: ")), "{e}");
        }
        // Checked even when the endpoint is TCP and doesn't use them.
        assert!(read(&[("MICROPYBTUART", "tcp:h:1"), ("MICROPYBTFLOW", "2")]).is_err());
    }

    #[test]
    fn trace_file() {
        assert_eq!(read(&[("MICROPYBTTRACE", "")]).unwrap().trace, None);
        let s = read(&[("MICROPYBTTRACE", "/tmp/h4.log")]).unwrap();
        assert_eq!(s.trace.as_deref(), Some("/tmp/h4.log"));
    }
}
