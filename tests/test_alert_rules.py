"""The alert rules and the alert manager configuration, checked by the real Prometheus tools: `promtool check
rules` on the rendered rule file, one `promtool test rules` unit test per alert (it fires on a synthetic failing
series and stays silent on a healthy one), and `amtool check-config` on the rendered alert manager configuration.
Fast: no emulator."""
from __future__ import annotations

import json
import subprocess

import pytest

from provisioner.config import ConfigError
from provisioner.metrics import alert_rules
from provisioner.metrics.alert_rules import AlertManagerRefused, alert_manager_config, check_alert_manager, render_rules
from tests.conftest import PROJECT, SERVER_IMAGE, make_config
from tests.real_peers import require_binary

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ptest-alerts"
H = 'job="temporal-history"'


def series(name: str, values: str) -> dict:
    return {"series": name, "values": values}


# alert: (series that must fire it, healthy series that must not, labels of the alert fired, its summary).
# 41 samples 30 s apart: 20 minutes, past every default `for`.
SCENARIOS = {
    "TemporalTargetDown": (
        [series(f'up{{{H}, ecs_task="a1"}}', "0x40")], [series(f'up{{{H}, ecs_task="a1"}}', "1x40")],
        {"job": "temporal-history", "ecs_task": "a1"}, "Temporal task a1 (temporal-history) cannot be scraped"),
    "TemporalServiceErrorRatio": (
        [series('service_requests{job="temporal-frontend", operation="StartWorkflowExecution"}', "0+100x40"),
         series('service_errors{job="temporal-frontend", operation="StartWorkflowExecution"}', "0+10x40")],
        [series('service_requests{job="temporal-frontend", operation="StartWorkflowExecution"}', "0+100x40"),
         series('service_errors{job="temporal-frontend", operation="StartWorkflowExecution"}', "0+1x40")],
        {"job": "temporal-frontend"}, "temporal-frontend: 10% of requests fail unexpectedly"),
    "TemporalPersistenceErrors": (
        [series(f'persistence_errors{{{H}, operation="UpdateShard"}}', "0+60x40")],
        [series(f'persistence_errors{{{H}, operation="UpdateShard"}}', "0+3x40")],
        {"job": "temporal-history"}, "temporal-history: 2 persistence errors a second"),
    "TemporalPersistenceLatencyHigh": (
        [series(f'persistence_latency_bucket{{{H}, le="0.1"}}', "0x40"),
         series(f'persistence_latency_bucket{{{H}, le="2.5"}}', "0+100x40"),
         series(f'persistence_latency_bucket{{{H}, le="+Inf"}}', "0+100x40")],
        [series(f'persistence_latency_bucket{{{H}, le="0.1"}}', "0+100x40"),
         series(f'persistence_latency_bucket{{{H}, le="2.5"}}', "0+100x40"),
         series(f'persistence_latency_bucket{{{H}, le="+Inf"}}', "0+100x40")],
        {"job": "temporal-history"}, "temporal-history: p99 persistence latency 2.476s"),
    "TemporalShardOwnershipLost": (
        [series(f"service_errors_shard_ownership_lost{{{H}}}", "0+30x40")],
        [series(f"service_errors_shard_ownership_lost{{{H}}}", "0x40")],
        {}, "Shard ownership lost 1 times a second"),
    "TemporalShardsClosing": (
        [series(f"shard_closed_count{{{H}}}", "0+30x40")], [series(f"shard_closed_count{{{H}}}", "0x40")],
        {}, "History shards close 1 times a second"),
    "TemporalShardCountMismatch": (
        [series(f'numshards_gauge{{{H}, ecs_task="a1"}}', "256x40"),
         series(f'numshards_gauge{{{H}, ecs_task="a2"}}', "200x40")],
        [series(f'numshards_gauge{{{H}, ecs_task="a1"}}', "256x40"),
         series(f'numshards_gauge{{{H}, ecs_task="a2"}}', "256x40")],
        {}, "History hosts own 456 shards, not 512"),
    "TemporalNoPollerTasks": (
        [series('no_poller_tasks{job="temporal-matching", namespace="default", taskqueue="orders"}', "0+5x40")],
        [series('no_poller_tasks{job="temporal-matching", namespace="default", taskqueue="orders"}', "0x40")],
        {"namespace": "default", "taskqueue": "orders"}, "Task queue orders in default gets tasks but has no poller"),
    "TemporalDsqlConflicts": (
        [series(f'dsql_tx_conflict_total{{{H}, operation="UpdateShard"}}', "0+600x40")],
        [series(f'dsql_tx_conflict_total{{{H}, operation="UpdateShard"}}', "0+30x40")],
        {"job": "temporal-history"}, "temporal-history: 20 DSQL conflicts a second"),
    "TemporalDsqlRetriesExhausted": (
        [series(f'dsql_tx_exhausted_total{{{H}, operation="UpdateShard"}}', "0+1x40")],
        [series(f'dsql_tx_exhausted_total{{{H}, operation="UpdateShard"}}', "0x40")],
        {"job": "temporal-history"}, "temporal-history: DSQL transactions fail after all retries"),
    "TemporalDsqlPoolSaturated": (
        [series(f'dsql_pool_in_use{{{H}, ecs_task="a1"}}', "48x40"),
         series(f'dsql_pool_max_open{{{H}, ecs_task="a1"}}', "50x40")],
        [series(f'dsql_pool_in_use{{{H}, ecs_task="a1"}}', "10x40"),
         series(f'dsql_pool_max_open{{{H}, ecs_task="a1"}}', "50x40")],
        {"job": "temporal-history", "ecs_task": "a1"}, "a1: 96% of the DSQL pool in use"),
    "TemporalMembershipChurn": (
        [series(f'membership_changed_count{{{H}, ecs_task="a1"}}', "0+1x40")],
        [series(f'membership_changed_count{{{H}, ecs_task="a1"}}', "0x40")],
        {}, "30 membership changes in 15 minutes"),
}


