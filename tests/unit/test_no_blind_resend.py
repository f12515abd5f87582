"""The no-blind-resend rule (`no_blind_resend` in provisioner/aws/session.py): a create whose answer may have
been lost after AWS acted is never resent by botocore; the tool finds it by its tags instead."""
from __future__ import annotations

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from provisioner.aws.session import NOT_PROCESSED_CODES, no_blind_resend
from provisioner.errors import AmbiguousCreate
from tests.conftest import new_aws

EC2 = botocore.session.get_session().get_service_model("ec2")
CREATES = [EC2.operation_model(name) for name in ("CreateVpc", "AllocateAddress", "RunInstances")]
DESCRIBE = EC2.operation_model("DescribeVpcs")
URL = "https://ec2.eu-west-1.amazonaws.com/"

# What a lost or cut answer looks like to botocore: the request may have been processed.
MAYBE_PROCESSED = [ConnectionClosedError(endpoint_url=URL), ReadTimeoutError(endpoint_url=URL)]
# A connection never made: nothing was sent.
NEVER_SENT = [EndpointConnectionError(endpoint_url=URL), ConnectTimeoutError(endpoint_url=URL)]


def answer(status: int, code: str = "") -> tuple[AWSResponse, dict]:
    return AWSResponse(URL, status, {}, None), ({"Error": {"Code": code}} if code else {})


@pytest.mark.parametrize("operation", CREATES, ids=lambda model: model.name)
@pytest.mark.parametrize("lost", MAYBE_PROCESSED, ids=lambda error: type(error).__name__)
def test_a_create_whose_answer_was_lost_is_not_resent(operation, lost):
    with pytest.raises(AmbiguousCreate, match=operation.name):
        no_blind_resend(operation=operation, caught_exception=lost)


@pytest.mark.parametrize("code", ["InternalError", "ServiceUnavailable", ""])
def test_a_create_answered_with_a_server_error_is_not_resent(code):
    with pytest.raises(AmbiguousCreate, match="HTTP 500"):
        no_blind_resend(operation=CREATES[0], response=answer(500, code))


@pytest.mark.parametrize("code", NOT_PROCESSED_CODES)
def test_a_throttled_create_may_be_resent(code):
    assert no_blind_resend(operation=CREATES[0], response=answer(503, code)) is None


@pytest.mark.parametrize("never", NEVER_SENT, ids=lambda error: type(error).__name__)
def test_a_create_that_never_reached_aws_may_be_resent(never):
    assert no_blind_resend(operation=CREATES[0], caught_exception=never) is None


def test_a_create_refused_with_a_client_error_is_left_to_botocore():
    assert no_blind_resend(operation=CREATES[0], response=answer(400, "InvalidParameterValue")) is None


@pytest.mark.parametrize("lost", [*MAYBE_PROCESSED, *NEVER_SENT], ids=lambda error: type(error).__name__)
def test_a_read_may_always_be_resent(lost):
    assert no_blind_resend(operation=DESCRIBE, caught_exception=lost) is None
    assert no_blind_resend(operation=DESCRIBE, response=answer(500, "InternalError")) is None


def test_a_client_of_the_tool_sends_a_create_once_when_its_answer_is_lost():
    """The rule is in every client's retry chain: botocore would otherwise send the create again."""
    sent = []

    def lose_the_answer(request, **_):
        sent.append(request.url)
        raise ConnectionClosedError(endpoint_url=request.url)

    aws = new_aws(("before-send.ec2.CreateVpc", lose_the_answer))
    with pytest.raises(AmbiguousCreate, match="CreateVpc"):
        aws.client("ec2").create_vpc(CidrBlock="10.0.0.0/16")
    assert len(sent) == 1
