#!/usr/bin/env python3
"""Runs MicroPython's Bluetooth multitests on our Unix firmware over virtual controllers.

    tests/multitest.py [--firmware PATH] [--micropython-dir DIR] [-j N]
                       [--controller vlink|rootcanal] [--rootcanal-preset P]
                       [--rootcanal-quirk Q] [--controller-profile NAME] [--qemu-instance N]
                       [--instance-firmware N=PATH]
                       [--tag TAG] [--list] [TEST ...]

Each test gets its own radio with one controller per firmware instance, so tests run in
parallel without sharing one: a virtual link of Bumble controllers (tests/harness/vlink.py, the
default) or, with `--controller rootcanal`, its own RootCanal process
(tests/harness/rootcanal_link.py), whose HCI sniffer pcaps of a failed test are kept in
build/rootcanal-traces/TEST/. A TEST is a name from MicroPython's
tests/multi_bluetooth (e.g. ble_gap_advertise) or a path to a multitest file of ours. With no
TEST the list in tests/multitests.txt runs, or with `--tag TAG` the entries of that list tagged
TAG (e.g. `--tag gc-stress`; repeated, entries with every tag given). `--controller-profile
NAME` makes every virtual controller model that kind of part (tests/harness/vcontroller.py
PROFILES; repeated, or `all`, every test runs once per profile: the controller matrix); a test
whose controller logged a HOST BUG (ACL data beyond its buffers) fails. Entries tagged `alone`
run after the others, by themselves; entries tagged `vlink-only` are left out on RootCanal.
`--list` prints the selection and runs nothing. Prints one
line per test and `N passed, M failed`; exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".cache" / "venv" / "bin" / "python"
VLINK = ROOT / "tests" / "harness" / "vlink.py"
TRACES = ROOT / "build" / "rootcanal-traces"
DEFAULT_LIST = ROOT / "tests" / "multitests.txt"
TEST_TIMEOUT_S = 300
HOST_BUG = "HOST BUG"  # vcontroller.HOST_BUG: what the controller logs on a host error


def read_list(path: Path) -> list[tuple[str, set[str]]]:
    """tests/multitests.txt: one test per line, then its tags; `#` starts a comment."""
    entries = []
    for line in path.read_text().splitlines():
        words = line.split("#")[0].split()
        if words:
            entries.append((words[0], set(words[1:])))
    return entries


def instance_count(test: Path) -> int:
    """A multitest defines instance0() .. instanceN(); the highest N + 1 instances run it."""
    found = re.findall(r"^def instance(\d+)\(", test.read_text(), re.M)
    return max(int(n) for n in found) + 1 if found else 1


class VLink:
    """One vlink.py process with `count` controllers in a private directory."""

    def unix_uart(self, index: int) -> str:
        """MICROPYBTUART for a Unix instance on controller `index`."""
        return self.paths[index]

    def qemu_serial(self, index: int) -> str:
        """qemu's -serial for the board's HCI UART on controller `index`: the pty itself."""
        return os.path.realpath(self.paths[index])

    def keep_traces(self, name: str) -> str | None:
        return None

    def __init__(self, count: int, profile: str | None = None, packet_log: bool = False):
        self.dir = tempfile.mkdtemp(prefix="ubt-vlink-")
        python = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
        # stderr goes to a file: an unread pipe would stall vlink once it filled.
        self.log_path = os.path.join(self.dir, "vlink.log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [python, str(VLINK), "--count", str(count), "--dir", self.dir]
                + (["--profile", profile] if profile else [])
                + (["-vv"] if packet_log else []),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.close()
            with open(self.log_path) as log:
                raise RuntimeError(f"vlink did not start: {line!r} {log.read()}")
        self.paths = [os.path.join(self.dir, f"hci{i}") for i in range(count)]

    def host_bugs(self) -> list[str]:
        """The host errors the controllers logged so far."""
        with open(self.log_path) as log:
            return [line.rstrip() for line in log if HOST_BUG in line]

    def close(self, keep_log: Path | None = None) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if keep_log is not None:
            shutil.copy(self.log_path, keep_log)
        shutil.rmtree(self.dir, ignore_errors=True)


class RootCanalRadio:
    """One RootCanal process for one test: every instance a new controller on its radio, an HCI
    pcap per controller written to a private folder, kept only if the test fails."""

    def __init__(self, preset: str | None = None, quirks: tuple[str, ...] = ()):
        sys.path.insert(0, str(ROOT / "tests" / "harness"))
        from rootcanal_link import RootCanal

        self.traces = tempfile.mkdtemp(prefix="ubt-rc-traces-")
        self.rc = RootCanal(preset=preset, quirks=quirks, sniffer_dir=self.traces)
        try:
            self.rc.start()
        except BaseException:
            shutil.rmtree(self.traces, ignore_errors=True)
            raise

    def unix_uart(self, index: int) -> str:
        return self.rc.unix_uart()

    def qemu_serial(self, index: int) -> str:
        # A bridged pty rather than QEMU's own TCP client: QEMU acknowledges late (delayed
        # ACK) and RootCanal sends without TCP_NODELAY, so every packet would wait ~40 ms; the
        # bridge acknowledges at once (the firmware's own TCP client does the same).
        return os.path.realpath(self.rc.bridged_pty())

    def keep_traces(self, name: str) -> str | None:
        """Moves this test's pcaps and RootCanal's log to build/rootcanal-traces/NAME."""
        dest = TRACES / name
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.rc.stop()
        shutil.copy(self.rc.log_path, self.traces)
        shutil.move(self.traces, dest)
        return str(dest)

    def host_bugs(self) -> list[str]:
        """RootCanal checks the host itself (its log); nothing is collected here."""
        return []

    def close(self) -> None:
        self.rc.close()
        shutil.rmtree(self.traces, ignore_errors=True)


def resolve(name: str, micropython_dir: Path) -> Path:
    p = Path(name)
    if p.suffix == ".py":
        # Our own multitests, named by path (relative to the repository root).
        return p.resolve() if p.is_absolute() or p.exists() else (ROOT / p).resolve()
    return micropython_dir / "tests" / "multi_bluetooth" / (p.stem + ".py")


def qemu_command(
    elf: Path | str, console: str, hci_serial: str, trace: Path | None = None
) -> list[str]:
    """qemu-system-arm running the Cortex-M4F firmware (make qemu): its REPL on the first
    serial port (`console`: `stdio` or `pty`), its HCI UART on `hci_serial`: a controller's tty
    by its /dev path, which QEMU opens as a host tty, or `tcp:HOST:PORT`, a TCP client
    connection (no -chardev, whose options need commas). With `trace`, QEMU writes there every
    byte its CMSDK UARTs receive and send, each stamped `thread@seconds`: the byte's hand-over
    to the guest (receive) happens in QEMU's main loop, transmission in the vCPU thread."""
    if not hci_serial.startswith("tcp:"):
        hci_serial = os.path.realpath(hci_serial)
    extra = []
    if trace is not None:
        extra = [
            "-msg", "timestamp=on", "-D", str(trace),
            "-trace", "cmsdk_apb_uart_receive", "-trace", "cmsdk_apb_uart_tx",
        ]
    return [
        "qemu-system-arm", "-machine", "mps2-an386", "-nographic", "-monitor", "null",
        "-semihosting", "-serial", console, "-serial", hci_serial,
        "-kernel", str(elf), *extra,
    ]


