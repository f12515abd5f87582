"""`provision upgrade` and the rule that `up` never upgrades Temporal by accident (README: "Upgrading Temporal").

One running stack (up, schema, scale up) in an emulator of this module's own, started with two opt-in hooks: a
deployment of matching to an image tagged `flaky` fails once (circuit breaker, rollback), and one-off tasks of an
image tagged `broken` exit 1 (the schema task of a broken admin-tools image). Each test upgrades the stack to a
patch release of its own, so the tests pass in any order.
"""
from __future__ import annotations

import json

import boto3
import pytest

from provisioner.commands import schema as schema_command
from provisioner.commands import scale as scaling
from provisioner.commands import upgrade as upgrading
from provisioner.emulator import server as emulator
from provisioner.emulator.deployment_patches import FAILING_DEPLOYMENTS_SETTING, FAILING_IMAGES_SETTING
from provisioner.temporal import release
from provisioner.temporal.roles import TEMPORAL_ROLES
from tests.conftest import (
    ADMIN_TOOLS_IMAGE,
    REGION,
    SERVER_IMAGE,
    CallLog,
    Requests,
    config_text,
    make_config,
    new_aws,
    on_cli_sessions,
    reset_account,
    run_cli,
    start_emulator,
    up_ok,
)

# Room to roll on node B: the default 2 x m7g.xlarge hold its 6 tasks but not a 7th (placement_check.rolling_room).
ROOM = "[capacity.frontend]\nmax_size = 3\n"
ROLES_IN_ORDER = ["frontend", "history", "matching", "worker"]


def images(patch: str) -> tuple[str, str]:
    return SERVER_IMAGE.replace("1.29.0-test", patch), ADMIN_TOOLS_IMAGE.replace("1.29.0-test", patch)


@pytest.fixture(scope="module")
def stack(moto_endpoint, tmp_path_factory):
    """The running stack: config file, state, and the emulator's endpoint."""
    where = tmp_path_factory.mktemp("upgrade")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(FAILING_DEPLOYMENTS_SETTING, "matching=flaky,ui=fails-once")
        patch.setenv(FAILING_IMAGES_SETTING, "broken")
        info = start_emulator(where)
        patch.setenv("AWS_ENDPOINT_URL", info["endpoint"])
        try:
            reset_account(info["endpoint"])
            config = make_config(capacity={"frontend": {"max_size": 3}})
            state = where / "state.json"
            up_ok(config, new_aws(), state)
            assert all(task.ok for task in schema_command.schema(config, new_aws(), state, quiet=True))
            scaling.scale(config, new_aws(), scaling.parse_targets(["up"], config), state, quiet=True)
            config_file = where / "provision.toml"
            config_file.write_text(config_text(extra=ROOM))
            yield config_file, state
        finally:
            emulator.stop(where)


def ecs():
    return boto3.client("ecs", region_name=REGION)


def services() -> dict[str, dict]:
    """Each service of the stack, by its role, as DescribeServices gives it."""
    client = ecs()
    cluster = client.list_clusters()["clusterArns"][0]
    arns = client.list_services(cluster=cluster)["serviceArns"]
    found = [s for start in range(0, len(arns), 10)
             for s in client.describe_services(cluster=cluster, services=arns[start:start + 10])["services"]]
    return {s["serviceName"].rsplit("-", 1)[-1]: s for s in found}


def role_images() -> dict[str, str]:
    client = ecs()
    return {role: client.describe_task_definition(taskDefinition=s["taskDefinition"])["taskDefinition"][
        "containerDefinitions"][0]["image"] for role, s in services().items() if role in TEMPORAL_ROLES}


def upgrade_to(stack, patch: str, monkeypatch, *options: str):
    """`provision upgrade --server-image ... --admin-tools-image ...` to the patch release `patch`, with every
    request the CLI sent."""
    config_file, state = stack
    server, admin = images(patch)
    sent = Requests()
    on_cli_sessions(monkeypatch, "provide-client-params", sent)
    result = run_cli("upgrade", "--server-image", server, "--admin-tools-image", admin, *options,
                     config_file=config_file, state=state)
    return result, sent


def updated_roles(sent: Requests) -> list[str]:
    return [params["service"].rsplit("-", 1)[-1] for params in sent.of("ecs.UpdateService")]


