"""The request shape validator (tests/aws_shapes.py), on botocore's real service models.

Fast: no emulator. Only the recorder's session test stubs a client (botocore.stub.Stubber), to
avoid the network while showing the recorder sees real client calls.
"""
from __future__ import annotations

import base64
import datetime
import json
import uuid
from functools import lru_cache

import boto3
import pytest
from botocore.model import ServiceModel
from botocore.stub import Stubber

from tests import aws_shapes
from tests.aws_shapes import RequestRecorder, check_params, compile_pattern, register

REGION = "eu-west-1"
ACCOUNT = "123456789012"
# Every service the tool talks to, and those it may add.
SERVICES = (
    "ec2", "iam", "ecs", "logs", "autoscaling", "servicediscovery", "opensearch", "amp",
    "secretsmanager", "ssm", "sts", "dsql", "ecr", "s3", "application-autoscaling", "sns", "kms",
)
ENGINES = ["re", pytest.param("regex", marks=pytest.mark.skipif(aws_shapes._regex is None, reason="no regex module"))]


@lru_cache(maxsize=None)
def service(name: str):
    return boto3.Session(region_name=REGION).client(name).meta.service_model


def op(service_name: str, operation: str):
    return service(service_name).operation_model(operation)


def rules(violations) -> list[tuple[str, str]]:
    return [(v.path, v.rule) for v in violations]


def tag_list(**tags) -> list[dict]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


ASSUME_ECS_TASKS = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
})


def create_role(**overrides) -> dict:
    return {"RoleName": "ptest-task", "AssumeRolePolicyDocument": ASSUME_ECS_TASKS} | overrides


# --- enums ------------------------------------------------------------------------------------

def test_enum_violation_is_caught():
    found = check_params(op("ec2", "CreateVpc"), {"CidrBlock": "10.0.0.0/16", "InstanceTenancy": "shared-ish"})
    assert rules(found) == [("InstanceTenancy", "enum")]
    assert found[0].operation == "ec2.CreateVpc"
    assert "'shared-ish'" in found[0].message and "'dedicated'" in found[0].message


def test_enum_violation_in_a_nested_list_is_reported_at_its_path():
    params = {"family": "ptest", "containerDefinitions": [
        {"name": "app", "image": "nginx", "portMappings": [{"containerPort": 80}, {"containerPort": 81, "protocol": "tcpx"}]},
    ]}
    assert rules(check_params(op("ecs", "RegisterTaskDefinition"), params)) == [
        ("containerDefinitions[0].portMappings[1].protocol", "enum")]


def test_task_definition_network_mode_outside_its_enum_is_caught():
    params = {"family": "ptest", "networkMode": "bridgey", "containerDefinitions": [{"name": "app", "image": "nginx"}]}
    assert rules(check_params(op("ecs", "RegisterTaskDefinition"), params)) == [("networkMode", "enum")]


def test_open_enums_are_not_enforced(monkeypatch):
    # botocore's opensearch model lags the service: no r7g types, which OpenSearch accepts.
    params = {"DomainName": "ptest-visibility", "ClusterConfig": {"InstanceType": "r7g.large.search"}}
    monkeypatch.setattr(aws_shapes, "OPEN_ENUMS", {"OpenSearchPartitionInstanceType"})
    assert check_params(op("opensearch", "CreateDomain"), params) == []


# --- patterns ---------------------------------------------------------------------------------

def test_pattern_violation_is_caught():
    found = check_params(op("logs", "CreateLogGroup"), {"logGroupName": "/ecs/ptest:frontend"})
    assert rules(found) == [("logGroupName", "pattern")]
    assert "'/ecs/ptest:frontend'" in found[0].message


def test_pattern_must_match_the_whole_value():
    # [\w+=,.@-]+ matches "ptest" inside "ptest task", but AWS matches the whole value.
    assert rules(check_params(op("iam", "CreateRole"), create_role(RoleName="ptest task"))) == [("RoleName", "pattern")]


def test_java_word_class_is_ascii_only():
    assert rules(check_params(op("iam", "CreateRole"), create_role(RoleName="rôle"))) == [("RoleName", "pattern")]


