"""`provision exec SERVICE [--task ID] [-- COMMAND...]`: a shell (or one command) inside a running task, through ECS Exec.

ECS Exec is the ExecuteCommand API plus a Session Manager session that the AWS CLI hands to the
session-manager-plugin, as `provision tunnel` does for its port forward (the same tools, the same install
hints). The services are created with `enableExecuteCommand` and their containers run an init process,
as ECS Exec needs. ECS refuses ExecuteCommand on a task started before exec was enabled on its service, and
on one whose ExecuteCommandAgent is not RUNNING (an ECS agent older than 1.50.2, or an agent that could
not start): both are said here before the CLI is run (ECS developer guide, "Troubleshooting issues with
ECS Exec"; DescribeTasks gives `enableExecuteCommand` and each container's `managedAgents`).
"""
from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from provisioner import operations
from provisioner.aws.session import Aws
from provisioner.commands import service_tasks
from provisioner.config import Config
from provisioner.engine import Engine
from provisioner.errors import BadInput, ProvisionError
from provisioner.steps.ecs_services import EXEC_PROGRAM

AGENT = "ExecuteCommandAgent"


@dataclass(frozen=True)
class Session:
    region: str
    cluster: str
    task_arn: str
    container: str
    command: str

    def cli(self) -> list[str]:
        """The AWS CLI call: it sends ExecuteCommand (cluster, task, container, command, interactive) and starts
        the session-manager-plugin with the session it returns."""
        return ["aws", "ecs", "execute-command", "--region", self.region, "--cluster", self.cluster,
                "--task", self.task_arn, "--container", self.container, "--interactive", "--command", self.command]


def find(engine: Engine, target: str, task: str | None, command: list[str]) -> Session:
    if target in service_tasks.SCHEMA_TARGETS:
        raise BadInput(f"exec: {target} is a one-off task with nothing to exec into; 'provision logs {target}' "
                       "shows what it did.")
    where = service_tasks.locate(engine, target)
    running = [t for t in service_tasks.tasks(engine, where, "RUNNING") if t.get("lastStatus") == "RUNNING"]
    if task is not None:
        running = [t for t in running if service_tasks.task_id(t["taskArn"]).startswith(task)]
        if len(running) != 1:
            raise BadInput(f"exec: --task {task!r} matches {len(running)} running task(s) of {target}.")
    if not running:
        raise ProvisionError(f"no running task of {target} to exec into: start it with 'provision scale {target}=1' "
                             "(or 'provision scale up').")
    chosen = running[0]
    refused = refusal(chosen, target, where)
    if refused:
        raise ProvisionError(refused)
    shown = shlex.join(command) if command else EXEC_PROGRAM.get(target, "/bin/sh")
    return Session(engine.aws.region, where.cluster, chosen["taskArn"], target, shown)


def refusal(task: dict, target: str, where: service_tasks.Where) -> str | None:
    """Why ECS would refuse ExecuteCommand on this described task, and what to do; None if it would not."""
    short = service_tasks.short_id(task["taskArn"])
    if not task.get("enableExecuteCommand"):
        return (f"task {short} of {target} was started without ECS Exec (enableExecuteCommand is off on the task: it "
                f"was launched before exec was enabled on the service). Replace its tasks with 'aws ecs update-service "
                f"--cluster {where.cluster} --service {where.service} --force-new-deployment', then try again.")
    container = next((c for c in task.get("containers", []) if c.get("name") == target), None)
    if container is None:
        return f"task {short} of {target} has no container named {target}."
    agent = next((a for a in container.get("managedAgents", []) if a.get("name") == AGENT), None)
    if agent is None or agent.get("lastStatus") != "RUNNING":
        state = agent.get("lastStatus", "not reported") if agent else "not reported"
        return (f"the ECS Exec agent of task {short} ({target}) is {state}, not RUNNING: the instance's ECS agent may be "
                "older than 1.50.2 (ECS Exec's minimum) or the agent could not start. Replace the node's instances "
                "with the current ECS-optimized AMI (an instance refresh of its Auto Scaling group), or start a new "
                "task; 'provision status' shows the service's tasks.")
    return None


def run(session: Session) -> int:
    """The session in the foreground; the AWS CLI passes Ctrl-C on to the remote shell."""
    return subprocess.run(session.cli()).returncode


def find_exec_session(config: Config, aws: Aws, state_path: Path | str | None, target: str, task: str | None,
                      command: list[str], **kwargs):
    """`provision exec`: the ECS Exec session to start; read-only."""
    with operations.open_engine(config, aws, state_path, "exec", quiet=True, **kwargs) as engine:
        return find(engine, target, task, command)
