"""IAM, security groups, log groups, the cluster and its Graviton capacity, read back from the emulator:
seed properties 7 and 8 and property 1 extended to instances, on one stack built for the module."""
from __future__ import annotations

import base64
import json

import boto3
import pytest

from provisioner import operations
from tests.conftest import (
    PROJECT,
    REGION,
    build_stack,
    new_aws,
)

# Independent statement of the port matrix (seed task 6, issue 3): group -> {(port, source group)}.
TEMPORAL = ("history", "matching", "frontend", "worker")
MEMBERSHIP = {"frontend": 6933, "history": 6934, "matching": 6935, "worker": 6939}
EXPECTED_INGRESS = {
    "history": {(6934, r) for r in TEMPORAL} | {(7234, r) for r in ("frontend", "matching", "worker", "history")} | {(9090, "collector")},
    "matching": {(6935, r) for r in TEMPORAL} | {(7235, r) for r in ("frontend", "history", "matching")} | {(9090, "collector")},
    "frontend": {(6933, r) for r in TEMPORAL} | {(7233, r) for r in ("ui", "worker", "history")} | {(9090, "collector")},
    "worker": {(6939, r) for r in TEMPORAL} | {(9090, "collector")},
    "ui": {(8080, "instances")},
    "grafana": {(3000, "instances")},
    # Matching queries visibility too (worker-versioning reachability).
    "opensearch": {(443, r) for r in ("history", "matching", "frontend", "worker", "schema")},
    "collector": set(),
    "instances": set(),
    "schema": set(),  # provision schema's one-off tasks: outbound only
}
# Actions AWS offers no resource scoping for: the only ones allowed a "*" resource.
UNSCOPABLE = {
    "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel", "logs:DescribeLogGroups",
    # What the collector's ecs_observer reads: no resource types (ListServices keeps an ecs:cluster condition).
    "ecs:ListServices", "ecs:DescribeTaskDefinition", "ec2:DescribeInstances",
    # AWS Backup's role: list actions have no resource type (Service Authorization Reference, Aurora DSQL),
    # as in AWSBackupServiceRolePolicyForBackup's DSQL statement.
    "dsql:ListClusters",
}
ROLE_SERVICE = {
    f"{PROJECT}-{REGION}-ecs-execution": "ecs-tasks.amazonaws.com",
    f"{PROJECT}-{REGION}-grafana-execution": "ecs-tasks.amazonaws.com",
    f"{PROJECT}-{REGION}-collector-execution": "ecs-tasks.amazonaws.com",
    f"{PROJECT}-{REGION}-collector-task": "ecs-tasks.amazonaws.com",
    f"{PROJECT}-{REGION}-temporal-task": "ecs-tasks.amazonaws.com",
    f"{PROJECT}-{REGION}-grafana-task": "ecs-tasks.amazonaws.com",
    f"{PROJECT}-{REGION}-ui-task": "ecs-tasks.amazonaws.com",
    f"{PROJECT}-{REGION}-schema-task": "ecs-tasks.amazonaws.com",
    f"{PROJECT}-{REGION}-ecs-instance": "ec2.amazonaws.com",
    f"{PROJECT}-{REGION}-backup-role": "backup.amazonaws.com",
}
ALLOWED_MANAGED = {
    f"{PROJECT}-{REGION}-ecs-execution": {"AmazonECSTaskExecutionRolePolicy"},
    f"{PROJECT}-{REGION}-grafana-execution": {"AmazonECSTaskExecutionRolePolicy"},
    f"{PROJECT}-{REGION}-collector-execution": {"AmazonECSTaskExecutionRolePolicy"},
    f"{PROJECT}-{REGION}-ecs-instance": {"AmazonEC2ContainerServiceforEC2Role", "AmazonSSMManagedInstanceCore"},
}


@pytest.fixture(scope="module")
def stack(moto_endpoint, tmp_path_factory):
    """One stack for every read-only property test in this module."""
    config, state_path, sent = build_stack(moto_endpoint, tmp_path_factory)
    return operations.outputs(config, new_aws(), state_path) | {"state_path": state_path, "sent": sent}


def client(service: str):
    return boto3.client(service, region_name=REGION)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def role_statements(role_name: str) -> list[dict]:
    iam = client("iam")
    statements = []
    for policy_name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        statements += iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]["Statement"]
    return statements


