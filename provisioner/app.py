"""Operations shared by the CLI and the tests: open the state, run the pipeline, read status and outputs."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from rich.console import Console

from provisioner.config import Config
from provisioner.engine import Engine, RunResult
from provisioner.naming import Naming
from provisioner.progress import Reporter
from provisioner.session import Aws
from state import StateStore
from steps import pipeline

STATE_DIR = Path(".provision")


def default_state_path(config: Config, aws: Aws) -> Path:
    return STATE_DIR / Naming(config.project, aws.region).state_file_name()


@contextmanager
def open_engine(
    config: Config, aws: Aws, state_path: Path | None, operation: str, console: Console | None = None, quiet: bool = False
) -> Iterator[Engine]:
    store = StateStore(state_path or default_state_path(config, aws), config.project, aws.region)
    with store.locked(operation):
        with Reporter(console or Console(stderr=True), quiet=quiet) as reporter:
            yield Engine(pipeline(), config, aws, store, reporter)


def up(config: Config, aws: Aws, state_path: Path | None = None, **kwargs) -> RunResult:
    with open_engine(config, aws, state_path, "up", **kwargs) as engine:
        return engine.apply()


def plan(config: Config, aws: Aws, state_path: Path | None = None, **kwargs) -> RunResult:
    with open_engine(config, aws, state_path, "plan", **kwargs) as engine:
        return engine.plan()


def destroy(config: Config, aws: Aws, state_path: Path | None = None, **kwargs) -> RunResult:
    with open_engine(config, aws, state_path, "destroy", **kwargs) as engine:
        return engine.destroy()


def scale(config: Config, aws: Aws, targets: dict[str, int], state_path: Path | None = None, wait: bool = True,
          timeout: float | None = None, **kwargs) -> list:
    """Set the task counts of the named services, record them, and wait until they settle."""
    from provisioner import scaling

    with open_engine(config, aws, state_path, "scale", **kwargs) as engine:
        return scaling.scale(engine, targets, wait, timeout or config.timeouts.services_stable)


@dataclass(frozen=True)
class ResourceStatus:
    step: str
    key: str
    kind: str
    id: str
    status: str  # ok | missing | untracked | drifted
    detail: str = ""


def status(config: Config, aws: Aws, state_path: Path | None = None, **kwargs) -> list[ResourceStatus]:
    """The state against what is really there: missing, drifted and untracked resources."""
    rows: list[ResourceStatus] = []
    with open_engine(config, aws, state_path, "status", quiet=True, **kwargs) as engine:
        for step in engine.steps:
            ctx = engine.context(step, dry_run=True)
            records = engine.state.step_records(step.name)
            tracked_ids = {r["id"] for r in records.values()}
            for key, record in sorted(records.items()):
                live = step.exists(ctx, record["kind"], record["id"])
                rows.append(ResourceStatus(step.name, key, record["kind"], record["id"], "ok" if live else "missing"))
            for key, kind, resource_id in step.inventory(ctx):
                if resource_id not in tracked_ids:
                    rows.append(ResourceStatus(step.name, key, kind, resource_id, "untracked", "tagged but not in the state"))
        planned = engine.plan()
        for change in planned.changes:
            if change.action != "create":
                rows.append(ResourceStatus(change.step, change.key, change.noun, "", "drifted", change.describe()))
        for step_name, error in planned.errors:
            rows.append(ResourceStatus(step_name, "", "", "", "error", str(error)))
    return rows


def outputs(config: Config, aws: Aws, state_path: Path | None = None, **kwargs) -> dict:
    with open_engine(config, aws, state_path, "outputs", quiet=True, **kwargs) as engine:
        result: dict = {"project": config.project, "region": aws.region}
        for step in engine.steps:
            result.update(step.outputs(engine.context(step, dry_run=True)))
        return result


@dataclass(frozen=True)
class GrafanaSecret:
    arn: str
    created: bool
    password: str | None  # only when the caller asked to see it


def ensure_grafana_secret(config: Config, aws: Aws, name: str | None = None, show_password: bool = False) -> GrafanaSecret:
    """Seed task 23: create the Grafana admin secret once, with a generated password.

    The password goes straight from Secrets Manager's generator into the secret; it is returned
    (to be printed) only when asked for, and never written anywhere else.
    """
    import json

    from botocore.exceptions import ClientError

    from provisioner.errors import aws_failure, error_code

    client = aws.client("secretsmanager")
    name = name or config.grafana.admin_secret_name
    try:
        existing = client.describe_secret(SecretId=name)
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise aws_failure(f"look up secret {name}", exc) from exc
        existing = None
    if existing:
        password = None
        if show_password:
            password = json.loads(client.get_secret_value(SecretId=name)["SecretString"])["admin_password"]
        return GrafanaSecret(existing["ARN"], False, password)
    password = client.get_random_password(PasswordLength=32, ExcludePunctuation=True)["RandomPassword"]
    try:
        created = client.create_secret(
            Name=name, Description=f"Grafana admin login for {config.project}",
            SecretString=json.dumps({"admin_user": "admin", "admin_password": password}),
            ClientRequestToken=Naming(config.project, aws.region).client_token(f"secret/{name}")[:64],
        )
    except ClientError as exc:
        raise aws_failure(f"create secret {name}", exc) from exc
    return GrafanaSecret(created["ARN"], True, password if show_password else None)
