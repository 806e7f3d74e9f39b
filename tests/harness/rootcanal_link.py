#!/usr/bin/env python3
"""RootCanal, Android's virtual Bluetooth controller (PyPI `rootcanal`), as a shared radio.

    python tests/harness/rootcanal_link.py --count 2 --dir /tmp/bt [--preset LAIRD_BL654]
                                      [--quirk hardware_error_before_reset] [--sniffer-dir D]

starts one RootCanal process on free local ports and N pty bridges at DIR/hci0 .. DIR/hci{N-1},
prints `ready` and the HCI port, and runs until SIGTERM/SIGINT or EOF on stdin. Point a Unix
firmware instance at DIR/hciK with MICROPYBTUART, or a qemu instance's second serial at
`tcp:127.0.0.1:PORT`.

RootCanal serves H4 over TCP on its HCI port; every TCP connection there is a new controller on
the one radio it simulates. Every RootCanal gets its own four ports (HCI, test channel, link,
LE link), chosen free, so runs in parallel never share a radio.

In-process use:

    with RootCanal(preset='LAIRD_BL654', sniffer_dir=d) as rc:
        rc.tcp_address     # 'tcp:127.0.0.1:PORT', for qemu's -serial and the Unix firmware
        rc.unix_uart()     # a MICROPYBTUART value: a new controller for one Unix instance

The Unix firmware connects to the HCI port itself (`MICROPYBTUART=tcp:HOST:PORT`, one new
controller per connection). A PtyBridge (a pty whose bytes are relayed to a new TCP connection
to the HCI port) serves what can only open a tty; the constant UNIX_UART_OVER_TCP switches
Unix instances back to bridges.
"""

from __future__ import annotations

import argparse
import errno
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import tty

# Unix instances connect with MICROPYBTUART=tcp:HOST:PORT; False gives them bridged ptys.
UNIX_UART_OVER_TCP = True

HOST = '127.0.0.1'
START_TIMEOUT_S = 20.0
# Port choices race with other processes picking ports; a lost race is retried this often.
START_ATTEMPTS = 5
# How often a pty nobody has open is checked for a new opener.
IDLE_POLL_S = 0.005
# Output kept for a host that is not reading; beyond it the bridge drops bytes (and says so).
MAX_PENDING_OUTPUT = 4 * 1024 * 1024
READY_LINE = 'initialize: Finished'
TRACE_DIR = os.environ.get('UBT_BRIDGE_TRACE')


def binary() -> str:
    """The rootcanal executable the PyPI package ships (tools/deps.sh installs 1.10.0)."""
    from rootcanal.binaries import get_package_binary_resource_path

    return str(get_package_binary_resource_path('rootcanal'))


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports nobody listens on right now (held open together so the
    kernel cannot hand out one twice)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def configuration_text(hci_port: int, preset: str | None, quirks: tuple[str, ...]) -> str:
    """RootCanal's configuration (its config.proto, text form) for controllers on `hci_port`."""
    inner = []
    if preset:
        inner.append(f'preset: {preset}')
    if quirks:
        inner.append('quirks { ' + ' '.join(f'{q}: true' for q in quirks) + ' }')
    return f'tcp_server {{ tcp_port: {hci_port} configuration {{ {" ".join(inner)} }} }}'