@pytest.fixture(scope="module")
def rule_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("rules") / "rules.yml"
    path.write_text(render_rules(make_config()))
    return path


def promtool(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_binary("promtool", "prometheus"), *arguments],
                          capture_output=True, text=True, timeout=60, check=False)


def test_every_alert_has_a_unit_test_scenario():
    assert {rule.alert for rule in alert_rules.rules(make_config())} == set(SCENARIOS)


def test_promtool_accepts_every_rule_of_the_rendered_file(rule_file):
    checked = promtool("check", "rules", str(rule_file))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(SCENARIOS)} rules found" in checked.stdout


@pytest.mark.parametrize("alert", sorted(SCENARIOS))
def test_each_alert_fires_on_its_failing_series_and_stays_silent_on_a_healthy_one(alert, rule_file, tmp_path):
    failing, healthy, labels, summary = SCENARIOS[alert]
    severity = next(rule.severity for rule in alert_rules.rules(make_config()) if rule.alert == alert)
    setting = next(rule.setting for rule in alert_rules.rules(make_config()) if rule.alert == alert)
    fired = {"exp_labels": labels | {"severity": severity, "project": PROJECT},
             "exp_annotations": {"summary": summary, "setting": f"alerts.{setting}"}}
    tests = {
        "rule_files": [str(rule_file)],
        "evaluation_interval": "1m",
        "tests": [
            {"name": "failing", "interval": "30s", "input_series": failing,
             "alert_rule_test": [{"eval_time": "20m", "alertname": alert, "exp_alerts": [fired]}]},
            {"name": "healthy", "interval": "30s", "input_series": healthy,
             "alert_rule_test": [{"eval_time": "20m", "alertname": alert, "exp_alerts": []}]},
        ],
    }
    test_file = tmp_path / "test.yml"
    test_file.write_text(json.dumps(tests))  # JSON is YAML
    tested = promtool("test", "rules", str(test_file))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_threshold_and_duration_from_the_config_reach_the_rule():
    config = make_config(alerts={"dsql_conflict_rate": {"threshold": 25, "for": "7m"}})
    rule = next(r for r in alert_rules.rules(config) if r.alert == "TemporalDsqlConflicts")
    assert rule.expr.endswith("> 25.0") and rule.for_ == "7m"
    assert '- alert: "TemporalDsqlConflicts"' in render_rules(config) and 'for: "7m"' in render_rules(config)


def test_the_shard_count_rule_compares_with_the_configured_shards():
    config = make_config(temporal={"num_history_shards": 1024, "server_image": SERVER_IMAGE})
    rule = next(r for r in alert_rules.rules(config) if r.alert == "TemporalShardCountMismatch")
    assert rule.expr == 'sum(numshards_gauge{job="temporal-history"}) != 1024'


def test_amtool_accepts_the_rendered_alert_manager_configuration(tmp_path):
    path = tmp_path / "alertmanager.yml"
    path.write_text(alert_rules.to_yaml(alert_manager_config(make_config(), TOPIC, "eu-west-1")))
    checked = subprocess.run([require_binary("amtool", "prometheus-alertmanager"), "check-config", str(path)],
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 receivers" in checked.stdout


def test_the_definition_holds_the_configuration_as_a_block_with_the_topic_and_region():
    definition = alert_rules.render_alert_manager(make_config(), TOPIC, "eu-west-1")
    assert definition.startswith("alertmanager_config: |\n  route:\n")
    assert f'topic_arn: "{TOPIC}"' in definition and 'region: "eu-west-1"' in definition


@pytest.mark.parametrize(("change", "refusal"), [
    (lambda c: c["receivers"][0]["sns_configs"][0].update(api_url="https://sns.example"), "api_url"),
    (lambda c: c["receivers"][0]["sns_configs"][0].update(http_config={"proxy_url": "http://p"}), "http_config"),
    (lambda c: c["receivers"][0]["sns_configs"][0].update(sigv4={}), "sigv4.region"),
    (lambda c: c["route"].update(repeat_interval="121h"), "5 days"),
    (lambda c: c["route"].update(routes=[{"receiver": "sns", "repeat_interval": "6d"}]), "5 days"),
    (lambda c: c["receivers"][0].update(webhook_configs=[{"url": "http://w"}]), "only sns_configs"),
])
def test_the_tools_own_check_refuses_what_amp_refuses(change, refusal):
    config = alert_manager_config(make_config(), TOPIC, "eu-west-1")
    change(config)
    with pytest.raises(AlertManagerRefused, match=refusal):
        check_alert_manager(config)


@pytest.mark.parametrize(("alerts", "message"), [
    ({"repeat_interval": "6d"}, "alerts.repeat_interval = '6d': must be more than 0 and at most 5 days"),
    ({"target_down": {"for": "5 minutes"}}, "alerts.target_down.for = '5 minutes': '5 minutes' is not a duration"),
    ({"email": ["oncall"]}, "alerts.email = ['oncall']: 'oncall' is not an email address"),
    ({"service_error_ratio": {"threshold": -1, "for": "5m"}}, "alerts.service_error_ratio.threshold = -1"),
])
def test_a_bad_alerts_setting_is_refused_naming_the_key(alerts, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        make_config(alerts=alerts)
