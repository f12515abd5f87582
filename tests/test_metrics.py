"""Metrics and dashboards: the ADOT collector, Grafana on Amazon Managed Prometheus, `provision tunnel`.
Read from what the tool sent and stored (the SSM parameters as the containers will receive them)."""
from __future__ import annotations

import json
import shlex
from importlib import resources

import boto3
import pytest
from typer.testing import CliRunner

from provisioner import operations
from provisioner.cli import app as cli
from provisioner.metrics import dashboards, grafana
from tests.conftest import (
    PROJECT,
    REGION,
    build_stack,
    config_text,
    make_config,
    new_aws,
    record_cli_calls,
)
from tests.conftest import (
    run_cli as run,
)

ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def stack(moto_endpoint, tmp_path_factory):
    config, state_path, sent = build_stack(moto_endpoint, tmp_path_factory)
    return operations.outputs(config, new_aws(), state_path) | {"state_path": state_path, "sent": sent}


def parameter(path: str) -> str:
    return boto3.client("ssm", region_name=REGION).get_parameter(Name=f"/{PROJECT}/{path}")["Parameter"]["Value"]


def definition(stack, family: str) -> dict:
    (found,) = [d for d in stack["sent"].of("ecs.RegisterTaskDefinition") if d["family"] == f"{PROJECT}-{family}"]
    return found


def containers(stack, family: str) -> dict[str, dict]:
    return {c["name"]: c for c in definition(stack, family)["containerDefinitions"]}


def role_policy(stack, role: str) -> dict[str, dict]:
    (document,) = [json.loads(p["PolicyDocument"]) for p in stack["sent"].of("iam.PutRolePolicy")
                   if p["RoleName"] == f"{PROJECT}-{REGION}-{role}"]
    return {s["Sid"]: s for s in document["Statement"]}


# -- the collector ---------------------------------------------------------------------------------------------

def test_the_collector_config_observes_this_cluster_and_every_temporal_service_on_9090(stack):
    config = json.loads(parameter("collector/config"))  # JSON is YAML: what AOT_CONFIG_CONTENT holds
    observer = config["extensions"]["ecs_observer"]
    assert observer["cluster_name"] == stack["cluster_name"] and observer["cluster_region"] == REGION
    assert observer["refresh_interval"] == "15s"
    selectors = {s["name_pattern"]: s for s in observer["services"]}
    assert set(selectors) == {f"^{PROJECT}-{role}$" for role in ("history", "matching", "frontend", "worker")}
    assert all(s["metrics_ports"] == [9090] for s in selectors.values())
    # Each of those ports is a port mapping of its task definition: the observer targets only mapped ports.
    for role in ("history", "matching", "frontend", "worker"):
        assert 9090 in {p["containerPort"] for p in containers(stack, role)[role]["portMappings"]}


def test_the_collector_reads_the_observers_file_and_labels_every_series_with_its_service_and_task(stack):
    config = json.loads(parameter("collector/config"))
    (job,) = config["receivers"]["prometheus"]["config"]["scrape_configs"]
    assert job["file_sd_configs"][0]["files"] == [config["extensions"]["ecs_observer"]["result_file"]]
    targets = {r["target_label"]: r for r in job["relabel_configs"]}
    assert targets["ecs_service"]["source_labels"] == ["__meta_ecs_service_name"]
    assert targets["ecs_task"]["source_labels"] == ["__meta_ecs_source"]  # the task's ARN (ecsobserver target.go)
    assert config["service"]["pipelines"]["metrics"]["receivers"] == ["prometheus"]


def test_the_collector_writes_to_this_workspace_with_sigv4_and_keeps_metric_names(stack):
    config = json.loads(parameter("collector/config"))
    exporter = config["exporters"]["prometheusremotewrite"]
    assert exporter["endpoint"] == stack["prometheus_remote_write_url"]
    assert stack["prometheus_remote_write_url"].endswith(f"/workspaces/{stack['prometheus_workspace_id']}/api/v1/remote_write")
    assert exporter["auth"] == {"authenticator": "sigv4auth"}
    assert config["extensions"]["sigv4auth"] == {"region": REGION, "service": "aps"}
    # Without it, counters get _total and Temporal's dashboards find nothing.
    assert exporter["translation_strategy"] == "UnderscoreEscapingWithoutSuffixes"
    assert set(config["service"]["extensions"]) == {"health_check", "sigv4auth", "ecs_observer"}


