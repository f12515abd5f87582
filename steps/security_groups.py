"""Seed tasks 6 and 22.5/22.6: one security group per service, ingress only from named groups.

The port matrix below is the whole truth: no CIDR ingress at all (the endpoint group's 443
from the VPC lives in the endpoints step), and every rule names its source group.
"""
from __future__ import annotations

from provisioner.aws.converge import destroy_kind, ensure, owned
from provisioner.aws.kinds import SECURITY_GROUP, ingress_rules
from provisioner.ecs_layout import GRAFANA_PORT, UI_PORT
from provisioner.engine import Step, StepContext
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
    kinds = (SECURITY_GROUP,)

    def apply(self, ctx: StepContext) -> None:
        ec2 = ctx.aws.client("ec2")
        vpc = ctx.require("network", "vpc")
        vpc_id = vpc["id"] if vpc else None

        def group_of(name: str) -> dict | None:
            key = group_key(name)
            return ensure(
                ctx, SECURITY_GROUP, key,
                lambda: ec2.create_security_group(
                    GroupName=ctx.naming.name(key), VpcId=vpc_id, Description=DESCRIPTIONS[name],
                    TagSpecifications=SECURITY_GROUP.tag_spec(ctx.naming, self.name, key),
                ),
            )

        groups = dict(zip(GROUPS, ctx.each(GROUPS, group_of)))
        ids = {name: g["GroupId"] for name, g in groups.items() if g}
        ctx.each(ingress_matrix().items(), lambda item: self._converge_rules(ctx, item[0], groups[item[0]], item[1], ids))

    def _converge_rules(self, ctx: StepContext, name: str, group: dict | None, wanted: set, ids: dict) -> None:
        ec2 = ctx.aws.client("ec2")
        key = group_key(name)
        if group is None or not all(source in ids for _, source in wanted):
            if wanted:
                ctx.change("update", SECURITY_GROUP.noun, key, f"allow {len(wanted)} ingress rules")
            return
        desired = {(port, ids[source]) for port, source in wanted}
        current: set[tuple[int, str]] = set()
        unwanted: list[str] = []
        for rule in ingress_rules(ctx.aws, group["GroupId"], tuple(ctx.state.ids_of_kind(SECURITY_GROUP.kind))):
            source = rule.get("ReferencedGroupInfo", {}).get("GroupId")
            pair = (rule.get("FromPort"), source)
            if rule.get("IpProtocol") == "tcp" and rule.get("FromPort") == rule.get("ToPort") and pair in desired \
                    and pair not in current:
                current.add(pair)
            else:
                unwanted.append(rule["SecurityGroupRuleId"])
        if unwanted:
            ctx.change(
                "update", SECURITY_GROUP.noun, key, f"revoke {len(unwanted)} ingress rules not in the matrix",
                act=lambda: ec2.revoke_security_group_ingress(GroupId=group["GroupId"], SecurityGroupRuleIds=unwanted),
            )
        missing = sorted(desired - current)
        if missing:
            names = {v: k for k, v in ids.items()}
            permissions = [
                {"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                 "UserIdGroupPairs": [{"GroupId": source, "Description": f"{names[source]} to {name} on {port}"}]}
                for port, source in missing
            ]
            ctx.change(
                "update", SECURITY_GROUP.noun, key, f"allow {len(missing)} ingress rules",
                act=lambda: ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=permissions),
            )

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

