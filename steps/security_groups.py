"""One security group per service, ingress only from named groups (README: "What gets built").

The port matrix below is the whole truth: no CIDR ingress at all (the endpoint group's 443
from the VPC lives in the endpoints step), and every rule names its source group. The one
reconciler of ingress rules, `converge_ingress`, is here too: the endpoints step uses it for its group.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from provisioner.aws.converge import converge, destroy_kind, live, owned
from provisioner.aws.kinds import SECURITY_GROUP, described_ingress, ingress_rules
from provisioner.ecs_layout import GRAFANA_PORT, UI_PORT
from provisioner.engine import Step, StepContext
from provisioner.step_outputs import Recorded, StepOutputs
from provisioner.steps.network import NetworkOutputs
from provisioner.temporal.roles import (
    GRPC_PORT,
    MEMBERSHIP_PORT,
    METRICS_PORT,
    TEMPORAL_ROLES,
)

HTTPS = 443

# Who calls whose gRPC port.
GRPC_CALLERS = {
    "frontend": ("ui", "worker", "history"),  # UI and system workers are clients; history sends Nexus callbacks
    "history": ("frontend", "matching", "worker", "history"),  # history forwards to the shard owner
    "matching": ("frontend", "history", "matching"),  # matching forwards between task-queue partitions
    "worker": (),  # nothing calls the worker role; it only joins the membership ring
}

VISIBILITY_CLIENTS = ("history", "matching", "frontend", "worker")
GROUPS = (*TEMPORAL_ROLES, "ui", "grafana", "opensearch", "collector", "instances", "schema")
DESCRIPTIONS = {
    "history": "Temporal history",
    "matching": "Temporal matching",
    "frontend": "Temporal frontend",
    "worker": "Temporal worker",
    "ui": "Temporal UI",
    "grafana": "Grafana",
    "opensearch": "OpenSearch visibility domain",
    "collector": "ADOT metrics collector: scrapes, takes no traffic",
    "instances": "ECS container instances: SSM port forwarding source, takes no traffic",
    "schema": "provision schema's one-off tasks: reach DSQL and OpenSearch, take no traffic",
}


def group_key(name: str) -> str:
    return f"sg-{name}"


@dataclass(frozen=True)
class SecurityGroupOutputs(StepOutputs):
    """The group of each service and task (GROUPS), by its name there."""

    step = "security_groups"
    group_ids: dict[str, str]

    @classmethod
    def read(cls, recorded: Recorded) -> SecurityGroupOutputs:
        return cls({name: recorded.value(group_key(name)) for name in GROUPS})

    @property
    def instances(self) -> str:
        return self.group_ids["instances"]

    @property
    def opensearch(self) -> str:
        return self.group_ids["opensearch"]

    @property
    def schema(self) -> str:
        return self.group_ids["schema"]

    def of_service(self, service: str) -> str:
        return self.group_ids[service]


@dataclass(frozen=True)
class Ingress:
    """One ingress rule a group must hold: TCP on `port` from a security group or, with `cidr`, an IPv4 range."""

    port: int
    source: str
    description: str
    cidr: bool = False

    def held_by(self, rule: dict) -> bool:
        """Whether a live rule (DescribeSecurityGroupRules) is exactly this one."""
        source = rule.get("CidrIpv4") if self.cidr else rule.get("ReferencedGroupInfo", {}).get("GroupId")
        return (rule.get("IpProtocol") == "tcp" and rule.get("FromPort") == self.port == rule.get("ToPort")
                and source == self.source)

    def permission(self) -> dict:
        """As AuthorizeSecurityGroupIngress's IpPermissions take it."""
        sources = ({"IpRanges": [{"CidrIp": self.source, "Description": self.description}]} if self.cidr else
                   {"UserIdGroupPairs": [{"GroupId": self.source, "Description": self.description}]})
        return {"IpProtocol": "tcp", "FromPort": self.port, "ToPort": self.port, **sources}