def test_tag_key_pattern_accepts_unicode_letters():
    params = create_role(Tags=tag_list(**{"Équipe plateforme": "données", "Project": "ptest"}))
    assert check_params(op("iam", "CreateRole"), params) == []


def test_tag_key_pattern_rejects_punctuation_outside_the_model_set():
    params = create_role(Tags=tag_list(**{"team!": "core"}))
    assert rules(check_params(op("iam", "CreateRole"), params)) == [("Tags[0].Key", "pattern")]


def test_map_keys_are_checked_against_their_pattern():
    params = {"logGroupName": "/ecs/ptest", "tags": {"bad!": "x", "Project": "ptest"}}
    assert rules(check_params(op("logs", "CreateLogGroup"), params)) == [("tags['bad!'](key)", "pattern")]


# --- lengths ----------------------------------------------------------------------------------

def test_max_length_violation_is_caught():
    found = check_params(op("iam", "CreateRole"), create_role(RoleName="r" * 65))
    assert rules(found) == [("RoleName", "max length")]
    assert "65" in found[0].message and "64" in found[0].message


def test_description_over_1000_characters_is_caught():
    assert rules(check_params(op("iam", "CreateRole"), create_role(Description="d" * 1001))) == [
        ("Description", "max length")]


def test_min_length_violation_is_caught():
    found = check_params(op("opensearch", "CreateDomain"), {"DomainName": "ab"})
    assert rules(found) == [("DomainName", "min length")]


def test_map_values_are_checked_for_length():
    params = {"logGroupName": "/ecs/ptest", "tags": {"Project": "v" * 257}}
    assert rules(check_params(op("logs", "CreateLogGroup"), params)) == [("tags['Project']", "max length")]


def test_list_length_is_checked():
    params = {"scrapeConfiguration": {"configurationBlob": b"x"}, "source": {"vpcConfiguration": {
        "securityGroupIds": ["sg-1"], "subnetIds": ["subnet-1"]}},
        "destination": {"ampConfiguration": {"workspaceArn": f"arn:aws:aps:{REGION}:{ACCOUNT}:workspace/ws-1"}}}
    exporter = {"openSearchConfiguration": {"domainArn": f"arn:aws:es:{REGION}:{ACCOUNT}:domain/ptest"}}
    params["exporters"] = [exporter, exporter]  # ExporterList allows at most 1
    assert rules(check_params(op("amp", "CreateScraper"), params)) == [("exporters", "max length")]


def test_blob_length_is_checked():
    found = check_params(op("secretsmanager", "CreateSecret"), {"Name": "ptest/blob", "SecretBinary": b""})
    assert rules(found) == [("SecretBinary", "min length")]


def test_sensitive_values_are_not_shown_in_messages():
    found = check_params(op("secretsmanager", "CreateSecret"), {"Name": "ptest/big", "SecretString": "s3cr3t" * 11000})
    assert rules(found) == [("SecretString", "max length")]
    assert "s3cr3t" not in found[0].message


# --- numeric ranges ---------------------------------------------------------------------------

def test_range_violation_is_caught():
    found = check_params(op("iam", "CreateRole"), create_role(MaxSessionDuration=600))
    assert rules(found) == [("MaxSessionDuration", "range")]
    assert "600" in found[0].message and "3600" in found[0].message


def test_nested_range_violation_is_caught():
    params = {"cluster": "ptest", "serviceName": "frontend", "taskDefinition": "ptest-frontend:1",
              "capacityProviderStrategy": [{"capacityProvider": "ptest-arm", "weight": 1001, "base": 0}]}
    assert rules(check_params(op("ecs", "CreateService"), params)) == [("capacityProviderStrategy[0].weight", "range")]


# --- required, unknown, types -----------------------------------------------------------------

def test_missing_required_member_is_caught():
    assert rules(check_params(op("iam", "CreateRole"), {"RoleName": "ptest-task"})) == [
        ("AssumeRolePolicyDocument", "required")]


def test_required_member_set_to_none_is_caught():
    assert rules(check_params(op("iam", "CreateRole"), create_role(AssumeRolePolicyDocument=None))) == [
        ("AssumeRolePolicyDocument", "required")]


def test_missing_nested_required_member_is_caught():
    params = {"family": "ptest", "containerDefinitions": [{"name": "app", "image": "nginx", "healthCheck": {"interval": 30}}]}
    assert rules(check_params(op("ecs", "RegisterTaskDefinition"), params)) == [
        ("containerDefinitions[0].healthCheck.command", "required")]