def test_property_7_iam_least_privilege(stack):
    iam = client("iam")
    roles = {r["RoleName"]: r for r in iam.list_roles(PathPrefix=f"/{PROJECT}/")["Roles"]}
    assert set(roles) == set(ROLE_SERVICE)
    for name, role in roles.items():
        trust = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
        assert [s["Principal"] for s in trust["Statement"]] == [{"Service": ROLE_SERVICE[name]}]
        assert all(s["Action"] == "sts:AssumeRole" for s in trust["Statement"])
        for statement in role_statements(name):
            actions = as_list(statement["Action"])
            assert all(a != "*" and not a.endswith(":*") for a in actions), (name, actions)
            if "*" in as_list(statement["Resource"]):
                assert set(actions) <= UNSCOPABLE, (name, actions)
        managed = {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}
        assert managed == ALLOWED_MANAGED.get(name, set())


def test_task_role_reaches_exactly_its_dsql_cluster_workspace_and_domain(stack):
    statements = {s["Sid"]: s for s in role_statements(f"{PROJECT}-{REGION}-temporal-task")}
    assert statements["DsqlConnect"]["Resource"] == stack["dsql_cluster_arn"]
    # The temporal-dsql plugin always connects as admin: only the admin token is needed.
    assert statements["DsqlConnect"]["Action"] == "dsql:DbConnectAdmin"
    assert statements["PrometheusRemoteWrite"]["Resource"] == stack["prometheus_workspace_arn"]
    domain = f"arn:aws:es:{REGION}:123456789012:domain/{PROJECT}-vis"
    assert sorted(statements["OpenSearchVisibility"]["Resource"]) == [domain, f"{domain}/*"]
    assert all(a.startswith("es:ESHttp") for a in statements["OpenSearchVisibility"]["Action"])


EXEC_ROLES = {f"{PROJECT}-{REGION}-temporal-task", f"{PROJECT}-{REGION}-grafana-task", f"{PROJECT}-{REGION}-ui-task", f"{PROJECT}-{REGION}-collector-task"}
TASK_ROLES = EXEC_ROLES | {f"{PROJECT}-{REGION}-schema-task"}


def sent_trust_policies(stack) -> dict[str, dict]:
    return {p["RoleName"]: json.loads(p["AssumeRolePolicyDocument"]) for p in stack["sent"].of("iam.CreateRole")}


def test_task_role_trust_policies_carry_the_conditions_aws_documents_for_task_roles(stack):
    """ECS developer guide, task-iam-roles.html: aws:SourceAccount, and aws:SourceArn with a wildcard cluster."""
    for name in TASK_ROLES:
        (statement,) = sent_trust_policies(stack)[name]["Statement"]
        assert statement["Condition"] == {
            "ArnLike": {"aws:SourceArn": f"arn:aws:ecs:{REGION}:123456789012:*"},
            "StringEquals": {"aws:SourceAccount": "123456789012"},
        }


def test_execution_and_instance_role_trust_policies_carry_no_undocumented_condition(stack):
    """AWS documents these trust policies with no condition: one the service never sends blocks the role."""
    trust = sent_trust_policies(stack)
    for name in (f"{PROJECT}-{REGION}-ecs-execution", f"{PROJECT}-{REGION}-ecs-instance"):
        (statement,) = trust[name]["Statement"]
        assert "Condition" not in statement, name


