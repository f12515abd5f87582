"""The local JSON state: resource IDs and attributes, written atomically.

Modelled on Terraform's state handling, with its gaps closed: a lineage that
refuses a foreign file, a serial bumped only on change, one backup per run
before the first change, temp file + fsync + rename (never a torn file), mode
0600, and an exclusive lock that names its holder.
"""
from __future__ import annotations

import copy
import fcntl
import json
import os
import socket
import stat
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SCHEMA_VERSION = 1
# A state of the largest stack is tens of kilobytes: anything near this is not a state, and a device such as
# /dev/zero would otherwise be read forever.
MAX_STATE_BYTES = 16 * 1024 * 1024

# Keys whose values must never be written: the state holds IDs, not credentials.
SECRET_MARKERS = ("password", "secret_string", "secretstring", "token", "credential", "private_key")


class StateError(Exception):
    """The state file cannot be used as it is; the message says why and what to do."""


class StateInvalid(StateError):
    """The state path or file is not usable input (exit 2): not JSON, not a state, another account's."""


class StateLocked(StateError):
    pass


class Record(BaseModel):
    """One resource: its ID, its kind (what `status` and the destroy by kind look it up as), and whatever
    attributes the step recorded beside it."""

    model_config = ConfigDict(extra="allow", strict=True)
    id: str
    kind: str


class StateDocument(BaseModel):
    """The shape of a state file, checked on every read."""

    model_config = ConfigDict(extra="forbid", strict=True)
    version: Literal[1]
    lineage: str = Field(min_length=1)
    serial: int = Field(ge=0)
    project: str
    region: str
    account: str | None = None
    resources: dict[str, dict[str, Record]]
    settings: dict[str, Any]


class SchemaSetting(BaseModel):
    """What `provision schema` records once both schema tasks succeeded (provisioner/commands/schema.py)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    server_version: str
    visibility_index: str
    at: str
    # The DSQL schema version the task applied (absent in states from before `provision upgrade`).
    dsql_schema_version: str | None = None


class ReleaseSetting(BaseModel):
    """The Temporal release every role runs, recorded by `up` on a staged stack and by `provision upgrade` once
    every role completed (provisioner/temporal/release.py)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    server_version: str
    server_image: str
    admin_tools_image: str


class UpgradeSetting(BaseModel):
    """An upgrade under way (provisioner/commands/upgrade.py): where it goes and whether its schema task is done."""

    model_config = ConfigDict(extra="forbid", strict=True)
    server_version: str
    server_image: str
    admin_tools_image: str
    schema_done: bool


class RestoreSetting(BaseModel):
    """How far `provision restore` got (provisioner/commands/backup.py): a rerun carries on from here."""

    model_config = ConfigDict(extra="forbid", strict=True)
    recovery_point: str
    old_cluster: str
    counts: dict[str, int]
    phase: str
    job_id: str = ""
    new_cluster: str = ""


class InstanceTypeSetting(BaseModel):
    """What the capacity step checked of an instance type (provisioner/placement_check.py, CATALOG_SETTING): the
    facts DescribeInstanceTypes gives, fixed for a type, and the zones DescribeInstanceTypeOfferings found it
    offered in. A later run reads them here instead of asking again while the type and zones are the same."""

    model_config = ConfigDict(extra="forbid", strict=True)
    architectures: list[str]
    vcpus: int = Field(gt=0)
    memory_mib: int = Field(gt=0)
    network_interfaces: int = Field(gt=0)
    offered_in: list[str]


