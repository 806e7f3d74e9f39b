#!/usr/bin/env python3
"""Throughput of our bluetooth module against MicroPython's own C module, both on NimBLE.

    bench/build_cmodule.sh          # once: build/bench/cmodule/micropython
    bench/throughput.py [--rounds N] [--json FILE] [--ours PATH] [--cmodule PATH] [TEST ...]

Runs MicroPython's perf_gatt_notify, perf_gatt_char_write and perf_l2cap multitests (or the
TESTs named) with both instances on our firmware (ours<->ours) and both on the C module's
(C<->C). Every run gets a fresh virtual link (tests/multitest.py's run_one). The two firmwares
alternate, A B A B, N rounds (default 5); within a round each test runs A then B back to back,
and the rounds spread each test over the whole session, so a burst of load from elsewhere on
the machine lands on one round of every test rather than on every round of one. Only one
multitest runs at a time. Both firmwares are copied to a private folder first, so a rebuild
elsewhere during the session (`make unix`) can neither break nor mix into the measurement.

Prints each run's throughput, from the counts and times the tests print, then a table of medians and the ratio
ours/C (above 1: ours is faster). --json FILE writes every run's raw numbers and output lines.
A failed run, or one whose numbers cannot be read, is retried (--tries, default 3 attempts per
round); every failed attempt is reported per side at the end and kept in the JSON. The exit is
non-zero only when a test has no good round left on a side, so there is no figure to show.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import multitest  # noqa: E402  (tests/multitest.py: VLink and the run-multitests driver)

sys.path.insert(0, str(ROOT / "bench"))
from benchlib import Attempts, BenchError, DEFAULT_TRIES, git_commit, sha256  # noqa: E402

DEFAULT_TESTS = ("perf_gatt_notify", "perf_gatt_char_write", "perf_l2cap")
FIRMWARES = {
    "ours": ROOT / "build" / "unix" / "micropython",
    "C": ROOT / "build" / "bench" / "cmodule" / "micropython",
}


@dataclass
class Metric:
    """One throughput figure a run reported."""

    name: str  # e.g. "perf_gatt_char_write/no-response"
    unit: str  # what `value` counts, per second
    value: float  # higher is faster
    count: int  # round trips, writes or bytes the test timed
    ms: int  # how long they took, by the device's ticks_ms
    line: str  # the metric line as the test printed it


@dataclass
class Run:
    round: int
    test: str
    firmware: str  # "ours" or "C"
    seconds: float  # the whole multitest, vlink start-up included
    metrics: list[Metric] = field(default_factory=list)


# What each perf test prints through multitest.output_metric (run-multitests.py then prints
# "<test file>: <metric>" for each, after the pass line).
NOTIFY_RE = re.compile(r"Acknowledged (\d+) notifications in (\d+) ms\.")
WRITE_RE = re.compile(r"Did (\d+) writes in (\d+) ms\. [\d.]+ ms/write, (\d+) bytes/sec")
L2CAP_RE = re.compile(r"Received (\d+)/(\d+) bytes in (\d+) ms\. (\d+) B/s")


def metric_lines(test: str, output: str) -> list[str]:
    prefix = re.compile(r"^\S*" + re.escape(test) + r"\.py: ")
    return [prefix.sub("", ln) for ln in output.splitlines() if prefix.match(ln)]


def rate(count: int, ms: int, what: str) -> float:
    if ms <= 0:
        raise BenchError(f"{what}: {count} in {ms} ms is below the clock's resolution")
    return count * 1000.0 / ms


def parse_metrics(test: str, output: str) -> list[Metric]:
    """The throughput figures in one passing run's output; BenchError if they are not there."""
    lines = metric_lines(test, output)
    found: list[Metric] = []
    if test == "perf_gatt_notify":
        for ln in lines:
            m = NOTIFY_RE.search(ln)
            if m:
                n, ms = int(m[1]), int(m[2])
                # Each notification is answered by one from the central: a round trip.
                found.append(Metric(test, "round trips/s", rate(n, ms, test), n, ms, ln))
        want = 1
    elif test == "perf_gatt_char_write":
        # The test writes without response (mode 0) first, then with response (mode 1).
        modes = ("no-response", "with-response")
        for ln in lines:
            m = WRITE_RE.search(ln)
            if m:
                n, ms, per_s = int(m[1]), int(m[2]), int(m[3])
                name = f"{test}/{modes[len(found)] if len(found) < len(modes) else 'extra'}"
                found.append(Metric(name, "bytes/s", float(per_s), n, ms, ln))
        want = len(modes)
    elif test == "perf_l2cap":
        for ln in lines:
            m = L2CAP_RE.search(ln)
            if m:
                received, correct, ms = int(m[1]), int(m[2]), int(m[3])
                if received != correct:
                    raise BenchError(f"{test}: only {correct} of {received} bytes were correct")
                found.append(Metric(test, "bytes/s", float(m[4]), received, ms, ln))
        want = 1
    else:
        raise BenchError(f"{test}: no parser for this test's output")
    if len(found) != want:
        raise BenchError(f"{test}: expected {want} metric line(s), found {lines!r}")
    return found


