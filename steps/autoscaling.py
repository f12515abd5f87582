"""Frontend autoscaling (README: "Frontend autoscaling"): Application Auto Scaling target tracking on the frontend's average CPU.

Off unless `services.frontend.autoscaling` is set; only the frontend may have it (Temporal's maintainers
advise against autoscaling history and matching: temporalio/helm-charts issue 448). The scalable target
(ServiceNamespace ecs, dimension ecs:service:DesiredCount) is named by its resource ID
`service/<cluster>/<service>`, which is deterministic: a crash between create and record, or a lost state,
finds it again by that ID, and RegisterScalableTarget on an existing target updates it rather than
making a twin. The target is registered only while the frontend runs (its recorded count is above 0):
a registered target with MinCapacity above the desired count raises it to the minimum, which would start
the frontend before `provision schema` (staged deployment), and would undo `provision scale down`.

Application Auto Scaling uses its service-linked role AWSServiceRoleForApplicationAutoScaling_ECSService,
which it creates itself on the first RegisterScalableTarget ("If the service supports service-linked
roles, Application Auto Scaling uses a service-linked role, which it creates if it does not yet exist":
RegisterScalableTarget's RoleARN, botocore application-autoscaling model); unlike ECS's, nothing else
needs it earlier, so steps/service_roles.py does not make it. Application Auto Scaling itself is free.
"""
from __future__ import annotations

from provisioner.aws.converge import changes
from provisioner.aws.named_kinds import (
    deregister_scalable_target,
    put_scaling_policy,
    register_scalable_target,
    scalable_target,
    scaling_policy,
)
from provisioner.aws.session import Aws
from provisioner.config import AutoscalingConfig, Config
from provisioner.engine import Step, StepContext
from provisioner.naming import Naming
from provisioner.step_outputs import known
from provisioner.steps.cluster import ClusterOutputs
from provisioner.steps.ecs_services import recorded_counts

SERVICE = "frontend"
METRIC = "ECSServiceAverageCPUUtilization"
TARGET_KEY = "frontend-target"
POLICY_KEY = "frontend-cpu"
# The kinds recorded in the state (for `status`); Application Auto Scaling has no tag API in moto, so they are
# not in provisioner/aws/kinds.py, whose kinds are found by tags: these are found by the target's resource ID.
TARGET_KIND = "ScalableTarget"
POLICY_KIND = "ScalingPolicy"
# Application Auto Scaling's defaults for ECS are 300 s in and out (target-tracking-scaling-policy-overview,
# "Define cooldown periods"). Out sooner, as a frontend behind on CPU delays every request; in as slowly as the
# default, as each frontend stopped drops its clients' long polls.
SCALE_OUT_COOLDOWN = 60
SCALE_IN_COOLDOWN = 300


def wanted(config: Config, counts: dict[str, int]) -> AutoscalingConfig | None:
    """The frontend's autoscaling while it should be registered: configured, and the frontend started."""
    autoscaling = config.services.frontend.autoscaling
    return autoscaling if autoscaling is not None and counts.get(SERVICE, 0) > 0 else None


def resource_id(naming: Naming, cluster_name: str | None = None) -> str:
    return f"service/{cluster_name or naming.cluster()}/{naming.name(SERVICE)}"


def resource_id_of(ctx: StepContext) -> str:
    """The frontend's resource ID, on the cluster as recorded (else the cluster's name, before one is)."""
    name = ClusterOutputs.so_far(ctx.state).cluster_name
    return resource_id(ctx.naming, name if known(name) else None)


def policy_name(naming: Naming) -> str:
    return naming.name(f"{SERVICE}-cpu")


def target_limits(autoscaling: AutoscalingConfig) -> dict:
    """The scalable target as the config wants it, in DescribeScalableTargets' shape."""
    return {"MinCapacity": autoscaling.min, "MaxCapacity": autoscaling.max}


def desired_policy(autoscaling: AutoscalingConfig) -> dict:
    """Target tracking on the average CPU, in PutScalingPolicy's (and DescribeScalingPolicies') shape."""
    return {"PolicyType": "TargetTrackingScaling", "TargetTrackingScalingPolicyConfiguration": {
        "TargetValue": float(autoscaling.cpu_target),
        "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
        "ScaleOutCooldown": SCALE_OUT_COOLDOWN,
        "ScaleInCooldown": SCALE_IN_COOLDOWN,
        "DisableScaleIn": False,
    }}


def register(aws: Aws, naming: Naming, resource: str, autoscaling: AutoscalingConfig) -> dict | None:
    """Register (or update) the frontend's target with the config's limits; a lost answer makes no twin."""
    return register_scalable_target(aws, resource, target_limits(autoscaling), naming.tags(Autoscaling.name, TARGET_KEY))


