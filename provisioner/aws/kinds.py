"""Resource kinds: what every kind answers (get, find, id, tags, write tags, delete), and the EC2 kinds.

Only a service's own NotFound codes mean "absent": an expired credential must never look
like a deleted resource.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, TypeVar

from botocore.exceptions import ClientError

from provisioner.aws.run_pool import side_by_side
from provisioner.aws.session import Aws
from provisioner.aws.waiter import call_with_retry, create_without_twins
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
    """A kind that also creates and updates its resources: what converge() needs (Ec2Kind, named_kinds.NamedKind).

    `create` makes the resource from a Desired and returns its live item; `settings` reads the live item's
    fields in the spec's shape (with the client, for a field its describe does not carry); `update` applies
    the fields that differ ({field: desired value}; the Desired too, for what an update call needs beside them).
    Without `update`, nothing changes in place. A kind whose resources AWS never changes (a task definition's
    revision) sets `update_replaces`: its `update` makes a new resource in the old one's place and returns it.
    """

    # Read-only (properties) like Kind's, so the frozen dataclasses' fields satisfy them.
    @property
    def create(self) -> Callable[[Aws, Desired], dict | None] | None: ...

    @property
    def settings(self) -> Callable[[Aws, dict], dict] | None: ...

    @property
    def update(self) -> Callable[[Aws, dict, dict, Desired], dict | None] | None: ...

    @property
    def update_replaces(self) -> bool:
        """`update` returns a new resource (a new ID) that takes the key's place: converge() records it."""

    @property
    def fixed(self) -> tuple[str, ...]:
        """Fields of the spec AWS cannot change in place: a difference is refused."""


@dataclass(frozen=True)
class Desired:
    """One resource as a step wants it, which its kind's `create` makes and converge() keeps so.

    `spec` holds the settings the tool owns, in the shape the kind's `settings` reads them from AWS: those
    that differ are what `update` is given. `inputs` is what only the create takes and nothing compares
    (the VPC a subnet goes in, a CIDR, a name AWS keeps): what cannot change is refused before (immutable.py).
    `name` is None for kinds AWS names itself (by a generated ID).
    """

    key: str
    name: str | None
    tags: dict[str, str]
    client_token: str
    spec: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    # The config's [timeouts] (TimeoutsConfig), for a create that waits for its resource or for IAM.
    timeouts: Any = None

    def tag_list(self) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in self.tags.items()]


