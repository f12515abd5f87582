"""`provision upgrade`: move a running Temporal cluster to another server release (README: "Upgrading Temporal").

In this order, each part only once the one before it finished:
1. the hop is checked before anything is touched (provisioner/temporal/release.py: one minor at a time after
   the latest patch, no downgrade below the schema the database holds);
2. the schema first: the schema task definitions move to the new admin-tools image and the one-off schema tasks
   of `provision schema` run (its update-schema applies what the new server needs). A server refuses to start
   on an older schema (schema.VerifyCompatibleVersion, temporal/fx.go) while an older server accepts a newer
   one, so the running roles keep working. If a task fails, nothing else changes;
3. then one role at a time, frontend -> history -> matching -> worker: the order in which the fork's own ECS
   deployment starts the roles, one stage after the other, "to avoid overwhelming ... DSQL connection rate
   limits during cold start" (iw/temporal-dsql-deploy-ecs, scripts/staggered-startup.sh). Each role's new task
   definition is registered and its service updated only after the role before it reached rolloutState
   COMPLETED (provisioner/rollout.py). A role that fails is rolled back by the circuit breaker; the roles after
   it stay on the old release (consecutive minors run side by side: temporalio/temporal tests/mixedbrain);
4. the new release is recorded in the state only once every role completed.

Every part is found again from what AWS says, so a rerun after a failure, Ctrl-C or a kill resumes: a role
already on the new image and COMPLETED is not redone, one whose deployment was left rolling is waited for, a
schema task left running is waited for (schema.py), and the schema is not run twice for one target.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from provisioner import operations, placement_check, rollout
from provisioner.aws.session import Aws
from provisioner.commands import schema as schema_command
from provisioner.config import Config, TemporalConfig
from provisioner.engine import Engine
from provisioner.errors import BadInput, ProvisionError
from provisioner.step_outputs import NotRecorded
from provisioner.steps.cluster import ClusterOutputs
from provisioner.steps.ecs_services import COUNTS_SETTING, ServicesOutputs
from provisioner.steps.placement import trunking_principal
from provisioner.steps.task_definitions import (
    TaskDefinitionOutputs,
    TaskDefinitions,
    definition_key,
    schema_task_definition,
    task_definition,
)
from provisioner.temporal import release, schema_tasks
from provisioner.temporal.roles import TEMPORAL_ROLES

# The fork's own staggered start (see the module docstring).
ROLL_ORDER = ("frontend", "history", "matching", "worker")
# An upgrade under way: its target and whether its schema task is done (state/store.py UpgradeSetting).
UPGRADE_SETTING = "upgrade"


class UpgradeFailed(ProvisionError):
    """A part of the upgrade failed; what finished is kept and a rerun resumes."""


@dataclass(frozen=True)
class Action:
    what: str
    detail: str = ""

    def shown(self) -> str:
        return f"{self.what}: {self.detail}" if self.detail else self.what


@dataclass
class UpgradeResult:
    from_image: str
    to_image: str
    actions: list[Action] = field(default_factory=list)
    done: bool = False


def target_config(config: Config, server_image: str | None, admin_tools_image: str | None) -> Config:
    """The config with the images given on the command line, validated as the config file's are."""
    if server_image is None and admin_tools_image is None:
        return config
    temporal = config.temporal.model_dump() | {
        key: value for key, value in (("server_image", server_image), ("admin_tools_image", admin_tools_image))
        if value is not None}
    try:
        checked = TemporalConfig.model_validate(temporal)
    except ValueError as exc:
        raise BadInput(f"--server-image/--admin-tools-image: {exc}") from None
    return config.model_copy(update={"temporal": checked})


def _settled_on(running: release.RoleRunning | None, image: str) -> bool:
    return running is not None and running.image == image and running.settled


