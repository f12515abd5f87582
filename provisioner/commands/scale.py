"""`provision scale`: set task counts, record them, and wait until each service settles or says why not.

The staged deployment (README: "Staged deployment"): `up` creates every service at 0 tasks; after the schema is in
place, `provision scale up` (or `history=4 matching=3 ...`) starts them. The counts are written to
the state before ECS is asked, so a following `up` keeps them, even after a crash in between.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import asdict
from pathlib import Path

from provisioner import operations, placement_check, rollout
from provisioner.aws.named_kinds import ECS_SERVICE
from provisioner.aws.session import Aws
from provisioner.config import Config
from provisioner.ecs_layout import SERVICES
from provisioner.engine import Engine
from provisioner.errors import BadInput, ProvisionError
from provisioner.rollout import ServiceStatus, Target
from provisioner.steps import autoscaling
from provisioner.steps.cluster import ClusterOutputs
from provisioner.steps.ecs_services import (
    COUNTS_SETTING,
    DEPLOYMENT_MAXIMUM_PERCENT,
    ServicesOutputs,
)
from provisioner.steps.placement import trunking_principal
from provisioner.temporal.roles import TEMPORAL_ROLES

# Aurora DSQL's default quota of connections per cluster.
DSQL_CONNECTION_LIMIT = 10_000
PRESETS = {"up": "every service to its services.<name>.replicas (an autoscaled frontend then moves within its "
                  "services.frontend.autoscaling min..max)",
           "down": "every service to 0 tasks (an autoscaled frontend's scalable target is deregistered, so it stays "
                   "stopped; the next scale up registers it again)"}
MAX_COUNT = 100


class BadArguments(Exception):
    """Arguments `scale` cannot act on; nothing was changed."""


def parse_targets(arguments: list[str], config: Config) -> dict[str, int]:
    """`up`, `down`, or `service=count` pairs with each service once, validated before anything runs.

    Arguments that contradict each other (`up down`, `up history=1`, `history=1 history=2`) are refused
    rather than resolved by order: which one the user meant is a guess."""
    if not arguments:
        raise BadArguments(
            "name what to scale: 'up', 'down', or service=count pairs like history=4 matching=3 "
            f"(services: {', '.join(SERVICES)})"
        )
    presets = [argument for argument in arguments if argument in PRESETS]
    if presets and len(arguments) > 1:
        raise BadArguments(f"{' '.join(arguments)!r}: {presets[0]!r} sets every service, so it stands alone; give "
                           "either it or service=count pairs")
    targets: dict[str, int] = {}
    for argument in arguments:
        if argument in PRESETS:
            targets |= {s: (getattr(config.services, s).replicas if argument == "up" else 0) for s in SERVICES}
            continue
        service, equals, count = argument.partition("=")
        if not equals:
            raise BadArguments(f"{argument!r}: expected 'up', 'down' or service=count, like history=4")
        if service not in SERVICES:
            close = difflib.get_close_matches(service, SERVICES, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise BadArguments(f"{argument!r}: unknown service {service!r}; {hint}services: {', '.join(SERVICES)}")
        # ASCII digits only: "³".isdigit() is true, and int() refuses it.
        if not re.fullmatch(r"[0-9]{1,3}", count) or int(count) > MAX_COUNT:
            raise BadArguments(f"{argument!r}: the count must be a whole number from 0 to {MAX_COUNT}")
        autoscaling = config.services.frontend.autoscaling if service == "frontend" else None
        if autoscaling is not None and int(count) and not autoscaling.min <= int(count) <= autoscaling.max:
            raise BadArguments(
                f"{argument!r}: the frontend autoscales between {autoscaling.min} and {autoscaling.max} tasks "
                f"(services.frontend.autoscaling.min/max): give a count in that range, or 0 to stop it, or change "
                "the setting and run 'provision up' first"
            )
        if service in targets:
            raise BadArguments(f"{argument!r}: {service} is already given a count ({service}={targets[service]}); "
                               "give each service once")
        targets[service] = int(count)
    return targets


def connection_problems(config: Config, counts: dict[str, int]) -> list[str]:
    """Counts whose DSQL connection pools could exceed the cluster's default limit."""
    # A rolling deployment runs up to maximumPercent of the tasks at once, each with a full pool.
    surge = DEPLOYMENT_MAXIMUM_PERCENT / 100
    pools = {s: int(getattr(config.services, s).max_conns * n * surge) for s, n in counts.items()
             if s in TEMPORAL_ROLES and n}
    if sum(pools.values()) <= DSQL_CONNECTION_LIMIT:
        return []
    spread = ", ".join(f"{s} {c}" for s, c in pools.items())
    return [
        f"these counts could open {sum(pools.values())} DSQL connections during a rolling deployment "
        f"({DEPLOYMENT_MAXIMUM_PERCENT}% of the tasks at once: {spread}), over the cluster's default limit of "
        f"{DSQL_CONNECTION_LIMIT}: lower services.<name>.max_conns or the counts."
    ]


