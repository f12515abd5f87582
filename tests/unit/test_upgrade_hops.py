"""Which server changes are one safe upgrade hop (provisioner/temporal/release.py `hop_problems`): one minor at a time
after the latest patch of the current minor (docs.temporal.io "Upgrade server"), no downgrade below the schema the
database holds, and for the fork the DSQL schema version its server expects against the one recorded."""
from __future__ import annotations

from provisioner.temporal.release import hop_problems, tag_release

REPO = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/temporal"


def test_tags_carry_major_minor_and_patch_or_nothing():
    assert tag_release(f"{REPO}:1.30.6") == (1, 30, 6)
    assert tag_release(f"{REPO}:v1.29") == (1, 29, None)
    assert tag_release(f"{REPO}:1.29.0-test") == (1, 29, 0)
    assert tag_release(f"{REPO}:3f2a9c1-20261201T1200") is None
    assert tag_release(f"{REPO}@sha256:{'a' * 64}") is None


def test_the_next_minor_from_the_latest_patch_is_one_hop():
    assert hop_problems(f"{REPO}:1.29.7", "1.29", f"{REPO}:1.30.6", "1.30", None) == []


def test_a_patch_within_the_minor_is_one_hop():
    assert hop_problems(f"{REPO}:1.30.1", "1.30", f"{REPO}:1.30.6", "1.30", None) == []


def test_the_next_minor_from_an_older_patch_names_the_latest_patch_first():
    (problem,) = hop_problems(f"{REPO}:1.29.2", "1.29", f"{REPO}:1.30.6", "1.30", None)
    assert "move to the latest 1.29 patch (1.29.7) first, then to 1.30" in problem


def test_a_skipped_minor_names_each_hop_to_take():
    (problem,) = hop_problems(f"{REPO}:1.28.4", "1.28", f"{REPO}:1.31.2", "1.31", None)
    assert "skips minor versions (1.28 to 1.31)" in problem and "Upgrade 1.28 -> 1.29 -> 1.30 -> 1.31" in problem


def test_a_downgrade_below_the_database_schema_is_refused():
    (problem,) = hop_problems(f"{REPO}:1.30.6", "1.30", f"{REPO}:1.29.7", "1.29", None)
    assert "a downgrade below the database's schema is not supported" in problem


def test_the_fork_is_checked_by_its_dsql_schema_version():
    fork = f"{REPO}:3f2a9c1-20261201T1200"
    assert hop_problems(fork, "fork", fork.replace("3f2a9c1", "9b8e7d6"), "fork", "1.1") == []
    (problem,) = hop_problems(fork, "fork", fork.replace("3f2a9c1", "9b8e7d6"), "fork", "1.2")
    assert "the database holds DSQL schema 1.2, and fork expects 1.1" in problem


def test_between_the_fork_and_upstream_there_is_no_path():
    (problem,) = hop_problems(f"{REPO}:1.29.0", "fork", f"{REPO}:1.29.7", "1.29", "1.1")
    assert "there is no upgrade path between them" in problem