class RecordedSettings(BaseModel):
    """The settings runs record beside the resources. The state is input to the next run (a later `up` applies
    the recorded counts), so they are checked as strictly as the config: a hand-edited state is refused by key."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
    service_counts: dict[str, int] = Field(default_factory=dict)  # steps/ecs_services.py COUNTS_SETTING
    availability_zones: list[str] = Field(default_factory=list)  # provisioner/zones.py
    schema_task: SchemaSetting | None = Field(None, alias="schema")
    temporal_release: ReleaseSetting | None = None
    upgrade: UpgradeSetting | None = None
    restore: RestoreSetting | None = None  # provisioner/commands/backup.py RESTORE_SETTING
    instance_types: dict[str, InstanceTypeSetting] = Field(default_factory=dict)  # placement_check.CATALOG_SETTING

    @field_validator("service_counts")
    @classmethod
    def _counts(cls, value: dict[str, int]) -> dict[str, int]:
        from provisioner.commands.scale import MAX_COUNT
        from provisioner.ecs_layout import SERVICES

        for service, count in value.items():
            if service not in SERVICES:
                raise ValueError(f"names unknown service {service!r} (services: {', '.join(SERVICES)})")
            if not 0 <= count <= MAX_COUNT:
                raise ValueError(f"{service} = {count}: a count must be a whole number from 0 to {MAX_COUNT}")
        return value

    @field_validator("availability_zones")
    @classmethod
    def _zones(cls, value: list[str]) -> list[str]:
        from provisioner.config import check_zone_names

        return check_zone_names(value)


def settings_problem(settings: dict) -> str | None:
    """What is wrong with a state's recorded settings, naming the setting, or None."""
    try:
        RecordedSettings.model_validate(settings)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            return f"settings.{loc}: not a setting this tool records"
        return f"settings.{loc}: {first['msg'].removeprefix('Value error, ')}"
    return None


def empty_document(project: str, region: str, account: str | None) -> dict:
    return {
        "version": SCHEMA_VERSION,
        "lineage": str(uuid.uuid4()),
        "serial": 0,
        "project": project,
        "region": region,
        "account": account,
        "resources": {},
        "settings": {},
    }


