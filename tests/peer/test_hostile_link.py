"""Hostile peers at the link level: a connection flood, and a peer that goes silent in the
middle of a procedure.

test_connection_flood: the attacker connects to the firmware and disconnects again as fast as
it can for UBT_HOSTILE_FLOOD_S seconds (default 10); a witness holds its own connection all
along. Afterwards the firmware reports only the witness's link, its values are unchanged, the
witness still reads, and the heap is flat.

test_silent_peer: the firmware connects to the attacker (firmware central) and starts a GATT
read and pairing; the attacker never answers either. ATT's transaction timeout (30 s, Vol 3
Part F 3.3.3) must end the read with a non-zero status and NimBLE then drops the link; SMP's
timeout (30 s, Vol 3 Part H 3.4) must end the pairing unencrypted. Both timers run at once on
the one link, so the case takes about 30 s.

Run: UBT_FIRMWARE=build/unix/micropython .cache/venv/bin/python -m pytest -q \
         tests/peer/test_hostile_link.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from fwproc import run_async  # noqa: E402
from hostile import ATT_CID, SMP_CID, record, session  # noqa: E402

FLOOD_S = float(os.environ.get('UBT_HOSTILE_FLOOD_S', '10'))


@run_async(FLOOD_S + 90)
async def test_connection_flood(tmp_path):
    async with session(tmp_path) as s:
        deadline = time.monotonic() + FLOOD_S
        connects = failures = 0
        while time.monotonic() < deadline:
            try:
                connection = await s.attacker.connect(s.fw_address, own_address_type=0,
                                                      timeout=2.0)
            except Exception:
                # The firmware may not be advertising again yet: try at once.
                failures += 1
                continue
            connects += 1
            with contextlib.suppress(Exception):
                await connection.disconnect()
        print(f'connection flood: {connects} links in {FLOOD_S:.0f} s, {failures} attempts failed')
        assert connects >= 5, (connects, failures)
        await s.check_intact()
        # The firmware saw each of those links come and go.
        ups = len(s.events_since(0, 1)) - 1   # minus the witness's
        downs = len(s.events_since(0, 2))
        assert ups == downs and ups >= connects, (ups, downs, connects)
        # A normal client still gets in afterwards.
        link = await s.connect()
        assert await link.att(b'\x0a' + s.handles['ro'].to_bytes(2, 'little')) == \
            b'\x0bread-only value'
        await link.close()
        await s.check_intact()
        record('link', 'connection_flood', 'refused')


@run_async(90)
async def test_silent_peer(tmp_path):
    async with session(tmp_path) as s:
        link = await s.accept_from_firmware()
        t0 = time.monotonic()
        mark = len(s.fw.lines)
        assert await s.run(f'read {link.fw_handle} 3') == 'OK read'
        assert await s.run(f'pair {link.fw_handle}') == 'OK pair'
        # Both requests reach the attacker, which answers neither.
        assert (await link.recv(ATT_CID, 2.0))[:1] == b'\x0a'
        assert (await link.recv(SMP_CID, 2.0))[:1] == b'\x01'
        await asyncio.wait_for(link.disconnected.wait(), 40)
        elapsed = time.monotonic() - t0
        await asyncio.sleep(0.5)
        lines = s.fw.lines[mark:]
        read_done = [ln for ln in lines if ln.startswith(f'EV 16 {link.fw_handle} ')]
        enc = [ln for ln in lines if ln.startswith(f'EV 28 {link.fw_handle} ')]
        disc = [ln for ln in lines if ln.startswith(f'EV 8 {link.fw_handle} ')]
        # The read ended with a non-zero status, no pairing encrypted the link, the link went
        # down, and only after the 30 s timers (not before).
        ok = (len(read_done) == 1 and read_done[0].split()[-1] != '0'
              and all(ln.split()[3] == '0' for ln in enc) and len(disc) == 1
              and 29 <= elapsed <= 40)
        record('link', 'silent_peer_att_and_smp_timeout', 'refused' if ok else 'failed')
        assert ok, (elapsed, lines)
        await s.check_intact()
