"""Capacity (seed 7.3): plan and up refuse replicas the node groups could never hold, and
`capacity.eni_trunking` switches on ECS's awsvpcTrunking account setting, read before it is written."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import boto3
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from provisioner import operations, placement_check
from provisioner.cli import app as cli
from provisioner.config import GRAVITON_TYPE, load_config
from provisioner.ecs_layout import NodeRoom, TaskSize
from provisioner.placement_check import placement_problems, trunking_limits
from provisioner.steps.placement import Placement
from tests.conftest import (
    PROJECT,
    REGION,
    Requests,
    config_text,
    make_config,
    new_aws,
    up_ok,
)

ROOT = Path(__file__).resolve().parent.parent
ROOT_USER = "arn:aws:iam::123456789012:root"  # whose ECS account settings are the account's defaults
# Written out here, not imported, so the oracle does not share the code it checks.
GROUP_OF = {"history": "history", "matching": "frontend", "frontend": "frontend", "ui": "frontend",
            "grafana": "frontend", "worker": "worker", "collector": "worker"}
WITH_PROXY = {"history", "matching", "frontend", "worker", "ui"}  # Service Connect: 256 CPU units, 64 MiB more
# The seed's node B: matching 3, frontend 2 (1 vCPU / 4 GiB each), UI and Grafana, on two m7g.xlarge.
NODE_B = """[capacity.frontend]
instance_type = "m7g.xlarge"
max_size = 2
[services.matching]
cpu = 1024
memory = 4096
replicas = 3
[services.frontend]
cpu = 1024
memory = 4096
replicas = 2
"""


def plan(config_file: Path, state: Path):
    return CliRunner().invoke(cli, ["plan", "--config", str(config_file), "--state", str(state)])


def ecs():
    return boto3.client("ecs", region_name=REGION)


# -- the check itself, against an independent oracle ------------------------------------------------

def fits(layout: dict) -> bool:
    """Every task fits one node of its group, and each group's tasks together need no more CPU, memory
    and network interfaces than its max_size nodes offer."""
    for group, node in layout["groups"].items():
        tasks = [(cpu + 256 * (s in WITH_PROXY), memory + 64 * (s in WITH_PROXY), n)
                 for s, (cpu, memory, n) in layout["services"].items() if GROUP_OF[s] == group]
        if any(cpu > node["cpu"] or memory > node["memory"] for cpu, memory, _ in tasks):
            return False
        nodes = node["max_size"]
        if sum(cpu * n for cpu, _, n in tasks) > node["cpu"] * nodes:
            return False
        if sum(memory * n for _, memory, n in tasks) > node["memory"] * nodes:
            return False
        if sum(n for _, _, n in tasks) > node["tasks"] * nodes:
            return False
    return True


GROUPS = st.fixed_dictionaries({
    group: st.fixed_dictionaries({
        "cpu": st.sampled_from([2048, 4096, 8192, 16384]),
        "memory": st.integers(8000, 64000),
        "tasks": st.integers(1, 20),
        "max_size": st.integers(1, 6),
    }) for group in ("history", "frontend", "worker")
})
SERVICES = st.fixed_dictionaries({
    service: st.tuples(st.integers(128, 4096), st.integers(256, 16000), st.integers(0, 6)) for service in GROUP_OF
})


@settings(max_examples=300, deadline=None)
@given(layout=st.fixed_dictionaries({"groups": GROUPS, "services": SERVICES}))
def test_plan_accepts_exactly_the_layouts_whose_per_node_sums_fit(layout):
    config = make_config(
        capacity={g: {"max_size": node["max_size"]} for g, node in layout["groups"].items()},
        services={s: {"cpu": cpu, "memory": memory, "replicas": n} for s, (cpu, memory, n) in layout["services"].items()},
    )
    rooms = {g: NodeRoom(node["cpu"], node["memory"], node["tasks"]) for g, node in layout["groups"].items()}
    replicas = {s: n for s, (_, _, n) in layout["services"].items()}
    assert (placement_problems(config, rooms, replicas, counts_are_replicas=True) == []) == fits(layout)


def test_a_refusal_names_the_group_the_limit_and_the_settings_to_change():
    config = make_config(services={"history": {"replicas": 5}})
    rooms = dict.fromkeys(("history", "frontend", "worker"), NodeRoom(4096, 14745, 3))
    (message,) = placement_problems(config, rooms, {"history": 5}, counts_are_replicas=True)
    assert message.startswith("node group history (2 x m7g.xlarge at capacity.history.max_size) cannot hold history=5")
    assert "CPU units (11520 needed, 8192 at most: 4096 per node)" in message
    assert "network interfaces, one per awsvpc task (5 needed, 6 at most" not in message  # only what is short
    assert "Raise capacity.history.max_size, pick a larger capacity.history.instance_type" in message
    assert "lower the replicas (services.history.replicas)" in message


def test_the_trunking_table_records_its_source_and_agrees_with_ec2_on_interfaces(endpoint):
    """The table's untrunked limits are DescribeInstanceTypes' interfaces less the primary: a check of the transcription."""
    data = json.loads((ROOT / "provisioner/data/eni_trunking.json").read_text())
    assert data["source"]["url"].startswith("https://docs.aws.amazon.com/AmazonECS/")
    assert re.search(r"at commit [0-9a-f]{40}", data["source"]["transcribed_from"])
    limits = trunking_limits()
    assert {t.split(".")[0] for t in limits} == {"c6g", "c7g", "m6g", "m7g", "r6g", "r7g"}
    assert limits["m7g.xlarge"] == limits["c7g.xlarge"] == limits["m6g.xlarge"] == placement_check.TaskLimit(3, 20)
    described = boto3.client("ec2", region_name=REGION).describe_instance_types(InstanceTypes=sorted(limits))
    for item in described["InstanceTypes"]:
        assert GRAVITON_TYPE.match(item["InstanceType"])
        assert limits[item["InstanceType"]].without_trunking == item["NetworkInfo"]["MaximumNetworkInterfaces"] - 1
    assert len(described["InstanceTypes"]) == len(limits)


def test_a_type_missing_from_the_table_counts_as_untrunked_with_a_warning(endpoint):
    config = make_config(capacity={"eni_trunking": True, "worker": {"instance_type": "m7g.8xlarge"}})
    checked = placement_check.check(config, new_aws(), {"worker": 15}, counts_are_replicas=True, trunking_principal=ROOT_USER)
    (warning,) = checked.warnings
    assert "m7g.8xlarge is not in provisioner/data/eni_trunking.json" in warning and "without ENI trunking" in warning
    (problem,) = checked.problems  # an m7g.8xlarge has 8 interfaces: 7 tasks besides the primary
    assert "(15 needed, 14 at most: 7 per m7g.8xlarge without ENI trunking)" in problem
    assert placement_check.check(config, new_aws(), {"worker": 14}, counts_are_replicas=True, trunking_principal=ROOT_USER).problems == []


def test_the_default_config_fits_its_node_groups_without_trunking_with_room_to_roll(endpoint):
    config = load_config(ROOT / "config.example.toml")
    assert config.capacity.eni_trunking is False
    replicas = {s: getattr(config.services, s).replicas for s in GROUP_OF}
    checked = placement_check.check(config, new_aws(), replicas, counts_are_replicas=True, trunking_principal=ROOT_USER)
    assert (checked.problems, checked.warnings, checked.no_room_to_roll) == ([], [], [])


def test_node_b_at_two_nodes_has_no_room_to_roll_its_six_tasks(endpoint, tmp_path):
    # Its 6 tasks fill two nodes' 6 network interfaces: a rolling deployment's extra task has none (README, Upgrading).
    tight = tmp_path / "tight.toml"
    tight.write_text((ROOT / "config.example.toml").read_text().replace("max_size = 3", "max_size = 2"))
    config = load_config(tight)
    replicas = {s: getattr(config.services, s).replicas for s in GROUP_OF}
    checked = placement_check.check(config, new_aws(), replicas, counts_are_replicas=True, trunking_principal=ROOT_USER)
    (no_room,) = checked.no_room_to_roll
    assert no_room.startswith("node group frontend (2 x m7g.xlarge) holds matching=2 frontend=2 ui=1 grafana=1 but has "
                              "no room to roll them")
    assert "network interfaces (7 needed with one more task, 6 at most)" in no_room


def test_room_to_roll_is_one_more_of_the_largest_task_of_the_group_in_each_dimension():
    config = make_config(services={"history": {"replicas": 4}})  # history: 2 nodes at capacity.history.max_size
    history = TaskSize.of("history", config.services.history.cpu, config.services.history.memory)
    exact = NodeRoom(history.cpu * 2, history.memory * 2, 10)  # 2 nodes hold the 4 tasks and not a 5th
    assert placement_problems(config, {"history": exact}, {"history": 4}, counts_are_replicas=True) == []
    (message,) = placement_check.rolling_room(config, {"history": exact}, {"history": 4})
    assert message.startswith("node group history (2 x m7g.xlarge) holds history=4 but has no room to roll them")
    roomy = NodeRoom(history.cpu * 3, history.memory * 3, 10)
    assert placement_check.rolling_room(config, {"history": roomy}, {"history": 4}) == []


# -- plan and up on the emulator, each in a clean account (an account setting another test left changes the answers) --

def test_node_b_on_m7g_xlarge_is_refused_without_trunking_and_accepted_with_it(endpoint, tmp_path):
    config_file = tmp_path / "provision.toml"
    config_file.write_text(config_text(extra=NODE_B))
    refused = plan(config_file, tmp_path / "state.json")
    assert refused.exit_code == 2, refused.output
    assert ("node group frontend (2 x m7g.xlarge at capacity.frontend.max_size) cannot hold matching=3 frontend=2 "
            "ui=1 grafana=1: not enough network interfaces, one per awsvpc task (7 needed, 6 at most: 3 per "
            "m7g.xlarge without ENI trunking)") in refused.output
    assert "set capacity.eni_trunking = true (20 tasks per m7g.xlarge)" in refused.output
    assert "nothing was changed" in refused.output and "Traceback" not in refused.output

    config_file.write_text(config_text(extra=NODE_B.replace("[capacity.frontend]", "[capacity]\neni_trunking = true\n"
                                                                                   "[capacity.frontend]")))
    accepted = plan(config_file, tmp_path / "state.json")
    assert accepted.exit_code == 0, accepted.output
    assert "update placement: ECS account setting awsvpcTrunking (disabled -> enabled" in accepted.output
    assert "Only nodes launched after it is enabled get a trunk network interface" in accepted.output
    assert ecs().list_account_settings(name="awsvpcTrunking", effectiveSettings=True)["settings"][0]["value"] == "disabled"


def test_up_refuses_unplaceable_replicas_before_creating_anything(endpoint, tmp_path):
    sent = Requests()
    result = operations.up(make_config(services={"worker": {"replicas": 7}}), new_aws(("provide-client-params", sent)),
                           tmp_path / "state.json", quiet=True)
    ((step, error),) = result.errors
    assert step == "placement" and "node group worker" in str(error) and "services.worker.replicas" in str(error)
    assert [name for name, _ in sent.sent if not name.split(".")[1].startswith(("Describe", "List", "Get"))] == []


def test_up_turns_trunking_on_after_reading_it_once_and_before_any_node_launches(endpoint, tmp_path):
    config = make_config(capacity={"eni_trunking": True})
    sent = Requests()
    up_ok(config, new_aws(("provide-client-params", sent)), tmp_path / "state.json")
    names = [name for name, _ in sent.sent]
    assert sent.of("ecs.PutAccountSettingDefault") == [{"name": "awsvpcTrunking", "value": "enabled"}]
    written = names.index("ecs.PutAccountSettingDefault")
    read = [i for i, name in enumerate(names) if name == "ecs.ListAccountSettings"]
    assert read and read[0] < written
    assert written < names.index("autoscaling.CreateAutoScalingGroup")
    assert ecs().list_account_settings(name="awsvpcTrunking", effectiveSettings=True)["settings"][0]["value"] == "enabled"


def test_trunking_is_read_for_the_node_role_not_for_the_operator(endpoint, tmp_path):
    """What counts is the container instance role's setting, or the account default it gets
    (container-instance-eni.html); the operator's own setting does not reach the nodes."""
    up_ok(make_config(), new_aws(), tmp_path / "state.json")
    ecs().put_account_setting(name="awsvpcTrunking", value="enabled")  # the operator's own, not the default
    sent = Requests()
    up_ok(make_config(capacity={"eni_trunking": True}), new_aws(("provide-client-params", sent)), tmp_path / "state.json")
    node_role = f"arn:aws:iam::123456789012:role/{PROJECT}/{PROJECT}-{REGION}-ecs-instance"
    assert sent.of("ecs.ListAccountSettings") == [
        {"name": "awsvpcTrunking", "principalArn": node_role, "effectiveSettings": True}]
    assert sent.of("ecs.PutAccountSettingDefault") == [{"name": "awsvpcTrunking", "value": "enabled"}]
    (setting,) = ecs().list_account_settings(name="awsvpcTrunking", principalArn=node_role,
                                             effectiveSettings=True)["settings"]
    assert setting["value"] == "enabled"


