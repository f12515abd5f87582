"""Named, tested fixes to moto where it mis-implements something this stack relies on.

Applied by the embedded emulator (and the test harness) before it serves a request;
each patch is the smallest change that makes moto answer as AWS does.
"""
from __future__ import annotations

from typing import Any, Iterator

from provisioner.emulator import alerting_patches, backup_patches, deployment_patches

_applied = False


def nat_gateway_tag_filters() -> None:
    """DescribeNatGateways ignores `tag:*`, `tag-key` and `tag-value` filters in moto 5.2.

    AWS applies them, and the tool finds its NAT gateway by tags after a crash or a lost
    state: without this, another project's NAT gateway in the same account would match.
    """
    from moto.ec2.models.nat_gateways import NatGatewayBackend
    from moto.ec2.utils import tag_filter_matches

    original = NatGatewayBackend.describe_nat_gateways

    def describe_nat_gateways(self, filters, nat_gateway_ids):
        found = original(self, filters, nat_gateway_ids)
        tag_filters = {
            name: values for name, values in (filters or {}).items()
            if name.startswith("tag:") or name in ("tag-key", "tag-value")
        }
        return [n for n in found if all(tag_filter_matches(n, k, v) for k, v in tag_filters.items())]

    NatGatewayBackend.describe_nat_gateways = describe_nat_gateways


def nat_gateway_deletion_frees_its_address() -> None:
    """DeleteNatGateway leaves the Elastic IP associated in moto 5.2, so no NAT gateway can take it again
    (CreateNatGateway: Resource.AlreadyAssociated).

    AWS: "Deleting a public NAT gateway disassociates its Elastic IP address, but does not release the address
    from your account" (EC2 API reference, DeleteNatGateway). moto's NAT gateway is deleted at once, so its
    address is disassociated at once.
    """
    from moto.ec2.models.nat_gateways import NatGatewayBackend

    original = NatGatewayBackend.delete_nat_gateway

    def delete_nat_gateway(self, nat_gateway_id):
        nat = original(self, nat_gateway_id)
        _free_nat_address(self, nat)
        return nat

    NatGatewayBackend.delete_nat_gateway = delete_nat_gateway


def _free_nat_address(backend, nat) -> None:
    for address in backend.addresses:
        if address.eni is not None and address.eni is nat._eni:
            backend.disassociate_address(association_id=address.association_id)


def describe_all_capacity_providers() -> None:
    """DescribeCapacityProviders without `capacityProviders` fails with a 500 in moto 5.2.

    AWS answers with every provider of the account; the tool lists its own that way when the
    state is lost, so that `destroy` still finds them.
    """
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.describe_capacity_providers

    def describe_capacity_providers(self, names):
        return original(self, names if names is not None else list(self.capacity_providers))

    EC2ContainerServiceBackend.describe_capacity_providers = describe_capacity_providers


def launch_template_user_data() -> None:
    """An Auto Scaling group fails (500) on a launch template with UserData in moto 5.2.

    moto keeps the template's UserData as the plain base64 string it received and then asserts
    it is its own Base64EncodedString type when the group launches instances.
    """
    from moto.core.types import Base64EncodedString
    from moto.ec2.models.launch_templates import LaunchTemplateVersion

    def user_data(self):
        value = self.data.get("UserData")
        return Base64EncodedString(value) if isinstance(value, str) else value

    LaunchTemplateVersion.user_data = property(user_data)  # type: ignore[assignment]  # a method becomes a property


def launch_template_own_tags() -> None:
    """CreateLaunchTemplate copies the template's own tags into version 1's LaunchTemplateData in moto 5.2.

    AWS keeps the tags of the launch-template resource apart from the tags its instances get;
    with moto's copy, version 1 never equals the data the tool sent, so every first run made a
    needless version 2.
    """
    from moto.ec2.models.launch_templates import LaunchTemplateBackend

    original = LaunchTemplateBackend.create_launch_template

    def create_launch_template(self, name, description, template_data, tag_spec):
        specs = template_data.get("TagSpecifications")
        if specs:
            template_data = template_data | {
                "TagSpecifications": [s for s in specs if s.get("ResourceType") != "launch-template"]
            }
            if not template_data["TagSpecifications"]:
                del template_data["TagSpecifications"]
        return original(self, name, description, template_data, tag_spec)

    LaunchTemplateBackend.create_launch_template = create_launch_template


def service_linked_role_names() -> None:
    """CreateServiceLinkedRole names roles moto's own way for most services in moto 5.2
    (AWSServiceRoleForopensearchservice, AWSServiceRoleForecs).

    AWS names them AWSServiceRoleForAmazonOpenSearchService (opensearch-service developer guide,
    slr-aos.html) and AWSServiceRoleForECS (ECS developer guide, using-service-linked-roles.html);
    the tool looks them up by those names before creating them.
    """
    from moto.iam import models

    models.SERVICE_NAME_CONVERSION.update({"ecs": "ECS", "opensearchservice": "AmazonOpenSearchService"})


def dsql_endpoints() -> None:
    """moto 5.2 gives a DSQL cluster the endpoint <id>.<region>.on.aws, and the same as its PrivateLink host.

    AWS's cluster endpoint is <id>.dsql.<region>.on.aws, and over PrivateLink clients use
    <id>.<service-identifier>.<region>.on.aws, where the identifier ends the endpoint service name
    com.amazonaws.<region>.dsql-xxxx (Aurora DSQL user guide, privatelink-managing-clusters.html).
    """
    from moto.dsql.models import AuroraDSQLBackend, Cluster

    original_init = Cluster.__init__

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.endpoint = f"{self.identifier}.dsql.{self.region_name}.on.aws"

    def get_vpc_endpoint_service_name(self, identifier):
        cluster = self.get_cluster(identifier=identifier)
        suffix = cluster.endpoint_service_name.rsplit(".", 1)[-1]
        return {
            "serviceName": cluster.endpoint_service_name,
            "clusterVpcEndpoint": f"{cluster.identifier}.{suffix}.{cluster.region_name}.on.aws",
        }

    Cluster.__init__ = __init__
    AuroraDSQLBackend.get_vpc_endpoint_service_name = get_vpc_endpoint_service_name


