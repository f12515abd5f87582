"""`provision logs SERVICE`: the CloudWatch Logs of a service's tasks (or a schema task's), one line per event,
each prefixed with the task's short ID and the container that wrote it.

Where a task writes: each container of its task definition has an awslogs configuration (group, stream
prefix); the awslogs driver names the stream `<prefix>/<container name>/<task ID>` (ECS developer guide,
"Using the awslogs log driver", awslogs-stream-prefix). The task definition is read from ECS, not rebuilt
from the config, so what is read is what the task really used.

Reading never holds a log group in memory: the default tail is GetLogEvents of the last `lines` events
of each stream; `--since` pages through FilterLogEvents over exactly those streams, printing page by
page; `--follow` polls FilterLogEvents from the last event seen, through the waiter's pause, until Ctrl-C.

Why polling rather than StartLiveTail: a Live Tail session is billed per minute of session, ends after three
hours, and samples down to 500 events a second, dropping the rest (CloudWatch Logs API reference,
StartLiveTail); polling every two seconds misses no line and costs only its calls. (moto's StartLiveTail
returns the stored events once and closes, so the emulator could not show a live session either.)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from botocore.exceptions import ClientError

from provisioner import operations
from provisioner.aws import waiter
from provisioner.aws.session import Aws
from provisioner.commands import service_tasks
from provisioner.config import Config
from provisioner.engine import Engine
from provisioner.errors import BadInput, ProvisionError, error_code

# FilterLogEvents takes at most 100 stream names a call (CloudWatch Logs API reference, logStreamNames).
STREAMS_PER_CALL = 100
# How often --follow asks for new events: CloudWatch Logs delivers awslogs events within seconds.
FOLLOW_INTERVAL_SECONDS = 2.0
SINCE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Stream:
    group: str
    name: str
    task_arn: str
    container: str


@dataclass(frozen=True)
class Line:
    task_arn: str
    container: str
    timestamp: int  # milliseconds since the epoch, as CloudWatch Logs gives it
    message: str

    def shown(self) -> str:
        return f"{service_tasks.short_id(self.task_arn)} {self.container} | {self.message.rstrip()}"

    def as_json(self) -> dict:
        return {"task": service_tasks.task_id(self.task_arn), "container": self.container,
                "timestamp": datetime.fromtimestamp(self.timestamp / 1000, timezone.utc).isoformat(),
                "message": self.message.rstrip("\n")}


def parse_since(text: str) -> int:
    """`10m`, `2h`, `30s`, `1d` as seconds."""
    number, unit = text[:-1], text[-1:]
    if unit not in SINCE_UNITS or not number.isdigit() or int(number) == 0:
        raise BadInput(f"logs: --since {text!r} is not a duration: use a whole number and one of s, m, h, d (10m, 2h).")
    return int(number) * SINCE_UNITS[unit]


def chosen_tasks(engine: Engine, target: str, task: str | None, previous: bool) -> list[dict]:
    """The tasks to read: the running ones (a schema task, a one-off, its latest run when none runs), the one
    `task` names (running or stopped), or with `previous` the most recently stopped one."""
    where = service_tasks.locate(engine, target)
    running = service_tasks.tasks(engine, where, "RUNNING")
    if task is None and not previous and (running or target not in service_tasks.SCHEMA_TARGETS):
        if not running:
            raise ProvisionError(f"no running task of {target}: 'provision logs {target} --previous' shows the last "
                                 "stopped one's logs; 'provision status' shows why tasks stopped.")
        return running
    stopped = service_tasks.tasks(engine, where, "STOPPED")
    if task is not None:
        found = [t for t in running + stopped if service_tasks.task_id(t["taskArn"]).startswith(task)]
        if len(found) != 1:
            known = ", ".join(service_tasks.short_id(t["taskArn"]) for t in running + stopped) or "none"
            raise BadInput(f"logs: --task {task!r} matches {len(found)} task(s) of {target} (its tasks: {known}).")
        return found
    latest = service_tasks.latest_stopped(stopped, 1)
    if not latest:
        raise ProvisionError(f"no stopped task of {target} to show: ECS keeps a stopped task for about an hour.")
    return latest


def streams_of(engine: Engine, described: list[dict]) -> list[Stream]:
    """Each container's awslogs stream, from the task definition each task runs."""
    ecs = engine.aws.client("ecs")
    definitions: dict[str, dict] = {}
    streams = []
    for task in described:
        arn = task["taskDefinitionArn"]
        if arn not in definitions:
            definitions[arn] = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        for container in definitions[arn]["containerDefinitions"]:
            logging = container.get("logConfiguration") or {}
            options = logging.get("options", {})
            if logging.get("logDriver") != "awslogs" or "awslogs-group" not in options:
                continue
            prefix = options.get("awslogs-stream-prefix")
            # Without a prefix the awslogs driver names streams by container ID, which no API maps back.
            if prefix:
                name = f"{prefix}/{container['name']}/{service_tasks.task_id(task['taskArn'])}"
                streams.append(Stream(options["awslogs-group"], name, task["taskArn"], container["name"]))
    return streams


