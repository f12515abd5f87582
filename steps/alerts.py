"""Alerts (README: "Alerts"): the rules AMP evaluates on the workspace, and the route of what fires to people.

AMP's alert manager can notify only an SNS topic (AMP user guide, AMP-alertmanager-receiver). The topic is
encrypted with a customer managed KMS key: the AWS managed key's policy cannot be changed, and AMP must be let
to use the key (SNS developer guide, sns-key-management "compatibility with AWS services"; AMP user guide,
AMP-alertmanager-receiver-AMPpermission). Addresses in `[alerts] email` are subscribed; each must confirm.
"""
from __future__ import annotations

from dataclasses import dataclass

from provisioner.aws.alerting_kinds import (
    ALERT_MANAGER,
    KMS_KEY,
    RULE_GROUPS_NAMESPACE,
    SNS_TOPIC,
    alert_manager_settings,
    create_alert_manager,
    namespace_address,
    pending_confirmation,
    put_alert_manager_data,
    subscriptions,
)
from provisioner.aws.converge import changes, converge, create_without_twins, destroy_kind
from provisioner.aws.kinds import Desired
from provisioner.engine import Step, StepContext
from provisioner.metrics.alert_rules import render_alert_manager, render_rules
from provisioner.step_outputs import StepOutputs, known, recorded_as
from provisioner.steps.prometheus import PrometheusOutputs

KEY = "alerts-key"
TOPIC = "alerts"
RULES = "alert-rules"
ALERT_MANAGER_KEY = "alert-manager"
SUBSCRIPTION = "sns-subscription"  # the kind recorded for an email subscription


def email_key(address: str) -> str:
    return f"email-{address}"


@dataclass(frozen=True)
class AlertsOutputs(StepOutputs):
    """The topic `provision alerts test` publishes to, and the namespace `alerts list` reads."""

    step = "alerts"
    topic_arn: str = recorded_as(TOPIC)
    rules_namespace: str = recorded_as(RULES, "name")


def key_policy(ctx: StepContext) -> dict:
    """The account administers the key (KMS's default key policy statement); AMP may only generate data keys
    and decrypt with it, for this account's workspace (AMP-alertmanager-receiver-AMPpermission)."""
    account = ctx.aws.account_id
    workspace_arn = ctx.outputs_of(PrometheusOutputs).workspace_arn
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AccountAdministers", "Effect": "Allow", "Principal": {"AWS": ctx.naming.root_arn(account)},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "AmpUsesTheKey", "Effect": "Allow", "Principal": {"Service": "aps.amazonaws.com"},
             "Action": ["kms:GenerateDataKey*", "kms:Decrypt"], "Resource": "*",
             "Condition": {"ArnEquals": {"aws:SourceArn": workspace_arn},
                           "StringEquals": {"aws:SourceAccount": account}}},
        ],
    }


