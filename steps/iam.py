"""The IAM roles (README: "What gets built, step by step"): execution, task and EC2 instance roles, least privilege.

Every statement names resource ARNs. A "*" resource appears only where the action supports
no resource scoping, and each such place says so. Trust policies name one service each, with
only the condition keys AWS documents for that principal (see `trust`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from provisioner.aws.converge import destroy_kind, ensure
from provisioner.aws.named_kinds import (
    IAM_ROLE,
    INSTANCE_PROFILE,
    account_roles,
    iam_path,
    ours,
)
from provisioner.engine import Step, StepContext
from provisioner.naming import TAG_REGION
from provisioner.step_outputs import StepOutputs, known, recorded_as
from provisioner.steps.dsql import DsqlOutputs
from provisioner.steps.logs import LogsOutputs
from provisioner.steps.metrics_config import COLLECTOR_PARAMETER, GRAFANA_PARAMETERS
from provisioner.steps.prometheus import PrometheusOutputs
from provisioner.steps.secret import SecretOutputs

EXECUTION_ROLE = "ecs-execution"
GRAFANA_EXECUTION_ROLE = "grafana-execution"
COLLECTOR_EXECUTION_ROLE = "collector-execution"
TEMPORAL_ROLE = "temporal-task"
GRAFANA_ROLE = "grafana-task"
COLLECTOR_ROLE = "collector-task"
UI_ROLE = "ui-task"
SCHEMA_ROLE = "schema-task"
INSTANCE_ROLE = "ecs-instance"
INSTANCE_PROFILE_KEY = "ecs-instance-profile"

ECS_TASKS = "ecs-tasks.amazonaws.com"
EC2 = "ec2.amazonaws.com"

# ssmmessages supports no resource-level permissions: "*" is the only resource AWS accepts.
ECS_EXEC_CHANNELS = {
    "Sid": "EcsExecChannels",
    "Effect": "Allow",
    "Action": [
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
    ],
    "Resource": "*",
}
OPENSEARCH_HTTP = ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut", "es:ESHttpDelete"]
PROMETHEUS_QUERY = ["aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels", "aps:GetMetricMetadata"]


@dataclass(frozen=True)
class RoleSpec:
    key: str
    service: str
    description: str
    managed: tuple[str, ...] = ()
    inline: dict[str, dict] = field(default_factory=dict)
    # A task role (assumed by ECS for a task's containers), as opposed to the execution or instance role.
    task_role: bool = False


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def trust(spec: RoleSpec, naming, account: str) -> dict:
    """Only the conditions AWS documents for the principal: a condition the service never sends
    would keep the role from ever being assumed (no instance would join, no task would start).

    Task roles: "it is recommended that you use the aws:SourceAccount or aws:SourceArn condition keys
    ... you should use the wildcard to specify all clusters" (ECS developer guide, task-iam-roles.html).
    The task execution role (task_execution_IAM_role.html) and the container instance role
    (instance_IAM_role.html) are documented with no condition at all.
    """
    statement = {"Effect": "Allow", "Principal": {"Service": spec.service}, "Action": "sts:AssumeRole"}
    if spec.task_role:
        statement["Condition"] = {
            "ArnLike": {"aws:SourceArn": naming.arn("ecs", account, "*")},
            "StringEquals": {"aws:SourceAccount": account},
        }
    return policy(statement)


def _exec_logging(ctx: StepContext, account: str) -> list[dict]:
    """ECS Exec writes its session log from inside the task, with the task role: the actions and
    resources of the ECS developer guide's ecs-exec.html ("IAM permissions required for ECS Exec")."""
    group = ctx.outputs_of(LogsOutputs).exec_log_group
    if not known(group):
        group = ctx.naming.log_group("exec")
    return [
        {
            "Sid": "EcsExecSessionLog",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            "Resource": ctx.naming.arn("logs", account, f"log-group:{group}:*"),
        },
        # DescribeLogGroups supports no resource-level permissions: "*" is the only resource AWS accepts.
        {"Sid": "EcsExecFindLogGroup", "Effect": "Allow", "Action": "logs:DescribeLogGroups", "Resource": "*"},
    ]


