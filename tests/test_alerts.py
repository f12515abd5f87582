"""Alerts on AMP routed to SNS (README: "Alerts"): what `up` sends for the key, the topic, the rules and the alert
manager; that a change of threshold puts the rules once and nothing else; `status`, `alerts list`, `alerts test`,
`destroy`; and the emulator patches of provisioner/emulator/alerting_patches.py. One stack for the module."""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from provisioner import operations
from provisioner.metrics.alert_rules import render_alert_manager, render_rules
from tests.conftest import (
    PROJECT,
    REGION,
    Requests,
    build_stack,
    config_text,
    make_config,
    new_aws,
    on_cli_sessions,
    up_ok,
    world,
)
from tests.conftest import run_cli as run

ACCOUNT = "123456789012"
EMAIL = "oncall@example.com"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:{PROJECT}-alerts"


@pytest.fixture(scope="module")
def stack(moto_endpoint, tmp_path_factory):
    config, state_path, sent = build_stack(moto_endpoint, tmp_path_factory, alerts={"email": [EMAIL]})
    workspace = operations.outputs(config, new_aws(), state_path)["prometheus_workspace_arn"]
    config_file = state_path.parent / "provision.toml"
    config_file.write_text(config_text(extra=f'[alerts]\nemail = ["{EMAIL}"]\n'))
    return {"config": config, "state": state_path, "sent": sent, "workspace_arn": workspace,
            "workspace_id": workspace.rsplit("/", 1)[-1], "config_file": config_file}


@pytest.fixture
def own_stack(endpoint, tmp_path):
    """A stack of its own with alerts, for a test that changes or destroys it (the module's `stack` is only read)."""
    config, state_path = make_config(alerts={"email": [EMAIL]}), tmp_path / "state.json"
    up_ok(config, new_aws(), state_path)
    workspace = operations.outputs(config, new_aws(), state_path)["prometheus_workspace_arn"]
    return {"config": config, "state": state_path, "workspace_id": workspace.rsplit("/", 1)[-1]}


def one(sent: Requests, operation: str) -> dict:
    calls = sent.of(operation)
    assert len(calls) == 1, f"{operation}: {len(calls)} calls"
    return calls[0]


def test_the_topic_is_encrypted_with_the_stacks_key_and_only_amp_from_this_workspace_may_publish(stack):
    created = one(stack["sent"], "sns.CreateTopic")
    key = one(stack["sent"], "kms.CreateKey")
    key_arn = boto3.client("kms", region_name=REGION).describe_key(KeyId=created["Attributes"]["KmsMasterKeyId"])
    assert key_arn["KeyMetadata"]["KeyManager"] == "CUSTOMER" and "Policy" in key
    assert created["Name"] == f"{PROJECT}-alerts"
    # AMP user guide, AMP-alertmanager-receiver-AMPpermission: exactly these actions, principal and conditions.
    assert json.loads(created["Attributes"]["Policy"])["Statement"] == [{
        "Sid": "AmpPublishesAlerts", "Effect": "Allow", "Principal": {"Service": "aps.amazonaws.com"},
        "Action": ["sns:Publish", "sns:GetTopicAttributes"], "Resource": TOPIC_ARN,
        "Condition": {"ArnEquals": {"aws:SourceArn": stack["workspace_arn"]},
                      "StringEquals": {"AWS:SourceAccount": ACCOUNT}},
    }]
    assert {t["Key"]: t["Value"] for t in created["Tags"]}["ProvisionKey"] == "alerts"


