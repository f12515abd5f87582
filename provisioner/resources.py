"""Find-or-create for any taggable resource, and the EC2 resource kinds.

A step finds its resource by the ID in the state first, then by its tags (more
than one match is an error, never a guess), and only then creates it with the
tags set in the same call. Only a service's own NotFound codes mean "absent":
an expired credential must never look like a deleted resource.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from botocore.exceptions import ClientError

from provisioner.errors import ProvisionError, aws_failure, error_code
from provisioner.naming import TAG_KEY, TAG_STEP, Naming
from provisioner.session import Aws
from provisioner.waiter import call_with_retry, wait_for


class Kind(Protocol):
    kind: str
    noun: str

    def get(self, aws: Aws, resource_id: str) -> dict | None: ...

    def find(self, aws: Aws, naming: Naming, key: str | None = None, name: str | None = None) -> list[dict]:
        """This project's live resources (one logical key if given; `name` for name-addressed kinds)."""

    def id_of(self, item: dict) -> str: ...

    def tags_of(self, item: dict) -> dict[str, str]: ...

    def delete(self, aws: Aws, resource_id: str) -> None: ...


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    KINDS[kind.kind] = kind
    return kind


@dataclass(frozen=True)
class Ec2Kind:
    kind: str
    noun: str
    resource_type: str
    describe: str
    result_key: str
    id_field: str
    ids_param: str
    not_found: tuple[str, ...]
    delete_call: str
    delete_param: str
    filter_param: str = "Filters"
    state_field: str | None = None
    gone_states: tuple[str, ...] = ()

    def _live(self, items: list[dict]) -> list[dict]:
        if not self.state_field:
            return items
        return [i for i in items if i.get(self.state_field) not in self.gone_states]

    def get(self, aws: Aws, resource_id: str) -> dict | None:
        ec2 = aws.client("ec2")
        try:
            items = getattr(ec2, self.describe)(**{self.ids_param: [resource_id]})[self.result_key]
        except ClientError as exc:
            if error_code(exc) in self.not_found:
                return None
            raise aws_failure(f"describe {self.noun} {resource_id}", exc) from exc
        live = self._live(items)
        return live[0] if live else None

    def find(self, aws: Aws, naming: Naming, key: str | None = None, name: str | None = None) -> list[dict]:
        ec2 = aws.client("ec2")
        items: list[dict] = []
        paginate = ec2.can_paginate(self.describe)
        try:
            if paginate:
                pages = ec2.get_paginator(self.describe).paginate(**{self.filter_param: naming.tag_filters(key)})
                for page in pages:
                    items.extend(page[self.result_key])
            else:
                items = getattr(ec2, self.describe)(**{self.filter_param: naming.tag_filters(key)})[self.result_key]
        except ClientError as exc:
            raise aws_failure(f"look up {self.noun}s by tag", exc) from exc
        return self._live(items)

    def id_of(self, item: dict) -> str:
        return item[self.id_field]

    def tags_of(self, item: dict) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in item.get("Tags", [])}

    def tag_spec(self, naming: Naming, step: str, key: str) -> list[dict]:
        return [{"ResourceType": self.resource_type, "Tags": naming.tag_list(step, key)}]

    def delete(self, aws: Aws, resource_id: str) -> None:
        ec2 = aws.client("ec2")
        param: Any = [resource_id] if self.delete_param.endswith("s") else resource_id
        try:
            response = getattr(ec2, self.delete_call)(**{self.delete_param: param})
        except ClientError as exc:
            if error_code(exc) in self.not_found:
                return
            raise aws_failure(f"delete {self.noun} {resource_id}", exc) from exc
        failed = [u for u in response.get("Unsuccessful", []) if u.get("Error", {}).get("Code") not in self.not_found]
        if failed:
            raise ProvisionError(f"Failed to delete {self.noun} {resource_id}: {failed[0].get('Error')}")


