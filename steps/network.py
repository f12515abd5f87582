"""The network (README: "What gets built"): the VPC, private subnets, the NAT-only public subnet,
internet gateway, Elastic IP, NAT gateway and route tables.

The NAT gateway is only started here; its default route is added by the nat_route step, which is the one
place that waits for it. `put_default_route` is the one writer of default routes, for both.
"""
from __future__ import annotations

from dataclasses import dataclass

from provisioner.aws.converge import (
    create_without_twins,
    destroy_kind,
    ensure,
    wait_deleted,
)
from provisioner.aws.kinds import (
    ELASTIC_IP,
    INTERNET_GATEWAY,
    NAT_GATEWAY,
    ROUTE_TABLE,
    SUBNET,
    VPC,
)
from provisioner.aws.session import Aws
from provisioner.aws.waiter import WaitFailed, call_with_retry, wait_for
from provisioner.engine import Step, StepContext
from provisioner.errors import ProvisionError
from provisioner.step_outputs import Recorded, StepOutputs
from provisioner.zones import zones_of

PUBLIC_SUBNET = "public-nat"
PUBLIC_ROUTES = "public-routes"
PRIVATE_ROUTES = "private-routes"
ANYWHERE = "0.0.0.0/0"


def private_subnet_key(zone: str) -> str:
    return f"private-{zone}"


@dataclass(frozen=True)
class NetworkOutputs(StepOutputs):
    """What the rest of the stack is placed in: the VPC, its private subnets and their route table."""

    step = "network"
    vpc_id: str
    private_subnet_ids: tuple[str, ...]
    private_route_table_id: str
    nat_gateway_id: str
    # As built, for the settings that cannot change (provisioner/immutable.py); None or empty: not yet.
    vpc_cidr: str | None
    private_subnet_zones: dict[str, str]  # the zone of each private subnet, by its CIDR
    public_subnet_cidr: str | None

    @classmethod
    def read(cls, recorded: Recorded) -> NetworkOutputs:
        return cls(
            vpc_id=recorded.value("vpc"), private_subnet_ids=recorded.ids(tier="private"),
            private_route_table_id=recorded.value(PRIVATE_ROUTES), nat_gateway_id=recorded.value("nat"),
            vpc_cidr=recorded.optional("vpc", "cidr"),
            private_subnet_zones=recorded.pairs("cidr", "zone", tier="private"),
            public_subnet_cidr=recorded.optional(PUBLIC_SUBNET, "cidr"),
        )


