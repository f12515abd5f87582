"""Errors the CLI turns into one clear message and an exit code."""
from __future__ import annotations

import re

from botocore.exceptions import BotoCoreError, ClientError


class ProvisionError(Exception):
    """A failure the user can act on; the message says what happened and what to do."""


class BadInput(ProvisionError):
    """The config or arguments ask for what this account or region cannot give (exit 2, nothing changed)."""


class AmbiguousCreate(ProvisionError):
    """A create whose answer was lost (connection dropped, timeout, 5xx): AWS may have acted or not.

    Raised instead of botocore's resend, which for a call without an idempotency token makes a twin;
    the caller looks the resource up before any second attempt (converge.create_without_twins).
    """

    def __init__(self, operation: str, cause: str):
        super().__init__(f"no answer to {operation} ({cause}); it may or may not have been done")
        self.operation = operation


def client_error(exc: BaseException) -> ClientError | None:
    """The AWS error behind `exc`, also when a wrapper (aws_failure) raised it."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ClientError):
            return current
        current = current.__cause__
    return None


def error_code(exc: BaseException) -> str:
    cause = client_error(exc)
    return cause.response.get("Error", {}).get("Code", "") if cause else ""


def one_line(text: str, limit: int = 300) -> str:
    """An AWS message as one readable line: a proxy's HTML error page or a stack dump must not flood the terminal."""
    text = re.sub(r"<[^>]+>", " ", str(text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def aws_failure(action: str, exc: BaseException) -> ProvisionError:
    """One typed error naming the action, e.g. 'Failed to create NAT gateway in subnet-1: ...'."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        return ProvisionError(f"Failed to {action}: {code}: {one_line(err.get('Message') or '')}")
    if isinstance(exc, BotoCoreError):
        return ProvisionError(f"Failed to {action}: {one_line(str(exc))}")
    return ProvisionError(f"Failed to {action}: {exc!r}")
