"""Every wait and every eventual-consistency retry goes through here (tenacity).

Throttling and 5xx are botocore's job (standard retry mode, see session.py);
this module handles the two things botocore cannot know: waiting for a
resource to reach a state, and retrying a call that fails only because AWS has
not yet caught up with an earlier one (an IAM role "cannot be assumed" for a
few seconds after it is created, an EIP not yet visible, ...).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Iterable, TypeVar

from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)
from tenacity.nap import sleep as _sleep

from provisioner.errors import AmbiguousCreate, BadInput, ProvisionError, client_error, error_code

T = TypeVar("T")


# Every interval of this module (polls, eventual-consistency retries, the look again after a lost answer)
# is multiplied by this setting, read at each wait so that child processes (the CLI run by a test) inherit
# it. Unset, it is 1: AWS wants the real intervals. The tests set it near zero (tests/conftest.py): the
# emulator answers at once, and waiting on it seconds at a time only slows them.
POLL_SCALE_SETTING = "PROVISION_POLL_SCALE"


@dataclass(frozen=True)
class Backoff:
    """Polling cadence: a first wait, doubled each time up to a maximum, plus up to `jitter` at random."""

    initial: float = 2.0
    maximum: float = 20.0
    jitter: float = 1.0

    def scaled(self, factor: float) -> Backoff:
        return Backoff(self.initial * factor, self.maximum * factor, self.jitter * factor)


DEFAULT_BACKOFF = Backoff()
# For a local process (the emulator starting or exiting): it answers in milliseconds, not AWS's seconds, and a
# look (a connect on loopback, a /proc read) costs next to nothing, so it is looked at often.
LOCAL_BACKOFF = Backoff(initial=0.02, maximum=0.1, jitter=0.01)
_backoff = DEFAULT_BACKOFF


def set_backoff(backoff: Backoff) -> None:
    """Another cadence for this process (POLL_SCALE_SETTING still applies to it)."""
    global _backoff
    _backoff = backoff


def poll_scale() -> float:
    """POLL_SCALE_SETTING: a number from 0 to 1, 1 when unset."""
    raw = os.environ.get(POLL_SCALE_SETTING, "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        scale = math.nan
    if not 0 <= scale <= 1:
        raise BadInput(f"{POLL_SCALE_SETTING}={raw!r} is not a number from 0 to 1. Unset it (AWS needs the "
                       "real intervals), or give a fraction like 0.01 to poll the embedded emulator faster.")
    return scale


def current_backoff() -> Backoff:
    """The cadence waits and retries use now: the process's, times POLL_SCALE_SETTING."""
    return _backoff.scaled(poll_scale())


class WaitFailed(ProvisionError):
    """The resource reached a state it will not leave (failed, deleted, ...)."""


class TimedOut(ProvisionError):
    """The wait ran out of time; the resource may still get there."""


def pause(seconds: float) -> None:
    """A fixed delay, for the one place that needs one rather than a wait on a state: the emulator's
    simulated network latency (provisioner/emulator/patches.py call_latency). Same sleep tenacity uses."""
    _sleep(seconds)


def _wait(backoff: Backoff | None = None):
    backoff = backoff or current_backoff()
    return wait_exponential_jitter(multiplier=backoff.initial, max=backoff.maximum, jitter=backoff.jitter)


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    on_poll: Callable[[int], None] | None = None,
    backoff: Backoff | None = None,
) -> T:
    """Call `probe` until it returns something other than None, within `timeout` seconds (polled at
    `backoff`, else the cadence set for AWS).

    `probe` raises WaitFailed for a terminal bad state; any other error ends the wait at once
    (a throttled describe is retried inside botocore, never taken as success).
    """
    attempts = 0

    def counted() -> T | None:
        nonlocal attempts
        attempts += 1
        if on_poll:
            on_poll(attempts)
        return probe()

    try:
        found = Retrying(
            retry=retry_if_result(lambda result: result is None),
            stop=stop_after_delay(timeout),
            wait=_wait(backoff),
            reraise=True,
        )(counted)
    except RetryError:
        found = None  # still None when the time ran out
    if found is None:
        raise TimedOut(
            f"Timed out after {timeout:.0f}s waiting for {what}. It may still finish: run the command "
            "again to resume, or raise the timeout under [timeouts] in the config."
        )
    return found


def look_a_few_times(lookup: Callable[[], T | None], attempts: int = 3) -> T | None:
    """`lookup` until it finds something, a few times with backoff: reads lag a moment behind writes."""
    try:
        return Retrying(
            retry=retry_if_result(lambda result: result is None),
            stop=stop_after_attempt(attempts),
            wait=_wait(),
            reraise=True,
        )(lookup)
    except RetryError:
        return None


def call_with_retry(
    fn: Callable[[], T],
    retry_codes: Iterable[str],
    timeout: float,
    retry_messages: Iterable[str] = (),
) -> T:
    """Run `fn`, retrying while it fails with one of `retry_codes` (eventual consistency).

    When `retry_messages` is given, an error with a listed code is retried only if its
    message contains one of them (IAM's InvalidParameterValue is also used for real mistakes).
    """
    codes = frozenset(retry_codes)
    messages = tuple(m.lower() for m in retry_messages)

    def transient(exc: BaseException) -> bool:
        cause = client_error(exc)
        if cause is None or error_code(cause) not in codes:
            return False
        if not messages:
            return True
        text = cause.response.get("Error", {}).get("Message", "").lower()
        return any(m in text for m in messages)

    return Retrying(
        retry=retry_if_exception(transient),
        stop=stop_after_delay(timeout),
        wait=_wait(),
        reraise=True,
    )(fn)


def create_without_twins(create: Callable[[], T], lookup: Callable[[], T | None], what: str, attempts: int = 3) -> T:
    """`create`; if its answer is lost (AmbiguousCreate), `lookup` before any second attempt.

    AWS may have acted on a call whose answer never came back. A resend of a call without an
    idempotency token would make a twin, so what the lost call may have made is looked for first
    (by tags or name, a few times, as reads lag behind writes) and adopted if it is there.
    """
    for _ in range(attempts):
        try:
            return create()
        except AmbiguousCreate:
            found = look_a_few_times(lookup)
            if found is not None:
                return found
    raise ProvisionError(
        f"Failed to create {what}: {attempts} attempts got no answer, and it is not there. "
        "Check the network to AWS and run the command again."
    )