def test_before_the_node_role_exists_the_check_reads_the_account_default(endpoint, tmp_path):
    sent = Requests()
    up_ok(make_config(), new_aws(("provide-client-params", sent)), tmp_path / "state.json")
    assert sent.of("ecs.ListAccountSettings")[0] == {
        "name": "awsvpcTrunking", "principalArn": ROOT_USER, "effectiveSettings": True}


def placement_only(config, aws, state: Path, operation=operations.up, **kwargs):
    return operation(config, aws, state, quiet=True, steps=[Placement()], **kwargs)


def test_trunking_already_enabled_is_not_written_again(endpoint, tmp_path):
    ecs().put_account_setting_default(name="awsvpcTrunking", value="enabled")
    sent = Requests()
    result = placement_only(make_config(capacity={"eni_trunking": True}), new_aws(("provide-client-params", sent)),
                            tmp_path / "state.json")
    assert result.ok and result.changes == []
    assert sent.of("ecs.ListAccountSettings") and sent.of("ecs.PutAccountSettingDefault") == []


def test_without_eni_trunking_the_account_setting_is_never_written(endpoint, tmp_path):
    sent = Requests()
    assert placement_only(make_config(), new_aws(("provide-client-params", sent)), tmp_path / "state.json").ok
    assert sent.of("ecs.PutAccountSettingDefault") == []


