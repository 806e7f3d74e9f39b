//! Compiles the Apache NimBLE host (the file set MicroPython's `extmod/nimble/nimble.mk` builds,
//! plus tinycrypt) with our syscfg and NPL header, and generates Rust bindings with bindgen.
//!
//! The NimBLE tree comes from `NIMBLE_DIR`, or from the cache `tools/deps.sh` fills
//! (`.cache/mynewt-nimble` at the workspace root). NimBLE's own UART transport
//! (`nimble/transport/uart`) is left out: ubluetooth frames H4 in Rust and implements the
//! `ble_hci_trans_*` functions itself.

use std::env;
use std::path::{Path, PathBuf};

const HOST_SOURCES: &[&str] = &[
    "ext/tinycrypt/src/aes_encrypt.c",
    "ext/tinycrypt/src/cmac_mode.c",
    "ext/tinycrypt/src/ecc.c",
    "ext/tinycrypt/src/ecc_dh.c",
    "ext/tinycrypt/src/utils.c",
    "nimble/host/services/gap/src/ble_svc_gap.c",
    "nimble/host/services/gatt/src/ble_svc_gatt.c",
    "nimble/host/src/ble_att.c",
    "nimble/host/src/ble_att_clt.c",
    "nimble/host/src/ble_att_cmd.c",
    "nimble/host/src/ble_att_svr.c",
    "nimble/host/src/ble_eddystone.c",
    "nimble/host/src/ble_gap.c",
    "nimble/host/src/ble_gattc.c",
    "nimble/host/src/ble_gatts.c",
    "nimble/host/src/ble_hs_adv.c",
    "nimble/host/src/ble_hs_atomic.c",
    "nimble/host/src/ble_hs.c",
    "nimble/host/src/ble_hs_cfg.c",
    "nimble/host/src/ble_hs_conn.c",
    "nimble/host/src/ble_hs_flow.c",
    "nimble/host/src/ble_hs_hci.c",
    "nimble/host/src/ble_hs_hci_cmd.c",
    "nimble/host/src/ble_hs_hci_evt.c",
    "nimble/host/src/ble_hs_hci_util.c",
    "nimble/host/src/ble_hs_id.c",
    "nimble/host/src/ble_hs_log.c",
    "nimble/host/src/ble_hs_mbuf.c",
    "nimble/host/src/ble_hs_misc.c",
    "nimble/host/src/ble_hs_mqueue.c",
    "nimble/host/src/ble_hs_pvcy.c",
    "nimble/host/src/ble_hs_startup.c",
    "nimble/host/src/ble_hs_stop.c",
    "nimble/host/src/ble_ibeacon.c",
    "nimble/host/src/ble_l2cap.c",
    "nimble/host/src/ble_l2cap_coc.c",
    "nimble/host/src/ble_l2cap_sig.c",
    "nimble/host/src/ble_l2cap_sig_cmd.c",
    "nimble/host/src/ble_monitor.c",
    "nimble/host/src/ble_sm_alg.c",
    "nimble/host/src/ble_sm.c",
    "nimble/host/src/ble_sm_cmd.c",
    "nimble/host/src/ble_sm_lgcy.c",
    "nimble/host/src/ble_sm_sc.c",
    "nimble/host/src/ble_store.c",
    "nimble/host/src/ble_store_util.c",
    "nimble/host/src/ble_uuid.c",
    "nimble/host/util/src/addr.c",
    "porting/nimble/src/endian.c",
    "porting/nimble/src/mem.c",
    "porting/nimble/src/nimble_port.c",
    "porting/nimble/src/os_mbuf.c",
    "porting/nimble/src/os_mempool.c",
    "porting/nimble/src/os_msys_init.c",
];

/// Include directories inside the NimBLE tree, after our own `include/` (which wins for
/// syscfg, logcfg, the NPL header and bsp).
const TREE_INCLUDES: &[&str] = &[
    "ext/tinycrypt/include",
    "nimble/host/include",
    "nimble/host/services/gap/include",
    "nimble/host/services/gatt/include",
    "nimble/host/store/ram/include",
    "nimble/host/util/include",
    "nimble/include",
    "nimble/transport/uart/include",
    "porting/nimble/include",
];

