"""The tool's own waits and retries (provisioner/aws/waiter.py): AWS's cadence by default; a setting that the
tests use to poll the emulator faster scales every interval, and is refused when it is not a fraction."""
from __future__ import annotations

import pytest

from provisioner.aws import waiter
from provisioner.errors import BadInput


def test_without_the_setting_the_tool_polls_at_aws_cadence(monkeypatch):
    monkeypatch.delenv(waiter.POLL_SCALE_SETTING, raising=False)
    assert waiter.current_backoff() == waiter.DEFAULT_BACKOFF == waiter.Backoff(initial=2.0, maximum=20.0, jitter=1.0)


def test_the_setting_scales_every_interval(monkeypatch):
    monkeypatch.setenv(waiter.POLL_SCALE_SETTING, "0.01")
    assert waiter.current_backoff() == waiter.Backoff(initial=0.02, maximum=0.2, jitter=0.01)


def test_the_tests_run_with_the_intervals_scaled_down():
    """tests/conftest.py sets it for the whole run, subprocesses included: no test waits at AWS's cadence."""
    assert waiter.current_backoff().maximum <= 0.2


@pytest.mark.parametrize("value", ["fast", "2", "-0.1", "nan"])
def test_a_setting_that_is_not_a_fraction_is_refused_naming_it(monkeypatch, value):
    monkeypatch.setenv(waiter.POLL_SCALE_SETTING, value)
    with pytest.raises(BadInput, match=rf"PROVISION_POLL_SCALE='{value}' is not a number from 0 to 1"):
        waiter.current_backoff()

