"""The embedded emulator: its patches answer as AWS does, and the background server starts and stops."""
from __future__ import annotations

import json
import urllib.request
from contextlib import contextmanager

import boto3
import botocore.config
from typer.testing import CliRunner

from provisioner.cli import app as cli
from provisioner.emulator import server as emulator
from tests.conftest import REGION, free_port


def tagged(resource_type: str, project: str) -> list[dict]:
    return [{"ResourceType": resource_type, "Tags": [{"Key": "Project", "Value": project}]}]


def test_nat_gateways_are_filtered_by_tag(endpoint):
    ec2 = boto3.client("ec2", region_name=REGION)
    for project in ("alpha", "beta"):
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
        eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
        ec2.create_nat_gateway(SubnetId=subnet, AllocationId=eip, TagSpecifications=tagged("natgateway", project))
    found = ec2.describe_nat_gateways(Filter=[{"Name": "tag:Project", "Values": ["alpha"]}])["NatGateways"]
    assert [{t["Key"]: t["Value"] for t in n["Tags"]}["Project"] for n in found] == ["alpha"]
    assert len(ec2.describe_nat_gateways(Filter=[{"Name": "tag-key", "Values": ["Nope"]}])["NatGateways"]) == 0


def test_a_deleted_nat_gateway_frees_its_elastic_ip(endpoint):
    """AWS: "Deleting a public NAT gateway disassociates its Elastic IP address" (EC2 API reference, DeleteNatGateway)."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=eip)["NatGateway"]["NatGatewayId"]
    ec2.delete_nat_gateway(NatGatewayId=nat)
    assert "AssociationId" not in ec2.describe_addresses(AllocationIds=[eip])["Addresses"][0]
    assert ec2.create_nat_gateway(SubnetId=subnet, AllocationId=eip)["NatGateway"]["State"] == "available"


def test_background_emulator_starts_serves_and_stops(tmp_path, monkeypatch):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    info = emulator.start(tmp_path, port)
    try:
        assert emulator.running(tmp_path)["pid"] == info["pid"]
        env = emulator.environment(info, REGION)
        client = boto3.client(
            "ec2", region_name=REGION, endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        assert client.describe_availability_zones()["AvailabilityZones"]
        assert emulator.start(tmp_path, port)["pid"] == info["pid"]
    finally:
        assert emulator.stop(tmp_path)
    assert emulator.running(tmp_path) is None
    assert not emulator.stop(tmp_path)


def test_capacity_providers_are_listed_without_names(endpoint):
    ecs = boto3.client("ecs", region_name=REGION)
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    template = ec2.create_launch_template(LaunchTemplateName="t", LaunchTemplateData={"InstanceType": "t4g.micro"})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="g", MinSize=0, MaxSize=1, AvailabilityZones=[f"{REGION}a"],
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"]},
    )
    arn = autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"][0]["AutoScalingGroupARN"]
    ecs.create_capacity_provider(name="cp-one", autoScalingGroupProvider={"autoScalingGroupArn": arn})
    assert "cp-one" in [p["name"] for p in ecs.describe_capacity_providers()["capacityProviders"]]


def test_launch_template_with_user_data_launches_and_keeps_its_own_tags_apart(endpoint):
    ec2 = boto3.client("ec2", region_name=REGION)
    data = {"InstanceType": "t4g.micro", "UserData": "IyEvYmluL2Jhc2gK",
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "k", "Value": "v"}]}]}
    template = ec2.create_launch_template(
        LaunchTemplateName="ud", LaunchTemplateData=data, TagSpecifications=tagged("launch-template", "alpha"),
    )["LaunchTemplate"]
    (version,) = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])["LaunchTemplateVersions"]
    assert version["LaunchTemplateData"]["TagSpecifications"] == data["TagSpecifications"]
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="ud", MinSize=1, MaxSize=1, DesiredCapacity=1, AvailabilityZones=[f"{REGION}a"],
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "$Latest"},
    )
    assert len(autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["ud"])["AutoScalingGroups"][0]["Instances"]) == 1


def test_services_keep_what_create_service_was_given(endpoint):
    ec2 = boto3.client("ec2", region_name=REGION)
    ecs = boto3.client("ecs", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
    ecs.create_cluster(clusterName="c")
    definition = ecs.register_task_definition(
        family="f", networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[{"name": "a", "image": "a:1", "portMappings": [{"name": "grpc", "containerPort": 7233}]}],
    )["taskDefinition"]["taskDefinitionArn"]
    connect = {"enabled": True, "namespace": "arn:aws:servicediscovery:eu-west-1:123456789012:namespace/ns-1",
               "services": [{"portName": "grpc", "discoveryName": "a", "clientAliases": [{"port": 7233, "dnsName": "a"}]}]}
    sent = {
        "capacityProviderStrategy": [{"capacityProvider": "cp", "weight": 1, "base": 0}],
        "enableExecuteCommand": True,
        "placementConstraints": [{"type": "memberOf", "expression": "attribute:workload == a"}],
        "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    }
    ecs.create_service(
        cluster="c", serviceName="s", taskDefinition=definition, desiredCount=0, serviceConnectConfiguration=connect,
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}}, **sent,
    )
    (service,) = ecs.describe_services(cluster="c", services=["s"])["services"]
    assert {k: service[k] for k in sent} == sent
    assert "launchType" not in service
    assert service["deployments"][0]["serviceConnectConfiguration"] == connect
    ecs.update_service(cluster="c", service="s", desiredCount=2, serviceConnectConfiguration=connect | {"services": []})
    (service,) = ecs.describe_services(cluster="c", services=["s"])["services"]
    (deployment,) = service["deployments"]
    assert deployment["serviceConnectConfiguration"]["services"] == []
    assert deployment["desiredCount"] == deployment["runningCount"] == service["runningCount"] == 2


def test_service_linked_roles_get_the_names_aws_gives_them(endpoint):
    iam = boto3.client("iam", region_name=REGION)
    created = {iam.create_service_linked_role(AWSServiceName=s)["Role"]["RoleName"]
               for s in ("ecs.amazonaws.com", "opensearchservice.amazonaws.com")}
    assert created == {"AWSServiceRoleForECS", "AWSServiceRoleForAmazonOpenSearchService"}


def test_dsql_endpoints_have_the_shapes_aws_documents(endpoint):
    dsql = boto3.client("dsql", region_name=REGION)
    cluster = dsql.create_cluster()
    identifier = cluster["identifier"]
    assert dsql.get_cluster(identifier=identifier)["endpoint"] == f"{identifier}.dsql.{REGION}.on.aws"
    service = dsql.get_vpc_endpoint_service_name(identifier=identifier)
    suffix = service["serviceName"].rsplit(".", 1)[-1]
    assert suffix.startswith("dsql-") and service["clusterVpcEndpoint"] == f"{identifier}.{suffix}.{REGION}.on.aws"


def ecs_ready_cluster(ec2, user_data: str) -> tuple[str, str, str]:
    """An ECS cluster, an Auto Scaling group whose user data joins it, and a network for awsvpc tasks."""
    import base64

    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
    boto3.client("ecs", region_name=REGION).create_cluster(clusterName="c")
    template = ec2.create_launch_template(LaunchTemplateName="lt", LaunchTemplateData={
        "ImageId": "ami-12c6146b", "InstanceType": "m7g.xlarge", "UserData": base64.b64encode(user_data.encode()).decode(),
    })["LaunchTemplate"]["LaunchTemplateId"]
    boto3.client("autoscaling", region_name=REGION).create_auto_scaling_group(
        AutoScalingGroupName="a", LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
        MinSize=1, MaxSize=1, DesiredCapacity=1, VPCZoneIdentifier=subnet)
    return vpc, subnet, group


def test_auto_scaling_instances_join_the_cluster_in_their_user_data_and_leave_when_gone(endpoint):
    from provisioner.steps.node_groups import user_data

    ec2 = boto3.client("ec2", region_name=REGION)
    ecs = boto3.client("ecs", region_name=REGION)
    ecs_ready_cluster(ec2, user_data("c", "worker"))
    (arn,) = ecs.list_container_instances(cluster="c")["containerInstanceArns"]
    (instance,) = ecs.describe_container_instances(cluster="c", containerInstances=[arn])["containerInstances"]
    attributes = {a["name"]: a.get("value") for a in instance["attributes"]}
    assert attributes["workload"] == "worker" and attributes["ecs.instance-type"] == "m7g.xlarge"
    room = {r["name"]: r["integerValue"] for r in instance["registeredResources"] if r["name"] in ("CPU", "MEMORY")}
    assert room == {"CPU": 4096, "MEMORY": 16384}
    boto3.client("autoscaling", region_name=REGION).delete_auto_scaling_group(AutoScalingGroupName="a", ForceDelete=True)
    assert ecs.list_container_instances(cluster="c")["containerInstanceArns"] == []


def test_one_off_tasks_stop_with_an_exit_code_a_reason_and_their_log(endpoint, monkeypatch):
    from provisioner.steps.node_groups import user_data

    ec2 = boto3.client("ec2", region_name=REGION)
    ecs = boto3.client("ecs", region_name=REGION)
    logs = boto3.client("logs", region_name=REGION)
    _, subnet, group = ecs_ready_cluster(ec2, user_data("c", "worker"))
    logs.create_log_group(logGroupName="/g")
    ecs.register_task_definition(
        family="job", networkMode="awsvpc", cpu="256", memory="512", requiresCompatibilities=["EC2"],
        containerDefinitions=[{"name": "job", "image": "tools:1", "command": ["echo one"], "logConfiguration": {
            "logDriver": "awslogs", "options": {"awslogs-group": "/g", "awslogs-region": REGION, "awslogs-stream-prefix": "p"}}}])
    (task,) = ecs.run_task(cluster="c", taskDefinition="job", networkConfiguration={
        "awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}})["tasks"]
    for _ in range(10):
        (task,) = ecs.describe_tasks(cluster="c", tasks=[task["taskArn"]])["tasks"]
        if task["lastStatus"] == "STOPPED":
            break
    assert task["lastStatus"] == "STOPPED" and task["stoppedReason"] == "Essential container in task exited"
    assert [c["exitCode"] for c in task["containers"]] == [0]
    stream = f"p/job/{task['taskArn'].rsplit('/', 1)[-1]}"
    lines = [e["message"] for e in logs.get_log_events(logGroupName="/g", logStreamName=stream)["events"]]
    assert lines[-1] == "[emulator] done" and "[emulator] would run: echo one" in lines


def test_services_run_tasks_found_by_service_on_their_nodes_and_stop_them_on_scale_down(endpoint):
    from provisioner.steps.node_groups import user_data

    ec2 = boto3.client("ec2", region_name=REGION)
    ecs = boto3.client("ecs", region_name=REGION)
    _, subnet, group = ecs_ready_cluster(ec2, user_data("c", "frontend"))
    ecs.register_task_definition(family="ui", networkMode="awsvpc", cpu="256", memory="512",
                                 containerDefinitions=[{"name": "ui", "image": "ui:1"}])
    ecs.create_service(
        cluster="c", serviceName="ui", taskDefinition="ui", desiredCount=0,
        placementConstraints=[{"type": "memberOf", "expression": "attribute:workload == frontend"}],
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}})
    ecs.update_service(cluster="c", service="ui", desiredCount=2)
    (instance,) = ecs.list_container_instances(cluster="c")["containerInstanceArns"]
    arns = ecs.list_tasks(cluster="c", serviceName="ui")["taskArns"]
    tasks = ecs.describe_tasks(cluster="c", tasks=arns)["tasks"]
    assert len(tasks) == 2 and {t["lastStatus"] for t in tasks} == {"RUNNING"}
    assert {t["group"] for t in tasks} == {"service:ui"} and {t["containerInstanceArn"] for t in tasks} == {instance}
    assert ecs.list_tasks(cluster="c", serviceName="other")["taskArns"] == []
    ecs.update_service(cluster="c", service="ui", desiredCount=1)
    assert len(ecs.list_tasks(cluster="c", serviceName="ui")["taskArns"]) == 1
    ecs.update_service(cluster="c", service="ui", desiredCount=0)
    assert ecs.list_tasks(cluster="c", serviceName="ui")["taskArns"] == []


def test_service_tasks_carry_ecs_exec_write_their_log_and_stop_with_a_code_on_scale_in(endpoint):
    from provisioner.steps.node_groups import user_data

    ec2 = boto3.client("ec2", region_name=REGION)
    ecs = boto3.client("ecs", region_name=REGION)
    logs = boto3.client("logs", region_name=REGION)
    _, subnet, group = ecs_ready_cluster(ec2, user_data("c", "frontend"))
    logs.create_log_group(logGroupName="/g")
    ecs.register_task_definition(
        family="ui", networkMode="awsvpc", cpu="256", memory="512", containerDefinitions=[{
            "name": "ui", "image": "ui:1", "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/g", "awslogs-region": REGION, "awslogs-stream-prefix": "p"}}}])
    ecs.create_service(
        cluster="c", serviceName="ui", taskDefinition="ui", desiredCount=0, enableExecuteCommand=True,
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}})
    ecs.update_service(cluster="c", service="ui", desiredCount=2)
    first, second = ecs.describe_tasks(cluster="c", tasks=ecs.list_tasks(cluster="c", serviceName="ui")["taskArns"])["tasks"]
    assert first["enableExecuteCommand"] is True
    assert [(a["name"], a["lastStatus"]) for a in first["containers"][0]["managedAgents"]] == [("ExecuteCommandAgent", "RUNNING")]
    stream = f"p/ui/{first['taskArn'].rsplit('/', 1)[-1]}"
    assert logs.get_log_events(logGroupName="/g", logStreamName=stream)["events"][0]["message"] == "[emulator] ui started from ui:1"
    ecs.update_service(cluster="c", service="ui", desiredCount=1)
    (stopped,) = ecs.describe_tasks(cluster="c", tasks=ecs.list_tasks(
        cluster="c", serviceName="ui", desiredStatus="STOPPED")["taskArns"])["tasks"]
    assert (stopped["stopCode"], stopped["stoppedReason"]) == ("ServiceSchedulerInitiated",
                                                              "Scaling activity initiated by (deployment ecs-svc)")
    assert [(c["lastStatus"], c["exitCode"]) for c in stopped["containers"]] == [("STOPPED", 0)]


def test_ecs_lists_the_effective_trunking_setting_and_sets_the_account_default(endpoint):
    ecs = boto3.client("ecs", region_name=REGION)

    def effective() -> list[dict]:
        return ecs.list_account_settings(name="awsvpcTrunking", effectiveSettings=True)["settings"]

    assert [(s["name"], s["value"]) for s in effective()] == [("awsvpcTrunking", "disabled")]
    assert ecs.list_account_settings(name="awsvpcTrunking")["settings"] == []  # nothing set for the caller
    setting = ecs.put_account_setting_default(name="awsvpcTrunking", value="enabled")["setting"]
    assert (setting["name"], setting["value"]) == ("awsvpcTrunking", "enabled")
    assert [(s["name"], s["value"]) for s in effective()] == [("awsvpcTrunking", "enabled")]


def test_ecs_keeps_account_settings_per_principal_beside_the_account_default(endpoint):
    ecs = boto3.client("ecs", region_name=REGION)
    role = "arn:aws:iam::123456789012:role/ptest/node"

    def effective(**principal) -> list[tuple[str, str]]:
        settings = ecs.list_account_settings(name="awsvpcTrunking", effectiveSettings=True, **principal)["settings"]
        return [(s["name"], s["value"]) for s in settings]

    ecs.put_account_setting(name="awsvpcTrunking", value="enabled")  # the caller's own setting
    assert effective() == [("awsvpcTrunking", "enabled")]
    assert effective(principalArn=role) == [("awsvpcTrunking", "disabled")]  # the role still gets the default
    assert ecs.list_account_settings(name="awsvpcTrunking", principalArn=role)["settings"] == []
    ecs.put_account_setting_default(name="awsvpcTrunking", value="enabled")
    assert effective(principalArn=role) == [("awsvpcTrunking", "enabled")]
    assert effective(principalArn="arn:aws:iam::123456789012:root") == [("awsvpcTrunking", "enabled")]
    ecs.put_account_setting(name="awsvpcTrunking", value="disabled", principalArn=role)
    (own,) = ecs.list_account_settings(name="awsvpcTrunking", effectiveSettings=True, principalArn=role)["settings"]
    assert (own["value"], own["principalArn"]) == ("disabled", role)


def test_every_call_waits_the_configured_latency_and_calls_wait_side_by_side(endpoint, tmp_path, monkeypatch):
    """A lower bound, not a timing: a sleep never ends early. Ten calls at once take far less than ten
    delays, so concurrent calls are not queued behind each other."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from provisioner.emulator.patches import LATENCY_SETTING
    from tests.conftest import own_emulator

    with own_emulator(tmp_path / "slow", monkeypatch, **{LATENCY_SETTING: "400"}):
        sts = boto3.client("sts", region_name=REGION, config=botocore.config.Config(max_pool_connections=10))
        started = time.perf_counter()
        sts.get_caller_identity()
        assert time.perf_counter() - started >= 0.4
        started = time.perf_counter()
        with ThreadPoolExecutor(10) as pool:
            list(pool.map(lambda _: sts.get_caller_identity(), range(10)))
        assert time.perf_counter() - started < 10 * 0.4


