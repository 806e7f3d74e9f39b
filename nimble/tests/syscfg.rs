//! Our syscfg (nimble/include/syscfg/syscfg.h) holds the values that shape what scripts see,
//! as MicroPython v1.25's NimBLE build sets them (spec §12). A changed value changes handle
//! numbering, limits or error codes, so each one is pinned here.

use nimble_sys as ns;

#[test]
fn roles_and_advertising() {
    assert_eq!(ns::MYNEWT_VAL_BLE_ROLE_BROADCASTER, 1);
    assert_eq!(ns::MYNEWT_VAL_BLE_ROLE_OBSERVER, 1);
    assert_eq!(ns::MYNEWT_VAL_BLE_ROLE_CENTRAL, 1);
    assert_eq!(ns::MYNEWT_VAL_BLE_ROLE_PERIPHERAL, 1);
    assert_eq!(ns::MYNEWT_VAL_BLE_WHITELIST, 1);
    // Legacy PDUs only: 31-byte payloads, legacy scan reports.
    assert_eq!(ns::MYNEWT_VAL_BLE_EXT_ADV, 0);
    assert_eq!(ns::MYNEWT_VAL_BLE_MULTI_ADV_INSTANCES, 0);
}

/// UBT_MAX_CONNECTIONS as the build was given it (the same environment builds nimble-sys), or
/// unset, its default: the C module's 4 on Cortex-M, where RAM is short; 8 on a Unix host.
fn expected_max_connections() -> u32 {
    match option_env!("UBT_MAX_CONNECTIONS").filter(|v| !v.is_empty()) {
        Some(v) => v.trim().parse().expect("nimble-sys's build checked it"),
        None if cfg!(target_arch = "arm") => 4,
        None => 8,
    }
}

#[test]
fn connections_att_and_gatt() {
    assert_eq!(
        ns::MYNEWT_VAL_BLE_MAX_CONNECTIONS,
        expected_max_connections()
    );
    assert_eq!(ns::MYNEWT_VAL_BLE_ATT_PREFERRED_MTU, 256);
    // Shared by all links, whatever their number (docs/api.md, "More connections").
    assert_eq!(ns::MYNEWT_VAL_BLE_GATT_MAX_PROCS, 4);
}

#[test]
fn l2cap() {
    // Channels at once (build setting UBT_L2CAP_MAX_CHANNELS): 8 on Unix, 4 on Cortex-M.
    let max_channels = if cfg!(target_arch = "arm") { 4 } else { 8 };
    assert_eq!(ns::MYNEWT_VAL_BLE_L2CAP_COC_MAX_NUM, max_channels);
    // Credits a receiving channel's peer holds (build setting UBT_L2CAP_RX_CREDITS): off by
    // default, NimBLE's one SDU.
    assert_eq!(ns::UBT_L2CAP_RX_CREDITS, 0);
    // A connect or disconnect in flight on every channel, and an update on every link.
    assert_eq!(
        ns::MYNEWT_VAL_BLE_L2CAP_SIG_MAX_PROCS,
        ns::MYNEWT_VAL_BLE_L2CAP_COC_MAX_NUM + ns::MYNEWT_VAL_BLE_MAX_CONNECTIONS
    );
    assert_eq!(
        ns::MYNEWT_VAL_BLE_L2CAP_COC_MPS,
        ns::MYNEWT_VAL_MSYS_1_BLOCK_SIZE - 8
    );
    assert_eq!(ns::MYNEWT_VAL_BLE_L2CAP_ENHANCED_COC, 0);
    assert_eq!(ns::MYNEWT_VAL_BLE_L2CAP_JOIN_RX_FRAGS, 1);
    // Three fixed channels per link; NimBLE's pool adds COC_MAX_NUM for our channels.
    assert_eq!(
        ns::MYNEWT_VAL_BLE_L2CAP_MAX_CHANS,
        3 * ns::MYNEWT_VAL_BLE_MAX_CONNECTIONS
    );
}

#[test]
fn security_manager_defaults() {
    assert_eq!(ns::MYNEWT_VAL_BLE_SM_LEGACY, 1);
    assert_eq!(ns::MYNEWT_VAL_BLE_SM_SC, 1);
    assert_eq!(ns::MYNEWT_VAL_BLE_SM_MITM, 0);
    assert_eq!(ns::MYNEWT_VAL_BLE_SM_BONDING, 0);
    assert_eq!(ns::MYNEWT_VAL_BLE_SM_OUR_KEY_DIST, 7);
    assert_eq!(ns::MYNEWT_VAL_BLE_SM_THEIR_KEY_DIST, 7);
    // The host config starts from syscfg: io capability 3 (NoInputNoOutput), SC on.
    // SAFETY: reading NimBLE's statically initialised global before anything runs.
    let cfg = unsafe { *core::ptr::addr_of!(ns::ble_hs_cfg) };
    assert_eq!(cfg.sm_io_cap, 3);
    assert_eq!(cfg.sm_sc(), 1);
    assert_eq!(cfg.sm_bonding(), 0);
    assert_eq!(cfg.sm_mitm(), 0);
}

#[test]
fn memory_and_host() {
    assert_eq!(ns::MYNEWT_VAL_MSYS_1_BLOCK_COUNT, 12);
    assert_eq!(ns::MYNEWT_VAL_MSYS_1_BLOCK_SIZE, 292);
    assert_eq!(ns::MYNEWT_VAL_MSYS_2_BLOCK_COUNT, 0);
    assert_eq!(ns::MYNEWT_VAL_BLE_ACL_BUF_COUNT, 12);
    assert_eq!(ns::MYNEWT_VAL_BLE_ACL_BUF_SIZE, 255);
    assert_eq!(ns::MYNEWT_VAL_BLE_HCI_EVT_HI_BUF_COUNT, 8);
    assert_eq!(ns::MYNEWT_VAL_BLE_HCI_EVT_LO_BUF_COUNT, 8);
    assert_eq!(ns::MYNEWT_VAL_BLE_HS_FLOW_CTRL, 0);
    assert_eq!(ns::MYNEWT_VAL_BLE_HS_AUTO_START, 1);
    assert_eq!(ns::MYNEWT_VAL_BLE_HS_STOP_ON_SHUTDOWN_TIMEOUT, 2000);
    assert_eq!(ns::MYNEWT_VAL_BLE_RPA_TIMEOUT, 300);
    assert_eq!(ns::MYNEWT_VAL_BLE_SVC_GAP_DEVICE_NAME_MAX_LENGTH, 31);
}

#[test]
fn pools_are_aligned_for_this_host() {
    // 64-bit hosts need 8-byte pool alignment (mbuf headers hold pointers).
    assert!(ns::OS_ALIGNMENT as usize >= core::mem::align_of::<*const u8>());
}
