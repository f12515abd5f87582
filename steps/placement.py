"""Room for every task the config asks for, and ENI trunking when it needs it (README: "Capacity and ENI
trunking").

Preflight refuses a config whose own replicas the node groups could never hold, even at max_size
(provisioner/placement_check.py), before anything is created. With `capacity.eni_trunking`, ECS's
awsvpcTrunking account setting is switched on here, before the capacity step launches a node: "Only
new Amazon EC2 instances launched after opting in to awsvpcTrunking receive the increased ENI limits"
(ECS developer guide, container-instance-eni.html).
"""
from __future__ import annotations

from provisioner import placement_check
from provisioner.ecs_layout import SERVICES
from provisioner.engine import Step, StepContext
from provisioner.errors import BadInput
from provisioner.placement_check import TRUNKING_SETTING


class Placement(Step):
    name = "placement"
    title = "Task placement"

    def preflight(self, ctx: StepContext) -> None:
        replicas = {s: getattr(ctx.config.services, s).replicas for s in SERVICES}
        checked = placement_check.check(ctx.config, ctx.aws, replicas, counts_are_replicas=True)
        for warning in checked.warnings:
            ctx.note(warning)
        if checked.problems:
            raise BadInput("\n".join(checked.problems))

    def apply(self, ctx: StepContext) -> None:
        if not ctx.config.capacity.eni_trunking:
            return
        current = placement_check.account_trunking(ctx.aws)
        ctx.say(f"{TRUNKING_SETTING} is {current} in {ctx.aws.region}")
        if current == "enabled":
            return
        ecs = ctx.aws.client("ecs")
        # The account default: it applies to every IAM user and role without a setting of its own, so also
        # to the instance role the ECS agent registers nodes with (container-instance-eni.html).
        ctx.change(
            "update", "ECS account setting", TRUNKING_SETTING,
            f"{current} -> enabled, the default for the whole account in {ctx.aws.region}",
            act=lambda: ecs.put_account_setting_default(name=TRUNKING_SETTING, value="enabled"),
        )
        ctx.note(
            f"ENI trunking: {TRUNKING_SETTING} was {current}. Only nodes launched after it is enabled get a trunk "
            "network interface; nodes already running keep one interface per task until they are replaced."
        )

    def destroy(self, ctx: StepContext) -> None:
        if ctx.config.capacity.eni_trunking:
            ctx.note(
                f"Left ECS's {TRUNKING_SETTING} account setting as it is: it is account-wide in {ctx.aws.region}, and "
                "other clusters' nodes may rely on it. If nothing does, turn it off with: aws ecs "
                f"put-account-setting-default --name {TRUNKING_SETTING} --value disabled"
            )