# CreateService parameters moto 5.2 drops, and the Service attribute each is kept in.
ECS_SERVICE_FIELDS = {
    "capacityProviderStrategy": "capacity_provider_strategy",
    "enableExecuteCommand": "enable_execute_command",
    "placementConstraints": "placement_constraints",
    "placementStrategy": "placement_strategy",
    "deploymentConfiguration": "deployment_configuration",
    "enableECSManagedTags": "enable_ecs_managed_tags",
    "healthCheckGracePeriodSeconds": "health_check_grace_period_seconds",
}


def ecs_service_fields() -> None:
    """CreateService drops capacity provider strategy, ECS Exec, placement, deployment and Service
    Connect settings in moto 5.2, and UpdateService keeps Service Connect where no describe shows it.

    AWS returns the first six on the service and Service Connect on its deployments; `status`
    and the tests read them back from there. A capacity provider strategy replaces the launch
    type, as in AWS, and the primary deployment follows the service's task definition and count.
    """
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.ecs.responses import EC2ContainerServiceResponse

    original_create = EC2ContainerServiceResponse.create_service
    original_update = EC2ContainerServiceBackend.update_service

    def follow(service, service_connect=None) -> None:
        if getattr(service, "capacity_provider_strategy", None):
            service.launch_type = None
        for deployment in service.deployments[:1]:
            deployment.update(
                taskDefinition=service.task_definition, desiredCount=service.desired_count,
                runningCount=service.running_count, pendingCount=service.pending_count,
            )
            if service.launch_type is None:
                deployment.pop("launchType", None)
                deployment["capacityProviderStrategy"] = service.capacity_provider_strategy
            if service_connect is not None:
                deployment["serviceConnectConfiguration"] = service_connect

    def create_service(self):
        result = original_create(self)
        service = self.ecs_backend._get_service(self._get_param("cluster", "default"), self._get_param("serviceName"))
        for parameter, attribute in ECS_SERVICE_FIELDS.items():
            value = self._get_param(parameter)
            if value is not None:
                setattr(service, attribute, value)
        follow(service, self._get_param("serviceConnectConfiguration"))
        return result

    def update_service(self, service_properties):
        service_connect = service_properties.pop("service_connect_configuration", None)
        service = original_update(self, service_properties)
        follow(service, service_connect)
        return service

    EC2ContainerServiceResponse.create_service = create_service
    EC2ContainerServiceBackend.update_service = update_service


def ecs_agent_registration() -> None:
    """What the ECS agent does on an instance: moto 5.2 launches Auto Scaling instances that never join a cluster.

    On AWS, the agent of an ECS-optimized instance reads ECS_CLUSTER and ECS_INSTANCE_ATTRIBUTES from
    /etc/ecs/ecs.config (written by the user data) and registers the instance with the cluster, with
    those attributes and the instance's CPU and memory; when the instance terminates, it leaves the
    cluster. Without this, RunTask on EC2 capacity has nowhere to place a task.
    """
    import base64
    import json
    import re

    from moto.autoscaling.models import FakeAutoScalingGroup
    from moto.ec2.models.instance_types import INSTANCE_TYPES
    from moto.ec2.models.instances import InstanceBackend
    from moto.ecs.models import ecs_backends

    def ecs_config(user_data) -> dict[str, str]:
        try:
            text = base64.b64decode(str(user_data)).decode()
        except (ValueError, UnicodeDecodeError):
            return {}
        return dict(re.findall(r"^(ECS_[A-Z_]+)=(.*)$", text, flags=re.M))

    original_replace = FakeAutoScalingGroup.replace_autoscaling_group_instances

    def replace_autoscaling_group_instances(self, count_needed, propagated_tags):
        before = {state.instance.id for state in self.instance_states}
        original_replace(self, count_needed, propagated_tags)
        settings = ecs_config(self.user_data) if self.user_data else {}
        ecs = ecs_backends[self.autoscaling_backend.account_id][self.autoscaling_backend.region_name]
        cluster = settings.get("ECS_CLUSTER")
        if not cluster or cluster not in ecs.clusters:
            return
        for state in self.instance_states:
            instance = state.instance
            if instance.id in before:
                continue
            registered = ecs.register_container_instance(cluster, instance.id)
            registered.attributes.update(json.loads(settings.get("ECS_INSTANCE_ATTRIBUTES", "{}")))
            info = INSTANCE_TYPES.get(instance.instance_type)
            if info:
                room = {"CPU": info["VCpuInfo"]["DefaultVCpus"] * 1024, "MEMORY": info["MemoryInfo"]["SizeInMiB"]}
                for resources in (registered.registered_resources, registered.remaining_resources):
                    for resource in resources:
                        if resource["name"] in room:
                            resource["integerValue"] = room[resource["name"]]

    original_terminate = InstanceBackend.terminate_instances

    def terminate_instances(self, instance_ids):
        terminated = original_terminate(self, instance_ids)
        gone = {instance.id for instance, _ in terminated}
        ecs = ecs_backends[self.account_id][self.region_name]
        for cluster, instances in list(ecs.container_instances.items()):
            for instance_id, container_instance in list(instances.items()):
                if container_instance.ec2_instance_id in gone and cluster in ecs.clusters:
                    ecs.deregister_container_instance(cluster, instance_id, force=True)
        return terminated

    FakeAutoScalingGroup.replace_autoscaling_group_instances = replace_autoscaling_group_instances
    InstanceBackend.terminate_instances = terminate_instances