def run(test: str, firmware: Path, micropython_dir: Path, round_no: int, label: str) -> tuple[Run, str]:
    path = multitest.resolve(test, micropython_dir)
    _, ok, output, secs = multitest.run_one(path, firmware, micropython_dir)
    if not ok:
        raise BenchError(f"{test} on {label} failed in round {round_no}:\n{output}")
    try:
        metrics = parse_metrics(test, output)
    except BenchError as e:
        raise BenchError(f"{e}\nround {round_no}, {label}; output:\n{output}") from None
    return Run(round_no, test, label, round(secs, 2), metrics), output


def fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


@dataclass
class Row:
    """One metric over all runs: each firmware's values, their medians and ours/C of the medians."""

    metric: str
    unit: str
    ours: list[float]
    C: list[float]
    median_ours: float
    median_C: float
    ratio_ours_over_C: float


def summarise(runs: list[Run]) -> list[Row]:
    names: dict[str, str] = {}  # metric -> unit, in the order first seen
    values: dict[tuple[str, str], list[float]] = {}
    for r in runs:
        for m in r.metrics:
            names.setdefault(m.name, m.unit)
            values.setdefault((m.name, r.firmware), []).append(m.value)
    rows = []
    nan = float("nan")
    for name, unit in names.items():
        ours = values.get((name, "ours"), [])
        c = values.get((name, "C"), [])
        med_ours = statistics.median(ours) if ours else nan
        med_c = statistics.median(c) if c else nan
        rows.append(Row(name, unit, ours, c, med_ours, med_c, med_ours / med_c if c and med_c else nan))
    return rows


