#!/usr/bin/env python3
"""Run the firmware-level test scripts in tests/firmware/ on the Unix firmware.

    python3 tests/firmware/run.py [--firmware PATH] [-j N] [--timeout S] [FILTER ...]

Every `tests/firmware/*.py` (except this file and names starting with `_`) is a test
script. It is run as `micropython <name>.py` (cwd = this directory) and its stdout is
compared exactly with `<name>.py.exp`. A crash, a non-zero exit status or a timeout is a
failure too. stderr is not compared (it is shown when a test fails) unless the script
asks for it with `stderr-contains`.

A script's leading comment block may hold directives, one per line:

    # needs: controllers=N        start one vlink with N virtual controllers for this
                                  script; MICROPYBTUART=<dir>/hci0 (and FWTEST_HCI_DIR=<dir>)
    # env: NAME=VALUE             extra environment variable (repeatable)
    # timeout: SECONDS            per-script timeout (default --timeout)
    # stderr-contains: TEXT       stderr must contain TEXT (repeatable)
    # stdout-any-order: PREFIX    stdout lines starting with PREFIX may appear anywhere
                                  (e.g. output the C library buffers); they are compared
                                  as a sorted group after the other lines (repeatable)
    # peer: SCRIPT [ARG ...]      start another firmware instance running SCRIPT on the
                                  next controller (hci1, hci2, ...) before the test, and
                                  kill it after the test (repeatable; needs controllers)
    # stdin-after: SECONDS TEXT   stdin is a pipe instead of /dev/null: once the script
                                  has created the file $FWTEST_TMP/stdin-go, the runner
                                  waits SECONDS and then writes TEXT + "\n" to it and
                                  closes it (so a script can block in a read for a known
                                  time); without the file, stdin just stays open and empty

Without `needs` and without an `env: MICROPYBTUART=...` the firmware gets
MICROPYBTUART=/nonexistent, so it never touches a real device.

FILTERs select tests by name: a shell pattern (`ble_*`) or a substring (`uuid`).
Exit status: 0 if every selected test passed, 1 otherwise, 2 if nothing was selected.
Works with plain python3; vlink is started with the project venv's python.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import difflib
import fnmatch
import os
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_FIRMWARE = os.path.join(ROOT, 'build', 'unix', 'micropython')
VENV_PYTHON = os.path.join(ROOT, '.cache', 'venv', 'bin', 'python')
VLINK = os.path.join(ROOT, 'tests', 'harness', 'vlink.py')
DEFAULT_TIMEOUT_S = 60.0
VLINK_READY_TIMEOUT_S = 30.0
NO_DEVICE = '/nonexistent'

DIRECTIVES = ('needs', 'env', 'timeout', 'stderr-contains', 'stdout-any-order', 'peer',
              'stdin-after')

# Every child process we started and have not reaped yet, so that an interrupt or an
# unexpected error can still kill them all.
_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()
_stopping = False  # set (under _live_lock) once the run is being torn down
_print_lock = threading.Lock()


class TestError(Exception):
    """A problem with the test setup (bad directive, vlink not starting...)."""


# ------------------------------------------------------------------------------ processes
def _spawn(args, **kwargs) -> subprocess.Popen:
    # Own session / process group: killing the group also gets any grandchildren.
    with _live_lock:
        if _stopping:
            raise TestError('interrupted')
        proc = subprocess.Popen(args, start_new_session=True, **kwargs)
        _live.add(proc)
    return proc


def _kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(proc: subprocess.Popen, grace_s: float = 0.0) -> None:
    """Wait up to grace_s for proc to exit by itself, then SIGTERM, then SIGKILL."""
    try:
        if grace_s > 0:
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:
            _kill(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                _kill(proc, signal.SIGKILL)
                proc.wait()
        else:
            # The leader is gone; make sure nothing it started lingers in its group.
            _kill(proc, signal.SIGKILL)
    finally:
        with _live_lock:
            _live.discard(proc)


def kill_all() -> None:
    global _stopping
    with _live_lock:
        _stopping = True
        procs = list(_live)
    for proc in procs:
        _kill(proc, signal.SIGKILL)
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        with _live_lock:
            _live.discard(proc)


# ------------------------------------------------------------------------------ tests
class Test:
    def __init__(self, path: str, default_timeout: float) -> None:
        self.path = path
        self.name = os.path.basename(path)
        self.exp_path = path + '.exp'
        self.controllers = 0
        self.env: dict[str, str] = {}
        self.timeout = default_timeout
        self.stderr_contains: list[str] = []
        self.any_order: list[str] = []
        self.peers: list[list[str]] = []
        self.stdin_after: tuple[float, str] | None = None
        self._parse_header()

    def _parse_header(self) -> None:
        with open(self.path, encoding='utf-8') as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                if not line.startswith('#'):
                    break
                body = line[1:].strip()
                key, sep, value = body.partition(':')
                key = key.strip().lower()
                if not sep or key not in DIRECTIVES:
                    continue
                value = value.strip()
                if key == 'needs':
                    for item in value.replace(',', ' ').split():
                        what, _, count = item.partition('=')
                        if what != 'controllers' or not count.isdigit():
                            raise TestError(f'{self.name}: bad directive "needs: {value}"')
                        self.controllers = int(count)
                elif key == 'env':
                    name, eq, val = value.partition('=')
                    if not eq or not name.strip():
                        raise TestError(f'{self.name}: bad directive "env: {value}"')
                    self.env[name.strip()] = val.strip()
                elif key == 'timeout':
                    try:
                        self.timeout = float(value)
                    except ValueError:
                        raise TestError(f'{self.name}: bad directive "timeout: {value}"') from None
                elif key == 'stderr-contains':
                    self.stderr_contains.append(value)
                elif key == 'stdout-any-order':
                    self.any_order.append(value)
                elif key == 'peer':
                    self.peers.append(shlex.split(value))
                elif key == 'stdin-after':
                    delay, _, text = value.partition(' ')
                    try:
                        self.stdin_after = (float(delay), text.strip())
                    except ValueError:
                        raise TestError(f'{self.name}: bad directive "stdin-after: {value}"') from None
        if self.peers and self.controllers < 1 + len(self.peers):
            raise TestError(f'{self.name}: {len(self.peers)} peer(s) need '
                            f'controllers={1 + len(self.peers)} or more')


class Result:
    def __init__(self, name: str) -> None:
        self.name = name
        self.passed = False
        self.reason = ''
        self.details: list[str] = []
        self.duration = 0.0


def _decode(data: bytes | None) -> str:
    return (data or b'').decode('utf-8', errors='backslashreplace')


def _tail(text: str, lines: int = 40) -> str:
    parts = text.splitlines()
    if len(parts) > lines:
        parts = [f'... ({len(parts) - lines} lines omitted)'] + parts[-lines:]
    return '\n'.join(parts)


def _arrange(text: str, prefixes: list[str]) -> list[str]:
    """The lines of text, with those starting with one of prefixes moved (sorted) to the end."""
    lines = text.splitlines(keepends=True)
    if not prefixes:
        return lines
    fixed = [ln for ln in lines if not ln.startswith(tuple(prefixes))]
    floating = [ln for ln in lines if ln.startswith(tuple(prefixes))]
    # keep the comparison insensitive to a missing final newline inside the group only
    floating = sorted(ln if ln.endswith('\n') else ln + '\n' for ln in floating)
    return fixed + floating


def _start_vlink(count: int, directory: str, log_path: str) -> subprocess.Popen:
    python = VENV_PYTHON if os.path.exists(VENV_PYTHON) else sys.executable
    log = open(log_path, 'wb')
    try:
        proc = _spawn([python, VLINK, '--count', str(count), '--dir', directory],
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
    finally:
        log.close()
    # Wait for "ready" on stdout.
    deadline = time.monotonic() + VLINK_READY_TIMEOUT_S
    buf = b''
    fd = proc.stdout.fileno()
    while b'ready' not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _reap(proc)
            raise TestError(f'vlink not ready after {VLINK_READY_TIMEOUT_S:.0f} s')
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                proc.wait()
                with open(log_path, 'rb') as f:
                    err = _decode(f.read())
                with _live_lock:
                    _live.discard(proc)
                raise TestError(f'vlink exited with status {proc.returncode} before ready\n'
                                + _tail(err))
            buf += chunk
    return proc


def _stop_vlink(proc: subprocess.Popen) -> None:
    # EOF on stdin makes vlink shut down cleanly (removing its symlinks).
    try:
        proc.stdin.close()
    except OSError:
        pass
    _reap(proc, grace_s=5.0)
    try:
        proc.stdout.close()
    except OSError:
        pass


def _feed_stdin(fd: int, go_path: str, delay: float, text: str,
                stop: threading.Event) -> None:
    """For `stdin-after`: writes text + newline to fd delay seconds after go_path appears.

    Always closes fd, so the script sees end-of-file after the line (or when the test ends).
    """
    try:
        while not stop.wait(0.01):
            if os.path.exists(go_path):
                if not stop.wait(delay):
                    os.write(fd, (text + '\n').encode())
                break
    except OSError:
        pass  # the script is gone (EPIPE)
    finally:
        os.close(fd)


def run_test(test: Test, firmware: str, tmp_root: str) -> Result:
    result = Result(test.name)
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix=test.name[:-3] + '.', dir=tmp_root)
    vlink = None
    vlink_log = os.path.join(workdir, 'vlink.log')
    peers: list[tuple[list[str], subprocess.Popen, str]] = []
    feeder = None
    stop_feeding = threading.Event()
    try:
        env = dict(os.environ)
        env.pop('MICROPYBTUART', None)
        env['MICROPYBTUART'] = NO_DEVICE
        env['FWTEST_FIRMWARE'] = firmware
        env['FWTEST_TMP'] = workdir
        if test.controllers:
            hci_dir = os.path.join(workdir, 'hci')
            vlink = _start_vlink(test.controllers, hci_dir, vlink_log)
            env['MICROPYBTUART'] = os.path.join(hci_dir, 'hci0')
            env['FWTEST_HCI_DIR'] = hci_dir
        env.update(test.env)

        for index, peer_args in enumerate(test.peers, start=1):
            peer_env = dict(env)
            peer_env['MICROPYBTUART'] = os.path.join(env['FWTEST_HCI_DIR'], f'hci{index}')
            out_path = os.path.join(workdir, f'peer{index}.out')
            with open(out_path, 'wb') as out:
                proc = _spawn([firmware] + peer_args, cwd=HERE, env=peer_env,
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            peers.append((peer_args, proc, out_path))

        stdin = subprocess.DEVNULL
        if test.stdin_after is not None:
            # Both ends are close-on-exec, so only the script's stdin refers to the pipe.
            stdin, write_end = os.pipe()
            feeder = threading.Thread(
                target=_feed_stdin,
                args=(write_end, os.path.join(workdir, 'stdin-go'), *test.stdin_after,
                      stop_feeding),
                daemon=True)
        try:
            proc = _spawn([firmware, test.name], cwd=HERE, env=env, stdin=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except BaseException:
            if feeder is not None:
                os.close(write_end)
                feeder = None
            raise
        finally:
            if test.stdin_after is not None:
                os.close(stdin)  # the read end: the script has its own copy
        if feeder is not None:
            feeder.start()
        timed_out = False
        try:
            out, err = proc.communicate(timeout=test.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc, signal.SIGKILL)
            out, err = proc.communicate()
        finally:
            _reap(proc)
        out_text, err_text = _decode(out), _decode(err)

        problems = []
        if timed_out:
            problems.append(f'timeout after {test.timeout:g} s')
        elif proc.returncode != 0:
            if proc.returncode < 0:
                problems.append(f'killed by signal {-proc.returncode}')
            else:
                problems.append(f'exit status {proc.returncode}')

        if not os.path.exists(test.exp_path):
            problems.append(f'no {os.path.basename(test.exp_path)}')
            result.details.append('--- actual stdout ---\n' + out_text)
        else:
            with open(test.exp_path, 'rb') as f:
                exp_text = _decode(f.read())
            exp_lines = _arrange(exp_text, test.any_order)
            out_lines = _arrange(out_text, test.any_order)
            if exp_lines != out_lines:
                problems.append('stdout differs from ' + os.path.basename(test.exp_path))
                diff = difflib.unified_diff(exp_lines, out_lines, 'expected', 'actual')
                result.details.append(''.join(
                    ln if ln.endswith('\n') else ln + '\n\\ No newline at end of line\n'
                    for ln in diff).rstrip('\n'))

        for text in test.stderr_contains:
            if text not in err_text:
                problems.append(f'stderr lacks {text!r}')

        for peer_args, peer, out_path in peers:
            if peer.poll() is not None and peer.returncode != 0:
                with open(out_path, 'rb') as f:
                    peer_out = _decode(f.read())
                problems.append(f'peer {" ".join(peer_args)} exited with status {peer.returncode}')
                result.details.append(f'--- peer {" ".join(peer_args)} output ---\n'
                                      + _tail(peer_out))

        if problems:
            result.reason = '; '.join(problems)
            if err_text.strip():
                result.details.append('--- stderr ---\n' + _tail(err_text))
        else:
            result.passed = True
    except TestError as error:
        result.reason = str(error)
    except Exception as error:  # a bug here must not take the other tests down
        result.reason = f'runner error: {error!r}'
    finally:
        stop_feeding.set()
        if feeder is not None:
            feeder.join()
        for _, peer, _ in peers:
            _reap(peer)
        if vlink is not None:
            _stop_vlink(vlink)
            if not result.passed and os.path.exists(vlink_log):
                with open(vlink_log, 'rb') as f:
                    log = _decode(f.read()).strip()
                if log:
                    result.details.append('--- vlink stderr ---\n' + _tail(log, 20))
        result.duration = time.monotonic() - started
    return result


def _report(result: Result) -> None:
    with _print_lock:
        if result.passed:
            print(f'pass  {result.name} ({result.duration:.1f} s)', flush=True)
        else:
            print(f'FAIL  {result.name} ({result.duration:.1f} s): {result.reason}')
            for block in result.details:
                print('    ' + block.replace('\n', '\n    '))
            sys.stdout.flush()


def discover(filters: list[str]) -> list[str]:
    names = sorted(n for n in os.listdir(HERE)
                   if n.endswith('.py') and n != 'run.py' and not n.startswith('_'))
    if not filters:
        return names
    chosen = []
    for name in names:
        stem = name[:-3]
        for pattern in filters:
            if any(c in pattern for c in '*?['):
                if fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(stem, pattern):
                    chosen.append(name)
                    break
            elif pattern in name:
                chosen.append(name)
                break
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('filters', nargs='*', metavar='FILTER', help='test name pattern or substring')
    parser.add_argument('--firmware', default=DEFAULT_FIRMWARE, help='default: %(default)s')
    parser.add_argument('-j', '--jobs', type=int, default=3, help='parallel tests (default %(default)s)')
    parser.add_argument('--timeout', type=float, default=DEFAULT_TIMEOUT_S,
                        help='per-test timeout in seconds (default %(default)s)')
    args = parser.parse_args(argv)

    firmware = os.path.abspath(args.firmware)
    if not os.access(firmware, os.X_OK):
        print(f'firmware not found or not executable: {firmware}', file=sys.stderr)
        return 2

    names = discover(args.filters)
    if not names:
        print('no tests selected', file=sys.stderr)
        return 2

    results: list[Result] = []
    setup_failures: list[Result] = []
    tests: list[Test] = []
    for name in names:
        try:
            tests.append(Test(os.path.join(HERE, name), args.timeout))
        except TestError as error:
            failure = Result(name)
            failure.reason = str(error)
            setup_failures.append(failure)

    # SIGTERM behaves like Ctrl-C so that the cleanup below runs.
    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_sigterm)
    started = time.monotonic()
    tmp_root = tempfile.mkdtemp(prefix='fwtest.')
    interrupted = False
    try:
        for result in setup_failures:
            _report(result)
            results.append(result)
        # Likely slow tests (controllers, or a device that makes active(True) time out)
        # first, to shorten the wall time.
        tests.sort(key=lambda t: (-(t.controllers + 3 * ('MICROPYBTUART' in t.env)), t.name))
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [pool.submit(run_test, test, firmware, tmp_root) for test in tests]
            try:
                for future in concurrent.futures.as_completed(futures):
                    result = future.result()
                    _report(result)
                    results.append(result)
            except KeyboardInterrupt:
                interrupted = True
                for future in futures:
                    future.cancel()
                kill_all()
                raise
    except KeyboardInterrupt:
        interrupted = True
    finally:
        kill_all()
        signal.signal(signal.SIGTERM, old_term)
        import shutil
        shutil.rmtree(tmp_root, ignore_errors=True)

    passed = sum(1 for r in results if r.passed)
    failed = len(results) - passed
    if interrupted:
        print('interrupted')
        failed += len(names) - len(results)
    print(f'{passed} passed, {failed} failed ({time.monotonic() - started:.1f} s)')
    return 0 if failed == 0 and not interrupted else 1


if __name__ == '__main__':
    sys.exit(main())