def topic_policy(ctx: StepContext, arn: str) -> dict:
    """Exactly what AMP needs: sns:Publish and sns:GetTopicAttributes for aps.amazonaws.com, from this account's
    workspace only (AMP user guide, AMP-alertmanager-receiver-AMPpermission)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AmpPublishesAlerts", "Effect": "Allow", "Principal": {"Service": "aps.amazonaws.com"},
            "Action": ["sns:Publish", "sns:GetTopicAttributes"], "Resource": arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": ctx.outputs_of(PrometheusOutputs).workspace_arn},
                          "StringEquals": {"AWS:SourceAccount": ctx.aws.account_id}},
        }],
    }


class Alerts(Step):
    name = "alerts"
    title = "Alerts"
    requires = ("prometheus",)
    produces = AlertsOutputs
    kinds = (KMS_KEY, SNS_TOPIC, RULE_GROUPS_NAMESPACE)

    def names(self, ctx: StepContext) -> list:
        return [(SNS_TOPIC, TOPIC, ctx.naming.name(TOPIC))]

    def apply(self, ctx: StepContext) -> None:
        workspace = ctx.outputs_of(PrometheusOutputs)
        workspace_id = workspace.workspace_id
        key = converge(ctx, KMS_KEY, KEY, spec={"Policy": key_policy(ctx)}, detail="encrypts the alerts topic",
                       attributes_of=lambda k: {"arn": k["Arn"]})
        topic_name = ctx.naming.name(TOPIC)
        planned_arn = ctx.naming.arn("sns", ctx.aws.account_id, topic_name)
        key_arn = key["Arn"] if key else ctx.known_after_apply("the alerts key")
        topic = converge(ctx, SNS_TOPIC, TOPIC, name=topic_name,
                         spec={"KmsMasterKeyId": key_arn, "Policy": topic_policy(ctx, planned_arn)})
        rules = render_rules(ctx.config).encode()
        if known(workspace_id):
            converge(ctx, RULE_GROUPS_NAMESPACE, RULES, name=namespace_address(workspace_id, ctx.naming.name("alerts")),
                     spec={"data": rules}, detail=f"{rules.count(b'- alert:')} alert rules",
                     attributes_of=lambda n: {"name": n["name"]})
            self._alert_manager(ctx, workspace_id, planned_arn)
        else:
            ctx.change("create", RULE_GROUPS_NAMESPACE.noun, RULES, "alert rules")
            ctx.change("create", ALERT_MANAGER.noun, ALERT_MANAGER_KEY, f"routes to {topic_name}")
        self._subscriptions(ctx, topic["TopicArn"] if topic else None)

    def _alert_manager(self, ctx: StepContext, workspace_id: str, topic: str) -> None:
        """One per workspace, no tags: found by the workspace, created or updated where its YAML differs."""
        data = render_alert_manager(ctx.config, topic, ctx.aws.region).encode()
        current = ALERT_MANAGER.get(ctx.aws, workspace_id)
        if current is None:
            # A lost answer is looked for (the workspace's one definition) before any second attempt.
            ctx.change("create", ALERT_MANAGER.noun, ALERT_MANAGER_KEY, f"routes to {topic}", act=lambda: create_without_twins(
                lambda: create_alert_manager(ctx.aws, workspace_id, data, ctx.naming.client_token(ALERT_MANAGER_KEY)),
                lambda: ALERT_MANAGER.get(ctx.aws, workspace_id), ALERT_MANAGER.noun))
        else:
            desired = Desired(ALERT_MANAGER_KEY, workspace_id, {}, ctx.naming.client_token(ALERT_MANAGER_KEY),
                              {"data": data})
            differing = changes(alert_manager_settings(ctx.aws, current), desired.spec)
            if differing:
                ctx.change("update", ALERT_MANAGER.noun, ALERT_MANAGER_KEY, "data",
                           act=lambda: put_alert_manager_data(ctx.aws, current, differing, desired))
        if not ctx.dry_run:
            ctx.record(ALERT_MANAGER_KEY, workspace_id, kind=ALERT_MANAGER.kind)

    def _subscriptions(self, ctx: StepContext, topic: str | None) -> None:
        """Subscribe each configured address once; one of ours no longer configured is unsubscribed once confirmed
        (AWS deletes a subscription never confirmed on its own: SNS developer guide, sns-email-notifications)."""
        wanted = ctx.config.alerts.email
        recorded = [k for k, r in ctx.state.step_records(self.name).items() if r.get("kind") == SUBSCRIPTION]
        if not wanted and not recorded:
            return  # nothing to subscribe, nothing of ours to unsubscribe: no call
        live = {s["Endpoint"]: s for s in subscriptions(ctx.aws, topic) if s["Protocol"] == "email"} if topic else {}
        sns = ctx.aws.client("sns")
        for address in wanted:
            if address in live:
                recorded_arn = ctx.state.id_of(self.name, email_key(address))
                arn = live[address]["SubscriptionArn"]
                if not ctx.dry_run and (arn != "PendingConfirmation" or not recorded_arn):
                    # A pending one is listed without its ARN: the one Subscribe answered stays recorded.
                    ctx.record(email_key(address), arn if arn != "PendingConfirmation" else recorded_arn or arn,
                               kind=SUBSCRIPTION, topic=topic)
                continue
            # ReturnSubscriptionArn: the ARN even while the address has not confirmed (SNS API reference, Subscribe).
            subscribed = ctx.change("create", "email subscription", email_key(address), address, act=lambda a=address: sns.subscribe(
                TopicArn=topic, Protocol="email", Endpoint=a, ReturnSubscriptionArn=True))
            if subscribed:
                ctx.record(email_key(address), subscribed["SubscriptionArn"], kind=SUBSCRIPTION, topic=topic)
        for address, subscription in live.items():
            # Only those this tool made (recorded): a subscription someone added by hand is theirs.
            ours = email_key(address) in recorded
            if ours and address not in wanted and subscription["SubscriptionArn"] != "PendingConfirmation":
                ctx.change("delete", "email subscription", email_key(address), address,
                           act=lambda s=subscription: sns.unsubscribe(SubscriptionArn=s["SubscriptionArn"]))
        if not ctx.dry_run:
            for key in recorded:
                if key.removeprefix("email-") not in wanted:
                    ctx.state.forget(self.name, key)

    def exists(self, ctx: StepContext, kind: str, resource_id: str) -> bool | str:
        """An email subscription is there until unsubscribed; "pending" while its address has not confirmed."""
        if kind != SUBSCRIPTION:
            return super().exists(ctx, kind, resource_id)
        pending = pending_confirmation(ctx.aws, resource_id)
        return "pending" if pending else pending is not None

    def destroy(self, ctx: StepContext) -> None:
        for key, record in list(ctx.state.step_records(self.name).items()):
            if record.get("kind") == SUBSCRIPTION:
                ctx.state.forget(self.name, key)  # deleted with the topic (SNS API reference, DeleteTopic)
        workspace_id = PrometheusOutputs.so_far(ctx.state).workspace_id
        if known(workspace_id) and ALERT_MANAGER.get(ctx.aws, workspace_id) is not None:
            ctx.change("delete", ALERT_MANAGER.noun, ALERT_MANAGER_KEY, workspace_id,
                       act=lambda: ALERT_MANAGER.delete(ctx.aws, workspace_id))
        if not ctx.dry_run:
            ctx.state.forget(self.name, ALERT_MANAGER_KEY)
        destroy_kind(ctx, RULE_GROUPS_NAMESPACE)
        destroy_kind(ctx, SNS_TOPIC)
        destroy_kind(ctx, KMS_KEY)

    def outputs(self, ctx: StepContext) -> dict:
        record = ctx.state.get(self.name, TOPIC)
        return {"alerts_topic_arn": record["id"]} if record else {}
