"""Tests of the RootCanal harness (tests/harness/rootcanal_link.py), driven with raw HCI over its
bridged ptys and its TCP port (no firmware).

Run: .cache/venv/bin/python -m pytest tests/harness/test_rootcanal.py -q
"""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import rootcanal_link  # noqa: E402
from rootcanal_link import RootCanal  # noqa: E402

# Only bounds how long a broken run hangs; nothing passes or fails on time.
WAIT_S = 15.0
LE_META = 0x3E
SUBEV_ADV_REPORT = 0x02
OP_RESET = 0x0C03
OP_SET_EVENT_MASK = 0x0C01
OP_READ_BD_ADDR = 0x1009
OP_LE_READ_BUFFER_SIZE = 0x2002
OP_LE_SET_ADV_PARAMS = 0x2006
OP_LE_SET_ADV_DATA = 0x2008
OP_LE_SET_ADV_ENABLE = 0x200A
OP_LE_SET_SCAN_PARAMS = 0x200B
OP_LE_SET_SCAN_ENABLE = 0x200C


class Host:
    """A minimal blocking HCI host on a pty path or a TCP address: sends commands, and keeps
    every event the controller sends."""

    def __init__(self, where: str | tuple[str, int]) -> None:
        if isinstance(where, tuple):
            self.sock: socket.socket | None = socket.create_connection(where)
            self.fd = self.sock.fileno()
        else:
            self.sock = None
            self.fd = os.open(where, os.O_RDWR | os.O_NOCTTY)
        self.buf = bytearray()
        self.events: list[bytes] = []

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        else:
            os.close(self.fd)

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError('no answer from the controller')
        readable, _, _ = select.select([self.fd], [], [], remaining)
        if readable:
            data = os.read(self.fd, 4096)
            assert data, 'controller connection closed'
            self.buf += data

    def next_packet(self, deadline: float) -> bytes:
        """The next H4 packet, whole (type byte first)."""
        while True:
            if self.buf:
                kind = self.buf[0]
                if kind == 0x04 and len(self.buf) >= 3 and len(self.buf) >= 3 + self.buf[2]:
                    n = 3 + self.buf[2]
                elif kind == 0x02 and len(self.buf) >= 5:
                    n = 5 + struct.unpack_from('<H', self.buf, 3)[0]
                    if len(self.buf) < n:
                        n = 0
                else:
                    assert kind in (0x02, 0x04), f'not H4 from the controller: {bytes(self.buf)!r}'
                    n = 0
                if n:
                    packet = bytes(self.buf[:n])
                    del self.buf[:n]
                    return packet
            self._fill(deadline)

    def command(self, opcode: int, params: bytes = b'') -> bytes:
        """Sends a command; its Command Complete return parameters (status first)."""
        os.write(self.fd, bytes([0x01]) + struct.pack('<HB', opcode, len(params)) + params)
        deadline = time.monotonic() + WAIT_S
        while True:
            packet = self.next_packet(deadline)
            if packet[:2] == b'\x04\x0e' and struct.unpack_from('<H', packet, 4)[0] == opcode:
                return packet[6:]
            if packet[:2] == b'\x04\x0f' and struct.unpack_from('<H', packet, 5)[0] == opcode:
                return bytes([packet[3]])  # Command Status: its status
            self.events.append(packet)

    def ok(self, opcode: int, params: bytes = b'') -> bytes:
        ret = self.command(opcode, params)
        assert ret[0] == 0, f'command {opcode:#06x} failed with status {ret[0]:#04x}'
        return ret[1:]

    def advertise(self, name: bytes) -> None:
        self.ok(OP_RESET)
        params = struct.pack('<HHBBB6sBB', 0x20, 0x20, 0, 0, 0, bytes(6), 7, 0)
        self.ok(OP_LE_SET_ADV_PARAMS, params)
        data = bytes([len(name) + 1, 0x09]) + name
        self.ok(OP_LE_SET_ADV_DATA, bytes([len(data)]) + data.ljust(31, b'\0'))
        self.ok(OP_LE_SET_ADV_ENABLE, b'\x01')

    def scan(self) -> None:
        self.ok(OP_RESET)
        # LE Meta events are off in the default event mask.
        self.ok(OP_SET_EVENT_MASK, struct.pack('<Q', (1 << 61) | 0x1FFFFFFFFFFF))
        self.ok(OP_LE_SET_SCAN_PARAMS, struct.pack('<BHHBB', 0, 0x10, 0x10, 0, 0))
        self.ok(OP_LE_SET_SCAN_ENABLE, b'\x01\x00')

    def next_adv_name(self, deadline: float) -> bytes:
        """The complete local name in the next legacy advertising report."""
        while True:
            packet = self.events.pop(0) if self.events else self.next_packet(deadline)
            if packet[0] == 0x04 and packet[1] == LE_META and packet[3] == SUBEV_ADV_REPORT:
                # One report per event from RootCanal: type, address type, address, data.
                length = packet[13]
                data = packet[14:14 + length]
                i = 0
                while i + 1 < len(data):
                    n = data[i]
                    if n and data[i + 1] == 0x09:
                        return bytes(data[i + 2:i + 1 + n])
                    i += 1 + n
                return b''