def test_destroy_leaves_trunking_on_and_says_so(endpoint, tmp_path):
    config = make_config(capacity={"eni_trunking": True})
    assert placement_only(config, new_aws(), tmp_path / "state.json").ok
    sent = Requests()
    result = placement_only(config, new_aws(("provide-client-params", sent)), tmp_path / "state.json",
                            operation=operations.destroy)
    assert result.ok and sent.of("ecs.PutAccountSettingDefault") == []
    assert any("Left ECS's awsvpcTrunking account setting as it is: it is account-wide" in n for n in result.notes)
    assert ecs().list_account_settings(name="awsvpcTrunking", effectiveSettings=True)["settings"][0]["value"] == "enabled"


def test_production_example_is_the_seed_layout_and_plan_accepts_it(endpoint, tmp_path):
    example = ROOT / "examples/production.toml"
    services = tomllib.loads(example.read_text())["services"]
    layout = {s: (v["cpu"], v["memory"], v["replicas"]) for s, v in services.items() if s in WITH_PROXY - {"ui"}}
    assert layout == {"history": (2048, 8192, 4), "matching": (1024, 4096, 3), "frontend": (1024, 4096, 2),
                      "worker": (1024, 4096, 2)}
    config = load_config(example)
    assert config.temporal.num_history_shards == 4096
    assert (config.services.ui.replicas, config.services.grafana.replicas, config.services.collector.replicas) == (1, 1, 1)
    result = plan(example, tmp_path / "state.json")
    assert result.exit_code == 0, result.output
    assert "ECS account setting awsvpcTrunking" in result.output


