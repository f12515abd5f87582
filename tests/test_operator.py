"""The operator commands on a running stack: `logs`, `exec`, the services in `status`; and the CLI's conventions
(`--version`, shell completion, help without type hints, the emulator as an extra)."""
from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from provisioner.aws.reads import is_mutating
from provisioner.cli import app
from tests.conftest import (
    REGION,
    Requests,
    config_text,
    make_config,
    new_aws,
    on_cli_sessions,
    reset_account,
    run_cli,
    up_ok,
)
from tests.test_packaging import WITHOUT_MOTO

SERVICE_TASK_LOG = "[emulator] running"


@pytest.fixture(scope="module")
def running(moto_endpoint, tmp_path_factory):
    """A stack with two history tasks, then scaled to one: one running task stopped by the scale-in."""
    reset_account(moto_endpoint)
    where = tmp_path_factory.mktemp("operator")
    config_file, state = where / "provision.toml", where / "state.json"
    config_file.write_text(config_text())
    up_ok(make_config(), new_aws(), state)
    for counts in (("history=2", "ui=1"), ("history=1",)):
        result = run_cli("scale", *counts, "--no-wait", config_file=config_file, state=state)
        assert result.exit_code == 0, result.output
    return config_file, state


def history_tasks(desired_status: str) -> list[str]:
    ecs = boto3.client("ecs", region_name=REGION)
    cluster = ecs.list_clusters()["clusterArns"][0]
    service = next(arn for arn in ecs.list_services(cluster=cluster)["serviceArns"] if arn.endswith("-history"))
    return ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus=desired_status)["taskArns"]


def short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1][:8]


def test_logs_print_each_running_tasks_lines_with_its_short_id_and_container(running):
    config_file, state = running
    result = run_cli("logs", "history", config_file=config_file, state=state)
    assert result.exit_code == 0, result.output
    (task,) = history_tasks("RUNNING")
    assert f"{short(task)} history | {SERVICE_TASK_LOG}" in result.stdout.splitlines()
    (stopped,) = history_tasks("STOPPED")
    assert short(stopped) not in result.stdout


def test_logs_previous_shows_the_most_recently_stopped_task(running):
    config_file, state = running
    result = run_cli("logs", "history", "--previous", config_file=config_file, state=state)
    assert result.exit_code == 0, result.output
    (stopped,) = history_tasks("STOPPED")
    lines = result.stdout.splitlines()
    assert f"{short(stopped)} history | [emulator] SIGTERM: stopping" in lines
    assert all(line.startswith(short(stopped)) for line in lines)


def test_logs_task_since_and_json_give_one_object_a_line_of_that_task(running):
    config_file, state = running
    (stopped,) = history_tasks("STOPPED")
    result = run_cli("logs", "history", "--task", short(stopped), "--since", "1h", "--json",
                     config_file=config_file, state=state)
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events and {e["task"] for e in events} == {stopped.rsplit("/", 1)[-1]}
    assert {e["container"] for e in events} == {"history"}
    assert [e["message"] for e in events][-1] == "[emulator] SIGTERM: stopping"


def recorded_requests(monkeypatch) -> Requests:
    """Every request of the sessions the CLI opens, as the tool wrote it."""
    sent = Requests()
    on_cli_sessions(monkeypatch, "provide-client-params", sent)
    return sent


def test_logs_read_only_the_tasks_streams_page_by_page_and_write_nothing(running, monkeypatch):
    config_file, state = running
    sent = recorded_requests(monkeypatch)
    before = int(time.time() * 1000)
    assert run_cli("logs", "history", "--since", "1h", config_file=config_file, state=state).exit_code == 0
    assert run_cli("logs", "history", "-n", "5", config_file=config_file, state=state).exit_code == 0
    (task,) = history_tasks("RUNNING")
    stream = f"history/history/{task.rsplit('/', 1)[-1]}"
    group = f"/ecs/{make_config().project}/history"
    (filtered,) = sent.of("logs.FilterLogEvents")
    assert (filtered["logGroupName"], filtered["logStreamNames"]) == (group, [stream])
    assert before - 3600 * 1000 - 60_000 <= filtered["startTime"] <= before - 3600 * 1000 + 60_000
    assert sent.of("logs.GetLogEvents") == [
        {"logGroupName": group, "logStreamName": stream, "limit": 5, "startFromHead": False}]
    assert not [name for name, _ in sent.sent if is_mutating(name.split(".")[-1])]


