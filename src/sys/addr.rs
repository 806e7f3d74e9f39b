//! Our identity addresses and the connection descriptors NimBLE keeps.

use core::ptr;

use nimble_sys as ns;

use crate::error::{check, Error};
use crate::handle::ConnHandle;
use crate::thread::NimbleThread;

/// A peer address as scripts give it (most-significant byte first) in NimBLE's form
/// (least-significant byte first).
pub fn from_script(addr_type: u8, addr: &[u8; 6]) -> ns::ble_addr_t {
    let mut val = *addr;
    val.reverse();
    ns::ble_addr_t {
        type_: addr_type,
        val,
    }
}

/// The controller's public address (least-significant byte first), if it has one.
pub fn public(_t: NimbleThread) -> Option<[u8; 6]> {
    let mut addr = [0u8; 6];
    // SAFETY: `addr` is a 6-byte buffer, as NimBLE requires; called on the NimBLE thread.
    let rc = unsafe {
        ns::ble_hs_id_copy_addr(
            ns::BLE_ADDR_PUBLIC as u8,
            addr.as_mut_ptr(),
            ptr::null_mut(),
        )
    };
    (rc == 0 && addr != [0; 6]).then_some(addr)
}

/// Our address of `addr_type` (public or random), least-significant byte first.
pub fn ours(_t: NimbleThread, addr_type: u8) -> Result<[u8; 6], Error> {
    let mut addr = [0u8; 6];
    // SAFETY: `addr` is a 6-byte buffer; called on the NimBLE thread.
    check(unsafe { ns::ble_hs_id_copy_addr(addr_type, addr.as_mut_ptr(), ptr::null_mut()) })?;
    Ok(addr)
}

/// Makes a new random address (static, or with `nrpa` a non-resolvable private one) and
/// makes it our random address.
pub fn set_new_random(_t: NimbleThread, nrpa: bool) -> Result<(), Error> {
    let mut addr = ns::ble_addr_t::default();
    // SAFETY: `addr` is a valid out-parameter; called on the NimBLE thread.
    check(unsafe { ns::ble_hs_id_gen_rnd(i32::from(nrpa), &mut addr) })?;
    // SAFETY: `addr.val` is 6 readable bytes.
    check(unsafe { ns::ble_hs_id_set_rnd(addr.val.as_ptr()) })
}

/// The connection's descriptor, if NimBLE knows the handle.
pub fn conn_desc(_t: NimbleThread, conn_handle: ConnHandle) -> Option<ns::ble_gap_conn_desc> {
    let mut desc = ns::ble_gap_conn_desc::default();
    // SAFETY: `desc` is a valid out-parameter; called on the NimBLE thread.
    (unsafe { ns::ble_gap_conn_find(conn_handle.0, &mut desc) } == 0).then_some(desc)
}