def test_the_collector_can_write_its_result_file(stack):
    """Since v0.35 the image runs as aoc (uid 4317) and only /home/aoc is its own (aws-otel-collector
    cmd/awscollector/Dockerfile, v0.49.0; issue 2620): the observer's file goes there, and the container
    runs as that uid, not as root."""
    (item,) = containers(stack, "collector").values()
    assert item["user"] == "4317"
    result_file = json.loads(parameter("collector/config"))["extensions"]["ecs_observer"]["result_file"]
    assert result_file.startswith("/home/aoc/") and result_file.count("/") == 3
    assert item["image"].startswith("public.ecr.aws/aws-observability/aws-otel-collector:v0.")


def test_the_collector_gets_its_config_from_its_parameter_and_checks_its_health(stack):
    (item,) = containers(stack, "collector").values()
    assert item["secrets"] == [{"name": "AOT_CONFIG_CONTENT",
                                "valueFrom": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{PROJECT}/collector/config"}]
    assert item["healthCheck"]["command"] == ["CMD", "/healthcheck"]
    assert item["logConfiguration"]["options"]["awslogs-group"] == f"/ecs/{PROJECT}/adot"
    assert "portMappings" not in item  # it takes no traffic


def test_the_collector_roles_reach_only_the_workspace_the_cluster_and_its_parameter(stack):
    task = role_policy(stack, "collector-task")
    assert task["PrometheusRemoteWrite"]["Resource"] == stack["prometheus_workspace_arn"]
    cluster = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{PROJECT}-cluster"
    for sid in ("ObserveClusterLists", "ObserveCluster"):
        assert task[sid]["Condition"] == {"ArnEquals": {"ecs:cluster": cluster}}
    assert sorted(task["ObserveCluster"]["Resource"]) == sorted(
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:{kind}/{PROJECT}-cluster/*" for kind in ("service", "task", "container-instance"))
    needed = {"ecs:ListTasks", "ecs:ListServices", "ecs:DescribeServices", "ecs:DescribeTasks",
              "ecs:DescribeTaskDefinition", "ecs:DescribeContainerInstances", "ec2:DescribeInstances"}
    granted = {a for s in task.values() for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert needed <= granted
    (start,) = role_policy(stack, "collector-execution").values()
    assert start["Action"] == "ssm:GetParameters"
    assert start["Resource"] == f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{PROJECT}/collector/config"


# -- Grafana ------------------------------------------------------------------------------------------------

def test_property_6_grafana_takes_its_login_from_the_secret_by_arn_and_json_key(stack):
    item = containers(stack, "grafana")["grafana"]
    secrets = {s["name"]: s["valueFrom"] for s in item["secrets"]}
    assert secrets == {"GF_SECURITY_ADMIN_USER": f"{stack['grafana_secret_arn']}:admin_user::",
                       "GF_SECURITY_ADMIN_PASSWORD": f"{stack['grafana_secret_arn']}:admin_password::"}
    assert not any(e["name"].startswith("GF_SECURITY_ADMIN") for e in item["environment"])


def test_property_6_the_password_is_in_no_state_output_or_task_definition(stack, tmp_path):
    password = json.loads(boto3.client("secretsmanager", region_name=REGION).get_secret_value(
        SecretId="grafana/admin")["SecretString"])["admin_password"]
    assert password not in stack["state_path"].read_text()
    assert password not in json.dumps(stack["sent"].sent, default=str)
    config_file = tmp_path / "provision.toml"
    config_file.write_text(config_text())
    shown = CliRunner().invoke(cli, ["outputs", "--json", "--config", str(config_file), "--state", str(stack["state_path"])])
    assert shown.exit_code == 0 and password not in shown.output
    hidden = CliRunner().invoke(cli, ["grafana-secret", "--config", str(config_file)])
    assert password not in hidden.output and "--show-password" in hidden.output
    asked = CliRunner().invoke(cli, ["grafana-secret", "--config", str(config_file), "--show-password"])
    assert password in asked.output


def test_grafana_data_source_is_this_workspace_signed_with_sigv4_as_the_default(stack):
    (source,) = json.loads(parameter("grafana/datasources"))["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True and source["uid"] == grafana.DATASOURCE_UID
    assert source["url"] == stack["prometheus_query_url"].rstrip("/")
    assert source["url"].endswith(f"/workspaces/{stack['prometheus_workspace_id']}")
    assert source["jsonData"] == {"httpMethod": "POST", "sigV4Auth": True, "sigV4AuthType": "default",
                                  "sigV4Region": REGION}
    # Grafana 12 adds the SigV4 middleware only with this setting (pkg/infra/httpclient/httpclientprovider).
    environment = {e["name"]: e["value"] for e in containers(stack, "grafana")["grafana"]["environment"]}
    assert environment["GF_AUTH_SIGV4_AUTH_ENABLED"] == "true"


def _panels(dashboard: dict):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from _panels(panel)  # a collapsed row holds its panels


def test_dashboards_are_temporals_own_rendered_for_the_server_version_and_query_only_the_provisioned_data_source(stack):
    for name in dashboards.SOURCE_FILES:
        shipped = grafana.unpacked(parameter(f"grafana/dashboard-{name}"))
        committed = dashboards.committed(name)
        assert shipped.get("uid") == committed.get("uid") and shipped["title"] == committed["title"]
        queries = [t for panel in _panels(shipped) for t in panel.get("targets", [])]
        assert any(t.get("expr") for t in queries)
        for panel in _panels(shipped):
            if panel.get("targets"):
                assert panel["datasource"] == {"type": "prometheus", "uid": "amp"}, panel["title"]
                assert all(t.get("datasource", panel["datasource"])["uid"] == "amp" for t in panel["targets"])
        # What Grafana gets is the dashboard rendered for the configured server version (the fork by default).
        assert shipped == dashboards.render(name, make_config().temporal.server_version).dashboard
    # Bare counter names, as the collector writes them.
    general = json.dumps(grafana.unpacked(parameter("grafana/dashboard-server-general")))
    assert "rate(service_requests" in general and "service_requests_total" not in general


def test_committed_dashboards_record_their_source_and_license():
    assert len(dashboards.SOURCE_COMMIT) == 40
    assert set(dashboards.SOURCE_FILES) == {"server-general", "frontend-service-specific", "history-service-specific",
                                            "matching-service-specific", "worker-service-specific"}
    notice = resources.files("provisioner").joinpath("data/dashboards/LICENSE").read_text()
    assert "MIT License" in notice and "Temporal Technologies" in notice


def test_grafana_starts_only_after_its_config_is_written_into_the_task(stack):
    parts = containers(stack, "grafana")
    init, server = parts["grafana-config"], parts["grafana"]
    assert init["essential"] is False and server["dependsOn"] == [{"containerName": "grafana-config", "condition": "SUCCESS"}]
    assert {v["name"] for v in definition(stack, "grafana")["volumes"]} == {"provisioning", "dashboards"}
    assert {m["sourceVolume"] for m in init["mountPoints"]} == {m["sourceVolume"] for m in server["mountPoints"]}
    arns = {s["valueFrom"] for s in init["secrets"]}
    assert arns == {f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{PROJECT}/grafana/{name}" for name in (
        "datasources", "dashboard-provider", *(f"dashboard-{n}" for n in dashboards.SOURCE_FILES))}
    script = init["command"][0]
    assert "base64 -d | gunzip > /var/lib/grafana/dashboards/server-general.json" in script
    assert server["image"].split(":")[-1].startswith("12.")
    assert "curl -fsS http://localhost:3000/api/health" in server["healthCheck"]["command"][1]


def test_grafana_roles_query_the_workspace_and_read_only_their_secret_and_parameters(stack):
    task = role_policy(stack, "grafana-task")
    assert task["PrometheusQuery"]["Resource"] == stack["prometheus_workspace_arn"]
    assert sorted(task["PrometheusQuery"]["Action"]) == ["aps:GetLabels", "aps:GetMetricMetadata", "aps:GetSeries",
                                                         "aps:QueryMetrics"]
    start = role_policy(stack, "grafana-execution")
    assert start["ReadGrafanaSecret"]["Resource"] == stack["grafana_secret_arn"]
    assert start["ReadGrafanaProvisioning"]["Resource"] == f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{PROJECT}/grafana/*"
    # The shared execution role reads no secret at all any more.
    assert not [p for p in stack["sent"].of("iam.PutRolePolicy") if p["RoleName"] == f"{PROJECT}-{REGION}-ecs-execution"]


def test_grafana_and_the_collector_run_on_their_nodes_without_service_connect(stack):
    ecs = boto3.client("ecs", region_name=REGION)
    for name, node in (("grafana", "frontend"), ("collector", "worker")):
        (service,) = ecs.describe_services(cluster=stack["cluster_name"], services=[f"{PROJECT}-{name}"])["services"]
        assert service["placementConstraints"] == [{"type": "memberOf", "expression": f"attribute:workload == {node}"}]
        assert service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
        assert service["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] == [stack["security_groups"][name]]
        assert not service["deployments"][0].get("serviceConnectConfiguration")
        # No proxy, so no room reserved for one.
        sizes = getattr(make_config().services, name)
        assert definition(stack, name)["cpu"] == str(sizes.cpu)


def test_outputs_name_the_workspace_urls_the_opensearch_endpoint_and_the_tunnels(stack):
    assert stack["prometheus_workspace_id"].startswith("ws-")
    assert stack["prometheus_query_url"] and stack["prometheus_remote_write_url"]
    assert stack["opensearch_endpoint"].startswith("https://")
    assert stack["tunnel_commands"] == {"grafana": "provision tunnel grafana", "ui": "provision tunnel ui"}
    # Its image has no shell: ECS Exec runs its health probe, the one other program in it.
    assert stack["exec_commands"]["collector"].endswith("--container collector --interactive --command /healthcheck")


# -- scale and the tunnel: a scale on a stack of its own, a tunnel that finds nothing to reach on the module's ---

def test_scale_up_starts_grafana_and_the_collector_with_the_temporal_services(cli_stack):
    config_file, state = cli_stack
    assert run("scale", "up", config_file=config_file, state=state).exit_code == 0
    counts = json.loads(state.read_text())["settings"]["service_counts"]
    assert counts["grafana"] == 1 and counts["collector"] == 1
    assert run("scale", "collector=0", config_file=config_file, state=state).exit_code == 0
    assert json.loads(state.read_text())["settings"]["service_counts"]["collector"] == 0


def test_tunnel_print_names_a_running_task_and_the_instance_it_runs_on(cli_stack):
    config_file, state = cli_stack
    assert run("scale", "grafana=1", config_file=config_file, state=state).exit_code == 0
    result = run("tunnel", "grafana", "--print", "--local-port", "13000", config_file=config_file, state=state)
    assert result.exit_code == 0, result.output
    command = shlex.split(result.stdout.strip())
    ecs = boto3.client("ecs", region_name=REGION)
    (arn,) = ecs.list_tasks(cluster=f"{PROJECT}-cluster", serviceName=f"{PROJECT}-grafana")["taskArns"]
    (task,) = ecs.describe_tasks(cluster=f"{PROJECT}-cluster", tasks=[arn])["tasks"]
    ip = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}["privateIPv4Address"]
    (instance,) = ecs.describe_container_instances(cluster=f"{PROJECT}-cluster",
                                                   containerInstances=[task["containerInstanceArn"]])["containerInstances"]
    assert command == ["aws", "ssm", "start-session", "--region", REGION, "--target", instance["ec2InstanceId"],
                       "--document-name", "AWS-StartPortForwardingSessionToRemoteHost", "--parameters",
                       json.dumps({"host": [ip], "portNumber": ["3000"], "localPortNumber": ["13000"]},
                                  separators=(",", ":"))]
    # The instance is one of node B's, where Grafana is placed.
    ec2 = boto3.client("ec2", region_name=REGION)
    (reservation,) = ec2.describe_instances(InstanceIds=[instance["ec2InstanceId"]])["Reservations"]
    tags = {t["Key"]: t["Value"] for t in reservation["Instances"][0]["Tags"]}
    assert tags["aws:autoscaling:groupName"] == f"{PROJECT}-node-frontend"


def test_tunnel_without_a_running_task_says_how_to_start_one(stack, tmp_path, monkeypatch):
    """On the module's stack: a tunnel that changed anything fails here (no mutating call, same state)."""
    config_file, state = tmp_path / "provision.toml", stack["state_path"]
    config_file.write_text(config_text())
    before, calls = state.read_bytes(), record_cli_calls(monkeypatch)
    result = run("tunnel", "ui", "--print", config_file=config_file, state=state)
    assert result.exit_code == 1 and "provision scale ui=1" in result.output
    assert calls.mutating == [] and state.read_bytes() == before


def test_tunnel_without_the_session_manager_plugin_gives_its_install_hint(stack, tmp_path, monkeypatch):
    """On the module's stack: a refusal that changed anything fails here (no mutating call, same state)."""
    config_file, state = tmp_path / "provision.toml", stack["state_path"]
    config_file.write_text(config_text())
    before, calls = state.read_bytes(), record_cli_calls(monkeypatch)
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "aws").write_text("#!/bin/sh\n")
    (bare / "aws").chmod(0o755)
    monkeypatch.setenv("PATH", str(bare))
    result = run("tunnel", "grafana", config_file=config_file, state=state)
    assert result.exit_code == 2
    assert "session-manager-plugin: install the Session Manager plugin" in result.output
    assert "aws: install" not in result.output
    assert calls.mutating == [] and state.read_bytes() == before