def qemu_instance(elf: Path, hci_serial: str, trace: Path | None = None) -> str:
    """run-multitests' spec for an instance on the Cortex-M4F firmware: its REPL on a pty
    (pyboard's `execpty:`). run-multitests splits specs at commas, so none may appear."""
    return "pyb:execpty:" + " ".join(qemu_command(elf, "pty", hci_serial, trace))


def run_one(
    test: Path,
    firmware: Path,
    micropython_dir: Path,
    extra_path: tuple[str, ...] = (),
    qemu: tuple[int, Path] | None = None,
    profile: str | None = None,
    rootcanal: tuple[str | None, tuple[str, ...]] | None = None,
    trace: Path | None = None,
    instance_firmware: dict[int, Path] | None = None,
) -> tuple[str, bool, str, float]:
    """Runs one test on a radio of its own: a VLink, or with `rootcanal` = (preset, quirks)
    a RootCanal."""
    t0 = time.monotonic()
    n = instance_count(test)
    link: VLink | RootCanalRadio = (
        VLink(n, profile, packet_log=trace is not None)
        if rootcanal is None
        else RootCanalRadio(*rootcanal)
    )
    ok = False
    kept_log = None
    try:
        cmd = [sys.executable, "run-multitests.py"]
        # run-multitests replaces the environment; keep the frozen modules (asyncio) importable.
        micropython_path = ":".join((*extra_path, ".frozen", "../extmod"))
        for i in range(n):
            if qemu is not None and i == qemu[0]:
                qemu_trace = None if trace is None else trace.with_suffix(".qemu.log")
                cmd += ["-i", qemu_instance(qemu[1], link.qemu_serial(i), qemu_trace)]
                continue
            uart = link.unix_uart(i)
            own = (instance_firmware or {}).get(i)
            program = "micropython" if own is None else f"exec:{own}"
            spec = f"{program},MICROPYBTUART={uart},MICROPYPATH={micropython_path}"
            if trace is not None:
                # The firmware's own timestamped view of its HCI bytes, per instance.
                spec += f",MICROPYBTTRACE={trace.with_suffix(f'.h4-{i}.log')}"
            cmd += ["-i", spec]
        cmd.append(str(test))
        env = dict(os.environ, MICROPY_MICROPYTHON=str(firmware))
        try:
            out = subprocess.run(
                cmd,
                cwd=micropython_dir / "tests",
                env=env,
                capture_output=True,
                text=True,
                timeout=TEST_TIMEOUT_S,
            )
            output = out.stdout + out.stderr
            ok = out.returncode == 0 and re.search(r"^1 tests passed", out.stdout, re.M) is not None
        except subprocess.TimeoutExpired as e:
            output = f"timeout after {TEST_TIMEOUT_S} s\n{e.stdout or ''}"
            ok = False
        bugs = link.host_bugs()
        if bugs:
            ok = False
            output = "the controller saw host errors:\n" + "\n".join(bugs) + "\n" + output
        if not ok:
            kept = link.keep_traces(test.stem)
            if kept:
                output += f"\nRootCanal HCI traces (pcap per controller) and log: {kept}\n"
        if trace is not None:
            trace.with_suffix(".out").write_text(output)
            if isinstance(link, VLink):
                kept_log = trace.with_suffix(".vlink.log")
    finally:
        if isinstance(link, VLink):
            link.close(kept_log)
        else:
            link.close()
    name = test.stem if profile is None else f"{test.stem} [{profile}]"
    return name, ok, output, time.monotonic() - t0