def test_instance_types_checked_once_are_recorded_and_only_a_changed_type_is_asked_again(endpoint, tmp_path):
    """A type's vCPUs, memory, interfaces and architecture are fixed and the zones it was offered in do not move:
    recorded once the preflight passed, they answer the next runs' checks; a type not recorded is asked again."""
    state = tmp_path / "state.json"
    up_ok(make_config(), new_aws(), state)
    document = json.loads(state.read_text())
    zones = sorted(document["settings"]["availability_zones"])
    (facts,) = document["settings"]["instance_types"].items()  # every group on the default m7g.xlarge
    (described,) = boto3.client("ec2", region_name=REGION).describe_instance_types(InstanceTypes=["m7g.xlarge"])[
        "InstanceTypes"]
    assert facts == ("m7g.xlarge", {
        "architectures": described["ProcessorInfo"]["SupportedArchitectures"],
        "vcpus": described["VCpuInfo"]["DefaultVCpus"], "memory_mib": described["MemoryInfo"]["SizeInMiB"],
        "network_interfaces": described["NetworkInfo"]["MaximumNetworkInterfaces"], "offered_in": zones})

    again = Requests()
    up_ok(make_config(), new_aws(("provide-client-params", again)), state)
    assert again.of("ec2.DescribeInstanceTypes") == [] and again.of("ec2.DescribeInstanceTypeOfferings") == []

    changed = Requests()
    up_ok(make_config(capacity={"worker": {"instance_type": "m7g.2xlarge"}}),
          new_aws(("provide-client-params", changed)), state)
    assert changed.of("ec2.DescribeInstanceTypes") == [{"InstanceTypes": ["m7g.2xlarge", "m7g.xlarge"]}]
    assert len(changed.of("ec2.DescribeInstanceTypeOfferings")) == 1
    assert sorted(json.loads(state.read_text())["settings"]["instance_types"]) == ["m7g.2xlarge", "m7g.xlarge"]
