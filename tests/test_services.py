"""The Temporal services: task definitions, ECS services, Service Connect, the rendered server config,
staged deployment and `provision scale`, read back from what the tool created in the emulator."""
from __future__ import annotations

import json

import boto3
import pytest

from provisioner import operations
from provisioner.commands import scale as scaling
from provisioner.emulator.patches import UNPLACEABLE_SETTING
from provisioner.temporal import versions
from tests.conftest import (
    PROJECT,
    REGION,
    SERVER_IMAGE,
    CallLog,
    build_stack,
    config_text,
    make_config,
    new_aws,
    own_emulator,
    record_cli_calls,
    up_ok,
    world,
)
from tests.conftest import (
    run_cli as run,
)

SERVICES = ("history", "matching", "frontend", "worker", "ui")  # Temporal's, in the Service Connect namespace
ALL_SERVICES = (*SERVICES, "grafana", "collector")
PORTS = {"history": (7234, 6934), "matching": (7235, 6935), "frontend": (7233, 6933), "worker": (7239, 6939)}
NODE = {"history": "history", "matching": "frontend", "frontend": "frontend", "ui": "frontend", "worker": "worker",
        "grafana": "frontend", "collector": "worker"}
DISCOVERABLE = {"history": "temporal-history", "matching": "temporal-matching", "frontend": "temporal-frontend"}
LONGEST_LONG_POLL_SECONDS = 70


@pytest.fixture(scope="module")
def stack(moto_endpoint, tmp_path_factory):
    """One stack for every read-only test in this module."""
    config, state_path, sent = build_stack(moto_endpoint, tmp_path_factory)
    return operations.outputs(config, new_aws(), state_path) | {"state_path": state_path, "sent": sent}


def ecs():
    return boto3.client("ecs", region_name=REGION)


def task_definitions() -> dict[str, dict]:
    """The services' task definitions (the schema tasks' are tested in test_schema)."""
    found = {}
    for arn in ecs().list_task_definitions(status="ACTIVE")["taskDefinitionArns"]:
        definition = ecs().describe_task_definition(taskDefinition=arn)["taskDefinition"]
        name = definition["family"].removeprefix(f"{PROJECT}-")
        if name in SERVICES:
            found[name] = definition
    return found


def services(cluster: str = f"{PROJECT}-cluster") -> dict[str, dict]:
    arns = ecs().list_services(cluster=cluster)["serviceArns"]
    described = ecs().describe_services(cluster=cluster, services=arns)["services"] if arns else []
    return {s["serviceName"].removeprefix(f"{PROJECT}-"): s for s in described if s["status"] == "ACTIVE"}


def container(service: str) -> dict:
    (only,) = task_definitions()[service]["containerDefinitions"]
    return only


def environment(service: str) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(service).get("environment", [])}


def primary(service: dict) -> dict:
    (deployment,) = [d for d in service["deployments"] if d["status"] == "PRIMARY"]
    return deployment


def test_property_12_exactly_five_temporal_task_definitions_and_services(stack):
    families = set()
    for arn in ecs().list_task_definitions(status="ACTIVE")["taskDefinitionArns"]:
        families.add(ecs().describe_task_definition(taskDefinition=arn)["taskDefinition"]["family"].removeprefix(f"{PROJECT}-"))
    # One per service, and the two one-off schema tasks, which no service runs.
    assert families == {*ALL_SERVICES, "schema-dsql", "schema-visibility"}
    assert sorted(task_definitions()) == sorted(SERVICES)
    assert sorted(services()) == sorted(ALL_SERVICES)
    for name, service in services().items():
        assert service["taskDefinition"] == stack["task_definitions"][name]


def test_property_2_every_task_definition_is_arm64_awsvpc_on_ec2(stack):
    for definition in task_definitions().values():
        assert definition["runtimePlatform"] == {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}
        assert definition["networkMode"] == "awsvpc"
        assert definition["requiresCompatibilities"] == ["EC2"]