def print_table(rows: list[Row], rounds: int) -> None:
    head = ("metric", "unit", "ours (median)", "C (median)", "ours/C", "ours min..max", "C min..max")
    body = [
        (
            row.metric,
            row.unit,
            fmt(row.median_ours),
            fmt(row.median_C),
            f"{row.ratio_ours_over_C:.2f}",
            f"{fmt(min(row.ours))}..{fmt(max(row.ours))}" if row.ours else "-",
            f"{fmt(min(row.C))}..{fmt(max(row.C))}" if row.C else "-",
        )
        for row in rows
    ]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    print(f"\nMedians of {rounds} runs each (ours<->ours vs C<->C, alternated); ratio above 1 = ours faster")
    for i, r in enumerate([head, *body]):
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])] + [
            r[k].rjust(widths[k]) for k in range(2, len(r))
        ]
        print("  ".join(cells))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def take_snapshot(sources: dict[str, Path], into: Path) -> dict[str, Path]:
    """Private copies of the firmwares, so a rebuild elsewhere during the session (e.g. `make
    unix`) neither breaks a run nor mixes two builds into one column. Each copy must import
    bluetooth and have L2CAP channels, or it is not a build worth measuring."""
    copies: dict[str, Path] = {}
    for label, src in sources.items():
        dst = into / label / "micropython"
        dst.parent.mkdir()
        shutil.copy2(src, dst)
        check = subprocess.run(
            [str(dst), "-c", "import bluetooth; print(hasattr(bluetooth.BLE, 'l2cap_connect'))"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check.returncode != 0 or check.stdout.strip() != "True":
            raise BenchError(f"{label} firmware {src} is unusable: {check.stdout}{check.stderr}")
        copies[label] = dst
    return copies


def write_json(
    path: Path,
    args: argparse.Namespace,
    sources: dict[str, Path],
    hashes: dict[str, str],
    runs: list[Run],
    outputs: list[str],
    error: str | None,
    attempts: Attempts,
) -> None:
    data = {
        "started": args.started,
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "complete": error is None,
        "error": error,
        "rounds": args.rounds,
        "tests": args.tests,
        "firmwares": {
            k: {"path": str(path), "sha256": hashes[k]} for k, path in sources.items()
        },
        "micropython_dir": str(args.micropython_dir),
        "commit": git_commit(),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "loadavg_at_start": args.load},
        "summary": [asdict(row) for row in summarise(runs)],
        "runs": [dict(asdict(r), output=o) for r, o in zip(runs, outputs)],
        "attempts": attempts.to_json(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="A B pairs per test (default %(default)s)")
    ap.add_argument("--json", type=Path, help="write raw results here")
    ap.add_argument("--ours", type=Path, default=FIRMWARES["ours"], help="our firmware")
    ap.add_argument("--cmodule", type=Path, default=FIRMWARES["C"], help="the C module's firmware")
    ap.add_argument(
        "--micropython-dir",
        type=Path,
        default=Path(os.environ.get("MICROPY_DIR") or ROOT / ".cache" / "micropython-1.25.0"),
    )
    ap.add_argument("--tries", type=int, default=DEFAULT_TRIES,
                    help="attempts per round of one test on one side (default %(default)s)")
    ap.add_argument("tests", nargs="*", default=list(DEFAULT_TESTS))
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.tries < 1:
        ap.error("--tries must be at least 1")
    args.started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    args.load = os.getloadavg()
    args.micropython_dir = args.micropython_dir.resolve()

    sources = {"ours": args.ours.resolve(), "C": args.cmodule.resolve()}
    for label, fw in sources.items():
        if not os.access(fw, os.X_OK):
            hint = "make unix" if label == "ours" else "bench/build_cmodule.sh"
            print(f"no {label} firmware at {fw} (run {hint})", file=sys.stderr)
            return 2
    for test in args.tests:
        if not multitest.resolve(test, args.micropython_dir).exists():
            print(f"no such multitest: {test}", file=sys.stderr)
            return 2

    runs: list[Run] = []
    outputs: list[str] = []
    attempts = Attempts(args.tries)
    t0 = time.monotonic()
    snapshot = Path(tempfile.mkdtemp(prefix="ubt-bench-"))
    try:
        firmwares = take_snapshot(sources, snapshot)
        hashes = {label: sha256(path) for label, path in firmwares.items()}
    except BenchError as e:
        shutil.rmtree(snapshot, ignore_errors=True)
        print(f"BENCHMARK FAILED: {e}", file=sys.stderr)
        return 1
    try:
        for round_no in range(1, args.rounds + 1):
            for test in args.tests:
                for label in ("ours", "C"):
                    got = attempts.run_sync(label, test, round_no, lambda: run(
                        test, firmwares[label], args.micropython_dir, round_no, label))
                    if got is None:
                        continue
                    r, out = got
                    runs.append(r)
                    outputs.append(out)
                    shown = ", ".join(
                        f"{m.name.partition('/')[2] + ' ' if '/' in m.name else ''}{fmt(m.value)} {m.unit}"
                        for m in r.metrics
                    )
                    print(f"round {round_no}/{args.rounds} {test:<21} {label:<4} {shown} ({r.seconds:.1f} s)",
                          flush=True)
    except BenchError as e:
        print(f"\nBENCHMARK FAILED: {e}", file=sys.stderr)
        if args.json:
            write_json(args.json, args, sources, hashes, runs, outputs, str(e), attempts)
        return 1
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)

    print_table(summarise(runs), args.rounds)
    attempts.print_summary()
    print(f"\n{len(runs)} runs in {time.monotonic() - t0:.0f} s")
    missing = [f"{test} on {label}" for test in args.tests for label in ("ours", "C")
               if not any(r.test == test and r.firmware == label for r in runs)]
    error = f"no good round of {', '.join(missing)}" if missing else None
    if error:
        print(f"\nBENCHMARK FAILED: {error}", file=sys.stderr)
    if args.json:
        write_json(args.json, args, sources, hashes, runs, outputs, error, attempts)
        print(f"raw results: {args.json}")
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
