"""Errors the CLI turns into one clear message and an exit code."""
from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError


class ProvisionError(Exception):
    """A failure the user can act on; the message says what happened and what to do."""


class BadInput(ProvisionError):
    """The config or arguments ask for what this account or region cannot give (exit 2, nothing changed)."""


def client_error(exc: BaseException) -> ClientError | None:
    """The AWS error behind `exc`, also when a wrapper (aws_failure) raised it."""
    while exc is not None:
        if isinstance(exc, ClientError):
            return exc
        exc = exc.__cause__
    return None


def error_code(exc: BaseException) -> str:
    cause = client_error(exc)
    return cause.response.get("Error", {}).get("Code", "") if cause else ""


def aws_failure(action: str, exc: BaseException) -> ProvisionError:
    """One typed error naming the action, e.g. 'Failed to create NAT gateway in subnet-1: ...'."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return ProvisionError(f"Failed to {action}: {err.get('Code')}: {err.get('Message')}")
    if isinstance(exc, BotoCoreError):
        return ProvisionError(f"Failed to {action}: {exc}")
    return ProvisionError(f"Failed to {action}: {exc!r}")
