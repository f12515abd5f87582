"""The diff helper (`differs` and `changes` in provisioner/aws/kinds.py): what the tool sets, compared with what AWS
holds, ignoring what AWS adds."""
from __future__ import annotations

from provisioner.aws.kinds import changes, differs

LIVE = {"Name": "temporal", "Settings": {"Size": 3, "Mode": "on"}, "Ports": [7233, 7234],
        "Arn": "arn:aws:x:eu-west-1:123456789012:thing/temporal", "CreatedAt": "2026-01-01"}


def test_fields_aws_adds_are_not_a_difference():
    assert not differs(LIVE, {"Name": "temporal", "Settings": {"Size": 3}, "Ports": [7233, 7234]})


def test_a_changed_value_is_a_difference_at_any_depth():
    assert differs(LIVE, {"Name": "other"})
    assert differs(LIVE, {"Settings": {"Size": 4}})


def test_a_field_the_tool_sets_that_aws_lacks_is_a_difference():
    assert differs(LIVE, {"Settings": {"Encrypted": True}})
    assert differs(LIVE, {"Missing": {"Size": 3}})


def test_lists_differ_by_length_order_or_any_item():
    assert differs(LIVE, {"Ports": [7233]})
    assert differs(LIVE, {"Ports": [7234, 7233]})
    assert differs(LIVE, {"Ports": [7233, 7235]})
    assert differs({"Rules": [{"Port": 1, "Extra": "x"}]}, {"Rules": [{"Port": 2}]})
    assert not differs({"Rules": [{"Port": 1, "Extra": "x"}]}, {"Rules": [{"Port": 1}]})


def test_another_type_is_a_difference():
    assert differs({"Settings": "on"}, {"Settings": {"Mode": "on"}})
    assert differs({"Ports": "7233"}, {"Ports": ["7233"]})
    assert differs({"Size": "3"}, {"Size": 3})


def test_changes_names_only_the_fields_that_differ_with_their_desired_values():
    assert changes(LIVE, {"Name": "temporal", "Settings": {"Size": 4}, "Ports": [7233, 7234]}) == {"Settings": {"Size": 4}}


def test_no_changes_when_every_desired_field_matches():
    assert changes(LIVE, {"Name": "temporal", "Settings": {"Mode": "on"}}) == {}
