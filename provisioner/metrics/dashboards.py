"""The Temporal server dashboards Grafana is provisioned with: Temporal's own, from
github.com/temporalio/dashboards (MIT, its LICENSE beside them), committed verbatim in
provisioner/data/dashboards at the commit below so that an upgrade is a reviewed diff.

They are rendered for the configured server version and this stack, not shipped as committed. Run
against a real server (issue 22: `temporal server start-dev` 1.32 under an SDK workload, scraped
through the collector's own config), 101 of their 225 queries read nothing; about 30 of those are
the dashboards' own defects. `render` rewrites them by the rules below, each naming its reason, and
checks every metric a query reads against the version's own definitions (provisioner/data/temporal/
<version>.json, extracted from its source by scripts/extract_temporal_data.py): a query of a metric
the version does not define, or defines but never records, is dropped, a panel left without one is
removed, and each removal is noted in the dashboard's description.

They query the default data source (`"datasource": null`, or an undefined `${datasource}`); here every
such panel and target is pointed at the provisioned Amazon Managed Prometheus source by uid, so that
they keep working if a user adds another default. Grafana's own annotation source is left alone. Their
queries use the server's bare metric names (`service_requests`, no `_total`), which is what the
collector keeps (translation_strategy UnderscoreEscapingWithoutSuffixes).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from provisioner.metrics import collector
from provisioner.metrics.grafana import DATASOURCE_UID
from provisioner.temporal import versions

SOURCE_REPOSITORY = "https://github.com/temporalio/dashboards"
SOURCE_COMMIT = "b5d9a1bc1888f73057f1639495e5773caad783ee"  # 2025-09-17
# name (the file Grafana reads, <name>.json) -> path in the source repository
SOURCE_FILES = {
    "server-general": "server/server-general.json",
    "frontend-service-specific": "misc/frontend-service-specific.json",
    "history-service-specific": "misc/history-service-specific.json",
    "matching-service-specific": "misc/matching-service-specific.json",
    "worker-service-specific": "misc/worker-service-specific.json",
}
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}

# -- the rewrites --------------------------------------------------------------------------------------------

# The seven per-command counters the dashboards add up as "actions" were replaced by one counter,
# `command`, labelled commandType with the API's CommandType name (common/metrics/metric_defs.go
# CommandCounter, recorded with CommandTypeTag(command.GetCommandType().String()) in
# service/history/api/respondworkflowtaskcompleted). None of the seven exists in 1.28-1.31 or the fork.
COMMAND_COUNTERS = {
    "start_timer_command": "StartTimer",
    "signal_external_workflow_command": "SignalExternalWorkflowExecution",
    "record_marker_command": "RecordMarker",
    "continue_as_new_command": "ContinueAsNewWorkflowExecution",
    "child_workflow_command": "StartChildWorkflowExecution",
    "upsert_workflow_search_attributes_command": "UpsertWorkflowSearchAttributes",
    "modify_workflow_properties_command": "ModifyWorkflowProperties",
}
# Per-error counters the dashboards break errors down by, which the server records only in the
# replication task processor (service/history/replication/task_processor.go); every API error is
# counted in service_error_with_type, labelled error_type with the error's Go type without its '*'
# (common/rpc/interceptor/request_error_handler.go, ServiceErrorTypeTag in common/metrics/tags.go), the
# '.' made '_' by the Prometheus reporter's sanitizing of label values (defaultTallySanitizeOptions,
# common/metrics/config.go): serviceerror.NotFound is exposed as serviceerror_NotFound (seen on a real server).
ERROR_COUNTERS = {
    "service_errors_entity_not_found": "serviceerror_NotFound",
    "service_errors_execution_already_started": "serviceerror_WorkflowExecutionAlreadyStarted",
}
# operation values the server renamed: the workflow task timeout timer's scope is
# TimerActiveTaskWorkflowTaskTimeoutScope (common/metrics/metric_defs.go; the counters
# schedule_to_start_timeout and start_to_close_timeout are recorded under it in
# service/history/timer_queue_active_task_executor.go).
RENAMED_OPERATIONS = {"TimerActiveTaskWorkflowTimeout": "TimerActiveTaskWorkflowTaskTimeout"}
# operation values that name a task processor's or a cache's scope (common/metrics/metric_defs.go
# `...Scope` constants): one the version does not define is a query that can never match. API
# operations (StartWorkflowExecution, ...) are gRPC method names, not constants, and are not checked.
SCOPE_PREFIXES = ("TransferActive", "TransferStandby", "TimerActive", "TimerStandby", "HistoryCache", "EventsCache",
                  "VisibilityTask", "ArchivalTask", "OutboundTask")
# Labels the dashboards group by that no Temporal server sets (the label keys each version sets are
# extracted from its source: Tag{Key: ...} and StringTag(...)): they were written for a Kubernetes
# deployment with a relabelling of its own. The task label here is the collector's (collector.TASK_LABEL).
RENAMED_GROUPINGS = {
    "temporal_namespace": "namespace",  # NamespaceTag: key "namespace" (common/metrics/tags.go)
    "temporal_service_type": "service_name",  # the service's own tag, "service_name"
    "kubernetes_pod_name": collector.TASK_LABEL,  # one series per task, as per pod
}
# Summing away the replicas: on Kubernetes `pod`, here every per-task label the collector sets.
SUM_WITHOUT_REPLICAS = f"without ({', '.join(collector.PER_TASK_LABELS)})"
# Names of counters that move only when something fails, times out, misses a cache, is refused, or a
# worker misbehaves (more than one completion command in a workflow task): their panels read 0,
# not "No data", on a healthy cluster (a counter is created at its first increment, so until then
# rate() has no series). `or on() vector(0)` adds the 0 only when the query has no series at all.
FAILURE_WORDS = re.compile(r"error|fail|timeout|dropped|lost|closed|expired|throttle|panic|conflict|exhausted|"
                           r"discarded|stale|restarts|dlq|skips|miss|multiple_completion")
# The worker dashboard shows the internal worker's background jobs (scavengers, batcher, replication,
# parent close policy): idle for most of the day, each reads 0 when it has not run, where its metric exists.
BACKGROUND_DASHBOARDS = {"worker-service-specific"}

PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
                   "unless", "inf", "nan"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (selectors' names; not functions, labels or keywords)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", text):
        if text[match.end():].lstrip().startswith("(") or match.group(0).lower() in PROMQL_KEYWORDS:
            continue
        names.add(match.group(0))
    return names


def grouping_labels(expr: str) -> set[str]:
    """Labels named in by (...) and without (...) clauses."""
    return {label.strip() for clause in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
            for label in clause.split(",") if label.strip()}


def defined_metric(name: str, version: versions.ServerVersion) -> dict | None:
    """The version's definition of a series name (a histogram's _bucket/_sum/_count read its histogram)."""
    if name in version.metrics:
        return version.metrics[name]
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and version.metrics.get(base, {}).get("prometheus") == "histogram":
            return version.metrics[base]
    return None


def _selector(name: str, matcher: str, rest: str | None) -> str:
    """`name{matcher, rest}`: the selector with one more label matcher in front of its own."""
    matchers = [m for m in (matcher, (rest or "").strip()) if m]
    return f"{name}{{{', '.join(matchers)}}}" if matchers else name


def rewrite(expr: str, version: versions.ServerVersion) -> str:
    """One query rewritten for the server version and this stack (the rules above, in order)."""
    # The seven per-command counters -> command{commandType=...}, where the version has only the latter.
    for old, command_type in COMMAND_COUNTERS.items():
        if old not in version.metrics and "command" in version.metrics:
            expr = re.sub(rf"\b{old}\b(?:\{{([^}}]*)\}})?",
                          lambda m, t=command_type: _selector("command", f'commandType="{t}"', m.group(1)), expr)
    # Replication-only error counters -> service_error_with_type{error_type=...}.
    for old, error_type in ERROR_COUNTERS.items():
        if "service_error_with_type" in version.metrics:
            expr = re.sub(rf"\b{old}\b(?:\{{([^}}]*)\}})?",
                          lambda m, t=error_type: _selector("service_error_with_type", f'error_type="{t}"', m.group(1)),
                          expr)
    # A breakdown by the names of the service_errors_* counters -> by error_type of service_error_with_type.
    if "service_error_with_type" in version.metrics and '__name__=~"service_errors_.*"' in expr:
        expr = re.sub(r'\{__name__=~"service_errors_\.\*"\s*,?\s*([^}]*)\}',
                      lambda m: _selector("service_error_with_type", "", m.group(1)), expr)
        expr = re.sub(r"\bby\s*\(__name__\)", "by (error_type)", expr)
    # memory_num_gc is a histogram of the GCs since the previous sample (NumGCCounter, a BytesHistogramDef,
    # recorded with the delta in common/metrics/runtime.go): its _sum counts GCs; the bare name matches nothing.
    expr = re.sub(r"\bmemory_num_gc\b(?!_)", "memory_num_gc_sum", expr)
    # A histogram (a timer, with timerType: histogram) read bare by histogram_quantile: its buckets are
    # <name>_bucket (sharditem_acquisition_latency is NewTimerDef in metric_defs.go).
    if "histogram_quantile" in expr:
        for name in metric_names(expr):
            if version.metrics.get(name, {}).get("prometheus") == "histogram":
                expr = re.sub(rf"\b{name}\b(?!_)", f"{name}_bucket", expr)
    # Renamed operation values.
    for old, new in RENAMED_OPERATIONS.items():
        expr = expr.replace(f'operation="{old}"', f'operation="{new}"')
    # failed_workflow_tasks is recorded under RespondWorkflowTaskCompleted (a completion the server
    # rejects) and RespondWorkflowTaskFailed (the worker reports a failure): respondworkflowtaskcompleted/api.go
    # and respondworkflowtaskfailed/api.go; the dashboard reads only the first.
    expr = re.sub(r'(failed_workflow_tasks\{[^}]*)operation="RespondWorkflowTaskCompleted"',
                  r'\1operation=~"RespondWorkflowTaskCompleted|RespondWorkflowTaskFailed"', expr)
    # Groupings by labels no server sets.
    for old, new in RENAMED_GROUPINGS.items():
        expr = re.sub(rf"\b{old}\b", new, expr)
    expr = re.sub(r"\bwithout\s*\(\s*instance\s*,\s*pod\s*\)", SUM_WITHOUT_REPLICAS, expr)
    return expr


def reads_zero_when_idle(expr: str, dashboard: str, version: versions.ServerVersion) -> bool:
    """Whether an empty answer means 0 here: counters (and the background jobs' gauges) of failures or
    idle jobs, not quantiles (a quantile of nothing is not 0), and not already defaulted."""
    if "vector(" in expr or "histogram_quantile" in expr:
        return False
    names = metric_names(expr)
    kinds = {(defined_metric(n, version) or {}).get("prometheus") for n in names}
    if dashboard in BACKGROUND_DASHBOARDS:
        return bool(names) and kinds <= {"counter", "gauge"}
    return bool(names) and kinds == {"counter"} and all(FAILURE_WORDS.search(n) for n in names)


def stale_operation(expr: str, version: versions.ServerVersion) -> str | None:
    """An operation="..." value naming a scope the version does not define (after the renames), if any."""
    for value in re.findall(r'operation="([^"]+)"', expr):
        if value.startswith(SCOPE_PREFIXES) and value not in version.metric_operation_values:
            return value
    return None


def missing_metric(expr: str, version: versions.ServerVersion) -> str | None:
    """A metric the query reads that the version does not define, or defines but never records."""
    for name in sorted(metric_names(expr)):
        definition = defined_metric(name, version)
        if definition is None or not definition.get("recorded", True):
            return name
    return None


@dataclass
class Rendered:
    dashboard: dict
    notes: list[str] = field(default_factory=list)  # each panel or query removed, and why


def _render_panels(panels: list, name: str, version: versions.ServerVersion, notes: list[str]) -> list:
    kept = []
    for panel in panels:
        panel = dict(panel)
        if "panels" in panel:  # a collapsed row holds its panels
            panel["panels"] = _render_panels(panel["panels"], name, version, notes)
        if not panel.get("targets"):
            kept.append(panel)
            continue
        targets = []
        for target in panel["targets"]:
            target = dict(target)
            if not target.get("expr"):
                targets.append(target)
                continue
            expr = rewrite(target["expr"], version)
            why = None
            if (metric := missing_metric(expr, version)) is not None:
                why = f"{metric} is not recorded by Temporal {version.id}"
            elif (operation := stale_operation(expr, version)) is not None:
                why = f"operation {operation} does not exist in Temporal {version.id}"
            if why:
                notes.append(f"panel {panel.get('title')!r}: query {target.get('refId', '?')} removed: {why}")
                continue
            if reads_zero_when_idle(expr, name, version):
                expr = f"({expr.strip()}) or on() vector(0)"
            target["expr"] = expr
            targets.append(target)
        if not targets:
            notes.append(f"panel {panel.get('title')!r} removed: none of its queries reads a metric of "
                         f"Temporal {version.id}")
            continue
        panel["targets"] = targets
        kept.append(panel)
    return kept


def render(name: str, version_id: str) -> Rendered:
    """A dashboard as Grafana gets it for a server version: the queries rewritten and checked against the
    version's metrics, the removals noted in its description, the data source the provisioned one."""
    version = versions.load(version_id)
    dashboard = dict(committed(name))
    notes: list[str] = []
    dashboard["panels"] = _render_panels(dashboard.get("panels", []), name, version, notes)
    if notes:
        dashboard["description"] = "\n".join(
            [f"Rendered by provision for Temporal {version.describe()} from {SOURCE_REPOSITORY} at "
             f"{SOURCE_COMMIT[:12]}; removed:", *notes])
    return Rendered(_provisioned_source(dashboard), notes)


def _is_default_source(value) -> bool:
    """The default source (null) or a template variable (`${datasource}`, which the worker dashboard
    uses without defining it)."""
    return value is None or (isinstance(value, str) and value.startswith("$"))


def _provisioned_source(node):
    if isinstance(node, dict):
        return {key: (DATASOURCE if _is_default_source(value) else value) if key == "datasource"
                else _provisioned_source(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_provisioned_source(item) for item in node]
    return node


def committed(name: str) -> dict:
    """The dashboard exactly as committed from the source repository."""
    return json.loads(resources.files("provisioner").joinpath(f"data/dashboards/{name}.json").read_text())


@cache
def _all(version_id: str) -> dict[str, str]:
    return {name: json.dumps(render(name, version_id).dashboard, sort_keys=True) for name in SOURCE_FILES}


def all_dashboards(version_id: str = versions.DEFAULT) -> dict[str, dict]:
    """name -> dashboard as Grafana gets it for that server version; the name is the file the init
    container writes (<name>.json)."""
    return {name: json.loads(text) for name, text in _all(version_id).items()}
