"""`provision schema`: one-off tasks that apply the DSQL schema and create the visibility index, read
back from what the tool sent and what the emulator ran (its ECS agent and one-off task patches)."""
from __future__ import annotations

import json
import urllib.request
from contextlib import contextmanager

import boto3
import pytest
from typer.testing import CliRunner

from provisioner import operations
from provisioner.aws import waiter
from provisioner.cli import app as cli
from provisioner.commands import schema as schema_command
from provisioner.emulator.patches import FAILING_TASKS_SETTING
from provisioner.temporal import schema_tasks
from tests.conftest import (
    PROJECT,
    REGION,
    Requests,
    build_stack,
    config_text,
    make_config,
    new_aws,
    own_emulator,
    up_ok,
    world,
)


def run(*arguments, config_file, state):
    return CliRunner().invoke(cli, [*arguments, "--config", str(config_file), "--state", str(state)])


@pytest.fixture
def stack(endpoint, tmp_path):
    """A stack made by `up`, with every request it sent."""
    config_file = tmp_path / "provision.toml"
    config_file.write_text(config_text())
    state = tmp_path / "state.json"
    sent = Requests()
    up_ok(make_config(), new_aws(("provide-client-params", sent)), state)
    return config_file, state, sent


@pytest.fixture(scope="module")
def built(moto_endpoint, tmp_path_factory):
    """The same stack, built once for the tests that only read what `up` sent and made (no schema run)."""
    _, state, sent = build_stack(moto_endpoint, tmp_path_factory)
    return state, sent


def schema_definitions(sent: Requests) -> dict[str, dict]:
    found = {d["family"].removeprefix(f"{PROJECT}-"): d for d in sent.of("ecs.RegisterTaskDefinition")}
    return {name: found[name] for name in ("schema-dsql", "schema-visibility")}


def test_schema_tasks_run_the_admin_tools_with_the_fork_commands(built):
    state, sent = built
    outputs = json.loads(state.read_text())["resources"]
    domain = boto3.client("opensearch", region_name=REGION).describe_domain(DomainName=f"{PROJECT}-vis")["DomainStatus"]
    cluster = outputs["dsql"]["cluster"]
    for name, definition in schema_definitions(sent).items():
        (container,) = definition["containerDefinitions"]
        assert container["image"] == make_config().temporal.admin_tools_image
        assert definition["taskRoleArn"] == outputs["iam"]["schema-task"]["id"]
        assert definition["runtimePlatform"]["cpuArchitecture"] == "ARM64" and definition["networkMode"] == "awsvpc"
        assert container["logConfiguration"]["options"]["awslogs-group"] == f"/ecs/{PROJECT}/schema"
        script = container["command"][0]
        if name == "schema-dsql":
            host = f"{cluster['identifier']}.dsql.{REGION}.on.aws"
            assert f"temporal-dsql-tool --endpoint {host} --region \"$AWS_REGION\" setup-schema --version 0.0" in script
            assert "update-schema --schema-name dsql/temporal --version 1.1" in script
        else:
            tool = (f"temporal-elasticsearch-tool --ep https://{domain['Endpoints']['vpc']}:443 "
                    "--aws-credentials aws-sdk-default --tls")
            assert f"{tool} setup-schema" in script
            assert f"{tool} create-index --index temporal_visibility_v1" in script
            assert "--quiet" not in script  # it would turn a failure into exit code 0


def test_the_schema_role_reaches_only_the_cluster_and_the_domain_and_opensearch_admits_it(built):
    state, sent = built
    records = json.loads(state.read_text())["resources"]
    (policy,) = [json.loads(p["PolicyDocument"]) for p in sent.of("iam.PutRolePolicy")
                 if p["RoleName"] == f"{PROJECT}-{REGION}-schema-task"]
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["DsqlSchema"] == {"Sid": "DsqlSchema", "Effect": "Allow", "Action": "dsql:DbConnectAdmin",
                                        "Resource": records["dsql"]["cluster"]["id"]}
    assert set(statements) == {"DsqlSchema", "VisibilityIndex"}
    (create,) = sent.of("opensearch.CreateDomain")
    principals = json.loads(create["AccessPolicies"])["Statement"][0]["Principal"]["AWS"]
    assert records["iam"]["schema-task"]["id"] in principals and records["iam"]["temporal-task"]["id"] in principals