def test_property_3_ecs_exec_on_every_service_and_container(stack):
    for service in services().values():
        assert service["enableExecuteCommand"] is True
    for definition in task_definitions().values():
        for item in definition["containerDefinitions"]:
            assert item["linuxParameters"]["initProcessEnabled"] is True


def test_property_5_every_container_logs_to_its_own_group(stack):
    groups = set()
    for name in SERVICES:
        log = container(name)["logConfiguration"]
        assert log["logDriver"] == "awslogs"
        assert log["options"]["awslogs-group"] == stack["log_groups"][name] == f"/ecs/{PROJECT}/{name}"
        assert log["options"]["awslogs-region"] == REGION
        groups.add(log["options"]["awslogs-group"])
    assert len(groups) == len(SERVICES)


def test_property_11_service_connect_client_server_and_client_only(stack):
    namespace = boto3.client("servicediscovery", region_name=REGION).list_namespaces()["Namespaces"]
    (namespace_arn,) = [n["Arn"] for n in namespace if n["Name"] == stack["service_connect_namespace"]]
    for name, service in services().items():
        if name not in SERVICES:
            assert not primary(service).get("serviceConnectConfiguration"), f"{name} needs no Service Connect"
            continue
        connect = primary(service)["serviceConnectConfiguration"]
        assert connect["enabled"] is True and connect["namespace"] == namespace_arn
        if name in DISCOVERABLE:
            (endpoint,) = connect["services"]
            assert endpoint["discoveryName"] == DISCOVERABLE[name]
            assert endpoint["clientAliases"] == [{"port": PORTS[name][0], "dnsName": DISCOVERABLE[name]}]
            assert endpoint["timeout"]["perRequestTimeoutSeconds"] > LONGEST_LONG_POLL_SECONDS
            port_names = {p["name"] for p in container(name)["portMappings"]}
            assert endpoint["portName"] in port_names
        else:
            assert not connect.get("services"), f"{name} must be a client only"


def test_services_start_at_zero_tasks(stack):
    assert {name: s["desiredCount"] for name, s in services().items()} == dict.fromkeys(ALL_SERVICES, 0)


def test_each_service_runs_privately_on_its_node_group_with_rollback(stack):
    for name, service in services().items():
        assert service["capacityProviderStrategy"] == [
            {"capacityProvider": f"{PROJECT}-node-{NODE[name]}", "weight": 1, "base": 0}]
        assert service["placementConstraints"] == [
            {"type": "memberOf", "expression": f"attribute:workload == {NODE[name]}"}]
        network = service["networkConfiguration"]["awsvpcConfiguration"]
        assert network["assignPublicIp"] == "DISABLED"
        assert sorted(network["subnets"]) == sorted(stack["private_subnet_ids"])
        assert network["securityGroups"] == [stack["security_groups"][name]]
        breaker = service["deploymentConfiguration"]["deploymentCircuitBreaker"]
        assert breaker == {"enable": True, "rollback": True}


@pytest.mark.parametrize("role", ["history", "matching", "frontend", "worker"])
def test_rendered_server_config_holds_the_roles_ports_plugins_and_shards(stack, role):
    config = make_config()
    values = environment(role)
    server = json.loads(values["TEMPORAL_SERVER_CONFIG"])
    grpc, membership = PORTS[role]
    assert server["services"][role]["rpc"] == {"grpcPort": grpc, "membershipPort": membership, "bindOnIP": "0.0.0.0"}
    sql = server["persistence"]["datastores"][server["persistence"]["defaultStore"]]["sql"]
    assert sql["pluginName"] == "dsql" and sql["tls"]["enabled"] is True
    identifier = stack["dsql_cluster_arn"].rsplit("/", 1)[-1]
    assert sql["connectAddr"] == f"{identifier}.dsql.{REGION}.on.aws:5432"
    assert "password" not in sql
    # The fork holds its pool at maxConns: an idle limit below it would churn connections.
    assert sql["maxConns"] == sql["maxIdleConns"] == getattr(config.services, role).max_conns
    # The fork connects as admin whatever the config says, with TLS verified (sslmode=verify-full).
    assert sql["user"] == "admin" and sql["databaseName"] == "postgres"
    assert sql["tls"] == {"enabled": True, "enableHostVerification": True}
    visibility = server["persistence"]["datastores"][server["persistence"]["visibilityStore"]]["elasticsearch"]
    assert visibility["aws-request-signing"]["enabled"] is True
    assert visibility["url"]["host"] == stack["opensearch_endpoint"].removeprefix("https://") + ":443"
    assert server["persistence"]["numHistoryShards"] == config.temporal.num_history_shards
    assert server["global"]["metrics"]["prometheus"]["listenAddress"] == "0.0.0.0:9090"
    assert values["TEMPORAL_SERVICE"] == role
    # The start script puts the task's own address where the config holds the placeholder.
    broadcast = server["global"]["membership"]["broadcastAddress"]
    script = container(role)["command"][0]
    assert "hostname -i" in script and f"s/{broadcast}/" in script
    dynamic = json.loads(values["TEMPORAL_DYNAMIC_CONFIG"])
    assert set(dynamic) <= versions.load(config.temporal.server_version).dynamic_config_keys
    assert dynamic["history.shutdownDrainDuration"] == [{"value": "30s", "constraints": {}}]
    ports = {p["containerPort"] for p in container(role)["portMappings"]}
    assert ports == {grpc, membership, 9090}


