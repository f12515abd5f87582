"""`provision tunnel grafana|ui`: open Grafana or the Temporal UI on localhost, through SSM.

Neither has a public address. The tunnel is an SSM port-forwarding session
(AWS-StartPortForwardingSessionToRemoteHost) to a container instance of the cluster, which forwards
to the task's private IP: the task's security group admits its port from the instances' group only.
It needs the AWS CLI and its session-manager-plugin on this machine.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass

from provisioner.ecs_layout import GRAFANA_PORT, UI_PORT
from provisioner.engine import Engine
from provisioner.errors import BadInput, ProvisionError

PORTS = {"grafana": GRAFANA_PORT, "ui": UI_PORT}
DOCUMENT = "AWS-StartPortForwardingSessionToRemoteHost"
INSTALL = {
    "aws": "install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html",
    "session-manager-plugin": "install the Session Manager plugin: "
                              "https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html",
}


@dataclass(frozen=True)
class Tunnel:
    service: str
    instance_id: str
    task_ip: str
    remote_port: int
    local_port: int
    region: str

    def command(self) -> list[str]:
        parameters = {"host": [self.task_ip], "portNumber": [str(self.remote_port)],
                      "localPortNumber": [str(self.local_port)]}
        return ["aws", "ssm", "start-session", "--region", self.region, "--target", self.instance_id,
                "--document-name", DOCUMENT, "--parameters", json.dumps(parameters, separators=(",", ":"))]

    @property
    def url(self) -> str:
        return f"http://localhost:{self.local_port}"


def find(engine: Engine, service: str, local_port: int | None) -> Tunnel:
    """A running task of the service: its private IP, and the instance it runs on to go through."""
    ecs = engine.aws.client("ecs")
    cluster = engine.state.get("cluster", "cluster")
    record = engine.state.get("services", f"svc-{service}")
    if cluster is None or record is None:
        raise BadInput(f"the {service} service does not exist yet: run 'provision up' first.")
    arns = ecs.list_tasks(cluster=cluster["name"], serviceName=record["name"], desiredStatus="RUNNING")["taskArns"]
    tasks = ecs.describe_tasks(cluster=cluster["name"], tasks=arns)["tasks"] if arns else []
    for task in tasks:
        if task.get("lastStatus") != "RUNNING" or not task.get("containerInstanceArn"):
            continue
        details = {d["name"]: d["value"] for a in task.get("attachments", []) for d in a.get("details", [])}
        if "privateIPv4Address" not in details:
            continue
        (instance,) = ecs.describe_container_instances(
            cluster=cluster["name"], containerInstances=[task["containerInstanceArn"]])["containerInstances"]
        return Tunnel(service, instance["ec2InstanceId"], details["privateIPv4Address"], PORTS[service],
                      local_port or PORTS[service], engine.aws.region)
    raise ProvisionError(
        f"no running task of the {service} service to open a tunnel to: start it with "
        f"'provision scale {service}=1' (or 'provision scale up')."
    )


def check_tools(purpose: str = "the tunnel") -> None:
    """The AWS CLI and the Session Manager plugin, which `tunnel` and `exec` both run."""
    missing = [f"{tool}: {hint}" for tool, hint in INSTALL.items() if shutil.which(tool) is None]
    if missing:
        raise BadInput(f"{purpose} needs, on this machine:\n  " + "\n  ".join(missing))


def open_tunnel(tunnel: Tunnel) -> int:
    """Run the session in the foreground until the user stops it (Ctrl-C)."""
    return subprocess.run(tunnel.command()).returncode
