"""The pipeline operations behind up, plan, destroy, status and outputs: open the state, run the engine."""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from rich.console import Console

from provisioner import immutable
from provisioner.aws.run_pool import run_pool
from provisioner.aws.session import Aws
from provisioner.config import Config
from provisioner.engine import Engine, RunResult
from provisioner.naming import MANAGED_BY, TAG_MANAGED_BY, TAG_PROJECT, Naming
from provisioner.progress import Reporter
from provisioner.state import RecordedState, StateStore
from provisioner.steps import pipeline
from provisioner.steps.ecs_services import COUNTS_SETTING
from provisioner.temporal import release
from provisioner.temporal.schema_tasks import SCHEMA_SETTING

STATE_DIR = Path(".provision")
# Commands that change the stack or its state hold the project lock; plan, status, outputs, tunnel and
# state pull only read.
LOCKED_OPERATIONS = ("up", "scale", "destroy", "schema", "build-images", "state push", "state restore", "backup now",
                     "restore", "upgrade")
# The sections a state may hold: one per step (a state written by another version, or edited, is refused).
STEP_NAMES = frozenset(step.name for step in pipeline())


def default_state_path(config: Config, aws: Aws) -> Path:
    return STATE_DIR / Naming(config.project, aws.region).state_file_name()


def open_store(config: Config, aws: Aws, location: Path | str | None,
               warn: Callable[[str], None] = lambda message: None) -> RecordedState:
    """The state at `location` (--state, PROVISION_STATE), else at the config's state.location, else the default file."""
    from provisioner.state.location import is_s3_url, parse_s3_url

    chosen = str(location) if location is not None else config.state.location or None
    # aws.account_id is the first call of every command (STS): a state belongs to one account.
    if chosen is not None and is_s3_url(chosen):
        from provisioner.state.s3 import S3StateStore

        return S3StateStore(parse_s3_url(chosen), config.project, aws.region, aws.account_id,
                            aws.bookkeeping_client("s3"), config.state.kms_key_id, warn, steps=STEP_NAMES)
    path = Path(chosen) if chosen is not None else default_state_path(config, aws)
    return StateStore(path, config.project, aws.region, aws.account_id, steps=STEP_NAMES)


def project_lock(config: Config, aws: Aws, store: RecordedState):
    """The lock of this project and region in the account: an SSM parameter, whatever the state's location (so a
    run with a local state and one with an S3 state exclude each other too), and an S3 object beside an S3 state."""
    from provisioner.state.lock import LockRecord, PairedLockRecord, ProjectLock, S3LockRecord, SsmLockRecord
    from provisioner.state.s3 import S3StateStore

    naming = Naming(config.project, aws.region)
    tags = [{"Key": TAG_PROJECT, "Value": config.project}, {"Key": TAG_MANAGED_BY, "Value": MANAGED_BY}]
    record: LockRecord = SsmLockRecord(aws.bookkeeping_client("ssm"), naming.lock_parameter(), tags)
    if isinstance(store, S3StateStore):
        record = PairedLockRecord(
            record, S3LockRecord(aws.bookkeeping_client("s3"), store.location.beside(".lock"), store.encryption))
    return ProjectLock(record, f"project {config.project} in {aws.region}", config.state.stale_lock_minutes * 60)


@contextmanager
def opened_state(config: Config, aws: Aws, location: Path | str | None, operation: str,
                 console: Console) -> Iterator[RecordedState]:
    """The state read and checked for `operation`, with the project lock held if `operation` changes anything."""
    store = open_store(config, aws, location, warn=lambda message: console.print(
        f"[yellow]Warning:[/] {message}", highlight=False))
    # The state first: a broken or foreign state is refused before the lock is asked for.
    with store.locked(operation):
        locking = operation in LOCKED_OPERATIONS
        with project_lock(config, aws, store).held(operation) if locking else nullcontext():
            yield store


