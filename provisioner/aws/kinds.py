"""Resource kinds: what every kind answers (get, find, id, tags, write tags, delete), and the EC2 kinds.

Only a service's own NotFound codes mean "absent": an expired credential must never look
like a deleted resource.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, TypeVar

from botocore.exceptions import ClientError

from provisioner.aws.session import Aws
from provisioner.errors import ProvisionError, aws_failure, error_code
from provisioner.naming import Naming


class Kind(Protocol):
    # Read-only (properties): the kinds are frozen dataclasses, declared once in this module and named_kinds.
    @property
    def kind(self) -> str: ...

    @property
    def noun(self) -> str: ...

    @property
    def service(self) -> str:
        """The client that reads it, as in aws.client(service)."""

    @property
    def batched(self) -> bool:
        """Whether get_many describes many at once."""

    @property
    def read_ahead(self) -> bool:
        """Read at the start of a run (Engine.read_ahead): the steps read it by recorded ID."""

    def get(self, aws: Aws, resource_id: str) -> dict | None: ...

    def get_many(self, aws: Aws, resource_ids: list[str]) -> dict[str, dict] | None:
        """{id: item} of the resources, in as few calls as the API allows; None when one is gone (EC2 refuses
        the batch) or the kind is not batched: then each is read alone."""

    def find(self, aws: Aws, naming: Naming, key: str | None = None, name: str | None = None) -> list[dict]:
        """This project's live resources (one logical key if given; `name` for name-addressed kinds)."""

    def id_of(self, item: dict) -> str: ...

    def tags_of(self, item: dict) -> dict[str, str]: ...

    def desired_tags(self, naming: Naming, step: str, key: str) -> dict[str, str]:
        """The tags this tool gives the resource (created with them, restored when they drift)."""

    def write_tags(self, aws: Aws, item: dict, tags: dict[str, str]) -> None:
        """Set these tags on the resource (adding or overwriting them; other tags are left as they are)."""

    def delete(self, aws: Aws, resource_id: str) -> None: ...


class Lifecycle(Kind, Protocol):
    """A kind that also creates and updates its resources: what converge() needs (named_kinds.NamedKind)."""

    @property
    def create(self) -> Callable[[Aws, Desired], dict | None] | None: ...

    @property
    def settings(self) -> Callable[[dict], dict] | None: ...

    @property
    def update(self) -> Callable[[Aws, dict, dict], None] | None: ...


@dataclass(frozen=True)
class Desired:
    """One resource as a step wants it, which its kind's `create` makes and converge() keeps so.

    `spec` holds the settings the tool owns, in the shape the kind's `settings` reads them from AWS: those
    that differ are what `update` is given. `name` is None for kinds AWS names itself (by a generated ID).
    """

    key: str
    name: str | None
    tags: dict[str, str]
    client_token: str
    spec: dict[str, Any]


KINDS: dict[str, Kind] = {}


K = TypeVar("K", bound=Kind)


def register(kind: K) -> K:
    """`kind` entered in KINDS by its name, and returned as it is (its own type: an Ec2Kind has tag_spec)."""
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
    service: str = "ec2"
    batched = True
    read_ahead = True

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

    def get_many(self, aws: Aws, resource_ids: list[str]) -> dict[str, dict] | None:
        """Live ones by ID, in one call; None when one of them is gone (EC2 then refuses the whole call)."""
        try:
            items = getattr(aws.client("ec2"), self.describe)(**{self.ids_param: resource_ids})[self.result_key]
        except ClientError as exc:
            if error_code(exc) in self.not_found:
                return None
            raise aws_failure(f"describe {self.noun}s", exc) from exc
        return {item[self.id_field]: item for item in self._live(items)}

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

    def desired_tags(self, naming: Naming, step: str, key: str) -> dict[str, str]:
        return naming.tags(step, key)

    def write_tags(self, aws: Aws, item: dict, tags: dict[str, str]) -> None:
        # CreateTags adds or overwrites the given keys only (EC2 API reference).
        aws.client("ec2").create_tags(Resources=[self.id_of(item)], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

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


def ingress_rules(aws: Aws, group_id: str, every_group: tuple[str, ...] = ()) -> list[dict]:
    """A group's ingress rules, one per source, each with the ID that revokes exactly it.

    With `every_group` (the step's groups, `group_id` among them), the rules of all of them are read in
    one call shared by the run, rather than one call per group.
    """
    groups = tuple(sorted(set(every_group) | {group_id}))

    def read() -> list[dict]:
        pages = aws.client("ec2").get_paginator("describe_security_group_rules").paginate(
            Filters=[{"Name": "group-id", "Values": list(groups)}]
        )
        return [r for page in pages for r in page["SecurityGroupRules"] if not r["IsEgress"]]

    return [r for r in aws.read("ec2", ("ingress-rules", groups), read) if r["GroupId"] == group_id]
