"""bench/benchlib.py's Attempts: a failed measurement is retried within a bound, every failed
attempt is recorded per side, and a round is lost only when all of its attempts fail.

Run: .cache/venv/bin/python -m pytest -q tests/bench
"""

import asyncio
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'bench'))

from benchlib import Attempts, BenchError  # noqa: E402


def flaky(failures):
    """A measurement that raises BenchError `failures` times, then returns how often it ran."""
    calls = []

    def measure():
        calls.append(1)
        if len(calls) <= failures:
            raise BenchError(f'attempt {len(calls)} broke\nmore output')
        return len(calls)
    return measure


def test_retried_until_it_succeeds_and_every_failure_is_kept():
    a = Attempts(3)
    assert a.run_sync('ours', 'perf_l2cap', 1, flaky(2)) == 3
    assert a.run_sync('C', 'perf_l2cap', 1, flaky(0)) == 1
    assert [(f.side, f.what, f.round, f.attempt) for f in a.failures] == [
        ('ours', 'perf_l2cap', 1, 1), ('ours', 'perf_l2cap', 1, 2)]
    assert 'attempt 2 broke' in a.failures[1].error
    assert a.by_side() == {'ours': {'failed_attempts': 2, 'lost_rounds': 0},
                           'C': {'failed_attempts': 0, 'lost_rounds': 0}}
    assert a.lost == []


def test_a_round_is_lost_only_after_the_last_attempt():
    a = Attempts(2)
    assert a.run_sync('C', 'heap', 4, flaky(5)) is None
    assert a.lost == [('C', 'heap', 4)]
    assert a.by_side()['C'] == {'failed_attempts': 2, 'lost_rounds': 1}
    j = a.to_json()
    assert j['tries'] == 2 and j['lost'] == [{'side': 'C', 'what': 'heap', 'round': 4}]
    assert len(j['failures']) == 2


def test_async_measurements_are_retried_too():
    a = Attempts(3)
    m = flaky(1)

    async def measure():
        return m()
    assert asyncio.run(a.run('ours', 'notify n=100', 2, measure)) == 2
    assert a.by_side()['ours'] == {'failed_attempts': 1, 'lost_rounds': 0}


def test_other_errors_are_not_swallowed():
    # Only a failed measurement is retried; a bug in the benchmark itself stops it.
    a = Attempts(3)

    def broken():
        raise KeyError('bug')
    with pytest.raises(KeyError):
        a.run_sync('ours', 'x', 1, broken)
    assert a.failures == []


def test_at_least_one_attempt():
    with pytest.raises(ValueError):
        Attempts(0)