class PtyBridge:
    """A pty for one host, relayed to a TCP connection to RootCanal's HCI port.

    The connection (and so the controller) is made when a host opens the pty and dropped when
    it closes it: a host that reopens gets a new controller, as with a new TCP connection. Linux
    reports a pty whose slave side nobody has open as EIO on master reads, hence the polling
    while detached.
    """

    def __init__(self, address: tuple[str, int], link_path: str | None = None) -> None:
        self.address = address
        self.master, slave = os.openpty()
        self.slave_path = os.ttyname(slave)
        # Raw until the host configures it; termios survives the host closing its end.
        tty.setraw(slave)
        os.close(slave)
        os.set_blocking(self.master, False)
        self.link_path = link_path
        if link_path:
            if os.path.islink(link_path) or os.path.exists(link_path):
                os.unlink(link_path)
            os.symlink(self.slave_path, link_path)
        self.sock: socket.socket | None = None
        self.connections = 0  # controllers this bridge has made, for tests
        self.dropped = 0  # bytes for the host dropped because it did not read
        self._to_host = bytearray()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f'pty-bridge {self.path}',
                                        daemon=True)
        self._thread.start()

    @property
    def path(self) -> str:
        return self.link_path or self.slave_path

    @property
    def attached(self) -> bool:
        """A host has the pty open and its controller is connected."""
        return self.sock is not None

    def _read_host(self) -> bytes | None:
        """Bytes from the host; b'' if none waiting; None if nobody has the pty open."""
        try:
            return os.read(self.master, 65536)
        except BlockingIOError:
            return b''
        except OSError as error:
            if error.errno == errno.EIO:
                return None
            raise

    def _run(self) -> None:
        while not self._closing:
            data = self._read_host()
            if data is None:
                time.sleep(IDLE_POLL_S)
                continue
            try:
                self.sock = socket.create_connection(self.address)
            except OSError:
                # RootCanal is gone: nothing to relay to.
                return
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections += 1
            try:
                if data:
                    self._trace('H>C', data)
                    self.sock.sendall(data)
                self._relay()
            except OSError:
                pass
            finally:
                self.sock.close()
                self.sock = None
                self._to_host.clear()

    def _relay(self) -> None:
        """Moves bytes both ways until the host closes the pty or RootCanal the connection."""
        assert self.sock is not None
        while not self._closing:
            writers = [self.master] if self._to_host else []
            readable, writable, _ = select.select([self.master, self.sock], writers, [], 0.1)
            if self.master in readable:
                data = self._read_host()
                if data is None:
                    return
                if data:
                    self._trace('H>C', data)
                    self.sock.sendall(data)
            if self.sock in readable:
                data = self.sock.recv(65536)
                if not data:
                    return
                self._trace('C>H read', data)
                # RootCanal writes a packet in pieces without TCP_NODELAY, so Nagle holds each
                # later piece until the earlier one is acknowledged; a delayed ACK (40 ms) per
                # packet would follow. Linux clears QUICKACK by itself, so it is set each time.
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                if len(self._to_host) + len(data) > MAX_PENDING_OUTPUT:
                    self.dropped += len(data)
                    print(f'pty bridge {self.path}: host not reading, {len(data)} bytes dropped',
                          file=sys.stderr)
                else:
                    self._to_host += data
                    writable = [self.master]
            if self.master in writable and self._to_host:
                try:
                    written = os.write(self.master, self._to_host)
                except BlockingIOError:
                    written = 0
                except OSError as error:
                    if error.errno == errno.EIO:
                        return
                    raise
                self._trace('C>H wrote', self._to_host[:written])
                del self._to_host[:written]

    def _trace(self, what: str, data: bytes | bytearray) -> None:
        """With UBT_BRIDGE_TRACE=DIR, logs every chunk with a monotonic timestamp: beside
        RootCanal's pcap it shows when bytes entered and left the pty, so a stall can be put on
        the firmware's side of the bridge or on RootCanal's."""
        if not TRACE_DIR:
            return
        name = f'bridge-{os.getpid()}-{os.path.basename(self.slave_path)}-{self.connections}.log'
        with open(os.path.join(TRACE_DIR, name), 'a') as f:
            f.write(f'{time.monotonic():.6f} {what} {bytes(data).hex()}\n')

    def close(self) -> None:
        self._closing = True
        self._thread.join(5)
        os.close(self.master)
        if self.link_path:
            try:
                if os.readlink(self.link_path) == self.slave_path:
                    os.unlink(self.link_path)
            except OSError:
                pass