VPC = register(Ec2Kind(
    "vpc", "VPC", "vpc", "describe_vpcs", "Vpcs", "VpcId", "VpcIds",
    ("InvalidVpcID.NotFound",), "delete_vpc", "VpcId",
))
SUBNET = register(Ec2Kind(
    "subnet", "subnet", "subnet", "describe_subnets", "Subnets", "SubnetId", "SubnetIds",
    ("InvalidSubnetID.NotFound",), "delete_subnet", "SubnetId",
))
INTERNET_GATEWAY = register(Ec2Kind(
    "internet-gateway", "internet gateway", "internet-gateway", "describe_internet_gateways",
    "InternetGateways", "InternetGatewayId", "InternetGatewayIds",
    ("InvalidInternetGatewayID.NotFound",), "delete_internet_gateway", "InternetGatewayId",
))
ROUTE_TABLE = register(Ec2Kind(
    "route-table", "route table", "route-table", "describe_route_tables", "RouteTables",
    "RouteTableId", "RouteTableIds", ("InvalidRouteTableID.NotFound",), "delete_route_table", "RouteTableId",
))
SECURITY_GROUP = register(Ec2Kind(
    "security-group", "security group", "security-group", "describe_security_groups", "SecurityGroups",
    "GroupId", "GroupIds", ("InvalidGroup.NotFound", "InvalidGroupId.NotFound"), "delete_security_group", "GroupId",
))
ELASTIC_IP = register(Ec2Kind(
    "elastic-ip", "Elastic IP", "elastic-ip", "describe_addresses", "Addresses", "AllocationId",
    "AllocationIds", ("InvalidAllocationID.NotFound",), "release_address", "AllocationId",
))
NAT_GATEWAY = register(Ec2Kind(
    "nat-gateway", "NAT gateway", "natgateway", "describe_nat_gateways", "NatGateways", "NatGatewayId",
    "NatGatewayIds", ("NatGatewayNotFound", "InvalidNatGatewayID.NotFound"), "delete_nat_gateway", "NatGatewayId",
    filter_param="Filter", state_field="State", gone_states=("deleting", "deleted", "failed"),
))
LAUNCH_TEMPLATE = register(Ec2Kind(
    "launch-template", "launch template", "launch-template", "describe_launch_templates", "LaunchTemplates",
    "LaunchTemplateId", "LaunchTemplateIds",
    ("InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateId.Malformed", "InvalidLaunchTemplateName.NotFoundException"),
    "delete_launch_template", "LaunchTemplateId",
))
VPC_ENDPOINT = register(Ec2Kind(
    "vpc-endpoint", "VPC endpoint", "vpc-endpoint", "describe_vpc_endpoints", "VpcEndpoints", "VpcEndpointId",
    "VpcEndpointIds", ("InvalidVpcEndpointId.NotFound",), "delete_vpc_endpoints", "VpcEndpointIds",
    state_field="State", gone_states=("deleting", "deleted", "failed", "rejected", "Deleting", "Deleted", "Failed", "Rejected"),
))


def ensure(
    ctx,
    kind: Kind,
    key: str,
    create: Callable[[], dict],
    detail: str = "",
    name: str | None = None,
    attributes_of: Callable[[dict], dict] | None = None,
    **attributes: Any,
) -> dict | None:
    """The resource `key` of this step: found by state ID, then by tags (or `name`), else created and recorded.

    `attributes` (and `attributes_of(item)`) are recorded beside the ID for later steps to read.
    Returns the live description, or None in a plan when it does not exist yet.
    """
    recorded_id = ctx.state.id_of(ctx.step, key)
    item = kind.get(ctx.aws, recorded_id) if recorded_id else None
    if item is None:
        matches = kind.find(ctx.aws, ctx.naming, key, name)
        if len(matches) > 1:
            ids = ", ".join(kind.id_of(m) for m in matches)
            raise ProvisionError(
                f"Found {len(matches)} {kind.noun}s tagged as {ctx.naming.name(key)} ({ids}); expected one. "
                "Delete the extra ones, then run again."
            )
        item = matches[0] if matches else None
    if item is None:
        item = ctx.change("create", kind.noun, key, detail, act=create)
        if item is None:
            return None
    if not ctx.dry_run:
        derived = attributes_of(item) if attributes_of else {}
        ctx.record(key, kind.id_of(item), kind=kind.kind, **attributes, **derived)
    return item