def test_a_happy_upgrade_runs_the_schema_first_then_each_role_after_the_one_before_completed(stack, monkeypatch):
    completed: list[str] = []
    order: list[str] = []

    def after(parsed, model, **_):
        # What the tool saw: a role's deployment reported COMPLETED, and what it sent next.
        if model.name == "DescribeServices":
            for service in parsed.get("services", []):
                role = service["serviceName"].rsplit("-", 1)[-1]
                primary = [d for d in service["deployments"] if d["status"] == "PRIMARY"]
                if (role in TEMPORAL_ROLES and len(service["deployments"]) == 1 and primary[0]["rolloutState"] == "COMPLETED"
                        and service["taskDefinition"] in updated and role not in completed):
                    completed.append(role)
                    order.append(f"completed {role}")
        elif model.name in ("RunTask", "UpdateService"):
            order.append(model.name if model.name == "RunTask" else f"update {updated_role[-1]}")

    updated: set[str] = set()
    updated_role: list[str] = []

    def before(params, model, **_):
        if model.name == "UpdateService":
            updated.add(params["taskDefinition"])
            updated_role.append(params["service"].rsplit("-", 1)[-1])

    on_cli_sessions(monkeypatch, "provide-client-params.ecs", before)
    on_cli_sessions(monkeypatch, "after-call.ecs", after)
    result, sent = upgrade_to(stack, "1.29.1-test", monkeypatch)
    assert result.exit_code == 0, result.output
    # The schema tasks (from the new admin-tools image) before any role; then one role at a time.
    assert order == ["RunTask", "RunTask"] + [step for role in ROLES_IN_ORDER
                                              for step in (f"update {role}", f"completed {role}")]
    ran = {params["taskDefinition"] for params in sent.of("ecs.RunTask")}
    assert len(ran) == 2
    registered = sent.of("ecs.RegisterTaskDefinition")
    assert [r["containerDefinitions"][0]["image"] for r in registered] == [images("1.29.1-test")[1]] * 2 + [
        images("1.29.1-test")[0]] * 4
    assert role_images() == dict.fromkeys(TEMPORAL_ROLES, images("1.29.1-test")[0])
    recorded = json.loads(stack[1].read_text())["settings"]
    assert recorded[release.RELEASE_SETTING]["server_image"] == images("1.29.1-test")[0]
    assert recorded[upgrading.UPGRADE_SETTING] is None
    # status: each role's running image and rollout state.
    status = run_cli("status", "--json", config_file=stack[0], state=stack[1])
    by_role = {s["service"]: s for s in json.loads(status.output)["services"]}
    assert {role: (by_role[role]["image_tag"], by_role[role]["rollout"]) for role in TEMPORAL_ROLES} == dict.fromkeys(
        TEMPORAL_ROLES, ("1.29.1-test", "COMPLETED"))


def test_a_failing_schema_task_stops_the_upgrade_and_leaves_every_service_on_its_old_task_definition(stack, monkeypatch):
    before = {role: s["taskDefinition"] for role, s in services().items()}
    result, sent = upgrade_to(stack, "1.29.2-broken", monkeypatch)
    assert result.exit_code == 1, result.output
    assert "schema task dsql failed (exit code 1" in result.output
    assert "[emulator] failed: PROVISION_EMULATOR_FAILING_TASKS names it" in result.output  # the end of its log
    assert "No server was changed" in result.output and "Traceback" not in result.output
    assert sent.of("ecs.UpdateService") == []
    assert {role: s["taskDefinition"] for role, s in services().items()} == before


def test_a_failed_deployment_stops_the_roll_and_a_rerun_resumes_without_redoing_finished_roles(stack, monkeypatch):
    before = role_images()
    result, sent = upgrade_to(stack, "1.29.3-flaky", monkeypatch)
    assert result.exit_code == 1, result.output
    assert "upgrade stopped at matching" in result.output
    assert "ECS deployment circuit breaker: tasks failed to start" in result.output
    assert "Essential container in task exited" in result.output  # the stopped tasks' stoppedReason
    assert "[emulator] failed: PROVISION_EMULATOR_FAILING_DEPLOYMENTS names it" in result.output  # their log
    assert "the roles after it (worker) keep the old one" in result.output
    assert updated_roles(sent) == ["frontend", "history", "matching"]
    new = images("1.29.3-flaky")[0]
    # matching was rolled back by the circuit breaker; worker was never touched.
    assert role_images() == {"frontend": new, "history": new, "matching": before["matching"], "worker": before["worker"]}

    rerun, sent = upgrade_to(stack, "1.29.3-flaky", monkeypatch)
    assert rerun.exit_code == 0, rerun.output
    assert sent.of("ecs.RunTask") == []  # the schema was updated for this target by the first run
    assert updated_roles(sent) == ["matching", "worker"]
    assert role_images() == dict.fromkeys(TEMPORAL_ROLES, new)


