"""Named, tested additions to moto's AWS Backup, which (moto 5.2.6) implements vaults and plans only: the
service opt-in, plan updates, selections, backup jobs, recovery points and restore jobs of Aurora DSQL
clusters, each answering in the shapes of botocore's backup model (README: "Backups and restore").

Jobs take time in AWS; here a job is RUNNING when first described and COMPLETED at the next look (a describe,
or a listing of recovery points), so the tool's waits and their progress are exercised without sleeping.
A completed backup job yields a COMPLETED recovery point in its vault; a completed restore job yields a new
DSQL cluster, made by moto's own DSQL backend with the deletion protection the restore metadata asks for.
"""
from __future__ import annotations

import json
import urllib.parse

# The emulator's account is opted in to every type this stack backs up, as after `aws backup
# update-region-settings --resource-type-opt-in-preference DSQL=true` (README: "Backups and restore"):
# UpdateRegionSettings changes it, so the refusal of an account that has not opted in is tested.
DEFAULT_OPT_IN = {"DSQL": True, "Aurora": True, "DynamoDB": True}


def _backend(response):
    return response.backup_backend


def _state(response) -> dict:
    backend = _backend(response)
    if not hasattr(backend, "emulated"):
        backend.emulated = {"opt_in": dict(DEFAULT_OPT_IN), "selections": {}, "backup_jobs": {}, "points": {},
                            "restore_jobs": {}}
    return backend.emulated


def _error(code: str, message: str, status: int = 400):
    from moto.core.exceptions import JsonRESTError

    error = JsonRESTError(code, message)
    error.code = status
    return error


def _uri(response, name: str) -> str:
    return urllib.parse.unquote(response.uri_match.get(name, ""))


def region_settings() -> None:
    """DescribeRegionSettings and UpdateRegionSettings (the service opt-in), which moto lacks."""
    from moto.backup.responses import BackupResponse

    def describe_region_settings(self):
        return json.dumps({"ResourceTypeOptInPreference": _state(self)["opt_in"], "ResourceTypeManagementPreference": {}})

    def update_region_settings(self):
        _state(self)["opt_in"].update(self._get_param("ResourceTypeOptInPreference") or {})
        return "{}"

    BackupResponse.describe_region_settings = describe_region_settings
    BackupResponse.update_region_settings = update_region_settings


def plan_updates_and_names() -> None:
    """UpdateBackupPlan, which moto lacks (a new version of the plan's document, AWS Backup API reference); and
    a deleted plan no longer holds its name in moto (it refused a new plan named as one deleted)."""
    from moto.backup.models import BackupBackend
    from moto.backup.responses import BackupResponse
    from moto.moto_api._internal import mock_random

    original_create = BackupBackend.create_backup_plan

    def create_backup_plan(self, backup_plan, backup_plan_tags, creator_request_id):
        deleted = {k: p for k, p in self.plans.items() if p.deletion_date is not None}
        for plan_id in deleted:
            self.plans.pop(plan_id)
        try:
            return original_create(self, backup_plan, backup_plan_tags, creator_request_id)
        finally:
            self.plans.update(deleted)

    def update_backup_plan(self):
        plan = self.backup_backend.get_backup_plan(_uri(self, "backupPlanId"), None)
        document = self._get_param("BackupPlan")
        for rule in document["Rules"]:
            rule.setdefault("ScheduleExpression", "cron(0 5 ? * * *)")
            rule.setdefault("StartWindowMinutes", 480)
            rule.setdefault("CompletionWindowMinutes", 10080)
            rule["RuleId"] = str(mock_random.uuid4())
        plan.backup_plan = document
        plan.version_id = mock_random.get_random_string(length=48)
        return json.dumps({"BackupPlanId": plan.backup_plan_id, "BackupPlanArn": plan.backup_plan_arn,
                           "VersionId": plan.version_id})

    BackupBackend.create_backup_plan = create_backup_plan
    BackupResponse.update_backup_plan = update_backup_plan


