//! The in-process stand-ins for what the firmware gives the library: MicroPython's clock,
//! scheduler and IRQ call, NimBLE's heap, and the HCI UART, which here leads to a scripted
//! controller that answers every command the host sends. Shared by the fuzz targets.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::VecDeque;

use ubluetooth::event::{IrqArg, IrqArgKind, IrqResult};

/// The controller: bytes for the host, and what it does with the host's commands.
#[derive(Default)]
pub struct Controller {
    pub to_host: VecDeque<u8>,
    pub from_host: Vec<u8>,
    /// Answer commands only while this is non-zero; counts down with each command.
    pub answers_left: u32,
    /// Virtual milliseconds.
    pub now_ms: u32,
    pub events_delivered: u64,
}

thread_local! {
    static CTRL: RefCell<Controller> = RefCell::new(Controller::default());
}

/// UBT_FUZZ_TRACE set: print each command the controller answers (read once, not per command).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("UBT_FUZZ_TRACE").is_some())
}

pub fn with<R>(f: impl FnOnce(&mut Controller) -> R) -> R {
    CTRL.with(|c| f(&mut c.borrow_mut()))
}

/// Return parameters (after the status byte) of a Command Complete for `opcode`: zeros of the
/// length NimBLE checks, with the values it needs to make progress set.
fn return_params(opcode: u16) -> Vec<u8> {
    match opcode {
        0x1001 => vec![0x0b, 0, 0, 0x0b, 0xff, 0xff, 0, 0], // Read Local Version: 5.2
        0x1002 => vec![0xff; 64],                           // Read Local Supported Commands
        0x1003 => vec![0xff; 8],                            // Read Local Supported Features
        0x1005 => vec![0xfb, 0, 0, 8, 0, 0, 0],             // Read Buffer Size
        0x1009 => vec![0x11, 0x22, 0x33, 0x44, 0x55, 0x66], // Read BD_ADDR
        0x1405 => vec![0, 0, 0],                            // Read RSSI
        0x2002 => vec![0xfb, 0, 8],                         // LE Read Buffer Size: 251 x 8
        0x2003 => vec![0xff, 0x7f, 0, 0, 0, 0, 0, 0],       // LE Read Local Supported Features
        0x2007 => vec![0],                                  // LE Read Adv Channel TX Power
        0x200f => vec![8],                                  // LE Read Filter Accept List Size
        0x2017 => vec![0x5a; 16],                           // LE Encrypt
        0x2018 => vec![0xa5; 8],                            // LE Rand
        0x201a | 0x201b => vec![0, 0],                      // LE LTK (Negative) Reply: handle
        0x201c => vec![0xff; 8],                            // LE Read Supported States
        0x2022 => vec![0, 0],                               // LE Set Data Length: handle
        0x2023 => vec![0xfb, 0, 0x48, 0x08],                // LE Read Suggested Default DL
        0x202a => vec![8],                                  // LE Read Resolving List Size
        0x202f => vec![0xfb, 0, 0x48, 0x08, 0xfb, 0, 0x48, 0x08], // LE Read Maximum DL
        0x2030 => vec![0, 0, 1, 1],                         // LE Read PHY
        _ => Vec::new(),
    }
}

/// Commands answered with Command Status (their result comes later as an event).
fn answered_with_status(opcode: u16) -> bool {
    matches!(
        opcode,
        0x0405 | 0x0406 | 0x200d | 0x2013 | 0x2016 | 0x2019 | 0x2025 | 0x2026 | 0x2032
    )
}

impl Controller {
    fn event(&mut self, code: u8, params: &[u8]) {
        self.to_host.push_back(0x04);
        self.to_host.push_back(code);
        self.to_host.push_back(params.len() as u8);
        self.to_host.extend(params);
    }

    /// Takes whole H4 commands from `from_host` and answers them.
    fn serve(&mut self) {
        loop {
            match self.from_host.as_slice() {
                [0x01, lo, hi, len, rest @ ..] if rest.len() >= usize::from(*len) => {
                    let opcode = u16::from_le_bytes([*lo, *hi]);
                    let params = rest[..usize::from(*len)].to_vec();
                    self.from_host.drain(..4 + usize::from(*len));
                    self.answer(opcode, &params);
                }
                [0x02, _, _, lo, hi, rest @ ..] => {
                    // ACL from the host: swallowed once whole.
                    let n = usize::from(u16::from_le_bytes([*lo, *hi]));
                    if rest.len() < n {
                        return;
                    }
                    self.from_host.drain(..5 + n);
                }
                [] => return,
                [0x01, ..] | [0x02, ..] => return, // not whole yet
                _ => {
                    // The host never sends anything else; if it did, that's a bug to find.
                    panic!("host wrote a bad H4 stream: {:02x?}", self.from_host);
                }
            }
        }
    }

