"""AWS Backup of the Aurora DSQL cluster (README: "Backups and restore"), on unless `backup.enabled = false`.

A vault (AWS Backup's default key, or `backup.kms_key_id`), a plan with one rule (`backup.schedule`, kept
`backup.retention_days`, copied to `backup.copy_to_vault_arn` if set), a selection holding exactly this
stack's cluster, and the IAM role AWS Backup assumes to back it up and restore it. `up` first checks that
the account opted in to Aurora DSQL in AWS Backup, and stops before anything is created if not.

`destroy` deletes the plan, selection and role, and keeps the vault with its recovery points (they are the
data) unless `--delete-data`. Turning backups off deletes the plan, selection and role, and keeps the vault.
"""
from __future__ import annotations

from dataclasses import dataclass

from provisioner.aws.backup_kinds import (
    BACKUP_PLAN,
    BACKUP_ROLE,
    BACKUP_SELECTION,
    BACKUP_VAULT,
    SELECTION_KEY,
    recovery_points_of_vault,
    selection_id,
)
from provisioner.aws.converge import converge, destroy_kind, owned
from provisioner.aws.named_kinds import iam_path
from provisioner.aws.waiter import wait_for
from provisioner.engine import Step, StepContext
from provisioner.errors import BadInput
from provisioner.step_outputs import KNOWN_AFTER_APPLY, StepOutputs, known, recorded_as
from provisioner.steps.dsql import DsqlOutputs

VAULT = "vault"
PLAN = "plan"
ROLE = "backup-role"
RULE = "scheduled"
# The resource type of Aurora DSQL in AWS Backup's service opt-in (DescribeRegionSettings'
# ResourceTypeOptInPreference): "DSQL" (AWS Backup developer guide, "Feature availability by resource", and
# the AWS provider's aws_backup_region_settings example). botocore's backup model lists no resource types.
DSQL_RESOURCE_TYPE = "DSQL"
OPT_IN_COMMAND = f"aws backup update-region-settings --resource-type-opt-in-preference {DSQL_RESOURCE_TYPE}=true"


@dataclass(frozen=True)
class BackupOutputs(StepOutputs):
    """The vault recovery points go to, and the role AWS Backup assumes (for `backup now` and `restore`)."""

    step = "backup"
    vault_name: str = recorded_as(VAULT)
    role_arn: str = recorded_as(ROLE)


