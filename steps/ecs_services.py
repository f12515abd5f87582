"""The ECS services, one per Temporal role plus the UI, Grafana and the collector, created at zero tasks
(README: "Staged deployment").

Each service runs on its node group's capacity provider, in the private subnets with no public
IP, pinned to its nodes by the `workload` attribute, with ECS Exec, a deployment circuit breaker
that rolls back, and Service Connect: history, matching and frontend are discoverable
(client-server), worker and UI are clients only. The task counts belong to `provision scale`:
`up` starts every service at 0 and afterwards keeps whatever count the state records.
"""
from __future__ import annotations

from dataclasses import dataclass

from provisioner.aws.converge import destroy_kind, differs, ensure, wait_deleted
from provisioner.aws.named_kinds import ECS_SERVICE, service_address
from provisioner.aws.propagation import ECS_ROLE, until_propagated
from provisioner.ecs_layout import NODE_GROUP, SERVICE_CONNECT, SERVICES
from provisioner.engine import Step, StepContext
from provisioner.step_outputs import Recorded, StepOutputs, known
from provisioner.steps.cluster import ClusterOutputs
from provisioner.steps.network import NetworkOutputs
from provisioner.steps.security_groups import SecurityGroupOutputs
from provisioner.steps.task_definitions import TaskDefinitionOutputs
from provisioner.temporal.roles import (
    DISCOVERY_NAME,
    GRPC_PORT,
    PER_REQUEST_TIMEOUT_SECONDS,
)

COUNTS_SETTING = "service_counts"
# What ECS Exec runs in a service's container: a shell, except in the collector, whose image is FROM scratch
# and holds only the collector and its health probe.
EXEC_PROGRAM = {"collector": "/healthcheck"}
# A rolling deployment starts new tasks before it stops old ones: up to twice the count at once.
DEPLOYMENT_MAXIMUM_PERCENT = 200


def service_key(service: str) -> str:
    return f"svc-{service}"


@dataclass(frozen=True)
class ServicesOutputs(StepOutputs):
    """The ECS service name of each service made so far, by its name in SERVICES (a service not made yet is
    absent: the commands that address one say so)."""

    step = "services"
    names: dict[str, str]
    arns: dict[str, str]

    @classmethod
    def read(cls, recorded: Recorded) -> ServicesOutputs:
        return cls(recorded.by_prefix(service_key(""), "name"), recorded.by_prefix(service_key("")))


def service_name(ctx: StepContext, service: str) -> str:
    return ctx.naming.name(service)


def recorded_counts(ctx: StepContext) -> dict[str, int]:
    return ctx.state.setting(COUNTS_SETTING, {})


def service_connect(ctx: StepContext, service: str, namespace_arn: str) -> dict:
    config: dict = {
        "enabled": True,
        "namespace": namespace_arn,
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": ctx.naming.log_group(service),
            "awslogs-region": ctx.aws.region,
            "awslogs-stream-prefix": "service-connect",
        }},
    }
    if service in DISCOVERY_NAME:
        name = DISCOVERY_NAME[service]
        config["services"] = [{
            "portName": "grpc",
            "discoveryName": name,
            "clientAliases": [{"port": GRPC_PORT[service], "dnsName": name}],
            "timeout": {"perRequestTimeoutSeconds": PER_REQUEST_TIMEOUT_SECONDS},
        }]
    return config


def service_spec(ctx: StepContext, service: str, task_definition: str, namespace_arn: str,
                 subnets: list[str], security_group: str) -> dict:
    """Every setting `up` owns; the task count is not one of them."""
    group = NODE_GROUP[service]
    spec = {
        "taskDefinition": task_definition,
        "capacityProviderStrategy": [{"capacityProvider": ctx.naming.name(f"node-{group}"), "weight": 1, "base": 0}],
        "networkConfiguration": {"awsvpcConfiguration": {
            "subnets": sorted(subnets), "securityGroups": [security_group], "assignPublicIp": "DISABLED",
        }},
        "placementConstraints": [{"type": "memberOf", "expression": f"attribute:workload == {group}"}],
        "placementStrategy": [{"type": "spread", "field": "attribute:ecs.availability-zone"}],
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "maximumPercent": DEPLOYMENT_MAXIMUM_PERCENT,
            "minimumHealthyPercent": 100,
        },
        "enableExecuteCommand": True,
    }
    if service in SERVICE_CONNECT:
        spec["serviceConnectConfiguration"] = service_connect(ctx, service, namespace_arn)
    return spec


def live_spec(service: dict) -> dict:
    """The same settings as AWS reports them (Service Connect lives on the primary deployment)."""
    primary = [d for d in service.get("deployments", []) if d.get("status") == "PRIMARY"]
    network = service.get("networkConfiguration", {}).get("awsvpcConfiguration", {})
    return {
        "taskDefinition": service.get("taskDefinition"),
        "capacityProviderStrategy": service.get("capacityProviderStrategy"),
        "networkConfiguration": {"awsvpcConfiguration": network | {"subnets": sorted(network.get("subnets", []))}},
        "placementConstraints": service.get("placementConstraints"),
        "placementStrategy": service.get("placementStrategy"),
        "deploymentConfiguration": service.get("deploymentConfiguration"),
        "enableExecuteCommand": service.get("enableExecuteCommand"),
        "serviceConnectConfiguration": primary[0].get("serviceConnectConfiguration") if primary else None,
    }


