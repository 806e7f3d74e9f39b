#!/usr/bin/env python3
"""Throughput on a link with air time, as a share of what the link can carry, ours and the C
module's.

    bench/airtime.py [--rounds N] [--json FILE] [--ours PATH] [--cmodule PATH] [--limits]

Runs bench/air/air_notify.py, air_write.py and air_l2cap.py (bulk notifications, writes without
response and L2CAP SDUs for 3 s each) on the radio model of the virtual controllers
(tests/harness/airtime.py), with both instances on our firmware and then both on the C
module's, alternating, on four settings: connection intervals of 7.5 ms and 30 ms, each on a
part with data length extension and the 2M PHY (`air-*` profiles) and on one without
(`air-basic-*`). Each figure is divided by the setting's limit: the most the link can carry
for that workload, from the Bluetooth Core specification's air-time rules (airtime.py's
`stream_limit`; bench/AIRTIME.md has the formula and the figures). `--limits` prints the limits
and exits.

A failed run is retried (--tries) and counted per side, as in bench/throughput.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import multitest  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from benchlib import Attempts, BenchError, DEFAULT_TRIES, git_commit, sha256  # noqa: E402
from throughput import FIRMWARES, take_snapshot  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "harness"))
import airtime  # noqa: E402
import vcontroller  # noqa: E402

SETTINGS = ("air-7.5ms", "air-30ms", "air-basic-7.5ms", "air-basic-30ms")

# L2CAP payload framing both hosts use (same NimBLE syscfg): notifications and writes of 244
# bytes at ATT MTU 247 are one 247-byte L2CAP payload; a 512-byte SDU on a channel whose
# receiver's MPS is 284 is two K-frames, 2 + 282 and 230 bytes of payload.
COC_MPS = 284
SDU = 512


@dataclass(frozen=True)
class Workload:
    name: str
    script: str
    unit_bytes: int  # application bytes per unit
    l2cap_payloads: tuple[int, ...]  # the unit's L2CAP PDUs, payload bytes each
    from_central: bool


WORKLOADS = (
    Workload("notify", "air_notify.py", 244, (247,), False),
    Workload("write", "air_write.py", 244, (247,), True),
    Workload("l2cap", "air_l2cap.py", SDU, (COC_MPS, SDU + 2 - COC_MPS), True),
)

METRIC_RE = re.compile(r"air (\w+): (\d+) bytes in (\d+) us")


def limit(workload: Workload, setting: str) -> float:
    """Application bytes per second the setting's link carries at most for the workload: the
    largest payload and fastest PHY the part offers."""
    p = vcontroller.PROFILES[setting]
    capable = p.air_data_length and p.air_2m_phy
    max_payload = airtime.MAX_PAYLOAD if capable else airtime.MIN_PAYLOAD
    phy = airtime.PHY_2M if capable else airtime.PHY_1M
    return airtime.stream_limit(
        airtime.unit_packets(workload.l2cap_payloads, max_payload),
        workload.unit_bytes,
        p.air_interval * 1250,
        p.air_max_exchanges,
        phy=phy,
        from_central=workload.from_central,
    )


@dataclass
class Run:
    round: int
    setting: str
    workload: str
    firmware: str
    bytes: int
    us: int
    rate: float  # bytes/s
    share: float  # rate / limit
    seconds: float


def run(workload: Workload, setting: str, firmware: Path, micropython_dir: Path, round_no: int,
        label: str) -> tuple[Run, str]:
    path = ROOT / "bench" / "air" / workload.script
    _, ok, output, secs = multitest.run_one(path, firmware, micropython_dir, profile=setting)
    if not ok:
        raise BenchError(f"{workload.name} on {setting}, {label}, round {round_no} failed:\n{output}")
    found = [m for m in METRIC_RE.finditer(output) if m[1] == workload.name]
    if len(found) != 1:
        raise BenchError(f"{workload.name} on {setting}: no metric line in\n{output}")
    n, us = int(found[0][2]), int(found[0][3])
    if us <= 0 or n <= 0:
        raise BenchError(f"{workload.name} on {setting}: {n} bytes in {us} us")
    rate = n * 1_000_000 / us
    return Run(round_no, setting, workload.name, label, n, us, rate, rate / limit(workload, setting),
               round(secs, 1)), output


def summarise(runs: list[Run]) -> list[dict]:
    rows = []
    for setting in SETTINGS:
        for w in WORKLOADS:
            row = {"setting": setting, "workload": w.name, "limit": limit(w, setting)}
            for side in ("ours", "C"):
                rates = [r.rate for r in runs if (r.setting, r.workload, r.firmware) == (setting, w.name, side)]
                row[side] = statistics.median(rates) if rates else None
                row[f"{side}_rates"] = rates
            rows.append(row)
    return rows


def print_limits() -> None:
    print(f"{'setting':<16} {'workload':<8} {'limit B/s':>10}")
    for setting in SETTINGS:
        for w in WORKLOADS:
            print(f"{setting:<16} {w.name:<8} {limit(w, setting):>10,.0f}")


def print_table(rows: list[dict]) -> None:
    print(f"\n{'setting':<16} {'workload':<8} {'limit':>9} {'ours':>9} {'%':>5} {'C':>9} {'%':>5} {'ours/C':>6}")
    for row in rows:
        o, c, lim = row["ours"], row["C"], row["limit"]
        cells = [
            f"{row['setting']:<16}", f"{row['workload']:<8}", f"{lim:>9,.0f}",
            f"{o:>9,.0f}" if o else f"{'-':>9}", f"{100 * o / lim:>5.1f}" if o else f"{'-':>5}",
            f"{c:>9,.0f}" if c else f"{'-':>9}", f"{100 * c / lim:>5.1f}" if c else f"{'-':>5}",
            f"{o / c:>6.2f}" if o and c else f"{'-':>6}",
        ]
        print(" ".join(cells))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--ours", type=Path, default=FIRMWARES["ours"])
    ap.add_argument("--cmodule", type=Path, default=FIRMWARES["C"])
    ap.add_argument("--micropython-dir", type=Path,
                    default=Path(os.environ.get("MICROPY_DIR") or ROOT / ".cache" / "micropython-1.25.0"))
    ap.add_argument("--tries", type=int, default=DEFAULT_TRIES)
    ap.add_argument("--setting", action="append", choices=SETTINGS, help="only these (repeatable)")
    ap.add_argument("--workload", action="append", choices=[w.name for w in WORKLOADS])
    ap.add_argument("--limits", action="store_true", help="print the limits and exit")
    args = ap.parse_args()
    if args.limits:
        print_limits()
        return 0
    settings = args.setting or list(SETTINGS)
    workloads = [w for w in WORKLOADS if not args.workload or w.name in args.workload]
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    sources = {"ours": args.ours.resolve(), "C": args.cmodule.resolve()}
    for label, fw in sources.items():
        if not os.access(fw, os.X_OK):
            print(f"no {label} firmware at {fw}", file=sys.stderr)
            return 2
    attempts = Attempts(args.tries)
    runs: list[Run] = []
    outputs: list[str] = []
    snapshot = Path(tempfile.mkdtemp(prefix="ubt-airtime-"))
    t0 = time.monotonic()
    try:
        firmwares = take_snapshot(sources, snapshot)
        hashes = {label: sha256(path) for label, path in firmwares.items()}
        for round_no in range(1, args.rounds + 1):
            for setting in settings:
                for w in workloads:
                    for label in ("ours", "C"):
                        got = attempts.run_sync(f"{label}", f"{w.name} [{setting}]", round_no, lambda: run(
                            w, setting, firmwares[label], args.micropython_dir.resolve(), round_no, label))
                        if got is None:
                            continue
                        r, out = got
                        runs.append(r)
                        outputs.append(out)
                        print(f"round {round_no}/{args.rounds} {setting:<16} {w.name:<7} {label:<4} "
                              f"{r.rate:>9,.0f} B/s {100 * r.share:5.1f} % of the limit", flush=True)
    except BenchError as e:
        print(f"BENCHMARK FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)
    rows = [r for r in summarise(runs) if r["setting"] in settings
            and r["workload"] in [w.name for w in workloads]]
    print_table(rows)
    attempts.print_summary()
    print(f"\n{len(runs)} runs in {time.monotonic() - t0:.0f} s")
    missing = [f"{r['workload']} [{r['setting']}] on {side}" for r in rows for side in ("ours", "C")
               if r[side] is None]
    error = f"no good round of {', '.join(missing)}" if missing else None
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "started": started,
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "complete": error is None,
            "error": error,
            "rounds": args.rounds,
            "commit": git_commit(),
            "firmwares": {k: {"path": str(p), "sha256": hashes[k]} for k, p in sources.items()},
            "host": {"machine": platform.machine(), "cpus": os.cpu_count()},
            "summary": rows,
            "runs": [dict(asdict(r), output=o) for r, o in zip(runs, outputs)],
            "attempts": attempts.to_json(),
        }, indent=2) + "\n")
    if error:
        print(f"BENCHMARK FAILED: {error}", file=sys.stderr)
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