def test_schema_runs_both_tasks_privately_on_node_c_and_reports_success(stack):
    config_file, state, _ = stack
    sent = Requests()
    result = run("schema", "--json", config_file=config_file, state=state)
    assert result.exit_code == 0, result.output
    rows = {r["task"]: r for r in json.loads(result.stdout)}
    assert {t: (r["exit_code"], r["ok"]) for t, r in rows.items()} == {"dsql": (0, True), "visibility": (0, True)}
    assert rows["dsql"]["log_tail"][-1] == "[emulator] done"
    assert json.loads(state.read_text())["settings"]["schema"]["visibility_index"] == "temporal_visibility_v1"
    del sent


def test_schema_sends_run_task_with_node_c_private_network_and_no_public_ip(stack):
    _, state, _ = stack
    sent = Requests()
    results = schema_command.schema(make_config(), new_aws(("provide-client-params", sent)), state, quiet=True)
    assert [r.ok for r in results] == [True, True]
    records = json.loads(state.read_text())["resources"]
    subnets = sorted(r["id"] for r in records["network"].values() if r.get("tier") == "private")
    for request in sent.of("ecs.RunTask"):
        assert request["capacityProviderStrategy"] == [{"capacityProvider": f"{PROJECT}-node-worker", "weight": 1, "base": 0}]
        assert request["placementConstraints"] == [{"type": "memberOf", "expression": "attribute:workload == worker"}]
        network = request["networkConfiguration"]["awsvpcConfiguration"]
        assert network == {"subnets": subnets, "securityGroups": [records["security_groups"]["sg-schema"]["id"]],
                           "assignPublicIp": "DISABLED"}


def test_schema_again_on_a_current_schema_is_safe(stack):
    config_file, state, _ = stack
    assert run("schema", config_file=config_file, state=state).exit_code == 0
    again = run("schema", config_file=config_file, state=state)
    assert again.exit_code == 0, again.output
    assert "Next: provision scale up" in again.output


def test_up_says_what_to_run_next_while_the_services_are_at_zero(stack):
    config_file, state, _ = stack
    first = run("up", config_file=config_file, state=state)
    assert "Next: provision schema" in first.output and "then provision scale up" in first.output
    assert run("schema", config_file=config_file, state=state).exit_code == 0
    assert "Next: provision scale up" in run("up", config_file=config_file, state=state).output
    assert run("scale", "up", config_file=config_file, state=state).exit_code == 0
    assert "Next:" not in run("up", config_file=config_file, state=state).output


def test_schema_before_up_says_to_run_up_first(endpoint, tmp_path):
    config_file = tmp_path / "provision.toml"
    config_file.write_text(config_text())
    result = run("schema", config_file=config_file, state=tmp_path / "state.json")
    assert result.exit_code == 2  # input: nothing to run the schema on yet, nothing changed
    assert "run 'provision up' first" in result.output and "Traceback" not in result.output


def test_a_failing_schema_task_is_named_with_its_exit_code_and_log(moto_endpoint, tmp_path, monkeypatch):
    with own_emulator(tmp_path / "failing", monkeypatch, **{FAILING_TASKS_SETTING: "schema-visibility"}):
        config_file = tmp_path / "provision.toml"
        config_file.write_text(config_text())
        state = tmp_path / "state.json"
        up_ok(make_config(), new_aws(), state)
        result = run("schema", config_file=config_file, state=state)
    assert result.exit_code == 1, result.output
    assert "visibility (exit code 1: Essential container in task exited)" in result.output
    assert "dsql: ok" in result.output and "visibility: failed" in result.output
    assert f"[emulator] failed: {FAILING_TASKS_SETTING} names it" in result.output
    assert "schema" not in json.loads(state.read_text())["settings"]


@contextmanager
def one_off_tasks_held(endpoint: str, describes: int):
    """moto's state manager keeps each one-off task RUNNING through `describes` DescribeTasks, then moves it one
    status (DEACTIVATING, STOPPING, DEPROVISIONING, STOPPED) per as many: a task that runs for a while, as in AWS.
    A service's tasks are not affected (the service_tasks patch keeps them up)."""
    def moto_api(action: str, body: dict) -> None:
        request = urllib.request.Request(f"{endpoint}/moto-api/state-manager/{action}", data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request).close()

    moto_api("set-transition", {"model_name": "ecs::task", "transition": {"progression": "manual", "times": describes}})
    waiter.set_backoff(waiter.Backoff(initial=0.05, maximum=0.1, jitter=0))
    try:
        yield
    finally:
        waiter.set_backoff(waiter.DEFAULT_BACKOFF)
        moto_api("unset-transition", {"model_name": "ecs::task"})