def task_level_resources() -> None:
    """RunTask fails (500) in moto 5.2 when a container has no memory of its own.

    On EC2, AWS takes the task-level cpu and memory when the containers do not set them ("If you're
    using the EC2 launch type, this field is optional", RegisterTaskDefinition); moto adds up container
    values only. Here a container without memory counts for the task's, so placement uses what AWS uses.
    """
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend._calculate_task_resource_requirements

    def calculate(task_definition):
        containers = task_definition.container_definitions
        if all(c.get("memory") or c.get("memoryReservation") for c in containers):
            return original(task_definition)
        patched = [c | {"memory": c.get("memory") or int(task_definition.memory or 0) // len(containers)} for c in containers]
        saved, task_definition.container_definitions = containers, patched
        try:
            found = original(task_definition)
        finally:
            task_definition.container_definitions = saved
        if not any(c.get("cpu") for c in containers) and task_definition.cpu:
            found["CPU"] = int(task_definition.cpu)
        return found

    EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(calculate)


FAILING_TASKS_SETTING = "PROVISION_EMULATOR_FAILING_TASKS"


def one_off_tasks() -> None:
    """A task started with RunTask runs its container to the end: moto 5.2 steps it to STOPPED with no
    exit code of its own, no stop reason, and nothing in its log group.

    Here, when such a task reaches STOPPED, its container reports exit code 0 and the stop reason AWS
    gives ("Essential container in task exited"), and a few lines land in its awslogs stream
    (<prefix>/<container>/<task id>), as the awslogs driver writes them. Opt-in
    PROVISION_EMULATOR_FAILING_TASKS=<family suffix>,... makes those tasks exit 1 with an error line.
    """
    import os

    from moto.core.utils import unix_time_millis, utcnow
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.logs.models import logs_backends

    original_run = EC2ContainerServiceBackend.run_task

    def run_task(self, cluster_str, task_definition_str, *args, **kwargs):
        tasks = original_run(self, cluster_str, task_definition_str, *args, **kwargs)
        failing = [f for f in os.environ.get(FAILING_TASKS_SETTING, "").split(",") if f]
        for task in tasks:
            definition = self.describe_task_definition(task.task_definition_arn)
            task.emulated = {"definition": definition, "exit": 1 if any(definition.family.endswith(f) for f in failing) else 0}
        return tasks

    def finish(self, task) -> None:
        definition, exit_code = task.emulated["definition"], task.emulated["exit"]
        task.emulated = None
        container = definition.container_definitions[0]
        task.stopped_reason = "Essential container in task exited"
        task.stopped_at = task.execution_stopped_at = utcnow()
        task.stop_code = "EssentialContainerExited"
        for item in task.containers:
            item.last_status, item.exitCode = "STOPPED", exit_code
        options = container.get("logConfiguration", {}).get("options", {})
        group = options.get("awslogs-group")
        logs = logs_backends[self.account_id][options.get("awslogs-region", self.region_name)]
        if not group or group not in logs.groups:
            return
        stream = f"{options.get('awslogs-stream-prefix', 'ecs')}/{container['name']}/{task.id}"
        lines = [f"[emulator] {container['name']} started from {container.get('image')}"]
        lines += [f"[emulator] would run: {line}" for line in " ".join(container.get("command") or []).splitlines()]
        lines.append("[emulator] done" if exit_code == 0 else f"[emulator] failed: {FAILING_TASKS_SETTING} names it")
        logs.create_log_stream(group, stream)
        now = int(unix_time_millis())
        logs.put_log_events(group, stream, [{"timestamp": now, "message": line} for line in lines])

    original_describe = EC2ContainerServiceBackend.describe_tasks

    def describe_tasks(self, cluster_str, tasks):
        found = original_describe(self, cluster_str, tasks)
        for task in found:
            if getattr(task, "emulated", None) and task.last_status == "STOPPED":
                finish(self, task)
        return found

    EC2ContainerServiceBackend.run_task = run_task
    EC2ContainerServiceBackend.describe_tasks = describe_tasks


def service_tasks() -> None:
    """A service runs tasks: moto 5.2 only counts them (running = desired) and ListTasks ignores serviceName.

    On AWS a service's tasks are tasks like any other: ListTasks finds them by service, DescribeTasks
    gives their network interface and container instance (what `provision tunnel` goes through), their
    `enableExecuteCommand` and ExecuteCommandAgent (what `provision exec` checks), and a scale-down stops
    some, with stop code ServiceSchedulerInitiated and the containers' exit codes (what `status` shows); the
    awslogs driver writes each task's lines to <prefix>/<container>/<task id> (what `provision logs` reads). Here a service keeps as many RUNNING tasks (group service:<name>) as it
    counts running, each on a container instance whose `workload` attribute matches the service's
    placement constraint when there is one. Placement capacity is not modelled: the tool checks it.
    """
    import re

    from moto.core.utils import unix_time_millis, utcnow
    from moto.ecs.models import EC2ContainerServiceBackend, Task
    from moto.logs.models import logs_backends

    def reconcile(backend, service) -> None:
        if service.status != "ACTIVE" and service.running_count:
            return
        cluster = backend.clusters.get(service.cluster_name)
        if cluster is None:
            return
        group = f"service:{service.name}"
        running = [t for t in backend.tasks.get(cluster.name, {}).values()
                   if t.group == group and t.desired_status == "RUNNING"]
        wanted = service.running_count if service.status == "ACTIVE" else 0
        for task in running[wanted:]:
            task.desired_status, task.status = "STOPPED", "STOPPED"
            task.stopped_reason = "Scaling activity initiated by (deployment ecs-svc)"
            task.stopped_at = utcnow()
            # ECS stops a scaled-in task with SIGTERM; the container exits and ECS records it.
            task.stop_code = "ServiceSchedulerInitiated"
            for container in task.containers:
                container.last_status, container.exitCode = "STOPPED", 0
            write_log(backend, definition_of(backend, task), task, ["[emulator] SIGTERM: stopping"])
        if len(running) >= wanted:
            return
        constraint = next((c.get("expression", "") for c in getattr(service, "placement_constraints", None) or []), "")
        workload = re.search(r"attribute:workload == (\S+)", constraint)
        instances = list(backend.container_instances.get(cluster.name, {}).values())
        matching = [i for i in instances if not workload or i.attributes.get("workload") == workload[1]] or instances
        if not matching:
            return  # no instance to run on: moto still counts the service as running, as before this patch
        definition = backend.describe_task_definition(service.task_definition)
        for index in range(wanted - len(running)):
            instance = matching[index % len(matching)]
            task = Task(
                cluster, definition, instance.container_instance_arn, None, backend=backend,
                group=group, started_by=service.deployments[0]["id"] if service.deployments else "ecs-svc",
                networking_configuration=getattr(service, "network_configuration", None),
            )
            task._transitions = [("RUNNING", "RUNNING")]  # stays up, unlike a one-off task
            # ECS Exec: the task carries its service's setting at launch, and the agent runs beside each container.
            exec_enabled = bool(getattr(service, "enable_execute_command", False))
            task.enable_execute_command = exec_enabled  # type: ignore[attr-defined]  # moto's Task lacks the field
            for container in task.containers:
                container.last_status = "RUNNING"
                if exec_enabled:
                    container.managed_agents = [  # type: ignore[attr-defined]  # moto's Container lacks the field
                        {"name": "ExecuteCommandAgent", "lastStatus": "RUNNING", "lastStartedAt": utcnow()}]
            backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
            write_log(backend, definition, task, [f"[emulator] {task.containers[0].name} started from "
                                                  f"{task.containers[0].image}", "[emulator] running"])

    def definition_of(backend, task):
        return backend.describe_task_definition(task.task_definition_arn)

    def write_log(backend, definition, task, lines: list[str]) -> None:
        """What the awslogs driver writes: stream <prefix>/<container>/<task id> in the container's group."""
        container = definition.container_definitions[0]
        options = container.get("logConfiguration", {}).get("options", {})
        logs = logs_backends[backend.account_id][options.get("awslogs-region", backend.region_name)]
        group = options.get("awslogs-group")
        if not group or group not in logs.groups:
            return
        stream = f"{options.get('awslogs-stream-prefix', 'ecs')}/{container['name']}/{task.id}"
        if stream not in logs.groups[group].streams:
            logs.create_log_stream(group, stream)
        now = int(unix_time_millis())
        logs.put_log_events(group, stream, [{"timestamp": now, "message": line} for line in lines])

    original_create = EC2ContainerServiceBackend.create_service
    original_update = EC2ContainerServiceBackend.update_service
    original_delete = EC2ContainerServiceBackend.delete_service
    original_list = EC2ContainerServiceBackend.list_tasks

    def create_service(self, *args, **kwargs):
        service = original_create(self, *args, **kwargs)
        reconcile(self, service)
        return service

    def update_service(self, service_properties):
        service = original_update(self, service_properties)
        reconcile(self, service)
        return service

    def delete_service(self, cluster_name, service_name, force):
        service = original_delete(self, cluster_name, service_name, force)
        reconcile(self, service)
        return service

    def list_tasks(self, cluster_str=None, container_instance=None, family=None, started_by=None, service_name=None,
                   desiredStatus=None):
        if not service_name:
            return original_list(self, cluster_str, container_instance, family, started_by, None, desiredStatus)
        # ListTasks' desiredStatus defaults to RUNNING (ECS API reference): a service's stopped tasks
        # are listed only when asked for.
        found = original_list(self, cluster_str, container_instance, family, started_by, None, desiredStatus or "RUNNING")
        group = f"service:{service_name.split('/')[-1]}"
        return [t for t in found if t.group == group]

    EC2ContainerServiceBackend.create_service = create_service
    EC2ContainerServiceBackend.update_service = update_service
    EC2ContainerServiceBackend.delete_service = delete_service
    EC2ContainerServiceBackend.list_tasks = list_tasks


def stop_task_after_its_instance_left() -> None:
    """StopTask fails (500, KeyError) in moto 5.2 on a task whose container instance has left the cluster.

    In AWS a task outlives the registration of the instance it was placed on until ECS stops it, and StopTask
    stops it like any other ("Stops a running task", ECS API reference). Here the instance's resources are
    given back only while it is still registered.
    """
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.stop_task

    def stop_task(self, cluster_str, task_str, reason):
        cluster = self._get_cluster(cluster_str)
        registered = self.container_instances.get(cluster.name, {})
        task = next((t for arn, t in self.tasks.get(cluster.name, {}).items() if arn.endswith(task_str.split("/")[-1])), None)
        instance = task.container_instance_arn if task is not None else None
        if instance is None or instance.split("/")[-1] in registered:
            return original(self, cluster_str, task_str, reason)
        task.container_instance_arn = None
        try:
            return original(self, cluster_str, task_str, reason)
        finally:
            task.container_instance_arn = instance

    EC2ContainerServiceBackend.stop_task = stop_task


def delete_cluster_with_tasks() -> None:
    """DeleteCluster deletes a cluster whose tasks still run in moto 5.2.

    AWS refuses: ClusterContainsTasksException, "You can't delete a cluster that has active tasks" (ECS API
    reference, DeleteCluster). Here a standalone task (RunTask's, group family:...) that has not stopped holds
    its cluster; a service's tasks are modelled by service_tasks, which the deleted service leaves behind.
    """
    from moto.ecs.exceptions import ECSException
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.delete_cluster

    def delete_cluster(self, cluster_str):
        cluster = self._get_cluster(cluster_str)
        active = [t for t in self.tasks.get(cluster.name, {}).values()
                  if not str(t.group).startswith("service:") and t.last_status != "STOPPED"]
        if active:
            raise ECSException("ClusterContainsTasksException", "The Cluster cannot be deleted while Tasks are active.")
        return original(self, cluster_str)

    EC2ContainerServiceBackend.delete_cluster = delete_cluster


def _ready_after_delay(model, setting: str, **initial) -> bool:
    """For the opt-in slow-resource hooks: stamp every new `model` with the time it turns ready,
    `setting` seconds after creation (and set `initial` attributes). False when the setting is unset."""
    import os
    import time

    delay = float(os.environ.get(setting, "0") or 0)
    if delay <= 0:
        return False
    original_init = model.__init__

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        for name, value in initial.items():
            setattr(self, name, value)
        self.ready_at = time.monotonic() + delay

    model.__init__ = __init__
    return True


def _ready(resource) -> bool:
    import time

    return time.monotonic() >= getattr(resource, "ready_at", 0)


NAT_DELAY_SETTING = "PROVISION_EMULATOR_NAT_SECONDS"


def slow_nat_gateways() -> None:
    """An opt-in emulator hook: NAT gateways stay "pending", and then "deleting", for a while, as in AWS
    (minutes there).

    moto makes every NAT gateway available at once, and deletes it at once, so nothing would show whether
    the tool waits for it only where it must. With PROVISION_EMULATOR_NAT_SECONDS set, a new NAT gateway
    turns available that many seconds after it was created, and a deleted one stays "deleting", holding
    its Elastic IP, as long before it is "deleted" and the address is free.
    """
    import os
    import time

    from moto.ec2.models.nat_gateways import NatGateway, NatGatewayBackend

    if not _ready_after_delay(NatGateway, NAT_DELAY_SETTING, state="pending"):
        return
    delay = float(os.environ[NAT_DELAY_SETTING])
    original_describe = NatGatewayBackend.describe_nat_gateways

    def describe_nat_gateways(self, filters, nat_gateway_ids):
        found = original_describe(self, filters, nat_gateway_ids)
        for nat in found:
            if nat.state == "pending" and _ready(nat):
                nat.state = "available"
            if nat.state == "deleting" and _ready(nat):
                nat.state = "deleted"
                _free_nat_address(self, nat)
        return found

    def delete_nat_gateway(self, nat_gateway_id):
        nat = self.nat_gateways[nat_gateway_id]
        nat.state, nat.ready_at = "deleting", time.monotonic() + delay
        return nat

    NatGatewayBackend.describe_nat_gateways = describe_nat_gateways
    NatGatewayBackend.delete_nat_gateway = delete_nat_gateway


OPENSEARCH_DELAY_SETTING = "PROVISION_EMULATOR_OPENSEARCH_SECONDS"


def slow_opensearch_domains() -> None:
    """An opt-in emulator hook: OpenSearch domains take a while to come up, as in AWS (15-20 minutes there).

    moto gives a new domain its endpoint at once. With PROVISION_EMULATOR_OPENSEARCH_SECONDS set,
    a new domain reports Processing and no endpoint until that many seconds after it was created,
    to show that only the step that needs the endpoint waits for it.
    """
    from moto.opensearch.models import OpenSearchDomain

    if not _ready_after_delay(OpenSearchDomain, OPENSEARCH_DELAY_SETTING):
        return
    original_to_dict = OpenSearchDomain.to_dict

    def to_dict(self):
        found = original_to_dict(self)
        if not _ready(self):
            found["Processing"] = True
            found.pop("Endpoints", None)
            found.pop("Endpoint", None)
        return found

    OpenSearchDomain.to_dict = to_dict


DSQL_IDLE_SETTING = "PROVISION_EMULATOR_DSQL_IDLE"


def idle_dsql_clusters() -> None:
    """An opt-in emulator hook: DSQL clusters nobody connects to go IDLE, then INACTIVE, as in AWS.

    moto keeps a cluster ACTIVE for good. In AWS, a cluster idle long enough scales down (IDLE), and after a
    prolonged period without activity scales to zero with its data preserved (INACTIVE); a connection brings it
    back to ACTIVE (Aurora DSQL user guide, "Aurora DSQL cluster lifecycle"). With PROVISION_EMULATOR_DSQL_IDLE
    set, a cluster goes CREATING, ACTIVE, IDLE, INACTIVE, one step per GetCluster (moto's state manager default
    for DSQL clusters), and stays INACTIVE.
    """
    import os

    from moto.dsql.models import Cluster

    if not os.environ.get(DSQL_IDLE_SETTING):
        return
    original_init = Cluster.__init__

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self._transitions = [("CREATING", "ACTIVE"), ("ACTIVE", "IDLE"), ("IDLE", "INACTIVE"), ("DELETING", "DELETED")]

    Cluster.__init__ = __init__


# What AWS answers for a setting nobody set: ENI trunking is opt-in ("opt in to the awsvpcTrunking
# account setting", ECS developer guide, container-instance-eni.html).
ECS_ACCOUNT_SETTING_DEFAULTS = {"awsvpcTrunking": "disabled"}


def ecs_account_setting_defaults() -> None:
    """ECS account settings per principal, with the account default, as AWS keeps them.

    moto 5.2 keeps one setting per name and account, with no principals; it ignores principalArn and
    effectiveSettings and has no PutAccountSettingDefault. In AWS (ECS API reference): PutAccountSetting
    sets the setting of `principalArn`, or of the caller without it, and the root user's setting is the
    account default; PutAccountSettingDefault sets that default "for all users on an account for whom no
    individual account setting has been specified"; ListAccountSettings lists the settings of `principalArn`
    (or the caller), and with effectiveSettings=true, for a name it has none of, the default that applies
    to it ("the account settings for the root user or the default setting for the principalArn"), AWS's own
    default when nothing was set. moto's one setting per name here is the account default; a principal's own
    settings are kept beside it.
    """
    from moto.core.responses import ActionResult
    from moto.ecs.models import AccountSetting
    from moto.ecs.responses import EC2ContainerServiceResponse

    caller = "the caller"  # moto signs every request as the same user

    def principal_of(self) -> str:
        return self._get_param("principalArn") or caller

    def own_settings(self) -> dict[str, dict[str, str]]:
        if not hasattr(self.ecs_backend, "principal_account_settings"):
            self.ecs_backend.principal_account_settings = {}
        return self.ecs_backend.principal_account_settings

    def answer(name: str, value: str, principal: str) -> AccountSetting:
        setting = AccountSetting(name, value)
        if principal != caller:
            # moto's AccountSetting answers no principal: AWS names the one whose setting it is.
            setting.principal_arn = setting.principalArn = principal  # type: ignore[attr-defined]
        return setting

    def put_account_setting_default(self):
        setting = self.ecs_backend.put_account_setting(self._get_param("name"), self._get_param("value"))
        return ActionResult({"setting": setting})

    def put_account_setting(self):
        name, value, principal = self._get_param("name"), self._get_param("value"), principal_of(self)
        if principal.endswith(":root"):
            self.ecs_backend.put_account_setting(name, value)
        else:
            own_settings(self).setdefault(principal, {})[name] = value
        return ActionResult({"setting": answer(name, value, principal)})

    def list_account_settings(self):
        name, value, principal = self._get_param("name"), self._get_param("value"), principal_of(self)
        defaults = {s.name: s.value for s in self.ecs_backend.list_account_settings()}
        own = defaults if principal.endswith(":root") else own_settings(self).get(principal, {})
        settings = dict(own)
        if self._get_param("effectiveSettings"):
            for unset, default in (ECS_ACCOUNT_SETTING_DEFAULTS | defaults).items():
                settings.setdefault(unset, default)
        return ActionResult({"settings": [
            answer(n, v, principal) for n, v in sorted(settings.items())
            if name in (None, n) and value in (None, v)
        ]})

    EC2ContainerServiceResponse.put_account_setting_default = put_account_setting_default  # type: ignore[attr-defined]
    EC2ContainerServiceResponse.put_account_setting = put_account_setting
    EC2ContainerServiceResponse.list_account_settings = list_account_settings


def sessions_share_one_loader() -> None:
    """moto makes boto3 sessions to list regions, three of them while EC2's models import alone
    (moto/ec2/models/availability_zones_and_regions.py), and each new session parses botocore's endpoint and
    partition data again: about 0.7 s of the emulator's start. Its sessions share the process's one loader
    instead, as the tool's do (provisioner/aws/session.py share_data_loader). Applied first, before any of moto's
    models is imported."""
    import boto3.session

    from provisioner.aws.session import share_data_loader

    made = boto3.session.Session.__init__

    def __init__(self, *args, **kwargs) -> None:
        made(self, *args, **kwargs)
        share_data_loader(self)

    boto3.session.Session.__init__ = __init__


def one_request_at_a_time() -> None:
    """moto's models are plain dicts and lists shared by the server's threads: two calls side by side (the
    tool makes up to ten) can iterate one while the other adds to it, and the loser gets a 500 whose HTML
    body botocore cannot parse ("RuntimeError: dictionary changed size during iteration" in moto's
    serializer, SSM DescribeParameters, EC2 CreateSecurityGroup). AWS answers concurrent calls
    consistently, so requests are handled one at a time. call_latency wraps this from outside, so its
    simulated network delay still overlaps."""
    import threading

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__call__
    handling = threading.Lock()

    def __call__(self, environ, start_response):
        with handling:
            return original(self, environ, start_response)

    DomainDispatcherApplication.__call__ = __call__


LATENCY_SETTING = "PROVISION_EMULATOR_LATENCY_MS"


def call_latency() -> None:
    """An opt-in emulator hook: every AWS call answers N ms later (PROVISION_EMULATOR_LATENCY_MS=N).

    moto answers in about a millisecond; AWS in 50-300 ms. With a real round trip, the number of calls
    made one after another, not CPU, sets a command's time: this is how the benchmark shows it. The
    server is threaded (werkzeug make_server threaded=True), so concurrent calls wait side by side.
    moto's own API (/moto-api) answers at once.
    """
    import os

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    from provisioner.aws import waiter

    delay = float(os.environ.get(LATENCY_SETTING, "0") or 0) / 1000
    if delay <= 0:
        return
    original = DomainDispatcherApplication.__call__

    def __call__(self, environ, start_response):
        if not environ.get("PATH_INFO", "").startswith("/moto-api"):
            waiter.pause(delay)
        return original(self, environ, start_response)

    DomainDispatcherApplication.__call__ = __call__


def reset_drops_the_account() -> None:
    """moto's reset (POST /moto-api/reset) rebuilds every backend it holds, then drops them all (moto 5.2,
    BackendDict.reset): each IAM partition reloads AWS's ~1,300 managed policies and each EC2 region its
    ~5,000 public images, about 2 s of CPU, only to be thrown away. Dropping them at once is the same reset:
    the next call builds afresh what it uses, as it did. A backend with a reset of its own still runs it for
    its cleanup (S3's: the account-wide index of bucket names, its temporary files). The tests reset before
    each test."""
    from moto.core.base_backend import BackendDict, BaseBackend, backend_lock

    def reset(cls) -> None:
        with backend_lock:
            for backend in cls._instances:
                for account in backend.values():
                    for region in account.values():
                        if type(region).reset is not BaseBackend.reset:
                            region.reset()
                backend.clear()
            cls._instances.clear()

    BackendDict.reset = classmethod(reset)  # type: ignore[assignment]  # moto's is a classmethod too


def account_lookup_builds_nothing() -> None:
    """moto finds the account of every request by looking for its access key in each IAM partition of each
    account (get_account_id_from), and so builds all six partitions (aws, aws-cn, aws-us-gov, ...), each
    loading AWS's managed policies, after every reset: over 1 s of CPU. A key can only be in a partition that
    exists; looking in those alone gives the same answer."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam import models as iam

    def get_account_id_from(access_key: str) -> str:
        for account_id, account in list(iam.iam_backends.items()):
            for partition in list(account.values()):
                if access_key in partition.access_keys:
                    return account_id
        return DEFAULT_ACCOUNT_ID

    iam.get_account_id_from = get_account_id_from


def managed_policies_parsed_once() -> None:
    """Each new IAM backend parses moto's whole table of AWS managed policies (several MB of JSON) again.
    The table never changes: parsed once, each backend still makes its own policy objects from it."""
    import json
    from functools import cache

    from moto.iam import models as iam
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.settings import load_iam_aws_managed_policies

    @cache
    def table() -> dict:
        return json.loads(aws_managed_policies_data)

    def _init_aws_policies(self):
        if not load_iam_aws_managed_policies():
            return []
        return [iam.AWSManagedPolicy.from_data(name, self.account_id, self.region_name, data)
                for name, data in table().items()]

    iam.IAMBackend._init_aws_policies = _init_aws_policies


def tagging_api_resource_arn_lists() -> None:
    """GetResources with a ResourceARNList answers as AWS does; moto 5.2.6 differs three ways.

    AWS takes no pagination parameters with a ResourceARNList (at most 100 ARNs), so it answers in one
    page; moto pages at 100 tags. AWS answers for every resource that is or was tagged; moto drops one
    whose tags were all removed. AWS answers for the tagged resources of every service ("All tagged
    resources, whether the tagging used the Resource Groups Tagging API or not, are returned"); moto's
    backends of ECR, OpenSearch Service and Cloud Map are not in its tagging API, and its AWS Backup one
    lists vaults but not plans. (Resource Groups Tagging API reference, GetResources.)
    """
    from moto.backup.models import backup_backends
    from moto.core.resource_tagging import TaggedResource, iter_taggable_backends
    from moto.ecr.models import ecr_backends
    from moto.opensearch.models import opensearch_backends
    from moto.resourcegroupstaggingapi.models import ResourceGroupsTaggingAPIBackend
    from moto.servicediscovery.models import servicediscovery_backends

    original = ResourceGroupsTaggingAPIBackend.get_resources

    def untaggable(account: str, region: str) -> Iterator[tuple[str, str, Any]]:
        """(resource type, ARN, the backend's tagger) of what moto's tagging API leaves out, that exists."""
        ecr = ecr_backends[account][region]
        yield from (("ecr:repository", r.arn, ecr.tagger) for r in ecr.repositories.values())
        backup = backup_backends[account][region]
        yield from (("backup:backup-plan", p.backup_plan_arn, backup.tagger)
                    for p in backup.plans.values() if p.deletion_date is None)
        opensearch = opensearch_backends[account][region]
        yield from (("es:domain", d.arn, opensearch.tagger) for d in opensearch.domains.values())
        cloud_map = servicediscovery_backends[account][region]
        yield from (("servicediscovery:namespace", n.arn, cloud_map.tagger) for n in cloud_map.namespaces.values())

    def get_resources(self, *args, resource_arn_list=None, **kwargs):
        if not resource_arn_list:
            return original(self, *args, resource_arn_list=resource_arn_list, **kwargs)
        wanted = set(resource_arn_list)
        found = [resource for backend in iter_taggable_backends(self.account_id, self.region_name)
                 for resource in backend.iter_tagged_resources() if resource.arn in wanted]
        found += [TaggedResource(arn=arn, tags=tagger.get_tag_dict_for_resource(arn), resource_type=resource_type)
                  for resource_type, arn, tagger in untaggable(self.account_id, self.region_name) if arn in wanted]
        return None, found

    ResourceGroupsTaggingAPIBackend.get_resources = get_resources


# What moto 5.2 recomputes on every request, or for every new backend after a reset, from things that never
# change while the emulator runs (its own package, botocore's models, the regions botocore knows). Each is
# computed once here: the same answers, without the CPU. The tests send some 400 requests per `up` and reset
# the account before each test, so these costs made up a good share of a test run (issue 19).


def moto_modules_listed_once() -> None:
    """moto's dispatcher asks whether a request's host names one of moto's service packages by listing moto's
    directory (listdir, then isdir on each of ~170 entries) twice per request. The package does not change
    while it runs: listed once."""
    from functools import cache

    from moto import backends

    backends.list_of_moto_modules = cache(lambda original=backends.list_of_moto_modules: tuple(original()))


def response_methods_listed_once() -> None:
    """moto finds a request's handler by listing every method of the service's response class
    (inspect.getmembers: dir() and a lookup of each member) on every request. A class's methods are fixed
    once the patches are applied (apply() runs before the first request): listed once per class."""
    from functools import cache

    from moto.core import responses, utils

    responses.method_names_from_class = cache(utils.method_names_from_class)


def error_tables_built_once() -> None:
    """Every error answer (NotFound, AlreadyExists: dozens per `up`) makes moto build a lookup of all of the
    service's error shapes from botocore's model, in a new, empty cache each time (ErrorLookupFactory() per
    error). The model is loaded once per service: its table is built once too."""
    from moto.core.errors import ErrorLookupFactory

    shared: dict = {}

    def __init__(self) -> None:
        self._error_lut_cache = shared

    ErrorLookupFactory.__init__ = __init__


def backend_regions_listed_once() -> None:
    """Each service's backends list the regions botocore knows for it in every partition after each reset
    (a new BackendDict per service and account; moto caches the list per instance, so never across them):
    listed once per service."""
    from functools import cache

    from moto.core.base_backend import AccountSpecificBackend

    regions = cache(AccountSpecificBackend._generate_regions.__wrapped__)

    def _generate_regions(self, service_name: str) -> list[str]:
        return list(regions(None, service_name))

    AccountSpecificBackend._generate_regions = _generate_regions  # type: ignore[assignment]  # moto's is lru_cache'd



def ec2_tags_read_by_id() -> None:
    """Every EC2 resource reads its own tags (to describe it, or to match a filter) through DescribeTags' scan of
    every tag of every resource in the region, each matched against a regular expression made from the ID: a
    describe costs the square of what the region holds. The tags of one ID are the tags kept under that ID, in
    the order DescribeTags gives them: read there directly (an ID holds no wildcard)."""
    from moto.ec2.models.core import TaggedEC2Resource
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    def get_tags(self) -> list[dict[str, str]]:
        tags = self.ec2_backend.tags.get(self.id) if self.id else None
        if not tags:
            return []
        resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(self.id), "")
        return [{"resource_id": self.id, "key": key, "value": value, "resource_type": resource_type}
                for key, value in tags.items()]

    TaggedEC2Resource.get_tags = get_tags


def ssm_parameters_found_by_name() -> None:
    """DescribeParameters reads and matches every parameter the region holds, AWS's public ones included (the
    AMI lookup loads thousands under /aws/service/), even when a Name filter (Equals or BeginsWith, what the tool
    sends) allows only a few names. Here such a filter first narrows the names; every filter is then matched
    as before, in the same order."""
    from moto.ssm.models import SimpleSystemManagerBackend

    original = SimpleSystemManagerBackend.describe_parameters

    def normal(name: str) -> str:
        return "/" + name.lstrip("/")  # as moto's _match_filters compares names

    def narrowing(parameter_filters):
        for found in parameter_filters or ():
            if found.get("Key") == "Name" and found.get("Option", "Equals") in ("Equals", "BeginsWith"):
                values = [normal(v) for v in found.get("Values", [])]
                if found.get("Option", "Equals") == "Equals":
                    return lambda name: normal(name) in values
                return lambda name: normal(name).startswith(tuple(values))
        return None

    def describe_parameters(self, filters, parameter_filters):
        allowed = narrowing(parameter_filters)
        if filters or allowed is None:
            return original(self, filters, parameter_filters)
        self._validate_parameter_filters(parameter_filters, by_path=False)
        found = []
        for name in [n for n in self._parameters if allowed(n)]:
            parameter = self.get_parameter(name)
            if self._match_filters(parameter, parameter_filters):
                found.append(parameter)
        return found

    SimpleSystemManagerBackend.describe_parameters = describe_parameters



def kms_key_pairs_made_when_used() -> None:
    """moto generates a 2048-bit RSA key pair for every KMS key it creates, symmetric ones included, where it is
    never used (only Sign, Verify and GetPublicKey read it): each test's first secret creates Secrets Manager's
    default key (alias/aws/secretsmanager), some 0.1 s of CPU. Here the pair is generated when first used."""
    from moto.kms import models
    from moto.kms.utils import AbstractPrivateKey

    generate = models.generate_private_key

    class KeyPairWhenUsed:
        def __init__(self, key_spec: str) -> None:
            self._key_spec = key_spec
            self._made: AbstractPrivateKey | None = None

        def __getattr__(self, name: str):
            if self._made is None:
                self._made = generate(self._key_spec)
            return getattr(self._made, name)

    models.generate_private_key = KeyPairWhenUsed  # type: ignore[assignment]  # stands in for the key it makes



def ec2_ids_drawn_at_once() -> None:
    """A new EC2 backend (the first EC2 call after each reset) makes some 1,400 public images, each with a
    snapshot and a volume, and draws every ID one hex digit at a time (random.choice per character): about
    50,000 draws per reset. Drawn here as one number of as many hex digits, from the same (seedable) moto
    random source: IDs of the same form and spread."""
    from moto.ec2 import utils

    random = utils.random

    def random_resource_id(size: int = 8) -> str:
        return f"{random.getrandbits(4 * size):0{size}x}"

    utils.random_resource_id = random_resource_id



def request_action_found_once() -> None:
    """moto matches each request against the service's routes (botocore's model) to find its operation three
    times per request: to parse its parameters, to pick its handler, to serialize its answer. The request does
    not change in between: matched once per request (a response object that serves several requests, as S3's
    does, matches each anew)."""
    from moto.core.responses import BaseResponse

    original = BaseResponse._get_action

    def _get_action(self) -> str:
        request = self.normalized_request
        found = self.__dict__.get("_action_of_request")
        if found is None or found[0] is not request:
            found = (request, original(self))
            self.__dict__["_action_of_request"] = found
        return found[1]

    BaseResponse._get_action = _get_action


UNPLACEABLE_SETTING = "PROVISION_EMULATOR_UNPLACEABLE"


def unplaceable_services() -> None:
    """An opt-in emulator hook: some services can never place a task, as when no instance fits.

    moto runs every task it is asked for at once, so nothing would show how `provision scale`
    reports a service that does not settle. With PROVISION_EMULATOR_UNPLACEABLE=history,worker
    the services whose names end in -history or -worker keep 0 running tasks after a scale-up,
    their deployment stays IN_PROGRESS, and they get the event ECS writes in that case.
    """
    import os
    import uuid

    from moto.core.utils import utcnow
    from moto.ecs.models import EC2ContainerServiceBackend

    roles = [r for r in os.environ.get(UNPLACEABLE_SETTING, "").split(",") if r]
    if not roles:
        return
    original_update = EC2ContainerServiceBackend.update_service

    def update_service(self, service_properties):
        service = original_update(self, service_properties)
        if service.desired_count > 0 and any(service.name.endswith(f"-{role}") for role in roles):
            service.running_count, service.pending_count = 0, 0
            deployment = service.deployments[0]
            deployment.update(runningCount=0, pendingCount=0, rolloutState="IN_PROGRESS",
                              rolloutStateReason=f"ECS deployment {deployment['id']} in progress.")
            service.events.insert(0, {
                "id": str(uuid.uuid4()), "createdAt": utcnow(),
                "message": f"(service {service.name}) was unable to place a task because no container instance "
                           "met all of its requirements. Reason: No Container Instances were found in your "
                           "capacity provider.",
            })
        return service

    EC2ContainerServiceBackend.update_service = update_service


def deregistering_a_scalable_target_deletes_its_policies() -> None:
    """DeregisterScalableTarget in moto 5.2 keeps the target's scaling policies and scheduled actions.

    AWS: "Deregistering a scalable target deletes the scaling policies and the scheduled actions that are
    associated with it" (Application Auto Scaling API reference, DeregisterScalableTarget). `destroy` and
    turning frontend autoscaling off rely on it (steps/autoscaling.py).
    """
    from moto.applicationautoscaling.models import ApplicationAutoscalingBackend

    original = ApplicationAutoscalingBackend.deregister_scalable_target

    def deregister_scalable_target(self, namespace, r_id, dimension):
        original(self, namespace, r_id, dimension)
        for policy in [p for p in self.policies.values()
                       if (p.service_namespace, p.resource_id, p.scalable_dimension) == (namespace, r_id, dimension)]:
            # moto's own delete, which also deletes the CloudWatch alarms target tracking made.
            self.delete_scaling_policy(policy.policy_name, namespace, r_id, dimension)
        self.scheduled_actions = [a for a in self.scheduled_actions
                                  if (a.service_namespace, a.resource_id, a.scalable_dimension) != (namespace, r_id, dimension)]

    ApplicationAutoscalingBackend.deregister_scalable_target = deregister_scalable_target


PATCHES = (
    sessions_share_one_loader,
    deregistering_a_scalable_target_deletes_its_policies,
    nat_gateway_tag_filters,
    nat_gateway_deletion_frees_its_address,
    service_linked_role_names,
    dsql_endpoints,
    describe_all_capacity_providers,
    launch_template_user_data,
    launch_template_own_tags,
    ecs_service_fields,
    ecs_account_setting_defaults,
    ecs_agent_registration,
    task_level_resources,
    one_off_tasks,
    unplaceable_services,
    service_tasks,
    stop_task_after_its_instance_left,
    delete_cluster_with_tasks,
    slow_nat_gateways,
    slow_opensearch_domains,
    idle_dsql_clusters,
    one_request_at_a_time,
    call_latency,
    reset_drops_the_account,
    account_lookup_builds_nothing,
    managed_policies_parsed_once,
    tagging_api_resource_arn_lists,
    *deployment_patches.PATCHES,
    *backup_patches.PATCHES,
    *alerting_patches.PATCHES,
    moto_modules_listed_once,
    response_methods_listed_once,
    error_tables_built_once,
    backend_regions_listed_once,
    ec2_tags_read_by_id,
    ssm_parameters_found_by_name,
    kms_key_pairs_made_when_used,
    ec2_ids_drawn_at_once,
    request_action_found_once,
)


def apply() -> None:
    global _applied
    if _applied:
        return
    for patch in PATCHES:
        patch()
    _applied = True
