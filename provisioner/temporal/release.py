"""Which Temporal release a stack runs, and which changes of it are upgrades (README: "Upgrading Temporal").

A running Temporal cluster changes its server only through `provision upgrade`: the schema first, then one
role at a time. A server newer than its schema refuses to start (`schema.VerifyCompatibleVersion` at startup,
temporal/fx.go), in every role at once if `up` rolled them together. So `plan` and `up` refuse a new server
image or version while any Temporal role has tasks (`refuse_accidental_upgrade`, exit 2); at 0 tasks (staged,
before the first `scale up`) a new image is plain config.

The hop rules (`hop_problems`) are Temporal's: one minor version at a time, each after the latest patch of
the current minor (docs.temporal.io, self-hosted guide "Upgrade server"); no downgrade below the schema the
database holds. The fork's DSQL schema is versioned apart from the server (schema/dsql/version.go in
github.com/iw/temporal), so for it the DSQL schema version the target expects is compared with the one
`provision schema` recorded.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from botocore.exceptions import ClientError

from provisioner.aws.session import Aws
from provisioner.config import Config
from provisioner.errors import BadInput, error_code
from provisioner.naming import Naming
from provisioner.state import RecordedState
from provisioner.step_outputs import known
from provisioner.steps.cluster import ClusterOutputs
from provisioner.steps.ecs_services import COUNTS_SETTING, ServicesOutputs
from provisioner.temporal import versions
from provisioner.temporal.roles import TEMPORAL_ROLES
from provisioner.temporal.schema_tasks import SCHEMA_SETTING

# The release every role runs: recorded by `up` while the roles are staged, by `upgrade` once every role completed.
RELEASE_SETTING = "temporal_release"
UPGRADE_COMMAND = "provision upgrade"


@dataclass(frozen=True)
class RoleRunning:
    """What one Temporal role's ECS service runs: the image of its PRIMARY deployment's task definition."""

    role: str
    name: str
    desired: int
    running: int
    task_definition: str
    image: str
    rollout: str
    settled: bool  # one deployment, COMPLETED, running == desired


def running_roles(aws: Aws, cluster: str, names: dict[str, str]) -> dict[str, RoleRunning]:
    """Each role's service as it runs now (a role whose service does not exist is absent)."""
    ecs = aws.client("ecs")
    try:
        described = ecs.describe_services(cluster=cluster, services=list(names.values()))["services"]
    except ClientError as exc:
        if error_code(exc) == "ClusterNotFoundException":
            return {}
        raise
    by_name = {s["serviceName"]: s for s in described if s.get("status") == "ACTIVE"}
    images: dict[str, dict[str, str]] = {}
    found = {}
    for role, name in names.items():
        service = by_name.get(name)
        if service is None:
            continue
        deployments = service.get("deployments", [])
        primary: dict = next((d for d in deployments if d.get("status") == "PRIMARY"), {})
        definition = primary.get("taskDefinition") or service["taskDefinition"]
        if definition not in images:
            containers = ecs.describe_task_definition(taskDefinition=definition)["taskDefinition"]["containerDefinitions"]
            images[definition] = {c["name"]: c.get("image", "") for c in containers}
        rollout = primary.get("rolloutState", "COMPLETED")
        found[role] = RoleRunning(
            role, name, service["desiredCount"], service["runningCount"], definition,
            images[definition].get(role, ""), rollout,
            len(deployments) <= 1 and rollout == "COMPLETED" and service["runningCount"] == service["desiredCount"],
        )
    return found


def role_names(state: RecordedState, naming: Naming) -> tuple[str, dict[str, str]]:
    """The cluster and each Temporal role's service name: recorded, else the names `up` gives them (a lost state)."""
    cluster = ClusterOutputs.so_far(state).cluster_name
    recorded = ServicesOutputs.so_far(state).names
    return (cluster if known(cluster) else naming.cluster(),
            {role: recorded.get(role) or naming.name(role) for role in TEMPORAL_ROLES})


def recorded_version(state: RecordedState) -> str | None:
    """The server version the stack last completed: its release, else what `provision schema` set up for."""
    release = state.setting(RELEASE_SETTING) or {}
    schema = state.setting(SCHEMA_SETTING) or {}
    return release.get("server_version") or schema.get("server_version")


def refuse_accidental_upgrade(config: Config, state: RecordedState, aws: Aws) -> None:
    """BadInput (exit 2, nothing changed) when the config changes the server of roles that run tasks."""
    counts = state.setting(COUNTS_SETTING, {})
    if counts and not any(counts.get(role) for role in TEMPORAL_ROLES):
        return  # staged (or scaled down): no role runs, a new image is plain config
    cluster, names = role_names(state, Naming(config.project, aws.region, state.lineage))
    running = {role: r for role, r in running_roles(aws, cluster, names).items() if r.desired}
    if not running:
        return
    wanted = config.temporal.server_image
    other = {role: r.image for role, r in running.items() if r.image != wanted}
    version = recorded_version(state)
    if not other and version in (None, config.temporal.server_version):
        return
    lines = [f"  {role}: {image} ({running[role].desired} tasks)" for role, image in other.items()]
    if version not in (None, config.temporal.server_version):
        lines.append(f"  temporal.server_version: {version!r} runs, the config says {config.temporal.server_version!r}")
    raise BadInput(
        f"temporal.server_image = {wanted!r} changes the server of a running Temporal cluster:\n" + "\n".join(lines) +
        f"\nThat is an upgrade: the schema first, then one role at a time. Run '{UPGRADE_COMMAND} --dry-run' to see "
        f"its steps, then '{UPGRADE_COMMAND}'. 'up' and 'plan' change nothing until every role runs the configured "
        "server (if you upgraded with --server-image, put that image into temporal.server_image). To keep the running "
        "server, put the old values back."
    )