class RootCanal:
    """One RootCanal process on four free local ports, optionally configured with a preset
    and quirks (config.proto names, e.g. LAIRD_BL654, hardware_error_before_reset), optionally
    writing an HCI pcap per controller (`-enable_hci_sniffer`) into `sniffer_dir`."""

    def __init__(
        self,
        preset: str | None = None,
        quirks: tuple[str, ...] | list[str] = (),
        sniffer_dir: str | None = None,
    ) -> None:
        self.preset = preset
        self.quirks = tuple(quirks)
        self.sniffer_dir = sniffer_dir
        self.workdir = tempfile.mkdtemp(prefix='ubt-rootcanal-')
        self.log_path = os.path.join(self.workdir, 'rootcanal.log')
        self.proc: subprocess.Popen | None = None
        self.hci_port = self.test_port = self.link_port = self.link_ble_port = 0
        self.bridges: list[PtyBridge] = []

    @property
    def tcp_address(self) -> str:
        """The HCI port as a `tcp:HOST:PORT` serial spec (QEMU's -serial takes it as is)."""
        return f'tcp:{HOST}:{self.hci_port}'

    def start(self) -> RootCanal:
        if self.sniffer_dir:
            os.makedirs(self.sniffer_dir, exist_ok=True)
        failure = ''
        for _ in range(START_ATTEMPTS):
            ports = free_ports(4)
            self.hci_port, self.test_port, self.link_port, self.link_ble_port = ports
            failure = self._try_start()
            if not failure:
                return self
            self._stop_process()
        raise RuntimeError(f'RootCanal did not start: {failure}\n{self.log()}')

    def _try_start(self) -> str:
        """Starts the process; '' once it serves all four ports, else why not."""
        cmd = [
            binary(),
            f'-hci_port={self.hci_port}',
            f'-test_port={self.test_port}',
            f'-link_port={self.link_port}',
            f'-link_ble_port={self.link_ble_port}',
        ]
        if self.preset or self.quirks:
            config = configuration_text(self.hci_port, self.preset, self.quirks)
            cmd.append('-configuration=' + config)
        if self.sniffer_dir:
            cmd.append('-enable_hci_sniffer')
        # Its log goes to a file: an unread pipe would stall it. The sniffer writes its pcaps
        # into the working directory.
        with open(self.log_path, 'w') as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.sniffer_dir or self.workdir, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self.log()
            if 'Error parsing text-format' in text:
                # RootCanal carries on with its defaults; a test asking for a preset must not.
                self._stop_process()
                errors = [line for line in text.splitlines() if 'Error parsing' in line]
                raise ValueError('RootCanal rejected the configuration: ' + '; '.join(errors))
            if 'Error binding' in text:
                return 'a port was taken'
            if READY_LINE in text:
                listening = {f'Listening on: {p} ' for p in
                             (self.hci_port, self.test_port, self.link_port, self.link_ble_port)}
                if all(s in text for s in listening):
                    return ''
                return 'not every port is served'
            if self.proc.poll() is not None:
                return f'exited with status {self.proc.returncode}'
            time.sleep(0.02)
        return f'not ready within {START_TIMEOUT_S} s'

    def log(self) -> str:
        try:
            with open(self.log_path, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def unix_uart(self, link_path: str | None = None) -> str:
        """A MICROPYBTUART value that gives one Unix firmware instance a new controller on
        this radio: the HCI port itself, or with UNIX_UART_OVER_TCP off a bridged pty (at
        `link_path` if given)."""
        if UNIX_UART_OVER_TCP:
            return self.tcp_address
        return self.bridged_pty(link_path)

    def bridged_pty(self, link_path: str | None = None) -> str:
        """A pty (at `link_path` if given) relayed to a new TCP connection, and so a new
        controller, each time it is opened: for what can only open a tty."""
        bridge = PtyBridge((HOST, self.hci_port), link_path)
        self.bridges.append(bridge)
        return bridge.path

    def _stop_process(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        for bridge in self.bridges:
            bridge.close()
        self.bridges.clear()
        self._stop_process()

    def close(self) -> None:
        """Stops everything and removes the working directory (not the sniffer's)."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RootCanal:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()


def _stdin_is_watchable() -> bool:
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(sys.stdin.fileno())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--count', type=int, default=2, help='number of bridged ptys')
    parser.add_argument('--dir', required=True, help='directory for the hciN symlinks')
    parser.add_argument('--preset', help='controller preset (config.proto), e.g. LAIRD_BL654')
    parser.add_argument('--quirk', action='append', default=[],
                        help='controller quirk set true (config.proto), repeatable')
    parser.add_argument('--sniffer-dir', help='write an HCI pcap per controller here')
    args = parser.parse_args(argv)
    os.makedirs(args.dir, exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    rc = RootCanal(preset=args.preset, quirks=args.quirk, sniffer_dir=args.sniffer_dir)
    rc.start()
    try:
        for i in range(args.count):
            rc.unix_uart(os.path.join(args.dir, f'hci{i}'))
        print('ready', flush=True)
        print(f'hci_port {rc.hci_port}', flush=True)
        if _stdin_is_watchable():
            threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        while not stop.wait(0.5):
            if rc.proc is not None and rc.proc.poll() is not None:
                print(f'rootcanal exited: {rc.log()[-2000:]}', file=sys.stderr)
                return 1
    finally:
        rc.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
