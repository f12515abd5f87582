"""One CloudWatch log group per service, the collector and ECS Exec (README: "What gets built, step by step").

Log groups are created here, never by the awslogs driver, so that retention and tags are
set from the start and `destroy` removes them.
"""
from __future__ import annotations

from dataclasses import dataclass

from provisioner.aws.converge import converge, destroy_kind
from provisioner.aws.named_kinds import LOG_GROUP
from provisioner.engine import Step, StepContext
from provisioner.step_outputs import StepOutputs, recorded_as

# Every container that logs (the schema tasks share one group), plus the ECS Exec session log.
LOGGED = ("history", "matching", "frontend", "worker", "ui", "grafana", "adot", "exec", "schema")


def log_key(service: str) -> str:
    return f"log-{service}"


@dataclass(frozen=True)
class LogsOutputs(StepOutputs):
    """The ECS Exec session log group, which the cluster names and the task roles write to."""

    step = "logs"
    exec_log_group: str = recorded_as(log_key("exec"))


class Logs(Step):
    name = "logs"
    title = "Log groups"
    produces = LogsOutputs
    kinds = (LOG_GROUP,)

    def names(self, ctx: StepContext) -> list:
        return [(LOG_GROUP, log_key(s), ctx.naming.log_group(s)) for s in LOGGED]

    def apply(self, ctx: StepContext) -> None:
        retention = {"retentionInDays": ctx.config.logs.retention_days}
        ctx.each(LOGGED, lambda service: converge(
            ctx, LOG_GROUP, log_key(service), name=ctx.naming.log_group(service), spec=retention))

    def destroy(self, ctx: StepContext) -> None:
        destroy_kind(ctx, LOG_GROUP)

    def outputs(self, ctx: StepContext) -> dict:
        records = ctx.state.step_records(self.name)
        return {"log_groups": {k.removeprefix("log-"): r["id"] for k, r in sorted(records.items())}}
