"""`provision alerts list` and `provision alerts test` (README: "Alerts").

`list` shows every alert rule with its threshold and duration from `[alerts]`, the live rule groups namespace's
status, and each alert's state where AMP reports it: its Prometheus-compatible rules API on the workspace
(GET <workspace endpoint>api/v1/rules, SigV4 for the service "aps"; AMP user guide, AMP-APIReference-ListRules).
Against an emulator there is no such API and nothing leaves the machine: the state then reads "not reported".

`test` publishes one clearly marked message to the alerts topic, so a team can check that mail arrives.
"""
from __future__ import annotations

import json
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

from provisioner import operations
from provisioner.aws.alerting_kinds import RULE_GROUPS_NAMESPACE
from provisioner.aws.session import Aws
from provisioner.config import Config
from provisioner.errors import ProvisionError, aws_failure
from provisioner.metrics.alert_rules import rules
from provisioner.step_outputs import NotRecorded
from provisioner.steps.alerts import Alerts, AlertsOutputs
from provisioner.steps.prometheus import Prometheus, PrometheusOutputs

NOT_REPORTED = "not reported"
TEST_SUBJECT = "[TEST] {project}: alert delivery check"


@dataclass(frozen=True)
class ListedRule:
    alert: str
    severity: str
    threshold: float | None
    for_: str
    setting: str
    state: str  # inactive | pending | firing, as AMP reports it, or "not reported"
    expr: str


@dataclass(frozen=True)
class Listing:
    namespace: str
    namespace_status: str
    rules: list[ListedRule]
    state_note: str

    def as_json(self) -> dict:
        return {"namespace": self.namespace, "namespace_status": self.namespace_status, "state_note": self.state_note,
                "rules": [asdict(rule) | {"for": rule.for_} for rule in self.rules]}


def _recorded(config: Config, aws: Aws, state_path: Path | str | None, console) -> tuple[AlertsOutputs, PrometheusOutputs]:
    with operations.open_engine(config, aws, state_path, "alerts", quiet=True, console=console,
                                steps=[Prometheus(), Alerts()]) as engine:
        try:
            return AlertsOutputs.of(engine.state), PrometheusOutputs.of(engine.state)
        except NotRecorded:
            raise ProvisionError("No alerts recorded for this stack: run 'provision up' first.") from None


def list_alerts(config: Config, aws: Aws, state_path: Path | str | None = None, console=None) -> Listing:
    alerts, workspace = _recorded(config, aws, state_path, console)
    namespace = RULE_GROUPS_NAMESPACE.get(aws, f"{workspace.workspace_id}/{alerts.rules_namespace}")
    states, note = _live_states(aws, workspace.endpoint)
    listed = [ListedRule(r.alert, r.severity, r.threshold, r.for_, f"alerts.{r.setting}",
                         states.get(r.alert, NOT_REPORTED if note else "inactive"), r.expr) for r in rules(config)]
    status = namespace["status"]["statusCode"] if namespace else "missing: run 'provision up'"
    return Listing(alerts.rules_namespace, status, listed, note)


def _live_states(aws: Aws, endpoint: str) -> tuple[dict[str, str], str]:
    """{alert: state} from the workspace's rules API, and a note when AMP could not be asked."""
    api = aws.client("amp").meta.endpoint_url
    if not (urlparse(api).hostname or "").endswith(".amazonaws.com"):
        return {}, f"AMP's rules API is not available at {api} (an emulator): the rules and thresholds only"
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    url = f"{endpoint}api/v1/rules?type=alert"
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(aws.session.get_credentials(), "aps", aws.region).add_auth(request)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=dict(request.headers)), timeout=15) as answer:
            return alert_states(json.load(answer)), ""
    except (OSError, ValueError, KeyError, BotoCoreError) as exc:
        return {}, f"AMP did not report the alerts' state ({exc}): the rules and thresholds only"


def alert_states(answer: dict) -> dict[str, str]:
    """{alert: inactive | pending | firing} from a Prometheus rules API answer (GET /api/v1/rules: data.groups[].rules[],
    an alerting rule's `name` and `state`; Prometheus HTTP API reference, "Rules")."""
    return {rule["name"]: rule["state"] for group in answer["data"]["groups"] for rule in group["rules"]
            if rule.get("type") == "alerting"}


def send_test(config: Config, aws: Aws, state_path: Path | str | None = None, console=None) -> str:
    """Publish the test notification; returns SNS's message ID."""
    alerts, _ = _recorded(config, aws, state_path, console)
    message = (
        f"TEST NOTIFICATION from 'provision alerts test' for project {config.project} in {aws.region}.\n"
        "Nothing is wrong: this message only checks that alerts reach you. Alerts from Amazon Managed "
        "Service for Prometheus come to this address the same way, through this topic.\n"
    )
    try:
        answer = aws.client("sns").publish(
            TopicArn=alerts.topic_arn, Subject=TEST_SUBJECT.format(project=config.project), Message=message,
            MessageAttributes={"test": {"DataType": "String", "StringValue": "true"}})
    except ClientError as exc:
        raise aws_failure(f"publish a test notification to {alerts.topic_arn}", exc) from exc
    return answer["MessageId"]