def scale_services(engine: Engine, targets: dict[str, int], wait: bool, timeout: float) -> list[ServiceStatus]:
    aws, state = engine.aws, engine.state
    made = ServicesOutputs.of(state).arns
    missing = [s for s in targets if s not in made]
    if missing:
        raise BadInput(f"the services {', '.join(missing)} do not exist yet: run 'provision up' first")
    counts = state.setting(COUNTS_SETTING, {}) | targets
    checked = placement_check.check(engine.config, aws, counts, counts_are_replicas=False,
                                    trunking_principal=trunking_principal(state, engine.naming, aws.account_id))
    for warning in checked.warnings + checked.no_room_to_roll:
        engine.reporter.console.print(f"Warning: {warning}", highlight=False)
    problems = checked.problems + connection_problems(engine.config, counts)
    if problems:
        raise BadArguments("\n".join(problems))
    ecs = aws.client("ecs")
    since = rollout.since_now()
    arns = {s: made[s] for s in targets}
    state.set_setting(COUNTS_SETTING, counts)
    autoscaled = autoscaling.wanted(engine.config, counts) if "frontend" in targets else None
    for service, count in targets.items():
        live = ECS_SERVICE.get(aws, arns[service])
        if live is None:
            raise ProvisionError(f"the {service} service is gone: run 'provision up' to recreate it, then scale again")
        resource = autoscaling.resource_id(engine.naming, live["clusterArn"].rsplit("/", 1)[-1])
        if service == "frontend" and autoscaled is None and engine.config.services.frontend.autoscaling is not None:
            # Stopping an autoscaled frontend: deregistered first, or the autoscaler raises it back to its minimum.
            autoscaling.deregister(aws, resource)
            for key in list(state.step_records(autoscaling.Autoscaling.name)):
                state.forget(autoscaling.Autoscaling.name, key)
        if live["desiredCount"] != count:
            ecs.update_service(cluster=live["clusterArn"], service=live["serviceName"], desiredCount=count)
        if service == "frontend" and autoscaled is not None:
            autoscaling.register(aws, engine.naming, resource, autoscaled)
            state.put(autoscaling.Autoscaling.name, autoscaling.TARGET_KEY, resource, kind=autoscaling.TARGET_KIND,
                      min=autoscaled.min, max=autoscaled.max)
            policy = autoscaling.put_policy(aws, engine.naming, resource, autoscaled)
            state.put(autoscaling.Autoscaling.name, autoscaling.POLICY_KEY, policy["PolicyARN"],
                      kind=autoscaling.POLICY_KIND, name=autoscaling.policy_name(engine.naming),
                      cpu_target=autoscaled.cpu_target)

    # The waits read each service's primary deployment, not only its counts (provisioner/rollout.py).
    targets_of = [Target(service, ServicesOutputs.of(state).names[service]) for service in targets]
    cluster_name = ClusterOutputs.of(state).cluster_name
    if not wait:
        return rollout.observe(aws, cluster_name, targets_of, since)
    try:
        return rollout.wait_for_rollout(aws, cluster_name, targets_of, timeout, engine.reporter, since)
    except ProvisionError as exc:
        raise ProvisionError(f"{exc}\nThe counts are recorded; fix the cause, then run 'provision scale' again "
                             "(or scale down).") from None


def as_rows(statuses: list[ServiceStatus]) -> list[dict]:
    return [asdict(s) for s in statuses]


def scale(config: Config, aws: Aws, targets: dict[str, int], state_path: Path | str | None = None, wait: bool = True,
          timeout: float | None = None, **kwargs) -> list[ServiceStatus]:
    """`provision scale`: set the task counts of the named services, record them, and wait until they settle."""
    with operations.open_engine(config, aws, state_path, "scale", **kwargs) as engine:
        return scale_services(engine, targets, wait, timeout or config.timeouts.services_stable)