def test_unknown_member_is_caught():
    found = check_params(op("ec2", "CreateVpc"), {"CidrBlok": "10.0.0.0/16"})
    assert rules(found) == [("CidrBlok", "unknown member")]


def test_optional_member_set_to_none_is_a_type_violation():
    assert rules(check_params(op("ec2", "CreateVpc"), {"CidrBlock": "10.0.0.0/16", "InstanceTenancy": None})) == [
        ("InstanceTenancy", "type")]


def test_boolean_given_for_an_integer_is_a_type_violation():
    # botocore accepts it (bool is an int in Python); the wire would carry `true`.
    assert rules(check_params(op("iam", "CreateRole"), create_role(MaxSessionDuration=True))) == [
        ("MaxSessionDuration", "type")]


def test_integer_given_for_a_string_is_a_type_violation():
    params = {"family": "ptest", "cpu": 1024, "containerDefinitions": [{"name": "app", "image": "nginx"}]}
    assert rules(check_params(op("ecs", "RegisterTaskDefinition"), params)) == [("cpu", "type")]


def test_timestamps_accept_datetime_epoch_and_iso_strings():
    model = op("autoscaling", "PutScheduledUpdateGroupAction")
    base = {"AutoScalingGroupName": "ptest", "ScheduledActionName": "night"}
    for value in (datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc), 1893456000, "2030-01-01T00:00:00Z"):
        assert check_params(model, base | {"StartTime": value}) == []


def test_unparseable_timestamp_is_a_type_violation():
    model = op("autoscaling", "PutScheduledUpdateGroupAction")
    params = {"AutoScalingGroupName": "ptest", "ScheduledActionName": "night", "StartTime": "tomorrow morning"}
    assert rules(check_params(model, params)) == [("StartTime", "type")]


# --- tagged unions, documents, jsonvalue ------------------------------------------------------

def test_tagged_union_with_no_member_set_is_caught():
    params = {"family": "ptest", "containerDefinitions": [{"name": "app", "image": "nginx", "resourceRequirements": [
        {"type": "GPU", "value": "1", "sharingStrategy": {}}]}]}
    assert rules(check_params(op("ecs", "RegisterTaskDefinition"), params)) == [
        ("containerDefinitions[0].resourceRequirements[0].sharingStrategy", "union")]


