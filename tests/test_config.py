"""Config validation: every broken file is refused with a message naming the key and the fix, before any AWS call."""
from __future__ import annotations

import tomllib
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provisioner.cli import app as cli
from provisioner.config import Config, ConfigError, load_config, parse_config
from tests.conftest import SERVER_IMAGE, config_text

ROOT = Path(__file__).resolve().parent.parent

BROKEN = [
    ({"projekt": "x"}, "unknown key 'projekt'"),
    ({"network": {"vpc_cidrs": "10.0.0.0/16"}}, "unknown key 'network.vpc_cidrs'"),
    ({"project": "Temporal_Prod"}, "project = 'Temporal_Prod': must be 3-20 characters"),
    ({"project": "a-very-long-project-name-indeed"}, "project"),
    ({"network": {"vpc_cidr": "10.0.0.0/33"}}, "network.vpc_cidr = '10.0.0.0/33': '10.0.0.0/33' is not an IPv4 CIDR block"),
    ({"network": {"vpc_cidr": "10.0.0.1/16"}}, "host bits zero"),
    ({"network": {"vpc_cidr": "fd00::/56"}}, "is IPv6"),
    ({"network": {"vpc_cidr": "10.0.0.0/8"}}, "prefixes from /16 to /24"),
    ({"network": {"private_subnet_cidrs": ["10.0.0.0/20"]}}, "at least two subnets"),
    ({"network": {"private_subnet_cidrs": ["10.0.0.0/20", "10.0.8.0/21"]}}, "overlap"),
    ({"network": {"private_subnet_cidrs": ["10.0.0.0/20", "10.1.0.0/20"]}}, "lies outside vpc_cidr"),
    ({"network": {"public_subnet_cidr": "10.0.0.0/28"}}, "overlap"),
    ({"network": {"public_subnet_cidr": "10.0.255.0/29"}}, "smaller than /28"),
    ({"network": {"availability_zones": ["eu-west-1a"]}}, "give one zone per subnet"),
    ({"network": {"availability_zones": ["eu-west-1a", "eu-west-1a", "eu-west-1b"]}}, "lists a zone twice"),
    ({"network": {"availability_zones": ["a", "b", "c"]}}, "is not an availability zone name"),
    ({"timeouts": {"nat_gateway": 0}}, "timeouts.nat_gateway = 0"),
    ({"aws": {"max_attempts": 0}}, "aws.max_attempts = 0"),
    ({"endpoints": {"ecs_endpoints": "sometimes"}}, "endpoints.ecs_endpoints = 'sometimes'"),
    ({"dsql": {"cluster_arn": "my-cluster"}}, "dsql.cluster_arn = 'my-cluster': is not a DSQL cluster ARN"),
    ({"capacity": {"history": {"instance_type": "m7i.xlarge"}}}, "capacity.history.instance_type = 'm7i.xlarge': is not a Graviton"),
    ({"capacity": {"worker": {"min_size": 3, "desired_capacity": 1}}}, "min_size <= desired_capacity <= max_size"),
    ({"capacity": {"frontend": {"root_volume_gib": 8}}}, "capacity.frontend.root_volume_gib = 8"),
    ({"logs": {"retention_days": 10}}, "logs.retention_days = 10: is not a retention CloudWatch accepts"),
    ({"temporal": {"server_image": "temporal-dsql"}}, "temporal.server_image = 'temporal-dsql': must be an image reference pinned"),
    ({"temporal": {"server_image": "https://registry.example/temporal:1"}}, "with no scheme"),
    ({"temporal": {"admin_tools_image": "Registry/Admin:1"}}, "temporal.admin_tools_image = 'Registry/Admin:1'"),
    ({"temporal": {"server_image": "repo/temporal-dsql:latest"}}, "must not use the tag 'latest'"),
    ({"temporal": {"server_image": SERVER_IMAGE, "num_history_shards": 1000}}, "temporal.num_history_shards = 1000: should be a power of two"),
    ({"temporal": {"server_image": SERVER_IMAGE, "dynamic_config": {"frontend.rsp": 10}}},
     "unknown dynamic config key 'frontend.rsp' (did you mean 'frontend.rps'?)"),
    ({"services": {"histroy": {"cpu": 1024}}}, "unknown key 'services.histroy'"),
    ({"services": {"history": {"cpu": 64}}}, "services.history.cpu = 64"),
    # Removed settings are refused with the reason, never ignored.
    ({"services": {"worker": {"max_conns": 5, "max_idle_conns": 5}}},
     "services.worker.max_idle_conns: the temporal-dsql plugin warms each pool to max_conns"),
    ({"services": {"ui": {"replicas": -1}}}, "services.ui.replicas = -1"),
    # Frontend autoscaling: only the frontend, min <= max, at least 1 task, a CPU target in range.
    ({"services": {"history": {"autoscaling": {"min": 1, "max": 3}}}},
     "services.history.autoscaling: autoscaling is for services.frontend only: history rebalances its work"),
    ({"services": {"worker": {"autoscaling": {"min": 1, "max": 3}}}}, "size it with services.worker.replicas"),
    ({"services": {"ui": {"autoscaling": {"min": 1, "max": 3}}}}, "unknown key 'services.ui.autoscaling'"),
    ({"services": {"frontend": {"autoscaling": {"min": 4, "max": 3}}}},
     "services.frontend.autoscaling: needs min <= max, got min = 4 and max = 3"),
    ({"services": {"frontend": {"autoscaling": {"min": 0, "max": 3}}}}, "services.frontend.autoscaling.min = 0"),
    ({"services": {"frontend": {"autoscaling": {"min": 1, "max": 3, "cpu_target": 95}}}},
     "services.frontend.autoscaling.cpu_target = 95"),
    ({"services": {"frontend": {"autoscaling": {"min": 1, "max": 3, "cpu_target": "60"}}}},
     "services.frontend.autoscaling.cpu_target = '60'"),
    ({"services": {"frontend": {"autoscaling": {"max": 3}}}}, "services.frontend.autoscaling.min is required"),
    ({"services": {"frontend": {"replicas": 5, "autoscaling": {"min": 1, "max": 3}}}},
     "replicas = 5 is what 'provision scale up' starts, outside autoscaling min..max (1..3)"),
    ({"dsql": {"cluster_arn": "arn:aws:dsql:eu-west-1:123456789012:cluster/abc", "user": "temporal"}},
     "dsql.user: the temporal-dsql plugin ignores it and always connects as 'admin'"),
    ({"temporal": {"server_image": SERVER_IMAGE, "server_version": "1.26"}},
     "Temporal '1.26' is not a supported server version; supported: 1.28, 1.29, 1.30, 1.31, fork"),
    ({"temporal": {"server_image": "repo/temporal:1.30.6"}},
     "its tag carries version 1.30 but temporal.server_version = 'fork' is Temporal 1.29"),
    # A key 1.31 removed (system.enableNexus) is refused there, and accepted by 1.30.
    ({"temporal": {"server_image": "repo/temporal:1.31.2", "server_version": "1.31",
                   "dynamic_config": {"system.enableNexus": True}}}, "unknown dynamic config key 'system.enableNexus'"),
    ({"opensearch": {"visibility_index": "visibility"}}, "opensearch.visibility_index = 'visibility': must start with"),
    ({"opensearch": {"instance_type": "t3.small"}}, "opensearch.instance_type = 't3.small': is not an OpenSearch instance type"),
    ({"opensearch": {"engine_version": "2.17"}}, "opensearch.engine_version = '2.17': must look like OpenSearch_2.17"),
    ({"project": "ecs-demo"}, "must not start with 'aws', 'ecs' or 'fargate'"),
]


