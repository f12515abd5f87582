"""The private subnets' default route through the NAT gateway (README: "What gets built, step by step").

A step of its own because it is the only thing that must wait for the NAT
gateway (minutes in AWS); the endpoints and everything else go on meanwhile.
"""
from __future__ import annotations

from provisioner.aws.converge import live
from provisioner.aws.kinds import ANYWHERE, NAT_GATEWAY, ROUTE_TABLE, delete_default_route, put_default_route
from provisioner.aws.waiter import WaitFailed, wait_for
from provisioner.engine import Step, StepContext
from provisioner.errors import ProvisionError
from provisioner.step_outputs import known
from provisioner.steps.network import NetworkOutputs


class NatRoute(Step):
    name = "nat_route"
    title = "NAT route"
    requires = ("network",)

    def apply(self, ctx: StepContext) -> None:
        network = ctx.outputs_of(NetworkOutputs)
        table_id, nat_id = network.private_route_table_id, network.nat_gateway_id
        table = live(ctx, ROUTE_TABLE, table_id) if known(table_id) else None
        current = [r for r in (table or {}).get("Routes", []) if r.get("DestinationCidrBlock") == ANYWHERE]
        if known(nat_id) and any(r.get("NatGatewayId") == nat_id for r in current):
            return
        if ctx.dry_run:
            ctx.change("create", "route", "private-default", f"{ANYWHERE} via the NAT gateway")
            return
        if table is None:
            raise ProvisionError(f"route table {table_id} is gone; run 'provision up' again to replace it")
        self._wait_available(ctx, nat_id)
        ctx.change(
            "create", "route", "private-default", f"{ANYWHERE} via {nat_id}",
            act=lambda: put_default_route(ctx.aws, table, NatGatewayId=nat_id),
        )

    def _wait_available(self, ctx: StepContext, nat_id: str) -> None:
        def probe():
            nat = NAT_GATEWAY.get(ctx.aws, nat_id)
            if nat is None:
                raise WaitFailed(
                    f"NAT gateway {nat_id} failed or was deleted; run 'provision up' again to replace it."
                )
            ctx.say(f"waiting for NAT gateway {nat_id} ({nat['State']})")
            return nat if nat["State"] == "available" else None

        wait_for(f"NAT gateway {nat_id}", probe, timeout=ctx.config.timeouts.nat_gateway)

    def destroy(self, ctx: StepContext) -> None:
        table_id = NetworkOutputs.so_far(ctx.state).private_route_table_id
        table = live(ctx, ROUTE_TABLE, table_id) if known(table_id) else None
        if table and any(r.get("DestinationCidrBlock") == ANYWHERE for r in table.get("Routes", [])):
            ctx.change("delete", "route", "private-default", ANYWHERE,
                       act=lambda: delete_default_route(ctx.aws, table["RouteTableId"]))