def test_tagged_union_with_two_members_set_is_caught():
    params = {
        "scrapeConfiguration": {"configurationBlob": b"global:\n  scrape_interval: 30s\n"},
        "source": {
            "eksConfiguration": {"clusterArn": f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/ptest", "subnetIds": ["subnet-1"]},
            "vpcConfiguration": {"securityGroupIds": ["sg-1"], "subnetIds": ["subnet-1"]},
        },
        "destination": {"ampConfiguration": {"workspaceArn": f"arn:aws:aps:{REGION}:{ACCOUNT}:workspace/ws-1"}},
    }
    assert rules(check_params(op("amp", "CreateScraper"), params)) == [("source", "union")]


def test_document_members_are_not_checked():
    params = {"cluster": "ptest", "serviceName": "frontend", "taskDefinition": "ptest-frontend:1",
              "deploymentConfiguration": {"lifecycleHooks": [{
                  "hookTargetArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:hook",
                  "roleArn": f"arn:aws:iam::{ACCOUNT}:role/hook", "lifecycleStages": ["POST_SCALE_UP"],
                  "hookDetails": {"anything": [1, {"goes": None}], "here": True}}]}}
    assert check_params(op("ecs", "CreateService"), params) == []


def fake_operation(member_shape: dict, location: dict | None = None):
    """An operation of a one-member input, for model features no used service has."""
    model = ServiceModel({
        "metadata": {"protocol": "rest-json", "serviceId": "Fake", "endpointPrefix": "fake", "apiVersion": "2020-01-01",
                     "signatureVersion": "v4"},
        "operations": {"Op": {"name": "Op", "http": {"method": "POST", "requestUri": "/"}, "input": {"shape": "In"}}},
        "shapes": {"In": {"type": "structure", "members": {"Value": {"shape": "V", **(location or {})}}}, "V": member_shape},
    }, service_name="fake")
    return model.operation_model("Op")


def test_jsonvalue_header_accepts_any_json_value():
    model = fake_operation({"type": "string", "pattern": "[a-z]+"},
                           {"jsonvalue": True, "location": "header", "locationName": "X-Value"})
    assert check_params(model, {"Value": {"nested": ["json", 1]}}) == []


def test_untranslatable_pattern_is_recorded_not_passed():
    pattern = r"[^a-z&&[def]]+"  # valid Java; a negated class intersection is not translated
    model = fake_operation({"type": "string", "pattern": pattern})
    aws_shapes.UNCHECKED_PATTERNS.discard(("fake.Op", "Value", pattern))
    assert check_params(model, {"Value": "b"}) == []
    assert ("fake.Op", "Value", pattern) in aws_shapes.UNCHECKED_PATTERNS
    aws_shapes.UNCHECKED_PATTERNS.discard(("fake.Op", "Value", pattern))


# --- idempotency tokens and botocore's customizations -----------------------------------------

def test_absent_required_idempotency_token_is_not_a_violation():
    # LaunchInstances marks ClientToken required; botocore fills it in with a UUID4.
    params = {"AutoScalingGroupName": "ptest-arm", "RequestedCapacity": 1}
    assert check_params(op("autoscaling", "LaunchInstances"), params) == []


def test_given_idempotency_token_is_still_checked():
    params = {"Name": "ptest/x", "SecretString": "v", "ClientRequestToken": "too-short"}
    assert rules(check_params(op("secretsmanager", "CreateSecret"), params)) == [("ClientRequestToken", "min length")]


def test_uuid4_satisfies_every_idempotency_token_botocore_fills():
    token = str(uuid.uuid4())
    bad = []
    for name in SERVICES:
        for operation in service(name).operation_names:
            model = op(name, operation)
            for member in model.idempotent_members:
                found = [v for v in check_params(model, {member: token}) if v.path == member]
                bad += found
    assert bad == []


def test_user_data_is_checked_as_botocore_sends_it_base64_encoded():
    # XmlStringUserData allows 21847 characters: 20000 raw bytes encode to 26668.
    params = {"LaunchConfigurationName": "ptest", "ImageId": "ami-0123456789abcdef0", "InstanceType": "m7g.large",
              "UserData": "#!/bin/bash\n" + "x" * 19988}
    assert rules(check_params(op("autoscaling", "CreateLaunchConfiguration"), params)) == [("UserData", "max length")]


# --- full, correct requests -------------------------------------------------------------------

SERVER_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/temporal-dsql:1.26.2"


def test_realistic_task_definition_passes():
    params = {
        "family": "ptest-temporal-frontend",
        "taskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/ptest-task",
        "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/ptest-execution",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["EC2"],
        "cpu": "1024",
        "memory": "2048",
        "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
        "containerDefinitions": [{
            "name": "frontend",
            "image": SERVER_IMAGE,
            "essential": True,
            "cpu": 1024,
            "memory": 2048,
            "portMappings": [
                {"name": "grpc", "containerPort": 7233, "hostPort": 7233, "protocol": "tcp", "appProtocol": "grpc"},
                {"name": "membership", "containerPort": 6933, "protocol": "tcp"},
            ],
            "environment": [{"name": "SERVICES", "value": "frontend"}, {"name": "DB", "value": "dsql"}],
            "secrets": [{"name": "GRAFANA_ADMIN", "valueFrom": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:grafana/admin-AbCdEf"}],
            "healthCheck": {"command": ["CMD-SHELL", "temporal operator cluster health || exit 1"],
                            "interval": 30, "timeout": 5, "retries": 3, "startPeriod": 60},
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/ecs/ptest", "awslogs-region": REGION, "awslogs-stream-prefix": "frontend"}},
            "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
            "stopTimeout": 30,
        }],
        "tags": [{"key": "Project", "value": "ptest"}, {"key": "ProvisionKey", "value": "task-definition/frontend"}],
    }
    assert check_params(op("ecs", "RegisterTaskDefinition"), params) == []


def test_realistic_launch_template_passes():
    tags = tag_list(Project="ptest", ProvisionKey="launch-template/arm")
    params = {
        "LaunchTemplateName": "ptest-ecs-arm",
        "VersionDescription": "ECS container instances (Graviton)",
        "LaunchTemplateData": {
            "ImageId": "ami-0123456789abcdef0",
            "InstanceType": "m7g.large",
            "IamInstanceProfile": {"Arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/ptest-ecs"},
            "UserData": base64.b64encode(b"#!/bin/bash\necho ECS_CLUSTER=ptest >> /etc/ecs/ecs.config\n").decode(),
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {
                "VolumeSize": 50, "VolumeType": "gp3", "Iops": 3000, "Throughput": 125,
                "Encrypted": True, "DeleteOnTermination": True}}],
            "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2,
                                "HttpEndpoint": "enabled", "InstanceMetadataTags": "enabled"},
            "NetworkInterfaces": [{"DeviceIndex": 0, "AssociatePublicIpAddress": False,
                                   "Groups": ["sg-0123456789abcdef0"], "DeleteOnTermination": True}],
            "Monitoring": {"Enabled": True},
            "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}, {"ResourceType": "volume", "Tags": tags}],
        },
        "TagSpecifications": [{"ResourceType": "launch-template", "Tags": tags}],
    }
    assert check_params(op("ec2", "CreateLaunchTemplate"), params) == []


