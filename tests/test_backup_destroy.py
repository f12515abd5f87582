"""`destroy` and the backups: the vault and its recovery points outlive the stack until --delete-data.

On a stack of its own, apart from tests/test_backup.py's shared one, which it would take down."""
from __future__ import annotations

from tests.conftest import run_cli
from tests.test_backup import VAULT, backup_client, backup_now, built_stack


def test_destroy_keeps_the_vault_and_its_recovery_points_until_delete_data(endpoint, tmp_path):
    config_file, state, _, _ = built_stack(tmp_path)
    backup_now(config_file, state)
    kept = run_cli("destroy", "--yes", config_file=config_file, state=state)
    assert kept.exit_code == 0, kept.output
    assert f"Kept the backup vault {VAULT}" in " ".join(kept.output.split())
    assert backup_client().list_recovery_points_by_backup_vault(BackupVaultName=VAULT)["RecoveryPoints"]
    assert backup_client().list_backup_plans()["BackupPlansList"] == []
    removed = run_cli("destroy", "--yes", "--delete-data", config_file=config_file, state=state)
    assert removed.exit_code == 0, removed.output
    assert VAULT not in [v["BackupVaultName"] for v in backup_client().list_backup_vaults()["BackupVaultList"]]