def test_every_container_has_a_health_check_and_a_graceful_stop_timeout(stack):
    for name in SERVICES:
        item = container(name)
        assert item["healthCheck"]["command"][0] == "CMD-SHELL"
        assert item["stopTimeout"] >= 60


def sent_definitions(stack) -> dict[str, dict]:
    sent = {d["family"].removeprefix(f"{PROJECT}-"): d for d in stack["sent"].of("ecs.RegisterTaskDefinition")}
    return {name: definition for name, definition in sent.items() if name in SERVICES}


def probed_port(definition: dict) -> int:
    (item,) = definition["containerDefinitions"]
    command = item["healthCheck"]["command"][1]
    assert command.startswith("nc -z 127.0.0.1 ")
    return int(command.split()[3])


# What each role opens, from the server's source (see provisioner/temporal/versions.py for the commits):
# frontend, history and matching a gRPC listener in every version; the worker only from 1.31 (the fork
# has that commit); every role its membership port.
OPENS = {
    version: {role: {PORTS[role][1]} | ({PORTS[role][0]} if role != "worker" or version in ("1.31", "fork") else set())
              for role in PORTS}
    for version in versions.SUPPORTED
}


def test_every_health_check_probes_a_port_its_role_opens_in_the_pinned_version(stack):
    definitions = sent_definitions(stack)
    opens = OPENS[make_config().temporal.server_version]
    for role in PORTS:
        assert probed_port(definitions[role]) in opens[role], role


@pytest.mark.parametrize("version", versions.SUPPORTED)
def test_health_check_port_table_names_only_opened_ports(version):
    from provisioner.temporal.roles import health_check_port

    for role in PORTS:
        assert health_check_port(versions.load(version), role) in OPENS[version][role]
    if version in ("1.28", "1.29", "1.30"):
        assert health_check_port(versions.load(version), "worker") == 6939  # no gRPC listener before 1.31


def test_each_task_reserves_room_for_the_service_connect_proxy(stack):
    """AWS recommends 256 CPU units and 64 MiB on top of the containers for the Envoy proxy."""
    config = make_config()
    for name, definition in sent_definitions(stack).items():
        sizes = getattr(config.services, name)
        (item,) = definition["containerDefinitions"]
        assert (item["cpu"], item["memory"]) == (sizes.cpu, sizes.memory)
        assert (definition["cpu"], definition["memory"]) == (str(sizes.cpu + 256), str(sizes.memory + 64))


@pytest.mark.parametrize("version", versions.SUPPORTED)
def test_rendered_server_config_uses_only_keys_the_server_version_knows(version):
    """Every key is checked against the yaml tags of that version's config structs (extracted data)."""
    from provisioner.temporal.server_config import server_config

    config = make_config(temporal={"server_image": "registry.example/temporal:custom-build", "server_version": version})
    for role in PORTS:
        rendered = server_config(config, role, REGION, "abc.dsql.eu-west-1.on.aws", "vpc-vis.example")
        assert versions.unknown_config_keys(rendered, versions.load(version).server_config) == []