def test_stop_returns_once_the_process_is_gone_and_its_port_is_free(tmp_path):
    port = free_port()
    info = emulator.start(tmp_path, port)
    assert emulator.stop(tmp_path)
    assert not emulator._is_our_emulator(info["pid"], port) and not emulator._port_taken(port)
    again = emulator.start(tmp_path, port)  # at once: the port is free
    try:
        assert again["pid"] != info["pid"]
    finally:
        assert emulator.stop(tmp_path)


def test_stop_from_another_directory_names_where_the_emulator_runs_and_stops_it_by_port(tmp_path, monkeypatch):
    started_in, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    started_in.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(started_in)
    port = free_port()
    info = emulator.start(emulator_dir := started_in / ".provision", port)
    try:
        monkeypatch.chdir(elsewhere)
        result = CliRunner().invoke(cli, ["emulator", "stop"])
        assert result.exit_code == 0, result.output
        assert "The emulator was not running here." in result.output
        assert (f"One runs at http://127.0.0.1:{port} (pid {info['pid']}), started in {started_in}: stop it there, "
                f"or with 'provision emulator stop --port {port}'.") in result.output
        assert emulator.running(emulator_dir)  # told where it is, not stopped

        result = CliRunner().invoke(cli, ["emulator", "stop", "--port", str(port)])
        assert result.exit_code == 0, result.output
        assert f"Emulator on port {port} stopped." in result.output
        assert not emulator._port_taken(port) and not (emulator_dir / "emulator.json").exists()
    finally:
        emulator.stop(emulator_dir)


