"""One lock per project and region in the account: two runs never act on one project at once, from any machine.

The lock is a record created only if absent: an SSM parameter put without Overwrite (beside a local state),
or an S3 object put with If-None-Match: * beside an S3 state
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html). It names its holder (user,
host, pid, command, start) and an ID. It is released when the run ends, also on Ctrl-C, SIGTERM and errors.
A holder that is gone is reported with the command that releases its lock; a lock is never taken over.
"""
from __future__ import annotations

import calendar
import getpass
import json
import os
import signal
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Iterator, Protocol

from botocore.exceptions import ClientError

from provisioner.state.location import S3Location
from provisioner.state.s3 import LOST_RACE, code_of
from provisioner.state.store import StateError, StateInvalid, StateLocked

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class LockHolder:
    id: str
    user: str
    host: str
    pid: int
    command: str
    since: str  # UTC, TIME_FORMAT

    @classmethod
    def this_run(cls, command: str) -> LockHolder:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no login name (a container with an unnamed uid)
            user = str(os.getuid())
        return cls(str(uuid.uuid4()), user, socket.gethostname(), os.getpid(), command,
                   time.strftime(TIME_FORMAT, time.gmtime()))

    def describe(self) -> str:
        return (f"'provision {self.command}' run by {self.user} on {self.host} (pid {self.pid}) since {self.since}, "
                f"lock ID {self.id}")

    def alive_here(self) -> bool:
        """This host's process `pid` still runs (a reused pid looks alive: the safe side)."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def gone_because(self, stale_after: float) -> str | None:
        """Why this holder looks gone, or None."""
        if self.host == socket.gethostname() and not self.alive_here():
            return f"pid {self.pid} no longer runs on {self.host}"
        age = time.time() - calendar.timegm(time.strptime(self.since, TIME_FORMAT))
        if age > stale_after:
            return f"it is {age / 3600:.1f} hours old"
        return None


class LockRecord(Protocol):
    where: str

    def create(self, body: str) -> bool:
        """Create the record with `body` only if there is none; False if one is there."""

    def read(self) -> str | None: ...

    def delete(self) -> None: ...


class SsmLockRecord:
    """An SSM parameter: PutParameter without Overwrite fails with ParameterAlreadyExists if it is there."""

    def __init__(self, ssm, name: str, tags: list[dict[str, str]]):
        self._ssm = ssm
        self.name = name
        self.tags = tags
        self.where = f"the SSM parameter {name}"

    def create(self, body: str) -> bool:
        try:
            self._ssm.put_parameter(Name=self.name, Value=body, Type="String", Tags=self.tags,
                                    Description="provision: the run that holds this project and region")
        except ClientError as exc:
            if code_of(exc) == "ParameterAlreadyExists":
                return False
            raise StateError(f"Failed to take the lock {self.where}: {code_of(exc)}: {exc}") from None
        return True

    def read(self) -> str | None:
        try:
            return self._ssm.get_parameter(Name=self.name)["Parameter"]["Value"]
        except ClientError as exc:
            if code_of(exc) == "ParameterNotFound":
                return None
            raise StateError(f"Failed to read the lock {self.where}: {code_of(exc)}: {exc}") from None

    def delete(self) -> None:
        try:
            self._ssm.delete_parameter(Name=self.name)
        except ClientError as exc:
            if code_of(exc) != "ParameterNotFound":
                raise StateError(f"Failed to release the lock {self.where}: {code_of(exc)}: {exc}") from None


class S3LockRecord:
    """An S3 object beside the state: PutObject with If-None-Match: * fails (412, or 409 in a race) if it is there."""

    def __init__(self, s3, location: S3Location, encryption: dict[str, str]):
        self._s3 = s3
        self.location = location
        self.encryption = encryption
        self.where = location.url

    def create(self, body: str) -> bool:
        try:
            self._s3.put_object(Bucket=self.location.bucket, Key=self.location.key, Body=body.encode(),
                                ContentType="application/json", IfNoneMatch="*", **self.encryption)
        except ClientError as exc:
            if code_of(exc) in LOST_RACE:
                return False
            raise StateError(f"Failed to take the lock {self.where}: {code_of(exc)}: {exc}") from None
        return True

    def read(self) -> str | None:
        try:
            return self._s3.get_object(Bucket=self.location.bucket, Key=self.location.key)["Body"].read().decode()
        except ClientError as exc:
            if code_of(exc) == "NoSuchKey":
                return None
            raise StateError(f"Failed to read the lock {self.where}: {code_of(exc)}: {exc}") from None

    def delete(self) -> None:
        try:
            self._s3.delete_object(Bucket=self.location.bucket, Key=self.location.key)
        except ClientError as exc:
            raise StateError(f"Failed to release the lock {self.where}: {code_of(exc)}: {exc}") from None


class PairedLockRecord:
    """Two records taken as one, with the same body: the account-wide SSM parameter every backend uses, so
    that runs with different state locations still exclude each other, and the object beside an S3 state.
    Taken in order and given back if the second is held; read from whichever holds a body; deleted both."""

    def __init__(self, first: LockRecord, second: LockRecord):
        self.records = (first, second)
        self.where = f"{first.where} and {second.where}"

    def create(self, body: str) -> bool:
        first, second = self.records
        if not first.create(body):
            return False
        if not second.create(body):
            first.delete()
            return False
        return True

    def read(self) -> str | None:
        return next((body for body in (record.read() for record in self.records) if body is not None), None)

    def delete(self) -> None:
        for record in self.records:
            record.delete()


class ProjectLock:
    def __init__(self, record: LockRecord, subject: str, stale_after: float):
        self.record = record
        self.subject = subject  # "project temporal in eu-west-1"
        self.stale_after = stale_after

    def holder(self) -> LockHolder | None:
        body = self.record.read()
        if body is None:
            return None
        try:
            return LockHolder(**json.loads(body))
        except (ValueError, TypeError):
            raise StateError(f"{self.record.where} holds no provision lock record ({body[:80]!r}). If no provision "
                             "run is going, delete it by hand.") from None

    @contextmanager
    def held(self, command: str) -> Iterator[LockHolder]:
        """Hold the lock while `command` runs; refused at once if another run holds it."""
        mine = LockHolder.this_run(command)
        if not self.record.create(json.dumps(asdict(mine))):
            holder = self.holder()
            # A create whose answer was lost and was sent again finds its own record: that is ours.
            if holder != mine:
                raise StateLocked(self._refusal(holder))
        with _sigterm_as_interrupt():
            try:
                yield mine
            finally:
                with _signals_blocked():
                    self._release(mine)

    def _refusal(self, holder: LockHolder | None) -> str:
        if holder is None:
            return f"{self.subject} was locked a moment ago by another run, now finished: run the command again."
        message = f"{self.subject} is locked by {holder.describe()} ({self.record.where})."
        gone = holder.gone_because(self.stale_after)
        if gone:
            return (f"{message} That run looks gone ({gone}). If it is, release its lock with "
                    f"'provision state unlock {holder.id}', then run the command again.")
        return f"{message} Wait for that run to finish, then run the command again."

    def _release(self, mine: LockHolder) -> None:
        # Only our own record: if someone unlocked it and another run took it since, that one stays.
        try:
            if self.holder() == mine:
                self.record.delete()
        except StateError as exc:
            raise StateError(f"{exc}. The lock stays: release it with 'provision state unlock {mine.id}'.") from None

    def unlock(self, lock_id: str) -> LockHolder | None:
        """Release the lock whose ID is `lock_id`, unless its holder still runs on this host; the holder, or None."""
        holder = self.holder()
        if holder is None:
            return None
        if holder.id != lock_id:
            raise StateInvalid(f"{self.subject} is locked by {holder.describe()}, not by lock ID {lock_id}: "
                               "nothing was released.")
        if holder.alive_here():
            raise StateLocked(f"{self.subject} is locked by {holder.describe()}, which still runs on this host: it "
                              "releases the lock when it ends (stop it with Ctrl-C); nothing was released.")
        self.record.delete()
        return holder


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the run as Ctrl-C does (the lock is released on the way out); main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_blocked() -> Iterator[None]:
    """A second Ctrl-C (or SIGTERM) waits until the lock is released rather than leave it behind."""
    stopping = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
