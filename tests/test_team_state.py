"""Team use, against the emulator's S3 and SSM: the state in S3 (conditional writes, encryption, history, pull and
push) and one lock per project and region in the account (refused at once, released at the end, a dead run's
lock released only by 'provision state unlock' with its ID)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from typer.testing import CliRunner

from provisioner import operations
from provisioner.cli import app as cli
from provisioner.state import StateLocked
from tests.conftest import (
    PROJECT,
    REGION,
    CallLog,
    config_text,
    make_config,
    new_aws,
    record_cli_calls,
    up_ok,
    world,
)

BUCKET = "team-state"
KEY = f"{PROJECT}/{REGION}.json"
URL = f"s3://{BUCKET}/{KEY}"
LOCK_PARAMETER = f"/{PROJECT}/lock/{REGION}"


def s3():
    return boto3.client("s3", region_name=REGION)


def make_bucket(versioned: bool = True) -> None:
    s3().create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    if versioned:
        s3().put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})


def remote_state() -> dict:
    return json.loads(s3().get_object(Bucket=BUCKET, Key=KEY)["Body"].read())


def invoke(*arguments: str):
    return CliRunner().invoke(cli, list(arguments))


@pytest.fixture
def bucket(endpoint):
    make_bucket()
    return URL


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "provision.toml"
    path.write_text(config_text())
    return path


@pytest.fixture
def cli_calls(monkeypatch) -> CallLog:
    return record_cli_calls(monkeypatch)


def assert_exit(result, code: int, *messages: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "unexpected error" not in result.output, result.output
    for message in messages:
        assert message in result.output, result.output


def no_twins() -> None:
    live = world()
    assert not Counter(live) - Counter(set(live)), f"twins: {Counter(live) - Counter(set(live))}"


# -- the state in S3 -------------------------------------------------------------------------------------------

def test_an_s3_state_is_shared_across_directories_and_rebuilt_from_tags_when_lost(bucket, config_file, cli_calls, tmp_path,
                                                                    monkeypatch):
    first, second = tmp_path / "laptop", tmp_path / "ci-runner"
    first.mkdir(), second.mkdir()
    monkeypatch.chdir(first)
    assert_exit(invoke("up", "--config", str(config_file), "--state", URL), 0)
    built = remote_state()
    assert built["resources"] and built["account"] == "123456789012"

    monkeypatch.chdir(second)
    monkeypatch.setenv("PROVISION_STATE", URL)
    cli_calls.calls.clear(), cli_calls.bookkeeping.clear()
    assert_exit(invoke("up", "--config", str(config_file)), 0, "no changes")
    assert cli_calls.mutating == []
    # The lock taken and released; the state read, not written again.
    assert Counter(cli_calls.bookkeeping)["s3.PutObject"] == 1 and "s3.DeleteObject" in cli_calls.bookkeeping
    assert remote_state() == built
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [config_file], "something was written locally"
    head = s3().head_object(Bucket=BUCKET, Key=KEY)
    assert head["ServerSideEncryption"] == "AES256"
    assert [o["Key"] for o in s3().list_objects_v2(Bucket=BUCKET)["Contents"]] == [KEY], "the lock stayed"

    # The state lost: rebuilt from tags, with no change to the stack.
    before_world = world()
    s3().delete_object(Bucket=BUCKET, Key=KEY)
    log = CallLog()
    up_ok(make_config(state={"location": URL}), new_aws(("before-call", log)), None)
    assert log.mutating == []
    assert world() == before_world and remote_state()["resources"] == built["resources"]


def test_a_configured_kms_key_encrypts_every_write(bucket, config_file, tmp_path):
    config = make_config(state={"location": URL, "kms_key_id": "alias/team-state"})
    store = operations.open_store(config, new_aws(), None)
    with store.locked("up"):
        store.put("network", "vpc", "vpc-1", kind="vpc")
    head = s3().head_object(Bucket=BUCKET, Key=KEY)
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"].endswith("alias/team-state")


def test_a_write_that_loses_the_etag_race_keeps_the_other_writers_records(bucket):
    config = make_config()
    lost = []

    def record_races(http_response, parsed, **_):
        if parsed.get("Error", {}).get("Code") == "PreconditionFailed":
            lost.append(parsed["Error"])

    late_aws = new_aws(("after-call.s3.PutObject", record_races))
    early = operations.open_store(config, new_aws(), URL)
    late = operations.open_store(config, late_aws, URL)
    with early.locked("up"), late.locked("up"):
        early.put("network", "vpc", "vpc-1", kind="vpc")
        late.put("network", "igw", "igw-1", kind="igw")  # its If-Match names the ETag it read before early's write
        early.set_setting("service_counts", {"history": 1})
        late.forget("network", "igw")
        late.put("network", "igw", "igw-2", kind="igw")
    assert len(lost) >= 2, "the late writer never lost a race"
    document = remote_state()
    assert document["resources"] == {"network": {"vpc": {"id": "vpc-1", "kind": "vpc"}, "igw": {"id": "igw-2", "kind": "igw"}}}
    assert document["settings"] == {"service_counts": {"history": 1}}
    assert document["serial"] == 5  # every write counted once, none overwritten
    assert len(s3().list_object_versions(Bucket=BUCKET, Prefix=KEY)["Versions"]) == 5


def test_history_lists_versions_and_restore_brings_one_back_as_a_new_write(bucket, config_file):
    store = operations.open_store(make_config(), new_aws(), URL)
    with store.locked("up"):
        store.put("network", "vpc", "vpc-1", kind="vpc")
        store.put("network", "vpc", "vpc-2", kind="vpc")
    result = invoke("state", "history", "--json", "--config", str(config_file), "--state", URL)
    assert_exit(result, 0)
    versions = json.loads(result.stdout)
    assert len(versions) == 2 and versions[0]["latest"] and not versions[1]["latest"]
    assert_exit(invoke("state", "restore", versions[1]["version"], "--config", str(config_file), "--state", URL), 0,
                "now serial 3")
    assert remote_state()["resources"] == {"network": {"vpc": {"id": "vpc-1", "kind": "vpc"}}} and remote_state()["serial"] == 3
    assert_exit(invoke("state", "restore", "no-such-version", "--config", str(config_file), "--state", URL), 2,
                "has no version 'no-such-version'")


CREATES = ("Create", "Allocate", "Register", "Run")


class InjectedCrash(Exception):
    """The process dying right after AWS acted, before the tool heard back."""


def test_crashes_right_after_creates_converge_without_twins_with_the_s3_state(bucket, tmp_path):
    """A subset of test_convergence's crash-after-every-create: three runs, each crashing right after every
    create it makes (one per step), then a clean run; the world must equal an uninterrupted build's."""
    up_ok(make_config(project="base"), new_aws(), tmp_path / "baseline.json")
    baseline = world("base")
    config = make_config(project="crashy", state={"location": f"s3://{BUCKET}/crashy.json"})

    def crash(event_name, **_):
        if event_name.rsplit(".", 1)[-1].startswith(CREATES):
            raise InjectedCrash(event_name)

    for _ in range(3):
        assert not operations.up(config, new_aws(("after-call", crash)), None, quiet=True).ok
    up_ok(config, new_aws(), None)
    assert Counter(world("crashy")) == Counter(baseline)
    assert up_ok(config, new_aws(), None).changes == []