class RecordedState:
    """The state document in memory, with the reads and writes steps use; subclasses store it somewhere."""

    def __init__(self, project: str, region: str, account: str | None, steps: Collection[str] = ()):
        self.project = project
        self.region = region
        self.account = account
        # The pipeline's step names: a section named otherwise is refused at load (empty: not checked).
        self.steps = frozenset(steps)
        self._data: dict = {}
        self._mutex = threading.RLock()

    @property
    def where(self) -> str:
        """The state's location, as the user names it."""
        raise NotImplementedError

    def locked(self, operation: str):
        """A context manager: the state read and checked, and held as the store needs while `operation` runs."""
        raise NotImplementedError

    def _commit(self, updated: dict, change: Callable[[dict], None]) -> dict:
        """Write `updated` (the state with `change` applied) and return what is now the state."""
        raise NotImplementedError

    def checked(self, payload: bytes, where: str, recovery: str) -> dict:
        """A state document read from `where`, checked: JSON, its shape, and this project, region and account."""
        if len(payload) > MAX_STATE_BYTES:
            raise StateInvalid(f"{where} is over {MAX_STATE_BYTES // 2**20} MiB: not a provision state. {recovery}")
        try:
            data = json.loads(payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateInvalid(f"{where} is not valid JSON ({exc}). {recovery}") from None
        except RecursionError:
            raise StateInvalid(f"{where} nests too deeply to be a provision state. {recovery}") from None
        if isinstance(data, dict) and "version" in data and data["version"] != SCHEMA_VERSION:
            raise StateInvalid(f"{where} has schema version {data['version']!r}; this tool reads {SCHEMA_VERSION}.")
        try:
            document = StateDocument.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(part) for part in first["loc"]) or "the top level"
            if first["type"] == "missing" and first["loc"][0] == "resources" and len(first["loc"]) == 4:
                _, step, key, attribute = first["loc"]
                raise StateInvalid(
                    f"{where}: resources.{step}.{key} has no {attribute!r}, which every record the tool writes has "
                    f"(the state was edited by hand). {recovery} Or remove that record: the next 'provision up' finds "
                    "its resource by its tags, as after a lost state."
                ) from None
            raise StateInvalid(f"{where} is not a provision state ({loc}: {first['msg']}). {recovery}") from None
        unknown = sorted(set(document.resources) - self.steps) if self.steps else []
        if unknown:
            raise StateInvalid(
                f"{where} records resources under {', '.join(map(repr, unknown))}, which is no step of this tool "
                f"(its steps: {', '.join(sorted(self.steps))}): it was written by another version of provision, or "
                "edited by hand. Use the version that wrote it, or fix the section's name."
            )
        problem = settings_problem(document.settings)
        if problem:
            raise StateInvalid(
                f"{where}: {problem}. The state is input to the next run: fix or remove that setting in it "
                "('provision scale' records the counts, 'up' the zones, 'provision schema' the schema)."
            )
        if (document.project, document.region) != (self.project, self.region):
            raise StateInvalid(
                f"{where} belongs to project {document.project!r} in {document.region!r}, not "
                f"{self.project!r} in {self.region!r}. Pass the right --state or --config."
            )
        if document.account and self.account and document.account != self.account:
            raise StateInvalid(
                f"{where} belongs to AWS account {document.account}, but these credentials are for account "
                f"{self.account}. Use the credentials (AWS_PROFILE) of account {document.account}, or another "
                "--state for this account."
            )
        data = document.model_dump(mode="json")
        if self.account and not document.account:
            data["account"] = self.account  # a state from before accounts were recorded
        return data

    def payload(self) -> bytes:
        """The state as it is written."""
        with self._mutex:
            return serialized(self._data)

    # -- reading -------------------------------------------------------------

    @property
    def lineage(self) -> str:
        return self._data["lineage"]

    @property
    def serial(self) -> int:
        return self._data["serial"]

    def get(self, step: str, key: str) -> dict | None:
        with self._mutex:
            record = self._data["resources"].get(step, {}).get(key)
            return copy.deepcopy(record)

    def id_of(self, step: str, key: str) -> str | None:
        record = self.get(step, key)
        return record["id"] if record else None

    def step_records(self, step: str) -> dict[str, dict]:
        with self._mutex:
            return copy.deepcopy(self._data["resources"].get(step, {}))

    def ids_of_kind(self, kind: str) -> list[str]:
        """Every recorded ID of one resource kind, whichever step recorded it, sorted."""
        with self._mutex:
            return sorted(r["id"] for records in self._data["resources"].values() for r in records.values()
                          if r.get("kind") == kind)

    def setting(self, name: str, default: Any = None) -> Any:
        with self._mutex:
            return copy.deepcopy(self._data["settings"].get(name, default))

    # -- writing ---------------------------------------------------------------

    def put(self, step: str, key: str, resource_id: str, kind: str, **attributes: Any) -> None:
        """Record a resource of `kind`; written at once so a crash cannot lose it."""
        _refuse_secrets(attributes)
        record = {"id": resource_id, "kind": kind, **attributes}

        def add(data: dict) -> None:
            data["resources"].setdefault(step, {})[key] = copy.deepcopy(record)

        self._update(add)

    def forget(self, step: str, key: str) -> None:
        def drop(data: dict) -> None:
            records = data["resources"].get(step, {})
            if records.pop(key, None) is not None and not records:
                del data["resources"][step]

        self._update(drop)

    def set_setting(self, name: str, value: Any) -> None:
        _refuse_secrets({name: value})

        def assign(data: dict) -> None:
            data["settings"][name] = copy.deepcopy(value)

        self._update(assign)

    def reset_if_empty(self) -> bool:
        """After a full destroy: start a new lineage, so client tokens of the old world are never reused."""
        lineage = str(uuid.uuid4())

        def renew(data: dict) -> None:
            if not data["resources"]:  # checked again on a re-read: another writer's records are never dropped
                data.update(lineage=lineage, settings={})

        with self._mutex:
            if self._data["resources"]:
                return False
            self._update(renew)
            return True

    def replace_with(self, document: dict) -> None:
        """Take another state's lineage, resources and settings (push, restore): a new write, the serial moves on."""
        def take(data: dict) -> None:
            data.update(copy.deepcopy({name: document[name] for name in ("lineage", "resources", "settings")}))

        self._update(take)

    def _update(self, change: Callable[[dict], None]) -> None:
        """Apply `change` to the state and write it, unless it changes nothing (the serial moves only on change)."""
        with self._mutex:
            updated = copy.deepcopy(self._data)
            change(updated)
            if updated != self._data:
                self._data = self._commit(updated, change)