def test_a_skipped_minor_and_a_downgrade_are_refused_with_nothing_changed(stack, monkeypatch, tmp_path):
    log = CallLog()
    on_cli_sessions(monkeypatch, "before-call", log)
    before = stack[1].read_bytes()
    for version, tag, expected in (
        ("1.31", "1.31.2", "Upgrade 1.29 -> 1.30 -> 1.31"),
        ("1.28", "1.28.4", "a downgrade below the database's schema is not supported"),
    ):
        config_file = tmp_path / f"{version}.toml"
        config_file.write_text(config_text(extra=ROOM).replace('[temporal]\n', f'[temporal]\nserver_version = "{version}"\n')
                               .replace(SERVER_IMAGE, SERVER_IMAGE.replace("1.29.0-test", tag)))
        result = run_cli("upgrade", config_file=config_file, state=stack[1])
        assert result.exit_code == 2, result.output
        assert expected in result.output and "Nothing was changed" in result.output
    assert log.mutating == []
    assert stack[1].read_bytes() == before


def test_dry_run_lists_every_action_in_order_and_changes_nothing(stack, monkeypatch):
    log = CallLog()
    on_cli_sessions(monkeypatch, "before-call", log)
    result, _ = upgrade_to(stack, "1.29.4-test", monkeypatch, "--dry-run")
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines() if line.strip()[:2].rstrip(".").isdigit()]
    assert [line.split(": ")[0].split(". ", 1)[1] for line in lines if "roll " in line] == [
        f"roll {role}" for role in ROLES_IN_ORDER]
    assert next(i for i, line in enumerate(lines) if "run schema tasks" in line) < next(
        i for i, line in enumerate(lines) if "roll frontend" in line)
    assert log.mutating == []


def test_plan_and_up_refuse_a_new_server_image_while_roles_run_tasks(stack, monkeypatch, tmp_path):
    config_file = tmp_path / "provision.toml"
    config_file.write_text(config_text(extra=ROOM).replace(SERVER_IMAGE, images("1.29.9-test")[0]))
    log = CallLog()
    on_cli_sessions(monkeypatch, "before-call", log)
    for command in ("plan", "up"):
        result = run_cli(command, config_file=config_file, state=stack[1])
        assert result.exit_code == 2, result.output
        assert "That is an upgrade" in result.output and "provision upgrade" in result.output
    assert log.mutating == []


def test_up_takes_a_new_server_image_on_a_staged_stack(stack, monkeypatch, tmp_path):
    config_file, state = stack
    assert run_cli("scale", "down", config_file=config_file, state=state).exit_code == 0
    staged = tmp_path / "provision.toml"
    new = images("1.29.5-staged")[0]
    staged.write_text(config_text(extra=ROOM).replace(SERVER_IMAGE, new))
    result = run_cli("up", config_file=staged, state=state)
    assert result.exit_code == 0, result.output
    assert role_images() == dict.fromkeys(TEMPORAL_ROLES, new)
    assert json.loads(state.read_text())["settings"][release.RELEASE_SETTING]["server_image"] == new
    assert run_cli("scale", "up", config_file=staged, state=state).exit_code == 0


