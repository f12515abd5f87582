"""The AWS Backup resources of the backup step (README: "Backups and restore"): the vault, the plan, the
selection that holds the DSQL cluster, and the IAM role AWS Backup assumes. Each is a `NamedKind` with the
lifecycle converge() drives (create, settings, update).

A selection carries no tags (CreateBackupSelection takes none: botocore's backup model): it belongs to the
plan it is in, so it is found by its name in this project's plan, and reads as tagged with the plan's tags.
Its ID is "<plan ID>/<selection name>/<SelectionId>": the name is what a replacement keeps (AWS Backup cannot
update a selection), the SelectionId what GetBackupSelection takes, so a recorded one is read in one call.
"""
from __future__ import annotations

import json
import re
import urllib.parse

from botocore.exceptions import ClientError

from provisioner.aws.kinds import Desired, register
from provisioner.aws.named_kinds import (
    NamedKind,
    _delete_role,
    _list_roles,
    account_roles,
    tag_list,
    with_tags,
)
from provisioner.aws.session import Aws
from provisioner.errors import error_code
from provisioner.naming import Naming

NOT_FOUND = ("ResourceNotFoundException",)
# The inline policy of the backup role (steps/backup.py writes it).
BACKUP_ROLE_POLICY = "backup-and-restore"
SELECTION_KEY = "selection"
STEP = "backup"  # steps/backup.py, whose resources these are
PLAN_ID = re.compile(r"^[0-9a-fA-F-]{36}$")


def _backup(aws: Aws):
    return aws.client("backup")


# -- vault -------------------------------------------------------------------------------------

def _vault(aws: Aws, name: str) -> dict:
    """The vault; its tags apart (`_get_vault`: DescribeBackupVault answers none), or from the run's Tagging API read."""
    return _backup(aws).describe_backup_vault(BackupVaultName=name)


def _get_vault(aws: Aws, name: str) -> dict:
    vault = _vault(aws, name)
    return with_tags(vault, _backup(aws).list_tags(ResourceArn=vault["BackupVaultArn"]).get("Tags", {}))


def _list_vaults(aws: Aws, naming: Naming) -> list[dict]:
    pages = _backup(aws).get_paginator("list_backup_vaults").paginate()
    return [_get_vault(aws, v["BackupVaultName"]) for page in pages for v in page["BackupVaultList"]
            if v["BackupVaultName"].startswith(f"{naming.project}-")]


def _create_vault(aws: Aws, desired: Desired) -> dict:
    if desired.name is None:
        raise TypeError("a backup vault is created by its name")
    key = {"EncryptionKeyArn": desired.spec["EncryptionKeyArn"]} if desired.spec.get("EncryptionKeyArn") else {}
    _backup(aws).create_backup_vault(BackupVaultName=desired.name, BackupVaultTags=desired.tags,
                                     CreatorRequestId=desired.client_token, **key)
    return _get_vault(aws, desired.name)


BACKUP_VAULT = register(NamedKind(
    "backup-vault", "backup vault", _get_vault, "BackupVaultName",
    lambda aws, name: _backup(aws).delete_backup_vault(BackupVaultName=name), _list_vaults, NOT_FOUND, "backup",
    tag=lambda aws, vault, tags: _backup(aws).tag_resource(ResourceArn=vault["BackupVaultArn"], Tags=tags),
    # The ARN DescribeBackupVault answers: arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME (AWS Backup API reference).
    tag_arn=lambda naming, account, name: naming.arn("backup", account, f"backup-vault:{name}"),
    lookup_untagged=_vault,
    create=_create_vault,
    # Without a key of its own, a vault reads as it is: AWS Backup's default key is no setting to compare.
    settings=lambda aws, vault: {"EncryptionKeyArn": vault.get("EncryptionKeyArn")},
    # No update: AWS Backup has no call that changes a vault's key (converge() says to put the config back).
))


def recovery_points_of_vault(aws: Aws, vault: str) -> list[dict]:
    pages = _backup(aws).get_paginator("list_recovery_points_by_backup_vault").paginate(BackupVaultName=vault)
    return [point for page in pages for point in page["RecoveryPoints"]]


# -- plan ----------------------------------------------------------------------------------------

def _plan(aws: Aws, plan_id: str) -> dict | None:
    """The plan; its tags apart (`_plan_item`: GetBackupPlan answers none), or from the run's Tagging API read."""
    plan = _backup(aws).get_backup_plan(BackupPlanId=plan_id)
    return None if plan.get("DeletionDate") else plan


def _plan_item(aws: Aws, plan_id: str) -> dict | None:
    plan = _plan(aws, plan_id)
    if plan is None:
        return None
    return with_tags(plan, _backup(aws).list_tags(ResourceArn=plan["BackupPlanArn"]).get("Tags", {}))


def _get_plan(aws: Aws, id_or_name: str) -> dict | None:
    if PLAN_ID.match(id_or_name):
        return _plan_item(aws, id_or_name)
    found = [p for p in _backup(aws).list_backup_plans()["BackupPlansList"] if p.get("BackupPlanName") == id_or_name]
    return _plan_item(aws, found[0]["BackupPlanId"]) if found else None


