"""Room for every task the config asks for, and ENI trunking when it needs it (README: "Capacity and ENI
trunking").

Preflight refuses a config whose own replicas the node groups could never hold, even at max_size
(provisioner/placement_check.py), before anything is created; and, since `up` applies the task counts the
state records (`provision scale` wrote them, or a hand edit), those counts by the same rules as `scale` does.
With `capacity.eni_trunking`, ECS's
awsvpcTrunking account setting is switched on here, before the capacity step launches a node: "Only
new Amazon EC2 instances launched after opting in to awsvpcTrunking receive the increased ENI limits"
(ECS developer guide, container-instance-eni.html). The setting read is the one in effect for the nodes'
container instance role (or, before the role exists, the account default it will get), not the operator's.
"""
from __future__ import annotations

from provisioner import placement_check
from provisioner.ecs_layout import SERVICES
from provisioner.engine import Step, StepContext
from provisioner.errors import BadInput
from provisioner.naming import Naming
from provisioner.placement_check import TRUNKING_SETTING
from provisioner.state.store import RecordedState
from provisioner.step_outputs import known
from provisioner.steps.ecs_services import COUNTS_SETTING
from provisioner.steps.iam import IamOutputs


def trunking_principal(state: RecordedState, naming: Naming, account: str) -> str:
    """Whose awsvpcTrunking setting the nodes get (placement_check.account_trunking): the container instance
    role's once recorded, else the root user's, the account default that a role with no setting of its own (as
    the IAM step creates it) gets."""
    role = IamOutputs.so_far(state).instance_role
    return role if known(role) else naming.root_arn(account)


class Placement(Step):
    name = "placement"
    title = "Task placement"

    def preflight(self, ctx: StepContext) -> None:
        replicas = {s: getattr(ctx.config.services, s).replicas for s in SERVICES}
        rooms, warnings = placement_check.node_rooms(
            ctx.config, ctx.aws, trunking_principal(ctx.state, ctx.naming, ctx.aws.account_id),
            ctx.state.setting(placement_check.CATALOG_SETTING, {}))
        for warning in warnings:
            ctx.note(warning)
        problems = placement_check.placement_problems(ctx.config, rooms, replicas, counts_are_replicas=True)
        recorded = ctx.state.setting(COUNTS_SETTING, {})
        problems += [
            f"the task counts the state records (settings.service_counts in {ctx.state.where}), which 'up' applies: "
            f"{problem}"
            for problem in placement_check.placement_problems(ctx.config, rooms, recorded, counts_are_replicas=False)
        ]
        if problems:
            raise BadInput("\n".join(problems))
        # The counts up applies: each group should also hold the extra task of a rolling deployment.
        for warning in placement_check.rolling_room(ctx.config, rooms, recorded or replicas):
            ctx.note(f"Warning: {warning}")

    def apply(self, ctx: StepContext) -> None:
        if not ctx.config.capacity.eni_trunking:
            return
        principal = trunking_principal(ctx.state, ctx.naming, ctx.aws.account_id)
        current = placement_check.account_trunking(ctx.aws, principal)
        ctx.say(f"{TRUNKING_SETTING} is {current} for {principal} in {ctx.aws.region}")
        if current == "enabled":
            return
        ecs = ctx.aws.client("ecs")
        # The account default: it applies to every IAM user and role without a setting of its own, so also
        # to the instance role the ECS agent registers nodes with (container-instance-eni.html). When ECS
        # would not say what applies to the role ('unknown'), setting the default again changes nothing.
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