def test_an_upgrade_killed_after_each_change_converges_on_rerun(stack):
    """A crash right after AWS acted (as tests/test_convergence.py does for up), at every point of the upgrade in turn:
    run n crashes after its n-th write, the next run resumes from what AWS and the state say; the last run finishes
    with every role on the new image, one active revision per family, and the release recorded."""
    state = stack[1]
    server, admin = images("1.29.7-test")
    config = make_config(capacity={"frontend": {"max_size": 3}}, temporal={"server_image": server, "admin_tools_image": admin})

    class InjectedCrash(Exception):
        pass

    crashed: list[str] = []  # each point once: the write and what it wrote to
    pending: list[str] = []

    def point(params, model, **_):
        target = params.get("family") or params.get("service") or params.get("taskDefinition", "")
        pending[:] = [f"{model.name} {target.rsplit('/', 1)[-1].split(':')[0]}"]

    def crash(event_name, **_):
        operation = event_name.rsplit(".", 1)[-1]
        if not operation.startswith(("Describe", "List", "Get")) and pending and pending[0] not in crashed:
            crashed.append(pending[0])
            raise InjectedCrash(pending[0])

    for _ in range(40):
        try:
            upgrading.upgrade(config, new_aws(("provide-client-params.ecs", point), ("after-call.ecs", crash)), state,
                              quiet=True)
            break
        except InjectedCrash:
            continue
    else:
        pytest.fail(f"no convergence after 40 interrupted runs: {crashed}")
    assert {"RegisterTaskDefinition", "DeregisterTaskDefinition", "RunTask", "UpdateService"} <= {
        crash.split()[0] for crash in crashed}
    assert {f"UpdateService ptest-{role}" for role in TEMPORAL_ROLES} <= set(crashed)
    assert role_images() == dict.fromkeys(TEMPORAL_ROLES, server)
    client = ecs()
    for role in TEMPORAL_ROLES:
        family = services()[role]["taskDefinition"].rsplit("/", 1)[-1].split(":")[0]
        assert len(client.list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]) == 1
    assert json.loads(state.read_text())["settings"][release.RELEASE_SETTING]["server_image"] == server


def test_the_emulator_rolls_a_new_task_definition_out_and_fails_one_with_a_rollback(stack):
    client = ecs()
    ui = services()["ui"]
    cluster = ui["clusterArn"]
    definition = client.describe_task_definition(taskDefinition=ui["taskDefinition"])["taskDefinition"]
    fields = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "requiresCompatibilities", "cpu", "memory",
              "runtimePlatform")

    def revision(image: str) -> str:
        containers = [c | {"image": image} for c in definition["containerDefinitions"]]
        return client.register_task_definition(**{f: definition[f] for f in fields if f in definition},
                                               containerDefinitions=containers)["taskDefinition"]["taskDefinitionArn"]

    good = revision("temporalio/ui:2.34.1")
    client.update_service(cluster=cluster, service=ui["serviceName"], taskDefinition=good)
    rolling = services()["ui"]["deployments"]
    assert [(d["status"], d["rolloutState"]) for d in rolling] == [("PRIMARY", "IN_PROGRESS"), ("ACTIVE", "COMPLETED")]
    done = services()["ui"]
    assert [(d["status"], d["rolloutState"], d["taskDefinition"]) for d in done["deployments"]] == [
        ("PRIMARY", "COMPLETED", good)]
    running = client.describe_tasks(cluster=cluster, tasks=client.list_tasks(
        cluster=cluster, serviceName=ui["serviceName"])["taskArns"])["tasks"]
    assert {t["taskDefinitionArn"] for t in running} == {good}

    bad = revision("temporalio/ui:fails-once")
    client.update_service(cluster=cluster, service=ui["serviceName"], taskDefinition=bad)
    services()  # in progress
    failed = services()["ui"]
    assert [(d["status"], d["rolloutState"], d["taskDefinition"]) for d in failed["deployments"]] == [
        ("PRIMARY", "IN_PROGRESS", good), ("ACTIVE", "FAILED", bad)]
    assert failed["deployments"][1]["rolloutStateReason"] == "ECS deployment circuit breaker: tasks failed to start."
    assert failed["taskDefinition"] == good
    stopped = client.describe_tasks(cluster=cluster, tasks=client.list_tasks(
        cluster=cluster, serviceName=ui["serviceName"], desiredStatus="STOPPED")["taskArns"])["tasks"]
    assert sum(t["taskDefinitionArn"] == bad and t["containers"][0]["exitCode"] == 1 for t in stopped) == 3
    assert services()["ui"]["deployments"][0]["rolloutState"] == "IN_PROGRESS"  # the rollback, like any deployment
    assert [(d["rolloutState"], d["taskDefinition"]) for d in services()["ui"]["deployments"]] == [("COMPLETED", good)]
    client.update_service(cluster=cluster, service=ui["serviceName"], taskDefinition=ui["taskDefinition"])
