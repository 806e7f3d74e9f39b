"""Shared pieces of the CPU, size and heap benchmarks (bench/cpu.py, bench/size.py, bench/heap.py).

Not a benchmark itself: the firmware paths, private snapshots of the two firmwares, a firmware
process whose stdout lines are read (with arrival times) as they come, and the JSON writer.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".cache" / "venv" / "bin" / "python"
MICROPY_DIR = Path(os.environ.get("MICROPY_DIR") or ROOT / ".cache" / "micropython-1.25.0")
NIMBLE_DIR = Path(os.environ.get("NIMBLE_DIR") or ROOT / ".cache" / "mynewt-nimble")
BENCH_OUT = ROOT / "build" / "bench"

FIRMWARES: dict[str, Path] = {
    "ours": ROOT / "build" / "unix" / "micropython",
    "C": ROOT / "build" / "bench" / "cmodule" / "micropython",
}
HINTS = {"ours": "make unix", "C": "bench/build_cmodule.sh"}

# The virtual-controller harness (tests/harness): imported, never modified.
sys.path.insert(0, str(ROOT / "tests" / "harness"))


class BenchError(Exception):
    """A measurement failed or could not be trusted. Inside `Attempts.run` the attempt is
    recorded and retried; anywhere else the benchmark stops with a non-zero exit."""


# Attempts of one measurement (a round of one test on one side) before that round is given up.
DEFAULT_TRIES = 3


@dataclass
class Failure:
    """One failed attempt: which side, what, which round and attempt, and why."""

    side: str
    what: str
    round: int
    attempt: int
    error: str


class Attempts:
    """Runs each measurement up to `tries` times, so one bad round on a busy machine does not
    end a whole benchmark. Every failed attempt is kept (`failures`), and `by_side` counts them
    and the rounds lost for good per side: a failure of ours is a finding to look at, not noise,
    so it is reported rather than only retried away."""

    def __init__(self, tries: int = DEFAULT_TRIES) -> None:
        if tries < 1:
            raise ValueError("tries must be at least 1")
        self.tries = tries
        self.failures: list[Failure] = []
        self.lost: list[tuple[str, str, int]] = []  # (side, what, round) with no good attempt

    def _failed(self, side: str, what: str, round_no: int, attempt: int, e: BaseException) -> None:
        error = f"{type(e).__name__}: {e}"
        self.failures.append(Failure(side, what, round_no, attempt, error))
        first = error.strip().splitlines()[0] if error.strip() else error
        verdict = "retrying" if attempt < self.tries else "round lost"
        print(f"round {round_no} {what} {side}: attempt {attempt}/{self.tries} failed ({verdict}): {first}",
              flush=True)

    async def run(self, side: str, what: str, round_no: int, measure: Any) -> Any:
        """`await measure()` until it returns without BenchError; its result, or None when
        every attempt failed."""
        for attempt in range(1, self.tries + 1):
            try:
                return await measure()
            except BenchError as e:
                self._failed(side, what, round_no, attempt, e)
        self.lost.append((side, what, round_no))
        return None

    def run_sync(self, side: str, what: str, round_no: int, measure: Any) -> Any:
        """As `run`, for a plain function."""
        for attempt in range(1, self.tries + 1):
            try:
                return measure()
            except BenchError as e:
                self._failed(side, what, round_no, attempt, e)
        self.lost.append((side, what, round_no))
        return None

    def by_side(self) -> dict[str, dict[str, int]]:
        out = {side: {"failed_attempts": 0, "lost_rounds": 0} for side in ("ours", "C")}
        for f in self.failures:
            out.setdefault(f.side, {"failed_attempts": 0, "lost_rounds": 0})["failed_attempts"] += 1
        for side, _, _ in self.lost:
            out.setdefault(side, {"failed_attempts": 0, "lost_rounds": 0})["lost_rounds"] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "tries": self.tries,
            "by_side": self.by_side(),
            "failures": [f.__dict__ for f in self.failures],
            "lost": [{"side": s, "what": w, "round": r} for s, w, r in self.lost],
        }

    def print_summary(self) -> None:
        counts = self.by_side()
        print("\nfailed attempts (retried up to {} times): ".format(self.tries)
              + "; ".join(f"{side} {c['failed_attempts']} failed, {c['lost_rounds']} rounds lost"
                          for side, c in counts.items()))
        for f in self.failures:
            print(f"--- {f.side} {f.what} round {f.round} attempt {f.attempt}:\n{f.error[-3000:]}")


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None


def host_info() -> dict[str, Any]:
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()}


def check_firmwares(sources: dict[str, Path]) -> None:
    """BenchError unless every firmware exists and imports bluetooth."""
    for label, fw in sources.items():
        if not os.access(fw, os.X_OK):
            raise BenchError(f"no {label} firmware at {fw} (run {HINTS.get(label, 'the build')})")
        check = subprocess.run(
            [str(fw), "-c", "import bluetooth; print(hasattr(bluetooth, 'BLE'))"],
            capture_output=True, text=True, timeout=30,
        )
        if check.returncode != 0 or check.stdout.strip() != "True":
            raise BenchError(f"{label} firmware {fw} is unusable: {check.stdout}{check.stderr}")


def snapshot(sources: dict[str, Path], into: Path) -> dict[str, Path]:
    """Private copies of the firmwares, so a rebuild elsewhere during the session can neither
    break a run nor mix two builds into one column."""
    copies: dict[str, Path] = {}
    for label, src in sources.items():
        dst = into / label / "micropython"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        copies[label] = dst
    return copies


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def print_table(head: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> None:
    """A plain text table: the first `left` columns left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for k, r in enumerate([head, *rows]):
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        print("  ".join(cells).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


@dataclass
class Line:
    t: float  # time.monotonic() when the line arrived
    text: str


@dataclass
class FwProcess:
    """A firmware process (possibly under valgrind) with stdin as a pipe (the scripts block on
    it where the bench wants them to wait) and stdout read line by line as it arrives."""

    argv: list[str]
    env: dict[str, str]
    name: str = "firmware"
    lines: list[Line] = field(default_factory=list)
    proc: asyncio.subprocess.Process | None = None
    _reader: asyncio.Task | None = None
    _stderr: asyncio.Task | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _taken: int = 0  # lines before this index were matched by expect()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, env=self.env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())
        self._stderr = asyncio.create_task(self._read_stderr())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(Line(time.monotonic(), line.decode(errors="replace").rstrip("\n")))
            self._changed.set()
        self._changed.set()

    async def _read_stderr(self) -> bytes:
        assert self.proc is not None and self.proc.stderr is not None
        return await self.proc.stderr.read()

    def output(self) -> str:
        return "\n".join(ln.text for ln in self.lines)

    async def expect(self, prefix: str, timeout: float) -> Line:
        """The next line (after the last one expect() returned) starting with `prefix`; a
        line starting with FAIL, the process ending or the timeout raise BenchError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i in range(self._taken, len(self.lines)):
                text = self.lines[i].text
                if text.startswith("FAIL"):
                    raise BenchError(f"{self.name}: {text}\n--- output:\n{self.output()}{await self.stderr_text()}")
                if text.startswith(prefix):
                    self._taken = i + 1
                    return self.lines[i]
            if self._reader is not None and self._reader.done():
                raise BenchError(f"{self.name} ended before {prefix!r}\n--- output:\n{self.output()}"
                                 f"{await self.stderr_text()}")
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BenchError(f"{self.name}: no {prefix!r} within {timeout:.0f} s\n--- output:\n{self.output()}")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    def send(self, data: bytes) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(data)

    async def stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        try:
            data = await asyncio.wait_for(asyncio.shield(self._stderr), 5)
        except asyncio.TimeoutError:
            return ""
        text = data.decode(errors="replace")
        return f"\n--- stderr:\n{text}" if text.strip() else ""

    async def wait(self, timeout: float) -> int:
        """Exit status; the process is killed (and BenchError raised) after `timeout`."""
        assert self.proc is not None
        try:
            rc = await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            await self.kill()
            raise BenchError(f"{self.name} did not exit within {timeout:.0f} s\n--- output:\n{self.output()}")
        if self._reader is not None:
            await self._reader
        return rc

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