def interrupted_schema(state) -> Requests:
    """`provision schema` interrupted (Ctrl-C) right after it started both tasks; what it sent."""
    sent = Requests()
    started = []

    def interrupt(**_):
        started.append(1)
        if len(started) == len(schema_tasks.SCHEMA_TASKS):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        schema_command.schema(make_config(), new_aws(("provide-client-params", sent), ("after-call.ecs.RunTask", interrupt)),
                          state, quiet=True)
    return sent


def schema_tasks_in_ecs() -> list[dict]:
    ecs = boto3.client("ecs", region_name=REGION)
    arns = ecs.list_tasks(cluster=f"{PROJECT}-cluster", startedBy=schema_tasks.STARTED_BY)["taskArns"]
    return ecs.describe_tasks(cluster=f"{PROJECT}-cluster", tasks=arns)["tasks"] if arns else []


def test_destroy_stops_the_tasks_an_interrupted_schema_left_running_then_deletes_the_cluster(stack, endpoint):
    _, state, _ = stack
    with one_off_tasks_held(endpoint, describes=1000):
        interrupted_schema(state)
        assert [t["lastStatus"] for t in schema_tasks_in_ecs()] == ["RUNNING", "RUNNING"]
        up_ok(make_config(), new_aws(), state)
        sent = Requests()
        result = operations.destroy(make_config(), new_aws(("provide-client-params", sent)), state, delete_data=True,
                                    quiet=True)
        assert result.ok, result.errors
        assert sorted(r["task"] for r in sent.of("ecs.StopTask")) == sorted(t["taskArn"] for t in schema_tasks_in_ecs())
        assert [t["lastStatus"] for t in schema_tasks_in_ecs()] == ["STOPPED", "STOPPED"]
    (cluster,) = boto3.client("ecs", region_name=REGION).describe_clusters(clusters=[f"{PROJECT}-cluster"])["clusters"]
    assert cluster["status"] == "INACTIVE"
    assert world() == []


def test_schema_after_an_interrupted_one_waits_for_its_running_tasks_and_starts_none(stack, endpoint):
    _, state, _ = stack
    with one_off_tasks_held(endpoint, describes=3):
        first = interrupted_schema(state)
        assert len(first.of("ecs.RunTask")) == 2
        sent = Requests()
        results = schema_command.schema(make_config(), new_aws(("provide-client-params", sent)), state, quiet=True)
    assert sent.of("ecs.RunTask") == []
    assert [r.ok for r in results] == [True, True]
    assert sorted(r.task_arn for r in results) == sorted(t["taskArn"] for t in schema_tasks_in_ecs())
    # startedBy is ListTasks' only filter: "When you specify startedBy as the filter, it must be the only filter
    # that you use" (ECS API reference, ListTasks).
    assert {tuple(sorted(r)) for r in sent.of("ecs.ListTasks")} == {("cluster", "startedBy")}


def test_a_lost_run_task_answer_finds_the_task_it_started_by_started_by_alone(stack, endpoint, monkeypatch):
    """RunTask's answer is lost after ECS acted: the task is found (ListTasks by startedBy alone, the family matched
    on DescribeTasks) and not started twice. moto 5.2 ignores RunTask's clientToken, so the lookup is what counts."""
    from tests.lossy_proxy import LossyProxy, mark_creates

    _, state, _ = stack
    sent = Requests()
    with LossyProxy(endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        results = schema_command.schema(make_config(), new_aws(("provide-client-params", sent),
                                                            ("before-send", mark_creates(("RunTask",)))), state, quiet=True)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    assert proxy.lost == ["RunTask", "RunTask"]
    assert [r.ok for r in results] == [True, True]
    assert len(sent.of("ecs.RunTask")) == 2 and len(schema_tasks_in_ecs()) == 2
    assert sorted(r.task_arn for r in results) == sorted(t["taskArn"] for t in schema_tasks_in_ecs())
    assert sent.of("ecs.ListTasks") and all(set(r) == {"cluster", "startedBy"} for r in sent.of("ecs.ListTasks"))
