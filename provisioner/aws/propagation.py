"""Retrying a call that fails only because IAM has not yet caught up with a role made seconds ago.

Whenever this run hands a role it just created (or a service-linked role) to another service, that
service may check the role and refuse it for a while. Each such answer is listed here, with the
codes and words that identify it, so a real mistake with the same code still fails at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

from provisioner.aws.waiter import call_with_retry

T = TypeVar("T")


@dataclass(frozen=True)
class Propagation:
    what: str
    codes: tuple[str, ...]
    messages: tuple[str, ...]


# Auto Scaling launching from a launch template whose instance profile is new.
NEW_INSTANCE_PROFILE = Propagation(
    "a new instance profile",
    ("ValidationError", "InvalidParameterValue", "InvalidParameterException", "ClientException"),
    ("cannot be assumed", "instance profile", "iaminstanceprofile", "not authorized to perform: sts:assumerole"),
)
# OpenSearch resolves the principals of an access policy and answers InvalidTypeException "Error setting
# policy" until IAM has propagated a new role (Terraform's AWS provider retries the same error).
POLICY_PRINCIPAL = Propagation("a new role in an access policy", ("InvalidTypeException",), ("error setting policy",))
# ECS, right after its service-linked role or a task's role appears: "Unable to assume the service linked
# role. Please verify that the ECS service linked role exists." / "ECS was unable to assume the role ...".
ECS_ROLE = Propagation(
    "a new role ECS assumes", ("InvalidParameterException", "ClientException"), ("unable to assume the",),
)


def until_propagated(propagation: Propagation, timeout: float, call: Callable[[], T]) -> T:
    """`call`, retried while it fails with `propagation`'s answer, for up to `timeout` seconds."""
    return call_with_retry(call, retry_codes=propagation.codes, retry_messages=propagation.messages, timeout=timeout)