def test_logs_refuse_an_unknown_service_and_a_bad_duration(running):
    config_file, state = running
    unknown = run_cli("logs", "histroy", config_file=config_file, state=state)
    assert unknown.exit_code == 2 and "unknown service 'histroy'" in unknown.output
    bad = run_cli("logs", "history", "--since", "ten", config_file=config_file, state=state)
    assert bad.exit_code == 2 and "--since 'ten' is not a duration" in bad.output


def test_logs_follow_prints_new_lines_and_ends_cleanly_on_ctrl_c(running):
    config_file, state = running
    (task,) = history_tasks("RUNNING")
    follower = subprocess.Popen(
        [sys.executable, "-m", "provisioner", "logs", "history", "--follow", "--config", str(config_file),
         "--state", str(state)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    printed: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [printed.put(line) for line in follower.stdout], daemon=True).start()

    def next_line() -> str:
        return printed.get(timeout=60)  # raises Empty if the follower prints nothing

    try:
        assert next_line().startswith(f"{short(task)} history | ")
        logs = boto3.client("logs", region_name=REGION)
        group = f"/ecs/{make_config().project}/history"
        logs.put_log_events(logGroupName=group, logStreamName=f"history/history/{task.rsplit('/', 1)[-1]}",
                            logEvents=[{"timestamp": int(time.time() * 1000) + 1000,
                                        "message": "a line written after the start"}])
        while "a line written after the start" not in (line := next_line()):
            assert line, "the follower ended"
        follower.send_signal(signal.SIGINT)
        code = follower.wait(timeout=30)
    finally:
        follower.kill()
    assert code == 130
    assert "Traceback" not in follower.stderr.read()


def test_exec_print_shows_the_execute_command_session_it_would_start(running):
    config_file, state = running
    (task,) = history_tasks("RUNNING")
    shell = run_cli("exec", "history", "--print", config_file=config_file, state=state)
    assert shell.exit_code == 0, shell.output
    cluster = f"{make_config().project}-cluster"
    assert shlex.split(shell.stdout) == [
        "aws", "ecs", "execute-command", "--region", REGION, "--cluster", cluster, "--task", task,
        "--container", "history", "--interactive", "--command", "/bin/sh"]
    command = CliRunner().invoke(app, ["exec", "history", "--print", "--task", short(task), "--config", str(config_file),
                                       "--state", str(state), "--", "ls", "-la", "/etc/temporal"])
    assert command.exit_code == 0, command.output
    assert shlex.split(command.stdout)[-1] == "ls -la /etc/temporal"


def test_exec_without_the_session_manager_plugin_says_how_to_install_it(running, tmp_path, monkeypatch):
    config_file, state = running
    monkeypatch.setenv("PATH", str(tmp_path))  # neither aws nor session-manager-plugin
    result = run_cli("exec", "history", config_file=config_file, state=state)
    assert result.exit_code == 2
    assert "ECS Exec needs, on this machine" in result.output
    assert "session-manager-plugin: install the Session Manager plugin" in result.output


def test_exec_refuses_a_stopped_or_unknown_task(running):
    config_file, state = running
    (stopped,) = history_tasks("STOPPED")
    result = run_cli("exec", "history", "--print", "--task", short(stopped), config_file=config_file, state=state)
    assert result.exit_code == 2 and "matches 0 running task(s) of history" in result.output


def test_exec_names_a_task_launched_before_exec_was_enabled(running):
    """As in AWS: a task keeps the enableExecuteCommand its service had when it was launched."""
    config_file, state = running
    ecs = boto3.client("ecs", region_name=REGION)
    cluster = f"{make_config().project}-cluster"
    ui = f"{make_config().project}-ui"
    (earlier,) = ecs.list_tasks(cluster=cluster, serviceName=ui)["taskArns"]
    ecs.update_service(cluster=cluster, service=ui, enableExecuteCommand=False, desiredCount=2)
    (later,) = set(ecs.list_tasks(cluster=cluster, serviceName=ui)["taskArns"]) - {earlier}
    ecs.update_service(cluster=cluster, service=ui, enableExecuteCommand=True)
    refused = run_cli("exec", "ui", "--print", "--task", short(later), config_file=config_file, state=state)
    assert refused.exit_code == 1
    assert f"task {short(later)} of ui was started without ECS Exec" in refused.output
    assert f"--service {ui} --force-new-deployment" in refused.output
    assert run_cli("exec", "ui", "--print", "--task", short(earlier), config_file=config_file, state=state).exit_code == 0
    ecs.update_service(cluster=cluster, service=ui, desiredCount=1)  # back to the recorded count


def test_exec_names_an_exec_agent_that_is_not_running(running):
    """ECS reports each container's ExecuteCommandAgent (DescribeTasks managedAgents: PENDING, RUNNING, STOPPED);
    the emulator's always runs, so the described task is the emulator's with the agent as an old ECS agent leaves it."""
    from provisioner.commands.exec_task import refusal
    from provisioner.commands.service_tasks import Where

    ecs = boto3.client("ecs", region_name=REGION)
    cluster = f"{make_config().project}-cluster"
    (task,) = ecs.describe_tasks(cluster=cluster, tasks=history_tasks("RUNNING"))["tasks"]
    where = Where(cluster, f"{make_config().project}-history", None)
    assert refusal(task, "history", where) is None
    for agents, state in (([{"name": "ExecuteCommandAgent", "lastStatus": "STOPPED"}], "STOPPED"), ([], "not reported")):
        task["containers"][0]["managedAgents"] = agents
        message = refusal(task, "history", where)
        assert message.startswith(f"the ECS Exec agent of task {short(task['taskArn'])} (history) is {state}, not RUNNING")
        assert "older than 1.50.2" in message


def test_status_tells_each_services_counts_rollout_image_and_why_tasks_stopped(running):
    config_file, state = running
    result = run_cli("status", "--json", config_file=config_file, state=state)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["resources"] and all(r["status"] == "ok" for r in report["resources"])
    services = {s["service"]: s for s in report["services"]}
    history = services["history"]
    assert (history["desired"], history["running"], history["image_tag"]) == (1, 1, make_config().temporal.server_image.rsplit(":", 1)[1])
    assert history["rollout"]
    (stopped,) = history_tasks("STOPPED")
    assert history["stopped"] == [{
        "task": short(stopped), "stopped_at": history["stopped"][0]["stopped_at"], "stop_code": "ServiceSchedulerInitiated",
        "reason": "Scaling activity initiated by (deployment ecs-svc)", "exit_codes": {"history": 0}}]
    shown = run_cli("status", config_file=config_file, state=state)
    assert f"stopped {short(stopped)}" in shown.stdout and "Scaling activity initiated by" in shown.stdout
    assert "history    1/1 running, 0 pending" in shown.stdout


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_names_the_tool_and_the_temporal_server_it_deploys(flag):
    result = CliRunner().invoke(app, [flag])
    assert result.exit_code == 0
    first, second = result.stdout.splitlines()
    assert first.startswith("provision 0.")
    assert second.startswith("Temporal server: fork (iw/temporal") and "reports 1.29.0" in second


def test_completion_script_is_generated_for_bash():
    provision = Path(sys.executable).parent / "provision"  # the installed command, as a shell completes it
    # typer detects the user's shell from the process tree, which fails where no shell is a parent (a job
    # started in the background, some CI runners); its own switch takes the shell as an argument instead.
    result = subprocess.run([provision, "--show-completion", "bash"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert result.returncode == 0, result.stderr
    assert "_provision_completion" in result.stdout and "complete " in result.stdout


def every_command(group, path=()):
    import typer.main

    command = typer.main.get_command(group) if not hasattr(group, "commands") else group
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        if hasattr(sub, "commands"):
            yield from every_command(sub, (*path, name))
        else:
            yield (*path, name)


def test_help_shows_no_python_type_hints():
    for path in every_command(app):
        result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
        assert result.exit_code == 0, (path, result.output)
        for hint in ("<bool>", "<str>", "<path>"):
            assert hint not in result.stdout, f"provision {' '.join(path)} --help shows {hint}"




@pytest.mark.parametrize("command", [["plan"], ["status"], ["outputs"], ["scale"], ["schema"], ["cost"],
                                     ["state", "history"], ["logs"]])
def test_every_command_that_prints_a_table_takes_json(command):
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0 and "--json" in result.stdout


def test_emulator_start_without_the_extra_names_the_command_that_installs_it(tmp_path):
    result = subprocess.run([sys.executable, "-c", WITHOUT_MOTO, "emulator", "start"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "pip install 'provision[emulator]'" in result.stderr
    assert not (tmp_path / ".provision").exists()
