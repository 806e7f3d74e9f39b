"""`gap_update_conn` from our peripheral against a Bumble central that refuses, then accepts.

Between two of our own stacks the central accepts every valid request, so the refusal path
(`_IRQ_CONNECTION_UPDATE` with status 1 and the unchanged values, raised on the requesting side
only) needs a peer that says no. The Bumble host is the central here, on our virtual link and on
RootCanal. It refuses the first request by whichever procedure reaches it (an L2CAP Connection
Parameter Update Response "rejected", or, where the controllers run the LL Connection
Parameters Request procedure, the LE Remote Connection Parameter Request Negative Reply) and
accepts the next one, which must then be in force on both sides.

Run: .cache/venv/bin/python -m pytest tests/peer/test_conn_update_bumble.py -q
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'harness'))

from bumble import hci, l2cap  # noqa: E402
from bumble.device import Device  # noqa: E402
from bumble.hci import Address  # noqa: E402
from bumble.transport import open_transport  # noqa: E402

from fwproc import STEP_TIMEOUT_S, Firmware, Radio, bumble_transport, run_async  # noqa: E402

CENTRAL_RANDOM_ADDRESS = Address('F0:00:00:00:00:02', Address.RANDOM_DEVICE_ADDRESS)

# 100 ms, latency 2, 5 s: distinct from anything a connection starts with.
WANT = (80, 2, 500)

FW_SCRIPT = r'''
import bluetooth
import time

_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_CONNECTION_UPDATE = 27

events = []


def irq(event, data):
    if event == _IRQ_CENTRAL_CONNECT:
        events.append(('connect', data[0]))
    elif event == _IRQ_CENTRAL_DISCONNECT:
        events.append(('disconnect', data[0]))
    elif event == _IRQ_CONNECTION_UPDATE:
        # The tuple reads as empty once the handler returns: keep a copy (tuple() of a
        # tuple is the same object).
        events.append(('update', tuple(list(data))))


def wait(kind, timeout_ms=10000):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
        for i, e in enumerate(events):
            if e[0] == kind:
                return events.pop(i)[1]
        time.sleep_ms(5)
    print('timeout', kind)
    raise SystemExit(1)


ble = bluetooth.BLE()
ble.irq(irq)
ble.active(True)
print('mac', ble.config('mac')[1].hex(':'))
ble.gap_advertise(20000, b'\x02\x01\x06')
print('advertising')
conn = wait('connect')
print('connect', conn)
time.sleep_ms(300)
for attempt in ('refused', 'accepted'):
    ble.gap_update_conn(conn, 100000, 100000, 2, 5000)
    c, interval, latency, timeout, status = wait('update')
    print(attempt, c == conn, interval, latency, timeout, status)
wait('disconnect')
print('leftover', [e for e in events if e[0] == 'update'])
print('done')
'''


@pytest.mark.parametrize('radio', ['vlink', 'rootcanal'])
@run_async(90)
async def test_peripheral_update_refused_then_accepted(tmp_path, radio):
    script = tmp_path / 'conn_update_peer.py'
    script.write_text(FW_SCRIPT)
    fw = Firmware()
    async with Radio(radio) as link:
        transport = await open_transport(bumble_transport(link.paths[1]))
        try:
            await fw.start(str(script), link.paths[0])
            mac = (await fw.expect('mac')).split()[1]
            await fw.expect('advertising')
            dev = Device.with_hci('central', link.public_address(1) or CENTRAL_RANDOM_ADDRESS,
                                  transport.source, transport.sink)
            await dev.power_on()

            # Refuse the first request, by either procedure; let the rest through.
            asked: list[tuple[str, int, int, int]] = []
            manager = dev.l2cap_channel_manager
            accept_l2cap = manager.on_l2cap_connection_parameter_update_request

            def on_l2cap_request(connection, cid, request):
                asked.append(('l2cap', request.interval_max, request.latency, request.timeout))
                if len(asked) > 1:
                    return accept_l2cap(connection, cid, request)
                manager.send_control_frame(connection, cid,
                                           l2cap.L2CAP_Connection_Parameter_Update_Response(
                                               identifier=request.identifier,
                                               result=l2cap.L2CAP_CONNECTION_PARAMETERS_REJECTED_RESULT))

            manager.on_l2cap_connection_parameter_update_request = on_l2cap_request
            host = dev.host
            accept_ll = host.on_hci_le_remote_connection_parameter_request_event

            def on_ll_request(event):
                asked.append(('ll', event.interval_max, event.max_latency, event.timeout))
                if len(asked) > 1:
                    return accept_ll(event)
                asyncio.get_running_loop().create_task(host.send_command(
                    hci.HCI_LE_Remote_Connection_Parameter_Request_Negative_Reply_Command(
                        connection_handle=event.connection_handle,
                        reason=hci.HCI_UNACCEPTABLE_CONNECTION_PARAMETERS_ERROR)))

            host.on_hci_le_remote_connection_parameter_request_event = on_ll_request

            fw_address = link.public_address(0) or Address(mac, Address.PUBLIC_DEVICE_ADDRESS)
            found = asyncio.get_running_loop().create_future()

            def on_adv(adv):
                if adv.address == fw_address and not found.done():
                    found.set_result(adv)

            dev.on('advertisement', on_adv)
            legacy = radio == 'vlink'
            await dev.start_scanning(legacy=legacy, active=False)
            adv = await asyncio.wait_for(found, STEP_TIMEOUT_S)
            await dev.stop_scanning(legacy=legacy)
            conn = await dev.connect(adv.address, own_address_type=0)
            await fw.expect('connect')
            updated = asyncio.Event()
            conn.on('connection_parameters_update', updated.set)

            # Refused: status 1, the values the link started with, and the central's side of
            # the link unchanged.
            refused = (await fw.expect('refused')).split()
            assert refused[1] == 'True' and refused[5] == '1', refused
            assert tuple(int(v) for v in refused[2:5]) != WANT, refused
            # Accepted: status 0 and exactly what was asked, on both sides.
            accepted = (await fw.expect('accepted')).split()
            assert accepted[1:] == ['True', *map(str, WANT), '0'], accepted
            await asyncio.wait_for(updated.wait(), STEP_TIMEOUT_S)
            assert conn.parameters.connection_interval == pytest.approx(WANT[0] * 1.25)
            assert conn.parameters.peripheral_latency == WANT[1]
            assert conn.parameters.supervision_timeout == pytest.approx(WANT[2] * 10)
            # Both requests carried the script's values, by one procedure.
            assert [a[1:] for a in asked] == [WANT, WANT], asked
            assert len({a[0] for a in asked}) == 1, asked

            await conn.disconnect()
            # No further update event on our side (the refusal raised exactly one).
            assert await fw.expect('leftover') == 'leftover []'
            await fw.expect('done')
            assert await fw.stop() == 0
        finally:
            await fw.stop()
            await transport.close()