def test_the_key_lets_amp_generate_data_keys_and_decrypt_for_this_workspace_only(stack):
    policy = json.loads(one(stack["sent"], "kms.CreateKey")["Policy"])
    amp = next(s for s in policy["Statement"] if s.get("Principal") == {"Service": "aps.amazonaws.com"})
    assert amp["Action"] == ["kms:GenerateDataKey*", "kms:Decrypt"]
    assert amp["Condition"] == {"ArnEquals": {"aws:SourceArn": stack["workspace_arn"]},
                                "StringEquals": {"aws:SourceAccount": ACCOUNT}}
    admin = next(s for s in policy["Statement"] if s is not amp)
    assert admin["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}  # the account keeps administering it


def test_the_rule_groups_namespace_holds_the_rendered_rules_sent_once_as_yaml(stack):
    created = one(stack["sent"], "amp.CreateRuleGroupsNamespace")
    assert created["workspaceId"] == stack["workspace_id"] and created["clientToken"]
    assert created["data"] == render_rules(stack["config"]).encode()  # boto3 base64-encodes it itself
    live = boto3.client("amp", region_name=REGION).describe_rule_groups_namespace(
        workspaceId=stack["workspace_id"], name=created["name"])["ruleGroupsNamespace"]
    assert live["data"] == created["data"] and live["tags"]["Project"] == PROJECT


def test_the_alert_manager_routes_only_to_the_topic_signed_for_the_region(stack):
    created = one(stack["sent"], "amp.CreateAlertManagerDefinition")
    assert created["data"] == render_alert_manager(stack["config"], TOPIC_ARN, REGION).encode()
    text = created["data"].decode()
    assert text.count("topic_arn:") == 1 and f'region: "{REGION}"' in text and "_configs:" in text
    assert [line.strip() for line in text.splitlines() if line.strip().endswith("_configs:")] == ["sns_configs:"]


def test_each_address_is_subscribed_by_email_and_status_shows_it_pending(stack):
    subscribed = one(stack["sent"], "sns.Subscribe")
    assert subscribed == {"TopicArn": TOPIC_ARN, "Protocol": "email", "Endpoint": EMAIL, "ReturnSubscriptionArn": True}
    result = run("status", "--json", config_file=stack["config_file"], state=stack["state"])
    assert result.exit_code == 0, result.output
    rows = [r for r in json.loads(result.output)["resources"] if r["step"] == "alerts"]
    assert {(r["key"], r["status"]) for r in rows} == {
        ("alerts-key", "ok"), ("alerts", "ok"), ("alert-rules", "ok"), ("alert-manager", "ok"),
        (f"email-{EMAIL}", "pending")}


def test_alerts_list_shows_each_rule_with_its_threshold_duration_and_setting(stack):
    result = run("alerts", "list", "--json", config_file=stack["config_file"], state=stack["state"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output[result.output.index("{"):])
    assert listing["namespace"] == f"{PROJECT}-alerts" and listing["namespace_status"] == "ACTIVE"
    conflicts = next(r for r in listing["rules"] if r["alert"] == "TemporalDsqlConflicts")
    assert (conflicts["threshold"], conflicts["for"], conflicts["setting"]) == (10.0, "5m", "alerts.dsql_conflict_rate")
    # The emulator has no Prometheus rules API: nothing is asked of AWS's hosts, and the state says so.
    assert {r["state"] for r in listing["rules"]} == {"not reported"} and "emulator" in listing["state_note"]


def test_alerts_test_publishes_one_marked_notification_to_the_topic(stack, monkeypatch):
    sent = Requests()
    on_cli_sessions(monkeypatch, "provide-client-params", sent)
    result = run("alerts", "test", config_file=stack["config_file"], state=stack["state"])
    assert result.exit_code == 0, result.output
    published = one(sent, "sns.Publish")
    assert published["TopicArn"] == TOPIC_ARN and published["Subject"].startswith("[TEST]")
    assert published["Message"].startswith("TEST NOTIFICATION") and "Nothing is wrong" in published["Message"]
    assert "Sent a test notification" in result.output


def test_a_changed_threshold_and_address_put_the_rules_and_subscribe_once_and_change_nothing_else(own_stack):
    config = make_config(alerts={"email": [EMAIL, "second@example.com"],
                                 "dsql_conflict_rate": {"threshold": 20, "for": "5m"}})
    sent = Requests()
    result = operations.up(config, new_aws(("provide-client-params", sent)), own_stack["state"], quiet=True)
    assert result.ok, result.errors
    put = one(sent, "amp.PutRuleGroupsNamespace")
    assert put["data"] == render_rules(config).encode() and b"> 20.0" in put["data"]
    assert one(sent, "sns.Subscribe")["Endpoint"] == "second@example.com"
    writes = [op for op, _ in sent.sent if op.split(".")[0] in ("amp", "sns", "kms")
              and not op.split(".")[1].startswith(("Describe", "List", "Get"))]
    assert sorted(writes) == ["amp.PutRuleGroupsNamespace", "sns.Subscribe"]
    assert {(c.action, c.key) for c in result.changes} == {("update", "alert-rules"), ("create", "email-second@example.com")}


def test_destroy_removes_the_definition_namespace_topic_and_subscriptions_and_schedules_the_key(own_stack):
    sent = Requests()
    result = operations.destroy(own_stack["config"], new_aws(("provide-client-params", sent)), own_stack["state"],
                                quiet=True)
    assert result.ok, result.errors
    assert one(sent, "amp.DeleteAlertManagerDefinition") == {"workspaceId": own_stack["workspace_id"]}
    assert one(sent, "amp.DeleteRuleGroupsNamespace")["name"] == f"{PROJECT}-alerts"
    assert one(sent, "sns.DeleteTopic") == {"TopicArn": TOPIC_ARN}  # and its subscriptions (SNS API reference)
    assert one(sent, "kms.ScheduleKeyDeletion")["PendingWindowInDays"] == 7
    assert boto3.client("sns", region_name=REGION).list_subscriptions()["Subscriptions"] == []
    assert not [kind for kind, _ in world() if kind in ("Topic", "KmsKey", "RuleGroupsNamespace")]


# -- emulator patches (provisioner/emulator/alerting_patches.py) ------------------------------------------

@pytest.fixture
def workspace(endpoint):
    return boto3.client("amp", region_name=REGION).create_workspace(alias="patch-test")["workspaceId"]


def definition(inner: str) -> bytes:
    return ("alertmanager_config: |\n" + "".join(f"  {line}\n" for line in inner.splitlines())).encode()


SNS_RECEIVER = "receivers:\n- name: sns\n  sns_configs:\n  - topic_arn: arn:aws:sns:eu-west-1:123456789012:t\n"


@pytest.mark.parametrize(("inner", "refusal"), [
    ("route: {receiver: sns}\n" + SNS_RECEIVER + "    sigv4: {region: eu-west-1}\n    api_url: https://x", "api_url"),
    ("route: {receiver: sns}\n" + SNS_RECEIVER + "    sigv4: {region: eu-west-1}\n    http_config: {}", "http_config"),
    ("route: {receiver: sns}\n" + SNS_RECEIVER, "sigv4.region"),
    ("route: {receiver: sns, repeat_interval: 6d}\n" + SNS_RECEIVER + "    sigv4: {region: eu-west-1}", "5 days"),
])
def test_the_emulator_refuses_an_alert_manager_definition_amp_refuses(workspace, inner, refusal):
    amp = boto3.client("amp", region_name=REGION)
    with pytest.raises(ClientError, match=refusal) as refused:
        amp.create_alert_manager_definition(workspaceId=workspace, data=definition(inner))
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_the_emulator_accepts_a_valid_definition_and_refuses_deleting_a_missing_one(workspace):
    amp = boto3.client("amp", region_name=REGION)
    amp.create_alert_manager_definition(workspaceId=workspace, data=definition(
        "route: {receiver: sns}\n" + SNS_RECEIVER + "    sigv4: {region: eu-west-1}"))
    amp.delete_alert_manager_definition(workspaceId=workspace)
    with pytest.raises(ClientError) as missing:
        amp.delete_alert_manager_definition(workspaceId=workspace)
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_an_email_subscription_waits_for_its_address_in_the_emulator(endpoint):
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="patch-test")["TopicArn"]
    arn = sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=EMAIL, ReturnSubscriptionArn=True)["SubscriptionArn"]
    assert sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]["PendingConfirmation"] == "true"
    listed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [(s["Endpoint"], s["SubscriptionArn"]) for s in listed] == [(EMAIL, "PendingConfirmation")]
