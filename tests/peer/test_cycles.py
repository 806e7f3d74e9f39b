"""Start/stop cycles with services and a connection each time leak nothing.

Each cycle the firmware starts the stack, registers a service, connects to a Bumble device
that keeps advertising, reads the device's GAP name over GATT, and stops the stack with the
link still up. The GC heap in use (after `gc.collect()`) and the process RSS after 200 more
cycles must be where they were after the first hundred, give or take a small bound.

Run: .cache/venv/bin/python -m pytest tests/peer
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'harness'))

from bumble.hci import OwnAddressType  # noqa: E402

from vlink import VLink  # noqa: E402

from fwproc import Firmware, bumble_device, run_async  # noqa: E402

# The C allocator's arenas settle over the first hundred or so cycles (RSS grows ~130 kB, then
# stays put to 1000 cycles); 200 cycles after that must not grow at all beyond noise.
WARM_UP = 100
CYCLES = WARM_UP + 200
HEAP_BOUND = 256  # bytes of GC heap
RSS_BOUND_KB = 64

SCRIPT = r'''
import bluetooth, gc, sys, time

CYCLES, WARM_UP = int(sys.argv[2]), int(sys.argv[3])
peer = bytes(int(x, 16) for x in sys.argv[1].split(':'))
ble = bluetooth.BLE()
state = {}

def irq(event, data):
    if event == 7:
        state['conn'] = data[0]
    elif event == 15:
        state['name'] = bytes(data[2])
    elif event == 16:
        state['read_done'] = True

def wait(key):
    t0 = time.ticks_ms()
    while key not in state:
        if time.ticks_diff(time.ticks_ms(), t0) > 5000:
            print('timeout waiting for', key, state); raise SystemExit(1)
        time.sleep_ms(2)
    return state[key]

def rss_kb():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])

SERVICE = (bluetooth.UUID('7e1a0200-3c5d-4b6e-8f70-0123456789ab'),
           ((bluetooth.UUID('7e1a0201-3c5d-4b6e-8f70-0123456789ab'),
             bluetooth.FLAG_READ | bluetooth.FLAG_WRITE | bluetooth.FLAG_NOTIFY),))
ble.irq(irq)
for cycle in range(CYCLES):
    state.clear()
    ble.active(True)
    ((handle,),) = ble.gatts_register_services((SERVICE,))
    ble.gatts_write(handle, b'x' * 20)
    ble.gap_connect(0, peer)
    conn = wait('conn')
    ble.gattc_read(conn, 3)  # the GAP Device Name of a Bumble device
    wait('read_done')
    if not state.get('name'):
        print('no name read'); raise SystemExit(1)
    ble.active(False)
    if (cycle + 1) % 50 == 0:
        gc.collect()
        print('after', cycle + 1, 'heap', gc.mem_alloc(), 'rss', rss_kb())
print('done')
'''


@run_async(240)
async def test_start_stop_cycles_leak_nothing(tmp_path):
    script = tmp_path / 'cycles.py'
    script.write_text(SCRIPT)
    fw = Firmware()
    async with VLink(count=2) as link:
        async with bumble_device(link) as dev:
            await dev.start_advertising(auto_restart=True, own_address_type=OwnAddressType.PUBLIC,
                                        advertising_interval_min=20, advertising_interval_max=20)
            peer = str(link.controllers[1].public_address).split('/')[0]
            await fw.start(str(script), link.paths[0], peer, str(CYCLES), str(WARM_UP))
            first = (await fw.expect(f'after {WARM_UP} ', 60)).split()
            last = (await fw.expect(f'after {CYCLES} ', 200)).split()
            await fw.expect('done')
            assert await fw.stop() == 0
    heap = (int(first[3]), int(last[3]))
    rss = (int(first[5]), int(last[5]))
    trend = '\n'.join(line for line in fw.lines if line.startswith('after'))
    print(f'GC heap in use {heap[0]} -> {heap[1]} bytes, RSS {rss[0]} -> {rss[1]} kB')
    assert heap[1] - heap[0] <= HEAP_BOUND, trend
    assert rss[1] - rss[0] <= RSS_BOUND_KB, trend
