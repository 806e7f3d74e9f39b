#!/usr/bin/env python3
"""N virtual BLE controllers on one shared link, each behind its own pty or TCP port (HCI over H4).

    python tests/harness/vlink.py --count 2 --dir /tmp/bt [--delay-ms 5] [--profile NAME] [-v]
    python tests/harness/vlink.py --count 2 --tcp [--tcp-port 6402] [--profile NAME] [-v]

The first creates DIR/hci0 .. DIR/hci{N-1} (symlinks to the pty slaves); point a firmware
instance at one with MICROPYBTUART=DIR/hciK. With --tcp, controller K listens on 127.0.0.1
instead (port BASE+K, or free ports when no --tcp-port is given) and a line `hciK
tcp:127.0.0.1:PORT` names each one: MICROPYBTUART=tcp:127.0.0.1:PORT. Either way it prints
`ready` once all are listening, and runs until SIGTERM/SIGINT or EOF on stdin (stdin is only
watched when it is a pipe, socket or terminal, so `... </dev/null &` keeps running). The
symlinks are removed on exit. `--profile NAME` makes every controller behave as that kind of
part (vcontroller.PROFILES, e.g. acl27x3; `--list-profiles` prints them); a host error it
detects is logged as `HOST BUG ...`.

A host may open, close and reopen its pty (or connect, disconnect and reconnect) any number
of times. While it has none, the controller behaves as if it had been reset (no advertising,
scanning or links) and nothing it would send is kept for the next host. A TCP port serves one
host at a time and closes any other connection at once.

In-process use (e.g. from pytest):

    async with VLink(count=2) as vlink:
        vlink.paths        # pty paths (symlinks when a directory was given), or
                           # tcp:127.0.0.1:PORT with VLink(..., tcp=True)
        vlink.controllers  # the VController instances
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import stat
import sys
import termios
import tty

from bumble.transport.common import PacketParser

try:
    from .vcontroller import DEFAULT_ACL_DELAY_S, PROFILES, VController, VLocalLink
except ImportError:  # run as a script, or imported with this directory on sys.path
    from vcontroller import DEFAULT_ACL_DELAY_S, PROFILES, VController, VLocalLink

logger = logging.getLogger('vlink')

# How often a pty nobody has open is checked for a new opener.
IDLE_POLL_S = 0.005
# Output kept for a host that is not reading; beyond it packets are dropped.
MAX_PENDING_OUTPUT = 4 * 1024 * 1024


class PtyHciPort:
    """The H4 side of one controller: a pty master that outlives its hosts.

    Linux reports a pty whose slave side nobody has open as EIO on master reads (and as
    a permanent hang-up to poll), so the port watches the master with add_reader while a
    host is attached and falls back to a short timer while none is.
    """

    def __init__(self, controller: VController, link_path: str | None = None) -> None:
        self.controller = controller
        self.master, slave = os.openpty()
        self.slave_path = os.ttyname(slave)
        # Raw until a host configures it; termios survives the host closing its end.
        tty.setraw(slave)
        os.close(slave)
        os.set_blocking(self.master, False)
        self.link_path = link_path
        self.parser = PacketParser(controller)
        self.attached = False
        self.attach_count = 0
        self._out = bytearray()
        self._writer_active = False
        self._poll_handle: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop = asyncio.get_running_loop()
        controller.host = self
        if link_path:
            if os.path.islink(link_path) or os.path.exists(link_path):
                os.unlink(link_path)
            os.symlink(self.slave_path, link_path)
        self._poll()

    @property
    def path(self) -> str:
        return self.link_path or self.slave_path

    # ---------------------------------------------------------------- host -> controller
    def _read_some(self) -> bytes | None:
        """Bytes from the host; b'' if none waiting; None if no host has the pty open."""
        try:
            return os.read(self.master, 65536)
        except BlockingIOError:
            return b''
        except OSError as error:
            if error.errno == errno.EIO:
                return None
            raise

    def _poll(self) -> None:
        self._poll_handle = None
        if self._closed:
            return
        data = self._read_some()
        if data is None:
            self._poll_handle = self._loop.call_later(IDLE_POLL_S, self._poll)
            return
        self._attach()
        if data:
            self._feed(data)
            self._on_readable()

    def _attach(self) -> None:
        self.attached = True
        self.attach_count += 1
        logger.info('[%s] host attached (%s)', self.controller.name, self.path)
        self._loop.add_reader(self.master, self._on_readable)

    def _on_readable(self) -> None:
        while self.attached:
            data = self._read_some()
            if data is None:
                self._detach()
                return
            if not data:
                return
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception as error:  # not H4: resynchronise on the next read
            logger.warning('[%s] bad H4 stream (%s), resetting parser', self.controller.name, error)
            self.parser.reset()

    def _detach(self) -> None:
        if not self.attached:
            return
        self.attached = False
        logger.info('[%s] host detached (%s)', self.controller.name, self.path)
        self._loop.remove_reader(self.master)
        self._stop_writer()
        self._out.clear()
        self.parser.reset()
        self._discard_unread_output()
        self.controller.on_host_detached()
        if not self._closed:
            self._poll_handle = self._loop.call_later(IDLE_POLL_S, self._poll)

    def _discard_unread_output(self) -> None:
        # What the old host left unread would otherwise greet the next one.
        try:
            fd = os.open(self.slave_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as error:
            logger.warning('cannot open %s to flush it: %s', self.slave_path, error)
            return
        try:
            termios.tcflush(fd, termios.TCIFLUSH)
        finally:
            os.close(fd)

    # ---------------------------------------------------------------- controller -> host
    def on_packet(self, packet: bytes) -> None:
        if not self.attached:
            return
        if self._out:
            if len(self._out) + len(packet) > MAX_PENDING_OUTPUT:
                logger.warning('[%s] host not reading: packet dropped', self.controller.name)
                return
            self._out += packet
            return
        try:
            written = os.write(self.master, packet)
        except BlockingIOError:
            written = 0
        except OSError as error:
            if error.errno == errno.EIO:
                self._detach()
                return
            raise
        if written < len(packet):
            self._out += packet[written:]
            self._start_writer()

    def _start_writer(self) -> None:
        if not self._writer_active:
            self._writer_active = True
            self._loop.add_writer(self.master, self._on_writable)

    def _stop_writer(self) -> None:
        if self._writer_active:
            self._writer_active = False
            self._loop.remove_writer(self.master)

    def _on_writable(self) -> None:
        try:
            written = os.write(self.master, self._out)
        except BlockingIOError:
            return
        except OSError as error:
            if error.errno == errno.EIO:
                self._detach()
                return
            raise
        del self._out[:written]
        if not self._out:
            self._stop_writer()

    # ---------------------------------------------------------------- lifetime
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._poll_handle is not None:
            self._poll_handle.cancel()
        if self.attached:
            self._loop.remove_reader(self.master)
            self.attached = False
        self._stop_writer()
        self.controller.host = None
        os.close(self.master)
        if self.link_path:
            try:
                if os.readlink(self.link_path) == self.slave_path:
                    os.unlink(self.link_path)
            except OSError:
                pass


class TcpHciPort:
    """The H4 side of one controller as a TCP server on 127.0.0.1, one host at a time.

    A host closing its connection detaches it, as closing a pty does; `drop_host()` closes
    the connection from this side (the controller going away under the host) while the
    port keeps listening for the next one.
    """

    def __init__(self, controller: VController) -> None:
        self.controller = controller
        self.parser = PacketParser(controller)
        self.attached = False
        self.attach_count = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._transport: asyncio.Transport | None = None
        controller.host = self

    async def start(self, port: int = 0) -> TcpHciPort:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _TcpHostProtocol(self), '127.0.0.1', port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def path(self) -> str:
        return f'tcp:127.0.0.1:{self.port}'

    def _attach(self, transport: asyncio.Transport) -> bool:
        if self._transport is not None:
            return False
        self._transport = transport
        self.attached = True
        self.attach_count += 1
        logger.info('[%s] host attached (%s)', self.controller.name, self.path)
        return True

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception as error:  # not H4: resynchronise on the next read
            logger.warning('[%s] bad H4 stream (%s), resetting parser', self.controller.name, error)
            self.parser.reset()

    def _detach(self, transport: asyncio.Transport) -> None:
        if transport is not self._transport:
            return
        self._transport = None
        self.attached = False
        logger.info('[%s] host detached (%s)', self.controller.name, self.path)
        self.parser.reset()
        self.controller.on_host_detached()

    def on_packet(self, packet: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        if transport.get_write_buffer_size() + len(packet) > MAX_PENDING_OUTPUT:
            logger.warning('[%s] host not reading: packet dropped', self.controller.name)
            return
        transport.write(packet)

    def drop_host(self) -> None:
        """Closes the current host's connection (after sending what is queued)."""
        transport = self._transport
        if transport is not None:
            transport.close()
            self._detach(transport)

    def close(self) -> None:
        self.drop_host()
        if self._server is not None:
            self._server.close()
            self._server = None
        self.controller.host = None


