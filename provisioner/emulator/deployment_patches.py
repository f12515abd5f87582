"""Emulator patches for ECS service deployments (README: "Upgrading Temporal"), apart from patches.py.

moto 5.2 keeps one deployment per service whatever UpdateService changes: a new task definition never
starts a new deployment, `rolloutState` stays what it was at create, and `deploymentConfiguration` (the
circuit breaker) does nothing. On AWS a new task definition (or forceNewDeployment) starts a new PRIMARY
deployment, IN_PROGRESS, beside the old one (ACTIVE) until the new one is COMPLETED; with the deployment
circuit breaker, a deployment whose tasks keep failing becomes FAILED and, with rollback on, "the service is
rolled back to the last deployment that completed successfully" (ECS API reference,
DeploymentCircuitBreaker; developer guide, deployment-circuit-breaker). `provision upgrade` and every wait
on a service read that (provisioner/rollout.py), so the emulator must show it.
"""
from __future__ import annotations

FAILING_DEPLOYMENTS_SETTING = "PROVISION_EMULATOR_FAILING_DEPLOYMENTS"
FAILING_IMAGES_SETTING = "PROVISION_EMULATOR_FAILING_IMAGES"
# DescribeServices answers a new deployment IN_PROGRESS this many times before it settles (COMPLETED or FAILED).
DESCRIBES_IN_PROGRESS = 1
# Tasks a failing deployment starts and loses before the breaker trips: a 1-replica service's threshold,
# 0.5 x desired clamped to 3..200 (ECS developer guide, deployment-circuit-breaker).
BREAKER_THRESHOLD = 3


def _failing_rules(raw: str) -> dict[tuple[str, str], int]:
    """`matching` or `matching=flaky,history`: the role whose service's next deployment fails, once, and the part of
    the new image's name that must match (any image when none is given)."""
    rules: dict[tuple[str, str], int] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        role, _, image = item.partition("=")
        rules[(role, image)] = 1
    return rules