# -- what the S3 state refuses, and says ---------------------------------------------------------------------

def test_a_missing_bucket_is_refused_with_the_command_that_makes_it(endpoint, config_file, cli_calls):
    result = invoke("up", "--config", str(config_file), "--state", "s3://no-such-bucket/ptest.json")
    assert_exit(result, 2, "the state bucket no-such-bucket does not exist",
                "aws s3api create-bucket --bucket no-such-bucket --region eu-west-1 "
                "--create-bucket-configuration LocationConstraint=eu-west-1")
    assert cli_calls.mutating == [] and world() == []


def test_a_bucket_without_permission_is_refused_with_what_is_needed(bucket, config_file, monkeypatch):
    from provisioner.aws import session as factory

    original = factory.make_session

    def denied(params, **_):
        return (AWSResponse(params["url"], 403, {}, None),
                {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}, "ResponseMetadata": {"HTTPStatusCode": 403}})

    def without_s3(*args, **kwargs):
        made = original(*args, **kwargs)
        made.events.register("before-call.s3", denied)
        return made

    monkeypatch.setattr(factory, "make_session", without_s3)
    result = invoke("plan", "--config", str(config_file), "--state", URL)
    assert_exit(result, 2, f"cannot read the versioning of {URL} (AccessDenied)", "s3:PutObject",
                "aws s3api create-bucket --bucket team-state")
    # GetObject with a versionId (state history, state restore) is authorised by s3:GetObjectVersion (S3 API
    # reference, GetObject).
    assert "s3:GetObjectVersion" in result.output


