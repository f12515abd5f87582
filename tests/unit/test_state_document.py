"""The state document (state/store.py): every read is checked (JSON, shape, version, project, region,
account) with a message that says what to do; a state from before accounts were recorded is brought up to
date on read."""
from __future__ import annotations

import json

import pytest

from provisioner.state import RecordedState, StateInvalid
from provisioner.state.store import SCHEMA_VERSION, empty_document

PROJECT, REGION, ACCOUNT = "proj", "eu-west-1", "123456789012"
RECOVERY = "Restore it from the backup."


def reader(project: str = PROJECT, region: str = REGION, account: str | None = ACCOUNT) -> RecordedState:
    """The state as a run holds it, for these credentials' account (None: not known yet)."""
    return RecordedState(project, region, account)


def document(**changes) -> dict:
    data = empty_document(PROJECT, REGION, ACCOUNT) | {"serial": 3, "lineage": "5f0c3f9e-lineage"}
    data["resources"] = {"network": {"vpc": {"id": "vpc-1", "kind": "vpc", "cidr": "10.0.0.0/16"}}}
    return data | changes


def check(data, state=None) -> dict:
    payload = data if isinstance(data, bytes) else json.dumps(data).encode()
    return (state or reader()).checked(payload, "state.json", RECOVERY)


def test_a_valid_document_reads_back_as_written():
    assert check(document()) == document()


def test_a_state_from_before_accounts_were_recorded_is_given_this_account():
    assert check(document(account=None)) == document()


def test_an_unknown_account_stays_unknown_until_the_credentials_say():
    assert check(document(account=None), reader(account=None))["account"] is None


@pytest.mark.parametrize("payload", [b"{not json", b"\xff\xfe", b""])
def test_what_is_not_json_is_refused_with_the_recovery(payload):
    with pytest.raises(StateInvalid, match=r"state.json is not valid JSON .*Restore it from the backup"):
        check(payload)


def test_another_schema_version_is_refused_naming_both():
    with pytest.raises(StateInvalid, match=rf"schema version 2; this tool reads {SCHEMA_VERSION}"):
        check(document(version=2))


@pytest.mark.parametrize(("change", "named"), [
    ({"serial": -1}, "serial"),
    ({"serial": "3"}, "serial"),
    ({"lineage": ""}, "lineage"),
    ({"resources": {"network": {"vpc": {"id": 7, "kind": "vpc"}}}}, "resources.network.vpc.id"),
    ({"settings": []}, "settings"),
    ({"extra": 1}, "extra"),
])
def test_a_document_of_another_shape_is_refused_naming_the_key(change, named):
    with pytest.raises(StateInvalid, match=rf"state.json is not a provision state \({named}: .*Restore it"):
        check(document(**change))


@pytest.mark.parametrize("missing", ["id", "kind"])
def test_a_record_without_its_id_or_kind_is_refused_naming_step_key_and_the_fix(missing):
    data = document()
    del data["resources"]["network"]["vpc"][missing]
    with pytest.raises(StateInvalid, match=rf"state.json: resources.network.vpc has no '{missing}'.*Restore it from the "
                                           r"backup. Or remove that record"):
        check(data)


def test_a_section_named_after_no_step_is_refused_naming_it():
    with pytest.raises(StateInvalid, match=r"records resources under 'netwrok', which is no step of this tool \(its "
                                           r"steps: network, secret\)"):
        check(document(resources={"netwrok": {"vpc": {"id": "vpc-1", "kind": "vpc"}}}),
              RecordedState(PROJECT, REGION, ACCOUNT, steps=("network", "secret")))


def test_a_document_missing_a_key_is_refused_naming_it():
    data = document()
    del data["lineage"]
    with pytest.raises(StateInvalid, match=r"\(lineage: Field required\)"):
        check(data)


def test_a_json_value_that_is_no_document_is_refused():
    with pytest.raises(StateInvalid, match="is not a provision state"):
        check(b"[1, 2]")


@pytest.mark.parametrize(("project", "region"), [("other", REGION), (PROJECT, "us-east-1")])
def test_a_state_of_another_project_or_region_is_refused_naming_both(project, region):
    with pytest.raises(StateInvalid, match=rf"belongs to project 'proj' in 'eu-west-1', not '{project}' in '{region}'"):
        check(document(), reader(project, region))


def test_a_state_of_another_account_is_refused_naming_both():
    with pytest.raises(StateInvalid, match=r"belongs to AWS account 123456789012, .* for account 210987654321"):
        check(document(), reader(account="210987654321"))