def changes(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The desired fields whose live value differs ({field: desired value}): the one diff every kind's update
    is given. Fields AWS adds and the tool does not set are no concern of it (differs)."""
    return {field: value for field, value in desired.items() if differs(current.get(field), value)}


def differs(current: Any, desired: Any) -> bool:
    """True when any field the tool sets has another value (extra fields AWS adds are ignored)."""
    if isinstance(desired, dict):
        return not isinstance(current, dict) or any(differs(current.get(k), v) for k, v in desired.items())
    if isinstance(desired, list):
        return not isinstance(current, list) or len(current) != len(desired) or any(
            differs(c, d) for c, d in zip(current, desired, strict=True)
        )
    return current != desired


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
    # The lifecycle converge() drives (Lifecycle): None where the step only finds and deletes.
    create: Callable[[Aws, Desired], dict | None] | None = None
    settings: Callable[[Aws, dict], dict] | None = None
    update: Callable[[Aws, dict, dict, Desired], dict | None] | None = None
    fixed: tuple[str, ...] = ()
    update_replaces = False  # every EC2 kind with an update changes its resource in place
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

    def tag_specification(self, desired: Desired) -> list[dict]:
        """TagSpecifications: the tags set in the create call itself."""
        return [{"ResourceType": self.resource_type, "Tags": desired.tag_list()}]

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


# A new VPC's DNS attributes (VPC user guide, "DNS attributes for your VPC": enableDnsSupport is true and
# enableDnsHostnames false for a VPC not made by default): only what differs is set at create.
NEW_VPC_DNS = {"enableDnsSupport": True, "enableDnsHostnames": False}


def _create_vpc(aws: Aws, desired: Desired) -> dict:
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock=desired.spec["CidrBlock"], TagSpecifications=VPC.tag_specification(desired))["Vpc"]
    _set_vpc_attributes(aws, vpc, {a: v for a, v in desired.spec.items() if a in NEW_VPC_DNS and NEW_VPC_DNS[a] != v})
    return vpc


def _vpc_settings(aws: Aws, vpc: dict) -> dict:
    """The CIDR, and the DNS attributes, which DescribeVpcAttribute reads one a call."""
    ec2 = aws.client("ec2")

    def attribute(name: str) -> bool:
        return ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute=name)[_capitalized(name)]["Value"]

    return {"CidrBlock": vpc["CidrBlock"], **dict(zip(NEW_VPC_DNS, side_by_side(list(NEW_VPC_DNS), attribute), strict=True))}


def _set_vpc_attributes(aws: Aws, vpc: dict, attributes: dict) -> None:
    # ModifyVpcAttribute takes one attribute a call (EC2 API reference).
    for name, value in attributes.items():
        aws.client("ec2").modify_vpc_attribute(VpcId=vpc["VpcId"], **{_capitalized(name): {"Value": value}})


def _capitalized(attribute: str) -> str:
    """enableDnsSupport (DescribeVpcAttribute's Attribute) -> EnableDnsSupport (its answer's and Modify's field)."""
    return attribute[0].upper() + attribute[1:]


VPC = register(Ec2Kind(
    "vpc", "VPC", "vpc", "describe_vpcs", "Vpcs", "VpcId", "VpcIds",
    ("InvalidVpcID.NotFound",), "delete_vpc", "VpcId",
    create=_create_vpc, settings=_vpc_settings,
    update=lambda aws, vpc, changed, desired: _set_vpc_attributes(aws, vpc, changed),
    fixed=("CidrBlock",),
))


def _create_subnet(aws: Aws, desired: Desired) -> dict:
    """In the VPC of desired.inputs; a subnet not made by default assigns no public IP (MapPublicIpOnLaunch false)."""
    spec = desired.spec
    return aws.client("ec2").create_subnet(
        CidrBlock=spec["CidrBlock"], AvailabilityZone=spec["AvailabilityZone"],
        TagSpecifications=SUBNET.tag_specification(desired), **desired.inputs,
    )["Subnet"]


SUBNET = register(Ec2Kind(
    "subnet", "subnet", "subnet", "describe_subnets", "Subnets", "SubnetId", "SubnetIds",
    ("InvalidSubnetID.NotFound",), "delete_subnet", "SubnetId",
    create=_create_subnet,
    settings=lambda aws, subnet: {"CidrBlock": subnet["CidrBlock"], "AvailabilityZone": subnet["AvailabilityZone"],
                                  "MapPublicIpOnLaunch": bool(subnet.get("MapPublicIpOnLaunch"))},
    update=lambda aws, subnet, changed, desired: aws.client("ec2").modify_subnet_attribute(
        SubnetId=subnet["SubnetId"], MapPublicIpOnLaunch={"Value": changed["MapPublicIpOnLaunch"]}),
    fixed=("CidrBlock", "AvailabilityZone"),
))


def _create_internet_gateway(aws: Aws, desired: Desired) -> dict:
    """Created, then attached to the VPC of the spec: the item as EC2 now holds it."""
    ec2 = aws.client("ec2")
    gateway = ec2.create_internet_gateway(TagSpecifications=INTERNET_GATEWAY.tag_specification(desired))["InternetGateway"]
    _attach_internet_gateway(aws, gateway, desired.spec)
    return gateway | {"Attachments": desired.spec["Attachments"]}


def _attach_internet_gateway(aws: Aws, gateway: dict, spec: dict) -> None:
    for attachment in spec["Attachments"]:
        aws.client("ec2").attach_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"], VpcId=attachment["VpcId"])


INTERNET_GATEWAY = register(Ec2Kind(
    "internet-gateway", "internet gateway", "internet-gateway", "describe_internet_gateways",
    "InternetGateways", "InternetGatewayId", "InternetGatewayIds",
    ("InvalidInternetGatewayID.NotFound",), "delete_internet_gateway", "InternetGatewayId",
    create=_create_internet_gateway,
    settings=lambda aws, gateway: {"Attachments": [{"VpcId": a.get("VpcId")} for a in gateway.get("Attachments", [])]},
    update=lambda aws, gateway, changed, desired: _attach_internet_gateway(aws, gateway, changed),
))
# Annotated, as ELASTIC_IP and LAUNCH_TEMPLATE are: its create refers to the kind itself, which mypy cannot infer.
ROUTE_TABLE: Ec2Kind = register(Ec2Kind(
    "route-table", "route table", "route-table", "describe_route_tables", "RouteTables",
    "RouteTableId", "RouteTableIds", ("InvalidRouteTableID.NotFound",), "delete_route_table", "RouteTableId",
    create=lambda aws, desired: aws.client("ec2").create_route_table(
        ClientToken=desired.client_token, TagSpecifications=ROUTE_TABLE.tag_specification(desired), **desired.inputs,
    )["RouteTable"],
))


ANYWHERE = "0.0.0.0/0"


def has_default_route(table: dict, target_field: str, target_id: str | None) -> bool:
    """Whether the table's default route goes to `target_id` (its GatewayId or NatGatewayId)."""
    return any(
        r.get("DestinationCidrBlock") == ANYWHERE and r.get(target_field) == target_id and target_id
        for r in table.get("Routes", [])
    )


def put_default_route(aws: Aws, table: dict, **target: str) -> None:
    """The table's default route to `target` (GatewayId or NatGatewayId): replaced if it has one, else
    created; a create whose answer was lost is found by reading the table again. The one writer of
    default routes: the public one (steps/network.py), the private one through the NAT gateway (nat_route)."""
    ec2 = aws.client("ec2")
    exists = any(r.get("DestinationCidrBlock") == ANYWHERE for r in table.get("Routes", []))
    call = ec2.replace_route if exists else ec2.create_route
    (field, target_id), = target.items()

    def routed() -> bool | None:
        live = ROUTE_TABLE.get(aws, table["RouteTableId"])
        return True if live and has_default_route(live, field, target_id) else None

    create_without_twins(lambda: call(RouteTableId=table["RouteTableId"], DestinationCidrBlock=ANYWHERE, **target),
                         routed, f"the default route of {table['RouteTableId']}")


def delete_default_route(aws: Aws, table_id: str) -> None:
    """Delete the table's default route; one already gone is done."""
    try:
        aws.client("ec2").delete_route(RouteTableId=table_id, DestinationCidrBlock=ANYWHERE)
    except ClientError as exc:
        if error_code(exc) != "InvalidRoute.NotFound":
            raise aws_failure(f"delete the default route of {table_id}", exc) from exc


def _create_security_group(aws: Aws, desired: Desired) -> dict:
    """A group with no ingress (its rules are the step's: steps/security_groups.py converge_ingress), in the VPC
    and with the description of desired.inputs."""
    return aws.client("ec2").create_security_group(
        GroupName=desired.name, TagSpecifications=SECURITY_GROUP.tag_specification(desired), **desired.inputs)


SECURITY_GROUP = register(Ec2Kind(
    "security-group", "security group", "security-group", "describe_security_groups", "SecurityGroups",
    "GroupId", "GroupIds", ("InvalidGroup.NotFound", "InvalidGroupId.NotFound"), "delete_security_group", "GroupId",
    create=_create_security_group,
))
ELASTIC_IP: Ec2Kind = register(Ec2Kind(
    "elastic-ip", "Elastic IP", "elastic-ip", "describe_addresses", "Addresses", "AllocationId",
    "AllocationIds", ("InvalidAllocationID.NotFound",), "release_address", "AllocationId",
    create=lambda aws, desired: aws.client("ec2").allocate_address(
        TagSpecifications=ELASTIC_IP.tag_specification(desired), **desired.inputs),
))
def _create_nat_gateway(aws: Aws, desired: Desired) -> dict:
    return call_with_retry(
        # A fresh Elastic IP can be invisible to the NAT API for a moment.
        lambda: aws.client("ec2").create_nat_gateway(
            ClientToken=desired.client_token, TagSpecifications=NAT_GATEWAY.tag_specification(desired), **desired.inputs,
        )["NatGateway"],
        retry_codes=("InvalidAllocationID.NotFound", "InvalidElasticIpID.NotFound"),
        timeout=60,
    )


NAT_GATEWAY = register(Ec2Kind(
    "nat-gateway", "NAT gateway", "natgateway", "describe_nat_gateways", "NatGateways", "NatGatewayId",
    "NatGatewayIds", ("NatGatewayNotFound", "InvalidNatGatewayID.NotFound"), "delete_nat_gateway", "NatGatewayId",
    filter_param="Filter", state_field="State", gone_states=("deleting", "deleted", "failed"),
    create=_create_nat_gateway,
))
def _launch_template_data(aws: Aws, template: dict) -> dict:
    """The data of the template's latest version (the one its Auto Scaling group launches: Version $Latest)."""
    return {"LaunchTemplateData": aws.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Latest"])["LaunchTemplateVersions"][0]["LaunchTemplateData"]}


def _new_launch_template_version(aws: Aws, template: dict, changed: dict, desired: Desired) -> None:
    """A version never changes: other data is a new version, which becomes $Latest. No token is given, so a
    version whose answer was lost is looked for as the latest holding the data."""
    data = changed["LaunchTemplateData"]
    create_without_twins(
        lambda: aws.client("ec2").create_launch_template_version(
            LaunchTemplateId=template["LaunchTemplateId"], LaunchTemplateData=data),
        lambda: None if differs(_launch_template_data(aws, template), changed) else True,
        f"a version of launch template {template['LaunchTemplateId']}",
    )


LAUNCH_TEMPLATE: Ec2Kind = register(Ec2Kind(
    "launch-template", "launch template", "launch-template", "describe_launch_templates", "LaunchTemplates",
    "LaunchTemplateId", "LaunchTemplateIds",
    ("InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateId.Malformed", "InvalidLaunchTemplateName.NotFoundException"),
    "delete_launch_template", "LaunchTemplateId",
    create=lambda aws, desired: aws.client("ec2").create_launch_template(
        LaunchTemplateName=desired.name, LaunchTemplateData=desired.spec["LaunchTemplateData"],
        ClientToken=desired.client_token, TagSpecifications=LAUNCH_TEMPLATE.tag_specification(desired),
    )["LaunchTemplate"],
    settings=_launch_template_data, update=_new_launch_template_version,
))
def _create_vpc_endpoint(aws: Aws, desired: Desired) -> dict:
    return aws.client("ec2").create_vpc_endpoint(
        ClientToken=desired.client_token, TagSpecifications=VPC_ENDPOINT.tag_specification(desired),
        **desired.inputs, **desired.spec,
    )["VpcEndpoint"]


def _vpc_endpoint_settings(aws: Aws, endpoint: dict) -> dict:
    """What ModifyVpcEndpoint changes: a gateway endpoint's route tables; an interface endpoint's private DNS,
    subnets and groups. The ID lists are sets to AWS: sorted, and a step declares them sorted."""
    if endpoint.get("VpcEndpointType", "").lower() == "gateway":
        return {"RouteTableIds": sorted(endpoint.get("RouteTableIds", []))}
    return {
        "PrivateDnsEnabled": endpoint.get("PrivateDnsEnabled"),
        "SubnetIds": sorted(endpoint.get("SubnetIds", [])),
        "SecurityGroupIds": sorted(g["GroupId"] for g in endpoint.get("Groups", [])),
    }


def _update_vpc_endpoint(aws: Aws, endpoint: dict, changed: dict, desired: Desired) -> None:
    """One ModifyVpcEndpoint: each ID list as what to add and what to remove (its Add…/Remove… parameters)."""
    current = _vpc_endpoint_settings(aws, endpoint)
    request: dict[str, Any] = {}
    for name, wanted in changed.items():
        if not isinstance(wanted, list):
            request[name] = wanted
            continue
        if add := sorted(set(wanted) - set(current[name])):
            request[f"Add{name}"] = add
        if remove := sorted(set(current[name]) - set(wanted)):
            request[f"Remove{name}"] = remove
    aws.client("ec2").modify_vpc_endpoint(VpcEndpointId=endpoint["VpcEndpointId"], **request)


VPC_ENDPOINT = register(Ec2Kind(
    "vpc-endpoint", "VPC endpoint", "vpc-endpoint", "describe_vpc_endpoints", "VpcEndpoints", "VpcEndpointId",
    "VpcEndpointIds", ("InvalidVpcEndpointId.NotFound",), "delete_vpc_endpoints", "VpcEndpointIds",
    state_field="State", gone_states=("deleting", "deleted", "failed", "rejected", "Deleting", "Deleted", "Failed", "Rejected"),
    create=_create_vpc_endpoint, settings=_vpc_endpoint_settings, update=_update_vpc_endpoint,
))


def described_ingress(group: dict) -> list[dict]:
    """A group's ingress from its DescribeSecurityGroups item (IpPermissions: a protocol and ports with their
    sources), one rule per source in DescribeSecurityGroupRules' shape, without the rule IDs only that call
    answers: enough to tell whether the group holds what it should, which the run's one describe of every
    recorded group (converge.live) answers without another call."""
    rules = []
    for permission in group.get("IpPermissions", []):
        ports = {k: permission[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in permission}
        rules += [ports | {"CidrIpv4": r["CidrIp"]} for r in permission.get("IpRanges", [])]
        rules += [ports | {"CidrIpv6": r["CidrIpv6"]} for r in permission.get("Ipv6Ranges", [])]
        rules += [ports | {"PrefixListId": r["PrefixListId"]} for r in permission.get("PrefixListIds", [])]
        rules += [ports | {"ReferencedGroupInfo": {"GroupId": r["GroupId"]}} for r in permission.get("UserIdGroupPairs", [])]
    return rules


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
