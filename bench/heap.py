#!/usr/bin/env python3
"""Memory in use: our bluetooth module against MicroPython's own C module (both on NimBLE, Unix
port), after `active(True)` and after registering the Nordic UART service.

    bench/build_cmodule.sh                  # once: build/bench/cmodule/micropython
    .cache/venv/bin/python bench/heap.py [--json FILE] [--rounds N]

Each firmware runs one script on a virtual controller (tests/harness/vlink.py, in this process)
and stops at each stage, after gc.collect(), until the bench has read its numbers:

  baseline    before `import bluetooth` (the script's own few objects exist already)
  import      after `import bluetooth`
  BLE()       after `ble = bluetooth.BLE()`
  active      after `ble.active(True)` (the controller answered; NimBLE is synced)
  registered  after gatts_register_services() with the Nordic UART service:
              6E400001-B5A3-F393-E0A9-E50E24DCCA9E, TX 6E400003 (notify), RX 6E400002
              (write, write without response); the script's own service definition (the
              tuples and UUID objects it passed in) is deleted before measuring, so only what
              the module keeps counts.

Per stage: GC heap bytes in use (gc.mem_alloc()), C heap bytes in use (malloc), and process
VmRSS (/proc/PID/status). Deltas are against `baseline`. At the end the script prints
micropython.mem_info(), which is kept in the JSON.

Where NimBLE's own memory goes differs: MicroPython's C module allocates NimBLE's heap (GATT
tables...) on the GC heap; ours, on Unix, with libc malloc (on bare metal it will be the GC
heap too), and Rust's allocations (ours keeps its tables in Rust) go to malloc as well. So the
GC heap alone under-counts ours. The malloc figure is exact: both firmwares run with a small
LD_PRELOAD shim (compiled into build/bench/heap/ on first use) that keeps the bytes malloc
has handed out and not taken back (malloc_usable_size of each block, so allocator rounding
is included) in a file the bench reads. RSS also counts thread stacks (our UART reader
thread; the C module's polling thread) and is page-granular (4 KiB). --rounds repeats the
runs (default 3); the table shows medians. Takes a few seconds. Exits non-zero on any
failure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from benchlib import BenchError, FwProcess  # noqa: E402

from vlink import VLink  # noqa: E402

STAGES = ("baseline", "import", "BLE()", "active", "registered")
STEP_TIMEOUT_S = 30.0

SCRIPT = r'''
import gc
import micropython
import sys


def stage(name):
    gc.collect()
    print('STAGE', name, gc.mem_alloc(), gc.mem_free())
    sys.stdin.read(1)


stage('baseline')
import bluetooth
stage('import')
ble = bluetooth.BLE()
stage('BLE()')
ble.active(True)
stage('active')
_NUS = bluetooth.UUID('6E400001-B5A3-F393-E0A9-E50E24DCCA9E')
_TX = (bluetooth.UUID('6E400003-B5A3-F393-E0A9-E50E24DCCA9E'), 0x0010)
_RX = (bluetooth.UUID('6E400002-B5A3-F393-E0A9-E50E24DCCA9E'), 0x0004 | 0x0008)
((tx, rx),) = ble.gatts_register_services(((_NUS, (_TX, _RX)),))
del _NUS, _TX, _RX
stage('registered')
print('MEMINFO')
micropython.mem_info()
print('MEMINFO-END')
ble.active(False)
print('END')
'''


@dataclass
class Stage:
    name: str
    gc_alloc: int  # bytes
    gc_free: int
    malloc_live: int  # bytes malloc has handed out and not got back (usable sizes)
    rss_kib: int


@dataclass
class Run:
    firmware: str
    round: int
    stages: list[Stage] = field(default_factory=list)
    mem_info: str = ""


def proc_status_kib(pid: int, key: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    if not m:
        raise BenchError(f"no {key} in /proc/{pid}/status")
    return int(m[1])


SHIM_DIR = benchlib.BENCH_OUT / "heap"
SHIM_SRC = r"""
/* bench/heap.py: counts the bytes glibc's malloc has handed out and not got back, in a file
   named by UBT_MALLOC_COUNTER (an int64 at offset 0, updated atomically). LD_PRELOAD only. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static int64_t early;               /* used until the counter file is mapped */
static int64_t *volatile counter = &early;

static void count(int64_t delta) { __atomic_add_fetch(counter, delta, __ATOMIC_RELAXED); }
static int64_t usable(void *p) { return p ? (int64_t)malloc_usable_size(p) : 0; }