class Network(Step):
    name = "network"
    title = "Network"
    produces = NetworkOutputs
    kinds = (VPC, SUBNET, INTERNET_GATEWAY, ELASTIC_IP, NAT_GATEWAY, ROUTE_TABLE)

    def preflight(self, ctx: StepContext) -> None:
        zones_of(ctx)

    def zones(self, ctx: StepContext) -> list[str]:
        """Configured zones, or the region's first ones, chosen once and kept in the state."""
        chosen = zones_of(ctx)
        if not ctx.dry_run and not ctx.config.network.availability_zones:
            ctx.state.set_setting("availability_zones", chosen)
        return chosen

    def apply(self, ctx: StepContext) -> None:
        net = ctx.config.network
        ec2 = ctx.aws.client("ec2")
        naming = ctx.naming
        zones = self.zones(ctx)

        # What needs nothing else first: the VPC and the NAT gateway's address.
        vpc, eip = ctx.together(
            lambda: ensure(
                ctx, VPC, "vpc",
                lambda: ec2.create_vpc(CidrBlock=net.vpc_cidr, TagSpecifications=VPC.tag_spec(naming, self.name, "vpc"))["Vpc"],
                detail=net.vpc_cidr, cidr=net.vpc_cidr,
            ),
            lambda: ensure(
                ctx, ELASTIC_IP, "nat-eip",
                lambda: ec2.allocate_address(Domain="vpc", TagSpecifications=ELASTIC_IP.tag_spec(naming, self.name, "nat-eip")),
            ),
        )
        vpc_id = vpc["VpcId"] if vpc else None
        if vpc:
            _refuse_replacement(vpc["CidrBlock"], net.vpc_cidr, "network.vpc_cidr", "the VPC")

        subnets = [(private_subnet_key(z), z, c, "private") for z, c in zip(zones, net.private_subnet_cidrs, strict=True)]
        subnets.append((PUBLIC_SUBNET, zones[0], net.public_subnet_cidr, "public"))
        subnet_ids: dict[str, str | None] = {}

        def subnet_of(spec: tuple[str, str, str, str]) -> None:
            key, zone, cidr, tier = spec
            subnet = ensure(
                ctx, SUBNET, key,
                lambda: ec2.create_subnet(
                    VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone,
                    TagSpecifications=SUBNET.tag_spec(naming, self.name, key),
                )["Subnet"],
                detail=f"{cidr} in {zone}", tier=tier, zone=zone, cidr=cidr,
            )
            subnet_ids[key] = subnet["SubnetId"] if subnet else None
            if subnet:
                _refuse_replacement(subnet["CidrBlock"], cidr, "network subnet CIDRs", f"subnet {key}")
                _refuse_replacement(subnet["AvailabilityZone"], zone, "network.availability_zones", f"subnet {key}")
                if subnet.get("MapPublicIpOnLaunch"):
                    ctx.change(
                        "update", SUBNET.noun, key, "stop assigning public IPs",
                        act=lambda: ec2.modify_subnet_attribute(SubnetId=subnet["SubnetId"], MapPublicIpOnLaunch={"Value": False}),
                    )

        def internet_gateway() -> str | None:
            igw = ensure(
                ctx, INTERNET_GATEWAY, "igw",
                lambda: ec2.create_internet_gateway(
                    TagSpecifications=INTERNET_GATEWAY.tag_spec(naming, self.name, "igw")
                )["InternetGateway"],
            )
            igw_id = igw["InternetGatewayId"] if igw else None
            if not (igw and any(a.get("VpcId") == vpc_id for a in igw.get("Attachments", []))):
                ctx.change(
                    "update", INTERNET_GATEWAY.noun, "igw", "attach to the VPC",
                    act=lambda: ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id),
                )
            return igw_id

        # Everything that needs only the VPC, side by side.
        _, *_subnets, igw_id, public_routes, private_routes = ctx.together(
            lambda: self._ensure_dns(ctx, vpc_id),
            *[lambda spec=spec: subnet_of(spec) for spec in subnets],
            internet_gateway,
            lambda: self._route_table(ctx, vpc_id, PUBLIC_ROUTES),
            lambda: self._route_table(ctx, vpc_id, PRIVATE_ROUTES),
        )

        def create_nat_gateway() -> dict:
            if eip.get("AssociationId"):
                _wait_address_freed(ctx, eip, vpc_id)
            return call_with_retry(
                # A fresh EIP can be invisible to the NAT API for a moment.
                lambda: ec2.create_nat_gateway(
                    SubnetId=subnet_ids[PUBLIC_SUBNET], AllocationId=eip["AllocationId"], ConnectivityType="public",
                    ClientToken=naming.client_token("nat"),
                    TagSpecifications=NAT_GATEWAY.tag_spec(naming, self.name, "nat"),
                )["NatGateway"],
                retry_codes=("InvalidAllocationID.NotFound", "InvalidElasticIpID.NotFound"),
                timeout=60,
            )

        def nat_gateway() -> None:
            ensure(ctx, NAT_GATEWAY, "nat", create_nat_gateway, detail=f"in {PUBLIC_SUBNET}")

        def public_routing() -> None:
            if public_routes is None or not _has_route(public_routes, "GatewayId", igw_id):
                ctx.change(
                    "update", ROUTE_TABLE.noun, PUBLIC_ROUTES, f"route {ANYWHERE} via the internet gateway",
                    act=lambda: put_default_route(ctx.aws, public_routes, GatewayId=igw_id),
                )
            self._associate(ctx, public_routes, PUBLIC_ROUTES, [subnet_ids[PUBLIC_SUBNET]])

        ctx.together(
            nat_gateway,
            public_routing,
            lambda: self._associate(ctx, private_routes, PRIVATE_ROUTES,
                                    [subnet_ids[private_subnet_key(z)] for z in zones]),
        )

    def _ensure_dns(self, ctx: StepContext, vpc_id: str | None) -> None:
        """Private DNS of the interface endpoints needs both attributes; a new VPC has only support on."""
        ec2 = ctx.aws.client("ec2")

        def ensure_on(attribute: str, field: str) -> None:
            if vpc_id:
                current = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)[field]["Value"]
            else:
                current = attribute == "enableDnsSupport"
            if not current:
                ctx.change(
                    "update", VPC.noun, "vpc", f"enable {attribute}",
                    act=lambda: ec2.modify_vpc_attribute(VpcId=vpc_id, **{field: {"Value": True}}),
                )

        ctx.each([("enableDnsSupport", "EnableDnsSupport"), ("enableDnsHostnames", "EnableDnsHostnames")],
                 lambda pair: ensure_on(*pair))

    def _route_table(self, ctx: StepContext, vpc_id: str | None, key: str) -> dict | None:
        ec2 = ctx.aws.client("ec2")
        return ensure(
            ctx, ROUTE_TABLE, key,
            lambda: ec2.create_route_table(
                VpcId=vpc_id, ClientToken=ctx.naming.client_token(key),
                TagSpecifications=ROUTE_TABLE.tag_spec(ctx.naming, self.name, key),
            )["RouteTable"],
        )

    def _associate(self, ctx: StepContext, table: dict | None, key: str, subnet_ids: list[str | None]) -> None:
        ec2 = ctx.aws.client("ec2")
        associated = {a.get("SubnetId") for a in (table or {}).get("Associations", [])}
        for subnet_id in subnet_ids:
            if subnet_id is not None and subnet_id in associated:
                continue

            def associate(subnet_id: str | None = subnet_id) -> None:
                assert table is not None and subnet_id is not None  # None only in a plan, which runs no act
                _associate_subnet(ec2, table["RouteTableId"], subnet_id)

            ctx.change("update", ROUTE_TABLE.noun, key, f"associate {subnet_id or 'new subnet'}", act=associate)

    def destroy(self, ctx: StepContext) -> None:
        ec2 = ctx.aws.client("ec2")
        # The EIP and the public subnet are held until the NAT gateway is gone.
        wait_deleted(ctx, NAT_GATEWAY, destroy_kind(ctx, NAT_GATEWAY), ctx.config.timeouts.nat_gateway)
        destroy_kind(
            ctx, ELASTIC_IP,
            before_delete=lambda eip: eip.get("AssociationId") and ec2.disassociate_address(AssociationId=eip["AssociationId"]),
        )
        destroy_kind(ctx, ROUTE_TABLE, before_delete=lambda table: _disassociate_all(ec2, table))
        destroy_kind(ctx, INTERNET_GATEWAY, before_delete=lambda igw: _detach_all(ec2, igw))
        # Endpoint and task ENIs leave a subnet a little after their owner is deleted.
        destroy_kind(ctx, SUBNET, before_delete=None, retry_dependency=ctx.config.timeouts.default)
        destroy_kind(ctx, VPC, retry_dependency=ctx.config.timeouts.default)

    def outputs(self, ctx: StepContext) -> dict:
        records = ctx.state.step_records(self.name)
        if "vpc" not in records:
            return {}
        return {
            "vpc_id": records["vpc"]["id"],
            "private_subnet_ids": [r["id"] for r in records.values() if r.get("tier") == "private"],
            "nat_gateway_id": records.get("nat", {}).get("id"),
        }