class StateStore(RecordedState):
    """One state file, held under an exclusive lock for the whole run."""

    def __init__(self, path: Path, project: str, region: str, account: str | None = None, steps: Collection[str] = ()):
        if not path.name or path.is_dir():
            raise StateInvalid(f"--state {str(path)!r}: is a directory, not a state file; give a file path like "
                               f".provision/{project}-{region}.json")
        super().__init__(project, region, account, steps)
        self.path = path
        self.backup_path = path.with_name(path.name + ".backup")
        self.lock_path = path.with_name(path.name + ".lock")
        self._backed_up = False
        self._lock_fd: int | None = None

    # -- lifecycle ---------------------------------------------------------

    @contextmanager
    def locked(self, operation: str) -> Iterator[StateStore]:
        self._refuse_what_is_no_file()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            # Every write goes through a temporary file beside the state: prove now that one can be made,
            # before anything is created that the state would then fail to record.
            probe = self.path.with_name(f".{self.path.name}.{os.getpid()}.probe")
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            os.unlink(probe)
        except OSError as exc:
            # mkdir's FileExistsError: a regular file where the directory should be (a stray `.provision`).
            reason = "a file is in the way of that directory" if isinstance(exc, FileExistsError) else exc.strerror
            raise StateInvalid(
                f"cannot write the state in {self.path.parent} ({reason}): choose a writable place with "
                "--state PATH (or PROVISION_STATE)."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_lock_info()
            os.close(fd)
            raise StateLocked(
                f"{self.path} is locked by {holder}. Wait for that run to finish; if that process is gone, "
                "the lock is released with it."
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "operation": operation, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._lock_fd = fd
        try:
            self._load()
            yield self
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            self._lock_fd = None

    def _read_lock_info(self) -> str:
        try:
            info = json.loads(self.lock_path.read_text() or "{}")
        except (OSError, ValueError):
            return "another run"
        if not info:
            return "another run"
        return f"'provision {info.get('operation')}' (pid {info.get('pid')} on {info.get('host')}, since {info.get('since')})"

    def _refuse_what_is_no_file(self) -> None:
        """A device (/dev/zero, /dev/full) or a FIFO as --state would block or never end; refused before it is
        opened, and before a lock file is made beside it."""
        try:
            mode = self.path.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing there yet (or a file in the way of its directory, which mkdir then reports)
        except OSError as exc:
            raise StateInvalid(f"--state {str(self.path)!r}: cannot be read ({exc.strerror}).") from None
        if not stat.S_ISREG(mode):
            raise StateInvalid(f"--state {str(self.path)!r}: is not a regular file (a device, pipe or socket); give "
                               f"a file path like .provision/{self.project}-{self.region}.json")

    def _load(self) -> None:
        if not self.path.exists():
            self._data = empty_document(self.project, self.region, self.account)
            return
        try:
            payload = read_regular_file(self.path, MAX_STATE_BYTES + 1)
        except OSError as exc:
            raise StateInvalid(f"cannot read {self.path} ({exc.strerror}).") from None
        if payload is None:
            raise StateInvalid(f"--state {str(self.path)!r}: is not a regular file (a device, pipe or socket).")
        restore = f"Restore it from {self.backup_path}, or move it away" if self.backup_path.is_file() else "Move it away"
        self._data = self.checked(payload, str(self.path), f"{restore} and run again: resources are found again by "
                                  "their tags.")

    @property
    def where(self) -> str:
        return str(self.path)

    def _backup(self) -> None:
        if self._backed_up:
            return
        self._backed_up = True
        if self.path.exists():
            _atomic_write(self.backup_path, self.path.read_bytes())

    def _commit(self, updated: dict, change: Callable[[dict], None]) -> dict:
        if self._lock_fd is None:
            raise StateError("state written without holding its lock")
        self._backup()
        updated["serial"] += 1
        _atomic_write(self.path, serialized(updated))
        return updated


def read_regular_file(path: Path, limit: int) -> bytes | None:
    """At most `limit` bytes of `path`, or None if it is not a regular file. Opened without blocking, so a FIFO
    with no writer cannot hang the read; the check is on the opened file, so nothing can swap it in between."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as file:
            return file.read(limit)
    finally:
        os.close(fd)


def serialized(data: dict) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"


def _atomic_write(path: Path, payload: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _refuse_secrets(attributes: dict) -> None:
    for name, value in attributes.items():
        if any(marker in name.lower() for marker in SECRET_MARKERS):
            raise StateError(f"refusing to write {name!r} to the state: secret values never go there")
        if isinstance(value, dict):
            _refuse_secrets(value)