def test_every_exec_enabled_task_role_may_write_the_exec_session_log(stack):
    """ECS developer guide, ecs-exec.html: CreateLogStream, DescribeLogStreams and PutLogEvents on the
    log group, DescribeLogGroups on "*"."""
    exec_group = f"arn:aws:logs:{REGION}:123456789012:log-group:/ecs/{PROJECT}/exec:*"
    for params in stack["sent"].of("iam.PutRolePolicy"):
        if params["RoleName"] not in EXEC_ROLES:
            continue
        statements = {s["Sid"]: s for s in json.loads(params["PolicyDocument"])["Statement"]}
        assert sorted(statements["EcsExecSessionLog"]["Action"]) == [
            "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
        assert statements["EcsExecSessionLog"]["Resource"] == exec_group
        assert statements["EcsExecFindLogGroup"] == {
            "Sid": "EcsExecFindLogGroup", "Effect": "Allow", "Action": "logs:DescribeLogGroups", "Resource": "*"}


def test_the_ecs_and_opensearch_service_linked_roles_are_created_under_aws_names(stack):
    sent = sorted(p["AWSServiceName"] for p in stack["sent"].of("iam.CreateServiceLinkedRole"))
    assert sent == ["ecs.amazonaws.com", "opensearchservice.amazonaws.com"]
    iam = client("iam")
    for name in ("AWSServiceRoleForECS", "AWSServiceRoleForAmazonOpenSearchService"):
        assert iam.get_role(RoleName=name)["Role"]["Path"].startswith("/aws-service-role/")
    # Both exist before the first call that needs them.
    order = [name for name, _ in stack["sent"].sent]
    last_role = max(i for i, name in enumerate(order) if name == "iam.CreateServiceLinkedRole")
    assert last_role < order.index("opensearch.CreateDomain") and last_role < order.index("ecs.CreateCluster")


def test_only_grafanas_execution_role_reads_the_grafana_secret(stack):
    assert role_statements(f"{PROJECT}-{REGION}-ecs-execution") == []
    readers = [name for name in ROLE_SERVICE if any(
        s["Action"] == "secretsmanager:GetSecretValue" for s in role_statements(name))]
    assert readers == [f"{PROJECT}-{REGION}-grafana-execution"]
    (read,) = [s for s in role_statements(f"{PROJECT}-{REGION}-grafana-execution") if s["Sid"] == "ReadGrafanaSecret"]
    assert read["Resource"] == stack["grafana_secret_arn"]


def test_instance_profile_holds_the_instance_role(stack):
    profile = client("iam").get_instance_profile(InstanceProfileName=f"{PROJECT}-{REGION}-ecs-instance-profile")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [f"{PROJECT}-{REGION}-ecs-instance"]


def test_property_8_security_group_isolation(stack):
    ec2 = client("ec2")
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [stack["vpc_id"]]}])["SecurityGroups"]
    for group in groups:
        for rule in group["IpPermissions"]:
            assert all(r["CidrIp"] != "0.0.0.0/0" for r in rule.get("IpRanges", []))
            assert all(r["CidrIpv6"] != "::/0" for r in rule.get("Ipv6Ranges", []))
    by_id = stack["security_groups"]
    names = {group_id: name for name, group_id in by_id.items()}
    actual = {}
    for group in groups:
        if group["GroupId"] not in names:
            continue
        rules = set()
        for rule in group["IpPermissions"]:
            assert not rule.get("IpRanges") and not rule.get("Ipv6Ranges"), group["GroupName"]
            assert rule["IpProtocol"] == "tcp" and rule["FromPort"] == rule["ToPort"]
            assert rule["UserIdGroupPairs"], group["GroupName"]
            rules |= {(rule["FromPort"], names[p["GroupId"]]) for p in rule["UserIdGroupPairs"]}
        actual[names[group["GroupId"]]] = rules
    assert actual == EXPECTED_INGRESS


def test_property_1_launch_templates_give_no_public_ip_and_require_imdsv2(stack):
    ec2 = client("ec2")
    ami = client("ssm").get_parameter(
        Name="/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id"
    )["Parameter"]["Value"]
    templates = ec2.describe_launch_templates(Filters=[{"Name": "tag:Project", "Values": [PROJECT]}])["LaunchTemplates"]
    assert len(templates) == 3
    workloads = set()
    for template in templates:
        data = ec2.describe_launch_template_versions(
            LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Latest"]
        )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        assert data["ImageId"] == ami
        assert [n["AssociatePublicIpAddress"] for n in data["NetworkInterfaces"]] == [False]
        assert data["NetworkInterfaces"][0]["Groups"] == [stack["security_groups"]["instances"]]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
        (volume,) = data["BlockDeviceMappings"]
        assert volume["Ebs"]["Encrypted"] is True and volume["Ebs"]["VolumeType"] == "gp3"
        script = base64.b64decode(data["UserData"]).decode()
        assert f"ECS_CLUSTER={stack['cluster_name']}" in script
        assert "ECS_AWSVPC_BLOCK_IMDS=true" in script
        attributes = json.loads(next(line for line in script.splitlines() if line.startswith("ECS_INSTANCE_ATTRIBUTES=")).split("=", 1)[1])
        workloads.add(attributes["workload"])
        arch = ec2.describe_instance_types(InstanceTypes=[data["InstanceType"]])["InstanceTypes"][0]
        assert arch["ProcessorInfo"]["SupportedArchitectures"] == ["arm64"]
    assert workloads == {"history", "frontend", "worker"}


