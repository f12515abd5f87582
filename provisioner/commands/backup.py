"""`provision backup list`, `provision backup now` and `provision restore` (README: "Backups and restore").

`backup list` shows the recovery points in the stack's vault; `backup now` starts an on-demand AWS Backup job of
the DSQL cluster and waits for it. `restore` restores a recovery point into a new DSQL cluster (AWS Backup always
restores into a new one) and moves the stack onto it in a safe order: the Temporal services scaled to 0 (their
counts kept), the state and a converging `up` pointing IAM, the task definitions and the backup selection at the
new cluster, the schema tasks run against it (a recovery point older than the server's schema is brought up to
it), then the services scaled back. Each phase is recorded in the state before the next begins, so a rerun after
a kill carries on where it stopped. The old cluster is kept.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from rich.console import Console

from provisioner import operations
from provisioner.aws.named_kinds import DSQL_CLUSTER, wait_dsql_usable
from provisioner.aws.session import Aws
from provisioner.aws.waiter import WaitFailed, wait_for
from provisioner.commands.scale import scale_services
from provisioner.commands.schema import run_schema
from provisioner.config import Config
from provisioner.engine import Engine
from provisioner.errors import BadInput, ProvisionError, aws_failure, error_code
from provisioner.naming import TAG_KEY, TAG_STEP
from provisioner.state import RecordedState
from provisioner.step_outputs import NotRecorded
from provisioner.steps.backup import BackupOutputs
from provisioner.steps.dsql import CLUSTER, Dsql, DsqlOutputs, cluster_identifier
from provisioner.steps.ecs_services import COUNTS_SETTING

RESTORE_SETTING = "restore"
# The phases of a restore, in order; the state records the last one finished.
STARTED, RESTORED, SCALED_DOWN, POINTED, SCHEMA_CHECKED = "started", "restored", "scaled-down", "pointed", "schema-checked"
PHASES = (STARTED, RESTORED, SCALED_DOWN, POINTED, SCHEMA_CHECKED)
# The old cluster's key once replaced: found by tags no more as the stack's cluster, and kept.
REPLACED_KEY = "replaced-cluster"
REPLACED_STEP = "restore"
FAILED_JOB_STATES = ("ABORTED", "FAILED", "EXPIRED", "PARTIAL")
VISIBILITY_NOTE = (
    "Visibility (OpenSearch) is not restored: its records newer than the recovery point remain. Workflows started "
    "after it still show in the UI and 'temporal workflow list' though they no longer exist, and those that closed "
    "after it show as closed though the restored history has them running (updated as they progress). Closed "
    "workflows whose retention ran out after the recovery point are back but absent from visibility (describe them "
    "by ID). To drop the stale records, delete the visibility index and run 'provision schema' (README: "
    "\"Backups and restore\")."
)


@dataclass(frozen=True)
class RecoveryPoint:
    arn: str
    created: str
    size_bytes: int
    status: str
    cluster: str


def _made(state: RecordedState) -> tuple[BackupOutputs, DsqlOutputs]:
    try:
        return BackupOutputs.of(state), DsqlOutputs.of(state)
    except NotRecorded:
        raise BadInput("this stack has no backup vault yet: run 'provision up' (with backup.enabled = true) "
                       "first") from None


def _when(value) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def recovery_points(config: Config, aws: Aws, state_path: Path | str | None = None, **kwargs) -> list[RecoveryPoint]:
    """The recovery points in the stack's vault (of its cluster and of the clusters restores replaced), newest first."""
    console = kwargs.get("console") or Console(stderr=True)
    with operations.opened_state(config, aws, state_path, "backup list", console) as state:
        made, _ = _made(state)
        pages = aws.client("backup").get_paginator("list_recovery_points_by_backup_vault").paginate(
            BackupVaultName=made.vault_name)
        points = [p for page in pages for p in page["RecoveryPoints"] if p.get("ResourceType", "DSQL") == "DSQL"]
    points.sort(key=lambda p: p["CreationDate"], reverse=True)
    return [RecoveryPoint(p["RecoveryPointArn"], _when(p["CreationDate"]), int(p.get("BackupSizeInBytes", 0)),
                          p["Status"], p.get("ResourceArn", "")) for p in points]