class _TcpHostProtocol(asyncio.Protocol):
    def __init__(self, port: TcpHciPort) -> None:
        self.port = port
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        if self.port._attach(transport):
            self.transport = transport
        else:
            logger.warning('[%s] second host refused', self.port.controller.name)
            transport.close()

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            self.port._feed(data)

    def connection_lost(self, exc) -> None:
        if self.transport is not None:
            self.port._detach(self.transport)


class VLink:
    """`count` VControllers on one VLocalLink, each on its own pty, or with `tcp` on its own
    TCP port (`tcp_port + index`, or free ports when `tcp_port` is 0)."""

    def __init__(
        self,
        count: int = 2,
        directory: str | None = None,
        delay_ms: float = DEFAULT_ACL_DELAY_S * 1000,
        tcp: bool = False,
        tcp_port: int = 0,
        profile: str | None = None,
    ) -> None:
        self.count = count
        self.directory = directory
        self.delay_ms = delay_ms
        self.tcp = tcp
        self.tcp_port = tcp_port
        self.profile = profile
        self.link: VLocalLink | None = None
        self.controllers: list[VController] = []
        self.ports: list[PtyHciPort | TcpHciPort] = []

    @property
    def paths(self) -> list[str]:
        return [port.path for port in self.ports]

    async def start(self) -> VLink:
        self.link = VLocalLink(acl_delay=self.delay_ms / 1000.0)
        if self.directory and not self.tcp:
            os.makedirs(self.directory, exist_ok=True)
        try:
            for index in range(self.count):
                controller = VController(
                    f'hci{index}', link=self.link, index=index, profile=self.profile
                )
                self.controllers.append(controller)
                if self.tcp:
                    port = TcpHciPort(controller)
                    self.ports.append(port)
                    await port.start(self.tcp_port + index if self.tcp_port else 0)
                    continue
                link_path = os.path.join(self.directory, f'hci{index}') if self.directory else None
                self.ports.append(PtyHciPort(controller, link_path))
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        for port in self.ports:
            port.close()
        for controller in self.controllers:
            controller.reset_state()
            if self.link is not None and controller in self.link.controllers:
                self.link.remove_controller(controller)
        if self.link is not None:
            self.link.close()
        self.ports.clear()
        self.controllers.clear()

    async def __aenter__(self) -> VLink:
        return await self.start()

    async def __aexit__(self, *exc_info) -> None:
        await self.close()


