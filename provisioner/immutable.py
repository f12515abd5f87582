"""Settings that cannot change on a stack that exists: a change is refused, never applied.

Each entry names the setting, reads what the existing stack was built with (from the state, which a
lost state rebuilds from the live resources), and says what to do instead. `plan` and `up` check them
before anything else, so a refusal changes nothing (exit 2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from provisioner.config import Config
from provisioner.errors import BadInput
from provisioner.state import RecordedState
from provisioner.step_outputs import known
from provisioner.steps.dsql import DsqlOutputs
from provisioner.steps.network import NetworkOutputs
from provisioner.steps.opensearch import OpenSearchOutputs
from provisioner.steps.task_definitions import TaskDefinitionOutputs

NEW_STACK = "stand up a new stack (another project name) and move the workflows to it"


@dataclass(frozen=True)
class Immutable:
    setting: str
    desired: Callable[[Config, RecordedState], Any]
    built: Callable[[RecordedState], Any]  # None: nothing built yet, any value goes
    instead: str
    # Whether the config contradicts what is built: by default any difference; for lists of parts built one
    # by one (subnets), a built part missing from the config (a half-built stack may have fewer).
    contradicts: Callable[[Any, Any], bool] = lambda built, desired: built != desired


def _drops_a_built_one(built: list, desired: list) -> bool:
    return not set(built) <= set(desired)


def _dsql_cluster(state: RecordedState) -> str | None:
    cluster = DsqlOutputs.so_far(state)
    if not known(cluster.cluster_arn):
        return None
    return cluster.cluster_arn if cluster.adopted else CREATED


CREATED = "(the cluster provision created)"

IMMUTABLE = (
    Immutable(
        "temporal.num_history_shards", lambda c, s: c.temporal.num_history_shards,
        lambda s: TaskDefinitionOutputs.so_far(s).history_shards,
        "the history shards are fixed when the schema is created: put the old value back, or " + NEW_STACK,
    ),
    Immutable(
        "network.vpc_cidr", lambda c, s: c.network.vpc_cidr, lambda s: NetworkOutputs.so_far(s).vpc_cidr,
        "a VPC's primary CIDR cannot change: put the old value back, or run 'provision destroy' and 'up' again",
    ),
    Immutable(
        "network.private_subnet_cidrs", lambda c, s: sorted(c.network.private_subnet_cidrs),
        lambda s: sorted(NetworkOutputs.so_far(s).private_subnet_zones) or None,
        "a subnet's CIDR cannot change: put the old values back, or run 'provision destroy' and 'up' again",
        _drops_a_built_one,
    ),
    Immutable(
        "network.availability_zones",
        lambda c, s: sorted(c.network.availability_zones) if c.network.availability_zones else None,
        lambda s: sorted(NetworkOutputs.so_far(s).private_subnet_zones.values()) or None,
        "a subnet cannot move to another zone: put the old zones back, or run 'provision destroy' and 'up' again",
        _drops_a_built_one,
    ),
    Immutable(
        "network.public_subnet_cidr", lambda c, s: c.network.public_subnet_cidr,
        lambda s: NetworkOutputs.so_far(s).public_subnet_cidr,
        "the NAT gateway's subnet cannot change its CIDR: put the old value back",
    ),
    Immutable(
        "opensearch.engine_version", lambda c, s: c.opensearch.engine_version,
        lambda s: OpenSearchOutputs.so_far(s).engine_version,
        "upgrade the domain with 'aws opensearch upgrade-domain' (one version at a time), then set the new "
        "version here; a downgrade is not possible",
    ),
    Immutable(
        "dsql.cluster_arn", lambda c, s: c.dsql.cluster_arn or CREATED, _dsql_cluster,
        "every workflow's history is in the cluster the stack uses: put the old value back; to move to another "
        "cluster, " + NEW_STACK,
    ),
)


def moved_subnets(config: Config, state: RecordedState) -> list[str]:
    """The network step pairs the n-th zone with the n-th private CIDR: a zone list reordered (in the config,
    or the zones the state recorded when none were configured) or reordered CIDRs would move built subnets to
    other zones, which the sorted comparisons above cannot see."""
    built = NetworkOutputs.so_far(state).private_subnet_zones
    configured = config.network.availability_zones
    zones = configured or state.setting("availability_zones")
    cidrs = config.network.private_subnet_cidrs
    if not built or not zones:
        return []
    # A config with fewer ranges than zones is refused by its own validation; here only pairs matter.
    moved = [f"{cidr} was built in {built[cidr]}, now paired with {zone}"
             for zone, cidr in zip(zones, cidrs, strict=False) if cidr in built and built[cidr] != zone]
    if not moved:
        return []
    where = "network.availability_zones" if configured else "the zones recorded in the state (settings.availability_zones)"
    order = [built.get(cidr) for cidr in cidrs]
    fix = (f"list the zones in the order of network.private_subnet_cidrs: {order!r}" if None not in order
           else "put the zones and network.private_subnet_cidrs back in their old order")
    return [f"{where} = {zones!r} with network.private_subnet_cidrs = {cidrs!r} moves subnets to other zones "
            f"({'; '.join(moved)}). This cannot change in place: {fix}."]


def changed_settings(config: Config, state: RecordedState) -> list[str]:
    """One line per immutable setting the config changes, with the old and new value and what to do."""
    problems = moved_subnets(config, state)
    for item in IMMUTABLE:
        built = item.built(state)
        desired = item.desired(config, state)
        if built is None or desired is None or not item.contradicts(built, desired):
            continue
        problems.append(f"{item.setting}: the stack was built with {built!r}, the config now says {desired!r}. "
                        f"This cannot change in place: {item.instead}.")
    return problems


def check(config: Config, state: RecordedState) -> None:
    problems = changed_settings(config, state)
    if problems:
        raise BadInput("\n".join(problems))
