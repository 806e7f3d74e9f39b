"""The controller profiles (vcontroller.PROFILES): each one's HCI answers and behaviour, driven
with raw HCI over the ptys (no firmware).

Run: .cache/venv/bin/python -m pytest tests/harness/test_profiles.py -q
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bumble import hci  # noqa: E402

import vcontroller  # noqa: E402
from test_vcontroller import HciHost, is_le_event, le_conn_complete, run_async  # noqa: E402
from vlink import VLink  # noqa: E402

AdvType = hci.HCI_LE_Set_Advertising_Parameters_Command.AdvertisingType

is_nocp = lambda p: p[:2] == b'\x04\x13'  # noqa: E731
is_reset_complete = lambda p: p == bytes.fromhex('040e0401030c00')  # noqa: E731


def supported(event: bytes, op_code: int) -> bool:
    """Whether a Read Local Supported Commands answer lists `op_code`."""
    mask = int.from_bytes(event[7:71], 'little')
    return bool(mask & hci.HCI_SUPPORTED_COMMANDS_MASKS[op_code])


async def le_buffer_sizes(host: HciHost) -> tuple[int, int, int, int]:
    """(LE length, LE count, shared length, shared count) as the controller reports them."""
    ev = await host.command(hci.HCI_LE_Read_Buffer_Size_Command())
    le_len, le_count = struct.unpack_from('<HB', ev, 7)
    ev = await host.command(hci.HCI_Read_Buffer_Size_Command())
    acl_len, _sco_len, acl_count = struct.unpack_from('<HBH', ev, 7)
    return le_len, le_count, acl_len, acl_count


async def connected_pair(link) -> tuple[HciHost, HciHost, int]:
    """A peripheral and a central host on controllers 0 and 1, connected; returns them and
    the central's handle."""
    per, cen = HciHost(link.paths[0]), HciHost(link.paths[1])
    await per.reset()
    await cen.reset()
    await per.advertise(AdvType.ADV_IND, b'\x02\x01\x06')
    status, handle, _ = le_conn_complete(await cen.connect(vcontroller.public_address_for(0)))
    assert status == 0
    await per.wait_for(is_le_event(0x01))
    return per, cen, handle


def acl(handle: int, data: bytes, first: bool = True) -> bytes:
    return struct.pack('<BHH', 2, handle | ((0 if first else 1) << 12), len(data)) + data


def l2cap(payload: bytes) -> bytes:
    return struct.pack('<HH', len(payload), 0x0040) + payload


def completed(packets: list[bytes]) -> int:
    n = 0
    for p in packets:
        for k in range(p[3]):
            n += struct.unpack_from('<H', p, 4 + 4 * k + 2)[0]
    return n


def test_every_profile_has_a_description_and_unknown_ones_are_refused():
    assert 'default' in vcontroller.PROFILES
    for name, profile in vcontroller.PROFILES.items():
        assert profile.name == name and profile.description
    with pytest.raises(ValueError, match='unknown controller profile'):
        vcontroller.profile_named('no_such_part')


@pytest.mark.parametrize('profile, expected', [
    ('default', (27, 64, 27, 64)),
    ('acl27x3', (27, 3, 27, 64)),
    ('acl27x20', (27, 20, 27, 64)),
    ('acl251x8', (251, 8, 27, 64)),
    ('le_bufsize_zero', (0, 0, 1021, 8)),
])
@run_async
async def test_read_buffer_size_answers(profile, expected):
    async with VLink(count=1, profile=profile) as link:
        host = HciHost(link.paths[0])
        await host.reset()
        assert await le_buffer_sizes(host) == expected
        host.close()


@run_async
async def test_acl27x3_refuses_a_fourth_packet_before_completed_packets():
    # A long link delay keeps the three buffers busy while the fourth packet comes in.
    async with VLink(count=2, delay_ms=300, profile='acl27x3') as link:
        per, cen, handle = await connected_pair(link)
        central = link.controllers[1]
        pdus = [l2cap(bytes([i]) * 20) for i in range(4)]  # 24 bytes: one packet each
        for pdu in pdus[:3]:
            cen.send(acl(handle, pdu))
        await asyncio.sleep(0.05)
        assert central.acl_packets_in_use == 3 and not central.host_bugs
        assert not cen.events(is_nocp)
        cen.send(acl(handle, pdus[3]))  # no buffer free: a host error, and dropped
        await asyncio.sleep(0.05)
        assert len(central.host_bugs) == 1
        assert 'all 3 ACL buffers are in use' in central.host_bugs[0]
        assert central.acl_packets_in_use == 3

        # Number of Completed Packets once the packets have left: three of them, no more.
        while completed(cen.events(is_nocp)) < 3:
            await asyncio.sleep(0.05)
        assert completed(cen.events(is_nocp)) == 3
        assert central.acl_packets_in_use == 0
        got = []
        while len(got) < 3:
            got.append((await per.wait_for(lambda p: p[0] == 2))[5:])
        assert got == pdus[:3]
        await asyncio.sleep(0.4)
        assert not per.events(lambda p: p[0] == 2)  # the refused one never went out

        # Buffers free again: accepted. A 28-byte packet does not fit a 27-byte buffer.
        cen.send(acl(handle, pdus[3]))
        assert (await per.wait_for(lambda p: p[0] == 2))[5:] == pdus[3]
        cen.send(acl(handle, l2cap(bytes(24))))
        await asyncio.sleep(0.05)
        assert len(central.host_bugs) == 2
        assert 'ACL packet of 28 bytes' in central.host_bugs[1]
        per.close()
        cen.close()