def _stdin_is_watchable() -> bool:
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(sys.stdin.fileno())


async def _run(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    vlink = VLink(count=args.count, directory=args.dir, delay_ms=args.delay_ms,
                  tcp=args.tcp, tcp_port=args.tcp_port, profile=args.profile)
    await vlink.start()
    try:
        for port, controller in zip(vlink.ports, vlink.controllers):
            if isinstance(port, TcpHciPort):
                print(controller.name, port.path, flush=True)
            else:
                logger.info('%s -> %s  public address %s', port.path, port.slave_path,
                            controller.public_address.to_string(False))
        if _stdin_is_watchable():
            stdin_fd = sys.stdin.fileno()

            def on_stdin() -> None:
                try:
                    data = os.read(stdin_fd, 4096)
                except BlockingIOError:
                    return
                except OSError:
                    data = b''
                if not data:
                    loop.remove_reader(stdin_fd)
                    stop.set()

            loop.add_reader(stdin_fd, on_stdin)
        print('ready', flush=True)
        await stop.wait()
    finally:
        await vlink.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--count', type=int, default=2, help='number of controllers (1..256)')
    parser.add_argument('--dir', help='directory for the hciN symlinks (needed without --tcp)')
    parser.add_argument('--tcp', action='store_true',
                        help='serve each controller on a TCP port on 127.0.0.1 instead of a pty')
    parser.add_argument('--tcp-port', type=int, default=0,
                        help='with --tcp: hciK listens on this port + K (default: free ports)')
    parser.add_argument('--delay-ms', type=float, default=DEFAULT_ACL_DELAY_S * 1000,
                        help='link-layer latency for ACL data and LL control PDUs (default %(default)s)')
    parser.add_argument('--profile', choices=sorted(PROFILES), default='default',
                        help='the kind of controller every instance models (default %(default)s)')
    parser.add_argument('--list-profiles', action='store_true',
                        help='print the controller profiles and exit')
    parser.add_argument('-v', '--verbose', action='count', default=0,
                        help='log to stderr (-v: attach/detach, -vv: every HCI packet)')
    args = parser.parse_args(argv)
    if args.list_profiles:
        for profile in PROFILES.values():
            print(f'{profile.name:26} {profile.description}')
        return 0
    if not 1 <= args.count <= 256:
        parser.error('--count must be 1..256')
    if not args.tcp and not args.dir:
        parser.error('--dir is needed without --tcp')
    if args.tcp_port and not 1 <= args.tcp_port <= 65536 - args.count:
        parser.error('--tcp-port must leave room for --count ports below 65536')
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr,
                        format='%(asctime)s %(name)s %(levelname)s %(message)s')
    if args.verbose < 2:
        # Bumble warns about things a host legitimately does (e.g. data racing a
        # disconnection); keep stderr quiet so a caller that never reads it cannot stall us.
        logging.getLogger('bumble').setLevel(logging.ERROR if args.verbose == 0 else logging.WARNING)
    asyncio.run(_run(args))
    return 0


if __name__ == '__main__':
    sys.exit(main())