def test_unknown_config_key_detector_catches_a_typo():
    tree = versions.load("fork").server_config
    assert versions.unknown_config_keys({"persistence": {"numHistoryShard": 4}}, tree) == ["persistence.numHistoryShard"]
    assert versions.unknown_config_keys({"global": {"metrics": {"prometheus": {"listenAdress": "x"}}}}, tree) == [
        "global.metrics.prometheus.listenAdress"]


@pytest.mark.parametrize("version", versions.SUPPORTED)
def test_the_start_command_matches_what_the_server_version_accepts(version):
    from provisioner.temporal.server_config import start_script

    script = start_script(versions.load(version))
    if version in ("1.28", "1.29"):
        assert "--config /tmp/temporal --env provision start" in script and "--config-file" not in script
    else:
        assert "start --config-file /tmp/temporal/provision.yaml" in script


def test_ui_uses_the_official_image_and_reaches_frontend_by_service_connect(stack):
    item = container("ui")
    assert item["image"] == make_config().temporal.ui_image and item["image"].startswith("temporalio/ui:")
    assert environment("ui")["TEMPORAL_ADDRESS"] == "temporal-frontend:7233"
    assert [p["containerPort"] for p in item["portMappings"]] == [8080]
    assert all(container(r)["image"] == SERVER_IMAGE for r in PORTS)


def test_task_roles_are_scoped_per_service(stack):
    definitions = task_definitions()
    assert definitions["ui"]["taskRoleArn"] == stack["ui_task_arn"]
    assert {definitions[r]["taskRoleArn"] for r in PORTS} == {stack["temporal_task_arn"]}
    assert {d["executionRoleArn"] for d in definitions.values()} == {stack["ecs_execution_arn"]}


def test_outputs_name_the_cluster_every_service_and_an_exec_command(stack):
    assert stack["cluster_name"] == f"{PROJECT}-cluster" and stack["cluster_arn"].endswith(f"/{PROJECT}-cluster")
    assert stack["services"] == {name: f"{PROJECT}-{name}" for name in ALL_SERVICES}
    for name in (*SERVICES, "grafana"):
        command = stack["exec_commands"][name]
        assert command.startswith("aws ecs execute-command")
        assert f"--cluster {PROJECT}-cluster" in command and f"--service-name {PROJECT}-{name}" in command
        assert f"--container {name}" in command and "--interactive" in command


# -- scale and changes: a refusal runs on the module's stack; whatever changes the stack gets a clean account ----

def counts() -> dict[str, int]:
    return {name: s["desiredCount"] for name, s in services().items()}


def config_for(where, extra: str = ""):
    """The stack's config file, with `extra` settings, in `where`."""
    config_file = where / "provision.toml"
    config_file.write_text(config_text(extra=extra))
    return config_file


def test_scale_sets_counts_records_them_and_the_next_up_keeps_them(cli_stack):
    config_file, state = cli_stack
    result = run("scale", "history=3", "matching=3", "--json", config_file=config_file, state=state)
    assert result.exit_code == 0, result.output
    rows = {r["service"]: r for r in json.loads(result.stdout)}
    assert rows["history"]["desired"] == rows["history"]["running"] == 3 and rows["history"]["stable"]
    assert counts() == dict.fromkeys(ALL_SERVICES, 0) | {"history": 3, "matching": 3}
    assert {s["runningCount"] for n, s in services().items() if n in ("history", "matching")} == {3}
    assert json.loads(state.read_text())["settings"]["service_counts"]["history"] == 3
    log = CallLog()
    assert up_ok(make_config(), new_aws(("before-call", log)), state).changes == []
    assert log.mutating == []
    assert counts()["history"] == 3


def test_scale_up_and_down_presets_use_the_configured_replicas(cli_stack):
    config_file, state = cli_stack
    assert run("scale", "up", config_file=config_file, state=state).exit_code == 0
    config = make_config()
    assert counts() == {name: getattr(config.services, name).replicas for name in ALL_SERVICES}
    assert run("scale", "down", config_file=config_file, state=state).exit_code == 0
    assert counts() == dict.fromkeys(ALL_SERVICES, 0)


