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

from provisioner.aws.converge import converge, destroy_kind, live, wait_deleted
from provisioner.aws.named_kinds import ECS_SERVICE, service_address
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

        def service_of(service: str) -> None:
            key, name, count = service_key(service), service_name(ctx, service), counts.get(service)
            spec = service_spec(
                ctx, service, definitions[service].arn, cluster.namespace_arn, subnets, groups.of_service(service),
            )
            if count is not None and not self._autoscaler_owns_count(ctx, service, count):
                spec["desiredCount"] = count
            live = converge(
                ctx, ECS_SERVICE, key, name=service_address(cluster_name, name), spec=spec,
                # Created at 0 tasks unless the state records a count (then the spec's); the tasks carry the
                # service's tags, and ECS's own (cluster, service).
                inputs={"desiredCount": 0, "schedulingStrategy": "REPLICA", "propagateTags": "SERVICE",
                        "enableECSManagedTags": True},
                detail=f"{name}, {count or 0} tasks", attributes_of=lambda s: {"name": s["serviceName"]},
            )
            if live is not None and service not in counts:
                # A lost state must not scale a running cluster down: adopt the live count.
                counts[service] = live["desiredCount"]

        ctx.each(SERVICES, service_of)
        if not ctx.dry_run and counts != recorded_counts(ctx):
            ctx.state.set_setting(COUNTS_SETTING, counts)

    def _autoscaler_owns_count(self, ctx: StepContext, service: str, count: int) -> bool:
        """The frontend's count belongs to Application Auto Scaling while it autoscales and runs
        (steps/autoscaling.py): the recorded count starts it, and a later up does not reset what the autoscaler
        chose. Its live count is the run's shared read of the recorded services (no call of its own)."""
        if service != "frontend" or ctx.config.services.frontend.autoscaling is None or not count:
            return False
        recorded = ctx.state.id_of(self.name, service_key(service))
        running = live(ctx, ECS_SERVICE, recorded) if recorded else None
        return bool(running and running["desiredCount"])

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