def tail(aws: Aws, streams: list[Stream], lines: int) -> list[Line]:
    """The last `lines` events of each stream (one GetLogEvents each), all in time order."""
    logs = aws.client("logs")
    found: list[Line] = []
    for stream in streams:
        try:
            events = logs.get_log_events(logGroupName=stream.group, logStreamName=stream.name, limit=lines,
                                         startFromHead=False)["events"]
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                continue  # the task has not written anything yet
            raise
        found += [Line(stream.task_arn, stream.container, e["timestamp"], e["message"]) for e in events]
    return sorted(found, key=lambda line: line.timestamp)


def since(aws: Aws, streams: list[Stream], start_ms: int) -> Iterator[Line]:
    """Every event from `start_ms` on, page by page (FilterLogEvents over these streams only)."""
    logs = aws.client("logs")
    by_name = {(s.group, s.name): s for s in streams}
    groups = sorted({s.group for s in streams})
    for group in groups:
        names = sorted(name for g, name in by_name if g == group)
        for start in range(0, len(names), STREAMS_PER_CALL):
            pages = logs.get_paginator("filter_log_events").paginate(
                logGroupName=group, logStreamNames=names[start:start + STREAMS_PER_CALL], startTime=start_ms)
            try:
                for page in pages:
                    for event in page["events"]:
                        stream = by_name[(group, event["logStreamName"])]
                        yield Line(stream.task_arn, stream.container, event["timestamp"], event["message"])
            except ClientError as exc:
                if error_code(exc) != "ResourceNotFoundException":
                    raise


def follow(aws: Aws, streams: list[Stream], shown: list[Line], emit: Callable[[Line], None],
           interval: float = FOLLOW_INTERVAL_SECONDS) -> None:
    """Print new events as they arrive, after the `shown` ones (those of the newest millisecond already printed),
    until interrupted (KeyboardInterrupt reaches the caller). The streams are those of the tasks chosen at the start.

    Each poll asks from the newest timestamp seen; events of that same millisecond already printed are
    skipped by their (task, container, timestamp, message)."""
    newest = max((line.timestamp for line in shown), default=now_ms())
    seen = {(line.task_arn, line.container, line.timestamp, line.message) for line in shown if line.timestamp == newest}
    while True:
        for line in since(aws, streams, newest):
            key = (line.task_arn, line.container, line.timestamp, line.message)
            if key in seen:
                continue
            if line.timestamp > newest:
                newest, seen = line.timestamp, set()
            seen.add(key)
            emit(line)
        waiter.pause(interval)


def now_ms() -> int:
    return int(time.time() * 1000)


def find_log_streams(config: Config, aws: Aws, state_path: Path | str | None, target: str, task: str | None,
                     previous: bool, **kwargs) -> list:
    """`provision logs`: the awslogs streams of the chosen tasks; read-only, and the state is let go before any
    log is read, so that a long --follow holds no lock."""
    with operations.open_engine(config, aws, state_path, "logs", quiet=True, **kwargs) as engine:
        return streams_of(engine, chosen_tasks(engine, target, task, previous))