def _list_plans(aws: Aws, naming: Naming) -> list[dict]:
    pages = _backup(aws).get_paginator("list_backup_plans").paginate()
    items = [_plan_item(aws, p["BackupPlanId"]) for page in pages for p in page["BackupPlansList"]
             if str(p.get("BackupPlanName", "")).startswith(f"{naming.project}-")]
    return [i for i in items if i]


# The fields of a rule the tool sets, in the shape GetBackupPlan answers (AWS adds RuleId and defaults).
RULE_FIELDS = ("RuleName", "TargetBackupVaultName", "ScheduleExpression", "Lifecycle", "CopyActions")


def _plan_settings(aws: Aws, plan: dict) -> dict:
    rules = plan.get("BackupPlan", {}).get("Rules", [])
    return {"Rules": [{field: rule.get(field, [] if field == "CopyActions" else None) for field in RULE_FIELDS}
                      for rule in rules]}


def plan_document(name: str, spec: dict) -> dict:
    """The BackupPlan parameter: a rule without copy actions leaves the field out."""
    return {"BackupPlanName": name,
            "Rules": [{k: v for k, v in rule.items() if not (k == "CopyActions" and not v)} for rule in spec["Rules"]]}


def _create_plan(aws: Aws, desired: Desired) -> dict | None:
    if desired.name is None:
        raise TypeError("a backup plan is created by its name")
    made = _backup(aws).create_backup_plan(BackupPlan=plan_document(desired.name, desired.spec),
                                           BackupPlanTags=desired.tags, CreatorRequestId=desired.client_token)
    return _plan_item(aws, made["BackupPlanId"])


def _update_plan(aws: Aws, plan: dict, changed: dict, desired: Desired) -> None:
    # UpdateBackupPlan replaces the whole plan document: the desired one, not only the fields that changed.
    _backup(aws).update_backup_plan(BackupPlanId=plan["BackupPlanId"],
                                    BackupPlan=plan_document(plan["BackupPlan"]["BackupPlanName"], desired.spec))


BACKUP_PLAN = register(NamedKind(
    "backup-plan", "backup plan", _get_plan, "BackupPlanId",
    lambda aws, plan_id: _backup(aws).delete_backup_plan(BackupPlanId=plan_id), _list_plans, NOT_FOUND, "backup",
    tag=lambda aws, plan, tags: _backup(aws).tag_resource(ResourceArn=plan["BackupPlanArn"], Tags=tags),
    # Its ARN: arn:aws:backup:REGION:ACCOUNT:backup-plan:PLAN_ID (GetBackupPlan's BackupPlanArn).
    tag_arn=lambda naming, account, plan_id: naming.arn("backup", account, f"backup-plan:{plan_id}"),
    lookup_untagged=_plan,
    create=_create_plan, settings=_plan_settings, update=_update_plan,
))


# -- selection -----------------------------------------------------------------------------------

def selection_id(plan_id: str, name: str, selection: str = "") -> str:
    """"<plan ID>/<selection name>", and "/<SelectionId>" once known (none of the three holds a slash: the plan ID
    and SelectionId are UUIDs, a selection name is letters, digits, "-", "_" and ".": AWS Backup API reference)."""
    return "/".join(part for part in (plan_id, name, selection) if part)


def _selection_tags(aws: Aws, name: str) -> dict[str, str]:
    """A selection has no tags: it is this tool's when named <project>-<what> in a plan the tool found as its own
    (by the state's ID, or by the plan's tags), so it reads as tagged with what its name says, under its own key."""
    return Naming(name.rsplit("-", 1)[0], aws.region).tags(STEP, SELECTION_KEY)


def _get_selection(aws: Aws, selection: str) -> dict | None:
    """By its SelectionId when the ID holds one and it is still the selection of that name; else by its name,
    listed in its plan (a replacement made a new SelectionId, or the ID is "<plan ID>/<name>")."""
    plan_id, name, known_id = (selection.split("/", 2) + [""])[:3]
    described = _selection_by_id(aws, plan_id, known_id) if known_id else None
    if described is None or described["BackupSelection"]["SelectionName"] != name:
        pages = _backup(aws).get_paginator("list_backup_selections").paginate(BackupPlanId=plan_id)
        found = [s for page in pages for s in page["BackupSelectionsList"] if s["SelectionName"] == name]
        if not found:
            return None
        described = _backup(aws).get_backup_selection(BackupPlanId=plan_id, SelectionId=found[0]["SelectionId"])
    return with_tags(described | {"_id": selection_id(plan_id, name, described["SelectionId"])},
                     _selection_tags(aws, name))


def _selection_by_id(aws: Aws, plan_id: str, known_id: str) -> dict | None:
    try:
        return _backup(aws).get_backup_selection(BackupPlanId=plan_id, SelectionId=known_id)
    except ClientError as exc:
        if error_code(exc) not in NOT_FOUND:
            raise
        return None  # replaced since, or gone with its plan: looked for by name


