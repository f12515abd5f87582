"""The Amazon Managed Prometheus workspace the collector writes to and Grafana reads (README: "Metrics and dashboards")."""
from __future__ import annotations

from dataclasses import dataclass

from provisioner.aws.converge import converge, destroy_kind
from provisioner.aws.named_kinds import AMP_WORKSPACE
from provisioner.engine import Step, StepContext
from provisioner.step_outputs import StepOutputs, recorded_as

WORKSPACE = "metrics"


@dataclass(frozen=True)
class PrometheusOutputs(StepOutputs):
    """The workspace: its ARN for the roles' policies, its endpoint for the collector and Grafana."""

    step = "prometheus"
    workspace_id: str = recorded_as(WORKSPACE)
    workspace_arn: str = recorded_as(WORKSPACE, "arn")
    endpoint: str = recorded_as(WORKSPACE, "endpoint")


class Prometheus(Step):
    name = "prometheus"
    title = "Prometheus workspace"
    produces = PrometheusOutputs
    kinds = (AMP_WORKSPACE,)

    def apply(self, ctx: StepContext) -> None:
        converge(ctx, AMP_WORKSPACE, WORKSPACE, name=ctx.naming.name(WORKSPACE),
                 attributes_of=lambda ws: {"arn": ws["arn"], "endpoint": ws["prometheusEndpoint"]})

    def destroy(self, ctx: StepContext) -> None:
        destroy_kind(ctx, AMP_WORKSPACE)

    def outputs(self, ctx: StepContext) -> dict:
        record = ctx.state.get(self.name, WORKSPACE)
        if not record:
            return {}
        return {
            "prometheus_workspace_id": record["id"],
            "prometheus_workspace_arn": record["arn"],
            "prometheus_remote_write_url": f"{record['endpoint']}api/v1/remote_write",
            "prometheus_query_url": record["endpoint"],
        }