def backup_selections() -> None:
    """CreateBackupSelection, GetBackupSelection, ListBackupSelections and DeleteBackupSelection, which moto lacks.
    A selection needs its plan and an existing role (AWS checks it can pass the role); a plan with selections
    cannot be deleted ("you must delete all selections": DeleteBackupPlan, AWS Backup API reference)."""
    from moto.backup.responses import BackupResponse
    from moto.core.utils import unix_time
    from moto.iam.models import iam_backends
    from moto.moto_api._internal import mock_random

    original_delete_plan = BackupResponse.delete_backup_plan

    def selections_of(response, plan_id: str) -> dict:
        response.backup_backend.get_backup_plan(plan_id, None)
        return _state(response)["selections"].setdefault(plan_id, {})

    def create_backup_selection(self):
        plan_id = _uri(self, "backupPlanId")
        selection = self._get_param("BackupSelection")
        try:
            iam_backends[self.current_account]["global"].get_role_by_arn(selection["IamRoleArn"])
        except Exception:  # moto's own not-found error
            raise _error("InvalidParameterValueException", f"IAM role {selection['IamRoleArn']} does not exist") from None
        selections = selections_of(self, plan_id)
        if any(s["BackupSelection"]["SelectionName"] == selection["SelectionName"] for s in selections.values()):
            raise _error("AlreadyExistsException", f"selection {selection['SelectionName']} already exists")
        selection_id = str(mock_random.uuid4())
        selections[selection_id] = {"BackupSelection": selection, "SelectionId": selection_id, "BackupPlanId": plan_id,
                                    "CreationDate": unix_time(), "CreatorRequestId": self._get_param("CreatorRequestId")}
        return json.dumps({"SelectionId": selection_id, "BackupPlanId": plan_id, "CreationDate": unix_time()})

    def found(response) -> dict:
        selection = selections_of(response, _uri(response, "backupPlanId")).get(_uri(response, "selectionId"))
        if selection is None:
            raise _error("ResourceNotFoundException", "backup selection not found")
        return selection

    def get_backup_selection(self):
        return json.dumps({k: v for k, v in found(self).items() if v is not None})

    def list_backup_selections(self):
        return json.dumps({"BackupSelectionsList": [
            {"SelectionId": s["SelectionId"], "SelectionName": s["BackupSelection"]["SelectionName"],
             "BackupPlanId": s["BackupPlanId"], "CreationDate": s["CreationDate"],
             "IamRoleArn": s["BackupSelection"]["IamRoleArn"]}
            for s in selections_of(self, _uri(self, "backupPlanId")).values()]})

    def delete_backup_selection(self):
        selection = found(self)
        del _state(self)["selections"][selection["BackupPlanId"]][selection["SelectionId"]]
        return "{}"

    def delete_backup_plan(self):
        if _state(self)["selections"].get(_uri(self, "backupPlanId")):
            raise _error("InvalidRequestException", "the plan has selections: delete them first")
        return original_delete_plan(self)

    BackupResponse.create_backup_selection = create_backup_selection
    BackupResponse.get_backup_selection = get_backup_selection
    BackupResponse.list_backup_selections = list_backup_selections
    BackupResponse.delete_backup_selection = delete_backup_selection
    BackupResponse.delete_backup_plan = delete_backup_plan


def _dsql(response):
    from moto.dsql.models import dsql_backends

    return dsql_backends[response.current_account][response.region]