__attribute__((constructor)) static void ubt_counter_init(void) {
    const char *path = getenv("UBT_MALLOC_COUNTER");
    if (!path) return;
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, sizeof(int64_t)) != 0) return;
    int64_t *m = mmap(NULL, sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return;
    __atomic_store_n(m, __atomic_load_n(&early, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    counter = m;
}

void *malloc(size_t n) { void *p = __libc_malloc(n); count(usable(p)); return p; }
void *calloc(size_t a, size_t b) { void *p = __libc_calloc(a, b); count(usable(p)); return p; }
void free(void *p) { count(-usable(p)); __libc_free(p); }
void *realloc(void *p, size_t n) {
    int64_t before = usable(p);
    void *q = __libc_realloc(p, n);
    if (q) count(usable(q) - before); else if (p && n == 0) count(-before);
    return q;
}
void *memalign(size_t a, size_t n) { void *p = __libc_memalign(a, n); count(usable(p)); return p; }
void *aligned_alloc(size_t a, size_t n) { return memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    void *p = __libc_memalign(a, n);
    if (!p) return 12; /* ENOMEM */
    count(usable(p));
    *out = p;
    return 0;
}
void *valloc(size_t n) { return memalign((size_t)sysconf(_SC_PAGESIZE), n); }
"""


def build_shim() -> Path:
    SHIM_DIR.mkdir(parents=True, exist_ok=True)
    src, lib = SHIM_DIR / "malloc_counter.c", SHIM_DIR / "malloc_counter.so"
    if not lib.exists() or not src.exists() or src.read_text() != SHIM_SRC:
        src.write_text(SHIM_SRC)
        r = subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(lib), str(src)], capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"cannot build the malloc counter: {r.stderr}")
    return lib


def read_counter(path: Path) -> int:
    data = path.read_bytes()
    if len(data) != 8:
        raise BenchError(f"malloc counter {path} not set up by the shim")
    return struct.unpack("<q", data)[0]


async def run_once(label: str, fw: Path, round_no: int, workdir: Path, shim: Path) -> Run:
    script = workdir / "heap.py"
    script.write_text(SCRIPT)
    counter = workdir / f"malloc-{label}-{round_no}"
    link = VLink(count=1)
    await link.start()
    env = dict(os.environ, MICROPYBTUART=link.paths[0], LD_PRELOAD=str(shim), UBT_MALLOC_COUNTER=str(counter))
    proc = FwProcess([str(fw), str(script)], env, name=f"{label} heap")
    try:
        await proc.start()
        assert proc.proc is not None
        run = Run(label, round_no)
        for name in STAGES:
            line = await proc.expect("STAGE", STEP_TIMEOUT_S)
            _, got, alloc, free = line.text.split()
            if got != name:
                raise BenchError(f"{label}: expected stage {name}, got {line.text}")
            pid = proc.proc.pid
            run.stages.append(Stage(name, int(alloc), int(free), read_counter(counter), proc_status_kib(pid, "VmRSS")))
            proc.send(b"n")
        await proc.expect("MEMINFO", STEP_TIMEOUT_S)
        await proc.expect("MEMINFO-END", STEP_TIMEOUT_S)
        out = proc.output().splitlines()
        run.mem_info = "\n".join(out[out.index("MEMINFO") + 1: out.index("MEMINFO-END")])
        await proc.expect("END", STEP_TIMEOUT_S)
        rc = await proc.wait(STEP_TIMEOUT_S)
        if rc != 0:
            raise BenchError(f"{label}: exit status {rc}\n{proc.output()}{await proc.stderr_text()}")
        return run
    finally:
        await proc.kill()
        await link.close()


def median(values: list[int]) -> float:
    return float(statistics.median(values))


def summary(runs: list[Run]) -> dict[str, dict[str, dict[str, float]]]:
    """firmware -> stage -> medians of the deltas from baseline (bytes for the GC heap and
    malloc, KiB for RSS) and of the absolute values."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for label in ("ours", "C"):
        mine = [r for r in runs if r.firmware == label]
        if not mine:
            raise BenchError(f"{label}: every round failed")
        out[label] = {}
        for i, name in enumerate(STAGES):
            out[label][name] = {
                "gc_alloc": median([r.stages[i].gc_alloc for r in mine]),
                "gc_delta": median([r.stages[i].gc_alloc - r.stages[0].gc_alloc for r in mine]),
                "rss_kib": median([r.stages[i].rss_kib for r in mine]),
                "rss_delta_kib": median([r.stages[i].rss_kib - r.stages[0].rss_kib for r in mine]),
                "malloc": median([r.stages[i].malloc_live for r in mine]),
                "malloc_delta": median([r.stages[i].malloc_live - r.stages[0].malloc_live for r in mine]),
            }
    return out


def print_summary(s: dict[str, dict[str, dict[str, float]]], rounds: int) -> None:
    print(f"\nMedians of {rounds} runs; deltas against the baseline stage (before `import bluetooth`)")
    rows = []
    for name in STAGES:
        o, c = s["ours"][name], s["C"][name]
        rows.append((name, f"{o['gc_delta']:,.0f}", f"{c['gc_delta']:,.0f}",
                     f"{o['malloc_delta']:,.0f}", f"{c['malloc_delta']:,.0f}",
                     f"{o['gc_delta'] + o['malloc_delta']:,.0f}", f"{c['gc_delta'] + c['malloc_delta']:,.0f}",
                     f"{o['rss_delta_kib']:,.0f}", f"{c['rss_delta_kib']:,.0f}"))
    benchlib.print_table(("stage", "GC B ours", "GC B C", "malloc B ours", "malloc B C", "GC+malloc ours",
                          "GC+malloc C", "RSS KiB ours", "RSS KiB C"), rows)
    o, c = s["ours"]["baseline"], s["C"]["baseline"]
    print(f"(baseline: GC heap in use ours {o['gc_alloc']:,.0f} B, C {c['gc_alloc']:,.0f} B; malloc ours "
          f"{o['malloc']:,.0f} B, C {c['malloc']:,.0f} B; VmRSS ours {o['rss_kib']:,.0f} KiB, C {c['rss_kib']:,.0f} KiB)")


async def measure(firmwares: dict[str, Path], rounds: int, workdir: Path, runs: list[Run],
                  attempts: benchlib.Attempts) -> None:
    shim = build_shim()
    for round_no in range(1, rounds + 1):
        for label in ("ours", "C"):
            r = await attempts.run(label, "heap", round_no, lambda: run_once(
                label, firmwares[label], round_no, workdir, shim))
            if r is None:
                continue
            runs.append(r)
            last = r.stages[-1]
            print(f"round {round_no} {label:<4} registered: GC {last.gc_alloc - r.stages[0].gc_alloc:,} B, "
                  f"malloc {last.malloc_live - r.stages[0].malloc_live:,} B over baseline, VmRSS {last.rss_kib:,} KiB",
                  flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="write raw numbers here")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tries", type=int, default=benchlib.DEFAULT_TRIES,
                    help="attempts per round and side (default %(default)s)")
    ap.add_argument("--ours", type=Path, default=benchlib.FIRMWARES["ours"])
    ap.add_argument("--cmodule", type=Path, default=benchlib.FIRMWARES["C"])
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.tries < 1:
        ap.error("--tries must be at least 1")
    attempts = benchlib.Attempts(args.tries)
    started = benchlib.now_iso()
    t0 = time.monotonic()
    sources = {"ours": args.ours.resolve(), "C": args.cmodule.resolve()}
    runs: list[Run] = []
    error = None
    result = None
    hashes: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ubt-heap-") as tmp:
        try:
            benchlib.check_firmwares(sources)
            firmwares = benchlib.snapshot(sources, Path(tmp))
            hashes = {k: benchlib.sha256(p) for k, p in firmwares.items()}
            asyncio.run(measure(firmwares, args.rounds, Path(tmp), runs, attempts))
            result = summary(runs)
            print_summary(result, args.rounds)
            print("\nmicropython.mem_info() at `registered` (last round):")
            for label in ("ours", "C"):
                last = [r for r in runs if r.firmware == label][-1]
                print(f"--- {label}\n{last.mem_info}")
            attempts.print_summary()
        except BenchError as e:
            error = str(e)
            print(f"\nBENCHMARK FAILED: {e}", file=sys.stderr)
    if args.json:
        benchlib.write_json(args.json, {
            "benchmark": "heap", "started": started, "finished": benchlib.now_iso(), "complete": error is None,
            "error": error, "commit": benchlib.git_commit(), "host": benchlib.host_info(),
            "firmwares": {k: {"path": str(p), "sha256": hashes.get(k)} for k, p in sources.items()},
            "summary": result, "runs": [asdict(r) for r in runs],
            "attempts": attempts.to_json(),
        })
        print(f"raw results: {args.json}")
    print(f"\ndone in {time.monotonic() - t0:.1f} s")
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main())
