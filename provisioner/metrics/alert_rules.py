"""The alert rules AMP evaluates and the alert manager definition that routes them (README: "Alerts").

`render_rules(config)` is the one Prometheus rule file: the tool sends it as the workspace's rule groups
namespace, the tests check it with `promtool check rules` and `promtool test rules`. The metric names are the
server's (temporal common/metrics/metric_defs.go in the temporal-dsql fork, github.com/iw/temporal) and the
fork's DSQL plugin's (common/persistence/sql/sqlplugin/dsql/metrics.go); the `job` label is the collector's,
one per role (provisioner/metrics/collector.py job_name). Temporal publishes no server-side thresholds
(docs.temporal.io "service metrics"): the defaults in `[alerts]` are starting points, named in the README.

`render_alert_manager(...)` is AMP's alert manager definition: its only receiver is the SNS topic, and
`check_alert_manager` refuses what AMP refuses (AMP user guide, AMP-alertmanager-receiver-config and
AMP-alertmanager-config).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from provisioner.config import MAX_REPEAT_SECONDS, AlertsConfig, Config, duration_seconds
from provisioner.metrics.collector import job_name

GROUP = "temporal"
RECEIVER = "sns"
# The roles that serve requests: the worker role's service_requests are its own calls, not clients'.
REQUEST_ROLES = ("frontend", "history", "matching")
TEMPORAL_JOBS = 'job=~"temporal-.+"'


@dataclass(frozen=True)
class AlertRule:
    """One alert: its PromQL, how long it must hold, its severity, what it means and why it is there."""

    alert: str
    expr: str
    for_: str
    severity: str
    summary: str
    setting: str  # the [alerts] key it reads
    threshold: float | None = None


def rules(config: Config) -> list[AlertRule]:
    """Every alert, with the thresholds and durations of `[alerts]`. Each comment says why the rule exists."""
    alerts: AlertsConfig = config.alerts
    request_jobs = "|".join(job_name(role) for role in REQUEST_ROLES)
    history = f'job="{job_name("history")}"'
    ratio = alerts.service_error_ratio
    return [
        # A task whose /metrics cannot be read is dead, restarting or unreachable; every other rule is blind
        # to it. `up` is the scrape's own series, per target (Prometheus docs, "Jobs and instances").
        AlertRule("TemporalTargetDown", f"up{{{TEMPORAL_JOBS}}} == 0", alerts.target_down.for_, "critical",
                  "Temporal task {{ $labels.ecs_task }} ({{ $labels.job }}) cannot be scraped", "target_down"),
        # service_errors counts only unexpected errors (NotFound, AlreadyExists, InvalidArgument... are
        # expected and not counted): common/rpc/interceptor/request_error_handler.go recordErrorMetrics.
        AlertRule(
            "TemporalServiceErrorRatio",
            f'sum by (job) (rate(service_errors{{job=~"{request_jobs}"}}[5m])) / '
            f'sum by (job) (rate(service_requests{{job=~"{request_jobs}"}}[5m])) > {ratio.threshold}',
            ratio.for_, "critical", "{{ $labels.job }}: {{ $value | humanizePercentage }} of requests fail unexpectedly",
            "service_error_ratio", ratio.threshold),
        # Persistence errors are DSQL refusing or failing Temporal's reads and writes (persistence_errors:
        # metric_defs.go PersistenceFailures); they surface as workflow task retries and timeouts.
        AlertRule(
            "TemporalPersistenceErrors",
            f"sum by (job) (rate(persistence_errors{{{TEMPORAL_JOBS}}}[5m])) > {alerts.persistence_error_rate.threshold}",
            alerts.persistence_error_rate.for_, "critical",
            "{{ $labels.job }}: {{ $value | humanize }} persistence errors a second", "persistence_error_rate",
            alerts.persistence_error_rate.threshold),
        # Slow persistence slows every workflow; persistence_latency is a histogram in seconds (the server's
        # prometheus config: timerType histogram, provisioner/temporal/server_config.py).
        AlertRule(
            "TemporalPersistenceLatencyHigh",
            "histogram_quantile(0.99, sum by (job, le) (rate(persistence_latency_bucket"
            f"{{{TEMPORAL_JOBS}}}[5m]))) > {alerts.persistence_latency_p99_seconds.threshold}",
            alerts.persistence_latency_p99_seconds.for_, "warning",
            "{{ $labels.job }}: p99 persistence latency {{ $value | humanizeDuration }}",
            "persistence_latency_p99_seconds", alerts.persistence_latency_p99_seconds.threshold),
        # A history host keeps losing shards it believed it owned: membership flapping or two hosts fighting
        # over shards (service_errors_shard_ownership_lost, metric_defs.go).
        AlertRule(
            "TemporalShardOwnershipLost",
            f"sum(rate(service_errors_shard_ownership_lost{{{TEMPORAL_JOBS}}}[5m])) > "
            f"{alerts.shard_ownership_lost_rate.threshold}",
            alerts.shard_ownership_lost_rate.for_, "warning", "Shard ownership lost {{ $value | humanize }} times a second",
            "shard_ownership_lost_rate", alerts.shard_ownership_lost_rate.threshold),
        # Shards closing outside deployments mean history hosts dropping them (shard_closed_count, metric_defs.go).
        AlertRule(
            "TemporalShardsClosing",
            f"sum(rate(shard_closed_count{{{history}}}[5m])) > {alerts.shard_closed_rate.threshold}",
            alerts.shard_closed_rate.for_, "warning", "History shards close {{ $value | humanize }} times a second",
            "shard_closed_rate", alerts.shard_closed_rate.threshold),
        # Every shard must be owned by exactly one history host: numshards_gauge is what each host owns
        # (service/history/shard/controller_impl.go), so their sum is temporal.num_history_shards when healthy.
        AlertRule(
            "TemporalShardCountMismatch",
            f"sum(numshards_gauge{{{history}}}) != {config.temporal.num_history_shards}",
            alerts.shard_count_mismatch.for_, "critical",
            f"History hosts own {{{{ $value }}}} shards, not {config.temporal.num_history_shards}",
            "shard_count_mismatch"),
        # Tasks added to a queue no worker polls: a worker fleet down or on the wrong task queue
        # (no_poller_tasks: service/matching/task_queue_partition_manager.go).
        AlertRule(
            "TemporalNoPollerTasks",
            "sum by (namespace, taskqueue) (rate(no_poller_tasks[5m])) > "
            f"{alerts.no_poller_tasks_rate.threshold}",
            alerts.no_poller_tasks_rate.for_, "warning",
            "Task queue {{ $labels.taskqueue }} in {{ $labels.namespace }} gets tasks but has no poller",
            "no_poller_tasks_rate", alerts.no_poller_tasks_rate.threshold),
        # DSQL is optimistic: conflicting transactions fail with SQLSTATE 40001 and are retried; the fork
        # recommends alerting above 10 a second for 5 minutes (docs/dsql/metrics.md, DSQLHighConflictRate).
        AlertRule(
            "TemporalDsqlConflicts",
            f"sum by (job) (rate(dsql_tx_conflict_total{{{TEMPORAL_JOBS}}}[5m])) > {alerts.dsql_conflict_rate.threshold}",
            alerts.dsql_conflict_rate.for_, "warning",
            "{{ $labels.job }}: {{ $value | humanize }} DSQL conflicts a second", "dsql_conflict_rate",
            alerts.dsql_conflict_rate.threshold),
        # Transactions that failed after every retry reach Temporal as errors; the fork: any, for 2 minutes
        # (docs/dsql/metrics.md, DSQLRetryExhaustion).
        AlertRule(
            "TemporalDsqlRetriesExhausted",
            f"sum by (job) (rate(dsql_tx_exhausted_total{{{TEMPORAL_JOBS}}}[5m])) > {alerts.dsql_exhausted_rate.threshold}",
            alerts.dsql_exhausted_rate.for_, "critical",
            "{{ $labels.job }}: DSQL transactions fail after all retries", "dsql_exhausted_rate",
            alerts.dsql_exhausted_rate.threshold),
        # A full pool makes every persistence call wait; the fork: in use over max open above 0.9 for 5 minutes
        # (docs/dsql/metrics.md, DSQLPoolSaturation; gauges sampled every 15 s).
        AlertRule(
            "TemporalDsqlPoolSaturated",
            f"max by (job, ecs_task) (dsql_pool_in_use{{{TEMPORAL_JOBS}}} / dsql_pool_max_open{{{TEMPORAL_JOBS}}}) > "
            f"{alerts.dsql_pool_saturation.threshold}",
            alerts.dsql_pool_saturation.for_, "warning",
            "{{ $labels.ecs_task }}: {{ $value | humanizePercentage }} of the DSQL pool in use", "dsql_pool_saturation",
            alerts.dsql_pool_saturation.threshold),
        # Each membership change moves shards between history hosts (service/history/shard/ownership.go counts
        # membership_changed_count); many outside a deployment mean tasks crash-looping or a flapping network.
        AlertRule(
            "TemporalMembershipChurn",
            f"sum(increase(membership_changed_count{{{TEMPORAL_JOBS}}}[15m])) > {alerts.membership_changes.threshold}",
            alerts.membership_changes.for_, "warning",
            "{{ $value | humanize }} membership changes in 15 minutes", "membership_changes",
            alerts.membership_changes.threshold),
    ]


def render_rules(config: Config) -> str:
    """The Prometheus rule file (YAML) AMP evaluates: one group, every alert of `rules(config)`."""
    group = {
        "name": GROUP,
        "interval": config.alerts.evaluation_interval,
        "rules": [
            {
                "alert": rule.alert,
                "expr": rule.expr,
                "for": rule.for_,
                "labels": {"severity": rule.severity, "project": config.project},
                "annotations": {"summary": rule.summary, "setting": f"alerts.{rule.setting}"},
            }
            for rule in rules(config)
        ],
    }
    return to_yaml({"groups": [group]})


def alert_manager_config(config: Config, topic_arn: str, region: str) -> dict:
    """The alert manager's configuration: its only receiver the SNS topic, signed for `region` (AMP requires
    sigv4.region: AMP-alertmanager-receiver-config)."""
    return {
        "route": {
            "receiver": RECEIVER,
            "group_by": ["alertname", "job"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": config.alerts.repeat_interval,
        },
        "receivers": [{
            "name": RECEIVER,
            "sns_configs": [{
                "topic_arn": topic_arn,
                "sigv4": {"region": region},
                "subject": f"[{config.project}] {{{{ .CommonLabels.alertname }}}} {{{{ .Status }}}}",
                "attributes": {"project": config.project},
            }],
        }],
    }


def render_alert_manager(config: Config, topic_arn: str, region: str) -> str:
    """AMP's alert manager definition (YAML): `alertmanager_config` as a literal block, checked first."""
    inner = alert_manager_config(config, topic_arn, region)
    check_alert_manager(inner)
    return to_yaml({"alertmanager_config": to_yaml(inner)})