def put_policy(aws: Aws, naming: Naming, resource: str, autoscaling: AutoscalingConfig) -> dict:
    """Create or replace the frontend's target tracking policy."""
    return put_scaling_policy(aws, resource, policy_name(naming), desired_policy(autoscaling))


def deregister(aws: Aws, resource: str) -> None:
    """Deregister the frontend's target, which deletes its scaling policy; gone already is done."""
    deregister_scalable_target(aws, resource)


class Autoscaling(Step):
    name = "autoscaling"
    title = "Frontend autoscaling"
    requires = ("cluster", "services")

    def apply(self, ctx: StepContext) -> None:
        autoscaling = wanted(ctx.config, recorded_counts(ctx))
        records = ctx.state.step_records(self.name)
        if autoscaling is None and not records:
            return  # off (the default), and nothing registered: no call at all
        resource = resource_id_of(ctx)
        target = scalable_target(ctx.aws, resource)
        if autoscaling is None:
            if target is not None:
                why = "autoscaling is off" if ctx.config.services.frontend.autoscaling is None else "the frontend is at 0 tasks"
                ctx.change("delete", "scalable target", TARGET_KEY, f"{resource} ({why})",
                           act=lambda: deregister(ctx.aws, resource))
            if not ctx.dry_run:
                for key in list(records):
                    ctx.state.forget(self.name, key)
            return
        limits = f"{autoscaling.min}..{autoscaling.max} tasks"
        if target is None or changes(target, target_limits(autoscaling)):
            action = "create" if target is None else "update"
            target = ctx.change(action, "scalable target", TARGET_KEY, f"{resource}, {limits}",
                                act=lambda: register(ctx.aws, ctx.naming, resource, autoscaling))
        if target is not None and not ctx.dry_run:
            _record(ctx, TARGET_KEY, resource, kind=TARGET_KIND, min=autoscaling.min, max=autoscaling.max)
        name = policy_name(ctx.naming)
        policy = scaling_policy(ctx.aws, resource, name) if target is not None else None
        if policy is None or changes(policy_settings(policy), desired_policy(autoscaling)):
            answer = ctx.change(
                "create" if policy is None else "update", "scaling policy", POLICY_KEY,
                f"{name}: average CPU at {autoscaling.cpu_target} %",
                act=lambda: put_policy(ctx.aws, ctx.naming, resource, autoscaling),
            )
            policy = {"PolicyARN": answer["PolicyARN"]} if answer else None
        if policy is not None and not ctx.dry_run:
            _record(ctx, POLICY_KEY, policy["PolicyARN"], kind=POLICY_KIND, name=name, cpu_target=autoscaling.cpu_target)

    def destroy(self, ctx: StepContext) -> None:
        # Before the ECS service goes (this step requires it, so it is destroyed first). Found by its resource
        # ID, so a lost state still deregisters it; an account whose stack never autoscaled makes no call.
        records = ctx.state.step_records(self.name)
        if records or ctx.config.services.frontend.autoscaling is not None:
            resource = resource_id_of(ctx)
            if scalable_target(ctx.aws, resource) is not None:
                ctx.change("delete", "scalable target", TARGET_KEY, f"{resource} and its scaling policy",
                           act=lambda: deregister(ctx.aws, resource))
        if not ctx.dry_run:
            for key in list(records):
                ctx.state.forget(self.name, key)

    def exists(self, ctx: StepContext, kind: str, resource_id: str) -> bool:
        if kind == TARGET_KIND:
            return scalable_target(ctx.aws, resource_id) is not None
        policy = scaling_policy(ctx.aws, resource_id_of(ctx), policy_name(ctx.naming))
        return policy is not None and policy["PolicyARN"] == resource_id

    def outputs(self, ctx: StepContext) -> dict:
        target = ctx.state.get(self.name, TARGET_KEY)
        if target is None:
            return {}
        return {"frontend_autoscaling": {"resource_id": target["id"], "min": target["min"], "max": target["max"]}}


def _record(ctx: StepContext, key: str, resource: str, **attributes) -> None:
    # Only what changed: every write bumps the state's serial, and a no-op up leaves the state as it was.
    if ctx.state.get(ctx.step, key) != {"id": resource, **attributes}:
        ctx.record(key, resource, **attributes)


def policy_settings(policy: dict) -> dict:
    """A described policy in PutScalingPolicy's shape; DisableScaleIn, when AWS leaves it out, is its default (false)."""
    configuration = policy.get("TargetTrackingScalingPolicyConfiguration", {})
    return {"PolicyType": policy.get("PolicyType"), "TargetTrackingScalingPolicyConfiguration":
            configuration | {"DisableScaleIn": bool(configuration.get("DisableScaleIn", False))}}
