"""Shared by the peer tests: the firmware must exist. A missing build fails every test
instead of skipping it, so a broken build can never pass as "all skipped"."""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIRMWARE = os.path.join(ROOT, 'build', 'unix', 'micropython')


@pytest.fixture(autouse=True)
def firmware_is_built():
    assert os.path.exists(FIRMWARE), 'build the firmware first (make unix)'