def upgrade_stack(engine: Engine, dry_run: bool, timeout: float, schema_timeout: float) -> UpgradeResult:
    state, aws, config = engine.state, engine.aws, engine.config
    try:
        names = ServicesOutputs.of(state).names
        cluster = ClusterOutputs.of(state).cluster_name
        TaskDefinitionOutputs.of(state)
    except NotRecorded:
        raise BadInput("the stack is not built yet: run 'provision up' first.") from None
    missing = [role for role in TEMPORAL_ROLES if role not in names]
    if missing:
        raise BadInput(f"the {', '.join(missing)} service(s) do not exist yet: run 'provision up' first.")
    target = config.temporal
    running = release.running_roles(aws, cluster, {role: names[role] for role in TEMPORAL_ROLES})
    recorded = state.setting(release.RELEASE_SETTING) or {}
    from_image = recorded.get("server_image") or next(iter(r.image for r in running.values()), "")
    if not any(r.desired for r in running.values()):
        raise BadInput("no Temporal role runs tasks (the stack is staged): a new server image is plain config there. "
                       "Put it in temporal.server_image and run 'provision up'.")
    result = UpgradeResult(from_image, target.server_image)
    if all(_settled_on(running.get(role), target.server_image) for role in ROLL_ORDER) and recorded.get(
            "server_image") == target.server_image:
        return _done(result)
    release.check_hop(from_image, release.recorded_version(state), target.server_image, target.server_version, state)
    _check_room(engine)

    wanted = {"server_version": target.server_version, "server_image": target.server_image,
              "admin_tools_image": target.admin_tools_image}
    underway = state.setting(UPGRADE_SETTING) or {}
    schema_done = underway.get("schema_done") and {k: underway.get(k) for k in wanted} == wanted
    step = next(s for s in engine.steps if isinstance(s, TaskDefinitions))
    ctx = engine.context(step, dry_run=dry_run)
    endpoint, host = step.visibility_endpoint(ctx), step.dsql_host(ctx)

    def act(action: Action, run=None):
        result.actions.append(action)
        if dry_run or run is None:
            return None
        ctx.check_cancelled()
        return run()

    if schema_done:
        act(Action("schema", f"already updated for {target.server_image} by an earlier run"))
    else:
        act(Action("record", f"upgrade to {target.server_image} under way"),
            lambda: state.set_setting(UPGRADE_SETTING, wanted | {"schema_done": False}))
        for task in schema_tasks.SCHEMA_TASKS:
            act(Action(f"register schema-{task} task definition", target.admin_tools_image),
                lambda task=task: step.ensure_definition(ctx, definition_key(f"schema-{task}"),
                                               schema_task_definition(ctx, task, endpoint, host)))
        act(Action("run schema tasks", f"{', '.join(schema_tasks.SCHEMA_TASKS)} from {target.admin_tools_image}, "
                                       "before any server changes"),
            lambda: _run_schema(engine, schema_timeout))
        act(Action("record", "schema updated"),
            lambda: state.set_setting(UPGRADE_SETTING, wanted | {"schema_done": True}))

    ecs = aws.client("ecs")
    for role in ROLL_ORDER:
        now = running.get(role)
        if _settled_on(now, target.server_image):
            # Its older revisions too, if a run stopped between the rollout and their retirement.
            act(Action(f"{role}", f"already on {target.server_image}, rollout COMPLETED: kept"),
                lambda role=role, now=now: step.retire_older_revisions(
                    ctx, now.task_definition, task_definition(ctx, role, endpoint, host)["family"]))
            continue
        if now is not None and now.image == target.server_image:
            # Left rolling by an interrupted run: wait for that deployment, do not start another.
            def finish(role=role, now=now) -> None:
                _wait(engine, cluster, role, names[role], now.task_definition, timeout)
                step.retire_older_revisions(ctx, now.task_definition, task_definition(ctx, role, endpoint, host)["family"])

            act(Action(f"wait for {role}", "its deployment to the new image, started earlier, to complete"), finish)
            continue

        def roll(role=role) -> None:
            desired = task_definition(ctx, role, endpoint, host)
            step.ensure_definition(ctx, definition_key(role), desired, retire_older=False)
            arn = TaskDefinitionOutputs.of(state).services[role].arn
            since = rollout.since_now()
            ecs.update_service(cluster=cluster, service=names[role], taskDefinition=arn)
            _wait(engine, cluster, role, names[role], arn, timeout, since)
            # Only now: a rollback returns the service to the old revision, and no service can be moved onto a
            # deregistered (INACTIVE) one (ECS API reference, DeregisterTaskDefinition).
            step.retire_older_revisions(ctx, arn, desired["family"])

        act(Action(f"roll {role}", f"register its task definition with {target.server_image}, update the service, "
                                   "wait for rolloutState COMPLETED"), roll)
    def record() -> None:
        release.record_release(config, state)
        state.set_setting(UPGRADE_SETTING, None)

    act(Action("record", f"release {target.server_version} {target.server_image} for every role"), record)
    result.done = not dry_run
    return result


def _done(result: UpgradeResult) -> UpgradeResult:
    result.actions.append(Action("nothing to do", f"every role runs {result.to_image}, rollout COMPLETED"))
    result.done = True
    return result


def _run_schema(engine: Engine, timeout: float) -> None:
    results = schema_command.run_schema(engine, timeout)
    failed = [r for r in results if not r.ok]
    if failed:
        lines = []
        for task in failed:
            lines.append(f"schema task {task.task} failed (exit code {task.exit_code}: {task.reason})")
            lines += [f"    {line}" for line in task.log_tail]
        raise UpgradeFailed("\n".join(lines) + "\nNo server was changed: every role still runs the old image. Fix the "
                            "cause (the admin-tools image, the database), then run 'provision upgrade' again.")


def _wait(engine: Engine, cluster: str, role: str, name: str, arn: str, timeout: float, since=None) -> None:
    try:
        rollout.wait_for_rollout(engine.aws, cluster, [rollout.Target(role, name, arn)], timeout, engine.reporter,
                                 since)
    except ProvisionError as exc:
        later = ROLL_ORDER[ROLL_ORDER.index(role) + 1:]
        rest = f" the roles after it ({', '.join(later)}) keep the old one;" if later else ""
        raise UpgradeFailed(
            f"upgrade stopped at {role}: {exc}\nThe roles before it run the new image;{rest} consecutive releases run "
            "side by side. Fix the cause, then run 'provision upgrade' again: it resumes at "
            f"{role}.") from None


def _check_room(engine: Engine) -> None:
    """Each node group can hold its tasks plus the extra task a rolling deployment starts (maximumPercent 200)."""
    counts = engine.state.setting(COUNTS_SETTING, {})
    checked = placement_check.check(engine.config, engine.aws, counts, counts_are_replicas=False,
                                    trunking_principal=trunking_principal(engine.state, engine.naming,
                                                                          engine.aws.account_id))
    if checked.problems or checked.no_room_to_roll:
        raise BadInput("\n".join(checked.problems + checked.no_room_to_roll) + "\nNothing was changed.")


def upgrade(config: Config, aws: Aws, state_path: Path | str | None = None, server_image: str | None = None,
            admin_tools_image: str | None = None, dry_run: bool = False, timeout: float | None = None,
            **kwargs) -> UpgradeResult:
    """`provision upgrade`: the schema, then each role, to the release in the config (or the images given)."""
    wanted = target_config(config, server_image, admin_tools_image)
    with operations.open_engine(wanted, aws, state_path, "plan" if dry_run else "upgrade", **kwargs) as engine:
        return upgrade_stack(engine, dry_run, timeout or config.timeouts.services_stable,
                             config.timeouts.schema_task)