def test_instances_run_in_private_subnets_without_public_ips(stack):
    groups = client("autoscaling").describe_auto_scaling_groups(
        Filters=[{"Name": "tag:Project", "Values": [PROJECT]}]
    )["AutoScalingGroups"]
    assert len(groups) == 3
    for group in groups:
        assert set(group["VPCZoneIdentifier"].split(",")) == set(stack["private_subnet_ids"])
    reservations = client("ec2").describe_instances(Filters=[{"Name": "tag:Project", "Values": [PROJECT]}])["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    assert instances
    assert all(not i.get("PublicIpAddress") for i in instances)


def test_cluster_has_insights_exec_logging_service_connect_and_capacity(stack):
    ecs = client("ecs")
    (cluster,) = ecs.describe_clusters(clusters=[stack["cluster_arn"]], include=["CONFIGURATIONS", "SETTINGS"])["clusters"]
    assert {"name": "containerInsights", "value": "enabled"} in cluster["settings"]
    exec_config = cluster["configuration"]["executeCommandConfiguration"]
    assert exec_config["logging"] == "OVERRIDE"
    assert exec_config["logConfiguration"]["cloudWatchLogGroupName"] == stack["log_groups"]["exec"]
    namespace = client("servicediscovery").list_namespaces()["Namespaces"]
    assert cluster["serviceConnectDefaults"]["namespace"] in [n["Arn"] for n in namespace]
    assert sorted(cluster["capacityProviders"]) == sorted(stack["capacity_providers"])
    providers = ecs.describe_capacity_providers(capacityProviders=stack["capacity_providers"])["capacityProviders"]
    asg_arns = {g["AutoScalingGroupARN"] for g in client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]}
    for provider in providers:
        assert provider["autoScalingGroupProvider"]["managedScaling"]["status"] == "ENABLED"
        assert provider["autoScalingGroupProvider"]["autoScalingGroupArn"] in asg_arns


def test_one_log_group_per_service_with_configured_retention(stack):
    groups = client("logs").describe_log_groups(logGroupNamePrefix=f"/ecs/{PROJECT}/")["logGroups"]
    names = {g["logGroupName"].rsplit("/", 1)[-1]: g for g in groups}
    assert set(names) == {"history", "matching", "frontend", "worker", "ui", "grafana", "adot", "exec", "schema"}
    assert {g["retentionInDays"] for g in groups} == {30}


def test_property_9_opensearch_is_a_private_encrypted_single_node(stack):
    search = client("opensearch")
    domain = search.describe_domain(DomainName=stack["opensearch_domain"])["DomainStatus"]
    assert domain["ClusterConfig"]["InstanceType"] == "t3.small.search"
    assert domain["ClusterConfig"]["InstanceCount"] == 1
    assert domain["EBSOptions"] == {"EBSEnabled": True, "VolumeType": "gp3", "VolumeSize": 10} | {
        k: v for k, v in domain["EBSOptions"].items() if k not in ("EBSEnabled", "VolumeType", "VolumeSize")}
    assert domain["VPCOptions"]["SubnetIds"][0] in stack["private_subnet_ids"]
    assert domain["VPCOptions"]["SecurityGroupIds"] == [stack["security_groups"]["opensearch"]]
    assert domain["EncryptionAtRestOptions"]["Enabled"] and domain["NodeToNodeEncryptionOptions"]["Enabled"]
    assert domain["DomainEndpointOptions"]["EnforceHTTPS"]
    assert domain["DomainEndpointOptions"]["TLSSecurityPolicy"] == "Policy-Min-TLS-1-2-2019-07"
    (statement,) = json.loads(domain["AccessPolicies"])["Statement"]
    # Only the server's task role and the schema task's role may call the domain.
    assert statement["Principal"] == {"AWS": [stack["temporal_task_arn"], stack["schema_task_arn"]]}
    assert stack["opensearch_endpoint"].startswith("https://")


def test_no_secret_value_reaches_the_state(stack):
    stored = json.loads(client("secretsmanager").get_secret_value(SecretId="grafana/admin")["SecretString"])
    assert stored["admin_password"] not in stack["state_path"].read_text()