@dataclass(frozen=True)
class BackupJob:
    job_id: str
    recovery_point: str
    state: str
    size_bytes: int = 0


def backup_now(config: Config, aws: Aws, state_path: Path | str | None = None, wait: bool = True,
               timeout: float | None = None, **kwargs) -> BackupJob:
    """An on-demand backup job of the cluster into the stack's vault, kept backup.retention_days; waited for."""
    with operations.open_engine(config, aws, state_path, "backup now", **kwargs) as engine:
        made, dsql = _made(engine.state)
        backup = aws.client("backup")
        try:
            started = backup.start_backup_job(
                BackupVaultName=made.vault_name, ResourceArn=dsql.cluster_arn, IamRoleArn=made.role_arn,
                # A fresh token per command: a resend of this call by botocore starts no second job.
                IdempotencyToken=str(uuid.uuid4()), Lifecycle={"DeleteAfterDays": config.backup.retention_days})
        except Exception as exc:
            raise aws_failure(f"start a backup of {dsql.cluster_arn}", exc) from exc
        job = BackupJob(started["BackupJobId"], started["RecoveryPointArn"], "CREATED")
        if not wait:
            return job
        described = _wait_job(engine, "backup", f"backup job {job.job_id}", timeout or config.timeouts.default,
                              lambda: backup.describe_backup_job(BackupJobId=job.job_id), "State")
        return BackupJob(job.job_id, job.recovery_point, described["State"], int(described.get("BackupSizeInBytes", 0)))


def _wait_job(engine: Engine, key: str, what: str, timeout: float, describe, status_field: str) -> dict:
    """Poll a backup or restore job, showing its state and percent done; fail with AWS Backup's message."""
    reporter = engine.reporter
    reporter.start(key, what)

    def probe() -> dict | None:
        job = describe()
        status = job[status_field]
        if status in FAILED_JOB_STATES:
            reporter.finish(key, ok=False, message=status)
            raise WaitFailed(f"{what} {status}: {job.get('StatusMessage', 'no reason given')}")
        if status == "COMPLETED":
            reporter.finish(key, ok=True, message="completed")
            return job
        reporter.update(key, f"{status.lower()}, {float(job.get('PercentDone') or 0):.0f}% done")
        return None

    return wait_for(what, probe, timeout=timeout)


@dataclass
class RestoreReport:
    actions: list[str] = field(default_factory=list)
    old_cluster: str = ""
    new_cluster: str = ""
    done: bool = False

    def as_dict(self) -> dict:
        return asdict(self) | {"visibility": VISIBILITY_NOTE}


def delete_command(cluster_arn: str) -> str:
    identifier = cluster_identifier(cluster_arn)
    return (f"aws dsql update-cluster --identifier {identifier} --no-deletion-protection-enabled && "
            f"aws dsql delete-cluster --identifier {identifier}")


def restore(config: Config, aws: Aws, recovery_point: str, state_path: Path | str | None = None,
            dry_run: bool = False, **kwargs) -> RestoreReport:
    """`provision restore`: the recovery point into a new cluster, then the stack moved onto it (module docstring)."""
    with operations.open_engine(config, aws, state_path, "plan" if dry_run else "restore", **kwargs) as engine:
        return Restore(engine, recovery_point, dry_run).run()


