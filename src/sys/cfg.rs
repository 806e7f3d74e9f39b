//! NimBLE's global host configuration (`ble_hs_cfg`): callbacks and security settings. This
//! is the only module that touches it.

use nimble_sys as ns;

use crate::thread::NimbleThread;

/// Runs `f` with NimBLE's host configuration. The reference can't outlive the call.
pub fn with<R>(_t: NimbleThread, f: impl FnOnce(&mut ns::ble_hs_cfg) -> R) -> R {
    // SAFETY: `ble_hs_cfg` is NimBLE's global configuration, only read or written on the
    // NimBLE thread, which the token proves we are on. NimBLE reads fields, never a reference
    // it kept, and the reference made here ends with `f`, so no two references coexist.
    let cfg = unsafe { &mut *core::ptr::addr_of_mut!(ns::ble_hs_cfg) };
    f(cfg)
}