def test_role_policy_with_a_json_document_passes():
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/ecs/ptest:*"},
        {"Effect": "Allow", "Action": "dsql:DbConnectAdmin",
         "Resource": f"arn:aws:dsql:{REGION}:{ACCOUNT}:cluster/ptestdsqlcluster"},
    ]}
    params = {"RoleName": "ptest-task", "PolicyName": "ptest-task-inline", "PolicyDocument": json.dumps(document)}
    assert check_params(op("iam", "PutRolePolicy"), params) == []


def test_realistic_opensearch_domain_passes():
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "es:ESHttp*",
              "Resource": f"arn:aws:es:{REGION}:{ACCOUNT}:domain/ptest-visibility/*"}]}
    params = {
        "DomainName": "ptest-visibility",
        "EngineVersion": "OpenSearch_2.13",
        "ClusterConfig": {"InstanceType": "r6g.large.search", "InstanceCount": 2, "DedicatedMasterEnabled": False,
                          "ZoneAwarenessEnabled": True, "ZoneAwarenessConfig": {"AvailabilityZoneCount": 2}},
        "EBSOptions": {"EBSEnabled": True, "VolumeType": "gp3", "VolumeSize": 100, "Iops": 3000, "Throughput": 125},
        "VPCOptions": {"SubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                       "SecurityGroupIds": ["sg-0123456789abcdef0"]},
        "DomainEndpointOptions": {"EnforceHTTPS": True, "TLSSecurityPolicy": "Policy-Min-TLS-1-2-2019-07"},
        "EncryptionAtRestOptions": {"Enabled": True},
        "NodeToNodeEncryptionOptions": {"Enabled": True},
        "AccessPolicies": json.dumps(policy),
        "TagList": tag_list(Project="ptest", ProvisionKey="domain/visibility"),
    }
    assert check_params(op("opensearch", "CreateDomain"), params) == []


# --- Java pattern translation -----------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_every_input_pattern_of_the_used_services_compiles(engine):
    failures = [f for name in SERVICES for f in aws_shapes.survey_patterns(service(name), engine)]
    assert failures == []


@pytest.mark.parametrize("engine", ENGINES)
def test_escaped_surrogate_pairs_are_one_code_point(engine):
    # autoscaling's XmlString pattern: [\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\r\n\t]*
    pattern = compile_pattern(op("autoscaling", "CreateAutoScalingGroup").input_shape.members[
        "AutoScalingGroupName"].metadata["pattern"], engine)
    assert pattern.fullmatch("ptest-arm 🚀") and not pattern.fullmatch("ptest\x00")


@pytest.mark.parametrize("engine", ENGINES)
def test_dash_after_a_class_escape_is_a_literal(engine):
    assert compile_pattern(r"[\w-_]*", engine).fullmatch("ec2-instance_type")


@pytest.mark.parametrize("engine", ENGINES)
def test_posix_classes_are_ascii_only(engine):
    assert compile_pattern(r"\p{Print}+", engine).fullmatch("Scale-out policy #1")
    assert not compile_pattern(r"\p{Print}+", engine).fullmatch("politique été")
    assert compile_pattern(r"\p{Punct}+", engine).fullmatch("$+<=>^`|~")


@pytest.mark.parametrize("engine", ENGINES)
def test_unicode_properties_match_unicode_text(engine):
    pattern = compile_pattern(r"[\p{L}\p{Z}\p{N}_.:/=+\-@]+", engine)
    assert pattern.fullmatch("Équipe 日本 ٣") and not pattern.fullmatch("team!")


@pytest.mark.parametrize("engine", ENGINES)
def test_java_dot_does_not_match_line_terminators(engine):
    assert compile_pattern(".*", engine).fullmatch("one line") and not compile_pattern(".*", engine).fullmatch("two\nlines")


def test_class_intersection_is_translated():
    assert compile_pattern(r"[a-z&&[^aeiou]]+", "re").fullmatch("xyz")
    assert not compile_pattern(r"[a-z&&[^aeiou]]+", "re").fullmatch("xaz")


# --- the recorder -----------------------------------------------------------------------------

def test_recorder_counts_calls_and_collects_violations():
    recorder = RequestRecorder()
    recorder(params={"CidrBlock": "10.0.0.0/16"}, model=op("ec2", "CreateVpc"), context={})
    recorder(params={"RoleName": "r" * 65}, model=op("iam", "CreateRole"), context={})
    assert recorder.calls == 2
    assert [(v.operation, v.path, v.rule) for v in recorder.violations] == [
        ("iam.CreateRole", "AssumeRolePolicyDocument", "required"), ("iam.CreateRole", "RoleName", "max length")]


def test_recorder_never_replaces_the_params():
    assert RequestRecorder()(params={"CidrBlock": "10.0.0.0/16"}, model=op("ec2", "CreateVpc"), context={}) is None


def test_assert_clean_passes_without_violations():
    recorder = RequestRecorder()
    recorder(params={"CidrBlock": "10.0.0.0/16"}, model=op("ec2", "CreateVpc"), context={})
    recorder.assert_clean()


def test_assert_clean_lists_every_violation_grouped_by_operation():
    recorder = RequestRecorder()
    recorder(params={"InstanceTenancy": "shared-ish"}, model=op("ec2", "CreateVpc"), context={})
    recorder(params=create_role(RoleName="r" * 65), model=op("iam", "CreateRole"), context={})
    recorder(params={"CidrBlok": "10.0.0.0/16"}, model=op("ec2", "CreateVpc"), context={})
    with pytest.raises(AssertionError) as failure:
        recorder.assert_clean()
    lines = str(failure.value).splitlines()
    assert lines[0].startswith("3 request shape violation(s) in 3 call(s)")
    assert lines[1] == "ec2.CreateVpc:" and lines[2].startswith("  InstanceTenancy: enum:")
    assert lines[3].startswith("  CidrBlok: unknown member:")
    assert lines[4] == "iam.CreateRole:" and lines[5].startswith("  RoleName: max length:")


def stub_session() -> boto3.Session:
    return boto3.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


def test_registered_recorder_checks_calls_of_the_session_clients():
    session = stub_session()
    recorder = register(session)
    ec2 = session.client("ec2", endpoint_url="https://ec2.invalid")
    with Stubber(ec2) as stub:
        stub.add_response("create_vpc", {"Vpc": {"VpcId": "vpc-0123456789abcdef0"}})
        ec2.create_vpc(CidrBlock="10.0.0.0/16", InstanceTenancy="shared-ish")  # botocore lets it through
    assert recorder.calls == 1
    assert [(v.operation, v.path, v.rule) for v in recorder.violations] == [("ec2.CreateVpc", "InstanceTenancy", "enum")]


def test_clients_made_before_registration_are_not_checked():
    session = stub_session()
    ec2 = session.client("ec2", endpoint_url="https://ec2.invalid")
    recorder = register(session)
    with Stubber(ec2) as stub:
        stub.add_response("create_vpc", {"Vpc": {"VpcId": "vpc-0123456789abcdef0"}})
        ec2.create_vpc(CidrBlock="10.0.0.0/16")
    assert recorder.calls == 0