def converge_ingress(ctx: StepContext, key: str, group_id: str | None, wanted: Iterable[Ingress],
                     every_group: tuple[str, ...] = ()) -> None:
    """The group admits exactly `wanted`: every other rule (and every duplicate) is revoked, the missing
    ones are authorized, each in one call. `group_id` None: the group is still to be created (a plan).
    `every_group`: the step's groups, whose rules are read in one call (kinds.ingress_rules)."""
    wanted = sorted(wanted, key=lambda rule: (rule.port, rule.source))
    if group_id is None:
        if wanted:
            ctx.change("update", SECURITY_GROUP.noun, key, f"allow {len(wanted)} ingress rules")
        return
    ec2 = ctx.aws.client("ec2")
    group = live(ctx, SECURITY_GROUP, group_id)
    held, stray = _matched(wanted, described_ingress(group) if group else [])
    if stray or group is None:
        # Only DescribeSecurityGroupRules answers the ID that revokes exactly a rule: asked when one must go
        # (or the group's description could not be read), not to learn that the group holds what it should.
        held, stray = _matched(wanted, ingress_rules(ctx.aws, group_id, every_group))
    unwanted = [rule["SecurityGroupRuleId"] for rule in stray]
    if unwanted:
        ctx.change(
            "update", SECURITY_GROUP.noun, key, f"revoke {len(unwanted)} ingress rules not in the config",
            act=lambda: ec2.revoke_security_group_ingress(GroupId=group_id, SecurityGroupRuleIds=unwanted),
        )
    missing = [w for w in wanted if w not in held]
    if missing:
        ctx.change(
            "update", SECURITY_GROUP.noun, key, f"allow {len(missing)} ingress rules",
            act=lambda: ec2.authorize_security_group_ingress(
                GroupId=group_id, IpPermissions=[rule.permission() for rule in missing]),
        )


def _matched(wanted: list[Ingress], rules: list[dict]) -> tuple[list[Ingress], list[dict]]:
    """The wanted rules the live ones hold, and the live rules that are none of them (or a duplicate)."""
    held: list[Ingress] = []
    stray: list[dict] = []
    for rule in rules:
        match = next((w for w in wanted if w not in held and w.held_by(rule)), None)
        if match is None:
            stray.append(rule)
        else:
            held.append(match)
    return held, stray


def ingress_matrix() -> dict[str, set[tuple[int, str]]]:
    """For each group: the (port, source group) pairs it admits."""
    rules: dict[str, set[tuple[int, str]]] = {g: set() for g in GROUPS}
    for role in TEMPORAL_ROLES:
        # Every role gossips with every other role on its membership port.
        rules[role] |= {(MEMBERSHIP_PORT[role], peer) for peer in TEMPORAL_ROLES}
        rules[role] |= {(GRPC_PORT[role], caller) for caller in GRPC_CALLERS[role]}
        rules[role].add((METRICS_PORT, "collector"))
    rules["ui"].add((UI_PORT, "instances"))
    rules["grafana"].add((GRAFANA_PORT, "instances"))
    # Every Temporal role queries visibility; matching too, for worker-versioning reachability (service/matching).
    rules["opensearch"] |= {(HTTPS, role) for role in VISIBILITY_CLIENTS}
    rules["opensearch"].add((HTTPS, "schema"))  # temporal-elasticsearch-tool sets up the index
    return rules


class SecurityGroups(Step):
    name = "security_groups"
    title = "Security groups"
    requires = ("network",)
    produces = SecurityGroupOutputs
    kinds = (SECURITY_GROUP,)

    def apply(self, ctx: StepContext) -> None:
        vpc_id = ctx.outputs_of(NetworkOutputs).vpc_id

        def group_of(name: str) -> dict | None:
            key = group_key(name)
            return converge(ctx, SECURITY_GROUP, key, name=ctx.naming.name(key),
                            inputs={"VpcId": vpc_id, "Description": DESCRIPTIONS[name]})

        groups = dict(zip(GROUPS, ctx.each(GROUPS, group_of), strict=True))
        ids = {name: g["GroupId"] for name, g in groups.items() if g}
        every_group = tuple(ctx.state.ids_of_kind(SECURITY_GROUP.kind))

        def rules_of(item: tuple[str, set[tuple[int, str]]]) -> None:
            name, wanted = item
            # Until every source group exists (a plan), the rules can only be counted.
            known = name in ids and all(source in ids for _, source in wanted)
            converge_ingress(
                ctx, group_key(name), ids[name] if known else None,
                [Ingress(port, ids.get(source, source), f"{source} to {name} on {port}") for port, source in wanted],
                every_group,
            )

        ctx.each(ingress_matrix().items(), rules_of)

    def destroy(self, ctx: StepContext) -> None:
        ec2 = ctx.aws.client("ec2")
        # The groups reference each other: drop every rule first, then the groups.
        groups = tuple(sorted(owned(ctx, SECURITY_GROUP)))

        def revoke_all(group_id: str) -> None:
            rules = [r["SecurityGroupRuleId"] for r in ingress_rules(ctx.aws, group_id, groups)]
            if rules:
                ctx.change(
                    "update", SECURITY_GROUP.noun, group_id, "revoke all ingress",
                    act=lambda: ec2.revoke_security_group_ingress(GroupId=group_id, SecurityGroupRuleIds=rules),
                )

        ctx.each(groups, revoke_all)
        destroy_kind(ctx, SECURITY_GROUP, retry_dependency=ctx.config.timeouts.default)

    def outputs(self, ctx: StepContext) -> dict:
        records = ctx.state.step_records(self.name)
        return {"security_groups": {k.removeprefix("sg-"): r["id"] for k, r in sorted(records.items())}}

