"""Named, tested fixes to moto for alerting (README: "Alerts"): AMP's alert manager definitions and SNS email
subscriptions, where moto 5.2 answers otherwise than AWS. Applied with the others (patches.PATCHES)."""
from __future__ import annotations

# AMP refuses these in an alert manager configuration (AMP user guide, AMP-alertmanager-receiver-config,
# "Unsupported properties"), and a repeat_interval over 5 days (AMP-alertmanager-config).
FORBIDDEN_KEYS = ("api_url", "http_config")
MAX_REPEAT_SECONDS = 5 * 24 * 3600


def _refusal(data: str) -> str | None:
    """Why AMP would refuse this alert manager definition, or None."""
    import base64
    import re

    import yaml

    try:
        document = yaml.safe_load(base64.b64decode(data))
        inner = yaml.safe_load(document["alertmanager_config"])
    except Exception:  # noqa: BLE001 - any unreadable definition is AMP's ValidationException
        return "the definition is not YAML with an alertmanager_config block"

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                yield key, item
                yield from walk(item)
        elif isinstance(value, list):
            for item in value:
                yield from walk(item)

    for key, value in walk(inner):
        if key in FORBIDDEN_KEYS:
            return f"{key} is not allowed"
        if key == "sns_configs" and any(not (c.get("sigv4") or {}).get("region") for c in value):
            return "sigv4.region is required for an SNS receiver"
        if key == "repeat_interval":
            parts = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", str(value))
            days, hours, minutes, seconds = (int(p or 0) for p in parts.groups()) if parts else (0, 0, 0, 0)
            if ((days * 24 + hours) * 60 + minutes) * 60 + seconds > MAX_REPEAT_SECONDS:
                return "repeat_interval cannot be longer than 5 days"
    return None


def alert_manager_definitions_validated() -> None:
    """CreateAlertManagerDefinition and PutAlertManagerDefinition store any data in moto 5.2 ("The provided YAML
    is not validated"); AMP answers ValidationException for what it refuses: api_url, http_config, an SNS
    receiver without sigv4.region, a repeat_interval over 5 days (AMP-alertmanager-receiver-config,
    AMP-alertmanager-config). DeleteAlertManagerDefinition of a workspace without one answers
    ResourceNotFoundException in AMP (API reference); moto answers success."""
    from moto.amp.exceptions import AlertManagerDefinitionNotFound
    from moto.amp.models import PrometheusServiceBackend
    from moto.core.exceptions import JsonRESTError

    def checked(original):
        def method(self, workspace_id, data):
            why = _refusal(data)
            if why:
                raise JsonRESTError("ValidationException", f"Invalid alert manager definition: {why}")
            return original(self, workspace_id=workspace_id, data=data)
        return method

    PrometheusServiceBackend.create_alert_manager_definition = checked(
        PrometheusServiceBackend.create_alert_manager_definition)
    PrometheusServiceBackend.put_alert_manager_definition = checked(PrometheusServiceBackend.put_alert_manager_definition)
    original_delete = PrometheusServiceBackend.delete_alert_manager_definition

    def delete_alert_manager_definition(self, workspace_id):
        if self.describe_workspace(workspace_id).alert_manager_definition is None:
            raise AlertManagerDefinitionNotFound(workspace_id)
        return original_delete(self, workspace_id)

    PrometheusServiceBackend.delete_alert_manager_definition = delete_alert_manager_definition


def email_subscriptions_await_confirmation() -> None:
    """An email subscription is confirmed at once in moto 5.2. In SNS it waits for its address to confirm:
    GetSubscriptionAttributes says PendingConfirmation "true" and ListSubscriptionsByTopic names it
    "PendingConfirmation" (SNS API reference; SNS developer guide, sns-email-notifications)."""
    from moto.sns.models import SNSBackend

    original = SNSBackend.subscribe

    def subscribe(self, topic_arn, endpoint, protocol):
        fresh = self._find_subscription(topic_arn, endpoint, protocol) is None
        subscription = original(self, topic_arn, endpoint, protocol)
        if fresh and protocol in ("email", "email-json"):
            subscription.attributes["PendingConfirmation"] = "true"
            subscription.confirmed = False
        return subscription

    SNSBackend.subscribe = subscribe

    original_list = SNSBackend.list_subscriptions_by_topic

    def list_subscriptions_by_topic(self, topic_arn, next_token=None):
        found, token = original_list(self, topic_arn, next_token)
        return [_as_listed(s) for s in found], token

    SNSBackend.list_subscriptions_by_topic = list_subscriptions_by_topic


def _as_listed(subscription):
    """The subscription as ListSubscriptionsByTopic shows it: a pending one without its ARN."""
    if str(subscription.attributes.get("PendingConfirmation")).lower() != "true":
        return subscription
    import copy

    listed = copy.copy(subscription)
    listed.arn = "PendingConfirmation"
    return listed


PATCHES = (
    alert_manager_definitions_validated,
    email_subscriptions_await_confirmation,
)