def backup_jobs_and_recovery_points() -> None:
    """StartBackupJob, DescribeBackupJob, ListRecoveryPointsByResource, ListRecoveryPointsByBackupVault,
    DescribeRecoveryPoint and DeleteRecoveryPoint, which moto lacks; and DeleteBackupVault refusing a vault that
    holds recovery points ("you can delete a backup vault only if it is empty": DeleteBackupVault)."""
    from moto.backup.responses import BackupResponse
    from moto.core.utils import unix_time
    from moto.moto_api._internal import mock_random

    original_delete_vault = BackupResponse.delete_backup_vault

    def settle(response) -> None:
        """Every job looked at once already is done: its recovery point is COMPLETED."""
        state = _state(response)
        for job in state["backup_jobs"].values():
            if job["State"] == "RUNNING" and job.pop("_looked", False):
                job.update(State="COMPLETED", PercentDone="100.0", CompletionDate=unix_time(), BackupSizeInBytes=job["_size"])
                state["points"][job["RecoveryPointArn"]].update(Status="COMPLETED", CompletionDate=unix_time())
            elif job["State"] == "RUNNING":
                job["_looked"] = True

    def start_backup_job(self):
        vault = self.backup_backend.describe_backup_vault(self._get_param("BackupVaultName"))
        resource = self._get_param("ResourceArn")
        if ":dsql:" not in resource:
            raise _error("InvalidParameterValueException", f"{resource} is not a resource this emulator backs up")
        if not _state(self)["opt_in"].get("DSQL"):
            raise _error("InvalidRequestException", "Aurora DSQL is not opted in to AWS Backup in this region")
        _dsql(self).get_cluster(resource.rsplit("/", 1)[-1])  # moto's ResourceNotFoundException if it is gone
        job_id = str(mock_random.uuid4()).upper()
        point_arn = f"{vault.backup_vault_arn.split(':backup-vault:')[0]}:recovery-point:{mock_random.uuid4()}"
        now = unix_time()
        size = 1024 * 1024 * (1 + len(_state(self)["points"]))
        lifecycle = self._get_param("Lifecycle") or {}
        _state(self)["points"][point_arn] = {
            "RecoveryPointArn": point_arn, "BackupVaultName": vault.backup_vault_name,
            "BackupVaultArn": vault.backup_vault_arn, "ResourceArn": resource, "ResourceType": "DSQL",
            "IamRoleArn": self._get_param("IamRoleArn"), "Status": "CREATING", "CreationDate": now,
            "BackupSizeInBytes": size, "IsEncrypted": True, "Lifecycle": lifecycle,
            "ResourceName": resource.rsplit("/", 1)[-1],
        }
        _state(self)["backup_jobs"][job_id] = {
            "AccountId": self.current_account, "BackupJobId": job_id, "BackupVaultName": vault.backup_vault_name,
            "BackupVaultArn": vault.backup_vault_arn, "RecoveryPointArn": point_arn, "ResourceArn": resource,
            "CreationDate": now, "State": "RUNNING", "PercentDone": "0.0", "IamRoleArn": self._get_param("IamRoleArn"),
            "ResourceType": "DSQL", "_size": size,
        }
        return json.dumps({"BackupJobId": job_id, "RecoveryPointArn": point_arn, "CreationDate": now})

    def describe_backup_job(self):
        settle(self)
        job = _state(self)["backup_jobs"].get(_uri(self, "backupJobId"))
        if job is None:
            raise _error("ResourceNotFoundException", "backup job not found")
        return json.dumps({k: v for k, v in job.items() if not k.startswith("_")})

    def points(response, **match) -> list[dict]:
        settle(response)
        return [p for p in _state(response)["points"].values()
                if all(p[k] == v for k, v in match.items()) and p["Status"] != "DELETED"]

    def list_recovery_points_by_resource(self):
        found = points(self, ResourceArn=_uri(self, "resourceArn"))
        return json.dumps({"RecoveryPoints": [
            {k: p[k] for k in ("RecoveryPointArn", "CreationDate", "Status", "BackupVaultName", "ResourceName")}
            | {"BackupSizeBytes": p["BackupSizeInBytes"]} for p in found]})

    def list_recovery_points_by_backup_vault(self):
        name = _uri(self, "backupVaultName")
        self.backup_backend.describe_backup_vault(name)
        return json.dumps({"RecoveryPoints": points(self, BackupVaultName=name)})

    def point_in_vault(response) -> dict:
        found = points(response, BackupVaultName=_uri(response, "backupVaultName"),
                       RecoveryPointArn=_uri(response, "recoveryPointArn"))
        if not found:
            raise _error("ResourceNotFoundException", "recovery point not found")
        return found[0]

    def describe_recovery_point(self):
        return json.dumps(point_in_vault(self))

    def delete_recovery_point(self):
        point_in_vault(self)["Status"] = "DELETED"
        return "{}"

    def delete_backup_vault(self):
        if points(self, BackupVaultName=_uri(self, "backupVaultName")):
            raise _error("InvalidRequestException", "Backup vault cannot be deleted because it contains recovery points")
        return original_delete_vault(self)

    BackupResponse.start_backup_job = start_backup_job
    BackupResponse.describe_backup_job = describe_backup_job
    BackupResponse.list_recovery_points_by_resource = list_recovery_points_by_resource
    BackupResponse.list_recovery_points_by_backup_vault = list_recovery_points_by_backup_vault
    BackupResponse.describe_recovery_point = describe_recovery_point
    BackupResponse.delete_recovery_point = delete_recovery_point
    BackupResponse.delete_backup_vault = delete_backup_vault


