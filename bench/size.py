#!/usr/bin/env python3
"""Code and static data size: our bluetooth module (Rust staticlib + C glue) against
MicroPython's own C module (extmod/modbluetooth.c + extmod/nimble), NimBLE included, for the
Unix port (x86_64) and for Cortex-M4F (thumbv7em, -Os, hard float).

    bench/build_cmodule.sh                  # once: build/bench/cmodule/micropython
    .cache/venv/bin/python bench/size.py [--json FILE] [--no-arm]

What is measured: only what a firmware actually links, not archives. An archive is the wrong
yardstick for ours: the staticlib carries all of Rust's core/alloc (and std on Unix) and every
NimBLE file, most of which the linker drops.

x86_64 (Unix): the two built firmwares' own link maps (build/unix/micropython.map and
    build/bench/cmodule/obj/micropython.map, written by the link with --gc-sections): every
    input section kept in the firmware is summed by where it came from.
thumbv7em: there is no bare-metal firmware of ours yet, so both sides are compiled for a real
    MicroPython bare-metal port configuration (ports/qemu, EXTRA_FEATURES ROM level, the config
    family of stm32 boards) with arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard
    -mfpu=fpv4-sp-d16 -Os -ffunction-sections -fdata-sections, by MicroPython's own makefiles
    (so the C module gets exactly nimble.mk's file set, include paths and defines; our glue the
    same compiler flags), in a private tree under build/bench/size. Then each side is linked
    on its own with `arm-none-eabi-ld -r --gc-sections`, kept alive from every global symbol
    its module objects define (the C module: modbluetooth.c, modbluetooth_nimble.c,
    nimble_npl_os.c, hal_uart.c; ours: micropython_glue/*.c), so the linker keeps exactly what
    those can reach. MicroPython's core and the port's hooks stay undefined (they are not part
    of either module); the C library functions both call (memcpy, memset, strlen...) are
    provided by a stub object that is not counted, as a firmware takes them from the port (so
    the Rust compiler_builtins copies of them are not pulled in either). Ours: the thumbv7em
    staticlib is built with cargo (`cargo rustc --release --lib --crate-type staticlib --no-default-features
    --features full --target thumbv7em-none-eabihf`, a no-op when target/ is up to date).

Feature profiles (`--profiles`, or `--profiles-only` without the firmwares and the x86_64
figures): every profile in tools/feature-profiles.txt is built the same way with only its
Cargo features (in target/profiles/NAME and build/bench/size/arm-ours-NAME) and measured as
the full build is; a profile whose Rust code builds with a warning fails.

Columns: .text (code), .rodata (read-only data incl. unwind tables), .data (initialised,
incl. .data.rel.ro on x86_64), .bss; flash = text + rodata + data, RAM = data + bss.
Rows: by origin. Each Rust crate is its own member of the staticlib, so the split between our
crates (ubluetooth, nimble_sys) and Rust's (std, core, alloc, their dependencies,
compiler_builtins) is exact; within ours, code is split by symbol path (ubluetooth::npl,
::hci, ::port, the rest), which is approximate where the compiler inlined across modules.
Generic std/core code instantiated for our types is compiled into our crate and counts as
ours. The totals are exact. "inputs before linking" lines give `size -t` of the archives and
objects themselves, for comparison. NimBLE is compiled by each side's own build with its own
syscfg (ours: nimble/include/syscfg, C: extmod/nimble/syscfg); the values that differ are
printed (and in the JSON).

Also prints `size` of both whole Unix firmwares. Takes ~1 minute the first time (compiling
for thumbv7em; cargo may take longer if the thumbv7em staticlib is stale), seconds after.
Exits non-zero if anything cannot be measured.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from benchlib import ROOT, BenchError  # noqa: E402

OUT = benchlib.BENCH_OUT / "size"
ARM_CFLAGS = "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16"
RUST_TARGET = "thumbv7em-none-eabihf"
COLUMNS = ("text", "rodata", "data", "bss")

# Categories, in display order. Both sides use the same names where the roles match.
BINDINGS = "module: Python bindings"
GLUE = "module: Python bindings, C glue"
OSLAYER = "module: NimBLE OS layer (npl/hal)"
TRANSPORT = "module: HCI H4 transport"
PORTUART = "port: HCI UART"
NIMBLE = "NimBLE host (+tinycrypt)"
RUNTIME = "Rust std/core/alloc + deps, builtins"
CATEGORIES = (BINDINGS, GLUE, OSLAYER, TRANSPORT, PORTUART, NIMBLE, RUNTIME)

OUR_CRATES = {"ubluetooth", "nimble_sys"}


# ---------------------------------------------------------------------------- link maps
@dataclass
class Piece:
    section: str  # input section name
    size: int
    file: str  # object file, or archive(member)


def section_kind(name: str) -> str | None:
    """Which column an input section counts in (None: not loaded, e.g. debug info)."""
    for prefix, kind in ((".text", "text"), (".init", "text"), (".fini", "text"), (".plt", "text"),
                         (".rodata", "rodata"), (".eh_frame", "rodata"), (".gcc_except_table", "rodata"),
                         (".ARM.exidx", "rodata"), (".ARM.extab", "rodata"), (".srodata", "rodata"),
                         (".data", "data"), (".tdata", "data"), (".init_array", "data"),
                         (".fini_array", "data"), (".got", "data"), (".sdata", "data"),
                         (".bss", "bss"), (".tbss", "bss"), (".sbss", "bss"), ("COMMON", "bss")):
        if name == prefix or name.startswith(prefix + ".") or (prefix == "COMMON" and name == "COMMON"):
            return kind
    return None


INPUT_RE = re.compile(r"^ (\S+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
CONT_RE = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")


def parse_map(path: Path) -> list[Piece]:
    """Input sections the link kept, from a GNU ld map (the part after "Linker script and
    memory map"; the discarded sections listed before it are ignored)."""
    pieces: list[Piece] = []
    started = False
    pending: str | None = None
    for line in path.read_text(errors="replace").splitlines():
        if not started:
            started = line.startswith("Linker script and memory map")
            continue
        if pending is not None:
            m = CONT_RE.match(line)
            if m:
                pieces.append(Piece(pending, int(m[2], 16), m[3].strip()))
            pending = None
            continue
        m = INPUT_RE.match(line)
        if m:
            if m[1] != "*fill*":
                pieces.append(Piece(m[1], int(m[3], 16), m[4].strip()))
            continue
        if line.startswith(" ") and not line.startswith("  ") and len(line.split()) == 1 and line.strip() != "*fill*":
            pending = line.strip()  # a long section name; address, size and file follow
    if not started:
        raise BenchError(f"{path} is not a GNU ld map")
    return pieces


# ---------------------------------------------------------------------------- Rust symbols
SECTION_PREFIX = re.compile(r"^\.(text\.unlikely|text\.startup|text\.hot|text|rodata|data\.rel\.ro\.local|data\.rel\.ro|data"
                            r"|bss|tdata|tbss|gcc_except_table)\.")


def demangle_all(symbols: list[str]) -> dict[str, str]:
    """Rust (legacy and v0) and C++ symbols -> demangled text, with binutils' c++filt."""
    if not symbols:
        return {}
    out = subprocess.run(["c++filt"], input="\n".join(symbols) + "\n", capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    if len(lines) != len(symbols):
        raise BenchError("c++filt returned an unexpected number of lines")
    # v0 names carry crate disambiguators: ubluetooth[0123abcd]::x -> ubluetooth::x
    return {s: re.sub(r"\[[0-9a-f]+\]", "", d) for s, d in zip(symbols, lines)}


def crate_of_member(member: str) -> str | None:
    """'core-1a2b3c.core.4d5e-cgu.0.rcgu.o' -> 'core'; None for a C object."""
    m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)-[0-9a-f]{16}\.", member)
    return m[1] if m and member.endswith(".rcgu.o") else None


def rust_category(section: str, demangled: dict[str, str]) -> str:
    """Category of a section of our crates' objects, from the symbol in its name. Generic code
    instantiated for our types (core::ptr::drop_in_place<ubluetooth::...> etc.) counts as ours."""
    sym = SECTION_PREFIX.sub("", section)
    name = demangled.get(sym, sym)
    if name == sym and not sym.startswith(("_Z", "_R")):
        # Unmangled: our #[no_mangle] exports, or an anonymous constant (counted as bindings).
        if sym.startswith(("ble_npl_", "ubt_nimble_")):
            return OSLAYER
        if sym.startswith("ble_hci_trans"):
            return TRANSPORT
        return BINDINGS
    m = re.search(r"ubluetooth::(\w+)", name)
    module = m[1] if m else ""
    return {"npl": OSLAYER, "hci": TRANSPORT, "port": PORTUART}.get(module, BINDINGS)


# ---------------------------------------------------------------------------- attribution
def classify_ours_factory(pieces: list[Piece]):
    """A classifier for our side: glue objects, NimBLE's C objects in the staticlib, our Rust
    crates (split by module path) and Rust's runtime crates."""
    ours_syms = set()
    for p in pieces:
        m = re.search(r"libubluetooth\.a\((.+)\)$", p.file)
        if m and crate_of_member(m[1]) in OUR_CRATES:
            ours_syms.add(SECTION_PREFIX.sub("", p.section))
    demangled = demangle_all(sorted(s for s in ours_syms if s.startswith(("_Z", "_R"))))

    def classify(p: Piece) -> str | None:
        f = p.file
        if "/micropython_glue/" in f or f.startswith("micropython_glue/"):
            return GLUE
        m = re.search(r"libubluetooth\.a\((.+)\)$", f)
        if not m:
            return None
        crate = crate_of_member(m[1])
        if crate is None:
            return NIMBLE  # the NimBLE C files build.rs compiled into the staticlib
        if crate in OUR_CRATES:
            return rust_category(p.section, demangled)
        return RUNTIME

    return classify


def classify_c(p: Piece) -> str | None:
    f = p.file.replace("\\", "/")
    if f.endswith(("/extmod/modbluetooth.o", "/extmod/nimble/modbluetooth_nimble.o")):
        return BINDINGS
    if "/extmod/nimble/nimble/" in f or "/extmod/nimble/hal/" in f:
        return OSLAYER
    if "/lib/mynewt-nimble/nimble/transport/" in f:
        return TRANSPORT
    if "/lib/mynewt-nimble/" in f:
        return NIMBLE
    if f.endswith(("/mpbthciport.o", "/mpnimbleport.o")):
        return PORTUART
    return None


@dataclass
class Sizes:
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # category -> column -> bytes

    def add(self, category: str, kind: str, size: int) -> None:
        row = self.rows.setdefault(category, dict.fromkeys(COLUMNS, 0))
        row[kind] += size

    def total(self) -> dict[str, int]:
        return {c: sum(r[c] for r in self.rows.values()) for c in COLUMNS}


def runtime_by_crate(pieces: list[Piece]) -> dict[str, int]:
    """Flash bytes (text + rodata + data) of each Rust crate other than ours in the link."""
    out: dict[str, int] = {}
    for p in pieces:
        m = re.search(r"libubluetooth\.a\((.+)\)$", p.file)
        kind = section_kind(p.section)
        if m and kind in ("text", "rodata", "data"):
            crate = crate_of_member(m[1])
            if crate is not None and crate not in OUR_CRATES:
                out[crate] = out.get(crate, 0) + p.size
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def attribute(pieces: list[Piece], classify) -> Sizes:
    sizes = Sizes()
    for p in pieces:
        kind = section_kind(p.section)
        if kind is None or p.size == 0:
            continue
        cat = classify(p)
        if cat is not None:
            sizes.add(cat, kind, p.size)
    return sizes


# ---------------------------------------------------------------------------- tools
def run(cmd: list[str] | str, **kw) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        shown = cmd if isinstance(cmd, str) else " ".join(cmd)
        raise BenchError(f"command failed ({r.returncode}): {shown[:500]}\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r.stdout


def berkeley_size(tool: str, path: Path) -> dict[str, int]:
    out = run([tool, "-B", str(path)]).splitlines()
    text, data, bss = (int(x) for x in out[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def size_total(tool: str, inputs: list[Path]) -> dict[str, int]:
    """`size -t` of objects and archives before linking (every member counted)."""
    out = run([tool, "-B", "-t", *map(str, inputs)]).splitlines()
    text, data, bss = (int(x) for x in out[-1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def defined_globals(nm: str, objects: list[Path]) -> list[str]:
    syms: set[str] = set()
    for obj in objects:
        for line in run([nm, "-g", "--defined-only", str(obj)]).splitlines():
            parts = line.split()
            if len(parts) >= 3:
                syms.add(parts[2])
    return sorted(syms)


# ---------------------------------------------------------------------------- thumbv7em build
def make_farm(tree: Path, port: str) -> None:
    """A tree of symlinks to MicroPython's, with lib/mynewt-nimble pointing at the NimBLE tree
    and ports/<port> a real directory (its makefiles find the tree through ../..)."""
    mp, nimble = benchlib.MICROPY_DIR.resolve(), benchlib.NIMBLE_DIR.resolve()
    stamp = tree / ".sources"
    want = f"{mp}\n{nimble}\n{port}\n"
    if stamp.exists() and stamp.read_text() == want:
        return
    if tree.exists():
        shutil.rmtree(tree)

    def link_all(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> None:
        dst.mkdir(parents=True, exist_ok=True)
        for entry in src.iterdir():
            if entry.name not in skip:
                (dst / entry.name).symlink_to(entry)

    link_all(mp, tree, ("lib", "ports"))
    link_all(mp / "lib", tree / "lib", ("mynewt-nimble",))
    (tree / "lib" / "mynewt-nimble").symlink_to(nimble)
    link_all(mp / "ports", tree / "ports", (port,))
    link_all(mp / "ports" / port, tree / "ports" / port)
    stamp.write_text(want)


PRINT_MK = """
ubt-print-%:
\t@echo '$($*)'
"""


def qemu_make(tree: Path, build: Path, variables: list[str], targets: list[str]) -> str:
    port = tree / "ports" / "qemu"
    # 2 jobs at most: the machine is shared.
    return run(["make", "-C", str(port), "-j2", "BOARD=MPS2_AN385", f"BUILD={build}", "CROSS_COMPILE=arm-none-eabi-",
                *variables, *targets])


def qemu_var(tree: Path, build: Path, variables: list[str], name: str) -> list[str]:
    mk = OUT / "print.mk"
    mk.write_text(PRINT_MK)
    out = run(["make", "-s", "-C", str(tree / "ports" / "qemu"), "-f", "Makefile", "-f", str(mk), "BOARD=MPS2_AN385",
               f"BUILD={build}", "CROSS_COMPILE=arm-none-eabi-", *variables, f"ubt-print-{name}"])
    return out.split()


def common_cflags() -> str:
    # Appended after the board's -mcpu=cortex-m3 -mfloat-abi=soft (the last one wins).
    return f"{ARM_CFLAGS} -Wno-error"


def port_header() -> Path:
    """The NimBLE port header MicroPython's syscfg includes (a port supplies it; qemu has none):
    only the HCI UART id and baud rate, which hal_uart.c and ble_hci_uart.c read."""
    inc = OUT / "port-include"
    inc.mkdir(parents=True, exist_ok=True)
    (inc / "mpnimbleport.h").write_text(
        "/* For bench/size.py: what a port's mpnimbleport.h provides to extmod/nimble. */\n"
        "#pragma once\n#define MICROPY_HW_BLE_UART_ID (0)\n#define MICROPY_HW_BLE_UART_BAUDRATE (1000000)\n")
    return inc


def build_c_arm(tree: Path) -> tuple[list[Path], list[Path]]:
    """MicroPython's C module for thumbv7em: (module objects, NimBLE objects)."""
    build = OUT / "arm-cmodule"
    variables = [
        "MICROPY_PY_BLUETOOTH=1", "MICROPY_BLUETOOTH_NIMBLE=1",
        # The feature set of the Unix comparator (and of stm32 boards with NimBLE): central
        # mode, GATT client, L2CAP channels; nimble.mk adds sync events and pairing/bonding.
        "CFLAGS_EXTRA=" + common_cflags() + " -DMICROPY_PY_BLUETOOTH_ENABLE_CENTRAL_MODE=1"
        " -DMICROPY_PY_BLUETOOTH_ENABLE_GATT_CLIENT=1 -DMICROPY_PY_BLUETOOTH_ENABLE_L2CAP_CHANNELS=1"
        f" -I{port_header()}",
    ]
    extmod = [s for s in qemu_var(tree, build, variables, "SRC_EXTMOD_C") if "bluetooth" in s]
    third = [s for s in qemu_var(tree, build, variables, "SRC_THIRDPARTY_C") if "nimble" in s]
    if not any(s.endswith("modbluetooth.c") for s in extmod) or len(third) < 40:
        raise BenchError(f"unexpected C module sources: {extmod} {third}")
    objs = [build / (s[:-2] + ".o") for s in extmod + third]
    qemu_make(tree, build, variables, [str(o) for o in objs])
    module = [o for o in objs if "mynewt-nimble" not in str(o)]
    nimble = [o for o in objs if "mynewt-nimble" in str(o)]
    return module, nimble


PROFILES_FILE = ROOT / "tools" / "feature-profiles.txt"


def feature_profiles() -> dict[str, list[str]]:
    """tools/feature-profiles.txt: profile name -> the Cargo features it has."""
    profiles = {}
    for line in PROFILES_FILE.read_text().splitlines():
        words = line.split("#")[0].split()
        if words:
            profiles[words[0]] = words[1:]
    return profiles


def build_ours_arm(tree: Path, profile: str = "full", features: list[str] | None = None
                   ) -> tuple[list[Path], Path]:
    """Our glue objects for thumbv7em and the thumbv7em staticlib, with the features of
    `profile` (every one when None). Profiles other than the full one build in cargo and make
    folders of their own, so they don't invalidate the firmware's."""
    env = dict(os.environ)
    features = features if features is not None else feature_profiles()["full"]
    target_dir = ROOT / "target" if profile == "full" else ROOT / "target" / "profiles" / profile
    env["CARGO_TARGET_DIR"] = str(target_dir)
    cmd = ["cargo", "rustc", "--release", "--lib", "--crate-type", "staticlib", "--no-default-features",
           "--features", ",".join(features), "--target", RUST_TARGET]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    # A profile's code must build clean: a warning there (an unused import, dead code) is what
    # a part left out of the others' cfg would look like.
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning")]
    if r.returncode != 0 or warnings:
        raise BenchError(f"profile {profile}: {' '.join(cmd)} failed or warned:\n{r.stderr[-4000:]}")
    lib = target_dir / RUST_TARGET / "release" / "libubluetooth.a"
    build = OUT / ("arm-ours" if profile == "full" else f"arm-ours-{profile}")
    variables = [f"USER_C_MODULES={ROOT}", "UBT_SKIP_CARGO=1", "CFLAGS_EXTRA=" + common_cflags(),
                 "UBT_FEATURES=" + " ".join(features)]
    srcs = sorted((ROOT / "micropython_glue").glob("*.c"))
    objs = [build / "micropython_glue" / (s.stem + ".o") for s in srcs]
    qemu_make(tree, build, variables, [str(o) for o in objs])
    return objs, lib


LIBC_STUB = r"""
/* Stand-ins for the C library functions a MicroPython port provides (shared/libc, newlib):
   they resolve the modules' calls without being counted. Never executed. */
typedef unsigned int size_t;
void *memcpy(void *d, const void *s, size_t n) { (void)s; (void)n; return d; }
void *memmove(void *d, const void *s, size_t n) { (void)s; (void)n; return d; }
void *memset(void *d, int c, size_t n) { (void)c; (void)n; return d; }
int memcmp(const void *a, const void *b, size_t n) { (void)a; (void)b; (void)n; return 0; }
int bcmp(const void *a, const void *b, size_t n) { (void)a; (void)b; (void)n; return 0; }
void *memchr(const void *s, int c, size_t n) { (void)c; (void)n; return (void *)s; }
size_t strlen(const char *s) { (void)s; return 0; }
int strcmp(const char *a, const char *b) { (void)a; (void)b; return 0; }
int strncmp(const char *a, const char *b, size_t n) { (void)a; (void)b; (void)n; return 0; }
char *strchr(const char *s, int c) { (void)c; return (char *)s; }
void __aeabi_memcpy(void *d, const void *s, size_t n) { (void)d; (void)s; (void)n; }
void __aeabi_memcpy4(void *d, const void *s, size_t n) { (void)d; (void)s; (void)n; }
void __aeabi_memcpy8(void *d, const void *s, size_t n) { (void)d; (void)s; (void)n; }
void __aeabi_memmove(void *d, const void *s, size_t n) { (void)d; (void)s; (void)n; }
void __aeabi_memmove4(void *d, const void *s, size_t n) { (void)d; (void)s; (void)n; }
void __aeabi_memmove8(void *d, const void *s, size_t n) { (void)d; (void)s; (void)n; }
void __aeabi_memset(void *d, size_t n, int c) { (void)d; (void)n; (void)c; }
void __aeabi_memset4(void *d, size_t n, int c) { (void)d; (void)n; (void)c; }
void __aeabi_memset8(void *d, size_t n, int c) { (void)d; (void)n; (void)c; }
void __aeabi_memclr(void *d, size_t n) { (void)d; (void)n; }
void __aeabi_memclr4(void *d, size_t n) { (void)d; (void)n; }
void __aeabi_memclr8(void *d, size_t n) { (void)d; (void)n; }
"""


def libc_stub() -> Path:
    src = OUT / "libc_stub.c"
    obj = OUT / "libc_stub.o"
    src.write_text(LIBC_STUB)
    run(["arm-none-eabi-gcc", *ARM_CFLAGS.split(), "-Os", "-ffreestanding", "-fno-builtin", "-ffunction-sections",
         "-c", str(src), "-o", str(obj)])
    return obj


def gc_link(name: str, roots_from: list[Path], inputs: list[str]) -> tuple[Path, Path]:
    """`ld -r --gc-sections` of `inputs`, kept alive from every global `roots_from` defines."""
    out = OUT / f"{name}.o"
    mapfile = OUT / f"{name}.map"
    roots = defined_globals("arm-none-eabi-nm", roots_from)
    args = ["arm-none-eabi-ld", "-r", "--gc-sections", f"-Map={mapfile}", "-o", str(out)]
    for sym in roots:
        args += ["-u", sym]
    run(args + inputs)
    return out, mapfile


# ---------------------------------------------------------------------------- report
@dataclass
class Side:
    label: str
    sizes: dict[str, dict[str, int]]
    total: dict[str, int]
    how: str
    runtime_crates: dict[str, int] = field(default_factory=dict)  # ours: flash bytes per Rust runtime crate
    unlinked: dict[str, int] = field(default_factory=dict)  # `size -t` of the inputs before linking


@dataclass
class Target:
    name: str
    sides: list[Side]
    notes: list[str] = field(default_factory=list)


def fmt_row(name: str, r: dict[str, int]) -> tuple[str, ...]:
    flash = r["text"] + r["rodata"] + r["data"]
    return (name, *(f"{r[c]:,}" for c in COLUMNS), f"{flash:,}", f"{r['data'] + r['bss']:,}")


def print_target(t: Target) -> None:
    print(f"\n{t.name}")
    rows: list[tuple[str, ...]] = []
    for side in t.sides:
        for cat in CATEGORIES:
            if cat in side.sizes:
                rows.append(fmt_row(f"{side.label:<4} {cat}", side.sizes[cat]))
        rows.append(fmt_row(f"{side.label:<4} TOTAL", side.total))
    by = {s.label: s.total for s in t.sides}
    if "ours" in by and "C" in by:
        o, c = by["ours"], by["C"]
        fo, fc = o["text"] + o["rodata"] + o["data"], c["text"] + c["rodata"] + c["data"]
        ro, rc = o["data"] + o["bss"], c["data"] + c["bss"]
        rows.append(("ours/C", *(f"{o[k] / c[k]:.2f}" if c[k] else "-" for k in COLUMNS),
                     f"{fo / fc:.2f}", f"{ro / rc:.2f}" if rc else "-"))
    benchlib.print_table(("", ".text", ".rodata", ".data", ".bss", "flash", "RAM"), rows)
    for side in t.sides:
        if side.unlinked:
            u = side.unlinked
            print(f"  {side.label} inputs before linking (size -t, every object/archive member): text {u['text']:,}, "
                  f"data {u['data']:,}, bss {u['bss']:,}")
    for side in t.sides:
        if side.runtime_crates:
            shown = ", ".join(f"{k} {v:,}" for k, v in list(side.runtime_crates.items())[:10])
            print(f"  {side.label} Rust runtime crates (flash bytes): {shown}")
    for n in t.notes:
        print(f"  note: {n}")


def syscfg_differences() -> list[str]:
    def values(path: Path) -> dict[str, str]:
        out: dict[str, str] = {}
        for m in re.finditer(r"^#define (MYNEWT_VAL_\w+) (.+)$", path.read_text(), re.M):
            out[m[1]] = m[2].strip()
        return out

    ours = values(ROOT / "nimble" / "include" / "syscfg" / "syscfg.h")
    theirs = values(benchlib.MICROPY_DIR / "extmod" / "nimble" / "syscfg" / "syscfg.h")
    diffs = []
    for k in sorted(set(ours) | set(theirs)):
        if ours.get(k) != theirs.get(k):
            diffs.append(f"{k}: ours {ours.get(k, '(unset)')}, C {theirs.get(k, '(unset)')}")
    return diffs


def x86_target(firmwares: dict[str, Path]) -> Target:
    maps = {"ours": ROOT / "build" / "unix" / "micropython.map",
            "C": ROOT / "build" / "bench" / "cmodule" / "obj" / "micropython.map"}
    sides = []
    for label in ("ours", "C"):
        if not maps[label].exists():
            raise BenchError(f"no link map {maps[label]} (run {benchlib.HINTS[label]})")
        if maps[label].stat().st_mtime + 60 < firmwares[label].stat().st_mtime:
            raise BenchError(f"{maps[label]} is older than {firmwares[label]}")
        pieces = parse_map(maps[label])
        sizes = attribute(pieces, classify_ours_factory(pieces) if label == "ours" else classify_c)
        missing = [c for c in ((BINDINGS, NIMBLE) if label == "C" else (BINDINGS, NIMBLE, RUNTIME)) if c not in sizes.rows]
        if missing:
            raise BenchError(f"{label}: nothing found for {missing} in {maps[label]}")
        if label == "ours":
            inputs = [ROOT / "target" / "release" / "libubluetooth.a",
                      *sorted((ROOT / "build" / "unix" / "micropython_glue").glob("*.o"))]
        else:
            obj = ROOT / "build" / "bench" / "cmodule" / "obj"
            inputs = [obj / "extmod" / "modbluetooth.o", *sorted((obj / "extmod" / "nimble").rglob("*.o")),
                      *sorted((obj / "lib" / "mynewt-nimble").rglob("*.o")), obj / "mpbthciport.o", obj / "mpnimbleport.o"]
        sides.append(Side(label, sizes.rows, sizes.total(), f"input sections kept in {maps[label]}",
                          runtime_by_crate(pieces) if label == "ours" else {}, size_total("size", inputs)))
    notes = ["port: HCI UART = ours ports/unix/hci_uart.rs (Rust, port::imp) vs C ports/unix/mpbthciport.c + "
             "mpnimbleport.c; NimBLE's own UART transport (ble_hci_uart.c) counts as the C side's H4 transport"]
    return Target("x86_64 (Unix port, -Os; from the firmwares' link maps)", sides, notes)


@dataclass
class ArmSetup:
    """What every thumbv7em measurement starts from: the port tree, the libc stub and the C
    module linked on its own."""
    tree: Path
    stub: Path
    c_module: list[Path]
    c_nimble: list[Path]
    c_out: Path
    c_map: Path


def arm_setup() -> ArmSetup:
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-ld", "arm-none-eabi-nm", "arm-none-eabi-size", "cargo"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is needed for the thumbv7em figures (or pass --no-arm)")
    tree = OUT / "tree"
    make_farm(tree, "qemu")
    stub = libc_stub()
    c_module, c_nimble = build_c_arm(tree)
    c_out, c_map = gc_link("cmodule-thumbv7em", c_module, [*map(str, c_module), *map(str, c_nimble), str(stub)])
    return ArmSetup(tree, stub, c_module, c_nimble, c_out, c_map)


def arm_target(setup: ArmSetup) -> Target:
    tree, stub = setup.tree, setup.stub
    c_module, c_nimble, c_out, c_map = setup.c_module, setup.c_nimble, setup.c_out, setup.c_map
    glue, lib = build_ours_arm(tree)
    o_out, o_map = gc_link("ours-thumbv7em", glue, [*map(str, glue), str(lib), str(stub)])
    sides = []
    for label, mapfile, out in (("ours", o_map, o_out), ("C", c_map, c_out)):
        pieces = parse_map(mapfile)
        sizes = attribute(pieces, classify_ours_factory(pieces) if label == "ours" else classify_c)
        # Cross-check against the linked object's own section sizes (stub excluded).
        got = berkeley_size("arm-none-eabi-size", out)
        stub_size = berkeley_size("arm-none-eabi-size", stub)
        total = sizes.total()
        flash = total["text"] + total["rodata"]
        if abs((got["text"] - stub_size["text"]) - flash) > 64 or abs(got["bss"] - total["bss"]) > 64:
            raise BenchError(f"{label}: map sums {total} disagree with `size` of {out}: {got}")
        inputs = [*glue, lib] if label == "ours" else [*c_module, *c_nimble]
        sides.append(Side(label, sizes.rows, total, f"arm-none-eabi-ld -r --gc-sections, map {mapfile}",
                          runtime_by_crate(pieces) if label == "ours" else {},
                          size_total("arm-none-eabi-size", inputs)))
    notes = [
        "config: MicroPython ports/qemu (MPS2_AN385 board files) with -mcpu=cortex-m4 -mfloat-abi=hard -Os; "
        "MicroPython core and port hooks undefined, libc functions stubbed (not counted)",
        "the C module's port HCI UART (stm32's mpbthciport.c etc.) and ours (a port's ubt_port_hci_uart_*) are "
        "both outside the count",
    ]
    return Target("thumbv7em (Cortex-M4F, -Os; relocatable --gc-sections link of each side)", sides, notes)


@dataclass
class ProfileSize:
    name: str
    features: list[str]
    total: dict[str, int]


def profile_sizes(setup: ArmSetup) -> list[ProfileSize]:
    """Builds every feature profile for thumbv7em (glue and staticlib) and measures each as the
    full build is measured: a relocatable --gc-sections link kept alive from the glue."""
    c_total = attribute(parse_map(setup.c_map), classify_c).total()
    out = []
    for name, features in feature_profiles().items():
        glue, lib = build_ours_arm(setup.tree, name, features)
        _, mapfile = gc_link(f"ours-thumbv7em-{name}", glue, [*map(str, glue), str(lib), str(setup.stub)])
        pieces = parse_map(mapfile)
        total = attribute(pieces, classify_ours_factory(pieces)).total()
        out.append(ProfileSize(name, features, total))
    print("\nFeature profiles, thumbv7em (tools/feature-profiles.txt; ours/C against the C module's full build):")
    c_flash = c_total["text"] + c_total["rodata"] + c_total["data"]
    rows = []
    for p in out:
        flash = p.total["text"] + p.total["rodata"] + p.total["data"]
        rows.append((p.name, " ".join(p.features), f"{flash:,}", f"{p.total['data'] + p.total['bss']:,}",
                     f"{flash / c_flash:.2f}"))
    benchlib.print_table(("profile", "features", "flash", "RAM", "flash ours/C"), rows)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="write raw numbers here")
    ap.add_argument("--no-arm", action="store_true", help="skip the thumbv7em build and figures")
    ap.add_argument("--profiles", action="store_true",
                    help="also build and measure every feature profile (tools/feature-profiles.txt)")
    ap.add_argument("--profiles-only", action="store_true",
                    help="only the feature profiles and the C module's thumbv7em total (no firmwares needed)")
    args = ap.parse_args()
    t0 = time.monotonic()
    started = benchlib.now_iso()
    targets: list[Target] = []
    whole: dict[str, dict[str, int]] = {}
    error = None
    OUT.mkdir(parents=True, exist_ok=True)
    profiles: list[ProfileSize] = []
    if args.profiles_only:
        try:
            profiles = profile_sizes(arm_setup())
        except BenchError as e:
            error = str(e)
            print(f"\nBENCHMARK FAILED: {e}", file=sys.stderr)
        if args.json:
            benchlib.write_json(args.json, {
                "benchmark": "size-profiles", "started": started, "finished": benchlib.now_iso(),
                "complete": error is None, "error": error, "commit": benchlib.git_commit(),
                "profiles": [asdict(p) for p in profiles],
            })
        print(f"\ndone in {time.monotonic() - t0:.0f} s")
        return 0 if error is None else 1
    try:
        for label, fw in benchlib.FIRMWARES.items():
            if not fw.exists():
                raise BenchError(f"no {label} firmware at {fw} (run {benchlib.HINTS[label]})")
            whole[label] = berkeley_size("size", fw)
        print("Whole Unix firmwares (size -B):")
        benchlib.print_table(("firmware", "text", "data", "bss", "total"),
                             [(f"{k} {benchlib.FIRMWARES[k].relative_to(ROOT)}", f"{v['text']:,}", f"{v['data']:,}",
                               f"{v['bss']:,}", f"{sum(v.values()):,}") for k, v in whole.items()])
        targets.append(x86_target(benchlib.FIRMWARES))
        print_target(targets[-1])
        if not args.no_arm:
            setup = arm_setup()
            targets.append(arm_target(setup))
            print_target(targets[-1])
            if args.profiles:
                profiles = profile_sizes(setup)
        diffs = syscfg_differences()
        print("\nNimBLE syscfg values that differ (ours vs MicroPython's):")
        for d in diffs:
            print(f"  {d}")
    except BenchError as e:
        error = str(e)
        print(f"\nBENCHMARK FAILED: {e}", file=sys.stderr)
    if args.json:
        benchlib.write_json(args.json, {
            "benchmark": "size", "started": started, "finished": benchlib.now_iso(), "complete": error is None,
            "error": error, "commit": benchlib.git_commit(), "whole_unix_firmwares": whole,
            "targets": [asdict(t) for t in targets], "syscfg_differences": syscfg_differences(),
            "profiles": [asdict(p) for p in profiles],
        })
        print(f"raw results: {args.json}")
    print(f"\ndone in {time.monotonic() - t0:.0f} s")
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main())