/// NimBLE sources compiled through a file of ours in `csrc/` that includes them unchanged and
/// adds a safety fix the tree lacks (see each file's comment), when the tree has the internals
/// the fix relies on; a newer tree (`NIMBLE_DIR`) that does not is compiled as it is.
const WRAPPED_SOURCES: &[(&str, &str, &[&str])] = &[
    (
        "nimble/host/src/ble_l2cap.c",
        "ubt_l2cap.c",
        &["ble_l2cap_coc_cleanup_chan(conn, chan);"],
    ),
    (
        "nimble/host/src/ble_l2cap_sig.c",
        "ubt_l2cap_sig.c",
        &[
            "static struct ble_l2cap_sig_proc_list ble_l2cap_sig_procs;",
            "proc->disconnect.chan = chan;",
            "struct ble_l2cap_chan *chan[BLE_L2CAP_MAX_COC_CONN_REQ];",
        ],
    ),
];

/// Whether every file in [`WRAPPED_SOURCES`] has the text its wrapper relies on.
fn wrappers_fit(tree: &Path) -> bool {
    WRAPPED_SOURCES.iter().all(|(src, _, needs)| {
        std::fs::read_to_string(tree.join(src))
            .map(|text| needs.iter().all(|n| text.contains(n)))
            .unwrap_or(false)
    })
}