@pytest.mark.parametrize("arguments,message", [
    (["history=-1"], "the count must be a whole number from 0 to 100"),
    (["histroy=2"], "unknown service 'histroy'; did you mean 'history'?"),
    (["history"], "expected 'up', 'down' or service=count"),
    ([], "name what to scale"),
])
def test_scale_refuses_bad_arguments_and_changes_nothing(stack, tmp_path, monkeypatch, arguments, message):
    """On the module's stack: a refusal that changed anything fails here (no mutating call, same state)."""
    config_file, state = config_for(tmp_path), stack["state_path"]
    before, calls = state.read_bytes(), record_cli_calls(monkeypatch)
    result = run("scale", *arguments, config_file=config_file, state=state)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if "Error" in line]) == 1
    assert calls.mutating == [] and state.read_bytes() == before
    assert counts() == dict.fromkeys(ALL_SERVICES, 0)


def test_scale_beyond_what_a_node_group_can_hold_is_refused(stack, tmp_path, monkeypatch):
    """On the module's stack: a refusal that changed anything fails here (no mutating call, same state)."""
    config_file = config_for(tmp_path, "[capacity.history]\nmin_size = 1\nmax_size = 1\n")
    state = stack["state_path"]
    before, calls = state.read_bytes(), record_cli_calls(monkeypatch)
    result = run("scale", "history=3", config_file=config_file, state=state)
    assert result.exit_code == 2
    assert "node group history (1 x m7g.xlarge at capacity.history.max_size) cannot hold history=3" in result.output
    assert "not enough CPU units" in result.output and "Raise capacity.history.max_size" in result.output
    assert calls.mutating == [] and state.read_bytes() == before and counts()["history"] == 0


def test_scale_that_could_exceed_dsql_connections_during_a_rolling_deployment_is_refused(cli_stack):
    """6 tasks x 1000 connections fit DSQL's 10,000; a rolling deployment runs up to 12 such tasks at once."""
    config_file, state = cli_stack
    config_file.write_text(config_text(extra="[services.matching]\nmax_conns = 1000\n[capacity.frontend]\nmax_size = 20\n"))
    result = run("scale", "matching=6", config_file=config_file, state=state)
    assert result.exit_code == 2
    assert "could open 12000 DSQL connections during a rolling deployment (200% of the tasks at once: matching 12000)" \
        in result.output
    assert counts()["matching"] == 0
    assert run("scale", "matching=5", config_file=config_file, state=state).exit_code == 0


