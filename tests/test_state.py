"""The state store: atomic, private, locked, versioned, and never a home for secrets."""
from __future__ import annotations

import json
import multiprocessing
import stat

import pytest

from provisioner.state import StateError, StateLocked, StateStore


def store(tmp_path, project="proj", region="eu-west-1") -> StateStore:
    return StateStore(tmp_path / "proj.json", project, region)


def test_a_recorded_resource_is_on_disk_at_once_with_mode_0600(tmp_path):
    s = store(tmp_path)
    with s.locked("up"):
        s.put("network", "vpc", "vpc-1", kind="vpc")
        on_disk = json.loads(s.path.read_text())
        assert on_disk["resources"] == {"network": {"vpc": {"id": "vpc-1", "kind": "vpc"}}}
    assert stat.S_IMODE(s.path.stat().st_mode) == 0o600


def test_serial_moves_only_on_change_and_lineage_stays(tmp_path):
    s = store(tmp_path)
    with s.locked("up"):
        s.put("network", "vpc", "vpc-1", kind="vpc")
        serial, lineage = s.serial, s.lineage
        s.put("network", "vpc", "vpc-1", kind="vpc")
        assert s.serial == serial
    with s.locked("up"):
        assert s.lineage == lineage
        s.put("network", "igw", "igw-1", kind="igw")
        assert s.serial == serial + 1


def test_the_previous_version_is_kept_as_a_backup_once_per_run(tmp_path):
    s = store(tmp_path)
    with s.locked("up"):
        s.put("network", "vpc", "vpc-1", kind="vpc")
    first = s.path.read_bytes()
    again = store(tmp_path)
    with again.locked("up"):
        again.put("network", "igw", "igw-1", kind="igw")
        again.put("network", "nat", "nat-1", kind="nat")
    assert again.backup_path.read_bytes() == first
    assert stat.S_IMODE(again.backup_path.stat().st_mode) == 0o600


def test_no_temporary_file_is_left_behind(tmp_path):
    s = store(tmp_path)
    with s.locked("up"):
        for i in range(5):
            s.put("network", f"k{i}", f"id-{i}", kind="vpc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj.json", "proj.json.lock"]


def test_a_state_of_another_project_or_region_is_refused(tmp_path):
    with store(tmp_path).locked("up") as s:
        s.put("network", "vpc", "vpc-1", kind="vpc")
    with pytest.raises(StateError, match="belongs to project 'proj' in 'eu-west-1'"):
        with store(tmp_path, region="us-east-1").locked("up"):
            pass


def test_a_corrupt_state_names_the_backup(tmp_path):
    for vpc in ("vpc-1", "vpc-2"):  # the second run backs up the first one's state
        with store(tmp_path).locked("up") as s:
            s.put("network", "vpc", vpc, kind="vpc")
    s.path.write_text("{not json")
    with pytest.raises(StateError, match=r"Restore it from .*proj.json.backup"):
        with s.locked("up"):
            pass


def test_a_corrupt_state_without_a_backup_suggests_none(tmp_path):
    s = store(tmp_path)
    s.path.write_text("{not json")
    with pytest.raises(StateError, match=r"Move it away and run again") as refused:
        with s.locked("up"):
            pass
    assert ".backup" not in str(refused.value) and not s.backup_path.exists()


@pytest.mark.parametrize("name", ["admin_password", "SecretString", "session_token", "db_credentials"])
def test_secret_looking_attributes_are_never_written(tmp_path, name):
    s = store(tmp_path)
    with s.locked("up"):
        with pytest.raises(StateError, match="secret values never go there"):
            s.put("secret", "grafana", "arn:x", kind="secret", **{name: "hunter2"})
    assert not s.path.exists() or "hunter2" not in s.path.read_text()


def _hold_lock(path, ready, release):
    s = StateStore(path, "proj", "eu-west-1")
    with s.locked("up"):
        ready.set()
        release.wait(10)


def test_a_second_process_is_refused_while_the_first_holds_the_lock(tmp_path):
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(tmp_path / "proj.json", ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(StateLocked, match=rf"'provision up' \(pid {holder.pid} on "):
            with store(tmp_path).locked("destroy"):
                pass
    finally:
        release.set()
        holder.join()
    with store(tmp_path).locked("destroy"):
        pass


def test_reset_after_full_destroy_starts_a_new_lineage(tmp_path):
    s = store(tmp_path)
    with s.locked("up"):
        s.put("network", "vpc", "vpc-1", kind="vpc")
        old = s.lineage
        s.forget("network", "vpc")
        assert s.reset_if_empty()
        assert s.lineage != old
        assert json.loads(s.path.read_text())["resources"] == {}
