"""A firmware process for the peer tests: started on a virtual controller's pty, its stdout
read line by line as it arrives."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIRMWARE = os.environ.get('UBT_FIRMWARE', os.path.join(ROOT, 'build', 'unix', 'micropython'))
STEP_TIMEOUT_S = 10.0


def run_async(timeout):
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            asyncio.run(asyncio.wait_for(fn(*args, **kwargs), timeout))
        return wrapper
    return decorate


class Firmware:
    """One firmware process; its stdout lines as they arrive."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._consumed: set[int] = set()  # indices of lines expect() returned
        self._changed = asyncio.Event()
        self._reader: asyncio.Task | None = None

    async def start(self, script: str, uart: str, *args: str, stdin=None) -> None:
        """Runs `FIRMWARE script *args`; stdin is /dev/null unless a descriptor is given."""
        env = dict(os.environ, MICROPYBTUART=uart)
        self.proc = await asyncio.create_subprocess_exec(
            FIRMWARE, script, *args,
            stdin=asyncio.subprocess.DEVNULL if stdin is None else stdin,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode(errors='replace').rstrip('\n'))
            self._changed.set()
        self._changed.set()

    async def expect(self, prefix: str, timeout: float = STEP_TIMEOUT_S) -> str:
        """The earliest line starting with `prefix` that no earlier expect() returned,
        waiting for it if needed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i, line in enumerate(self.lines):
                if i not in self._consumed and line.startswith(prefix):
                    self._consumed.add(i)
                    return line
            if self._reader is not None and self._reader.done():
                raise AssertionError(f'firmware ended before {prefix!r}: {await self.stderr()}'
                                     f'\n--- stdout:\n' + '\n'.join(self.lines))
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f'no {prefix!r} from the firmware; got:\n'
                                     + '\n'.join(self.lines))
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    def since(self, mark: int) -> list[str]:
        return self.lines[mark:]

    async def stderr(self) -> str:
        if self.proc is None or self.proc.stderr is None:
            return ''
        try:
            data = await asyncio.wait_for(self.proc.stderr.read(), 2)
        except asyncio.TimeoutError:
            return ''
        return data.decode(errors='replace')

    async def stop(self) -> int | None:
        if self.proc is None:
            return None
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader
        return self.proc.returncode


async def run_firmware(uart: str, script: str, path, timeout: float) -> str:
    """Runs `script` (written to `path`) to completion on the firmware; its whole output, which
    must end well (exit 0) and contain an `END` line."""
    path.write_text(script)
    env = dict(os.environ, MICROPYBTUART=uart)
    proc = await asyncio.create_subprocess_exec(
        FIRMWARE, str(path), env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        raise AssertionError('firmware timed out:\n' + out.decode(errors='replace'))
    text = out.decode(errors='replace')
    assert proc.returncode == 0, text
    assert 'END' in text.splitlines(), text
    return text


class Radio:
    """`count` controllers on one radio for a peer test: `vlink` (Bumble VController on an
    in-process VLink) or `rootcanal` (its own RootCanal process, every controller behind a
    bridged pty, tests/harness/rootcanal_link.py). `paths[i]` is a tty for the firmware
    (MICROPYBTUART) or for a Bumble host (`serial:PATH`).

    The Bumble host goes through the pty bridge rather than Bumble's own `tcp-client:`
    transport: RootCanal sends without TCP_NODELAY, and only the bridge acknowledges at once,
    so a plain socket would wait for a delayed ACK (40 ms) on every packet."""

    def __init__(self, kind: str, count: int = 2) -> None:
        assert kind in ('vlink', 'rootcanal'), kind
        self.kind = kind
        self.count = count
        self.link = None
        self.rc = None
        self.paths: list[str] = []

    async def __aenter__(self) -> 'Radio':
        import sys
        sys.path.insert(0, os.path.join(ROOT, 'tests', 'harness'))
        if self.kind == 'vlink':
            from vlink import VLink
            self.link = await VLink(count=self.count).start()
            self.paths = self.link.paths
        else:
            from rootcanal_link import RootCanal
            self.rc = RootCanal()
            await asyncio.to_thread(self.rc.start)
            self.paths = [self.rc.unix_uart() for _ in range(self.count)]
        return self

    def public_address(self, index: int):
        """Controller `index`'s public address where the radio knows it (vlink), else None:
        RootCanal hands out addresses as hosts connect, so ask the host on that controller."""
        return self.link.controllers[index].public_address if self.link is not None else None

    async def __aexit__(self, *exc_info) -> None:
        if self.link is not None:
            await self.link.close()
        if self.rc is not None:
            await asyncio.to_thread(self.rc.close)


def bumble_transport(path: str) -> str:
    """Bumble's transport spec for a controller named by a MICROPYBTUART value: a tty path or
    `tcp:HOST:PORT` (RootCanal, `VLink(tcp=True)`)."""
    if path.startswith('tcp:'):
        return 'tcp-client:' + path[len('tcp:'):]
    return f'serial:{path},1000000'


@contextlib.asynccontextmanager
async def bumble_device(link, index: int = 1, name: str = 'peer'):
    """A powered-on Bumble host `Device` on controller `index` of a VLink; its transport is
    closed on exit."""
    from bumble.device import Device
    from bumble.transport import open_transport

    transport = await open_transport(bumble_transport(link.paths[index]))
    try:
        dev = Device.with_hci(name, link.controllers[index].public_address,
                              transport.source, transport.sink)
        await dev.power_on()
        yield dev
    finally:
        await transport.close()