def standalone_task(ecs, cluster: str) -> tuple[str, str]:
    """A one-off task on a container instance registered for it: (task ARN, instance ID)."""
    ec2 = boto3.client("ec2", region_name=REGION)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t4g.small")["Instances"][0]
    ecs.register_container_instance(cluster=cluster, instanceIdentityDocument=json.dumps({"instanceId": instance["InstanceId"]}))
    ecs.register_task_definition(family="one-off", containerDefinitions=[{"name": "c", "image": "i", "memory": 128}])
    return ecs.run_task(cluster=cluster, taskDefinition="one-off")["tasks"][0]["taskArn"], instance["InstanceId"]


def test_an_ecs_cluster_with_a_running_task_is_not_deleted_and_a_task_stops_after_its_instance_left(endpoint):
    """AWS: DeleteCluster raises ClusterContainsTasksException while tasks are active; StopTask stops a task
    whatever became of its instance."""
    ecs = boto3.client("ecs", region_name=REGION)
    ecs.create_cluster(clusterName="held")
    with moto_transition(endpoint, "ecs::task", {"progression": "manual", "times": 1000}):
        task, instance = standalone_task(ecs, "held")
        try:
            ecs.delete_cluster(cluster="held")
            raise AssertionError("a cluster with a running task was deleted")
        except ecs.exceptions.ClusterContainsTasksException:
            pass
        # The instance goes, and leaves the cluster (the ecs_agent_registration patch); its task is still there.
        boto3.client("ec2", region_name=REGION).terminate_instances(InstanceIds=[instance])
        assert ecs.list_container_instances(cluster="held")["containerInstanceArns"] == []
        assert ecs.stop_task(cluster="held", task=task)["task"]["lastStatus"] == "STOPPED"
    assert ecs.delete_cluster(cluster="held")["cluster"]["status"] == "INACTIVE"