def role_specs(ctx: StepContext) -> list[RoleSpec]:
    account = ctx.aws.account_id
    naming = ctx.naming
    secret_arn = ctx.outputs_of(SecretOutputs).grafana_admin_arn
    workspace_arn = ctx.outputs_of(PrometheusOutputs).workspace_arn
    domain_arn = naming.arn("es", account, f"domain/{naming.opensearch_domain()}")
    # The ARN only: IAM does not need the cluster to be running.
    dsql_arn = ctx.outputs_of(DsqlOutputs).cluster_arn
    partition = naming.partition
    execution_policy = f"arn:{partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
    cluster_arn = naming.arn("ecs", account, f"cluster/{naming.cluster()}")
    in_cluster = {"ArnEquals": {"ecs:cluster": cluster_arn}}
    return [
        RoleSpec(EXECUTION_ROLE, ECS_TASKS, "ECS agent: pull images, write logs", managed=(execution_policy,)),
        # Each execution role that injects values reads exactly those: Grafana its admin secret and its
        # provisioning parameters, the collector its configuration parameter.
        RoleSpec(
            GRAFANA_EXECUTION_ROLE, ECS_TASKS, "ECS agent for Grafana: also its admin secret and provisioning",
            managed=(execution_policy,),
            inline={"grafana-start": policy(
                {"Sid": "ReadGrafanaSecret", "Effect": "Allow",
                 "Action": "secretsmanager:GetSecretValue", "Resource": secret_arn},
                {"Sid": "ReadGrafanaProvisioning", "Effect": "Allow", "Action": "ssm:GetParameters",
                 "Resource": naming.parameter_arn(account, f"{GRAFANA_PARAMETERS}/*")},
            )},
        ),
        RoleSpec(
            COLLECTOR_EXECUTION_ROLE, ECS_TASKS, "ECS agent for the collector: also its configuration",
            managed=(execution_policy,),
            inline={"collector-start": policy({
                "Sid": "ReadCollectorConfig", "Effect": "Allow", "Action": "ssm:GetParameters",
                "Resource": naming.parameter_arn(account, COLLECTOR_PARAMETER),
            })},
        ),
        RoleSpec(
            TEMPORAL_ROLE, ECS_TASKS, "Temporal server tasks: DSQL, OpenSearch, Prometheus, ECS Exec",
            inline={"temporal": policy(
                ECS_EXEC_CHANNELS,
                *_exec_logging(ctx, account),
                # The fork always connects as admin with an admin token (dsql/plugin.go, token_cache.go).
                {"Sid": "DsqlConnect", "Effect": "Allow", "Action": "dsql:DbConnectAdmin",
                 "Resource": dsql_arn},
                {"Sid": "PrometheusRemoteWrite", "Effect": "Allow", "Action": "aps:RemoteWrite", "Resource": workspace_arn},
                {"Sid": "OpenSearchVisibility", "Effect": "Allow", "Action": OPENSEARCH_HTTP,
                 "Resource": [domain_arn, f"{domain_arn}/*"]},
            )},
            task_role=True,
        ),
        RoleSpec(
            GRAFANA_ROLE, ECS_TASKS, "Grafana tasks: query Prometheus, ECS Exec",
            inline={"grafana": policy(
                ECS_EXEC_CHANNELS,
                *_exec_logging(ctx, account),
                {"Sid": "PrometheusQuery", "Effect": "Allow", "Action": PROMETHEUS_QUERY, "Resource": workspace_arn},
            )},
            task_role=True,
        ),
        RoleSpec(
            COLLECTOR_ROLE, ECS_TASKS, "The metrics collector: find the Temporal tasks, write to Prometheus",
            inline={"collector": policy(
                ECS_EXEC_CHANNELS,
                *_exec_logging(ctx, account),
                {"Sid": "PrometheusRemoteWrite", "Effect": "Allow", "Action": "aps:RemoteWrite", "Resource": workspace_arn},
                # What the ecs_observer extension reads, each scoped as far as the action allows.
                # ListServices has no resource type, only the ecs:cluster condition (Service Authorization
                # Reference, Amazon ECS); the others take the cluster's service, task and instance ARNs.
                {"Sid": "ObserveClusterLists", "Effect": "Allow", "Action": "ecs:ListServices",
                 "Resource": "*", "Condition": in_cluster},
                {"Sid": "ObserveCluster", "Effect": "Allow",
                 "Action": ["ecs:ListTasks", "ecs:DescribeServices", "ecs:DescribeTasks",
                            "ecs:DescribeContainerInstances"],
                 "Resource": [naming.arn("ecs", account, f"{kind}/{naming.cluster()}/*")
                              for kind in ("service", "task", "container-instance")],
                 "Condition": in_cluster},
                # DescribeTaskDefinition and DescribeInstances support no resource-level permissions.
                {"Sid": "ObserveDefinitions", "Effect": "Allow",
                 "Action": ["ecs:DescribeTaskDefinition", "ec2:DescribeInstances"], "Resource": "*"},
            )},
            task_role=True,
        ),
        RoleSpec(
            UI_ROLE, ECS_TASKS, "Temporal UI tasks: ECS Exec only (the UI reaches the frontend, not AWS)",
            inline={"ui": policy(ECS_EXEC_CHANNELS, *_exec_logging(ctx, account))},
            task_role=True,
        ),
        RoleSpec(
            SCHEMA_ROLE, ECS_TASKS, "provision schema's one-off tasks: the DSQL schema and the visibility index",
            inline={"schema": policy(
                {"Sid": "DsqlSchema", "Effect": "Allow", "Action": "dsql:DbConnectAdmin", "Resource": dsql_arn},
                {"Sid": "VisibilityIndex", "Effect": "Allow", "Action": OPENSEARCH_HTTP,
                 "Resource": [domain_arn, f"{domain_arn}/*"]},
            )},
            task_role=True,
        ),
        RoleSpec(
            INSTANCE_ROLE, EC2, "ECS container instances: join the cluster, SSM management",
            managed=(
                f"arn:{partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role",
                f"arn:{partition}:iam::aws:policy/AmazonSSMManagedInstanceCore",
            ),
        ),
    ]