def differs(current: Any, desired: Any) -> bool:
    """True when any field the tool sets has another value (extra fields AWS adds are ignored)."""
    if isinstance(desired, dict):
        return not isinstance(current, dict) or any(differs(current.get(k), v) for k, v in desired.items())
    if isinstance(desired, list):
        return not isinstance(current, list) or len(current) != len(desired) or any(
            differs(c, d) for c, d in zip(current, desired)
        )
    return current != desired


def _tagged(ctx, kind: Kind) -> Iterator[tuple[str, dict]]:
    """(logical key, item) for every live resource of `kind` tagged for this project and step."""
    for item in kind.find(ctx.aws, ctx.naming):
        tags = kind.tags_of(item)
        if tags.get(TAG_STEP) == ctx.step:
            yield tags.get(TAG_KEY, "?"), item


def step_inventory(ctx, kinds: list[Kind]) -> list[tuple[str, str, str]]:
    """Every live resource of these kinds tagged for this project and step, as (key, kind, id)."""
    return [(key, kind.kind, kind.id_of(item)) for kind in kinds for key, item in _tagged(ctx, kind)]


def owned(ctx, kind: Kind) -> dict[str, tuple[str, dict]]:
    """Live resources of `kind` this step owns, by ID: recorded in the state or found by tags.

    Records of resources that are gone are dropped from the state on the way.
    """
    found: dict[str, tuple[str, dict]] = {}
    for key, record in ctx.state.step_records(ctx.step).items():
        if record.get("kind") == kind.kind:
            item = kind.get(ctx.aws, record["id"])
            if item is None:
                ctx.state.forget(ctx.step, key)
            else:
                found[record["id"]] = (key, item)
    for key, item in _tagged(ctx, kind):
        found.setdefault(kind.id_of(item), (key, item))
    return found


def destroy_kind(
    ctx,
    kind: Kind,
    before_delete: Callable[[dict], Any] | None = None,
    retry_dependency: float = 0,
) -> list[str]:
    """Delete every resource of `kind` this step owns: recorded in the state or found by tags.

    With `retry_dependency`, a DependencyViolation (a dependent still going away) is retried that many seconds.
    """
    targets = owned(ctx, kind)
    deleted = []
    for resource_id, (key, item) in sorted(targets.items(), key=lambda t: t[1][0]):
        def act(item=item, resource_id=resource_id) -> None:
            if before_delete:
                before_delete(item)
            if retry_dependency:
                call_with_retry(
                    lambda: kind.delete(ctx.aws, resource_id),
                    retry_codes=("DependencyViolation",), timeout=retry_dependency,
                )
            else:
                kind.delete(ctx.aws, resource_id)

        ctx.change("delete", kind.noun, key, resource_id, act=act)
        if not ctx.dry_run:
            ctx.state.forget(ctx.step, key)
        deleted.append(resource_id)
    return deleted


def wait_deleted(ctx, kind: Kind, resource_ids: list[str], timeout: float | None = None) -> None:
    """Wait until each deleted resource is gone (default: the config's default timeout)."""
    for resource_id in resource_ids:
        ctx.say(f"waiting for {kind.noun} {resource_id} to be deleted")
        wait_for(
            f"{kind.noun} {resource_id} to be deleted",
            lambda resource_id=resource_id: True if kind.get(ctx.aws, resource_id) is None else None,
            timeout=timeout or ctx.config.timeouts.default,
        )


def ingress_rules(aws: Aws, group_id: str) -> list[dict]:
    """A group's ingress rules, one per source, each with the ID that revokes exactly it."""
    pages = aws.client("ec2").get_paginator("describe_security_group_rules").paginate(
        Filters=[{"Name": "group-id", "Values": [group_id]}]
    )
    return [r for page in pages for r in page["SecurityGroupRules"] if not r["IsEgress"]]