@run_async
async def test_disconnection_frees_the_buffers():
    async with VLink(count=2, delay_ms=300, profile='acl27x3') as link:
        per, cen, handle = await connected_pair(link)
        central = link.controllers[1]
        for i in range(3):
            cen.send(acl(handle, l2cap(bytes([i]))))
        await asyncio.sleep(0.05)
        assert central.acl_packets_in_use == 3
        await cen.command(hci.HCI_Disconnect_Command(connection_handle=handle, reason=0x13))
        await cen.wait_for(lambda p: p[:2] == b'\x04\x05')
        assert central.acl_packets_in_use == 0
        await asyncio.sleep(0.4)
        # No Number of Completed Packets for a handle the host already forgot.
        assert not cen.events(is_nocp)
        assert not central.host_bugs
        per.close()
        cen.close()


@run_async
async def test_le_bufsize_zero_uses_the_shared_buffers():
    async with VLink(count=2, delay_ms=300, profile='le_bufsize_zero') as link:
        per, cen, handle = await connected_pair(link)
        central = link.controllers[1]
        assert await le_buffer_sizes(cen) == (0, 0, 1021, 8)
        # Packets up to the shared length are fine; eight of them fill the shared pool.
        big = l2cap(bytes(range(256)) * 3)  # 772 bytes
        for _ in range(8):
            cen.send(acl(handle, big))
        await asyncio.sleep(0.05)
        assert central.acl_packets_in_use == 8 and not central.host_bugs
        cen.send(acl(handle, l2cap(b'x')))
        cen.send(acl(handle, bytes(1022)))
        await asyncio.sleep(0.05)
        assert len(central.host_bugs) == 2
        assert 'all 8 ACL buffers are in use' in central.host_bugs[0]
        assert 'ACL packet of 1022 bytes' in central.host_bugs[1]
        # The peer's host gets each PDU in fragments of at most 251 bytes (LE data payload).
        frags = []
        got = b''
        while len(got) < len(big):
            frag = await per.wait_for(lambda p: p[0] == 2)
            frags.append(len(frag) - 5)
            got += frag[5:]
        assert got == big and max(frags) == 251
        per.close()
        cen.close()


@run_async
async def test_no_ll_privacy_has_no_resolving_list():
    ll_privacy = int(hci.LeFeatureMask.LL_PRIVACY)
    add = hci.HCI_LE_Add_Device_To_Resolving_List_Command(
        peer_identity_address_type=0, peer_identity_address=hci.Address.ANY,
        peer_irk=bytes(16), local_irk=bytes(16))
    for profile in ('no_ll_privacy', 'default'):
        absent = profile == 'no_ll_privacy'
        async with VLink(count=1, profile=profile) as link:
            host = HciHost(link.paths[0])
            await host.reset()
            ev = await host.command(hci.HCI_LE_Read_Local_Supported_Features_Command())
            assert bool(int.from_bytes(ev[7:15], 'little') & ll_privacy) != absent
            ev = await host.command(hci.HCI_Read_Local_Supported_Commands_Command())
            for op in vcontroller.LL_PRIVACY_COMMANDS:
                assert supported(ev, op) != absent, hci.HCI_Command.command_name(op)
            assert supported(ev, hci.HCI_LE_ENCRYPT_COMMAND)
            status = hci.HCI_ErrorCode.UNKNOWN_HCI_COMMAND_ERROR if absent else 0
            await host.command(add, expect_status=status)
            await host.command(hci.HCI_LE_Set_Address_Resolution_Enable_Command(
                address_resolution_enable=1), expect_status=status)
            host.close()


