#!/usr/bin/env python3
"""Memory in use on the emulated Cortex-M4F board (issue 18's bare-metal figure): our module in
`make qemu`'s firmware (MicroPython's qemu port, board ports/qemu/boards/MPS2_AN386) under
qemu-system-arm, its HCI UART on a virtual controller.

    make qemu
    .cache/venv/bin/python bench/heap_qemu.py [--json FILE]

One script through the raw REPL, the stages of bench/heap.py: GC heap bytes in use
(gc.mem_alloc(), after gc.collect()) over the baseline, after `import bluetooth`, `BLE()`,
`active(True)` and registering the Nordic UART service (the script's definition deleted).
On bare metal every heap block of ours (the Rust core's and NimBLE's) comes from the GC heap
(ubt_port_alloc), so this is all of the module's heap. Static RAM (.data + .bss) is
bench/size.py's thumbv7em figure, where the C module's is measured on the same port
configuration; its heap cannot be measured here, since MicroPython has no HCI port of its
own for this board. Exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from benchlib import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "qemu"))
sys.path.insert(0, str(ROOT / "tests" / "peer"))
from test_qemu import FIRMWARE, RawRepl, start_qemu  # noqa: E402
from vlink import VLink  # noqa: E402

STAGES = ("import", "BLE()", "active", "registered")
SCRIPT = """
import gc
gc.collect(); b0 = gc.mem_alloc()
import bluetooth
gc.collect(); b1 = gc.mem_alloc()
ble = bluetooth.BLE()
gc.collect(); b2 = gc.mem_alloc()
ble.active(True)
gc.collect(); b3 = gc.mem_alloc()
svc = (bluetooth.UUID("6E400001-B5A3-F393-E0A9-E50E24DCCA9E"),
       ((bluetooth.UUID("6E400003-B5A3-F393-E0A9-E50E24DCCA9E"), bluetooth.FLAG_NOTIFY),
        (bluetooth.UUID("6E400002-B5A3-F393-E0A9-E50E24DCCA9E"),
         bluetooth.FLAG_WRITE | bluetooth.FLAG_WRITE_NO_RESPONSE)))
h = ble.gatts_register_services((svc,))
del svc
gc.collect(); b4 = gc.mem_alloc()
print(b1 - b0, b2 - b0, b3 - b0, b4 - b0)
ble.active(False)
"""


async def measure() -> dict[str, int]:
    async with VLink(count=1) as link:
        proc = await start_qemu(link)
        try:
            repl = RawRepl(proc)
            await repl.enter()
            out = await repl.run(SCRIPT)
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
    values = [int(v) for v in out.split()]
    if len(values) != len(STAGES):
        raise benchlib.BenchError(f"unexpected output: {out!r}")
    return dict(zip(STAGES, values))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="write raw numbers here")
    args = ap.parse_args()
    if not Path(FIRMWARE).exists():
        print(f"{FIRMWARE} is missing: run make qemu", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    started = benchlib.now_iso()
    error = None
    heap: dict[str, int] = {}
    try:
        heap = asyncio.run(measure())
    except Exception as e:  # noqa: BLE001 - any failure is reported and fails the run
        error = f"{type(e).__name__}: {e}"
        print(f"\nBENCHMARK FAILED: {error}", file=sys.stderr)
    if heap:
        print("GC heap bytes in use over the baseline, qemu MPS2-AN386 (ours):")
        benchlib.print_table(("stage", "GC heap"), [(k, f"{v:,}") for k, v in heap.items()])
    if args.json:
        benchlib.write_json(args.json, {
            "benchmark": "heap-qemu", "started": started, "finished": benchlib.now_iso(),
            "complete": error is None, "error": error, "commit": benchlib.git_commit(),
            "gc_heap_over_baseline": heap,
        })
        print(f"raw results: {args.json}")
    print(f"done in {time.monotonic() - t0:.0f} s")
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main())