@contextmanager
def moto_transition(endpoint: str, model: str, transition: dict):
    def post(action: str, body: dict) -> None:
        request = urllib.request.Request(f"{endpoint}/moto-api/state-manager/{action}", data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request).close()

    post("set-transition", {"model_name": model, "transition": transition})
    try:
        yield
    finally:
        post("unset-transition", {"model_name": model})


def test_a_reset_empties_the_account_and_keeps_aws_managed_policies(endpoint):
    from tests.conftest import reset_account

    iam = boto3.client("iam", region_name=REGION)
    iam.create_role(RoleName="made-before-reset", AssumeRolePolicyDocument="{}")
    reset_account(endpoint)
    assert [role["RoleName"] for role in iam.list_roles()["Roles"]] == []
    managed = iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
    assert managed["Policy"]["PolicyName"] == "AmazonECSTaskExecutionRolePolicy"


def emulator_in_this_process(monkeypatch):
    """moto with the patches, in this process: to see what its backends do, which the server cannot show."""
    from provisioner.emulator import patches

    for name, value in emulator.MOTO_SETTINGS.items():
        monkeypatch.setenv(name, value)
    patches.apply()
    from moto.core.base_backend import BackendDict
    from moto.iam.models import IAMBackend, iam_backends

    built: list[str] = []
    original = IAMBackend.__init__

    def counting(self, region_name, account_id):
        built.append(region_name)
        original(self, region_name, account_id)

    monkeypatch.setattr(IAMBackend, "__init__", counting)
    BackendDict.reset()
    return iam_backends, built