def bd_addr(host: Host) -> bytes:
    return host.ok(OP_READ_BD_ADDR)


def test_starts_on_free_ports_and_stops_cleanly():
    with RootCanal() as one, RootCanal() as two:
        ports = {one.hci_port, one.test_port, one.link_port, one.link_ble_port,
                 two.hci_port, two.test_port, two.link_port, two.link_ble_port}
        assert len(ports) == 8
        for rc in (one, two):
            host = Host(('127.0.0.1', rc.hci_port))
            assert host.command(OP_RESET) == b'\x00'
            host.close()
        proc, workdir, port = one.proc, one.workdir, one.hci_port
    assert proc.poll() is not None
    assert not os.path.exists(workdir)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(('127.0.0.1', port)).close()


def test_a_taken_port_is_retried(monkeypatch):
    taken = socket.socket()
    taken.bind(('127.0.0.1', 0))
    taken.listen()
    busy = taken.getsockname()[1]
    real = rootcanal_link.free_ports
    calls = []

    def first_one_taken(n):
        calls.append(n)
        ports = real(n)
        return [busy, *ports[1:]] if len(calls) == 1 else ports

    monkeypatch.setattr(rootcanal_link, 'free_ports', first_one_taken)
    try:
        with RootCanal() as rc:
            assert len(calls) == 2
            assert rc.hci_port != busy
            host = Host(('127.0.0.1', rc.hci_port))
            assert host.command(OP_RESET) == b'\x00'
            host.close()
    finally:
        taken.close()


def test_bridged_ptys_share_one_radio_and_two_rootcanals_do_not(tmp_path):
    with RootCanal() as rc, RootCanal() as other:
        advertiser = Host(rc.bridged_pty(str(tmp_path / 'hci0')))
        scanner = Host(rc.bridged_pty(str(tmp_path / 'hci1')))
        elsewhere_adv = Host(other.bridged_pty())
        elsewhere_scan = Host(other.bridged_pty())
        try:
            # Each pty is its own controller.
            assert bd_addr(advertiser) != bd_addr(scanner)
            advertiser.advertise(b'radio-one')
            elsewhere_adv.advertise(b'radio-two')
            scanner.scan()
            elsewhere_scan.scan()
            deadline = time.monotonic() + WAIT_S
            while scanner.next_adv_name(deadline) != b'radio-one':
                pass
            # The other RootCanal's scanner hears its own advertiser, five times, and never
            # the first radio's, which advertises at the same interval.
            seen = []
            while seen.count(b'radio-two') < 5:
                seen.append(elsewhere_scan.next_adv_name(deadline))
            assert b'radio-one' not in seen, seen
        finally:
            for host in (advertiser, scanner, elsewhere_adv, elsewhere_scan):
                host.close()
        assert [b.connections for b in rc.bridges] == [1, 1]
    assert not os.path.lexists(tmp_path / 'hci0')


def test_reopening_a_bridged_pty_gives_a_new_controller(tmp_path):
    with RootCanal() as rc:
        path = rc.bridged_pty(str(tmp_path / 'hci0'))
        bridge = rc.bridges[0]
        host = Host(path)
        host.ok(OP_RESET)
        assert bridge.attached
        host.close()
        # The bridge sees the hang-up on its next poll; a reopen before that would still
        # reach the first controller.
        deadline = time.monotonic() + WAIT_S
        while bridge.attached:
            assert time.monotonic() < deadline, 'the bridge never saw the pty closed'
            time.sleep(0.01)
        host = Host(path)
        try:
            host.ok(OP_RESET)
        finally:
            host.close()
        assert bridge.connections == 2


def test_preset_configures_the_controller():
    with RootCanal() as plain, RootCanal(preset='LAIRD_BL654') as laird:
        sizes = []
        for rc in (plain, laird):
            host = Host(rc.bridged_pty())
            sizes.append(struct.unpack('<HB', host.ok(OP_LE_READ_BUFFER_SIZE)))
            host.close()
    # RootCanal's default controller: 27-byte LE ACL buffers, 20 of them; the preset differs.
    assert sizes[0] == (27, 20)
    assert sizes[1] != sizes[0]


def test_a_configuration_rootcanal_rejects_is_an_error():
    with pytest.raises(ValueError, match='no_such_quirk'):
        RootCanal(quirks=['no_such_quirk']).start()
    # A quirk it knows is taken.
    with RootCanal(quirks=['hardware_error_before_reset']) as rc:
        host = Host(rc.bridged_pty())
        host.ok(OP_RESET)
        host.close()


def test_hci_sniffer_writes_a_pcap_per_controller(tmp_path):
    with RootCanal(sniffer_dir=str(tmp_path)) as rc:
        for _ in range(2):
            host = Host(rc.bridged_pty())
            host.ok(OP_RESET)
            host.close()
    pcaps = sorted(tmp_path.glob('*.pcap'))
    assert len(pcaps) == 2, pcaps
    for pcap in pcaps:
        data = pcap.read_bytes()
        assert data[:4] in (b'\xd4\xc3\xb2\xa1', b'\xa1\xb2\xc3\xd4')  # pcap magic
        assert b'\x03\x0c\x00' in data  # the HCI Reset command
