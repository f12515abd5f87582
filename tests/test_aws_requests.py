"""Every request of a whole run, checked against botocore's service models: what real AWS would refuse
for its shape (enum values, patterns, lengths, ranges, required members) fails here, even where the
emulator accepts it. botocore's own client-side validation skips enums, patterns and maxima."""
from __future__ import annotations

from provisioner import operations
from tests.aws_shapes import RequestRecorder
from tests.conftest import make_config, new_aws, up_ok


def test_every_request_of_up_scale_and_destroy_is_one_aws_accepts(endpoint, tmp_path):
    # The optional parts on, so that their requests are checked too.
    config = make_config(dsql={"private_link": True}, endpoints={"ecs_endpoints": True})
    state = tmp_path / "state.json"
    recorder = RequestRecorder()
    aws = new_aws(("provide-client-params", recorder))
    up_ok(config, aws, state)
    operations.scale(config, aws, {"history": 1, "matching": 1, "frontend": 1, "worker": 1, "ui": 1}, state, quiet=True)
    operations.scale(config, aws, {"history": 0}, state, quiet=True)
    assert operations.destroy(config, aws, state, delete_data=True, quiet=True).ok
    recorder.assert_clean()
    # The run really covered what it claims to.
    for operation in ("ec2.CreateVpcEndpoint", "ecs.RegisterTaskDefinition", "ecs.UpdateService",
                      "opensearch.CreateDomain", "dsql.CreateCluster", "dsql.DeleteCluster"):
        assert operation in recorder.operations, operation
