"""The radio model (airtime.py and the `air-*` controller profiles): the air-time rules, and
links whose data leaves in connection events, with data length and PHY updates, driven with
raw HCI over the ptys (no firmware).

Run: .cache/venv/bin/python -m pytest tests/harness/test_airtime.py -q
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bumble import hci  # noqa: E402

import airtime  # noqa: E402
import vcontroller  # noqa: E402
from test_profiles import acl, connected_pair, l2cap  # noqa: E402
from test_vcontroller import is_le_event, le_conn_complete, run_async  # noqa: E402
from vlink import VLink  # noqa: E402

M1, M2 = airtime.PHY_1M, airtime.PHY_2M


def test_packet_and_exchange_times_follow_the_bit_rates():
    # 1M: (1 + 4 + 2 + payload + 3) bytes at 8 us; 2M: (2 + 4 + 2 + payload + 3) at 4 us.
    assert airtime.packet_time_us(0, M1) == 80
    assert airtime.packet_time_us(27, M1) == 296
    assert airtime.packet_time_us(251, M1) == 2088
    assert airtime.packet_time_us(0, M2) == 44
    assert airtime.packet_time_us(251, M2) == 1048
    # Data one way, an empty packet back, T_IFS after each.
    assert airtime.exchange_time_us(27, M1, 0, M1) == 296 + 150 + 80 + 150
    assert airtime.exchange_time_us(0, M2, 251, M2) == 44 + 150 + 1048 + 150


def test_an_event_ends_on_time_count_or_no_more_data():
    # 27-byte packets at 676 us an exchange: 11 fit in 7.5 ms.
    assert airtime.pack_event(7500, 16, [27] * 40, []) == (11, 0, 11 * 676)
    # The controller's bound comes first at 30 ms.
    assert airtime.pack_event(30000, 16, [27] * 40, [])[:2] == (16, 0)
    # Both ways at once: each exchange carries one packet each way.
    assert airtime.pack_event(7500, 16, [27] * 3, [27] * 5)[:2] == (3, 5)
    # Nothing queued: one exchange of empty packets.
    assert airtime.pack_event(7500, 16, [], []) == (0, 0, 80 + 150 + 80 + 150)
    # A packet that cannot fit in the interval waits.
    assert airtime.pack_event(2000, 16, [251], [])[:2] == (0, 0)


def test_stream_limits():
    # 244-byte notifications in 251-byte L2CAP PDUs: one 251-byte packet each with data
    # length extension; 3 exchanges of 2,468 us fit in 7.5 ms.
    one = airtime.unit_packets([247], 251)
    assert one == [251]
    assert round(airtime.stream_limit(one, 244, 7500, 16)) == 3 * 244 * 1000 // 7.5
    # Without it, 251 bytes are 9 x 27 + 8: 11 packets a 7.5 ms event, so 10 of 11 events'
    # worth of units; the limit is what the events carry, shared out over the units.
    ten = airtime.unit_packets([247], 27)
    assert ten == [27] * 9 + [8]
    limit = airtime.stream_limit(ten, 244, 7500, 16)
    assert 30_000 < limit < 36_000
    # 2M carries more, by air time alone.
    assert airtime.stream_limit(one, 244, 7500, 16, phy=M2) > 1.6 * airtime.stream_limit(one, 244, 7500, 16)


async def arrivals(host, count: int) -> list[tuple[float, bytes]]:
    """The next `count` ACL packets to `host`, with the loop time each arrived."""
    loop = asyncio.get_running_loop()
    got = []
    for _ in range(count):
        packet = await host.wait_for(lambda p: p[0] == 2, timeout=5)
        got.append((loop.time(), packet))
    return got


def air_of(link, index: int):
    (connection,) = link.controllers[index].le_connections.values()
    return connection.air


@run_async
async def test_data_leaves_in_connection_events():
    async with VLink(count=2, delay_ms=3, profile='air-7.5ms') as link:
        per, cen, handle = await connected_pair(link)
        # The host asked for 30-50 ms; this part holds its links at 7.5 ms and says so.
        ev = cen.raw[[i for i, p in enumerate(cen.raw) if is_le_event(0x01)(p)][-1]]
        assert struct.unpack_from('<H', ev, 15)[0] == 6
        # Four 251-byte L2CAP PDUs in 251-byte ACL packets: ten 27-byte link-layer packets
        # each, 11 to an event, so four events 7.5 ms apart.
        pdus = [l2cap(bytes([i]) * 247) for i in range(4)]
        for pdu in pdus:
            cen.send(acl(handle, pdu))
        got = await arrivals(per, 40)
        air = air_of(link, 1)
        assert (air.events, air.packets[True], air.packets[False]) == (4, 40, 0)
        assert all(len(p) - 5 <= 27 for _, p in got)
        assert b''.join(p[5:] for _, p in got) == b''.join(pdus)
        # PB flags: a start for each PDU's first packet, continuations for the rest.
        flags = [(struct.unpack_from('<H', p, 1)[0] >> 12) & 3 for _, p in got]
        assert flags == ([2] + [1] * 9) * 4
        # First and last at the ends of events three anchors apart: more than two intervals.
        spread = got[-1][0] - got[0][0]
        assert 2 * 0.0075 < spread < 3 * 0.0075 + 0.05, spread
        per.close()
        cen.close()


@run_async
async def test_data_length_and_2m_phy_updates():
    async with VLink(count=2, delay_ms=3, profile='air-7.5ms') as link:
        per, cen, handle = await connected_pair(link)
        features = (await cen.command(hci.HCI_LE_Read_Local_Supported_Features_Command()))[7:15]
        mask = int.from_bytes(features, 'little')
        assert mask & (1 << 5) and mask & (1 << 8), 'data length extension and 2M claimed'

        await cen.command(hci.HCI_LE_Set_Data_Length_Command(
            connection_handle=handle, tx_octets=251, tx_time=2120))
        for host, tx, rx in ((cen, 251, 27), (per, 27, 251)):
            ev = await host.wait_for(is_le_event(0x07))
            assert struct.unpack_from('<HHHH', ev, 6) == (tx, (tx + 14) * 8, rx, (rx + 14) * 8)

        await cen.command(hci.HCI_LE_Set_PHY_Command(
            connection_handle=handle, all_phys=0, tx_phys=2, rx_phys=2, phy_options=0),
            expect_status=0)
        for host in (cen, per):
            ev = await host.wait_for(is_le_event(0x0C))
            assert (ev[4], ev[7], ev[8]) == (0, 2, 2), ev.hex()
        ev = await cen.command(hci.HCI_LE_Read_PHY_Command(connection_handle=handle))
        assert ev[9:11] == bytes([2, 2])

        # Four 251-byte PDUs are now one packet each, at 1,392 us an exchange on 2M: all
        # four in one event.
        pdus = [l2cap(bytes([i]) * 247) for i in range(4)]
        for pdu in pdus:
            cen.send(acl(handle, pdu))
        got = await arrivals(per, 4)
        assert [p[5:] for _, p in got] == pdus
        air = air_of(link, 1)
        assert air.packets[True] == 4 and air.events <= 2
        per.close()
        cen.close()


@run_async
async def test_a_basic_part_has_neither_update():
    async with VLink(count=2, delay_ms=3, profile='air-basic-30ms') as link:
        per, cen, handle = await connected_pair(link)
        features = (await cen.command(hci.HCI_LE_Read_Local_Supported_Features_Command()))[7:15]
        mask = int.from_bytes(features, 'little')
        assert not mask & (1 << 5) and not mask & (1 << 8)
        ev = await cen.command(hci.HCI_LE_Set_PHY_Command(
            connection_handle=handle, all_phys=0, tx_phys=2, rx_phys=2, phy_options=0),
            expect_status=None)
        assert ev[3] == hci.HCI_UNKNOWN_HCI_COMMAND_ERROR
        # Data still flows, 27 bytes a packet, at the 30 ms interval.
        cen.send(acl(handle, l2cap(b'x' * 100)))
        got = await arrivals(per, 4)
        assert [len(p) - 5 for _, p in got] == [27, 27, 27, 23]
        per.close()
        cen.close()


@run_async
async def test_nocp_waits_for_the_air_and_a_disconnection_ends_the_model():
    async with VLink(count=2, delay_ms=3, profile='air-30ms') as link:
        per, cen, handle = await connected_pair(link)
        loop = asyncio.get_running_loop()
        start = loop.time()
        cen.send(acl(handle, l2cap(b'y' * 20)))
        await cen.wait_for(lambda p: p[:2] == b'\x04\x13', timeout=2)
        # Reported completed only once it went out, at an anchor no more than 30 ms away.
        assert loop.time() - start < 0.2
        assert (await arrivals(per, 1))[0][1][9:] == b'y' * 20
        air = air_of(link, 1)
        await cen.command(hci.HCI_Disconnect_Command(connection_handle=handle, reason=0x13),
                          expect_status=0)
        await cen.wait_for(lambda p: p[:2] == b'\x04\x05')
        await per.wait_for(lambda p: p[:2] == b'\x04\x05')
        cen.send(acl(handle, l2cap(b'z' * 20)))  # to a handle that is gone
        await asyncio.sleep(0.1)
        assert air._closed and not air.central.queue
        assert not [p for p in per.pending if p[0] == 2]
        per.close()
        cen.close()


def test_air_profiles_are_listed():
    names = [n for n in vcontroller.PROFILES if n.startswith('air')]
    assert sorted(names) == ['air-30ms', 'air-7.5ms', 'air-basic-30ms', 'air-basic-7.5ms']


@run_async
async def test_control_pdus_keep_their_place_behind_the_data():
    # A link layer sends its control PDUs in connection events too: data queued before a
    # connection update (or the start of encryption) reaches the peer first.
    async with VLink(count=2, delay_ms=3, profile='air-7.5ms') as link:
        per, cen, handle = await connected_pair(link)
        pdus = [l2cap(bytes([i]) * 247) for i in range(4)]
        for pdu in pdus:
            cen.send(acl(handle, pdu))
        await cen.command(hci.HCI_LE_Connection_Update_Command(
            connection_handle=handle, connection_interval_min=8, connection_interval_max=8,
            max_latency=0, supervision_timeout=200, min_ce_length=0, max_ce_length=0),
            expect_status=0)
        await per.wait_for(is_le_event(0x03), timeout=5)
        order = [p for p in per.raw if p[0] == 2 or is_le_event(0x03)(p)]
        assert [p[0] for p in order[-41:]] == [2] * 40 + [4], 'all 40 data packets first'
        per.close()
        cen.close()