def _list_selections(aws: Aws, naming: Naming) -> list[dict]:
    """The selections of the project's plans (those tagged as its own): what `destroy` without a state deletes
    before their plan, which AWS Backup refuses to delete while it holds any."""
    found = []
    for plan in _list_plans(aws, naming):
        pages = _backup(aws).get_paginator("list_backup_selections").paginate(BackupPlanId=plan["BackupPlanId"])
        for selection in (s for page in pages for s in page["BackupSelectionsList"]):
            item = _get_selection(aws, selection_id(plan["BackupPlanId"], selection["SelectionName"],
                                                    selection["SelectionId"]))
            if item is not None:
                found.append(item)
    return found


def _create_selection(aws: Aws, desired: Desired) -> dict | None:
    if desired.name is None:
        raise TypeError("a backup selection is created by its name, plan ID/selection name")
    plan_id, _, name = desired.name.partition("/")
    _backup(aws).create_backup_selection(
        BackupPlanId=plan_id, CreatorRequestId=desired.client_token,
        BackupSelection={"SelectionName": name, **desired.spec})
    return _get_selection(aws, desired.name)


def _delete_selection(aws: Aws, selection: str) -> None:
    item = _get_selection(aws, selection)
    if item is not None:
        _backup(aws).delete_backup_selection(BackupPlanId=item["BackupPlanId"], SelectionId=item["SelectionId"])


def _replace_selection(aws: Aws, selection: dict, changed: dict, desired: Desired) -> None:
    """AWS Backup has no UpdateBackupSelection: the selection is deleted and made again, under its name."""
    current = selection["BackupSelection"]
    wanted = {"IamRoleArn": current["IamRoleArn"], "Resources": current.get("Resources", [])} | changed
    _backup(aws).delete_backup_selection(BackupPlanId=selection["BackupPlanId"], SelectionId=selection["SelectionId"])
    _backup(aws).create_backup_selection(
        BackupPlanId=selection["BackupPlanId"],
        BackupSelection={"SelectionName": current["SelectionName"], **wanted})


BACKUP_SELECTION = register(NamedKind(
    "backup-selection", "backup selection", _get_selection, "_id", _delete_selection, _list_selections, NOT_FOUND,
    "backup",
    read_ahead=False,  # found through its plan, after it
    create=_create_selection,
    settings=lambda aws, selection: {"IamRoleArn": selection["BackupSelection"]["IamRoleArn"],
                                "Resources": selection["BackupSelection"].get("Resources", [])},
    update=_replace_selection,
))


# -- the role AWS Backup assumes -----------------------------------------------------------------

def _get_backup_role(aws: Aws, role: str) -> dict | None:
    """The role with its inline policy, from the account's role details the run reads once (account_roles): no call
    of its own in a run that reads IAM anyway."""
    found = account_roles(aws).get(role.rsplit("/", 1)[-1])
    if found is None:
        return None
    policies = {p["PolicyName"]: p["PolicyDocument"] for p in found.get("RolePolicyList", [])}
    return found | {"_policy": _document(policies.get(BACKUP_ROLE_POLICY))}


def _document(document):
    """A policy document as GetAccountAuthorizationDetails gives it: a dict, or URL-encoded JSON."""
    if isinstance(document, str):
        return json.loads(urllib.parse.unquote(document))
    return document


def _create_backup_role(aws: Aws, desired: Desired) -> dict:
    """The item from the answers themselves: the account's role details may not list a new role at once."""
    role = aws.client("iam").create_role(
        Path=desired.spec["path"], RoleName=desired.name,
        Description="AWS Backup: backs up and restores the DSQL cluster",
        AssumeRolePolicyDocument=json.dumps(desired.spec["trust"]), Tags=tag_list(desired.tags))["Role"]
    aws.client("iam").put_role_policy(RoleName=desired.name, PolicyName=BACKUP_ROLE_POLICY,
                                      PolicyDocument=json.dumps(desired.spec["policy"]))
    return with_tags(role, desired.tags) | {"AssumeRolePolicyDocument": _document(role["AssumeRolePolicyDocument"]),
                                            "_policy": desired.spec["policy"]}


def _update_backup_role(aws: Aws, role: dict, changed: dict, desired: Desired) -> None:
    iam = aws.client("iam")
    if "trust" in changed:
        iam.update_assume_role_policy(RoleName=role["RoleName"], PolicyDocument=json.dumps(changed["trust"]))
    if "policy" in changed:
        iam.put_role_policy(RoleName=role["RoleName"], PolicyName=BACKUP_ROLE_POLICY,
                            PolicyDocument=json.dumps(changed["policy"]))


BACKUP_ROLE = register(NamedKind(
    "backup-role", "IAM role", _get_backup_role, "Arn", _delete_role, _list_roles, ("NoSuchEntity",), "iam",
    global_scope=True,
    tag=lambda aws, role, tags: aws.client("iam").tag_role(RoleName=role["RoleName"], Tags=tag_list(tags)),
    create=_create_backup_role,
    settings=lambda aws, role: {"path": role["Path"], "trust": role.get("AssumeRolePolicyDocument"),
                           "policy": role.get("_policy")},
    update=_update_backup_role,
))