def record_release(config: Config, state: RecordedState) -> None:
    """What every role now runs, written only when it changed (a no-op `up` writes nothing)."""
    release = {"server_version": config.temporal.server_version, "server_image": config.temporal.server_image,
               "admin_tools_image": config.temporal.admin_tools_image}
    if state.setting(RELEASE_SETTING) != release:
        state.set_setting(RELEASE_SETTING, release)


# major, minor, patch (None when the tag has none) of an image tag like 1.30.6, v1.30, 1.29.0-test.
FULL_TAG = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-_.+].*)?$")


def tag_release(image: str) -> tuple[int, int, int | None] | None:
    """The version an image's tag carries, or None (a digest, or a tag like <sha>-<time>)."""
    match = FULL_TAG.match(versions.image_tag(image) or "")
    return (int(match[1]), int(match[2]), int(match[3]) if match[3] is not None else None) if match else None


def latest_patch(minor: tuple[int, int]) -> int | None:
    """The latest patch of an upstream minor this tool knows: the release its data file was extracted from
    (provisioner/data/temporal/<minor>.json, `source.server_version`)."""
    version_id = f"{minor[0]}.{minor[1]}"
    if version_id not in versions.SUPPORTED:
        return None
    return int(versions.load(version_id).declared.split(".")[2])


def _schema_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def hop_problems(from_image: str, from_version: str | None, to_image: str, to_version: str,
                 database_schema: str | None) -> list[str]:
    """Why going from one release to another is not one safe hop, each with the path to take instead."""
    problems = []
    have, want = tag_release(from_image), tag_release(to_image)
    if have and want:
        have_minor, want_minor = have[:2], want[:2]
        shown = f"{have[0]}.{have[1]}"
        if want_minor < have_minor:
            problems.append(
                f"{to_image} is Temporal {want[0]}.{want[1]}, older than the {shown} the stack runs and whose schema "
                "the database holds: a downgrade below the database's schema is not supported. Stay on "
                f"{shown}, or fix forward with a later image.")
        elif want_minor != have_minor:
            if want[0] != have[0] or want[1] > have[1] + 1:
                steps = [f"{have[0]}.{minor}" for minor in range(have[1] + 1, want[1] + 1)] if want[0] == have[0] else []
                path = " -> ".join([shown, *steps]) if steps else f"{shown} -> each minor in turn"
                problems.append(
                    f"{to_image} skips minor versions ({shown} to {want[0]}.{want[1]}): Temporal upgrades one minor "
                    f"at a time, each after the latest patch of the one before. Upgrade {path}, running "
                    f"'{UPGRADE_COMMAND} --server-image IMAGE --admin-tools-image IMAGE' once per hop.")
            else:
                latest = latest_patch(have_minor)
                if latest is not None and have[2] is not None and have[2] < latest:
                    problems.append(
                        f"the stack runs {shown}.{have[2]}: move to the latest {shown} patch ({shown}.{latest}) "
                        f"first, then to {want[0]}.{want[1]} (Temporal upgrades from the latest patch of a minor).")
    if from_version and from_version != to_version and "fork" in (from_version, to_version):
        problems.append(
            f"temporal.server_version {from_version!r} -> {to_version!r}: only the temporal-dsql fork runs on Aurora "
            "DSQL, and its schema is not upstream's; there is no upgrade path between them.")
    target_schema = versions.load(to_version).dsql_schema_version
    if database_schema and target_schema and _schema_tuple(target_schema) < _schema_tuple(database_schema):
        problems.append(
            f"the database holds DSQL schema {database_schema}, and {to_version} expects {target_schema}: a "
            "downgrade below the database's schema is not supported; use a server that expects "
            f"{database_schema} or later.")
    return problems


def database_schema(state: RecordedState) -> str | None:
    """The DSQL schema version the last successful schema task applied (recorded, or implied by its version)."""
    schema = state.setting(SCHEMA_SETTING) or {}
    if schema.get("dsql_schema_version"):
        return schema["dsql_schema_version"]
    if schema.get("server_version") in versions.SUPPORTED:
        return versions.load(schema["server_version"]).dsql_schema_version
    return None


def check_hop(from_image: str, from_version: str | None, to_image: str, to_version: str,
              state: RecordedState) -> None:
    problems = hop_problems(from_image, from_version, to_image, to_version, database_schema(state))
    if problems:
        raise BadInput("\n".join(problems) + "\nNothing was changed.")
