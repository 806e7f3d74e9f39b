//! Writes `micropython_glue/ubluetooth.h`, the C view of `src/ffi/`, with cbindgen.
//!
//! The header lives next to the shim (and is committed) so that MicroPython's build, which
//! scans C sources for qstrs before anything else runs, always finds it.

use std::env;
use std::path::PathBuf;

fn main() {
    let crate_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let out = crate_dir.join("micropython_glue").join("ubluetooth.h");
    // Only the shim's surface: the FFI functions, the types they use, and the hooks the core
    // imports from C (declared here so the C compiler checks the shim's definitions).
    let mut builder = cbindgen::Builder::new().with_config(config);
    for file in [
        // cbindgen follows `mod` items, so this brings the whole `ffi` layer.
        "ffi/mod.rs",
        "host/gatts.rs",
        "uuid.rs",
        "event.rs",
        "error.rs",
        "port/mod.rs",
    ] {
        builder = builder.with_src(crate_dir.join("src").join(file));
    }
    match builder.generate() {
        // write_to_file leaves the file alone when nothing changed, so make doesn't rebuild.
        Ok(bindings) => {
            bindings.write_to_file(&out);
        }
        // A half-edited source shouldn't hide rustc's own (better) error messages.
        Err(e) => println!("cargo:warning=cbindgen could not generate ubluetooth.h: {e}"),
    }
}
