"""The network (README: "What gets built"): the VPC, private subnets, the NAT-only public subnet,
internet gateway, Elastic IP, NAT gateway and route tables.

The NAT gateway is only started here; its default route is added by the nat_route step, which is the one
place that waits for it. `put_default_route` (provisioner/aws/kinds.py) writes the default routes of both.
"""
from __future__ import annotations

from dataclasses import dataclass

from provisioner.aws.converge import converge, destroy_kind, wait_deleted
from provisioner.aws.kinds import (
    ANYWHERE,
    ELASTIC_IP,
    INTERNET_GATEWAY,
    NAT_GATEWAY,
    ROUTE_TABLE,
    SUBNET,
    VPC,
    has_default_route,
    put_default_route,
)
from provisioner.aws.waiter import WaitFailed, wait_for
from provisioner.engine import Step, StepContext
from provisioner.step_outputs import Recorded, StepOutputs
from provisioner.zones import zones_of

PUBLIC_SUBNET = "public-nat"
PUBLIC_ROUTES = "public-routes"
PRIVATE_ROUTES = "private-routes"


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
        zones = self.zones(ctx)

        # What needs nothing else first: the VPC (with the DNS names the interface endpoints' private DNS
        # needs) and the NAT gateway's address.
        vpc, eip = ctx.together(
            lambda: converge(ctx, VPC, "vpc", detail=net.vpc_cidr, cidr=net.vpc_cidr, spec={
                "CidrBlock": net.vpc_cidr, "enableDnsSupport": True, "enableDnsHostnames": True}),
            lambda: converge(ctx, ELASTIC_IP, "nat-eip", inputs={"Domain": "vpc"}),
        )
        vpc_id = vpc["VpcId"] if vpc else None

        subnets = [(private_subnet_key(z), z, c, "private") for z, c in zip(zones, net.private_subnet_cidrs, strict=True)]
        subnets.append((PUBLIC_SUBNET, zones[0], net.public_subnet_cidr, "public"))

        def subnet_of(spec: tuple[str, str, str, str]) -> str | None:
            key, zone, cidr, tier = spec
            subnet = converge(ctx, SUBNET, key, detail=f"{cidr} in {zone}", tier=tier, zone=zone, cidr=cidr,
                              spec={"CidrBlock": cidr, "AvailabilityZone": zone, "MapPublicIpOnLaunch": False},
                              inputs={"VpcId": vpc_id})
            return subnet["SubnetId"] if subnet else None

        # Everything that needs only the VPC, side by side.
        *found, igw, public_routes, private_routes = ctx.together(
            *[lambda spec=spec: subnet_of(spec) for spec in subnets],
            lambda: converge(ctx, INTERNET_GATEWAY, "igw", spec={"Attachments": [{"VpcId": vpc_id}]}),
            lambda: converge(ctx, ROUTE_TABLE, PUBLIC_ROUTES, inputs={"VpcId": vpc_id}),
            lambda: converge(ctx, ROUTE_TABLE, PRIVATE_ROUTES, inputs={"VpcId": vpc_id}),
        )
        subnet_ids = {key: subnet_id for (key, *_), subnet_id in zip(subnets, found, strict=True)}
        igw_id = igw["InternetGatewayId"] if igw else None

        def address_freed() -> None:
            if eip.get("AssociationId"):
                _wait_address_freed(ctx, eip, vpc_id)

        def nat_gateway() -> None:
            converge(
                ctx, NAT_GATEWAY, "nat", detail=f"in {PUBLIC_SUBNET}", before_create=address_freed,
                inputs={"SubnetId": subnet_ids[PUBLIC_SUBNET], "AllocationId": eip["AllocationId"] if eip else None,
                        "ConnectivityType": "public"},
            )

        def public_routing() -> None:
            if public_routes is None or not has_default_route(public_routes, "GatewayId", igw_id):
                ctx.change(
                    "update", ROUTE_TABLE.noun, PUBLIC_ROUTES, f"route {ANYWHERE} via the internet gateway",
                    act=lambda: put_default_route(ctx.aws, public_routes, GatewayId=igw["InternetGatewayId"]),
                )
            self._associate(ctx, public_routes, PUBLIC_ROUTES, [subnet_ids[PUBLIC_SUBNET]])

        ctx.together(
            nat_gateway,
            public_routing,
            lambda: self._associate(ctx, private_routes, PRIVATE_ROUTES,
                                    [subnet_ids[private_subnet_key(z)] for z in zones]),
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