class Services(Step):
    name = "services"
    title = "ECS services"
    requires = ("network", "security_groups", "cluster", "capacity", "task_definitions")
    produces = ServicesOutputs
    kinds = (ECS_SERVICE,)

    def apply(self, ctx: StepContext) -> None:
        cluster = ctx.outputs_of(ClusterOutputs)
        subnets = list(ctx.outputs_of(NetworkOutputs).private_subnet_ids)
        # A definition the plan expects to replace reads as known after apply: the service then plans to follow.
        definitions = ctx.outputs_of(TaskDefinitionOutputs).services
        groups = ctx.outputs_of(SecurityGroupOutputs)
        cluster_name = cluster.cluster_name if known(cluster.cluster_name) else ctx.naming.cluster()
        counts = recorded_counts(ctx)
        # The frontend's count belongs to Application Auto Scaling while it autoscales (steps/autoscaling.py):
        # the recorded count starts it, and a later up does not reset what the autoscaler chose.
        autoscaled = {"frontend"} if ctx.config.services.frontend.autoscaling is not None and counts.get("frontend") else set()

        def service_of(service: str) -> None:
            spec = service_spec(
                ctx, service, definitions[service].arn, cluster.namespace_arn, subnets, groups.of_service(service),
            )
            live = self._ensure(ctx, service, cluster_name, spec, counts.get(service), service in autoscaled)
            if live is not None and service not in counts:
                # A lost state must not scale a running cluster down: adopt the live count.
                counts[service] = live["desiredCount"]

        ctx.each(SERVICES, service_of)
        if not ctx.dry_run and counts != recorded_counts(ctx):
            ctx.state.set_setting(COUNTS_SETTING, counts)

    def _ensure(self, ctx: StepContext, service: str, cluster_name: str, spec: dict, count: int | None,
                autoscaled: bool = False) -> dict | None:
        """The service with `spec`; `count` tasks if the state records one (a new service starts at 0), unless
        it is `autoscaled` and running: then the autoscaler owns its count."""
        ecs = ctx.aws.client("ecs")
        key = service_key(service)
        name = service_name(ctx, service)

        def create() -> dict:
            # ECS assumes its service-linked role (perhaps made by this run) to wire the task network.
            return until_propagated(ECS_ROLE, ctx.config.timeouts.iam_propagation, lambda: ecs.create_service(
                cluster=cluster_name, serviceName=name, desiredCount=count or 0, schedulingStrategy="REPLICA",
                propagateTags="SERVICE", enableECSManagedTags=True,
                tags=[{"key": k, "value": v} for k, v in ctx.naming.tags(self.name, key).items()],
                clientToken=ctx.naming.client_token(key)[:36], **spec,
            ))["service"]

        live = ensure(ctx, ECS_SERVICE, key, create, detail=f"{name}, {count or 0} tasks",
                      name=service_address(cluster_name, name), attributes_of=lambda s: {"name": s["serviceName"]})
        if live is None:
            return None
        current = live_spec(live)
        drift = {field: value for field, value in spec.items() if differs(current[field], value)}
        if count is not None and live["desiredCount"] != count and not (autoscaled and live["desiredCount"]):
            drift["desiredCount"] = count
        if drift:
            # A new capacity provider strategy or network only takes effect with a new deployment.
            force = bool({"capacityProviderStrategy", "networkConfiguration", "placementStrategy"} & set(drift))
            ctx.change(
                "update", ECS_SERVICE.noun, key, ", ".join(sorted(drift)),
                act=lambda: ecs.update_service(cluster=cluster_name, service=name, forceNewDeployment=force, **drift),
            )
        return live

    def destroy(self, ctx: StepContext) -> None:
        wait_deleted(ctx, ECS_SERVICE, destroy_kind(ctx, ECS_SERVICE))

    def outputs(self, ctx: StepContext) -> dict:
        names = ServicesOutputs.so_far(ctx.state).names
        cluster_name = ClusterOutputs.so_far(ctx.state).cluster_name
        if not names or not known(cluster_name):
            return {}
        region = ctx.aws.region
        return {
            "services": names,
            "service_counts": recorded_counts(ctx),
            "exec_commands": {
                service: (f"aws ecs execute-command --region {region} --cluster {cluster_name} "
                          f"--task $(aws ecs list-tasks --region {region} --cluster {cluster_name} "
                          f"--service-name {name} --query 'taskArns[0]' --output text) "
                          f"--container {service} --interactive --command {EXEC_PROGRAM.get(service, '/bin/sh')}")
                for service, name in names.items()
            },
            "tunnel_commands": {service: f"provision tunnel {service}" for service in ("grafana", "ui")
                                if service in names},
        }
