"""VPC endpoints (README: "What gets built"): the AWS APIs the nodes and tasks use, reached without
the internet through interface endpoints with private DNS, the S3 gateway endpoint, and their security group."""
from __future__ import annotations

from provisioner.aws.converge import converge, destroy_kind
from provisioner.aws.kinds import SECURITY_GROUP, VPC_ENDPOINT
from provisioner.aws.waiter import WaitFailed, wait_for
from provisioner.engine import Step, StepContext
from provisioner.step_outputs import known
from provisioner.steps.dsql import DsqlOutputs
from provisioner.steps.network import NetworkOutputs
from provisioner.steps.security_groups import Ingress, converge_ingress

ENDPOINT_SG = "endpoints-sg"
HTTPS = 443
POSTGRES = 5432  # Aurora DSQL speaks the PostgreSQL protocol on 5432

# Interface endpoints every deployment needs: image pulls, logs, ECS Exec, secrets, metrics.
INTERFACE_SERVICES = ("ecr.api", "ecr.dkr", "logs", "ssm", "ssmmessages", "ec2messages", "secretsmanager", "aps-workspaces")
# Only for accounts with no route to the internet at all (the NAT gateway still carries the rest).
ECS_SERVICES = ("ecs", "ecs-agent", "ecs-telemetry")
GATEWAY_SERVICES = ("s3",)
DSQL_ENDPOINT = "vpce-dsql"


def endpoint_key(service: str) -> str:
    return "vpce-" + service.replace(".", "-")


def interface_services(ctx: StepContext) -> tuple[str, ...]:
    return INTERFACE_SERVICES + (ECS_SERVICES if ctx.config.endpoints.ecs_endpoints else ())


class Endpoints(Step):
    name = "endpoints"
    title = "VPC endpoints"
    requires = ("network", "dsql")
    kinds = (SECURITY_GROUP, VPC_ENDPOINT)

    def apply(self, ctx: StepContext) -> None:
        network = ctx.outputs_of(NetworkOutputs)
        vpc_id = network.vpc_id
        vpc_cidr = network.vpc_cidr or ctx.config.network.vpc_cidr
        subnet_ids = sorted(network.private_subnet_ids)
        route_table_ids = [network.private_route_table_id] if known(network.private_route_table_id) else []

        group = converge(ctx, SECURITY_GROUP, ENDPOINT_SG, name=ctx.naming.name(ENDPOINT_SG), inputs={
            "VpcId": vpc_id, "Description": "VPC interface endpoints: reachable from inside the VPC only"})
        group_id = group["GroupId"] if group else None
        self._ensure_ingress(ctx, group, vpc_cidr)

        def interface(service_name: str) -> tuple[dict, dict]:
            return ({"VpcEndpointType": "Interface", "ServiceName": service_name},
                    {"SubnetIds": subnet_ids, "SecurityGroupIds": [group_id], "PrivateDnsEnabled": True})

        region = ctx.aws.region
        # key -> (what only the create takes, what converges)
        desired = {endpoint_key(service): interface(f"com.amazonaws.{region}.{service}")
                   for service in interface_services(ctx)}
        if ctx.config.dsql.private_link:
            # The cluster's own connection endpoint service (GetVpcEndpointServiceName), com.amazonaws.<region>.dsql-xxxx:
            # with private DNS, the cluster's PrivateLink host name resolves inside the VPC.
            desired[DSQL_ENDPOINT] = interface(ctx.outputs_of(DsqlOutputs).service_name or ctx.known_after_apply(
                "the Aurora DSQL cluster's endpoint service"))
        for service in GATEWAY_SERVICES:
            desired[endpoint_key(service)] = (
                {"VpcEndpointType": "Gateway", "ServiceName": f"com.amazonaws.{region}.{service}"},
                {"RouteTableIds": route_table_ids},
            )

        def endpoint_of(item: tuple[str, tuple[dict, dict]]) -> dict | None:
            key, (inputs, spec) = item
            return converge(ctx, VPC_ENDPOINT, key, spec=spec, inputs={"VpcId": vpc_id, **inputs},
                            detail=inputs["ServiceName"], service=inputs["ServiceName"])

        endpoints = [e for e in ctx.each(desired.items(), endpoint_of) if e]
        endpoint_ids = [e["VpcEndpointId"] for e in endpoints]
        pending = any(e.get("State", "").lower() != "available" for e in endpoints)
        self._remove_unwanted(ctx, set(desired))
        if not ctx.dry_run and pending:
            self._wait_available(ctx, endpoint_ids)

    def _ensure_ingress(self, ctx: StepContext, group: dict | None, vpc_cidr: str) -> None:
        """HTTPS from the VPC, and PostgreSQL (5432) when DSQL is reached through its endpoint; nothing else."""
        wanted = [Ingress(HTTPS, vpc_cidr, "HTTPS to the endpoints from the VPC", cidr=True)]
        if ctx.config.dsql.private_link:
            wanted.append(Ingress(POSTGRES, vpc_cidr, "PostgreSQL to the Aurora DSQL endpoint from the VPC", cidr=True))
        converge_ingress(ctx, ENDPOINT_SG, group["GroupId"] if group else None, wanted,
                         tuple(ctx.state.ids_of_kind(SECURITY_GROUP.kind)))

    def _remove_unwanted(self, ctx: StepContext, wanted: set[str]) -> None:
        """Endpoints switched off in the config (the ECS ones) are deleted, not left behind."""
        for key, record in ctx.state.step_records(self.name).items():
            if record.get("kind") == VPC_ENDPOINT.kind and key not in wanted:
                ctx.change(
                    "delete", VPC_ENDPOINT.noun, key, record.get("service", ""),
                    act=lambda record=record: VPC_ENDPOINT.delete(ctx.aws, record["id"]),
                )
                if not ctx.dry_run:
                    ctx.state.forget(self.name, key)

    def _wait_available(self, ctx: StepContext, endpoint_ids: list[str]) -> None:
        ec2 = ctx.aws.client("ec2")

        def probe():
            endpoints = ec2.describe_vpc_endpoints(VpcEndpointIds=endpoint_ids)["VpcEndpoints"]
            states = {e["VpcEndpointId"]: e["State"].lower() for e in endpoints}
            failed = [i for i, s in states.items() if s in ("failed", "rejected", "deleted", "deleting")]
            if failed:
                raise WaitFailed(f"VPC endpoints {', '.join(failed)} failed; check the service names and subnets.")
            pending = [i for i, s in states.items() if s != "available"]
            if pending:
                ctx.say(f"waiting for {len(pending)} of {len(states)} endpoints")
                return None
            return True

        if endpoint_ids:
            wait_for("VPC endpoints", probe, timeout=ctx.config.timeouts.vpc_endpoint)

    def destroy(self, ctx: StepContext) -> None:
        destroy_kind(ctx, VPC_ENDPOINT)
        destroy_kind(ctx, SECURITY_GROUP, retry_dependency=ctx.config.timeouts.default)

    def outputs(self, ctx: StepContext) -> dict:
        records = ctx.state.step_records(self.name)
        return {
            "vpc_endpoints": {k: r["service"] for k, r in sorted(records.items()) if r.get("kind") == VPC_ENDPOINT.kind},
            "endpoint_security_group_id": records.get(ENDPOINT_SG, {}).get("id"),
        }