@dataclass(frozen=True)
class IamOutputs(StepOutputs):
    """The ARN of each role the tasks and nodes run as, and of the nodes' instance profile."""

    step = "iam"
    execution_role: str = recorded_as(EXECUTION_ROLE)
    grafana_execution_role: str = recorded_as(GRAFANA_EXECUTION_ROLE)
    collector_execution_role: str = recorded_as(COLLECTOR_EXECUTION_ROLE)
    temporal_role: str = recorded_as(TEMPORAL_ROLE)
    grafana_role: str = recorded_as(GRAFANA_ROLE)
    collector_role: str = recorded_as(COLLECTOR_ROLE)
    ui_role: str = recorded_as(UI_ROLE)
    schema_role: str = recorded_as(SCHEMA_ROLE)
    instance_role: str = recorded_as(INSTANCE_ROLE)
    instance_profile: str = recorded_as(INSTANCE_PROFILE_KEY)


def _same(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


ROLE_KEYS = (EXECUTION_ROLE, GRAFANA_EXECUTION_ROLE, COLLECTOR_EXECUTION_ROLE, TEMPORAL_ROLE, GRAFANA_ROLE,
             COLLECTOR_ROLE, UI_ROLE, SCHEMA_ROLE, INSTANCE_ROLE)


def legacy_iam(ctx: StepContext) -> tuple[list[str], list[str]]:
    """(role names, instance profile names) of this project from before region-named IAM: <project>-<key>,
    tagged for the project but for no region, and possibly used by the project's stack in any region.

    Read from the account's role details every run reads anyway; the old instance profile is looked up
    by name only when old roles are there, so a stack without them pays no extra call.
    """
    naming = ctx.naming
    legacy_names = {naming.legacy_global_name(key) for key in ROLE_KEYS}
    roles = sorted(
        name for name, role in account_roles(ctx.aws).items()
        if name in legacy_names and ours(naming, role["_tags"]) and TAG_REGION not in role["_tags"]
    )
    if not roles:
        return [], []
    profile = INSTANCE_PROFILE.get(ctx.aws, naming.legacy_global_name(INSTANCE_PROFILE_KEY))
    profiles = [profile["InstanceProfileName"]] if (
        profile and ours(naming, profile["_tags"]) and TAG_REGION not in profile["_tags"]) else []
    return roles, profiles


def note_legacy_iam(ctx: StepContext) -> None:
    roles, profiles = legacy_iam(ctx)
    if not roles and not profiles:
        return
    ctx.note(
        f"IAM from before region-named roles is left in place: roles {', '.join(roles)}"
        + (f"; instance profile {', '.join(profiles)}" if profiles else "")
        + ". IAM is account-wide and this project's stack in another region may still use them. Once every "
        "region's stack has run `provision up` with this version and its old nodes are replaced, delete them "
        "as the README says (Troubleshooting, \"IAM roles from before region-named roles\")."
    )


class Iam(Step):
    name = "iam"
    title = "IAM roles"
    requires = ("secret", "prometheus", "logs", "dsql")
    produces = IamOutputs
    kinds = (IAM_ROLE, INSTANCE_PROFILE)

    def names(self, ctx: StepContext) -> list:
        return [(IAM_ROLE, key, ctx.naming.global_name(key)) for key in ROLE_KEYS] + [
            (INSTANCE_PROFILE, INSTANCE_PROFILE_KEY, ctx.naming.global_name(INSTANCE_PROFILE_KEY))]

    def apply(self, ctx: StepContext) -> None:
        iam = ctx.aws.client("iam")
        account = ctx.aws.account_id

        def role_of(spec: RoleSpec) -> None:
            role_name = ctx.naming.global_name(spec.key)
            document = trust(spec, ctx.naming, account)
            role = ensure(
                ctx, IAM_ROLE, spec.key,
                lambda: iam.create_role(
                    Path=iam_path(ctx.naming), RoleName=role_name, Description=spec.description,
                    AssumeRolePolicyDocument=json.dumps(document),
                    Tags=ctx.naming.global_tag_list(self.name, spec.key),
                )["Role"],
                detail=spec.service, name=role_name, role_name=role_name,
            )
            self._converge(ctx, spec, role, role_name, document)

        ctx.each(role_specs(ctx), role_of)
        self._instance_profile(ctx)
        note_legacy_iam(ctx)

    def _converge(self, ctx: StepContext, spec: RoleSpec, role: dict | None, role_name: str, document: dict) -> None:
        iam = ctx.aws.client("iam")
        exists, live = role is not None, role or {}
        if exists and not _same(live.get("AssumeRolePolicyDocument", {}), document):
            ctx.change(
                "update", IAM_ROLE.noun, spec.key, "trust policy",
                act=lambda: iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(document)),
            )
        # A role described with the others (converge.live) carries its policies; one found alone does not.
        described = exists and "RolePolicyList" in live
        attached = (
            {p["PolicyArn"] for p in (live["AttachedManagedPolicies"] if described else
                                      iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"])}
            if exists else set()
        )
        for arn in sorted(set(spec.managed) - attached):
            ctx.change("update", IAM_ROLE.noun, spec.key, f"attach {arn.rsplit('/', 1)[-1]}",
                       act=lambda arn=arn: iam.attach_role_policy(RoleName=role_name, PolicyArn=arn))
        for arn in sorted(attached - set(spec.managed)):
            ctx.change("update", IAM_ROLE.noun, spec.key, f"detach {arn.rsplit('/', 1)[-1]}",
                       act=lambda arn=arn: iam.detach_role_policy(RoleName=role_name, PolicyArn=arn))
        inline = {p["PolicyName"]: p["PolicyDocument"] for p in live["RolePolicyList"]} if described else {}
        present = (set(inline) if described else set(iam.list_role_policies(RoleName=role_name)["PolicyNames"])
                   if exists else set())
        for policy_name, document_ in spec.inline.items():
            current = (
                inline.get(policy_name) or iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
                if policy_name in present else None
            )
            if current is None or not _same(current, document_):
                ctx.change(
                    "update", IAM_ROLE.noun, spec.key, f"policy {policy_name}",
                    act=lambda policy_name=policy_name, document_=document_: iam.put_role_policy(
                        RoleName=role_name, PolicyName=policy_name, PolicyDocument=json.dumps(document_)
                    ),
                )
        for policy_name in sorted(present - set(spec.inline)):
            ctx.change("update", IAM_ROLE.noun, spec.key, f"remove policy {policy_name}",
                       act=lambda policy_name=policy_name: iam.delete_role_policy(RoleName=role_name, PolicyName=policy_name))

    def _instance_profile(self, ctx: StepContext) -> None:
        iam = ctx.aws.client("iam")
        profile_name = ctx.naming.global_name(INSTANCE_PROFILE_KEY)
        role_name = ctx.naming.global_name(INSTANCE_ROLE)
        profile = ensure(
            ctx, INSTANCE_PROFILE, INSTANCE_PROFILE_KEY,
            lambda: iam.create_instance_profile(
                InstanceProfileName=profile_name, Path=iam_path(ctx.naming),
                Tags=ctx.naming.global_tag_list(self.name, INSTANCE_PROFILE_KEY),
            )["InstanceProfile"],
            name=profile_name,
        )
        roles = [r["RoleName"] for r in (profile or {}).get("Roles", [])]
        if roles != [role_name]:
            def attach() -> None:
                for other in roles:
                    iam.remove_role_from_instance_profile(InstanceProfileName=profile_name, RoleName=other)
                iam.add_role_to_instance_profile(InstanceProfileName=profile_name, RoleName=role_name)

            ctx.change("update", INSTANCE_PROFILE.noun, INSTANCE_PROFILE_KEY, f"hold role {role_name}", act=attach)

    def destroy(self, ctx: StepContext) -> None:
        destroy_kind(ctx, INSTANCE_PROFILE)
        destroy_kind(ctx, IAM_ROLE)
        note_legacy_iam(ctx)

    def outputs(self, ctx: StepContext) -> dict:
        records = ctx.state.step_records(self.name)
        return {f"{k.replace('-', '_')}_arn": r["id"] for k, r in sorted(records.items())}