def test_an_unversioned_bucket_warns_once_and_has_no_history(endpoint, config_file):
    make_bucket(versioned=False)
    result = invoke("up", "--config", str(config_file), "--state", URL)
    assert_exit(result, 0)
    assert result.output.count("has no versioning") == 1, result.output
    assert "put-bucket-versioning --bucket team-state" in result.output
    assert_exit(invoke("state", "history", "--config", str(config_file), "--state", URL), 2, "has no history")


def test_pull_then_push_moves_a_state_and_a_foreign_one_is_refused(bucket, config_file, tmp_path):
    store = operations.open_store(make_config(), new_aws(), URL)
    with store.locked("up"):
        store.put("network", "vpc", "vpc-1", kind="vpc")
    pulled = tmp_path / "pulled.json"
    assert_exit(invoke("state", "pull", "--to", str(pulled), "--config", str(config_file), "--state", URL), 0)
    assert json.loads(pulled.read_text()) == remote_state() and oct(pulled.stat().st_mode)[-3:] == "600"
    # A local file becomes the S3 state of a new key: push it there.
    other_url = f"s3://{BUCKET}/moved.json"
    assert_exit(invoke("state", "push", "--from", str(pulled), "--config", str(config_file), "--state", other_url), 0,
                "Pushed")
    moved = json.loads(s3().get_object(Bucket=BUCKET, Key="moved.json")["Body"].read())
    assert moved["resources"] == remote_state()["resources"] and moved["lineage"] == remote_state()["lineage"]

    before = remote_state()
    document = json.loads(pulled.read_text())
    foreign = {
        "project": (dict(document, project="someone-else"), "belongs to project 'someone-else'"),
        "region": (dict(document, region="us-east-1"), "in 'us-east-1', not 'ptest' in 'eu-west-1'"),
        "account": (dict(document, account="210987654321"), "belongs to AWS account 210987654321"),
        "lineage": (dict(document, lineage="another-lineage"), "is of lineage another-lineage"),
        "older": (dict(document, serial=0), "is older (serial 0)"),
    }
    for name, (content, message) in foreign.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(content))
        assert_exit(invoke("state", "push", "--from", str(path), "--config", str(config_file), "--state", URL), 2,
                    message)
    assert remote_state() == before
    assert not boto3.client("ssm", region_name=REGION).describe_parameters()["Parameters"]
    assert [o["Key"] for o in s3().list_objects_v2(Bucket=BUCKET)["Contents"]] == ["moved.json", KEY]


# -- one lock per project and region ------------------------------------------------------------------------------

def test_two_concurrent_ups_with_two_state_files_one_is_refused_no_twin(endpoint, tmp_path):
    config = make_config()
    vpc_created, finish = threading.Event(), threading.Event()

    def pause_after_the_vpc(**_):
        vpc_created.set()
        finish.wait(30)

    first = {}
    runner = threading.Thread(target=lambda: first.update(result=operations.up(
        config, new_aws(("after-call.ec2.CreateVpc", pause_after_the_vpc)), tmp_path / "alice.json", quiet=True)))
    runner.start()
    try:
        assert vpc_created.wait(30)
        log = CallLog()
        with pytest.raises(StateLocked, match=r"project ptest in eu-west-1 is locked by 'provision up' run by .* "
                                              rf"\(pid {os.getpid()}\) .* Wait for that run to finish"):
            operations.up(config, new_aws(("before-call", log)), tmp_path / "bob.json", quiet=True)
        assert log.calls == ["sts.GetCallerIdentity"] and log.bookkeeping == ["ssm.PutParameter", "ssm.GetParameter"]
    finally:
        finish.set()
        runner.join()
    assert first["result"].ok, first["result"].errors
    assert not (tmp_path / "bob.json").exists()
    assert [kind for kind, _ in world()].count("Vpc") == 1
    no_twins()
    assert up_ok(config, new_aws(), tmp_path / "alice.json").changes == []


def test_plan_status_and_outputs_take_no_lock(endpoint, tmp_path):
    config = make_config()
    lock = operations.project_lock(config, new_aws(), operations.open_store(config, new_aws(), tmp_path / "s.json"))
    with lock.held("up"):
        assert operations.plan(config, new_aws(), tmp_path / "s.json", quiet=True).ok
        operations.status(config, new_aws(), tmp_path / "s.json")
        operations.outputs(config, new_aws(), tmp_path / "s.json")


def kill_up_midway(config_file, state: str, recorded) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "provisioner", "up", "--config", str(config_file), "--state", state],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "CI": "1"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None and recorded() < 5:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"