@contextmanager
def open_engine(
    config: Config, aws: Aws, state_path: Path | str | None, operation: str, console: Console | None = None,
    quiet: bool = False, delete_data: bool = False, steps: list | None = None,
) -> Iterator[Engine]:
    """The engine over the whole pipeline (or only `steps`), with the state opened for `operation`, and one
    pool for the command's AWS actions (provisioner/aws/run_pool.py), ended before the lock is released."""
    console = console or Console(stderr=True)
    with opened_state(config, aws, state_path, operation, console) as store, Reporter(console, quiet=quiet) as reporter, \
            run_pool():
        def unchangeable(config: Config, state: RecordedState) -> None:
            immutable.check(config, state)
            # A new server on roles that run tasks goes through 'provision upgrade', never through up.
            release.refuse_accidental_upgrade(config, state, aws)

        yield Engine(steps or pipeline(), config, aws, store, reporter, delete_data=delete_data,
                     unchangeable=unchangeable)


def up(config: Config, aws: Aws, state_path: Path | str | None = None, **kwargs) -> RunResult:
    with open_engine(config, aws, state_path, "up", **kwargs) as engine:
        result = engine.apply()
        if result.ok:
            # Every role runs the configured server: staged, or unchanged (refuse_accidental_upgrade saw to it).
            release.record_release(config, engine.state)
        if result.ok and not any(engine.state.setting(COUNTS_SETTING, {}).values()):
            # Staged deployment: the services wait at 0 tasks for the schema.
            result.next_step = ("provision scale up" if engine.state.setting(SCHEMA_SETTING) else
                                "provision schema (the DSQL schema and the visibility index), then provision scale up")
        return result


def plan(config: Config, aws: Aws, state_path: Path | str | None = None, **kwargs) -> RunResult:
    with open_engine(config, aws, state_path, "plan", **kwargs) as engine:
        return engine.plan()


def destroy(config: Config, aws: Aws, state_path: Path | str | None = None, delete_data: bool = False, **kwargs) -> RunResult:
    """Everything the project made; what holds data (the DSQL cluster, images) only with `delete_data`."""
    with open_engine(config, aws, state_path, "destroy", delete_data=delete_data, **kwargs) as engine:
        return engine.destroy()


@dataclass(frozen=True)
class ResourceStatus:
    step: str
    key: str
    kind: str
    id: str
    status: str  # ok | missing | untracked | drifted | pending (an email subscription not confirmed yet)
    detail: str = ""


def status(config: Config, aws: Aws, state_path: Path | str | None = None, **kwargs) -> list[ResourceStatus]:
    """The state against what is really there: missing, drifted and untracked resources."""
    rows: list[ResourceStatus] = []
    with open_engine(config, aws, state_path, "status", quiet=True, **kwargs) as engine:
        for step in engine.steps:
            ctx = engine.context(step, dry_run=True)
            records = engine.state.step_records(step.name)
            tracked_ids = {r["id"] for r in records.values()}
            for key, record in sorted(records.items()):
                live = step.exists(ctx, record["kind"], record["id"])
                # A step may name a state of its own (an email subscription "pending" its address's confirmation).
                condition = live if isinstance(live, str) else "ok" if live else "missing"
                rows.append(ResourceStatus(step.name, key, record["kind"], record["id"], condition))
            for key, kind, resource_id in step.inventory(ctx):
                if resource_id not in tracked_ids:
                    rows.append(ResourceStatus(step.name, key, kind, resource_id, "untracked", "tagged but not in the state"))
        if not rows:
            return rows  # nothing deployed yet: 'provision up' creates everything
        planned = engine.plan()
        reported = {(r.step, r.key) for r in rows}
        for change in planned.changes:
            # Everything plan would change: drift, and what is missing but not a recorded resource (a route).
            if change.action != "create" or (change.step, change.key) not in reported:
                status = "drifted" if change.action != "create" else "missing"
                rows.append(ResourceStatus(change.step, change.key, change.noun, "", status, change.describe()))
        for step_name, error in planned.errors:
            rows.append(ResourceStatus(step_name, "", "", "", "error", str(error)))
    return rows


def outputs(config: Config, aws: Aws, state_path: Path | str | None = None, **kwargs) -> dict:
    with open_engine(config, aws, state_path, "outputs", quiet=True, **kwargs) as engine:
        result: dict = {"project": config.project, "region": aws.region}
        for step in engine.steps:
            result.update(step.outputs(engine.context(step, dry_run=True)))
        return result
