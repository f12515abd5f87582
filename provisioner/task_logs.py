"""The last lines a one-off or service task wrote, from its awslogs stream: what a failed schema task and a
failed deployment show beside their exit codes (README: "Upgrading Temporal", "provision schema")."""
from __future__ import annotations

from botocore.exceptions import ClientError

from provisioner.aws.session import Aws
from provisioner.errors import aws_failure, error_code

# Log lines shown from a task that failed.
LOG_TAIL = 20


def log_tail(aws: Aws, group: str, stream: str) -> list[str]:
    """The last LOG_TAIL lines of the stream; none if it was never written. The tail is a courtesy: a refused
    read is shown as one line, never raised, so it cannot hide the failure it accompanies."""
    try:
        events = aws.client("logs").get_log_events(logGroupName=group, logStreamName=stream, limit=LOG_TAIL,
                                                   startFromHead=False)["events"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return []
        return [f"(could not read the log: {aws_failure('read the task log', exc)})"]
    return [event["message"] for event in events][-LOG_TAIL:]
