"""Every request of a whole run, checked against botocore's service models: what real AWS would refuse
for its shape (enum values, patterns, lengths, ranges, required members) fails here, even where the
emulator accepts it. botocore's own client-side validation skips enums, patterns and maxima."""
from __future__ import annotations

import boto3
import pytest

from provisioner import operations
from provisioner.commands import scale as scaling
from tests.aws_shapes import RequestRecorder
from tests.conftest import Requests, make_config, new_aws, reset_account, up_ok


@pytest.fixture(scope="module")
def whole_run(moto_endpoint, tmp_path_factory) -> tuple[RequestRecorder, list[tuple[str, dict]]]:
    """One run of up, scale and destroy, with the optional parts on so that their requests are made too: every
    request checked against botocore's models as it is sent (RequestRecorder), and the requests of the `up` as
    sent. The tests below only read these records."""
    reset_account(moto_endpoint)
    config = make_config(dsql={"private_link": True}, endpoints={"ecs_endpoints": True})
    state = tmp_path_factory.mktemp("requests") / "state.json"
    checked, sent = RequestRecorder(), Requests()
    aws = new_aws(("provide-client-params", checked), ("provide-client-params", sent))
    up_ok(config, aws, state)
    sent_by_up = list(sent.sent)
    scaling.scale(config, aws, {"history": 1, "matching": 1, "frontend": 1, "worker": 1, "ui": 1}, state, quiet=True)
    scaling.scale(config, aws, {"history": 0}, state, quiet=True)
    assert operations.destroy(config, aws, state, delete_data=True, quiet=True).ok
    return checked, sent_by_up


def test_every_request_of_up_scale_and_destroy_is_one_aws_accepts(whole_run):
    recorder, _ = whole_run
    recorder.assert_clean()
    # The run really covered what it claims to.
    for operation in ("ec2.CreateVpcEndpoint", "ecs.RegisterTaskDefinition", "ecs.UpdateService",
                      "opensearch.CreateDomain", "dsql.CreateCluster", "dsql.DeleteCluster"):
        assert operation in recorder.operations, operation


def test_every_create_passes_its_idempotency_token_where_the_api_has_one(whole_run):
    """botocore fills a missing token with a random one per call, which protects only its own resends;
    a deterministic token (the project, region, lineage and key) also covers a run after a crash."""
    _, sent_by_up = whole_run
    session = boto3.Session()
    checked = set()
    for operation, params in sent_by_up:
        service, name = operation.split(".")
        model = session._session.get_service_model(service).operation_model(name)
        tokens = [m for m, shape in (model.input_shape.members.items() if model.input_shape else [])
                  if shape.metadata.get("idempotencyToken")]
        for token in tokens:
            assert params.get(token), f"{operation} has the idempotency token {token} but the tool did not pass one"
            checked.add(operation)
    assert {"ec2.CreateRouteTable", "ec2.CreateNatGateway", "dsql.CreateCluster", "amp.CreateWorkspace",
            "servicediscovery.CreateHttpNamespace"} <= checked
