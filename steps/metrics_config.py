"""The SSM parameters the collector and Grafana start from (README: "Metrics and dashboards").

The collector's configuration (the cluster to observe, the workspace to write to), Grafana's data
source (the workspace to query) and dashboard provider, and each dashboard. Values are rendered here
and converged: a changed value is written as a new version of its parameter. ECS injects them into the
containers at start (`secrets` with valueFrom), through execution roles that may read only these.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from botocore.exceptions import ClientError

from provisioner.aws.converge import destroy_kind, ensure
from provisioner.aws.named_kinds import SSM_PARAMETER
from provisioner.engine import Step, StepContext
from provisioner.errors import ProvisionError, aws_failure, error_code
from provisioner.metrics import collector, dashboards, grafana
from provisioner.step_outputs import KNOWN_AFTER_APPLY, Recorded, StepOutputs, known
from provisioner.steps.prometheus import PrometheusOutputs

COLLECTOR_PARAMETER = "collector/config"
GRAFANA_PARAMETERS = "grafana"
# SSM's limits: 4 KB in the Standard tier, 8 KB in the Advanced one (charged per parameter and month).
STANDARD_LIMIT, ADVANCED_LIMIT = 4096, 8192


def parameter_key(path: str) -> str:
    return "param-" + path.replace("/", "-")


def grafana_path(name: str) -> str:
    return f"{GRAFANA_PARAMETERS}/{name}"


def dashboard_path(name: str) -> str:
    return grafana_path(f"dashboard-{name}")


def grafana_variables() -> dict[str, str]:
    """Grafana's init container: environment variable -> parameter path."""
    names = {"DATASOURCES": grafana_path("datasources"), "DASHBOARD_PROVIDER": grafana_path("dashboard-provider")}
    return names | {grafana.variable(name): dashboard_path(name) for name in dashboards.all_dashboards()}


@dataclass(frozen=True)
class MetricsConfigOutputs(StepOutputs):
    """The ARNs of the parameters ECS injects: the collector's configuration, and Grafana's by the init
    container's environment variable (grafana_variables)."""

    step = "metrics_config"
    collector_config_arn: str
    grafana_parameter_arns: dict[str, str]

    @classmethod
    def read(cls, recorded: Recorded) -> MetricsConfigOutputs:
        return cls(
            recorded.value(parameter_key(COLLECTOR_PARAMETER), "arn"),
            {variable: recorded.value(parameter_key(path), "arn") for variable, path in grafana_variables().items()},
        )


class MetricsConfig(Step):
    name = "metrics_config"
    title = "Metrics configuration"
    requires = ("prometheus", "cluster")
    produces = MetricsConfigOutputs
    kinds = (SSM_PARAMETER,)

    def values(self, ctx: StepContext) -> dict[str, str]:
        """Parameter path -> value."""
        endpoint = ctx.outputs_of(PrometheusOutputs).endpoint
        if not known(endpoint):
            endpoint = f"https://{KNOWN_AFTER_APPLY}/"
        region = ctx.aws.region
        values = {
            COLLECTOR_PARAMETER: collector.render(
                ctx.naming.cluster(), region, ctx.config.project, f"{endpoint}api/v1/remote_write",
                ctx.config.collector.scrape_interval_seconds),
            grafana_path("datasources"): json.dumps(grafana.datasource(endpoint, region), sort_keys=True),
            grafana_path("dashboard-provider"): json.dumps(grafana.dashboard_provider(), sort_keys=True),
        }
        # Rendered for the server version: its metrics decide which queries and panels remain.
        rendered = dashboards.all_dashboards(ctx.config.temporal.server_version)
        return values | {dashboard_path(name): grafana.packed(document) for name, document in rendered.items()}

    def names(self, ctx: StepContext) -> list:
        return [(SSM_PARAMETER, parameter_key(path), ctx.naming.parameter(path)) for path in self.paths(ctx)]

    def paths(self, ctx: StepContext) -> list[str]:
        return [COLLECTOR_PARAMETER, *grafana_variables().values()]

    def apply(self, ctx: StepContext) -> None:
        ssm = ctx.aws.client("ssm")

        def parameter_of(item: tuple[str, str]) -> None:
            path, value = item
            if len(value) > ADVANCED_LIMIT:
                raise ProvisionError(f"the SSM parameter {path} would hold {len(value)} characters, over SSM's 8 KB")
            tier = "Standard" if len(value) <= STANDARD_LIMIT else "Advanced"
            name = ctx.naming.parameter(path)
            key = parameter_key(path)

            def create(name=name, value=value, tier=tier, key=key, path=path) -> dict | None:
                try:
                    ssm.put_parameter(Name=name, Value=value, Type="String", Tier=tier,
                                      Description=f"{ctx.config.project}: {path}",
                                      Tags=ctx.naming.tag_list(self.name, key))
                except ClientError as exc:
                    # A resend after a lost answer: the first call made it (its tags were checked in preflight).
                    if error_code(exc) != "ParameterAlreadyExists":
                        raise aws_failure(f"create SSM parameter {name}", exc) from exc
                return SSM_PARAMETER.get(ctx.aws, name)

            current = ensure(ctx, SSM_PARAMETER, key, create, detail=name, name=name,
                             attributes_of=lambda p: {"arn": p["ARN"]})
            if current is not None and current["Value"] != value:
                # An Advanced parameter cannot go back to Standard: keep its tier.
                keep = "Advanced" if current.get("Tier") == "Advanced" else tier
                ctx.change("update", SSM_PARAMETER.noun, key, "new value",
                           act=lambda name=name, value=value, keep=keep: ssm.put_parameter(
                               Name=name, Value=value, Type="String", Tier=keep, Overwrite=True))

        ctx.each(self.values(ctx).items(), parameter_of)

    def destroy(self, ctx: StepContext) -> None:
        destroy_kind(ctx, SSM_PARAMETER)

    def outputs(self, ctx: StepContext) -> dict:
        records = ctx.state.step_records(self.name)
        return {"ssm_parameters": sorted(r["id"] for r in records.values())} if records else {}
