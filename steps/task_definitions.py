"""One task definition per service (README: "What gets built, step by step"): the Temporal roles, the UI,
Grafana and the collector, and the one-off schema tasks.

Every one is ARM64, awsvpc, EC2, sized from config (and checked to fit on its node type), logs to
its own group, runs an init process for ECS Exec, has a health check and a stop timeout long
enough for a graceful handoff. Task definitions are immutable: a change registers a new
revision and retires the old ones. This is the step that needs the OpenSearch endpoint, so it is
the one that waits for the domain.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from provisioner.aws import converge
from provisioner.aws.converge import destroy_kind
from provisioner.aws.kinds import changes
from provisioner.aws.named_kinds import (
    DSQL_CLUSTER,
    OPENSEARCH_DOMAIN,
    TASK_DEFINITION,
    active_revisions,
    retire_older_revisions,
    revision_family,
    task_definition_revisions,
    wait_dsql_usable,
)
from provisioner.aws.waiter import wait_for
from provisioner.config import deployment_problems
from provisioner.ecs_layout import SERVICES, UI_PORT, TaskSize
from provisioner.engine import Step, StepContext
from provisioner.errors import BadInput, ProvisionError
from provisioner.metrics import collector, dashboards, grafana
from provisioner.step_outputs import Recorded, StepOutputs, known
from provisioner.steps.dsql import DsqlOutputs
from provisioner.steps.iam import IamOutputs
from provisioner.steps.metrics_config import MetricsConfigOutputs
from provisioner.steps.opensearch import OpenSearchOutputs
from provisioner.steps.secret import SecretOutputs
from provisioner.temporal import schema_tasks, versions
from provisioner.temporal.roles import (
    DISCOVERY_NAME,
    FRONTEND_ADDRESS,
    GRPC_PORT,
    MEMBERSHIP_PORT,
    METRICS_PORT,
    STOP_TIMEOUT_SECONDS,
    health_check_port,
)
from provisioner.temporal.server_config import (
    SERVER_CONFIG_VARIABLE,
    server_environment,
    start_script,
)


def definition_key(service: str) -> str:
    return f"td-{service}"


@dataclass(frozen=True)
class TaskDefinition:
    arn: str
    family: str


@dataclass(frozen=True)
class TaskDefinitionOutputs(StepOutputs):
    """The revision each service runs and each schema task starts from (by its name in SERVICES and
    SCHEMA_TASKS), and the history shards the server config was rendered with."""

    step = "task_definitions"
    services: dict[str, TaskDefinition]
    schema_tasks: dict[str, TaskDefinition]
    history_shards: int | None

    @classmethod
    def read(cls, recorded: Recorded) -> TaskDefinitionOutputs:
        def definition(name: str) -> TaskDefinition:
            key = definition_key(name)
            return TaskDefinition(recorded.value(key), recorded.value(key, "family"))

        return cls(
            {service: definition(service) for service in SERVICES},
            {task: definition(f"schema-{task}") for task in schema_tasks.SCHEMA_TASKS},
            recorded.optional(definition_key("history"), "shards"),
        )


def family(ctx: StepContext, service: str) -> str:
    return ctx.naming.name(service)


def tcp_health_check(port: int, start_period: int) -> dict:
    # The server image is Alpine with busybox: nc is there; grpc-health-probe and the CLI are not.
    return {
        "command": ["CMD-SHELL", f"nc -z 127.0.0.1 {port} || exit 1"],
        "interval": 15, "timeout": 5, "retries": 4, "startPeriod": start_period,
    }


def port_mapping(name: str, port: int, app_protocol: str | None = None) -> dict:
    mapping = {"name": name, "containerPort": port, "protocol": "tcp"}
    return mapping | {"appProtocol": app_protocol} if app_protocol else mapping


def container_definition(ctx: StepContext, service: str, endpoint: str, dsql_host: str) -> dict:
    region = ctx.aws.region
    sizes = getattr(ctx.config.services, service)
    common = {
        "name": service,
        "essential": True,
        # The container gets what the config asks for; the task reserves the Service Connect proxy's
        # share on top, and the proxy runs on what the containers leave (see TaskSize).
        "cpu": sizes.cpu,
        "memory": sizes.memory,
        "linuxParameters": {"initProcessEnabled": True},  # ECS Exec needs an init process
        "stopTimeout": STOP_TIMEOUT_SECONDS,
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": ctx.naming.log_group(service),
            "awslogs-region": region,
            "awslogs-stream-prefix": service,
        }},
    }
    if service == "ui":
        return common | {
            "image": ctx.config.temporal.ui_image,
            "portMappings": [port_mapping("http", UI_PORT, "http")],
            "environment": [{"name": "TEMPORAL_ADDRESS", "value": FRONTEND_ADDRESS}],
            "healthCheck": tcp_health_check(UI_PORT, start_period=30),
        }
    version = versions.load(ctx.config.temporal.server_version)
    environment = server_environment(ctx.config, service, region, dsql_host, endpoint)
    grpc = port_mapping("grpc", GRPC_PORT[service], "grpc" if service in DISCOVERY_NAME else None)
    return common | {
        "image": ctx.config.temporal.server_image,
        "entryPoint": ["/bin/sh", "-c"],
        "command": [start_script(version)],
        "portMappings": [
            grpc,
            port_mapping("membership", MEMBERSHIP_PORT[service]),
            port_mapping("metrics", METRICS_PORT, "http"),
        ],
        "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
        # History owns no shard until it has joined the ring and acquired them: give it longer.
        # A port this role opens in this server version (the worker has no gRPC listener before 1.31).
        "healthCheck": tcp_health_check(health_check_port(version, service), start_period=180 if service == "history" else 90),
        "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
    }


def log_options(ctx: StepContext, group: str, prefix: str) -> dict:
    return {"awslogs-group": ctx.naming.log_group(group), "awslogs-region": ctx.aws.region,
            "awslogs-stream-prefix": prefix}


def grafana_task_definition(ctx: StepContext) -> dict:
    sizes = ctx.config.services.grafana
    parameters = ctx.outputs_of(MetricsConfigOutputs).grafana_parameter_arns
    roles = ctx.outputs_of(IamOutputs)
    settings = ctx.config.grafana
    return {
        "family": family(ctx, "grafana"),
        "taskRoleArn": roles.grafana_role,
        "executionRoleArn": roles.grafana_execution_role,
        **PLATFORM,
        "cpu": str(sizes.cpu),
        "memory": str(sizes.memory),
        "volumes": grafana.VOLUMES,
        "containerDefinitions": grafana.containers(
            settings.image, settings.init_image, ctx.outputs_of(SecretOutputs).grafana_admin_arn, parameters,
            list(dashboards.all_dashboards()), sizes.cpu, sizes.memory, ctx.aws.region,
            log_options(ctx, "grafana", "grafana"),
        ),
    }


def collector_task_definition(ctx: StepContext) -> dict:
    sizes = ctx.config.services.collector
    roles = ctx.outputs_of(IamOutputs)
    return {
        "family": family(ctx, "collector"),
        "taskRoleArn": roles.collector_role,
        "executionRoleArn": roles.collector_execution_role,
        **PLATFORM,
        "cpu": str(sizes.cpu),
        "memory": str(sizes.memory),
        "containerDefinitions": [collector.container(
            ctx.config.collector.image,
            ctx.outputs_of(MetricsConfigOutputs).collector_config_arn,
            sizes.cpu, sizes.memory, log_options(ctx, "adot", "collector"),
        )],
    }


# Every task of the stack: ARM64 (Graviton), awsvpc (its own ENI and security group), EC2 capacity.
PLATFORM = {
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["EC2"],
    "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
}


def task_definition(ctx: StepContext, service: str, endpoint: str, dsql_host: str) -> dict:
    if service == "grafana":
        return grafana_task_definition(ctx)
    if service == "collector":
        return collector_task_definition(ctx)
    sizes = getattr(ctx.config.services, service)
    reserved = TaskSize.of(service, sizes.cpu, sizes.memory)
    roles = ctx.outputs_of(IamOutputs)
    return {
        "family": family(ctx, service),
        "taskRoleArn": roles.ui_role if service == "ui" else roles.temporal_role,
        "executionRoleArn": roles.execution_role,
        **PLATFORM,
        "cpu": str(reserved.cpu),
        "memory": str(reserved.memory),
        "containerDefinitions": [container_definition(ctx, service, endpoint, dsql_host)],
    }


def schema_task_definition(ctx: StepContext, task: str, endpoint: str, dsql_host: str) -> dict:
    """A one-off task of `provision schema`: no Service Connect (it is in no service), so no proxy room."""
    version = versions.load(ctx.config.temporal.server_version)
    name = f"schema-{task}"
    container = {
        "name": name,
        "image": ctx.config.temporal.admin_tools_image,
        "essential": True,
        "entryPoint": ["/bin/sh", "-c"],
        "command": [schema_tasks.script(task, dsql_host, version.dsql_schema_version or "", endpoint,
                                        ctx.config.opensearch.visibility_index)],
        "environment": [{"name": "AWS_REGION", "value": ctx.aws.region}],
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": ctx.naming.log_group("schema"),
            "awslogs-region": ctx.aws.region,
            "awslogs-stream-prefix": "schema",
        }},
    }
    roles = ctx.outputs_of(IamOutputs)
    return {
        "family": family(ctx, name),
        "taskRoleArn": roles.schema_role,
        "executionRoleArn": roles.execution_role,
        **PLATFORM,
        "cpu": str(schema_tasks.CPU),
        "memory": str(schema_tasks.MEMORY),
        "containerDefinitions": [container],
    }


def rendered_shards(definition: dict) -> int | None:
    """numHistoryShards of the server config a live Temporal task definition carries (None for others)."""
    for container in definition.get("containerDefinitions", []):
        for variable in container.get("environment", []):
            if variable["name"] == SERVER_CONFIG_VARIABLE:
                return json.loads(variable["value"])["persistence"]["numHistoryShards"]
    return None


class TaskDefinitions(Step):
    name = "task_definitions"
    title = "Task definitions"
    requires = ("secret", "logs", "iam", "opensearch", "dsql", "metrics_config")
    produces = TaskDefinitionOutputs
    kinds = (TASK_DEFINITION,)

    def preflight(self, ctx: StepContext) -> None:
        """The images exist in the config and the server version has a DSQL schema. Whether each task fits a
        node of its group is the placement step's check (provisioner/placement_check.py)."""
        problems = deployment_problems(ctx.config)
        if problems:
            raise BadInput(problems[0])

    def apply(self, ctx: StepContext) -> None:
        endpoint = self.visibility_endpoint(ctx)
        host = self.dsql_host(ctx)
        wanted = [(definition_key(service), task_definition(ctx, service, endpoint, host)) for service in SERVICES] + [
            (definition_key(f"schema-{task}"), schema_task_definition(ctx, task, endpoint, host))
            for task in schema_tasks.SCHEMA_TASKS]
        ctx.each(wanted, lambda item: self.ensure_definition(ctx, *item))

    def dsql_host(self, ctx: StepContext) -> str:
        """Where the server connects: the cluster endpoint, or its PrivateLink host when dsql.private_link is on
        (GetVpcEndpointServiceName's clusterVpcEndpoint, "The VPC connection endpoint for the cluster")."""
        cluster = ctx.outputs_of(DsqlOutputs)
        if not known(cluster.cluster_arn):
            return cluster.cluster_arn
        if ctx.config.dsql.private_link:
            return cluster.vpc_host or ctx.known_after_apply("the Aurora DSQL cluster's PrivateLink host")
        live = converge.live(ctx, DSQL_CLUSTER, cluster.cluster_arn)
        if live is None:
            raise ProvisionError(f"the Aurora DSQL cluster {cluster.cluster_arn} is gone; run 'provision up' again")
        if not live.get("endpoint") and not ctx.dry_run:
            # A new cluster may report its endpoint only once it is active.
            live = wait_dsql_usable(ctx.aws, cluster.cluster_arn, ctx.config.timeouts.dsql, ctx.say)
        return live.get("endpoint") or ctx.known_after_apply("the Aurora DSQL cluster's endpoint")

    def visibility_endpoint(self, ctx: StepContext) -> str:
        """The domain's VPC endpoint: the one thing here that waits for OpenSearch (15-20 minutes in AWS)."""
        domain = ctx.outputs_of(OpenSearchOutputs).domain_name
        if not known(domain):
            return domain

        def probe(first_look: bool = False) -> str | None:
            # The first look may share the opensearch step's answer; a poll must ask again, for the endpoint only
            # (not the domain's tags: one call a poll, not two).
            live = (converge.live(ctx, OPENSEARCH_DOMAIN, domain) if first_look
                    else OPENSEARCH_DOMAIN.get(ctx.aws, domain, untagged=True))
            if live is None:
                raise ProvisionError(f"the OpenSearch domain {domain} is gone; run 'provision up' again")
            return live.get("Endpoints", {}).get("vpc")

        found = probe(first_look=True)
        if found or ctx.dry_run:
            return found or ctx.known_after_apply("the OpenSearch endpoint")
        ctx.say(f"waiting for OpenSearch domain {domain} (15-20 minutes in AWS)")
        return wait_for(f"OpenSearch domain {domain}", probe, timeout=ctx.config.timeouts.opensearch)

    def ensure_definition(self, ctx: StepContext, key: str, desired: dict, retire_older: bool = True) -> None:
        """The definition `key` as desired (RegisterTaskDefinition's parameters): a new revision when it differs,
        older ones deregistered (unless `retire_older` is False: `provision upgrade` keeps them until the
        service's rollout COMPLETED, then calls retire_older_revisions)."""
        family_name = desired["family"]
        digest = hashlib.sha256(json.dumps(desired, sort_keys=True).encode()).hexdigest()
        previous = ctx.state.get(self.name, key)
        if previous and previous.get("digest") == digest:
            family_active = [arn for arn in active_revisions(ctx.aws) if revision_family(arn) == family_name]
            if family_active == [previous["id"]]:
                # A revision never changes: the one the state names holds this definition, and no older one is
                # left. No describe needed; its tags come with the run's one read of every recorded resource's
                # (converge.recorded_tags).
                converge.reconcile_tags(ctx, TASK_DEFINITION, key, {"taskDefinitionArn": previous["id"]})
                return

        def attributes(definition: dict) -> dict:
            # The digest says this revision holds `desired`; recorded only when it does.
            holds = {"digest": digest} if not changes(definition, desired) else {}
            shards = rendered_shards(definition)
            return {"family": definition["family"], "revision": definition["revision"]} | holds | (
                {"shards": shards} if shards is not None else {})

        def retire_strays(definition: dict) -> None:
            # Left by a run that stopped between registering a revision and retiring the old one, or by upgrade.
            stray = [arn for arn in task_definition_revisions(ctx.aws, family_name)
                     if arn != definition["taskDefinitionArn"]]
            if stray and retire_older:
                ctx.change("update", TASK_DEFINITION.noun, key, f"deregister {len(stray)} older revisions",
                           act=lambda: self.retire_older_revisions(ctx, definition["taskDefinitionArn"], family_name))

        converge.converge(
            ctx, TASK_DEFINITION, key, name=family_name, spec=desired, attributes_of=attributes,
            on_unchanged=retire_strays,
            after_replace=(lambda new: self.retire_older_revisions(ctx, new["taskDefinitionArn"], family_name))
            if retire_older else None,
        )

    def retire_older_revisions(self, ctx: StepContext, keep: str, family_name: str) -> None:
        """Deregister every revision of the family but `keep` (the one its service runs)."""
        retire_older_revisions(ctx.aws, family_name, keep)

    def destroy(self, ctx: StepContext) -> None:
        destroy_kind(ctx, TASK_DEFINITION)

    def outputs(self, ctx: StepContext) -> dict:
        records = ctx.state.step_records(self.name)
        return {"task_definitions": {k.removeprefix("td-"): r["id"] for k, r in sorted(records.items())}}