def trust(account: str) -> dict:
    """AWS Backup assumes the role (AWS Backup developer guide, iam-service-roles.html: principal
    backup.amazonaws.com); aws:SourceAccount keeps other accounts' jobs from using it (confused deputy)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account}},
    }]}


def role_policy(ctx: StepContext, cluster_arn: str) -> dict:
    """The DSQL statements of the AWS-managed AWSBackupServiceRolePolicyForBackup ("DSQLResourcePermissionsForBackup":
    dsql:StartBackupJob, GetBackupJob, StopBackupJob, GetCluster, ListClusters, ListTagsForResource;
    "RecoveryPointTaggingPermissions": backup:TagResource on recovery points of the caller's account) and
    AWSBackupServiceRolePolicyForRestores (dsql:StartRestoreJob, GetRestoreJob, StopRestoreJob, CreateCluster,
    UpdateCluster, GetCluster, TagResource), scoped where they can be: the backup of this cluster only. A restore
    makes a cluster whose ARN is not known before, so restores and job reads name the region's clusters;
    ListClusters takes no resource (the managed policies grant these on "*")."""
    account = ctx.aws.account_id
    naming = ctx.naming
    clusters = naming.arn("dsql", account, "cluster/*")
    statements = [
        {"Sid": "DsqlBackupThisCluster", "Effect": "Allow",
         "Action": ["dsql:StartBackupJob", "dsql:StopBackupJob", "dsql:GetCluster", "dsql:ListTagsForResource"],
         "Resource": cluster_arn},
        {"Sid": "DsqlJobsAndRestores", "Effect": "Allow",
         "Action": ["dsql:GetBackupJob", "dsql:StartRestoreJob", "dsql:GetRestoreJob", "dsql:StopRestoreJob",
                    "dsql:CreateCluster", "dsql:UpdateCluster", "dsql:GetCluster", "dsql:TagResource"],
         "Resource": clusters},
        {"Sid": "DsqlList", "Effect": "Allow", "Action": "dsql:ListClusters", "Resource": "*"},
        {"Sid": "RecoveryPointTagging", "Effect": "Allow", "Action": "backup:TagResource",
         "Resource": naming.arn("backup", account, "recovery-point:*"),
         "Condition": {"StringEquals": {"aws:PrincipalAccount": account}}},
    ]
    key = ctx.config.backup.kms_key_id
    if key:
        # The vault's own key: what AWSBackupServiceRolePolicyForBackup's KMSPermissions grant, on this key only.
        statements.append({"Sid": "VaultKey", "Effect": "Allow",
                           "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                           "Resource": key})
        statements.append({"Sid": "VaultKeyGrants", "Effect": "Allow", "Action": "kms:CreateGrant", "Resource": key,
                           "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}})
    return {"Version": "2012-10-17", "Statement": statements}


def plan_rule(ctx: StepContext, vault_name: str) -> dict:
    backup = ctx.config.backup
    lifecycle = {"DeleteAfterDays": backup.retention_days}
    copies = [{"DestinationBackupVaultArn": backup.copy_to_vault_arn, "Lifecycle": lifecycle}] \
        if backup.copy_to_vault_arn else []
    return {"RuleName": RULE, "TargetBackupVaultName": vault_name, "ScheduleExpression": backup.schedule,
            "Lifecycle": lifecycle, "CopyActions": copies}


def opted_in(ctx: StepContext) -> bool:
    preferences = ctx.aws.client("backup").describe_region_settings().get("ResourceTypeOptInPreference", {})
    return preferences.get(DSQL_RESOURCE_TYPE) is True


class Backup(Step):
    name = "backup"
    title = "AWS Backup of the DSQL cluster"
    requires = ("dsql",)
    produces = BackupOutputs
    kinds = (BACKUP_ROLE, BACKUP_VAULT, BACKUP_PLAN, BACKUP_SELECTION)

    def preflight(self, ctx: StepContext) -> None:
        backup = ctx.config.backup
        if not backup.enabled:
            return
        if backup.copy_region == ctx.aws.region:
            raise BadInput(f"backup.copy_to_vault_arn is a vault in {ctx.aws.region}, this stack's own region: a copy "
                           "protects against losing a region only in another one. Name a vault in another region.")
        if not opted_in(ctx):
            raise BadInput(
                f"this account has not opted in to Aurora DSQL in AWS Backup in {ctx.aws.region}, so AWS Backup "
                f"would not back the cluster up. Opt in: {OPT_IN_COMMAND} (or the AWS Backup console, Settings, "
                "Service opt-in), then run 'provision up' again; or set backup.enabled = false.")

    def names(self, ctx: StepContext) -> list:
        if not ctx.config.backup.enabled:
            return []
        return [(BACKUP_VAULT, VAULT, self.vault_name(ctx)), (BACKUP_PLAN, PLAN, ctx.naming.name("backup-plan")),
                (BACKUP_ROLE, ROLE, ctx.naming.global_name(ROLE))]

    @staticmethod
    def vault_name(ctx: StepContext) -> str:
        return ctx.naming.name("backups")

    def apply(self, ctx: StepContext) -> None:
        if not ctx.config.backup.enabled:
            self._remove_schedule(ctx)
            return
        cluster_arn = ctx.outputs_of(DsqlOutputs).cluster_arn
        account = ctx.aws.account_id
        role = converge(
            ctx, BACKUP_ROLE, ROLE, name=ctx.naming.global_name(ROLE), detail="assumed by AWS Backup",
            spec={"path": iam_path(ctx.naming), "trust": trust(account), "policy": role_policy(ctx, cluster_arn)})
        key = ctx.config.backup.kms_key_id
        vault = converge(ctx, BACKUP_VAULT, VAULT, name=self.vault_name(ctx),
                         spec={"EncryptionKeyArn": key} if key else {},
                         detail=f"encrypted with {key or 'the AWS Backup default key (aws/backup)'}")
        vault_name = vault["BackupVaultName"] if vault else self.vault_name(ctx)
        plan = converge(ctx, BACKUP_PLAN, PLAN, name=ctx.naming.name("backup-plan"),
                        spec={"Rules": [plan_rule(ctx, vault_name)]},
                        detail=f"{ctx.config.backup.schedule}, kept {ctx.config.backup.retention_days} days")
        selection = {"IamRoleArn": role["Arn"] if role else KNOWN_AFTER_APPLY, "Resources": [cluster_arn]}
        if plan is None or not known(cluster_arn):
            ctx.change("create", BACKUP_SELECTION.noun, SELECTION_KEY, f"only {cluster_arn}")
            return
        converge(ctx, BACKUP_SELECTION, SELECTION_KEY, name=selection_id(plan["BackupPlanId"], ctx.naming.name("dsql")),
                 spec=selection, detail=f"only {cluster_arn}")

    def _remove_schedule(self, ctx: StepContext) -> None:
        """backup.enabled = false: no more backups; the vault and what it holds stay (they are data)."""
        destroy_kind(ctx, BACKUP_SELECTION)
        destroy_kind(ctx, BACKUP_PLAN)
        destroy_kind(ctx, BACKUP_ROLE)
        if ctx.state.get(self.name, VAULT):
            ctx.note(f"Backups are off (backup.enabled = false); kept the vault {self.vault_name(ctx)} and its recovery "
                     "points. 'provision destroy --delete-data' deletes them.")

    def destroy(self, ctx: StepContext) -> None:
        destroy_kind(ctx, BACKUP_SELECTION)
        destroy_kind(ctx, BACKUP_PLAN)
        destroy_kind(ctx, BACKUP_ROLE)
        vaults = owned(ctx, BACKUP_VAULT)
        if not ctx.delete_data:
            for name in vaults:
                ctx.state.forget(self.name, VAULT)
                ctx.note(f"Kept the backup vault {name} and its recovery points (the DSQL cluster's backups); a later "
                         "'provision up' uses it again. To delete them: provision destroy --delete-data")
            return
        backup = ctx.aws.client("backup")
        for name in vaults:
            points = recovery_points_of_vault(ctx.aws, name)
            for point in points:
                ctx.change("delete", "recovery point", VAULT, point["RecoveryPointArn"], act=lambda arn=point[
                    "RecoveryPointArn"], vault=name: backup.delete_recovery_point(BackupVaultName=vault,
                                                                                 RecoveryPointArn=arn))
            if points and not ctx.dry_run:
                # A vault is deleted only once empty (DeleteBackupVault: "the vault must be empty"); deleting a
                # recovery point is asynchronous (its status goes DELETED).
                def emptied(name: str = name) -> bool | None:
                    live = [p for p in recovery_points_of_vault(ctx.aws, name) if p.get("Status") != "DELETED"]
                    return True if not live else None

                wait_for(f"the recovery points of {name} to be deleted", emptied, timeout=ctx.config.timeouts.default)
        destroy_kind(ctx, BACKUP_VAULT)

    def outputs(self, ctx: StepContext) -> dict:
        vault = ctx.state.get(self.name, VAULT)
        return {"backup_vault": vault["id"]} if vault else {}