fn nimble_dir(manifest_dir: &Path) -> PathBuf {
    // An empty NIMBLE_DIR (e.g. exported unset by make) means "not set".
    if let Some(dir) = env::var_os("NIMBLE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    manifest_dir.join("../.cache/mynewt-nimble")
}

/// Limits a firmware may set from the environment at build time, with the range each accepts;
/// unset ones keep syscfg.h's defaults.
const BUILD_SETTINGS: &[(&str, u32, u32)] = &[
    ("UBT_MAX_CONNECTIONS", 1, 32),
    ("UBT_L2CAP_MAX_CHANNELS", 1, 32),
    ("UBT_L2CAP_RX_CREDITS", 0, 255),
];

/// The parts of NimBLE a firmware may leave out: a Cargo feature each, and the macro syscfg.h
/// reads (1 when the feature is on).
const PARTS: &[(&str, &str)] = &[
    ("CARGO_FEATURE_CENTRAL", "UBT_CENTRAL"),
    ("CARGO_FEATURE_PERIPHERAL", "UBT_PERIPHERAL"),
    ("CARGO_FEATURE_GATT_CLIENT", "UBT_GATT_CLIENT"),
    ("CARGO_FEATURE_L2CAP", "UBT_L2CAP"),
    ("CARGO_FEATURE_SECURITY", "UBT_SECURITY"),
];

/// The build settings given in the environment, each checked to be a number in its range: a
/// typo must fail the build rather than silently build the default.
fn build_settings() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for &(name, min, max) in BUILD_SETTINGS {
        println!("cargo:rerun-if-env-changed={name}");
        let Some(raw) = env::var_os(name).filter(|v| !v.is_empty()) else {
            continue;
        };
        let raw = raw.to_string_lossy();
        match raw.trim().parse::<u32>() {
            Ok(v) if (min..=max).contains(&v) => out.push((name, v.to_string())),
            _ => panic!("{name}={raw}: expected a whole number from {min} to {max}"),
        }
    }
    out
}

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let tree = nimble_dir(&manifest_dir);
    println!("cargo:rerun-if-env-changed=NIMBLE_DIR");
    println!("cargo:rerun-if-changed=include");
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=csrc");
    if !tree.join("nimble/host/src/ble_hs.c").is_file() {
        panic!(
            "NimBLE tree not found at {}: run tools/deps.sh nimble, or set NIMBLE_DIR",
            tree.display()
        );
    }
    let tree = tree.canonicalize().expect("NimBLE tree path");
    let our_include = manifest_dir.join("include");
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let sanitize = env::var_os("CARGO_FEATURE_SANITIZE").is_some();
    let mut settings = build_settings();
    for (feature, name) in PARTS {
        let on = env::var_os(feature).is_some();
        settings.push((name, if on { "1" } else { "0" }.to_string()));
    }

    let mut build = cc::Build::new();
    build.include(&our_include);
    for inc in TREE_INCLUDES {
        build.include(tree.join(inc));
    }
    let wrap = wrappers_fit(&tree);
    if !wrap {
        println!(
            "cargo:warning=NimBLE tree at {} differs from the one csrc/ was written for: \
             its L2CAP sources are compiled without our fixes",
            tree.display()
        );
    }
    // The wrappers include their NimBLE file by name.
    build.include(tree.join("nimble/host/src"));
    for src in HOST_SOURCES {
        match WRAPPED_SOURCES.iter().find(|(s, _, _)| s == src) {
            Some((_, ours, _)) if wrap => build.file(manifest_dir.join("csrc").join(ours)),
            _ => build.file(tree.join(src)),
        };
    }
    build
        .std("gnu99")
        .flag_if_supported("-ffunction-sections")
        .flag_if_supported("-fdata-sections")
        // NimBLE 1.3's own code trips these; they are not ours to fix in its sources.
        .flag_if_supported("-Wno-maybe-uninitialized")
        .flag_if_supported("-Wno-pointer-arith")
        .flag_if_supported("-Wno-unused-but-set-variable")
        .flag_if_supported("-Wno-format")
        .flag_if_supported("-Wno-sign-compare")
        .flag_if_supported("-Wno-old-style-declaration")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-missing-field-initializers")
        .flag_if_supported("-Wno-implicit-fallthrough")
        .flag_if_supported("-Wno-unused-function")
        .define("NDEBUG", None);
    for (name, value) in &settings {
        build.define(name, value.as_str());
    }
    if target.starts_with("thumbv7em") {
        build
            .compiler("arm-none-eabi-gcc")
            .archiver("arm-none-eabi-ar")
            .flag("-mthumb")
            .flag("-mcpu=cortex-m4")
            .flag("-mfloat-abi=hard")
            .flag("-mfpu=fpv4-sp-d16")
            .flag("-Os");
    }
    if sanitize {
        build
            .flag("-fsanitize=undefined")
            .flag("-fsanitize=alignment")
            .flag("-fno-sanitize-recover=all")
            .flag("-fno-omit-frame-pointer");
        println!("cargo:rustc-link-lib=dylib=ubsan");
    }
    build.compile("nimble");

    // Bindings, generated for the target's own pointer size and ABI.
    let mut clang_args: Vec<String> = vec![format!("-I{}", our_include.display())];
    // The settings go to bindgen in a header rather than as -D flags: bindgen evaluates a macro
    // such as MYNEWT_VAL_BLE_L2CAP_COC_MAX_NUM only when every macro it uses was defined in a
    // file, so one defined in terms of a -D value would be missing from the bindings.
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let settings_h = out_dir.join("ubt_build_settings.h");
    let mut text = String::from("/* Generated by nimble-sys's build.rs from the environment. */\n");
    for (name, value) in &settings {
        text.push_str(&format!("#define {name} {value}\n"));
    }
    std::fs::write(&settings_h, text).expect("write ubt_build_settings.h");
    clang_args.push("-include".into());
    clang_args.push(settings_h.display().to_string());
    for inc in TREE_INCLUDES {
        clang_args.push(format!("-I{}", tree.join(inc).display()));
    }
    if target.starts_with("thumbv7em") {
        clang_args.push("--target=thumbv7em-none-eabihf".into());
        // newlib's headers, from Debian's libnewlib-arm-none-eabi.
        clang_args.push("-isystem/usr/lib/arm-none-eabi/include".into());
        // The compiler's own headers (stddef.h, stdint-gcc.h) come from arm-none-eabi-gcc.
        if let Ok(out) = std::process::Command::new("arm-none-eabi-gcc")
            .arg("-print-file-name=include")
            .output()
        {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            clang_args.push(format!("-isystem{dir}"));
        }
    }
    let bindings = bindgen::Builder::default()
        .header(manifest_dir.join("wrapper.h").to_string_lossy())
        .clang_args(&clang_args)
        .use_core()
        .ctypes_prefix("core::ffi")
        .layout_tests(false)
        .generate_comments(false)
        .derive_default(true)
        .allowlist_function("(ble|os|nimble)_.*")
        .allowlist_type("(ble|os)_.*")
        .allowlist_var("ble_hs_cfg")
        // Our syscfg values, so tests can check them against the spec.
        .allowlist_var("MYNEWT_VAL_.*")
        .allowlist_var("UBT_.*")
        .allowlist_var("(BLE|OS|BLE_HS|BLE_GAP|BLE_HCI|BLE_ADDR|BLE_ERR|BLE_ATT|BLE_SM)_.*")
        // These are ours (Rust) or the embedder's; bindgen only needs their types.
        .blocklist_function("ble_npl_.*")
        .blocklist_function("ble_hci_trans_.*")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed on the NimBLE headers");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings");
}