    fn answer(&mut self, opcode: u16, params: &[u8]) {
        if trace() {
            eprintln!(
                "{:>8} ms  command {opcode:04x} {params:02x?} (queued for host: {:02x?})",
                self.now_ms, self.to_host
            );
        }
        if self.answers_left == 0 {
            return;
        }
        self.answers_left -= 1;
        let [lo, hi] = opcode.to_le_bytes();
        if answered_with_status(opcode) {
            self.event(0x0f, &[0, 1, lo, hi]);
            if opcode == 0x0406 {
                // Disconnect: the link goes down at once.
                let (h0, h1) = (
                    params.first().copied().unwrap_or(0),
                    params.get(1).copied().unwrap_or(0),
                );
                self.event(0x05, &[0, h0, h1, 0x16]);
            }
            return;
        }
        let mut p = vec![1, lo, hi, 0];
        p.extend(return_params(opcode));
        self.event(0x0e, &p);
    }
}

// --- What the firmware would provide -----------------------------------------------------------

#[no_mangle]
extern "C" fn ubt_glue_ticks_ms() -> u32 {
    with(|c| c.now_ms)
}

#[no_mangle]
extern "C" fn ubt_glue_schedule_poll() -> bool {
    true
}

/// The script's handler: reads every byte it is given (so a bad pointer or length shows up)
/// and answers None.
#[no_mangle]
unsafe extern "C" fn ubt_glue_irq(
    _event: u16,
    args: *const IrqArg,
    n_args: usize,
    _out: *mut u8,
    _out_cap: usize,
) -> IrqResult {
    // SAFETY: the library passes `n_args` valid items.
    let args = unsafe { std::slice::from_raw_parts(args, n_args) };
    let mut sum = 0u8;
    for a in args {
        if a.kind == IrqArgKind::Bytes && a.len > 0 {
            // SAFETY: a Bytes item points at `len` readable bytes for the handler's duration.
            let data = unsafe { std::slice::from_raw_parts(a.ptr, a.len) };
            sum = data.iter().fold(sum, |s, b| s.wrapping_add(*b));
        }
    }
    std::hint::black_box(sum);
    with(|c| c.events_delivered += 1);
    IrqResult {
        handled: true,
        value: 0,
        out_len: -1,
    }
}

#[no_mangle]
extern "C" fn ubt_nimble_malloc(size: usize) -> *mut u8 {
    // SAFETY: plain C allocation.
    unsafe { libc_malloc(size) }
}

#[no_mangle]
extern "C" fn ubt_nimble_free(ptr: *mut u8) {
    // SAFETY: NimBLE frees only what it got from ubt_nimble_malloc/realloc.
    unsafe { libc_free(ptr) }
}

#[no_mangle]
extern "C" fn ubt_nimble_realloc(ptr: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: as above.
    unsafe { libc_realloc(ptr, size) }
}

extern "C" {
    #[link_name = "malloc"]
    fn libc_malloc(size: usize) -> *mut u8;
    #[link_name = "free"]
    fn libc_free(ptr: *mut u8);
    #[link_name = "realloc"]
    fn libc_realloc(ptr: *mut u8, size: usize) -> *mut u8;
}

#[no_mangle]
extern "C" fn ubt_port_hci_uart_open() -> i32 {
    0
}

#[no_mangle]
extern "C" fn ubt_port_hci_uart_close() {}

#[no_mangle]
unsafe extern "C" fn ubt_port_hci_uart_write(buf: *const u8, len: usize) -> i32 {
    // SAFETY: the library passes a valid slice.
    let data = unsafe { std::slice::from_raw_parts(buf, len) };
    with(|c| {
        c.from_host.extend_from_slice(data);
        c.serve();
    });
    0
}

#[no_mangle]
unsafe extern "C" fn ubt_port_hci_uart_read(buf: *mut u8, len: usize) -> usize {
    with(|c| {
        let n = len.min(c.to_host.len());
        for i in 0..n {
            // SAFETY: `i < len`, and the library passes `len` writable bytes.
            unsafe { *buf.add(i) = c.to_host.pop_front().unwrap_or(0) };
        }
        n
    })
}

#[no_mangle]
extern "C" fn ubt_port_hci_uart_wait_rx(timeout_ms: u32) {
    // Nothing arrives while waiting unless already there: time just passes.
    with(|c| {
        if c.to_host.is_empty() {
            c.now_ms = c.now_ms.wrapping_add(timeout_ms);
        }
    });
}
