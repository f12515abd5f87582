"""The dashboards as rendered for each supported server version (provisioner/metrics/dashboards.py): every
query reads what that version records, by the labels it and the collector set."""
from __future__ import annotations

import re

import pytest

from provisioner.metrics import collector, dashboards, grafana
from provisioner.temporal import versions


def _panels(dashboard: dict):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from _panels(panel)


def _queries(version_id: str):
    """(dashboard, panel title, expr) of every rendered query."""
    for name, dashboard in dashboards.all_dashboards(version_id).items():
        for panel in _panels(dashboard):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield name, panel.get("title"), target["expr"]


def _titles(dashboard: dict) -> set[str]:
    return {p.get("title") for p in _panels(dashboard)}


@pytest.mark.parametrize("version_id", versions.SUPPORTED)
def test_every_query_reads_only_metrics_the_version_records(version_id):
    version = versions.load(version_id)
    for _name, title, expr in _queries(version_id):
        for metric in dashboards.metric_names(expr):
            definition = dashboards.defined_metric(metric, version)
            assert definition is not None and definition["recorded"], (title, metric, expr)


@pytest.mark.parametrize("version_id", versions.SUPPORTED)
def test_a_histogram_is_read_through_its_bucket_sum_or_count_never_bare(version_id):
    version = versions.load(version_id)
    for _name, title, expr in _queries(version_id):
        bare = {m for m in dashboards.metric_names(expr) if version.metrics.get(m, {}).get("prometheus") == "histogram"}
        assert not bare, (title, expr)


@pytest.mark.parametrize("version_id", versions.SUPPORTED)
def test_queries_group_only_by_labels_the_server_or_the_collector_sets(version_id):
    known = versions.load(version_id).metric_label_keys | collector.SCRAPE_LABELS | {"le"}
    for _name, title, expr in _queries(version_id):
        assert dashboards.grouping_labels(expr) <= known, (title, expr)


@pytest.mark.parametrize("version_id", versions.SUPPORTED)
def test_task_processor_and_cache_operations_are_ones_the_version_names(version_id):
    version = versions.load(version_id)
    for _name, title, expr in _queries(version_id):
        for value in re.findall(r'operation="([^"]+)"', expr):
            if value.startswith(dashboards.SCOPE_PREFIXES):
                assert value in version.metric_operation_values, (title, value)


def test_actions_count_commands_by_command_type_not_the_seven_counters_no_server_has():
    (actions,) = [e for n, t, e in _queries("fork") if t == "Actions" and "service_requests" in e]
    assert not re.search(r"\w+_command\b", actions)
    for command_type in dashboards.COMMAND_COUNTERS.values():
        assert f'command{{commandType="{command_type}", service_name="history"}}' in actions


def test_error_breakdowns_read_service_error_with_type_by_error_type():
    queries = [e for _n, _t, e in _queries("fork")]
    assert not [e for e in queries if "__name__" in e or "service_errors_entity_not_found" in e
                or "service_errors_execution_already_started" in e]
    assert any("sum by (error_type) (rate(service_error_with_type{service_name=\"frontend\"}[5m]))" in e for e in queries)
    assert any('service_error_with_type{error_type="serviceerror_NotFound", service_name="history"}' in e for e in queries)


def test_idle_failure_counters_read_zero_and_quantiles_stay_no_data():
    queries = {(n, t, e) for n, t, e in _queries("fork")}
    persistence_errors = [e for n, t, e in queries if n == "frontend-service-specific" and "persistence_errors" in e]
    assert persistence_errors == ['(sum (rate(persistence_errors{service_name="frontend"}[5m]))) or on() vector(0)']
    assert not [e for _n, _t, e in queries if "histogram_quantile" in e and "vector(0)" in e]
    requests = [e for n, t, e in queries if n == "frontend-service-specific" and e.startswith("sum (rate(service_requests")]
    assert requests and not [e for e in requests if "vector(0)" in e]  # a dead scrape must not read as 0 requests


def test_per_task_groupings_use_the_collectors_task_label():
    queries = [e for _n, _t, e in _queries("fork")]
    assert "sum by (ecs_task) (rate(memory_num_gc_sum[5m]))" in queries
    worker = [e for n, _t, e in _queries("fork") if n == "worker-service-specific"]
    assert worker and all("without (instance, ecs_task, ecs_task_revision)" in e for e in worker)
    assert {r["target_label"] for r in collector.RELABEL_CONFIGS} >= {"ecs_task", "ecs_task_revision"}
    assert not [e for e in queries if re.search(r"temporal_namespace|temporal_service_type|kubernetes_pod_name|\bpod\b", e)]


def test_stale_operations_are_renamed_or_their_queries_removed():
    queries = [e for _n, _t, e in _queries("1.31")]
    assert any('start_to_close_timeout{ operation="TimerActiveTaskWorkflowTaskTimeout"}' in e for e in queries)
    assert not [e for e in queries if re.search(r"TimerActiveTaskWorkflowTimeout\b|ActiveTaskCommand|"
                                                r'operation="HistoryCacheGetCurrentExecution"', e)]
    assert any('failed_workflow_tasks{service_name="history", operation=~"RespondWorkflowTaskCompleted|'
               'RespondWorkflowTaskFailed"}' in e for e in queries)


def test_a_removed_panel_is_gone_and_named_with_its_reason_in_the_dashboards_description():
    rendered = dashboards.render("history-service-specific", "fork")
    assert "Empty Workflow Tasks" in _titles(dashboards.committed("history-service-specific"))
    assert "Empty Workflow Tasks" not in _titles(rendered.dashboard)
    assert ("panel 'Empty Workflow Tasks' removed: none of its queries reads a metric of Temporal fork"
            in rendered.dashboard["description"])
    assert "empty_completion_commands is not recorded by Temporal fork" in rendered.dashboard["description"]
    assert dashboards.SOURCE_COMMIT[:12] in rendered.dashboard["description"]


def test_tasks_expired_stays_where_the_version_records_it():
    matching = dashboards.all_dashboards("1.31")["matching-service-specific"]
    assert "Expired Tasks" in _titles(matching)
    assert versions.load("1.31").metrics["tasks_expired"]["recorded"]


@pytest.mark.parametrize("version_id", versions.SUPPORTED)
def test_each_rendered_dashboard_fits_an_advanced_ssm_parameter(version_id):
    for document in dashboards.all_dashboards(version_id).values():
        assert len(grafana.packed(document)) <= 8192


def test_the_extracted_metric_types_are_the_servers():
    """From the source (common/metrics/metric_defs.go, v1.31.2): what the rewrites rely on."""
    metrics = versions.load("1.31").metrics
    assert metrics["memory_num_gc"] == {"kind": "histogram", "prometheus": "histogram", "recorded": True}
    assert metrics["sharditem_acquisition_latency"]["prometheus"] == "histogram"  # NewTimerDef
    assert metrics["command"]["kind"] == "counter" and "start_timer_command" not in metrics
    assert metrics["empty_completion_commands"]["recorded"] is False  # defined, never recorded
    assert {"namespace", "operation", "service_name", "commandType", "error_type"} <= versions.load("1.31").metric_label_keys
    fork = versions.load("fork").metrics
    assert fork["dsql_tx_conflict_total"]["kind"] == "counter"  # the fork's DSQL plugin, by a direct handler call
