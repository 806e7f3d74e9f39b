//! Raw bindings to the Apache NimBLE host as ubluetooth builds it (see build.rs).
//!
//! The `ble_npl_*` porting functions and the `ble_hci_trans_*` transport functions are not
//! bound here: ubluetooth implements them. Their types are.
#![no_std]
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
