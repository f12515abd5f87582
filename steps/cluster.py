"""The ECS cluster and its Service Connect namespace (README: "What gets built, step by step").

The cluster has Container Insights, ECS Exec session logging to its own log group, and
Service Connect defaults pointing at the namespace, so every service joins it. `destroy` first stops the
one-off schema tasks an interrupted `provision schema` may have left running.
"""
from __future__ import annotations

from dataclasses import dataclass

from provisioner.aws.converge import destroy_kind, ensure, wait_deleted
from provisioner.aws.named_kinds import (
    ECS_CLUSTER,
    NAMESPACE,
    still_running,
    tasks_started_by,
    wait_operation,
)
from provisioner.aws.propagation import ECS_ROLE, until_propagated
from provisioner.aws.waiter import wait_for
from provisioner.engine import Step, StepContext
from provisioner.step_outputs import StepOutputs, known, recorded_as
from provisioner.steps.logs import LogsOutputs
from provisioner.temporal import schema_tasks

NAMESPACE_KEY = "namespace"
CLUSTER_KEY = "cluster"


@dataclass(frozen=True)
class ClusterOutputs(StepOutputs):
    """The ECS cluster the services and tasks run in, and the Service Connect namespace they join."""

    step = "cluster"
    cluster_arn: str = recorded_as(CLUSTER_KEY)
    cluster_name: str = recorded_as(CLUSTER_KEY, "name")
    namespace_arn: str = recorded_as(NAMESPACE_KEY, "arn")


def desired_cluster(namespace_arn: str | None, exec_log_group: str) -> dict:
    return {
        "settings": [{"name": "containerInsights", "value": "enabled"}],
        "configuration": {
            "executeCommandConfiguration": {
                "logging": "OVERRIDE",
                "logConfiguration": {"cloudWatchLogGroupName": exec_log_group},
            }
        },
        "serviceConnectDefaults": {"namespace": namespace_arn},
    }


class Cluster(Step):
    name = "cluster"
    title = "ECS cluster"
    requires = ("service_roles", "logs")
    produces = ClusterOutputs
    kinds = (ECS_CLUSTER, NAMESPACE)

    def names(self, ctx: StepContext) -> list:
        return [(NAMESPACE, NAMESPACE_KEY, ctx.naming.name("services")), (ECS_CLUSTER, CLUSTER_KEY, ctx.naming.cluster())]

    def apply(self, ctx: StepContext) -> None:
        sd = ctx.aws.client("servicediscovery")
        ecs = ctx.aws.client("ecs")
        namespace_name = ctx.naming.name("services")

        def create_namespace() -> dict | None:
            operation = sd.create_http_namespace(
                Name=namespace_name, CreatorRequestId=ctx.naming.client_token(NAMESPACE_KEY),
                Description=f"Service Connect namespace of {ctx.config.project}",
                Tags=ctx.naming.tag_list(self.name, NAMESPACE_KEY),
            )["OperationId"]
            ctx.say(f"waiting for namespace {namespace_name}")
            done = wait_operation(ctx.aws, operation, f"namespace {namespace_name}", ctx.config.timeouts.default)
            return NAMESPACE.get(ctx.aws, done["Targets"]["NAMESPACE"])

        namespace = ensure(
            ctx, NAMESPACE, NAMESPACE_KEY, create_namespace, detail=namespace_name, name=namespace_name,
            attributes_of=lambda ns: {"arn": ns["Arn"], "name": ns["Name"]},
        )
        exec_log = ctx.outputs_of(LogsOutputs).exec_log_group
        desired = desired_cluster(
            namespace["Arn"] if namespace else None,
            exec_log if known(exec_log) else ctx.naming.log_group("exec"),
        )
        cluster_name = ctx.naming.cluster()
        cluster = ensure(
            ctx, ECS_CLUSTER, CLUSTER_KEY,
            lambda: until_propagated(ECS_ROLE, ctx.config.timeouts.iam_propagation, lambda: ecs.create_cluster(
                clusterName=cluster_name, tags=[{"key": k, "value": v} for k, v in ctx.naming.tags(self.name, CLUSTER_KEY).items()],
                **desired,
            ))["cluster"],
            detail=cluster_name, name=cluster_name,
            attributes_of=lambda c: {"name": c["clusterName"]},
        )
        if cluster is None:
            return
        drift = {field: value for field, value in desired.items() if cluster.get(field) != value}
        if drift:
            ctx.change(
                "update", ECS_CLUSTER.noun, CLUSTER_KEY, ", ".join(sorted(drift)),
                act=lambda: ecs.update_cluster(cluster=cluster["clusterArn"], **drift),
            )

    def destroy(self, ctx: StepContext) -> None:
        self._stop_schema_tasks(ctx)
        destroy_kind(ctx, ECS_CLUSTER)
        wait_deleted(ctx, NAMESPACE, destroy_kind(ctx, NAMESPACE))

    def _stop_schema_tasks(self, ctx: StepContext) -> None:
        """Stop what an interrupted `provision schema` left running, and wait until it has stopped: ECS refuses
        to delete a cluster with tasks that are not (DeleteCluster: ClusterContainsTasksException, "You can't
        delete a cluster that has active tasks", ECS API reference)."""
        cluster = ctx.naming.cluster()
        active = [t for t in tasks_started_by(ctx.aws, cluster, schema_tasks.STARTED_BY) if t["lastStatus"] != "STOPPED"]
        ecs = ctx.aws.client("ecs")
        for arn in [t["taskArn"] for t in active if still_running(t)]:  # the others are stopping already
            ctx.change("stop", "schema task", arn.rsplit("/", 1)[-1], "left running by an interrupted 'provision schema'",
                       act=lambda arn=arn: ecs.stop_task(cluster=cluster, task=arn, reason="provision destroy"))
        if not active or ctx.dry_run:
            return

        def stopped() -> list | None:
            described = ecs.describe_tasks(cluster=cluster, tasks=[t["taskArn"] for t in active])["tasks"]
            return described if all(t["lastStatus"] == "STOPPED" for t in described) else None

        ctx.say("waiting for the schema tasks to stop")
        wait_for("the schema tasks to stop", stopped, timeout=ctx.config.timeouts.default)

    def outputs(self, ctx: StepContext) -> dict:
        records = ctx.state.step_records(self.name)
        if CLUSTER_KEY not in records:
            return {}
        return {
            "cluster_arn": records[CLUSTER_KEY]["id"],
            "cluster_name": records[CLUSTER_KEY]["name"],
            "service_connect_namespace": records.get(NAMESPACE_KEY, {}).get("name"),
        }
