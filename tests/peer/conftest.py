"""Shared by the peer tests: the firmware must exist. A missing build fails every test
instead of skipping it, so a broken build can never pass as "all skipped"."""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The one fwproc.py runs: UBT_FIRMWARE if set.
FIRMWARE = os.environ.get('UBT_FIRMWARE', os.path.join(ROOT, 'build', 'unix', 'micropython'))


@pytest.fixture(autouse=True)
def firmware_is_built():
    assert os.path.exists(FIRMWARE), 'build the firmware first (make unix)'


def pytest_sessionfinish(session, exitstatus):
    """After the hostile-peer tests (tests/peer/test_hostile_*.py): their cases, counted per
    category and verdict, in build/hostile-summary.json."""
    import json
    import sys

    hostile = sys.modules.get('hostile')
    if hostile is None or not hostile.RESULTS:
        return
    categories: dict = {}
    for category, _case, verdict in hostile.RESULTS:
        counts = categories.setdefault(category, {'tried': 0, 'refused': 0, 'deviation': 0,
                                                  'failed': 0})
        counts['tried'] += 1
        counts[verdict] += 1
    summary = {
        'tried': len(hostile.RESULTS),
        'refused': sum(c['refused'] for c in categories.values()),
        'deviation': sum(c['deviation'] for c in categories.values()),
        'failed': sum(c['failed'] for c in categories.values()),
        'categories': categories,
        'cases': [{'category': c, 'case': n, 'verdict': v} for c, n, v in hostile.RESULTS],
    }
    os.makedirs(os.path.join(ROOT, 'build'), exist_ok=True)
    with open(os.path.join(ROOT, 'build', 'hostile-summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