def _count(document: dict) -> int:
    return sum(len(records) for records in document.get("resources", {}).values())


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_a_sigkilled_runs_lock_is_released_by_state_unlock_with_its_id(endpoint, config_file, tmp_path, backend):
    if backend == "s3":
        make_bucket()
        state = URL

        def recorded() -> int:
            try:
                return _count(remote_state())
            except s3().exceptions.NoSuchKey:
                return 0
    else:
        state = str(tmp_path / "state.json")

        def recorded() -> int:
            try:
                return _count(json.loads((tmp_path / "state.json").read_text()))
            except (OSError, ValueError):
                return 0
    kill_up_midway(config_file, state, recorded)

    refused = invoke("up", "--config", str(config_file), "--state", state)
    assert_exit(refused, 1, "is locked by 'provision up'", "That run looks gone (pid ", "no longer runs on")
    lock_id = re.search(r"provision state unlock (\S+)'", refused.output)[1]
    assert_exit(invoke("state", "unlock", "not-" + lock_id, "--config", str(config_file), "--state", state), 2,
                f"not by lock ID not-{lock_id}: nothing was released")
    assert_exit(invoke("state", "unlock", lock_id, "--config", str(config_file), "--state", state), 0,
                "Released the lock of 'provision up'")
    assert_exit(invoke("up", "--config", str(config_file), "--state", state), 0)
    no_twins()
    assert_exit(invoke("state", "unlock", lock_id, "--config", str(config_file), "--state", state), 0, "is not locked")


def test_a_live_lock_is_never_released_by_another_command(endpoint, config_file, tmp_path):
    config = make_config()
    state = str(tmp_path / "state.json")
    lock = operations.project_lock(config, new_aws(), operations.open_store(config, new_aws(), state))
    with lock.held("destroy") as holder:
        refused = invoke("up", "--config", str(config_file), "--state", str(tmp_path / "other.json"))
        assert_exit(refused, 1, f"lock ID {holder.id}", "Wait for that run to finish")
        assert "looks gone" not in refused.output
        assert_exit(invoke("state", "unlock", holder.id, "--config", str(config_file), "--state", state), 1,
                    "still runs on this host", "nothing was released")
        assert lock.holder() == holder
    assert lock.holder() is None


def test_a_run_with_an_s3_state_and_one_with_a_local_state_exclude_each_other(bucket, config_file, tmp_path):
    config = make_config()
    local = operations.project_lock(config, new_aws(), operations.open_store(config, new_aws(), str(tmp_path / "s.json")))
    with local.held("up") as holder:
        refused = invoke("up", "--config", str(config_file), "--state", URL)
        assert_exit(refused, 1, f"lock ID {holder.id}")
    # The S3 run took neither record: the object beside its state is not left behind by the refusal.
    assert "Contents" not in s3().list_objects_v2(Bucket=BUCKET, Prefix=f"{KEY}.lock")
    remote = operations.project_lock(config, new_aws(), operations.open_store(config, new_aws(), URL))
    with remote.held("scale") as holder:
        assert_exit(invoke("up", "--config", str(config_file), "--state", str(tmp_path / "s.json")), 1,
                    f"lock ID {holder.id}")
    assert remote.holder() is None and local.holder() is None


def test_an_old_lock_is_reported_stale_but_never_taken_over(endpoint, config_file, tmp_path):
    ssm = boto3.client("ssm", region_name=REGION)
    old = {"id": "old-lock", "user": "alice", "host": "alices-laptop", "pid": 4242, "command": "scale",
           "since": "2020-01-01T00:00:00Z"}
    ssm.put_parameter(Name=LOCK_PARAMETER, Value=json.dumps(old), Type="String")
    refused = invoke("up", "--config", str(config_file), "--state", str(tmp_path / "state.json"))
    assert_exit(refused, 1, "'provision scale' run by alice on alices-laptop (pid 4242)", "hours old",
                "provision state unlock old-lock")
    assert json.loads(ssm.get_parameter(Name=LOCK_PARAMETER)["Parameter"]["Value"]) == old
    assert world() == []


def test_the_lock_is_released_when_a_run_fails_and_destroy_leaves_none(endpoint, tmp_path):
    config = make_config(grafana={"admin_secret_name": "nobody/made-this"})
    assert not operations.up(config, new_aws(), tmp_path / "state.json", quiet=True).ok
    ssm = boto3.client("ssm", region_name=REGION)
    assert not ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [LOCK_PARAMETER]}])["Parameters"]
    config = make_config()
    up_ok(config, new_aws(), tmp_path / "state.json")
    assert operations.destroy(config, new_aws(), tmp_path / "state.json", delete_data=True, quiet=True).ok
    assert world() == []  # the lock parameter too: it carries the project's tag while held

