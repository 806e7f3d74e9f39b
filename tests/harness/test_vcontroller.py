"""Tests of the virtual controllers, driven with raw HCI over their ptys (no firmware).

Run: .cache/venv/bin/python -m pytest tests/harness -q
"""

from __future__ import annotations

import asyncio
import functools
import os
import struct
import sys
import termios

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bumble import hci  # noqa: E402
from bumble.transport.common import PacketParser  # noqa: E402

import vcontroller  # noqa: E402
from vlink import VLink  # noqa: E402

AdvType = hci.HCI_LE_Set_Advertising_Parameters_Command.AdvertisingType
LE_META = 0x3E
SUBEV_ADV_REPORT = 0x02
SUBEV_EXT_ADV_REPORT = 0x0D
PUBLIC = hci.Address.PUBLIC_DEVICE_ADDRESS


def run_async(fn):
    """Run an async test in a fresh event loop, with an overall time limit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 15))

    return wrapper


class HciHost:
    """A minimal HCI host on a pty: configures it like the firmware does, sends commands,
    and collects every packet the controller sends."""

    def __init__(self, path: str, flush: bool = True) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        attrs = termios.tcgetattr(self.fd)
        # cfmakeraw()
        attrs[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                      | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
        attrs[1] &= ~termios.OPOST
        attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
        attrs[2] &= ~(termios.CSIZE | termios.PARENB)
        attrs[2] |= termios.CS8
        attrs[2] |= termios.CLOCAL | termios.CREAD | termios.CRTSCTS
        attrs[4] = attrs[5] = termios.B1000000
        attrs[6][termios.VMIN] = 1
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        if flush:
            termios.tcflush(self.fd, termios.TCIOFLUSH)
        self.raw: list[bytes] = []  # every packet, in arrival order, as bytes
        self.pending: list[bytes] = []  # packets not yet claimed by wait_for
        self._arrived = asyncio.Event()
        self._parser = PacketParser(self)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        self._parser.feed_data(data)

    def on_packet(self, packet: bytes) -> None:
        self.raw.append(packet)
        self.pending.append(packet)
        self._arrived.set()

    def send(self, packet: bytes | hci.HCI_Packet) -> None:
        data = bytes(packet)
        while data:
            try:
                data = data[os.write(self.fd, data):]
            except BlockingIOError:
                pass

    async def wait_for(self, predicate, timeout: float = 2.0) -> bytes:
        deadline = self._loop.time() + timeout
        while True:
            for i, packet in enumerate(self.pending):
                if predicate(packet):
                    del self.pending[i]
                    return packet
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                raise TimeoutError(f'no matching packet from {self.path}')
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass

    async def command(self, command: hci.HCI_Command, expect_status: int | None = 0) -> bytes:
        """Send a command; return its Command Complete/Status event (raw bytes)."""
        self.send(command)
        op = struct.pack('<H', command.op_code)

        def is_response(p: bytes) -> bool:
            return (p[:2] == b'\x04\x0e' and p[4:6] == op) or (p[:2] == b'\x04\x0f' and p[5:7] == op)

        event = await self.wait_for(is_response)
        status = event[6] if event[1] == 0x0E else event[3]
        if expect_status is not None:
            assert status == expect_status, f'{command.name}: status 0x{status:02x}'
        return event

    def events(self, predicate) -> list[bytes]:
        return [p for p in self.pending if predicate(p)]

    def close(self) -> None:
        self._loop.remove_reader(self.fd)
        os.close(self.fd)

    # ---- commands a legacy host sends
    async def reset(self) -> None:
        await self.command(hci.HCI_Reset_Command())

    async def advertise(self, adv_type: int, data: bytes, scan_rsp: bytes = b'',
                        interval: int = 0x20) -> None:
        await self.command(hci.HCI_LE_Set_Advertising_Parameters_Command(
            advertising_interval_min=interval, advertising_interval_max=interval,
            advertising_type=adv_type, own_address_type=0, peer_address_type=0,
            peer_address=hci.Address.ANY, advertising_channel_map=7,
            advertising_filter_policy=0))
        await self.command(hci.HCI_LE_Set_Advertising_Data_Command(advertising_data=data))
        await self.command(hci.HCI_LE_Set_Scan_Response_Data_Command(scan_response_data=scan_rsp))
        await self.command(hci.HCI_LE_Set_Advertising_Enable_Command(advertising_enable=1))

    async def scan(self, active: bool) -> None:
        await self.command(hci.HCI_LE_Set_Scan_Parameters_Command(
            le_scan_type=int(active), le_scan_interval=0x10, le_scan_window=0x10,
            own_address_type=0, scanning_filter_policy=0))
        await self.command(hci.HCI_LE_Set_Scan_Enable_Command(le_scan_enable=1, filter_duplicates=0))

    async def connect(self, peer: hci.Address) -> bytes:
        await self.command(hci.HCI_LE_Create_Connection_Command(
            le_scan_interval=0x10, le_scan_window=0x10, initiator_filter_policy=0,
            peer_address_type=peer.address_type, peer_address=peer, own_address_type=0,
            connection_interval_min=24, connection_interval_max=40, max_latency=0,
            supervision_timeout=200, min_ce_length=0, max_ce_length=0))
        return await self.wait_for(is_le_event(0x01))


def is_le_event(subevent: int):
    return lambda p: p[:2] == b'\x04\x3e' and p[3] == subevent


def legacy_reports(packets: list[bytes], address: hci.Address | None = None):
    """(event_type, address, data) of every legacy report, optionally from one address."""
    out = []
    for p in packets:
        if not is_le_event(SUBEV_ADV_REPORT)(p):
            continue
        event = hci.HCI_Packet.from_bytes(p)
        for r in event.reports:
            if address is None or r.address == address:
                out.append((r.event_type, r.address, bytes(r.data)))
    return out


def le_conn_complete(packet: bytes) -> tuple[int, int, int]:
    """status, handle, role of an LE Connection Complete event."""
    status, handle, role = struct.unpack_from('<BHB', packet, 4)
    return status, handle, role


# ---------------------------------------------------------------------------------------------
# (a) advertising type
@pytest.mark.parametrize('adv_type, expected', [
    (AdvType.ADV_IND, 0), (AdvType.ADV_SCAN_IND, 2), (AdvType.ADV_NONCONN_IND, 3)])
@run_async
async def test_advertising_type_is_reported(adv_type, expected):
    async with VLink(count=2) as link:
        adv, scanner = HciHost(link.paths[0]), HciHost(link.paths[1])
        await adv.reset()
        await scanner.reset()
        await adv.advertise(adv_type, b'\x02\x01\x06\x05\x09name')
        await scanner.scan(active=False)
        await scanner.wait_for(is_le_event(SUBEV_ADV_REPORT))
        await asyncio.sleep(0.1)
        reports = legacy_reports(scanner.raw, link.controllers[0].public_address)
        assert reports
        assert {r[0] for r in reports} == {expected}
        assert all(r[2] == b'\x02\x01\x06\x05\x09name' for r in reports)
        adv.close()
        scanner.close()


# (b) scan responses
@run_async
async def test_scan_response_only_to_active_scanner():
    async with VLink(count=3) as link:
        adv, active, passive = (HciHost(p) for p in link.paths)
        for h in (adv, active, passive):
            await h.reset()
        await adv.advertise(AdvType.ADV_IND, b'\x02\x01\x06', scan_rsp=b'\x05\x09resp')
        await active.scan(active=True)
        await passive.scan(active=False)
        await active.wait_for(lambda p: any(r[0] == 4 for r in legacy_reports([p])))
        await asyncio.sleep(0.15)
        a = legacy_reports(active.raw)
        p = legacy_reports(passive.raw)
        assert {r[0] for r in a} == {0, 4}
        assert all(r[2] == b'\x05\x09resp' for r in a if r[0] == 4)
        assert all(r[2] == b'\x02\x01\x06' for r in a if r[0] == 0)
        assert p and {r[0] for r in p} == {0}, 'passive scanner must not get SCAN_RSP'

        # Non-scannable advertising gets no scan response even from an active scanner.
        await adv.command(hci.HCI_LE_Set_Advertising_Enable_Command(advertising_enable=0))
        await adv.advertise(AdvType.ADV_NONCONN_IND, b'\x02\x01\x04', scan_rsp=b'\x05\x09resp')
        await asyncio.sleep(0.05)
        active.raw.clear()
        await asyncio.sleep(0.15)
        a = legacy_reports(active.raw)
        assert a and {r[0] for r in a} == {3}
        for h in (adv, active, passive):
            h.close()


@run_async
async def test_duplicate_filtering_and_directed_advertising():
    async with VLink(count=3) as link:
        adv, target, other = (HciHost(p) for p in link.paths)
        for h in (adv, target, other):
            await h.reset()
        address0 = link.controllers[0].public_address
        await adv.advertise(AdvType.ADV_SCAN_IND, b'\x02\x01\x04', scan_rsp=b'\x02\x09r')
        await target.command(hci.HCI_LE_Set_Scan_Parameters_Command(
            le_scan_type=1, le_scan_interval=0x10, le_scan_window=0x10,
            own_address_type=0, scanning_filter_policy=0))
        await target.command(hci.HCI_LE_Set_Scan_Enable_Command(le_scan_enable=1, filter_duplicates=1))
        await asyncio.sleep(0.2)  # ~10 advertising events
        assert sorted(r[0] for r in legacy_reports(target.raw, address0)) == [2, 4]
        # New advertising data is reported again.
        await adv.command(hci.HCI_LE_Set_Advertising_Data_Command(advertising_data=b'\x02\x01\x05'))
        await asyncio.sleep(0.1)
        assert sorted(r[0] for r in legacy_reports(target.raw, address0)) == [2, 2, 4]
        await target.command(hci.HCI_LE_Set_Scan_Enable_Command(le_scan_enable=0, filter_duplicates=0))

        # High duty cycle directed advertising: only the target hears it (type 1, no data),
        # and it times out with an LE Connection Complete, status 0x3C.
        target_address = link.controllers[1].public_address
        await adv.command(hci.HCI_LE_Set_Advertising_Enable_Command(advertising_enable=0))
        await target.scan(active=False)
        await other.scan(active=False)
        await adv.command(hci.HCI_LE_Set_Advertising_Parameters_Command(
            advertising_interval_min=0x20, advertising_interval_max=0x20,
            advertising_type=AdvType.ADV_DIRECT_IND, own_address_type=0, peer_address_type=0,
            peer_address=target_address, advertising_channel_map=7, advertising_filter_policy=0))
        target.raw.clear()
        await adv.command(hci.HCI_LE_Set_Advertising_Enable_Command(advertising_enable=1))
        await target.wait_for(lambda p: bool(legacy_reports([p], address0)))
        await asyncio.sleep(0.1)
        assert {(r[0], r[2]) for r in legacy_reports(target.raw, address0)} == {(1, b'')}
        assert not legacy_reports(other.raw, address0)
        status, _, _ = le_conn_complete(await adv.wait_for(is_le_event(0x01), timeout=2.5))
        assert status == 0x3C
        for h in (adv, target, other):
            h.close()


# (b2) privacy: RPAs made from the local IRK, resolved with the peer's IRK
@run_async
async def test_resolving_list_makes_and_resolves_rpas():
    irk_adv = bytes(range(16))
    async with VLink(count=3) as link:
        adv, bonded, stranger = (HciHost(p) for p in link.paths)
        for h in (adv, bonded, stranger):
            await h.reset()
        identity = link.controllers[0].public_address
        # The advertiser's own entry (all-zero peer, as NimBLE adds it) carries its local IRK;
        # the bonded scanner knows the advertiser's identity and IRK.
        await adv.command(hci.HCI_LE_Add_Device_To_Resolving_List_Command(
            peer_identity_address_type=0, peer_identity_address=hci.Address.ANY,
            peer_irk=bytes(16), local_irk=irk_adv))
        await bonded.command(hci.HCI_LE_Add_Device_To_Resolving_List_Command(
            peer_identity_address_type=0, peer_identity_address=identity,
            peer_irk=irk_adv, local_irk=bytes(16)))
        await bonded.command(hci.HCI_LE_Set_Address_Resolution_Enable_Command(
            address_resolution_enable=1))
        await adv.command(hci.HCI_LE_Set_Advertising_Parameters_Command(
            advertising_interval_min=0x20, advertising_interval_max=0x20,
            advertising_type=AdvType.ADV_IND, own_address_type=2, peer_address_type=0,
            peer_address=hci.Address.ANY, advertising_channel_map=7,
            advertising_filter_policy=0))
        await adv.command(hci.HCI_LE_Set_Advertising_Data_Command(advertising_data=b'\x02\x01\x06'))
        await adv.command(hci.HCI_LE_Set_Advertising_Enable_Command(advertising_enable=1))
        await bonded.scan(active=False)
        await stranger.scan(active=False)
        await asyncio.sleep(0.15)
        # The stranger sees a random resolvable address (top bits 01), never the identity.
        seen = {r[1] for r in legacy_reports(stranger.raw)}
        assert len(seen) == 1
        rpa = seen.pop()
        assert rpa.address_type == hci.Address.RANDOM_DEVICE_ADDRESS
        assert bytes(rpa)[5] >> 6 == 0b01 and bytes(rpa) != bytes(identity)
        # The bonded scanner resolves it to the public identity (address type 2).
        raw = [p for p in bonded.raw if is_le_event(SUBEV_ADV_REPORT)(p)]
        assert raw and all(p[6] == hci.Address.PUBLIC_IDENTITY_ADDRESS for p in raw)
        assert {bytes(r[1]) for r in legacy_reports(raw)} == {bytes(identity)}
        # It connects by identity; the host is told the identity (type 2), and data flows.
        await bonded.command(hci.HCI_LE_Set_Scan_Enable_Command(le_scan_enable=0, filter_duplicates=0))
        event = await bonded.connect(hci.Address(bytes(identity), hci.Address.PUBLIC_IDENTITY_ADDRESS))
        status, handle, role = le_conn_complete(event)
        assert status == 0 and role == 0
        assert event[8] == hci.Address.PUBLIC_IDENTITY_ADDRESS and event[9:15] == bytes(identity)
        peer_event = await adv.wait_for(is_le_event(0x01))
        peer_handle = le_conn_complete(peer_event)[1]
        ping = struct.pack('<HH', 4, 0x0040) + b'ping'
        bonded.send(struct.pack('<BHH', 2, handle, len(ping)) + ping)
        got = await adv.wait_for(lambda p: p[0] == 0x02)
        assert struct.unpack_from('<H', got, 1)[0] & 0x0FFF == peer_handle and got[5:] == ping
        pong = struct.pack('<HH', 4, 0x0040) + b'pong'
        adv.send(struct.pack('<BHH', 2, peer_handle, len(pong)) + pong)
        got = await bonded.wait_for(lambda p: p[0] == 0x02)
        assert got[5:] == pong
        # Removing the advertiser's entry (a command Bumble has no class for, so sent raw:
        # identity type, address LSB first) stops the resolution; a second removal finds
        # nothing.
        remove = bytes([0x01, 0x28, 0x20, 7, 0]) + bytes(identity)
        for status in (0x00, 0x02):
            bonded.send(remove)
            ev = await bonded.wait_for(lambda p: p[:2] == b'\x04\x0e' and p[4:6] == b'\x28\x20')
            assert ev[6] == status
        assert link.controllers[1].resolving_list == {}
        # A reset forgets the resolving list.
        await bonded.reset()
        assert link.controllers[1].resolving_list == {}
        for h in (adv, bonded, stranger):
            h.close()


# (c) legacy reports for legacy scanning; the extended-advertising feature is not offered
@run_async
async def test_legacy_scanner_gets_legacy_reports():
    async with VLink(count=2) as link:
        adv, scanner = HciHost(link.paths[0]), HciHost(link.paths[1])
        await adv.reset()
        await scanner.reset()
        event = await scanner.command(hci.HCI_LE_Read_Local_Supported_Features_Command())
        features = int.from_bytes(event[7:15], 'little')
        assert not features & hci.LeFeatureMask.LE_EXTENDED_ADVERTISING
        assert not features & hci.LeFeatureMask.LE_PERIODIC_ADVERTISING
        await adv.advertise(AdvType.ADV_IND, b'\x02\x01\x06')
        await scanner.scan(active=True)
        await scanner.wait_for(is_le_event(SUBEV_ADV_REPORT))
        await asyncio.sleep(0.1)
        meta = [p for p in scanner.raw if p[:2] == b'\x04\x3e']
        assert meta and all(p[3] == SUBEV_ADV_REPORT for p in meta)
        assert not any(p[3] == SUBEV_EXT_ADV_REPORT for p in meta)
        adv.close()
        scanner.close()


# (d) connection and fragmented ACL
@run_async
async def test_acl_fragmented_to_buffer_size():
    async with VLink(count=2, delay_ms=3) as link:
        per, cen = HciHost(link.paths[0]), HciHost(link.paths[1])
        await per.reset()
        await cen.reset()
        event = await cen.command(hci.HCI_LE_Read_Buffer_Size_Command())
        (acl_len,) = struct.unpack_from('<H', event, 7)
        assert acl_len == 27

        await per.advertise(AdvType.ADV_IND, b'\x02\x01\x06')
        peer = link.controllers[0].public_address
        status, cen_handle, role = le_conn_complete(await cen.connect(peer))
        assert (status, role) == (0, 0)
        status, per_handle, role = le_conn_complete(await per.wait_for(is_le_event(0x01)))
        assert (status, role) == (0, 1)

        payloads = [bytes(range(256))[:200], b'short', bytes(range(100, 181))]
        nocp_expected = 0
        for payload in payloads:
            pdu = struct.pack('<HH', len(payload), 0x0040) + payload
            for i in range(0, len(pdu), acl_len):  # the host respects the buffer size too
                chunk = pdu[i:i + acl_len]
                pb = 0 if i == 0 else 1
                cen.send(struct.pack('<BHH', 2, cen_handle | (pb << 12), len(chunk)) + chunk)
                nocp_expected += 1

        # Number Of Completed Packets for every packet the host sent.
        completed = 0
        while completed < nocp_expected:
            nocp = await cen.wait_for(lambda p: p[:2] == b'\x04\x13')
            n, = struct.unpack_from('<B', nocp, 3)
            for k in range(n):
                handle, count = struct.unpack_from('<HH', nocp, 4 + 4 * k)
                assert handle == cen_handle
                completed += count
        assert completed == nocp_expected

        # The peripheral's host gets each PDU in order, in fragments no larger than 27.
        for payload in payloads:
            pdu = struct.pack('<HH', len(payload), 0x0040) + payload
            got = b''
            frags = []
            while len(got) < len(pdu):
                frag = await per.wait_for(lambda p: p[0] == 2)
                h, length = struct.unpack_from('<HH', frag, 1)
                assert h & 0xFFF == per_handle
                assert length == len(frag) - 5 <= acl_len
                frags.append((h >> 12) & 3)
                got += frag[5:]
            assert got == pdu
            assert frags[0] == 2 and all(f == 1 for f in frags[1:])
            assert len(frags) == -(-len(pdu) // acl_len)

        # Disconnecting: local reason 0x16, the peer sees the reason we gave.
        await cen.command(hci.HCI_Disconnect_Command(connection_handle=cen_handle, reason=0x13))
        ev = await cen.wait_for(lambda p: p[:2] == b'\x04\x05')
        assert struct.unpack_from('<BHB', ev, 3) == (0, cen_handle, 0x16)
        ev = await per.wait_for(lambda p: p[:2] == b'\x04\x05')
        assert struct.unpack_from('<BHB', ev, 3) == (0, per_handle, 0x13)
        per.close()
        cen.close()


@run_async
async def test_link_delay_is_applied_and_keeps_order():
    async with VLink(count=2, delay_ms=40) as link:
        per, cen = HciHost(link.paths[0]), HciHost(link.paths[1])
        await per.reset()
        await cen.reset()
        await per.advertise(AdvType.ADV_IND, b'')
        _, handle, _ = le_conn_complete(await cen.connect(link.controllers[0].public_address))
        await per.wait_for(is_le_event(0x01))
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(20):
            pdu = struct.pack('<HHB', 1, 0x0040, i)
            cen.send(struct.pack('<BHH', 2, handle | (2 << 12), len(pdu)) + pdu)
        first = await per.wait_for(lambda p: p[0] == 2)
        assert loop.time() - start >= 0.035
        seq = [first[-1]]
        for _ in range(19):
            seq.append((await per.wait_for(lambda p: p[0] == 2))[-1])
        assert seq == list(range(20))
        per.close()
        cen.close()


# (e) the pty survives its host closing and reopening it
@run_async
async def test_pty_survives_close_and_reopen(tmp_path):
    async with VLink(count=1, directory=str(tmp_path)) as link:
        path = str(tmp_path / 'hci0')
        assert link.paths == [path] and os.path.islink(path)
        for _ in range(4):
            host = HciHost(path, flush=False)
            host.send(bytes.fromhex('01030c00'))
            reply = await host.wait_for(lambda p: True)
            assert reply == bytes.fromhex('040e0401030c00')
            host.close()
            await asyncio.sleep(0.02)
        assert link.ports[0].attach_count == 4
    assert not os.path.lexists(path)


@run_async
async def test_detach_and_reset_stop_everything():
    async with VLink(count=3) as link:
        adv, scanner, cen = (HciHost(p) for p in link.paths)
        for h in (adv, scanner, cen):
            await h.reset()
        await scanner.scan(active=False)
        address0 = link.controllers[0].public_address

        # HCI Reset stops advertising.
        await adv.advertise(AdvType.ADV_NONCONN_IND, b'\x02\x01\x04')
        await scanner.wait_for(lambda p: bool(legacy_reports([p], address0)))
        await adv.reset()
        await asyncio.sleep(0.05)
        scanner.pending.clear()
        await asyncio.sleep(0.1)
        assert not legacy_reports(scanner.pending, address0)

        # A host closing its pty while connected and advertising: the link drops with a
        # supervision timeout at the peer, advertising stops, and the next host starts clean
        # (none of the old output is waiting for it).
        await adv.advertise(AdvType.ADV_IND, b'\x02\x01\x06')
        _, handle, _ = le_conn_complete(await cen.connect(address0))
        await adv.wait_for(is_le_event(0x01))
        await adv.advertise(AdvType.ADV_NONCONN_IND, b'\x02\x01\x04')
        await scanner.wait_for(lambda p: bool(legacy_reports([p], address0)))
        await adv.scan(active=True)  # floods the host with reports it will never read
        await asyncio.sleep(0.05)
        adv.close()
        ev = await cen.wait_for(lambda p: p[:2] == b'\x04\x05')
        assert struct.unpack_from('<BHB', ev, 3) == (0, handle, 0x08)
        await asyncio.sleep(0.05)
        scanner.pending.clear()
        await asyncio.sleep(0.1)
        assert not legacy_reports(scanner.pending, address0)

        adv = HciHost(link.paths[0], flush=False)
        await asyncio.sleep(0.1)
        assert adv.raw == [], 'stale output reached a new host'
        await adv.reset()
        assert adv.raw == [bytes.fromhex('040e0401030c00')]
        for h in (adv, scanner, cen):
            h.close()


@run_async
async def test_connection_cancel_and_unknown_commands():
    async with VLink(count=2) as link:
        host = HciHost(link.paths[0])
        await host.reset()
        # Distinct public addresses.
        ev = await host.command(hci.HCI_Read_BD_ADDR_Command())
        assert ev[7:13] == bytes(link.controllers[0].public_address)
        assert link.controllers[0].public_address != link.controllers[1].public_address
        assert str(link.controllers[1].public_address) == 'F0:F1:F2:F3:F4:01/P'

        # Create Connection to nobody, then cancel it: Connection Complete, status 0x02.
        nobody = hci.Address('C0:00:00:00:00:01', hci.Address.RANDOM_DEVICE_ADDRESS)
        await host.command(hci.HCI_LE_Create_Connection_Command(
            le_scan_interval=0x10, le_scan_window=0x10, initiator_filter_policy=0,
            peer_address_type=1, peer_address=nobody, own_address_type=0,
            connection_interval_min=24, connection_interval_max=40, max_latency=0,
            supervision_timeout=200, min_ce_length=0, max_ce_length=0))
        await host.command(hci.HCI_LE_Create_Connection_Cancel_Command())
        status, _, _ = le_conn_complete(await host.wait_for(is_le_event(0x01)))
        assert status == 0x02
        await host.command(hci.HCI_LE_Create_Connection_Cancel_Command(), expect_status=0x0C)

        # Every command gets an answer: a vendor command, an unimplemented async one,
        # a malformed one, a disconnect of an unknown handle.
        host.send(bytes.fromhex('0101fc00'))
        ev = await host.wait_for(lambda p: p[:2] == b'\x04\x0e')
        assert ev == bytes.fromhex('040e040101fc01')
        await host.command(hci.HCI_LE_Set_PHY_Command(
            connection_handle=1, all_phys=0, tx_phys=1, rx_phys=1, phy_options=0),
            expect_status=0x01)
        host.send(bytes.fromhex('01062000'))  # LE Set Advertising Parameters, no parameters
        ev = await host.wait_for(lambda p: p[:2] in (b'\x04\x0e', b'\x04\x0f'))
        assert ev == bytes.fromhex('040e0401062012')
        await host.command(hci.HCI_Disconnect_Command(connection_handle=0x55, reason=0x13),
                           expect_status=0x02)
        host.close()


def test_public_address_for():
    assert vcontroller.public_address_for(3).to_string(False) == 'F0:F1:F2:F3:F4:03'
    assert vcontroller.public_address_for(3).is_public


# A complete host stack (Bumble's) over the ptys: legacy scan, connect with public
# addresses, pairing, MTU exchange, long GATT read and write (fragmented both ways).
@run_async
async def test_bumble_host_stack_end_to_end():
    from bumble import core
    from bumble.device import Device, Peer
    from bumble.gatt import Characteristic, Service
    from bumble.transport import open_transport

    uuid = '12345678-1234-5678-1234-56789abcdef0'
    async with VLink(count=2) as link:
        transports = [await open_transport(f'serial:{p},1000000') for p in link.paths]
        try:
            per, cen = (
                Device.with_hci(f'dev{i}', c.public_address, t.source, t.sink)
                for i, (c, t) in enumerate(zip(link.controllers, transports))
            )
            props = Characteristic.Properties
            char = Characteristic(uuid, props.READ | props.WRITE,
                                  Characteristic.READABLE | Characteristic.WRITEABLE,
                                  bytes(range(200)))
            per.add_service(Service('180A', [char]))
            await per.power_on()
            await cen.power_on()
            await per.start_advertising(auto_restart=False, own_address_type=0)
            found = asyncio.get_running_loop().create_future()
            cen.on('advertisement', lambda a: found.done() or found.set_result(a))
            await cen.start_scanning(legacy=True, active=True)
            adv = await found
            assert adv.is_legacy and adv.is_connectable and adv.is_scannable
            await cen.stop_scanning()
            conn = await cen.connect(adv.address, own_address_type=0)
            assert conn.peer_address == link.controllers[0].public_address
            await conn.pair()
            assert conn.is_encrypted
            peer = Peer(conn)
            assert await peer.request_mtu(247) == 247
            await peer.discover_services()
            await peer.discover_characteristics()
            remote = peer.get_characteristics_by_uuid(core.UUID(uuid))[0]
            assert await remote.read_value() == bytes(range(200))
            await remote.write_value(bytes(range(150, 0, -1)), with_response=True)
            assert bytes(char.value) == bytes(range(150, 0, -1))
            await conn.disconnect()
        finally:
            for t in transports:
                await t.close()


@run_async
async def test_connection_update_is_the_centrals_alone():
    async with VLink(count=2, delay_ms=3) as link:
        per, cen = HciHost(link.paths[0]), HciHost(link.paths[1])
        await per.reset()
        await cen.reset()
        await per.advertise(AdvType.ADV_IND, b'\x02\x01\x06')
        status, cen_handle, _ = le_conn_complete(await cen.connect(link.controllers[0].public_address))
        assert status == 0
        status, per_handle, _ = le_conn_complete(await per.wait_for(is_le_event(0x01)))
        assert status == 0

        # No LL Connection Parameters Request procedure is claimed (LE features bit 1), so a
        # peripheral's host asks by L2CAP instead.
        await cen.command(hci.HCI_LE_Read_Remote_Features_Command(connection_handle=cen_handle),
                          expect_status=None)
        ev = await cen.wait_for(is_le_event(0x04))
        assert ev[4] == 0 and not ev[7] & 0x02, ev.hex()

        update = dict(connection_interval_min=36, connection_interval_max=36, max_latency=2,
                      supervision_timeout=400, min_ce_length=0, max_ce_length=0)
        # From the peripheral: Command Disallowed, and nothing reaches the central.
        ev = await per.command(hci.HCI_LE_Connection_Update_Command(
            connection_handle=per_handle, **update), expect_status=None)
        assert ev[3] == hci.HCI_COMMAND_DISALLOWED_ERROR, ev.hex()
        await asyncio.sleep(0.05)
        assert not cen.events(is_le_event(0x03)) and not per.events(is_le_event(0x03))

        # From the central: both sides report the new parameters.
        await cen.command(hci.HCI_LE_Connection_Update_Command(
            connection_handle=cen_handle, **update), expect_status=None)
        for host, handle in ((cen, cen_handle), (per, per_handle)):
            ev = await host.wait_for(is_le_event(0x03))
            assert struct.unpack_from('<BHHHH', ev, 4) == (0, handle, 36, 2, 400), ev.hex()
        per.close()
        cen.close()
