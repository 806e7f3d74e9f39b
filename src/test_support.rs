//! Stand-ins for the C shim's functions, so `cargo test` links without MicroPython.

use crate::event::{IrqArg, IrqResult};

#[no_mangle]
extern "C" fn ubt_glue_ticks_ms() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u32)
        .unwrap_or(0)
}

#[no_mangle]
extern "C" fn ubt_glue_schedule_poll() -> bool {
    true
}

#[no_mangle]
extern "C" fn ubt_glue_irq(
    _event: u16,
    _args: *const IrqArg,
    _n_args: usize,
    _out: *mut u8,
    _out_cap: usize,
) -> IrqResult {
    IrqResult::default()
}