class Restore:
    def __init__(self, engine: Engine, recovery_point: str, dry_run: bool):
        self.engine, self.state, self.aws = engine, engine.state, engine.aws
        self.config = engine.config
        self.arn = recovery_point
        self.dry_run = dry_run
        self.report = RestoreReport()

    def act(self, description: str, action=None):
        """Every action is listed; only done outside a dry run."""
        self.report.actions.append(description)
        if not self.dry_run and action is not None:
            return action()
        return None

    def save(self, progress: dict, **changes) -> dict:
        progress = progress | changes
        if not self.dry_run:
            self.state.set_setting(RESTORE_SETTING, progress)
        return progress

    def run(self) -> RestoreReport:
        progress = self.state.setting(RESTORE_SETTING)
        if progress and progress["recovery_point"] != self.arn:
            raise BadInput(f"a restore of {progress['recovery_point']} is not finished: run 'provision restore "
                           f"{progress['recovery_point']}' to finish it before restoring another recovery point.")
        if not progress:
            progress = self.begin()
        self.report.old_cluster = progress["old_cluster"]
        done = PHASES.index(progress["phase"])
        counts = progress["counts"]
        if done < PHASES.index(RESTORED):
            progress = self.restore_cluster(progress)
        self.report.new_cluster = progress.get("new_cluster") or "(the restored cluster)"
        running = {service: 0 for service, count in counts.items() if count}
        if done < PHASES.index(SCALED_DOWN):
            if running:
                self.act(f"scale {', '.join(running)} to 0 (recorded counts kept: "
                         f"{', '.join(f'{s}={c}' for s, c in counts.items() if c)})",
                         lambda: scale_services(self.engine, running, True, self.config.timeouts.services_stable))
            progress = self.save(progress, phase=SCALED_DOWN)
        if done < PHASES.index(POINTED):
            self.act(f"point the stack at {self.report.new_cluster}: record it as the stack's cluster, then converge "
                     "(the Temporal and schema task roles' dsql:DbConnectAdmin, the server config's DSQL endpoint in new "
                     "task definition revisions, the backup role and selection)", lambda: self.point(progress))
            progress = self.save(progress, phase=POINTED)
        if done < PHASES.index(SCHEMA_CHECKED):
            self.act("check the schema: run the schema tasks against the new cluster (a recovery point from an older "
                     "schema is updated to the server's)", self.check_schema)
            progress = self.save(progress, phase=SCHEMA_CHECKED)
        if running:
            self.act(f"scale back: {', '.join(f'{s}={counts[s]}' for s in running)}",
                     lambda: scale_services(self.engine, {s: counts[s] for s in running}, True,
                                            self.config.timeouts.services_stable))
        if not self.dry_run:
            self.state.set_setting(RESTORE_SETTING, None)
            self.report.done = True
        return self.report

    def begin(self) -> dict:
        try:
            made, dsql = BackupOutputs.of(self.state), DsqlOutputs.of(self.state)
        except NotRecorded:
            raise BadInput("this stack has no backup vault or DSQL cluster: nothing to restore into. Run "
                           "'provision up' first.") from None
        if dsql.adopted:
            raise BadInput("the stack's DSQL cluster is adopted (dsql.cluster_arn): restore it yourself with "
                           "'aws backup start-restore-job', then set dsql.cluster_arn to the new cluster and run "
                           "'provision up'.")
        try:
            point = self.aws.client("backup").describe_recovery_point(
                BackupVaultName=made.vault_name, RecoveryPointArn=self.arn)
        except Exception as exc:
            if error_code(exc) in ("ResourceNotFoundException", "InvalidParameterValueException"):
                raise BadInput(f"{self.arn} is not a recovery point in this stack's vault {made.vault_name}: "
                               "'provision backup list' shows them.") from None
            raise aws_failure(f"describe recovery point {self.arn}", exc) from exc
        if point["Status"] not in ("COMPLETED", "AVAILABLE"):
            raise BadInput(f"the recovery point {self.arn} is {point['Status']}: only a completed one can be restored.")
        progress = {"recovery_point": self.arn, "old_cluster": dsql.cluster_arn,
                    "counts": self.state.setting(COUNTS_SETTING, {}), "phase": STARTED}
        return self.save(progress)

    def restore_cluster(self, progress: dict) -> dict:
        backup = self.aws.client("backup")
        made = BackupOutputs.of(self.state)
        region = self.aws.region
        # The restore metadata of an Aurora DSQL recovery point (AWS Backup developer guide, restore-auroradsql):
        # one regionalConfig entry per Region, with the new cluster's deletion protection.
        metadata = {"regionalConfig": json.dumps([{"region": region, "isDeletionProtectionEnabled": True}])}
        if not progress.get("job_id"):
            started = self.act(
                f"start an AWS Backup restore job of {self.arn} into a new Aurora DSQL cluster (deletion protection on)",
                lambda: backup.start_restore_job(
                    RecoveryPointArn=self.arn, Metadata=metadata, IamRoleArn=made.role_arn, ResourceType="DSQL",
                    # The same restore asked again within an hour is one job (StartRestoreJob IdempotencyToken).
                    IdempotencyToken=str(uuid.uuid5(uuid.NAMESPACE_URL, self.arn + progress["old_cluster"]))))
            if started is not None:
                progress = self.save(progress, job_id=started["RestoreJobId"])
        job_id = progress.get("job_id", "")
        job = self.act(f"wait for the restore job {job_id or ''} and the new cluster".replace("  ", " "),
                       lambda: _wait_job(self.engine, "restore", f"restore job {job_id}", self.config.timeouts.dsql,
                                         lambda: backup.describe_restore_job(RestoreJobId=job_id), "Status"))
        if job is None:
            return progress
        new = job["CreatedResourceArn"]
        self.adopt(new, progress["old_cluster"])
        return self.save(progress, new_cluster=new, phase=RESTORED)

    def adopt(self, new: str, old: str) -> None:
        """The new cluster gets the stack's cluster tags and the old one another key and step, so that tags (what finds the
        stack's resources when the state is lost) name the new one alone; then the new one is awaited."""
        naming = self.engine.naming
        DSQL_CLUSTER.write_tags(self.aws, {"arn": new}, naming.tags(Dsql.name, CLUSTER))
        if DSQL_CLUSTER.get(self.aws, old) is not None:
            # Out of the dsql step's tags too: neither `destroy --delete-data` nor `status` counts it as the stack's.
            DSQL_CLUSTER.write_tags(self.aws, {"arn": old}, {TAG_KEY: REPLACED_KEY, TAG_STEP: REPLACED_STEP})
        wait_dsql_usable(self.aws, new, self.config.timeouts.dsql,
                         lambda message: self.engine.reporter.update("restore", message))

    def point(self, progress: dict) -> None:
        new = progress["new_cluster"]
        cluster = DSQL_CLUSTER.get(self.aws, new)
        if cluster is None:
            raise ProvisionError(f"the restored cluster {new} is gone; run 'provision restore {self.arn}' again "
                                 "after 'provision state' shows what happened")
        self.state.put(Dsql.name, CLUSTER, new, kind=DSQL_CLUSTER.kind, adopted=False, identifier=cluster["identifier"])
        result = self.engine.apply()
        if not result.ok:
            raise ProvisionError("moving the stack onto the new cluster did not finish: " + "; ".join(
                f"{step}: {error}" for step, error in result.errors) +
                f". Fix the cause, then run 'provision restore {self.arn}' again: it carries on from here.")

    def check_schema(self) -> None:
        failed = [r for r in run_schema(self.engine, self.config.timeouts.schema_task) if not r.ok]
        if failed:
            raise ProvisionError("the schema check failed on the new cluster: " + ", ".join(
                f"{r.task} (exit code {r.exit_code}: {r.reason})" for r in failed) +
                f"; see 'provision logs schema'. The services stay at 0; fix the cause and run 'provision restore "
                f"{self.arn}' again.")


def as_rows(points: list[RecoveryPoint]) -> list[dict]:
    return [asdict(p) for p in points]
