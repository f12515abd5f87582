"""The Grafana admin secret (README: "Metrics and dashboards"), created by the user, looked up here by name.

The tool records only the secret's ARN; it never reads the value (ECS injects it into
the Grafana container at start, through the execution role).
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from provisioner.aws.named_kinds import EXTERNAL_SECRET
from provisioner.engine import Step, StepContext
from provisioner.errors import BadInput
from provisioner.step_outputs import StepOutputs, recorded_as

GRAFANA_SECRET = "grafana-admin"


@dataclass(frozen=True)
class SecretOutputs(StepOutputs):
    """The ARN of the Grafana admin secret: Grafana's execution role may read it, and ECS injects it."""

    step = "secret"
    grafana_admin_arn: str = recorded_as(GRAFANA_SECRET)


class Secret(Step):
    name = "secret"
    title = "Grafana secret"
    produces = SecretOutputs

    def _lookup(self, ctx: StepContext) -> dict:
        name = ctx.config.grafana.admin_secret_name
        # Read once per run: preflight and apply ask the same question.
        secret = ctx.aws.read(EXTERNAL_SECRET.service, ("secret", name), lambda: EXTERNAL_SECRET.get(ctx.aws, name))
        if secret is None:
            # The name itself is one Secrets Manager accepts: the config checks it (provisioner/config.py).
            raise BadInput(
                f"The Grafana admin secret {name!r} does not exist in {ctx.aws.region}. Create it first with:\n"
                f"  provision grafana-secret --name {shlex.quote(name)}\n"
                "(it stores a generated admin_user/admin_password pair in Secrets Manager), or point "
                "grafana.admin_secret_name at an existing secret."
            )
        return secret

    def preflight(self, ctx: StepContext) -> None:
        self._lookup(ctx)

    def apply(self, ctx: StepContext) -> None:
        secret = self._lookup(ctx)
        if not ctx.dry_run:
            ctx.record(GRAFANA_SECRET, secret["ARN"], kind=EXTERNAL_SECRET.kind, name=secret["Name"])

    def destroy(self, ctx: StepContext) -> None:
        # Not ours to delete: forget it, leave it in place.
        ctx.state.forget(self.name, GRAFANA_SECRET)

    def outputs(self, ctx: StepContext) -> dict:
        record = ctx.state.get(self.name, GRAFANA_SECRET)
        return {"grafana_secret_arn": record["id"]} if record else {}
