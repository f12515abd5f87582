"""The availability zones a deployment uses: one per private subnet.

Configured ones must be zones of the region; otherwise the region's first zones are chosen once and
kept in the state, so the network and the capacity checks always mean the same zones.
"""
from __future__ import annotations

from provisioner.errors import BadInput


def zones_of(ctx) -> list[str]:
    """The zones of the private subnets: configured (each must be in the region), or the region's first
    ones, chosen once and kept in the state. Read-only: preflight checks them before anything is made."""
    net = ctx.config.network
    chosen = ctx.state.setting("availability_zones")
    if not net.availability_zones and chosen and len(chosen) == len(net.private_subnet_cidrs):
        return chosen
    # Asked by the network and capacity preflights and the network step: once per run.
    response = ctx.aws.read("ec2", "availability-zones", lambda: ctx.aws.client("ec2").describe_availability_zones(
        Filters=[{"Name": "state", "Values": ["available"]}, {"Name": "zone-type", "Values": ["availability-zone"]}]
    ))
    available = sorted(z["ZoneName"] for z in response["AvailabilityZones"])
    if net.availability_zones:
        unknown = [z for z in net.availability_zones if z not in available]
        if unknown:
            raise BadInput(
                f"network.availability_zones names {', '.join(unknown)}, not an available zone of {ctx.aws.region}; "
                f"its zones are {', '.join(available)}."
            )
        return net.availability_zones
    if len(available) < len(net.private_subnet_cidrs):
        raise BadInput(
            f"{ctx.aws.region} has {len(available)} availability zones but network.private_subnet_cidrs lists "
            f"{len(net.private_subnet_cidrs)} subnets (one per zone); list fewer subnets."
        )
    return available[: len(net.private_subnet_cidrs)]