def test_a_reset_builds_nothing_and_the_next_call_builds_afresh(monkeypatch):
    from moto.core.base_backend import BackendDict

    iam_backends, built = emulator_in_this_process(monkeypatch)
    iam_backends["123456789012"]["aws"].create_role("old", "{}", "/", None, "", [], None)
    built.clear()
    BackendDict.reset()
    assert built == [] and not iam_backends
    assert iam_backends["123456789012"]["aws"].roles == {}
    assert built == ["aws"]


def test_finding_a_requests_account_builds_no_iam_partition(monkeypatch):
    iam_backends, built = emulator_in_this_process(monkeypatch)
    # Imported once patched, as moto's responses import it at each request.
    from moto.iam.models import get_account_id_from
    user = iam_backends["210987654321"]["aws"].create_user("global", "alice", "/", None)
    key = iam_backends["210987654321"]["aws"].create_access_key(user.name)
    built.clear()
    assert get_account_id_from(key.access_key_id) == "210987654321"
    assert get_account_id_from("AKIANOBODYSKEY000000") == "123456789012"
    assert built == [] and list(iam_backends["210987654321"]) == ["aws"]


def test_each_iam_backend_has_its_own_managed_policies_from_one_table(monkeypatch):
    iam_backends, _ = emulator_in_this_process(monkeypatch)
    first, second = iam_backends["123456789012"]["aws"], iam_backends["210987654321"]["aws"]
    arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    assert len(first.aws_managed_policies) > 1000
    mine, theirs = first.managed_policies[arn], second.managed_policies[arn]
    assert mine is not theirs and mine.versions[0].document == theirs.versions[0].document
    mine.attachment_count += 1
    assert theirs.attachment_count == 0


