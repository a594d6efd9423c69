"""The broker guard of `atp up`: when it stops the simulator, and when the stack."""

from __future__ import annotations

import os

import pytest

from atp.tools.up import GO_ON, STOP_SIMULATOR, STOP_STACK, BrokerGuard, rss_mb


@pytest.mark.parametrize(
    ("used", "simulating", "action"),
    [
        (100, True, GO_ON),
        (1599, True, GO_ON),
        (1600, True, STOP_SIMULATOR),  # 80 % of 2,000
        (1600, False, GO_ON),  # already stopped: the rest goes on
        (1999, False, GO_ON),
        (2000, False, STOP_STACK),
        (2500, True, STOP_STACK),
    ],
)
def test_the_guard_stops_the_simulator_first_and_the_stack_at_the_limit(used, simulating, action):
    assert BrokerGuard(2000).check(used, simulating) == action


def test_rss_is_read_for_a_live_process_and_none_for_a_gone_one():
    assert (rss_mb(os.getpid()) or 0) > 1
    assert rss_mb(2**22 + 12345) is None
