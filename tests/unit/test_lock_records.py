"""The project lock's records (state/lock.py): one run holds a project at a time; a holder that looks gone
is reported with the command that releases its lock, never taken over; a run releases only its own record."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import asdict, replace

import pytest

from provisioner.state import StateError, StateInvalid, StateLocked
from provisioner.state.lock import TIME_FORMAT, LockHolder, ProjectLock

HOUR = 3600
SUBJECT = "project ptest in eu-west-1"


class Record:
    """A lock record kept in memory, with the create-if-absent rule the SSM and S3 records implement."""

    where = "the record in memory"

    def __init__(self, body: str | None = None) -> None:
        self.body = body

    def create(self, body: str) -> bool:
        if self.body is not None:
            return False
        self.body = body
        return True

    def read(self) -> str | None:
        return self.body

    def delete(self) -> None:
        self.body = None


def holder(since_hours_ago: float = 0, host: str | None = None, pid: int | None = None) -> LockHolder:
    since = time.strftime(TIME_FORMAT, time.gmtime(time.time() - since_hours_ago * HOUR))
    return LockHolder("lock-1", "alice", host or socket.gethostname(), pid or os.getpid(), "scale", since)


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def body(of: LockHolder) -> str:
    return json.dumps(asdict(of))


def test_a_run_holds_the_lock_while_it_runs_and_releases_it_after():
    record = Record()
    lock = ProjectLock(record, SUBJECT, stale_after=12 * HOUR)
    with lock.held("up") as mine:
        assert lock.holder() == mine and mine.command == "up" and mine.pid == os.getpid()
    assert record.body is None


def test_the_lock_is_released_when_the_run_fails():
    record = Record()
    with pytest.raises(RuntimeError), ProjectLock(record, SUBJECT, 12 * HOUR).held("up"):
        raise RuntimeError("the run failed")
    assert record.body is None


def test_a_second_run_is_refused_naming_the_holder_and_to_wait():
    other = holder(host="alices-laptop")
    record = Record(body(other))
    with pytest.raises(StateLocked) as refused, ProjectLock(record, SUBJECT, 12 * HOUR).held("up"):
        pytest.fail("ran under another run's lock")
    assert "'provision scale' run by alice on alices-laptop" in str(refused.value)
    assert "Wait for that run to finish" in str(refused.value)
    assert record.body == body(other)


def test_a_holder_on_this_host_whose_process_is_gone_is_reported_with_the_unlock_command():
    gone = holder(pid=dead_pid())
    record = Record(body(gone))
    with pytest.raises(StateLocked) as refused, ProjectLock(record, SUBJECT, 12 * HOUR).held("up"):
        pytest.fail("took over a lock")
    assert f"pid {gone.pid} no longer runs" in str(refused.value)
    assert "provision state unlock lock-1" in str(refused.value)
    assert record.body == body(gone), "a lock is never taken over"


def test_a_holder_older_than_the_stale_setting_is_reported_stale_never_taken_over():
    old = holder(since_hours_ago=13, host="alices-laptop")
    record = Record(body(old))
    with pytest.raises(StateLocked) as refused, ProjectLock(record, SUBJECT, stale_after=12 * HOUR).held("up"):
        pytest.fail("took over a lock")
    assert "it is 13.0 hours old" in str(refused.value) and "provision state unlock lock-1" in str(refused.value)
    assert record.body == body(old)


def test_a_foreign_holder_younger_than_the_stale_setting_does_not_look_gone():
    assert holder(since_hours_ago=11, host="alices-laptop").gone_because(12 * HOUR) is None
    assert holder(since_hours_ago=11).gone_because(12 * HOUR) is None  # this very process


def test_a_holder_on_another_host_is_never_judged_by_a_local_pid():
    assert not holder(host="alices-laptop", pid=dead_pid()).alive_here()
    assert holder(host="alices-laptop", pid=dead_pid()).gone_because(12 * HOUR) is None


def test_a_create_whose_answer_was_lost_finds_its_own_record_and_goes_on():
    record = Record()
    lock = ProjectLock(record, SUBJECT, 12 * HOUR)

    class AnswerLost(Record):
        def create(self, body: str) -> bool:  # the first create landed; the resend finds it there
            record.create(body)
            return False

        def read(self):
            return record.read()

        def delete(self):
            record.delete()

    with ProjectLock(AnswerLost(), SUBJECT, 12 * HOUR).held("up") as mine:
        assert lock.holder() == mine
    assert record.body is None


def test_a_run_releases_only_its_own_record():
    record = Record()
    lock = ProjectLock(record, SUBJECT, 12 * HOUR)
    successor = holder(host="bobs-laptop")
    with lock.held("up"):
        record.body = body(successor)  # someone released it by hand meanwhile, and another run took the project
    assert record.body == body(successor)


def test_unlock_releases_a_gone_holders_lock_by_its_id():
    gone = holder(pid=dead_pid())
    record = Record(body(gone))
    assert ProjectLock(record, SUBJECT, 12 * HOUR).unlock("lock-1") == gone
    assert record.body is None


def test_unlock_with_another_id_releases_nothing():
    record = Record(body(holder(host="alices-laptop")))
    with pytest.raises(StateInvalid, match="not by lock ID lock-2: nothing was released"):
        ProjectLock(record, SUBJECT, 12 * HOUR).unlock("lock-2")
    assert record.body is not None


def test_unlock_never_releases_a_holder_still_running_on_this_host():
    alive = holder()
    record = Record(body(alive))
    with pytest.raises(StateLocked, match="still runs on this host"):
        ProjectLock(record, SUBJECT, 12 * HOUR).unlock("lock-1")
    assert record.body == body(alive)


def test_unlock_without_a_lock_is_none():
    assert ProjectLock(Record(), SUBJECT, 12 * HOUR).unlock("lock-1") is None


@pytest.mark.parametrize("found", ["not json", json.dumps({"id": "x"}), json.dumps(["a", "list"])])
def test_a_record_that_is_no_lock_is_reported_and_left_alone(found):
    record = Record(found)
    with pytest.raises(StateError, match="holds no provision lock record"):
        ProjectLock(record, SUBJECT, 12 * HOUR).holder()
    assert record.body == found


def test_the_holders_own_description_names_who_where_and_since():
    described = replace(holder(host="alices-laptop", pid=4242), since="2026-01-01T00:00:00Z").describe()
    assert described == ("'provision scale' run by alice on alices-laptop (pid 4242) since 2026-01-01T00:00:00Z, "
                         "lock ID lock-1")