@run_async
async def test_no_le_secure_is_a_4_1_part_without_p256_commands():
    async with VLink(count=1, profile='no_le_secure') as link:
        host = HciHost(link.paths[0])
        await host.reset()
        ev = await host.command(hci.HCI_Read_Local_Version_Information_Command())
        assert ev[7] == hci.HCI_VERSION_BLUETOOTH_CORE_4_1  # HCI version
        ev = await host.command(hci.HCI_Read_Local_Supported_Commands_Command())
        for op in vcontroller.P256_COMMANDS:
            assert not supported(ev, op)
        assert supported(ev, hci.HCI_LE_ENCRYPT_COMMAND)
        # Both are asynchronous commands: Command Status, Unknown HCI Command.
        await host.command(hci.HCI_LE_Read_Local_P_256_Public_Key_Command(), expect_status=0x01)
        # LE Generate DHKey (Bumble has no class for it): opcode 0x2026, a 64-byte key.
        host.send(bytes.fromhex('01262040') + bytes(64))
        # Unknown to Bumble's parser too, so answered with Command Complete (Core Vol 4 Part E
        # 4.5 allows either event for an unknown opcode).
        ev = await host.wait_for(lambda p: p[:2] in (b'\x04\x0e', b'\x04\x0f'))
        assert ev in (bytes.fromhex('040e0401262001'), bytes.fromhex('040f0401012620'))
        host.close()


@run_async
async def test_hardware_error_comes_before_the_first_reset_answer():
    async with VLink(count=1, profile='hw_error_before_reset') as link:
        for _ in range(2):  # a new host finds a freshly powered part again
            host = HciHost(link.paths[0])
            await host.reset()
            hw_error = bytes((4, 0x10, 1, vcontroller.HARDWARE_ERROR_CODE))
            assert host.raw == [hw_error, bytes.fromhex('040e0401030c00')]
            await host.reset()  # only the first reset after power-on
            assert host.raw[2:] == [bytes.fromhex('040e0401030c00')]
            host.close()
            await asyncio.sleep(0.05)  # the port notices the close


@run_async
async def test_vendor_events_around_the_first_reset_answer():
    async with VLink(count=1, profile='vendor_events_at_startup') as link:
        host = HciHost(link.paths[0])
        await host.reset()
        await host.wait_for(lambda p: p.endswith(vcontroller.VENDOR_EVENT_AFTER_RESET))
        before = bytes((4, 0xFF, len(vcontroller.VENDOR_EVENT_BEFORE_RESET)))
        after = bytes((4, 0xFF, len(vcontroller.VENDOR_EVENT_AFTER_RESET)))
        assert host.raw == [
            before + vcontroller.VENDOR_EVENT_BEFORE_RESET,
            bytes.fromhex('040e0401030c00'),
            after + vcontroller.VENDOR_EVENT_AFTER_RESET,
        ]
        await host.reset()
        assert host.raw[3:] == [bytes.fromhex('040e0401030c00')]
        host.close()


@run_async
async def test_slow_reset_answers_after_its_delay():
    async with VLink(count=1, profile='slow_reset') as link:
        host = HciHost(link.paths[0])
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        host.send(hci.HCI_Reset_Command())
        # Nothing during the reset (a lower bound: the answer can only come later).
        with pytest.raises(TimeoutError):
            await host.wait_for(lambda p: True, timeout=0.45)
        await host.wait_for(is_reset_complete, timeout=2)
        assert loop.time() - t0 >= vcontroller.PROFILES['slow_reset'].reset_delay_s >= 0.5
        host.close()


@run_async
async def test_default_profile_completes_at_once_and_checks_lengths():
    async with VLink(count=2, delay_ms=300) as link:
        per, cen, handle = await connected_pair(link)
        central = link.controllers[1]
        for i in range(10):
            cen.send(acl(handle, l2cap(bytes([i]))))
        # All ten reported completed long before the link's 300 ms delay has passed.
        await asyncio.sleep(0.1)
        assert completed(cen.events(is_nocp)) == 10 and central.acl_packets_in_use == 0
        assert not per.events(lambda p: p[0] == 2)
        cen.send(acl(handle, l2cap(bytes(24))))  # 28 bytes: over the 27-byte buffers
        await asyncio.sleep(0.05)
        assert len(central.host_bugs) == 1 and 'ACL packet of 28 bytes' in central.host_bugs[0]
        per.close()
        cen.close()


@run_async
async def test_the_multitest_runner_sees_host_bugs():
    # vlink.py as tests/multitest.py runs it: a host error reaches its log, and the runner
    # finds it there (it then fails the test).
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
    import multitest

    link = multitest.VLink(2, 'acl27x3')
    try:
        per, cen, handle = await connected_pair(link)
        # Four packets in one write: the controller takes them before any can complete.
        cen.send(b''.join(acl(handle, l2cap(bytes([i]))) for i in range(4)))
        await asyncio.sleep(0.3)
        bugs = link.host_bugs()
        assert len(bugs) == 1 and 'all 3 ACL buffers are in use' in bugs[0], bugs
        per.close()
        cen.close()
    finally:
        link.close()