def test_deregistering_a_scalable_target_deletes_its_policies_and_their_alarms(endpoint):
    ecs = boto3.client("ecs", region_name=REGION)
    scaling = boto3.client("application-autoscaling", region_name=REGION)
    ecs.create_cluster(clusterName="c")
    definition = ecs.register_task_definition(
        family="f", containerDefinitions=[{"name": "a", "image": "a:1", "memory": 128}])["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster="c", serviceName="s", taskDefinition=definition, desiredCount=1)
    target = {"ServiceNamespace": "ecs", "ResourceId": "service/c/s", "ScalableDimension": "ecs:service:DesiredCount"}
    scaling.register_scalable_target(**target, MinCapacity=1, MaxCapacity=3)
    scaling.put_scaling_policy(PolicyName="cpu", **target, PolicyType="TargetTrackingScaling",
                               TargetTrackingScalingPolicyConfiguration={
                                   "TargetValue": 50.0,
                                   "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}})
    alarms = boto3.client("cloudwatch", region_name=REGION)
    assert alarms.describe_alarms()["MetricAlarms"]
    scaling.deregister_scalable_target(**target)
    assert scaling.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"] == []
    assert alarms.describe_alarms()["MetricAlarms"] == []


def test_tagging_api_answers_a_resource_arn_list_in_one_page_with_untagged_and_ecr_resources(endpoint):
    """GetResources with a ResourceARNList: one page (AWS takes no pagination parameters with it), resources whose
    tags were all removed (AWS answers for the "previously tagged"), and ECR repositories."""
    logs = boto3.client("logs", region_name=REGION)
    ecr = boto3.client("ecr", region_name=REGION)
    tags = {f"Key{i}": str(i) for i in range(5)}
    groups = [f"/tagging/{i}" for i in range(25)]  # 125 tags: moto alone pages at 100
    for name in groups:
        logs.create_log_group(logGroupName=name, tags=tags)
    arns = [f"arn:aws:logs:{REGION}:123456789012:log-group:{name}" for name in groups]
    logs.untag_resource(resourceArn=arns[0], tagKeys=list(tags))
    repository = ecr.create_repository(repositoryName="tagging/one", tags=[{"Key": "Project", "Value": "p"}])
    repository_arn = repository["repository"]["repositoryArn"]
    absent = f"arn:aws:logs:{REGION}:123456789012:log-group:/tagging/never"

    answer = boto3.client("resourcegroupstaggingapi", region_name=REGION).get_resources(
        ResourceARNList=[*arns, repository_arn, absent])

    found = {m["ResourceARN"]: {t["Key"]: t["Value"] for t in m["Tags"]} for m in answer["ResourceTagMappingList"]}
    assert not answer.get("PaginationToken")
    assert found == {arns[0]: {}} | {arn: tags for arn in arns[1:]} | {repository_arn: {"Project": "p"}}


def test_tagging_api_answers_for_backup_plans_opensearch_domains_and_cloud_map_namespaces(endpoint):
    """AWS answers GetResources for the tagged resources of every service; moto's tagging API leaves these out."""
    tag = {"Project": "p"}
    plan_arn = boto3.client("backup", region_name=REGION).create_backup_plan(
        BackupPlan={"BackupPlanName": "tagged", "Rules": [{"RuleName": "r", "TargetBackupVaultName": "v"}]},
        BackupPlanTags=tag)["BackupPlanArn"]
    domain_arn = boto3.client("opensearch", region_name=REGION).create_domain(
        DomainName="tagged", TagList=[{"Key": "Project", "Value": "p"}])["DomainStatus"]["ARN"]
    cloud_map = boto3.client("servicediscovery", region_name=REGION)
    operation = cloud_map.create_http_namespace(Name="tagged", Tags=[{"Key": "Project", "Value": "p"}])["OperationId"]
    namespace_id = cloud_map.get_operation(OperationId=operation)["Operation"]["Targets"]["NAMESPACE"]
    namespace_arn = cloud_map.get_namespace(Id=namespace_id)["Namespace"]["Arn"]

    answer = boto3.client("resourcegroupstaggingapi", region_name=REGION).get_resources(
        ResourceARNList=[plan_arn, domain_arn, namespace_arn])

    found = {m["ResourceARN"]: {t["Key"]: t["Value"] for t in m["Tags"]} for m in answer["ResourceTagMappingList"]}
    assert found == {plan_arn: tag, domain_arn: tag, namespace_arn: tag}



def test_the_emulator_handles_one_request_at_a_time(monkeypatch):
    """one_request_at_a_time: moto's models are shared dicts, and two handlers side by side raced in them
    ("dictionary changed size during iteration", a 500 botocore cannot parse). Checked on a stand-in
    dispatcher that counts the handlers running at once."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from moto.moto_server import werkzeug_app

    from provisioner.emulator import patches

    running, most = 0, 0
    counting = threading.Lock()

    class Dispatcher:
        def __call__(self, environ, start_response):
            nonlocal running, most
            with counting:
                running += 1
                most = max(most, running)
            time.sleep(0.01)
            with counting:
                running -= 1
            return [b"ok"]

    monkeypatch.setattr(werkzeug_app, "DomainDispatcherApplication", Dispatcher)
    patches.one_request_at_a_time()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: Dispatcher()({"PATH_INFO": "/"}, None), range(16)))
    assert answers == [[b"ok"]] * 16 and most == 1


def test_what_moto_recomputed_per_request_is_computed_once_with_the_same_answer(monkeypatch):
    """moto_modules_listed_once, response_methods_listed_once, error_tables_built_once,
    backend_regions_listed_once: each cached value is what moto computes afresh, and is reused."""
    import inspect
    import os

    import botocore.session
    import moto
    from moto import backends
    from moto.core import responses
    from moto.core.errors import ErrorLookupFactory
    from moto.core.utils import get_service_model
    from moto.ec2.models import ec2_backends
    from moto.ecs.responses import EC2ContainerServiceResponse

    emulator_in_this_process(monkeypatch)
    root = os.path.dirname(moto.__file__)
    packages = sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)) and not n.startswith("__"))
    assert list(backends.list_of_moto_modules()) == packages
    assert backends.list_of_moto_modules() is backends.list_of_moto_modules()

    methods = [name for name, _ in inspect.getmembers(EC2ContainerServiceResponse, inspect.isfunction)]
    assert responses.method_names_from_class(EC2ContainerServiceResponse) == methods
    assert "put_account_setting_default" in methods  # a patch's own handler is found

    ssm = get_service_model("ssm")
    table = ErrorLookupFactory().for_service(ssm)
    assert ErrorLookupFactory().for_service(ssm) is table
    assert table.from_code("ParameterNotFound").name == "ParameterNotFound"

    botocore_regions = {r for p in botocore.session.get_session().get_available_partitions()
                        for r in botocore.session.get_session().get_available_regions("ec2", partition_name=p)}
    assert set(ec2_backends["123456789012"].regions) >= botocore_regions


def test_an_ec2_resource_reads_its_own_tags_as_describe_tags_gives_them(monkeypatch):
    """ec2_tags_read_by_id: a resource's tags, read under its ID, are exactly DescribeTags' answer for that ID."""
    emulator_in_this_process(monkeypatch)
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends["123456789012"][REGION]
    vpc = ec2.create_vpc("10.0.0.0/16", tags=[{"Key": "Project", "Value": "p"}])
    group = ec2.create_security_group("g", "d", vpc.id, tags={"Name": "g", "Project": "p", "ProvisionKey": "k"})
    ec2.create_tags([group.id], {"Added": "later"})
    bare = ec2.create_security_group("bare", "d", vpc.id)
    for resource in (vpc, group, bare):
        assert resource.get_tags() == ec2.describe_tags(filters={"resource-id": [resource.id]})
    assert [t["key"] for t in group.get_tags()] == ["Name", "Project", "ProvisionKey", "Added"]
    assert group.get_tags()[0]["resource_type"] == "security-group" and bare.get_tags() == []


def test_describe_parameters_by_name_answers_as_the_full_scan(monkeypatch):
    """ssm_parameters_found_by_name: with a Name filter (Equals or BeginsWith, with other filters or not),
    DescribeParameters answers what matching every parameter of the region gives, in the same order."""
    emulator_in_this_process(monkeypatch)
    from moto.ssm.models import ssm_backends

    ssm = ssm_backends["123456789012"][REGION]
    for name, tags in (("/p/b", [{"Key": "Team", "Value": "x"}]), ("/p/a", []), ("/q/a", []), ("p/c", [])):
        ssm.put_parameter(name, "", "v", "String", "", None, False, tags, "text", None, None)
    # AWS's public parameters, thousands of them, as the AMI lookup loads them.
    assert ssm.get_parameter("/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id")

    def scanned(filters):
        return [ssm.get_parameter(n) for n in list(ssm._parameters) if ssm._match_filters(ssm.get_parameter(n), filters)]

    for filters in (
        [{"Key": "Name", "Option": "BeginsWith", "Values": ["/p/"]}],
        [{"Key": "Name", "Option": "BeginsWith", "Values": ["p/"]}],
        [{"Key": "Name", "Values": ["/p/a", "/q/a", "/absent"]}],
        [{"Key": "Name", "Option": "Equals", "Values": ["p/c"]}],
        [{"Key": "Name", "Option": "BeginsWith", "Values": ["/p/"]}, {"Key": "tag:Team", "Values": ["x"]}],
    ):
        assert ssm.describe_parameters([], filters) == scanned(filters), filters
    assert [p.name for p in ssm.describe_parameters([], [{"Key": "Name", "Option": "BeginsWith", "Values": ["/p/"]}])] == ["/p/b", "/p/a", "p/c"]


def test_a_kms_key_pair_is_made_when_first_used_and_signs_and_verifies(endpoint):
    """kms_key_pairs_made_when_used: an asymmetric key still signs, verifies and gives its public key."""
    kms = boto3.client("kms", region_name=REGION)
    key = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    signed = kms.sign(KeyId=key, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
    assert kms.verify(KeyId=key, Message=b"m", Signature=signed, SigningAlgorithm="RSASSA_PSS_SHA_256")["SignatureValid"]
    assert kms.get_public_key(KeyId=key)["PublicKey"]
    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    assert kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=symmetric, Plaintext=b"p")["CiphertextBlob"])["Plaintext"] == b"p"


def test_ec2_ids_are_hex_digits_of_the_asked_length_and_follow_moto_seed(monkeypatch):
    """ec2_ids_drawn_at_once: IDs keep their form (prefix, 17 hex digits), differ, and a seeded moto repeats them."""
    import re

    emulator_in_this_process(monkeypatch)
    from moto.ec2 import utils
    from moto.moto_api._internal import mock_random

    ids = [utils.random_id("vpc") for _ in range(200)]
    assert all(re.fullmatch(r"vpc-[0-9a-f]{17}", i) for i in ids) and len(set(ids)) == 200
    assert {i[4] for i in ids} == set("0123456789abcdef")  # the leading digit is drawn too, zeros kept
    assert re.fullmatch(r"[0-9a-f]{8}", utils.random_resource_id())
    mock_random.seed(7)
    first = utils.random_ami_id()
    mock_random.seed(7)
    assert utils.random_ami_id() == first


def test_a_requests_operation_is_matched_once_per_request(monkeypatch):
    """request_action_found_once: the routes are matched once per request; a response object serving another
    request matches that one anew."""
    emulator_in_this_process(monkeypatch)
    from moto.core.responses import BaseResponse

    matched = []
    monkeypatch.setattr(BaseResponse, "_get_action_from_request",
                        lambda self, request: matched.append(request) or f"Operation{len(matched)}")
    response = BaseResponse()
    response.normalized_request = object()
    assert [response._get_action() for _ in range(3)] == ["Operation1"] * 3
    response.normalized_request = object()
    assert [response._get_action() for _ in range(2)] == ["Operation2"] * 2
    assert len(matched) == 2


def test_the_emulators_boto3_sessions_share_one_data_loader(monkeypatch):
    import boto3

    emulator_in_this_process(monkeypatch)
    first, second = boto3.Session(region_name="eu-west-1"), boto3.Session(region_name="us-east-1")
    assert first._session.get_component("data_loader") is second._session.get_component("data_loader")
    assert "eu-west-1" in second.get_available_regions("ec2")
