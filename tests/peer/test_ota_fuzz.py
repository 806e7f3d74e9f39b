"""The over-the-air fuzzer (tools/ota_fuzz.py) against the firmware, briefly.

- A fixed-seed run of 35 s: a Bumble attacker on a virtual link sends generated ATT, LE
  signalling, LE credit-based channel, SMP, unknown-CID and random PDUs to the firmware running
  tools/ota_fuzz_target.py. It must end with no crash (no exit, no signal, no hang, no
  Traceback), the firmware alive and answering a GATT read of its probe characteristic, at
  least a floor of executions with every category used, a channel opened to the listener, and
  at least one reconnection (the attacker drops the link itself every 8 s; the firmware must
  advertise again).
- The NimBLE bug the fuzzer found, in two forms (tests/peer/ota_fuzz_findings/: two LE
  credit indications that each overflow 65535 credits, or two K-frames whose SDU length
  passes the MTU, make NimBLE start two disconnections of one channel; the second
  Disconnection Response freed the channel again, SIGSEGV), replayed exactly as found: the
  firmware must survive (nimble/csrc/ubt_l2cap_sig.c).

Run: .cache/venv/bin/python -m pytest -q tests/peer/test_ota_fuzz.py   (needs build/unix/micropython)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from fwproc import FIRMWARE  # noqa: E402

TOOL = os.path.join(ROOT, 'tools', 'ota_fuzz.py')
# NimBLE's double disconnect, started by credit overflows and by SDU lengths past the MTU.
KNOWN_BUGS = [os.path.join(HERE, 'ota_fuzz_findings', name) for name in
              ('nimble-double-disconnect.json', 'nimble-double-disconnect-sdu.json')]
SECONDS = 35
# About 250 executions a second on an idle machine; a busy one still makes far more than this.
MIN_EXECUTIONS = 1500


def run_tool(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TOOL, '--firmware', FIRMWARE, *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_short_fixed_seed_run(tmp_path):
    report_path = tmp_path / 'report.json'
    proc = run_tool('--seconds', str(SECONDS), '--seed', '7', '--reconnect-every', '8',
                    '--report', str(report_path), '--findings', str(tmp_path / 'findings'),
                    timeout=SECONDS + 120)
    assert report_path.exists(), proc.stdout + proc.stderr
    report = json.loads(report_path.read_text())
    summary = json.dumps(report, indent=1) + '\n' + proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report['crashes'] == 0 and report['findings'] == [], summary
    assert not os.path.exists(tmp_path / 'findings'), summary
    assert report['firmware_alive_at_end'], summary
    assert proc.returncode == 0, summary
    assert report['executions'] >= MIN_EXECUTIONS, summary
    assert set(report['per_category']) == {'att', 'l2cap_sig', 'le_coc', 'smp', 'unknown_cid',
                                           'raw'}, summary
    assert report['coc_opens'].get('ok', 0) >= 1, summary
    # Reconnections: the firmware advertised again after every drop.
    assert report['links'] >= 2 and report['disconnects'] >= 1, summary
    assert report['probes'] >= 2, summary
    # The firmware answered: heartbeats with its free heap at both ends.
    assert report['firmware_mem_start'] and report['firmware_mem_end'], summary
    # And it got plenty to chew on: GATT writes, reads and channel data reached the script.
    counts = report['firmware_output_counts']
    for event in ('connect', 'disconnect', 'write', 'read_request', 'l2cap_accept',
                  'l2cap_recv'):
        assert counts.get(event, 0) >= 1, (event, summary)


@pytest.mark.parametrize('finding', KNOWN_BUGS, ids=os.path.basename)
def test_double_disconnect_finding_replayed(finding):
    proc = run_tool('--replay', finding, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and 'firmware survived the replay' in out, out
