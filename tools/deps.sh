#!/usr/bin/env bash
# Fetches everything the build and the tests need, into git-ignored caches.
# Idempotent: every step checks for its result first, so a second run takes seconds.
#
#   tools/deps.sh            all steps
#   tools/deps.sh micropython|nimble|system|venv|rootcanal|mpy_stubs|rust|fuzz
#
# MICROPY_DIR / NIMBLE_DIR, when set, replace the fetched MicroPython / NimBLE trees.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
mkdir -p "$CACHE"

MICROPY_VERSION=1.25.0
NIMBLE_CRATE=apache-nimble-sys
NIMBLE_CRATE_VERSION=0.0.1
NIMBLE_CRATE_SHA256=7ad3e1d3629d4253c6ea26074b221789fd2a7b89cb3b793ab25feee100a4aaef
BUMBLE_VERSION=0.0.236
# 1.10.0 is the newest whose prebuilt binary runs on Debian 12 (later ones need glibc 2.38).
ROOTCANAL_VERSION=1.10.0
MYPY_VERSION=2.4.1
MPY_STUBS_VERSION=1.29.0.post1
MPY_STDLIB_STUBS_VERSION=1.29.0.post2
CARGO_FUZZ_VERSION=0.13.2

say() { printf '[deps] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

step_system() {
    local want=(libclang-dev clang libffi-dev pkg-config gcc-arm-none-eabi libnewlib-arm-none-eabi xz-utils
        qemu-system-arm)
    local missing=()
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

step_rust() {
    if ! rustup target list --installed | grep -qx thumbv7em-none-eabihf; then
        say "adding Rust target thumbv7em-none-eabihf"
        rustup target add thumbv7em-none-eabihf >/dev/null
    fi
}

# cargo-fuzz, for tools/fuzz.sh, in the cache rather than the user's ~/.cargo/bin.
step_fuzz() {
    local root="$CACHE/cargo-fuzz"
    if [ -x "$root/bin/cargo-fuzz" ] && "$root/bin/cargo-fuzz" --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION"; then
        return
    fi
    say "building cargo-fuzz $CARGO_FUZZ_VERSION (about a minute)"
    cargo install -q --locked --root "$root" "cargo-fuzz@$CARGO_FUZZ_VERSION"
}

# MicroPython from Debian's source package, through a private apt configuration so the
# system's own sources and lists stay untouched. The mirror is the one the system already uses.
step_micropython() {
    if [ -n "${MICROPY_DIR:-}" ]; then
        say "using MICROPY_DIR=$MICROPY_DIR"
        return
    fi
    local dest="$CACHE/micropython-$MICROPY_VERSION"
    [ -f "$dest/py/mpconfig.h" ] && return
    say "fetching MicroPython $MICROPY_VERSION source (Debian trixie)"
    local apt="$CACHE/apt"
    mkdir -p "$apt/lists/partial" "$apt/src"
    local mirror
    mirror="$(grep -hoE '^URIs: *[^ ]+/debian$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | sed 's/^URIs: *//')"
    if [ -z "$mirror" ]; then
        mirror="$(grep -hoE '^deb +[^ ]+/debian ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')"
    fi
    [ -n "$mirror" ] || { say "no Debian mirror found in /etc/apt"; exit 1; }
    echo "deb-src $mirror trixie main" >"$apt/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "APT::Sandbox::User=root")
    mkdir -p "$apt/cache/archives/partial"
    apt-get "${opts[@]}" -qq update
    (cd "$apt/src" && apt-get "${opts[@]}" -qq source --download-only "micropython=$MICROPY_VERSION+ds*" >/dev/null 2>&1 ||
        apt-get "${opts[@]}" -qq source --download-only micropython >/dev/null)
    local tarball
    tarball="$(ls "$apt/src"/micropython_"$MICROPY_VERSION"*.orig.tar.* | head -1)"
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    tar -xf "$tarball" -C "$dest.tmp" --strip-components=1
    mv "$dest.tmp" "$dest"
}

# NimBLE: the mynewt-nimble/ tree inside the crates.io package apache-nimble-sys, fetched by
# cargo itself (so the registry's own checksum applies) and pinned here by sha256 too.
step_nimble() {
    if [ -n "${NIMBLE_DIR:-}" ]; then
        say "using NIMBLE_DIR=$NIMBLE_DIR"
        return
    fi
    local dest="$CACHE/mynewt-nimble"
    [ -f "$dest/nimble/host/src/ble_hs.c" ] && return
    say "fetching NimBLE ($NIMBLE_CRATE $NIMBLE_CRATE_VERSION from crates.io)"
    local proj="$CACHE/nimble-fetch"
    mkdir -p "$proj/src"
    cat >"$proj/Cargo.toml" <<EOF
[package]
name = "nimble-fetch"
version = "0.0.0"
edition = "2021"
[dependencies]
$NIMBLE_CRATE = "=$NIMBLE_CRATE_VERSION"
[workspace]
EOF
    : >"$proj/src/lib.rs"
    cargo fetch --quiet --manifest-path "$proj/Cargo.toml"
    local crate
    crate="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$NIMBLE_CRATE-$NIMBLE_CRATE_VERSION.crate" | head -1)"
    local sum
    sum="$(sha256sum "$crate" | awk '{print $1}')"
    if [ "$sum" != "$NIMBLE_CRATE_SHA256" ]; then
        say "checksum mismatch for $crate: $sum"
        exit 1
    fi
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    tar -xzf "$crate" -C "$dest.tmp" --strip-components=2 "$NIMBLE_CRATE-$NIMBLE_CRATE_VERSION/mynewt-nimble"
    mv "$dest.tmp" "$dest"
}

step_venv() {
    local venv="$CACHE/venv"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import bumble, importlib.metadata as m; assert m.version('bumble') == '$BUMBLE_VERSION'; assert m.version('mypy') == '$MYPY_VERSION'" 2>/dev/null; then
        return
    fi
    say "creating Python venv with bumble $BUMBLE_VERSION and mypy $MYPY_VERSION"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "bumble==$BUMBLE_VERSION" pytest "mypy==$MYPY_VERSION"
}

# RootCanal, Android's virtual controller, as a second radio for the multitests: the PyPI
# package ships the prebuilt binary (tests/harness/rootcanal_link.py finds it).
step_rootcanal() {
    local venv="$CACHE/venv"
    if "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('rootcanal') == '$ROOTCANAL_VERSION'" 2>/dev/null; then
        return
    fi
    say "installing rootcanal $ROOTCANAL_VERSION into the venv"
    "$venv/bin/pip" install -q "rootcanal==$ROOTCANAL_VERSION"
}

# MicroPython's own library stubs (time.sleep_ms, micropython.const, ...) for type-checking the
# examples. They are loose .pyi files plus a MicroPython typeshed, so they get their own folder
# rather than the venv's site-packages, where mypy would not look for them.
step_mpy_stubs() {
    local dest="$CACHE/mpy-stubs-$MPY_STUBS_VERSION"
    [ -f "$dest/time.pyi" ] && return
    say "fetching MicroPython library stubs for the type checker"
    rm -rf "$dest.tmp"
    "$CACHE/venv/bin/pip" install -q --target "$dest.tmp" \
        "micropython-unix-stubs==$MPY_STUBS_VERSION" "micropython-stdlib-stubs==$MPY_STDLIB_STUBS_VERSION"
    mv "$dest.tmp" "$dest"
}

if [ $# -eq 0 ]; then
    set -- system rust fuzz micropython nimble venv rootcanal mpy_stubs
fi
for s in "$@"; do
    "step_$s"
done
