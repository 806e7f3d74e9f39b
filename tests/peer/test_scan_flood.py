"""A scan through a flood of advertisers: 20 Bumble devices on the link, each advertising at
the virtual controller's fastest interval, about 1,000 reports a second in all.

Every advertising report the firmware's controller sends must either reach the script's
handler as `_IRQ_SCAN_RESULT` or be counted in `config('rx_dropped')`: the test counts the
reports on the controller side and requires delivered + dropped == sent, and every advertiser
seen. The figures are printed (run pytest with -s to see them).

Midway the script starts advertising, and the controller holds back its answer to LE Set
Advertising Enable for a while. The host waits for that answer taking in reports but running
none, so they pile up in its few event buffers and the rest are dropped, as NimBLE's own UART
transport drops them; the test requires some such drops, so the counting is really exercised.

Run: .cache/venv/bin/python -m pytest tests/peer/test_scan_flood.py
"""

from __future__ import annotations

import asyncio
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'harness'))

from bumble import hci  # noqa: E402
from bumble.device import AdvertisingData, Device  # noqa: E402
from bumble.host import Host  # noqa: E402
from bumble.transport.common import AsyncPipeSink  # noqa: E402

from vcontroller import VController  # noqa: E402
from vlink import VLink  # noqa: E402

from fwproc import Firmware, run_async  # noqa: E402

ADVERTISERS = 20
FLOOD_S = 6.0
# How long the controller sits on its answer to LE Set Advertising Enable.
SLOW_ANSWER_S = 0.3

# Counts results per advertiser (by the name in its data, so the handler does real work on
# every event) until the test creates `quiet` next to the script; then reports and stops.
SCRIPT = r'''
import bluetooth, os, sys, time

here = sys.argv[1]
ble = bluetooth.BLE()
per_name = {}
total = 0

def irq(event, data):
    global total
    if event == 5:
        total += 1
        adv = bytes(data[4])
        i = adv.find(b'flood-')
        if i >= 0:
            name = adv[i:i + 8]
            per_name[name] = per_name.get(name, 0) + 1

def exists(name):
    try:
        os.stat(here + '/' + name)
        return True
    except OSError:
        return False

ble.irq(irq)
ble.active(True)
ble.gap_scan(0, 30000, 30000)
print('scanning')
while not exists('advertise'):
    time.sleep_ms(10)
ble.gap_advertise(100_000, b'\x02\x01\x06')
print('advertising')
while not exists('quiet'):
    time.sleep_ms(10)
ble.gap_scan(None)
counts = sorted(per_name.values())
print('delivered', total, 'dropped', ble.config('rx_dropped'), 'advertisers', len(per_name),
      'fewest', counts[0] if counts else 0)
ble.active(False)
print('END')
'''


def count_reports(controller: VController) -> list[int]:
    """Makes `controller` count the advertising reports it sends its host; returns the
    one-element list it adds to."""
    sent = [0]
    send = controller.send_hci_packet

    def counting(packet: hci.HCI_Packet) -> None:
        if isinstance(packet, hci.HCI_LE_Advertising_Report_Event):
            sent[0] += len(packet.reports)
        send(packet)

    controller.send_hci_packet = counting  # type: ignore[method-assign]
    return sent


def slow_to_enable_advertising(controller: VController) -> None:
    """Makes `controller` answer LE Set Advertising Enable only after SLOW_ANSWER_S."""
    on_command = controller.on_hci_command_packet
    loop = asyncio.get_running_loop()

    def delayed(command: hci.HCI_Command) -> None:
        if isinstance(command, hci.HCI_LE_Set_Advertising_Enable_Command):
            loop.call_later(SLOW_ANSWER_S, on_command, command)
        else:
            on_command(command)

    controller.on_hci_command_packet = delayed  # type: ignore[method-assign]


async def start_advertiser(link: VLink, index: int) -> tuple[VController, Device]:
    """A Bumble device on its own controller on the link (no pty), advertising its name."""
    controller = VController(f'adv{index}', link=link.link, index=index)
    host = Host(controller, AsyncPipeSink(controller))
    device = Device(f'adv{index}', address=controller.public_address, host=host)
    await device.power_on()
    device.advertising_data = bytes(AdvertisingData([
        (AdvertisingData.FLAGS, bytes([0x06])),
        (AdvertisingData.COMPLETE_LOCAL_NAME, b'flood-%02d' % index)]))
    # 0x20 units of 0.625 ms: 20 ms, the virtual controller's shortest period.
    await device.start_advertising(advertising_interval_min=20, advertising_interval_max=20,
                                   auto_restart=False)
    return controller, device


@run_async(90)
async def test_scan_flood_every_report_delivered_or_counted(tmp_path):
    script = tmp_path / 'flood.py'
    script.write_text(SCRIPT)
    fw = Firmware()
    async with VLink(count=1) as link:
        sent = count_reports(link.controllers[0])
        slow_to_enable_advertising(link.controllers[0])
        await fw.start(str(script), link.paths[0], str(tmp_path))
        await fw.expect('scanning')
        advertisers = [await start_advertiser(link, 1 + i) for i in range(ADVERTISERS)]
        try:
            await asyncio.sleep(FLOOD_S / 2)
            (tmp_path / 'advertise').write_text('')
            await fw.expect('advertising')
            await asyncio.sleep(FLOOD_S / 2)
        finally:
            for _, device in advertisers:
                await device.stop_advertising()
        # Whatever is still on its way arrives; then the count on the controller side is final.
        before = -1
        while sent[0] != before:
            before = sent[0]
            await asyncio.sleep(0.5)
        (tmp_path / 'quiet').write_text('')
        line = await fw.expect('delivered')
        await fw.expect('END')
        assert await fw.stop() == 0
        for controller, _ in advertisers:
            controller.reset_state()
            link.link.remove_controller(controller)
    words = line.split()
    delivered, dropped = int(words[1]), int(words[3])
    seen, fewest = int(words[5]), int(words[7])
    print(f'\nscan flood: {ADVERTISERS} advertisers for {FLOOD_S:.0f} s: controller sent '
          f'{sent[0]} reports, handler got {delivered}, dropped and counted {dropped}, '
          f'fewest from one advertiser {fewest}')
    assert seen == ADVERTISERS, line
    # About 1,000 a second are sent; well over half must have been sent for a real flood.
    assert sent[0] > ADVERTISERS * FLOOD_S * 25, sent[0]
    assert delivered + dropped == sent[0], (line, sent[0])
    # The slow answer let SLOW_ANSWER_S worth of reports (about 300) in at once.
    assert dropped > 0, line