def controller_profiles() -> list[str]:
    """The names of the controller profiles (tests/harness/vcontroller.py PROFILES)."""
    python = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
    out = subprocess.run(
        [python, str(VLINK), "--list-profiles"], capture_output=True, text=True, check=True
    )
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def gc_stress(
    tests: list[tuple[Path, bool]], firmware: Path, heapsize: str
) -> tuple[list[tuple[Path, bool]], Path]:
    """Copies of the tests with the GC-stress preamble, and a firmware wrapper that starts the
    firmware with a heap of `heapsize`; both in a temporary folder kept for the run."""
    work = Path(tempfile.mkdtemp(prefix="ubt-gc-stress-"))
    preamble = (ROOT / "tests" / "gc_stress_preamble.py").read_text()
    copies = []
    for test, alone in tests:
        copy = work / test.name
        copy.write_text(preamble + "\n" + test.read_text())
        exp = test.with_name(test.name + ".exp")
        if exp.exists():
            shutil.copy(exp, work / exp.name)
        copies.append((copy, alone))
    wrapper = work / "micropython"
    wrapper.write_text(f'#!/bin/sh\nexec "{firmware}" -X heapsize={heapsize} "$@"\n')
    wrapper.chmod(0o755)
    return copies, wrapper


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--firmware", default=str(ROOT / "build" / "unix" / "micropython"))
    ap.add_argument(
        "--micropython-dir",
        default=os.environ.get("MICROPY_DIR") or str(ROOT / ".cache" / "micropython-1.25.0"),
    )
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument(
        "--gc-stress",
        metavar="HEAPSIZE",
        help="run every test with gc.collect() inside each IRQ handler call "
        "(tests/gc_stress_preamble.py) and `-X heapsize=HEAPSIZE` (e.g. 48k)",
    )
    ap.add_argument(
        "--path",
        action="append",
        default=[],
        help="a folder to put on the instances' MICROPYPATH (e.g. one holding aioble); repeatable",
    )
    ap.add_argument(
        "--qemu-instance",
        type=int,
        metavar="N",
        help="run instance N on the Cortex-M4F firmware in qemu (make qemu), the others on Unix",
    )
    ap.add_argument("--qemu-firmware", default=str(ROOT / "build" / "qemu" / "firmware.elf"))
    ap.add_argument(
        "--instance-firmware",
        action="append",
        default=[],
        metavar="N=PATH",
        help="run instance N on another Unix firmware (e.g. one built with fewer features by "
        "`make unix-features`); repeatable",
    )
    ap.add_argument(
        "--controller",
        choices=("vlink", "rootcanal"),
        default="vlink",
        help="each test's radio: a link of Bumble controllers (vlink, the default) or its own "
        "RootCanal process (rootcanal; traces of failed tests in build/rootcanal-traces/)",
    )
    ap.add_argument(
        "--rootcanal-preset",
        metavar="PRESET",
        help="RootCanal controller preset (config.proto), e.g. LAIRD_BL654; "
        "implies --controller rootcanal",
    )
    ap.add_argument(
        "--rootcanal-quirk",
        action="append",
        default=[],
        metavar="QUIRK",
        help="RootCanal controller quirk set true, e.g. hardware_error_before_reset; repeatable; "
        "implies --controller rootcanal",
    )
    ap.add_argument(
        "--tag",
        action="append",
        default=[],
        help="run the entries of tests/multitests.txt with this tag (repeatable: all of them)",
    )
    ap.add_argument(
        "--controller-profile",
        action="append",
        default=[],
        metavar="NAME",
        help="controllers model this kind of part (vlink.py --list-profiles); repeatable, "
        "or `all`: every test runs once per profile",
    )
    ap.add_argument(
        "--skip-cell",
        action="append",
        default=[],
        metavar="TEST:PROFILE",
        help="with --controller-profile: leave out this test on this profile (repeatable)",
    )
    ap.add_argument("--list", action="store_true", help="print the selected tests, run nothing")
    ap.add_argument(
        "--trace-dir",
        help="keep, per run K of test T, T-K.vlink.log (every HCI packet, vlink -vv), "
        "T-K.qemu.log (the qemu board's UART bytes, timestamped), T-K.h4-I.log (Unix instance "
        "I's own H4 trace, MICROPYBTTRACE) and T-K.out",
    )
    ap.add_argument("tests", nargs="*")
    args = ap.parse_args()

    micropython_dir = Path(args.micropython_dir).resolve()
    on_rootcanal = bool(
        args.controller == "rootcanal" or args.rootcanal_preset or args.rootcanal_quirk
    )
    if args.tests and args.tag:
        ap.error("name tests or select them with --tag, not both")
    if args.tests:
        entries = [(n, False) for n in args.tests]
    else:
        listed = read_list(DEFAULT_LIST)
        known = set().union(*(tags for _, tags in listed))
        unknown = sorted(set(args.tag) - known)
        if unknown:
            ap.error(f"no entry of {DEFAULT_LIST.name} has the tag(s) {', '.join(unknown)}")
        selected = [(n, tags) for n, tags in listed if set(args.tag) <= tags]
        if on_rootcanal:
            # What RootCanal itself gets wrong for a test (the reason is beside its line).
            for n, tags in selected:
                if "vlink-only" in tags:
                    print(f"multitest {Path(n).stem}: left out on RootCanal (vlink-only)")
            selected = [(n, tags) for n, tags in selected if "vlink-only" not in tags]
        entries = [(n, "alone" in tags) for n, tags in selected]
    profiles: list[str | None] = [None]
    if args.controller_profile:
        if on_rootcanal:
            ap.error("--controller-profile models parts on our virtual controller, not RootCanal")
        known_profiles = controller_profiles()
        profiles = []
        for name in args.controller_profile:
            chosen = [p for p in known_profiles if p != "default"] if name == "all" else [name]
            for p in chosen:
                if p not in known_profiles:
                    ap.error(f"no controller profile {p!r}; known: {', '.join(known_profiles)}")
                if p not in profiles:
                    profiles.append(p)
    skipped = {tuple(cell.split(":", 1)) for cell in args.skip_cell}

    def runs(name: str) -> list[str | None]:
        return [p for p in profiles if (Path(name).stem, p) not in skipped]

    if args.list:
        for name, alone in entries:
            for p in runs(name):
                print(name + (f" [{p}]" if p else "") + (" alone" if alone else ""))
        return 0
    tests = [(resolve(n, micropython_dir), alone) for n, alone in entries]
    missing = [str(t) for t, _ in tests if not t.exists()]
    if missing:
        print("missing tests:", *missing, file=sys.stderr)
        return 2

    extra = tuple(str(Path(p).resolve()) for p in args.path)
    firmware = Path(args.firmware).resolve()
    if args.gc_stress:
        tests, firmware = gc_stress(tests, firmware, args.gc_stress)
    instance_firmware = {}
    for item in args.instance_firmware:
        n, _, path = item.partition("=")
        if not n.isdigit() or not path:
            print(f"--instance-firmware {item}: expected N=PATH", file=sys.stderr)
            return 2
        instance_firmware[int(n)] = Path(path).resolve()
    qemu = None
    if args.qemu_instance is not None:
        qemu = (args.qemu_instance, Path(args.qemu_firmware).resolve())
    rootcanal = None
    if on_rootcanal:
        rootcanal = (args.rootcanal_preset, tuple(args.rootcanal_quirk))
    trace_dir = None
    if args.trace_dir:
        trace_dir = Path(args.trace_dir).resolve()
        trace_dir.mkdir(parents=True, exist_ok=True)
    run_counts: dict[str, int] = {}

    def trace_for(test: Path) -> Path | None:
        if trace_dir is None:
            return None
        run_counts[test.stem] = run_counts.get(test.stem, 0) + 1
        return trace_dir / f"{test.stem}-{run_counts[test.stem]}"

    passed = failed = 0
    # Tests marked `alone` (busy for a long time, CPU-heavy) run after the others, one at a
    # time: beside them, two cores leave other tests' start-up and HCI commands past their
    # 2 s timeouts.
    batches = [[t for t, alone in tests if not alone], [t for t, alone in tests if alone]]
    for batch, jobs in zip(batches, (args.jobs, 1)):
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [
                pool.submit(
                    run_one,
                    t,
                    firmware,
                    micropython_dir,
                    extra,
                    qemu,
                    p,
                    rootcanal,
                    trace_for(t),
                    instance_firmware,
                )
                for t in batch
                for p in runs(t.name)
            ]
            for fut in concurrent.futures.as_completed(futures):
                name, ok, output, secs = fut.result()
                print(f"multitest {name}: {'pass' if ok else 'FAIL'} ({secs:.1f} s)", flush=True)
                if ok:
                    passed += 1
                else:
                    failed += 1
                    print(output, flush=True)
    print(f"multitests: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