def _wait_address_freed(ctx: StepContext, eip: dict, vpc_id: str | None) -> None:
    """The NAT gateway's address, once a NAT gateway deleted out of band has let it go. "Deleting a public NAT
    gateway disassociates its Elastic IP address" (EC2 API reference, DeleteNatGateway), once the gateway is
    deleted; until then CreateNatGateway refuses the address (Resource.AlreadyAssociated). An address held by
    anything else is not waited for."""
    ec2 = ctx.aws.client("ec2")
    allocation = eip["AllocationId"]

    def freed() -> dict | None:
        (address,) = ec2.describe_addresses(AllocationIds=[allocation])["Addresses"]
        if not address.get("AssociationId"):
            return address
        going = [n["NatGatewayId"] for n in ec2.describe_nat_gateways(Filter=[{"Name": "vpc-id", "Values": [vpc_id]}])["NatGateways"]
                 if n["State"] in ("deleting", "deleted")
                 and any(a.get("AssociationId") == address["AssociationId"] for a in n.get("NatGatewayAddresses", []))]
        if not going:
            raise WaitFailed(
                f"the NAT gateway's Elastic IP {address.get('PublicIp')} ({allocation}) is associated with "
                f"{address.get('NetworkInterfaceId') or address.get('InstanceId')}, not with a NAT gateway being deleted: "
                "disassociate it (aws ec2 disassociate-address), then run 'provision up' again."
            )
        ctx.say(f"waiting for the deleted NAT gateway {going[0]} to free Elastic IP {address.get('PublicIp')}")
        return None

    wait_for(f"Elastic IP {allocation} to be disassociated", freed, timeout=ctx.config.timeouts.nat_gateway)