def service_deployments() -> None:
    """A new task definition (or forceNewDeployment) starts a new deployment that rolls out, completes or fails.

    UpdateService with another task definition makes a new PRIMARY deployment (IN_PROGRESS) and keeps the
    old one as ACTIVE. DescribeServices answers it IN_PROGRESS once (DESCRIBES_IN_PROGRESS), then settles it:
    COMPLETED, with the old deployment gone and the service's tasks replaced by tasks of the new definition;
    or, once for each rule of the opt-in PROVISION_EMULATOR_FAILING_DEPLOYMENTS (`role` or `role=IMAGE-PART`:
    the next deployment of the service whose name ends in -role, to a definition whose image contains
    IMAGE-PART), FAILED as the circuit breaker leaves it (a failure that a rerun gets past, as after a fix):
    BREAKER_THRESHOLD stopped tasks of the new definition (exit code 1, stop reason "Essential container in
    task exited", a line in their log), `failedTasks`, the reason ECS gives, and, with rollback on, a new
    PRIMARY deployment back to the previous task definition, which completes on the next describe.
    """
    import os
    import uuid

    from moto.core.utils import unix_time_millis, utcnow
    from moto.ecs.models import EC2ContainerServiceBackend, Task, mock_random
    from moto.logs.models import logs_backends

    failing = _failing_rules(os.environ.get(FAILING_DEPLOYMENTS_SETTING, ""))
    original_update = EC2ContainerServiceBackend.update_service
    original_describe = EC2ContainerServiceBackend.describe_services

    def event(service, message: str) -> None:
        service.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": utcnow(),
                                  "message": f"(service {service.name}) {message}"})

    def start(service, task_definition: str, **tracked) -> dict:
        now = utcnow()
        deployment_id = f"ecs-svc/{mock_random.randint(0, 32**12)}"
        deployment = dict(service.deployments[0]) | {
            "id": deployment_id, "status": "PRIMARY", "taskDefinition": task_definition,
            "rolloutState": "IN_PROGRESS", "rolloutStateReason": f"ECS deployment {deployment_id} in progress.",
            "failedTasks": 0, "createdAt": now, "updatedAt": now,
        }
        for older in service.deployments:
            older["status"] = "ACTIVE"
        service.deployments.insert(0, deployment)
        rollouts = getattr(service, "emulated_rollouts", None) or {}
        rollouts[deployment_id] = {"describes": 0} | tracked
        service.emulated_rollouts = rollouts
        return deployment

    def update_service(self, service_properties):
        cluster = service_properties.get("cluster", "default")
        name = service_properties.get("service", "").split("/")[-1]
        force = bool(service_properties.get("force_new_deployment"))
        before = self._get_service(cluster, name)
        previous = before.task_definition
        kept = [dict(d) for d in before.deployments]
        service = original_update(self, service_properties)
        if service.task_definition == previous and not force:
            return service
        # The earlier patches made the first deployment follow the new definition: it is the old one again.
        service.deployments = kept or service.deployments
        images = " ".join(c.get("image", "") for c in self.describe_task_definition(
            service.task_definition).container_definitions)
        rule = next((r for r, left in failing.items() if left and service.name.endswith(f"-{r[0]}") and r[1] in images),
                    None)
        fails = rule is not None
        if fails:
            failing[rule] -= 1
        start(service, service.task_definition, fails=fails, previous=previous)
        return service

    def replace_tasks(backend, service) -> None:
        """Tasks of older definitions stop; the count is restored with the new one (service_tasks starts them)."""
        cluster = backend.clusters.get(service.cluster_name)
        if cluster is None:
            return
        for task in backend.tasks.get(cluster.name, {}).values():
            if (task.group == f"service:{service.name}" and task.desired_status == "RUNNING"
                    and task.task_definition_arn != service.task_definition):
                task.desired_status, task.last_status = "STOPPED", "STOPPED"
                task.stopped_reason = "Scaling activity initiated by (deployment ecs-svc)"
                task.stop_code = "ServiceSchedulerInitiated"
                task.stopped_at = utcnow()
                for container in task.containers:
                    container.last_status, container.exitCode = "STOPPED", 0
        if service.desired_count:
            original_update(backend, {"cluster": service.cluster_name, "service": service.name,
                                      "desired_count": service.desired_count})

    def failed_tasks(backend, service, task_definition: str) -> None:
        """The tasks the breaker counted: started from the new definition, exited 1, each with its log line."""
        cluster = backend.clusters.get(service.cluster_name)
        instances = list(backend.container_instances.get(service.cluster_name, {}).values())
        if cluster is None or not instances:
            return
        definition = backend.describe_task_definition(task_definition)
        container = definition.container_definitions[0]
        options = container.get("logConfiguration", {}).get("options", {})
        logs = logs_backends[backend.account_id][options.get("awslogs-region", backend.region_name)]
        for _ in range(BREAKER_THRESHOLD):
            task = Task(cluster, definition, instances[0].container_instance_arn, None, backend=backend,
                        group=f"service:{service.name}", started_by=service.deployments[0]["id"],
                        networking_configuration=getattr(service, "network_configuration", None))
            task._transitions = [("STOPPED", "STOPPED")]
            task.desired_status, task.last_status = "STOPPED", "STOPPED"
            task.stopped_reason = "Essential container in task exited"
            task.stop_code = "EssentialContainerExited"
            task.stopped_at = task.execution_stopped_at = utcnow()
            for item in task.containers:
                item.last_status, item.exitCode = "STOPPED", 1
            backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
            group = options.get("awslogs-group")
            if group and group in logs.groups:
                stream = f"{options.get('awslogs-stream-prefix', 'ecs')}/{container['name']}/{task.id}"
                logs.create_log_stream(group, stream)
                logs.put_log_events(group, stream, [{"timestamp": int(unix_time_millis()), "message": line} for line in (
                    f"[emulator] {container['name']} started from {container.get('image')}",
                    f"[emulator] failed: {FAILING_DEPLOYMENTS_SETTING} names it",
                )])

    def settle(backend, service, deployment: dict, tracked: dict) -> None:
        if not tracked.get("fails"):
            deployment.update(rolloutState="COMPLETED", rolloutStateReason=f"ECS deployment {deployment['id']} completed.",
                              updatedAt=utcnow())
            service.deployments = [deployment]
            replace_tasks(backend, service)
            event(service, f"(deployment {deployment['id']}) deployment completed.")
            event(service, "has reached a steady state.")
            return
        failed_tasks(backend, service, deployment["taskDefinition"])
        deployment.update(rolloutState="FAILED", failedTasks=BREAKER_THRESHOLD, updatedAt=utcnow(),
                          rolloutStateReason="ECS deployment circuit breaker: tasks failed to start.")
        event(service, f"(deployment {deployment['id']}) deployment failed: tasks failed to start.")
        breaker = (getattr(service, "deployment_configuration", None) or {}).get("deploymentCircuitBreaker", {})
        if breaker.get("rollback") and tracked.get("previous"):
            service.task_definition = tracked["previous"]
            back = start(service, tracked["previous"])
            # The rollback deployment takes over the tasks of the one it returns to: two remain, it and the failed one.
            service.deployments = [back, deployment]
            event(service, f"rolling back to deployment {back['id']}.")

    def describe_services(self, cluster_str, service_names_or_arns):
        found, failures = original_describe(self, cluster_str, service_names_or_arns)
        for service in found:
            rollouts = getattr(service, "emulated_rollouts", None) or {}
            for deployment in list(service.deployments):
                tracked = rollouts.get(deployment["id"])
                if tracked is None or deployment.get("rolloutState") != "IN_PROGRESS":
                    continue
                tracked["describes"] += 1
                if tracked["describes"] > DESCRIBES_IN_PROGRESS:
                    settle(self, service, deployment, tracked)
            # The FAILED deployment leaves once the rollback deployment has completed.
            if service.deployments and service.deployments[0].get("rolloutState") == "COMPLETED":
                service.deployments = service.deployments[:1]
        return found, failures

    EC2ContainerServiceBackend.update_service = update_service
    EC2ContainerServiceBackend.describe_services = describe_services


def failing_images() -> None:
    """Opt-in: one-off tasks (RunTask) of images named in PROVISION_EMULATOR_FAILING_IMAGES exit 1.

    A broken admin-tools image makes `provision upgrade`'s schema task fail while the one `provision schema`
    ran from the old image worked; the hook by task family (patches.one_off_tasks) would fail both. The image
    is matched by substring of the container's image, as the settings of the other hooks match names.
    """
    import os

    from moto.ecs.models import EC2ContainerServiceBackend

    images = [i for i in os.environ.get(FAILING_IMAGES_SETTING, "").split(",") if i]
    if not images:
        return
    original_run = EC2ContainerServiceBackend.run_task

    def run_task(self, *args, **kwargs):
        tasks = original_run(self, *args, **kwargs)
        for task in tasks:
            emulated = getattr(task, "emulated", None)
            if emulated and any(image in emulated["definition"].container_definitions[0].get("image", "")
                                for image in images):
                emulated["exit"] = 1
        return tasks

    EC2ContainerServiceBackend.run_task = run_task


PATCHES = (
    service_deployments,
    failing_images,
)