REQUIRED = {
    "temporal": {"server_image": SERVER_IMAGE},
}


@pytest.mark.parametrize("data,message", BROKEN, ids=[m for _, m in BROKEN])
def test_broken_config_is_refused_with_its_key(data, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(REQUIRED | data)
    assert message in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1


def test_a_dynamic_config_key_is_checked_against_the_chosen_server_version():
    accepted = parse_config(REQUIRED | {"temporal": {
        "server_image": "repo/temporal:1.30.6", "server_version": "1.30", "dynamic_config": {"system.enableNexus": True}}})
    assert accepted.temporal.dynamic_config == {"system.enableNexus": True}
    # Keys match case-insensitively, as the server's own lookup does.
    parse_config(REQUIRED | {"temporal": {"server_image": SERVER_IMAGE, "dynamic_config": {"Frontend.RPS": 10}}})


def dynamic(values: dict) -> dict:
    return REQUIRED | {"temporal": {"server_image": SERVER_IMAGE, "dynamic_config": values}}


@pytest.mark.parametrize("values,message", [
    ({"frontend.rps": "fast"}, "'frontend.rps' = 'fast' is not a whole number (Temporal reads it as int)"),
    ({"frontend.rps": {"a": 1}}, "'frontend.rps' = {'a': 1} is not a whole number"),
    ({"frontend.rps": 1.5}, "'frontend.rps' = 1.5 is not a whole number"),
    ({"frontend.rps": True}, "'frontend.rps' = True is not a whole number"),
    ({"history.shutdownDrainDuration": True}, "'history.shutdownDrainDuration' = True is not a duration"),
    ({"history.shutdownDrainDuration": "thirty"}, "'history.shutdownDrainDuration' = 'thirty' is not a duration"),
    ({"history.shutdownDrainDuration": "30 s"}, "is not a duration"),
    ({"history.shutdownDrainDuration": ""}, "is not a duration"),
    ({"frontend.enableServerVersionCheck": "yes"}, "= 'yes' is not true or false (Temporal reads it as bool)"),
    ({"frontend.enableServerVersionCheck": 1}, "is not true or false"),
    ({"frontend.namespaceRPS.visibility": "x"}, "is not a whole number"),
    ({"system.secondaryVisibilityWritingMode": 3}, "= 3 is not a string"),
    ({"history.transferProcessorSchedulerActiveRoundRobinWeights": [1, 2]}, "is not a table (mapping)"),
    ({"worker.protectedNamespaces": "default"}, "'worker.protectedNamespaces' = 'default' is not a list"),
    # Each constrained value is checked, and the key is found case-insensitively as the server does.
    ({"frontend.rps": [{"value": 10}, {"value": "x", "constraints": {"namespace": "a"}}]}, "'frontend.rps' = 'x'"),
    ({"Frontend.RPS": "fast"}, "'Frontend.RPS' = 'fast' is not a whole number"),
])
def test_a_dynamic_config_value_of_the_wrong_type_is_refused_by_key(values, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(dynamic(values))
    assert message in str(caught.value)
    assert "temporal.dynamic_config" in str(caught.value) and "keep its default" in str(caught.value)


@pytest.mark.parametrize("values", [
    {"frontend.rps": 2400},
    {"admin.matchingNamespaceToPartitionDispatchRate": 5},  # a float setting takes an integer (convertFloat)
    {"admin.matchingNamespaceToPartitionDispatchRate": 2.5},
    # convertDuration: Go duration strings, "d" days, unit-less strings and numbers as seconds.
    {"history.shutdownDrainDuration": "30s"},
    {"history.shutdownDrainDuration": "1h30m"},
    {"history.shutdownDrainDuration": "1.5m"},
    {"history.shutdownDrainDuration": "2d"},
    {"history.shutdownDrainDuration": "30"},
    {"history.shutdownDrainDuration": 30},
    {"history.shutdownDrainDuration": 0.5},
    {"history.shutdownDrainDuration": "0"},
    # convertBool: a bool, or what Go's strconv.ParseBool reads.
    {"frontend.enableServerVersionCheck": False},
    {"frontend.enableServerVersionCheck": "true"},
    {"frontend.enableServerVersionCheck": "F"},
    {"history.transferProcessorSchedulerActiveRoundRobinWeights": {"1": 5}},
    {"worker.protectedNamespaces": ["temporal-system"]},
    {"matching.useNewMatcher": True},  # a typed setting with its own converter: its shape is the server's
    {"frontend.rps": [{"value": 10, "constraints": {"namespace": "a"}}]},
    # Constraint names as the server's loader matches them: lower-cased (convertYamlConstraints).
    {"matching.numTaskqueueReadPartitions": [
        {"value": 8, "constraints": {"namespace": "a", "taskQueueName": "q", "taskType": "Activity"}},
        {"value": 4, "constraints": {"NAMESPACE": "b"}}]},
])
def test_a_dynamic_config_value_the_server_converts_is_accepted(values):
    assert parse_config(dynamic(values)).temporal.dynamic_config == values


def test_a_constraint_is_known_from_the_version_whose_loader_reads_it():
    from provisioner.temporal import versions
    from provisioner.temporal.dynamic_config import check_constraints

    chasm = {"frontend.rps": [{"value": 10, "constraints": {"chasmTaskType": "x"}}]}
    check_constraints(chasm, versions.load("1.31"))
    with pytest.raises(ValueError, match="unknown constraint 'chasmTaskType'"):
        check_constraints(chasm, versions.load("1.30"))


def test_every_dynamic_config_key_has_its_type_from_the_same_source():
    from provisioner.temporal import versions

    for version in versions.SUPPORTED:
        loaded = versions.load(version)
        assert set(loaded.dynamic_config_types) == loaded.dynamic_config_keys
        assert set(loaded.dynamic_config_types.values()) <= {
            "int", "float", "bool", "string", "duration", "map", "list", "typed"}
        assert loaded.dynamic_config_types["frontend.rps"] == "int"
        assert loaded.dynamic_config_types["history.shutdownDrainDuration"] == "duration"


def network(private: list[str], vpc: str = "10.0.0.0/24", public: str = "10.0.0.240/28", **sections) -> dict:
    return REQUIRED | {"network": {"vpc_cidr": vpc, "private_subnet_cidrs": private, "public_subnet_cidr": public}} | sections


@pytest.mark.parametrize("vpc", ["224.0.0.0/16", "239.1.0.0/16", "127.0.0.0/16", "169.254.0.0/16", "0.0.0.0/16",
                                 "240.0.0.0/16"])
def test_a_vpc_range_aws_does_not_assign_is_refused(vpc):
    with pytest.raises(ConfigError, match=f"network.vpc_cidr = '{vpc}': lies in .* which AWS does not assign"):
        parse_config(REQUIRED | {"network": {"vpc_cidr": vpc}})


def test_a_publicly_routable_vpc_range_is_accepted_as_aws_allows():
    parse_config(network(["100.64.0.0/26", "100.64.0.64/26"], vpc="100.64.0.0/24", public="100.64.0.240/28"))


def test_the_private_subnets_must_hold_every_interface_the_stack_places_in_them():
    # Default config: 8 interface endpoints in each subnet; anywhere: max_size 2 + 3 + 2 nodes, the replicas
    # (2+2+2+1+1+1+1 = 10) at 200% during a rolling deployment, 2 schema tasks, 3 addresses per OpenSearch node.
    from provisioner.subnet_sizing import address_need

    need = address_need(parse_config(REQUIRED))
    assert (need.endpoints_per_subnet, need.nodes, need.tasks, need.schema_tasks, need.opensearch) == (8, 7, 20, 2, 3)
    # Three /28: 16 - 5 reserved - 8 endpoints = 3 each, 9 in all, for 32.
    with pytest.raises(ConfigError) as caught:
        parse_config(network(["10.0.0.0/28", "10.0.0.16/28", "10.0.0.32/28"]))
    assert "10.0.0.0/28, 10.0.0.16/28, 10.0.0.32/28 have 9 addresses left" in str(caught.value)
    assert "needs 32: 7 for the nodes" in str(caught.value) and "20 for the services' tasks" in str(caught.value)
    # Two /27: 2 x (32 - 13) = 38 >= 32.
    parse_config(network(["10.0.0.0/27", "10.0.0.32/27"]))


def test_a_subnet_that_cannot_hold_its_own_endpoint_interfaces_is_named():
    sections = {"endpoints": {"ecs_endpoints": True}, "dsql": {"private_link": True}}  # 8 + 3 + 1 endpoints
    with pytest.raises(ConfigError) as caught:
        parse_config(network(["10.0.0.0/28", "10.0.0.64/26"], **sections))
    assert str(caught.value).count("\n") == 0
    assert "10.0.0.0/28 has 16 addresses, fewer than the 17 it needs for itself" in str(caught.value)


def test_more_replicas_and_trunked_nodes_need_more_addresses():
    from provisioner.subnet_sizing import address_need

    config = parse_config(REQUIRED | {"services": {"history": {"replicas": 3}},
                                      "capacity": {"eni_trunking": True, "history": {"max_size": 4}}})
    need = address_need(config)
    assert need.tasks == 22 and need.nodes == 2 * (4 + 3 + 2)


@pytest.mark.parametrize("image,accepted", [
    ("registry.example/" + "a" * 230 + ":1.0", True),  # 253 characters
    ("registry.example/" + "a" * 240 + ":1.0", False),
    # With a digest, the 255 apply to what comes before it (ECS ContainerDefinition image).
    ("registry.example/" + "a" * 230 + "@sha256:" + "0" * 64, True),
])
def test_an_image_reference_is_at_most_what_ecs_accepts(image, accepted):
    data = REQUIRED | {"temporal": {"server_image": SERVER_IMAGE, "admin_tools_image": image}}
    if accepted:
        parse_config(data)
    else:
        with pytest.raises(ConfigError, match="ECS accepts at most 255"):
            parse_config(data)


def test_the_opensearch_volume_table_names_its_source_and_holds_every_allowed_type():
    import json

    from provisioner.config import opensearch_volume_limits

    table = json.loads((ROOT / "provisioner/data/opensearch_volumes.json").read_text())
    assert "limits.html#ebsresource" in table["source"]["url"]
    assert opensearch_volume_limits()["t3.small.search"] == {"min_gib": 10, "max_gib": 100}
    assert opensearch_volume_limits()["r6g.12xlarge.search"]["max_gib"] == 24 * 1024
    for instance_type, limits in opensearch_volume_limits().items():
        parse_config(REQUIRED | {"opensearch": {"instance_type": instance_type, "volume_gib": limits["max_gib"]}})
        too_big = f"volume_gib = {limits['max_gib'] + 1}: a {instance_type} takes a gp3 volume of 10 to {limits['max_gib']} GiB"
        with pytest.raises(ConfigError, match=too_big):
            parse_config(REQUIRED | {"opensearch": {"instance_type": instance_type, "volume_gib": limits["max_gib"] + 1}})


@pytest.mark.parametrize("name,accepted", [
    ("grafana/admin", True), ("a", True), ("x" * 512, True), ("team_1/+=.@-", True),
    ("", False), ("bad name!", False), ("x" * 513, False), ("grafana/ädmin", False),
])
def test_the_grafana_secret_name_is_one_secrets_manager_accepts(name, accepted):
    data = REQUIRED | {"grafana": {"admin_secret_name": name}}
    if accepted:
        assert parse_config(data).grafana.admin_secret_name == name
    else:
        with pytest.raises(ConfigError, match="is not a name Secrets Manager accepts"):
            parse_config(data)


def extraction_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("extract_temporal_data", ROOT / "scripts/extract_temporal_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("call,kind", [
    ('NewGlobalIntSetting("frontend.rps", 2400, `...`)', "int"),
    ('NewNamespaceDurationSetting("a.b", time.Second, `...`)', "duration"),
    ('NewTaskQueueFloatSetting("a.b", 0.5, `...`)', "float"),
    ('NewGlobalBoolSettingWithConstrainedDefault("a.b", nil, `...`)', "bool"),
    ('NewDestinationStringSetting("a.b", "", `...`)', "string"),
    ('NewGlobalMapSetting("a.b", nil, `...`)', "map"),
    ('NewNamespaceTypedSetting("a.b", []string(nil), `...`)', "list"),
    ('NewGlobalTypedSetting("a.b", ([]string)(nil), `...`)', "list"),
    ('NewGlobalTypedSetting("a.b", DefaultDynamicRateLimitingParams, `...`)', "typed"),
    ('NewTaskQueueTypedSettingWithConverter("a.b", ConvertGradualChange(true), false, `...`)', "typed"),
])
def test_the_extraction_script_reads_a_settings_type_off_its_constructor(call, kind):
    script = extraction_script()
    toks = script.tokenize(call)
    open_paren = next(i for i, t in enumerate(toks) if t.text == "(")
    close = script.matching(toks, open_paren)
    assert script.setting_type(toks[0].text, toks[open_paren + 1 : close]) == kind


def test_every_supported_version_names_the_source_it_was_extracted_from():
    from provisioner.temporal import versions

    for version in versions.SUPPORTED:
        source = versions.load(version).source
        assert source["repository"] in ("temporalio/temporal", "iw/temporal") and len(source["commit"]) == 40
        assert versions.load(version).dynamic_config_keys >= {"frontend.rps", "history.shutdownDrainDuration"}


def test_example_config_loads_and_documents_every_default():
    example = ROOT / "config.example.toml"
    loaded = load_config(example)
    images = {"server_image": loaded.temporal.server_image, "admin_tools_image": loaded.temporal.admin_tools_image}
    assert loaded == Config(temporal=images)
    assert tomllib.loads(example.read_text()).keys() == Config.model_fields.keys()


def test_every_setting_has_a_description():
    def walk(model):
        for name, field in model.model_fields.items():
            # An optional section (services.frontend.autoscaling) is described, and so is each of its settings.
            models = [a for a in (field.annotation, *typing.get_args(field.annotation))
                      if isinstance(a, type) and hasattr(a, "model_fields")]
            if models:
                if len(typing.get_args(field.annotation)) > 1:
                    yield name, field.description
                yield from walk(models[0])
            else:
                yield name, field.description

    described = dict(walk(Config))
    assert {"autoscaling", "min", "max", "cpu_target"} <= described.keys()
    assert [name for name, description in walk(Config) if not description] == []


def test_invalid_toml_is_reported_with_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("project = \n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(path)


def test_missing_config_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match="Copy config.example.toml"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize("command", [["up"], ["plan"], ["status"], ["outputs"], ["destroy", "--yes"]])
def test_cli_bad_config_exits_2_naming_the_key_and_makes_no_aws_call(command, tmp_path, monkeypatch):
    def no_aws(*_, **__):
        raise AssertionError("an AWS client was created for a bad config")

    monkeypatch.setattr("provisioner.aws.session.Aws.__init__", no_aws)
    path = tmp_path / "provision.toml"
    path.write_text(config_text("ok-name", '[network]\nvpc_cidr = "10.0.0.0/99"\n'))
    result = CliRunner().invoke(cli, [*command, "--config", str(path)])
    assert result.exit_code == 2
    assert "network.vpc_cidr = '10.0.0.0/99'" in result.output
    assert "Traceback" not in result.output