def test_scale_interrupted_after_recording_the_counts_is_finished_by_up(cli_stack):
    _, state = cli_stack

    def crash(**_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scaling.scale(make_config(), new_aws(("before-call.ecs.UpdateService", crash)), {"worker": 2}, state, quiet=True)
    assert counts()["worker"] == 0
    result = up_ok(make_config(), new_aws(), state)
    assert [c.describe() for c in result.changes] == ["update ECS service svc-worker (desiredCount)"]
    assert counts()["worker"] == 2


def test_destroy_of_a_running_cluster_leaves_nothing_and_forgets_the_counts(cli_stack):
    config_file, state = cli_stack
    assert run("scale", "up", config_file=config_file, state=state).exit_code == 0
    assert operations.destroy(make_config(), new_aws(), state, delete_data=True, quiet=True).ok
    assert world() == []
    assert json.loads(state.read_text())["settings"] == {}


def test_scale_before_up_says_to_run_up_first(endpoint, tmp_path):
    config_file = tmp_path / "provision.toml"
    config_file.write_text(config_text())
    result = run("scale", "history=1", config_file=config_file, state=tmp_path / "state.json")
    assert result.exit_code == 2  # input: nothing to scale yet, nothing changed
    assert "run 'provision up' first" in result.output


def test_lost_state_keeps_the_live_task_counts(cli_stack):
    config_file, state = cli_stack
    assert run("scale", "frontend=2", config_file=config_file, state=state).exit_code == 0
    state.unlink()
    log = CallLog()
    up_ok(make_config(), new_aws(("before-call", log)), state)
    assert log.mutating == []
    assert counts()["frontend"] == 2
    assert json.loads(state.read_text())["settings"]["service_counts"]["frontend"] == 2


def test_changed_task_size_registers_a_new_revision_and_moves_the_service(cli_stack):
    _, state = cli_stack
    bigger = make_config(services={"history": {"cpu": 3072}})
    planned = operations.plan(bigger, new_aws(), state, quiet=True).changes
    result = up_ok(bigger, new_aws(), state)
    assert [c.describe() for c in planned] == [c.describe() for c in result.changes]
    history = ecs().describe_task_definition(taskDefinition=f"{PROJECT}-history")["taskDefinition"]
    assert history["revision"] == 2 and history["cpu"] == "3328"  # 3072 and the proxy's 256
    assert services()["history"]["taskDefinition"] == history["taskDefinitionArn"]
    active = ecs().list_task_definitions(familyPrefix=f"{PROJECT}-history", status="ACTIVE")["taskDefinitionArns"]
    assert active == [history["taskDefinitionArn"]]
    assert up_ok(bigger, new_aws(), state).changes == []


def test_an_older_revision_left_active_by_a_stopped_run_is_deregistered_by_the_next_up(cli_stack):
    """A run stopped after registering a new revision and recording it, before deregistering the old one: the
    next up sees two ACTIVE revisions of the family beside the recorded digest, and retires the older, as its plan
    says."""
    _, state = cli_stack
    bigger = make_config(services={"history": {"cpu": 3072}})

    def stopped(**_):
        raise RuntimeError("stopped before the older revision was deregistered")

    assert not operations.up(bigger, new_aws(("before-call.ecs.DeregisterTaskDefinition", stopped)), state,
                             quiet=True).ok
    family = f"{PROJECT}-history"
    active = ecs().list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]
    recorded = json.loads(state.read_text())["resources"]["task_definitions"]["td-history"]
    assert len(active) == 2 and recorded["id"] == active[-1]
    planned = operations.plan(bigger, new_aws(), state, quiet=True).changes
    result = up_ok(bigger, new_aws(), state)
    assert [c.describe() for c in planned] == [c.describe() for c in result.changes]
    assert "update task definition td-history (deregister 1 older revisions)" in [c.describe() for c in result.changes]
    assert ecs().list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"] == [recorded["id"]]
    assert services()["history"]["taskDefinition"] == recorded["id"]
    assert up_ok(bigger, new_aws(), state).changes == []


def test_a_task_too_big_for_its_node_is_refused_before_anything_is_created(endpoint, tmp_path):
    config = make_config(services={"history": {"memory": 20480}})
    result = operations.up(config, new_aws(), tmp_path / "state.json", quiet=True)
    assert not result.ok
    (message,) = [str(e) for _, e in result.errors]
    assert "services.history" in message and "capacity.history.instance_type" in message
    assert world() == []


@pytest.fixture
def unplaceable(moto_endpoint, tmp_path, monkeypatch):
    """An emulator of its own where the history service can never place a task."""
    with own_emulator(tmp_path / "unplaceable-emulator", monkeypatch, **{UNPLACEABLE_SETTING: "history"}) as endpoint:
        yield endpoint


def test_scale_reports_why_a_service_does_not_settle(unplaceable, tmp_path):
    config_file = tmp_path / "provision.toml"
    config_file.write_text(config_text())
    state = tmp_path / "state.json"
    up_ok(make_config(), new_aws(), state)
    result = run("scale", "history=2", "frontend=1", "--timeout", "2", config_file=config_file, state=state)
    assert result.exit_code == 1
    assert "history: 0/2 running" in result.output
    assert "unable to place a task" in result.output
    assert "frontend:" not in result.output.split("not settled")[-1]
    assert json.loads(state.read_text())["settings"]["service_counts"] == dict.fromkeys(ALL_SERVICES, 0) | {
        "history": 2, "frontend": 1}