class AlertManagerRefused(ValueError):
    """A configuration AMP would refuse."""


# AMP sets the SNS API URL itself and supports no proxies (AMP-alertmanager-receiver-config, "Unsupported
# properties"); repeat_interval is at most 5 days (AMP-alertmanager-config).
FORBIDDEN_KEYS = ("api_url", "http_config")


def check_alert_manager(inner: dict) -> None:
    """Refuse what AMP refuses: api_url or http_config anywhere, a receiver other than SNS, an SNS receiver
    without sigv4.region, a repeat_interval over 5 days."""
    for path, key in _keys(inner):
        if key in FORBIDDEN_KEYS:
            raise AlertManagerRefused(f"AMP refuses {key} in an alert manager configuration ({path}): remove it")
    for receiver in inner.get("receivers", []):
        other = sorted(k for k in receiver if k.endswith("_configs") and k != "sns_configs")
        if other:
            raise AlertManagerRefused(f"receiver {receiver.get('name')}: AMP supports only sns_configs, not {other[0]}")
        for sns in receiver.get("sns_configs", []):
            if not (sns.get("sigv4") or {}).get("region"):
                raise AlertManagerRefused(f"receiver {receiver.get('name')}: AMP requires sigv4.region on an SNS receiver")
    for path, route in _routes(inner.get("route", {}), "route"):
        if "repeat_interval" in route and duration_seconds(route["repeat_interval"]) > MAX_REPEAT_SECONDS:
            raise AlertManagerRefused(f"{path}.repeat_interval: AMP refuses more than 5 days (120h)")


def _keys(value, path: str = ""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}".lstrip("."), key
            yield from _keys(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _keys(item, f"{path}[{index}]")


def _routes(route: dict, path: str):
    yield path, route
    for index, child in enumerate(route.get("routes", [])):
        yield from _routes(child, f"{path}.routes[{index}]")


def to_yaml(value, indent: int = 0) -> str:
    """Block-style YAML of dicts, lists, numbers and strings (strings JSON-quoted, which YAML reads as they are;
    a multi-line string as a literal block). The tool ships no YAML library, and this is all it writes."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and "\n" in item:
                lines.append(f"{pad}{key}: |")
                lines.extend(f"{pad}  {line}" if line else "" for line in item.rstrip("\n").split("\n"))
            elif isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(item, indent + 2).rstrip("\n"))
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    else:
        for item in value:
            if isinstance(item, (dict, list)) and item:
                block = to_yaml(item, indent + 2).rstrip("\n")
                lines.append(f"{pad}- {block.lstrip()}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return "\n".join(lines) + "\n"


def _scalar(value) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)  # empty
    return json.dumps(str(value))