def restore_jobs() -> None:
    """StartRestoreJob and DescribeRestoreJob for DSQL recovery points, which moto lacks. A restore makes a new
    cluster ("Restore always creates a new cluster": AWS Backup developer guide, restore-auroradsql), with the
    deletion protection of the metadata's regionalConfig, named by the job's CreatedResourceArn."""
    from moto.backup.responses import BackupResponse
    from moto.core.utils import unix_time
    from moto.moto_api._internal import mock_random

    def start_restore_job(self):
        arn = self._get_param("RecoveryPointArn")
        point = _state(self)["points"].get(arn)
        if point is None or point["Status"] != "COMPLETED":
            raise _error("ResourceNotFoundException", f"recovery point {arn} not found or not completed")
        try:
            regional = json.loads((self._get_param("Metadata") or {}).get("regionalConfig", "[]"))
        except json.JSONDecodeError:
            raise _error("InvalidParameterValueException", "regionalConfig is not JSON") from None
        mine = [r for r in regional if r.get("region") == self.region]
        if not mine:
            raise _error("InvalidParameterValueException", f"regionalConfig names no configuration for {self.region}")
        job_id = str(mock_random.uuid4()).upper()
        _state(self)["restore_jobs"][job_id] = {
            "AccountId": self.current_account, "RestoreJobId": job_id, "RecoveryPointArn": arn,
            "SourceResourceArn": point["ResourceArn"], "BackupVaultArn": point["BackupVaultArn"],
            "CreationDate": unix_time(), "Status": "RUNNING", "PercentDone": "0.0",
            "IamRoleArn": self._get_param("IamRoleArn"), "ResourceType": "DSQL",
            "_protected": bool(mine[0].get("isDeletionProtectionEnabled")),
        }
        return json.dumps({"RestoreJobId": job_id})

    def describe_restore_job(self):
        job = _state(self)["restore_jobs"].get(_uri(self, "restoreJobId"))
        if job is None:
            raise _error("ResourceNotFoundException", "restore job not found")
        if job["Status"] == "RUNNING" and job.pop("_looked", False):
            cluster = _dsql(self).create_cluster(deletion_protection_enabled=job["_protected"], tags={}, client_token=None)
            job.update(Status="COMPLETED", PercentDone="100.0", CompletionDate=unix_time(), CreatedResourceArn=cluster.arn)
        elif job["Status"] == "RUNNING":
            job["_looked"] = True
        return json.dumps({k: v for k, v in job.items() if not k.startswith("_")})

    BackupResponse.start_restore_job = start_restore_job
    BackupResponse.describe_restore_job = describe_restore_job


def backup_routes() -> None:
    """The URL paths of the operations above, which moto's backup urls.py does not route (botocore's backup
    model's requestUri of each). Added before the server builds its routes."""
    from moto.backup import urls

    urls.url_paths.update({
        "{0}/account-settings$": urls.response.dispatch,
        "{0}/backup-jobs/?$": urls.response.dispatch,
        "{0}/backup-jobs/(?P<job>[^/]+)$": urls.response.dispatch,
        "{0}/restore-jobs/?$": urls.response.dispatch,
        "{0}/restore-jobs/(?P<job>[^/]+)$": urls.response.dispatch,
        "{0}/resources/(?P<resource>.+)/recovery-points/$": urls.response.dispatch,
        "{0}/backup-vaults/(?P<name>[^/]+)/recovery-points/$": urls.response.dispatch,
        "{0}/backup-vaults/(?P<name>[^/]+)/recovery-points/(?P<point>[^/]+)$": urls.response.dispatch,
    })


PATCHES = (
    backup_routes,
    region_settings,
    plan_updates_and_names,
    backup_selections,
    backup_jobs_and_recovery_points,
    restore_jobs,
)