def _refuse_replacement(actual: str, desired: str, setting: str, what: str) -> None:
    if actual != desired:
        raise ProvisionError(
            f"{what} has {actual} but {setting} asks for {desired}; this cannot change in place. "
            f"Put {actual} back in the config, or run 'provision destroy' first to rebuild."
        )


def _has_route(table: dict, target_field: str, target_id: str | None) -> bool:
    return any(
        r.get("DestinationCidrBlock") == ANYWHERE and r.get(target_field) == target_id and target_id
        for r in table.get("Routes", [])
    )


def put_default_route(aws: Aws, table: dict, **target: str) -> None:
    """The table's default route to `target` (GatewayId or NatGatewayId): replaced if it has one, else
    created; a create whose answer was lost is found by reading the table again. The one writer of
    default routes: the public one here, the private one through the NAT gateway in nat_route."""
    ec2 = aws.client("ec2")
    exists = any(r.get("DestinationCidrBlock") == ANYWHERE for r in table.get("Routes", []))
    call = ec2.replace_route if exists else ec2.create_route
    (field, target_id), = target.items()

    def routed() -> bool | None:
        live = ROUTE_TABLE.get(aws, table["RouteTableId"])
        return True if live and _has_route(live, field, target_id) else None

    create_without_twins(lambda: call(RouteTableId=table["RouteTableId"], DestinationCidrBlock=ANYWHERE, **target),
                         routed, f"the default route of {table['RouteTableId']}")


def _associate_subnet(ec2, table_id: str, subnet_id: str) -> None:
    current = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])["RouteTables"]
    for other in current:
        for association in other.get("Associations", []):
            if association.get("SubnetId") == subnet_id:
                ec2.replace_route_table_association(
                    AssociationId=association["RouteTableAssociationId"], RouteTableId=table_id
                )
                return
    ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet_id)


def _disassociate_all(ec2, table: dict) -> None:
    for association in table.get("Associations", []):
        if not association.get("Main"):
            ec2.disassociate_route_table(AssociationId=association["RouteTableAssociationId"])


def _detach_all(ec2, igw: dict) -> None:
    for attachment in igw.get("Attachments", []):
        ec2.detach_internet_gateway(InternetGatewayId=igw["InternetGatewayId"], VpcId=attachment["VpcId"])
