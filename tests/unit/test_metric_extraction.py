"""scripts/extract_temporal_data.py reads each version's metrics from its source: definitions and direct
handler calls, whether each is ever recorded, the label keys (both tag syntaxes) and operation values."""
from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "extract_temporal_data.py"

FILES = {
    "go.mod": "module go.temporal.io/server\n",
    "common/metrics/defs.go": "package metrics\n\nfunc NewCounterDef(name string, opts ...Option) counterDefinition {\n"
                              "\treturn counterDefinition{name}\n}\n",
    "common/metrics/metric_defs.go": """package metrics

const (
	OperationTagName = "operation"
	ErrorTypeTagName = "error_type"
)

const (
	TimerActiveTaskWorkflowTaskTimeoutScope = "TimerActiveTaskWorkflowTaskTimeout"
	TaskTypeTransferActiveTaskActivity = "TransferActiveTaskActivity"
)

var (
	ServiceRequests = NewCounterDef("service_requests")
	EmptyCompletionCommandsCounter = NewCounterDef("empty_completion_commands")
	ShardLatency = NewTimerDef("sharditem_acquisition_latency")
	NumGC = NewBytesHistogramDef("memory_num_gc")
)
""",
    "common/metrics/tags.go": """package metrics

const namespace = "namespace"

func NamespaceTag(value string) Tag { return Tag{Key: namespace, Value: value} }
func OldTag(value string) Tag { return &tagImpl{key: "old_style", value: value} }
func OperationTag(value string) Tag { return StringTag(OperationTagName, value) }
""",
    "service/frontend/handler.go": """package frontend

func record() {
	metrics.ServiceRequests.With(h).Record(1)
	metrics.ShardLatency.With(h).Record(d)
	metrics.NumGC.With(h).Record(1)
}
""",
    "common/persistence/sql/sqlplugin/dsql/metrics.go": """package dsql

func newMetrics(metricsHandler Handler) { metricsHandler.Counter("dsql_tx_conflict_total") }
""",
}


@pytest.fixture(scope="module")
def extract():
    spec = importlib.util.spec_from_file_location("extract_temporal_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tree(extract, tmp_path_factory):
    source = tmp_path_factory.mktemp("temporal")
    for path, text in FILES.items():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_text(text)
    git = ["git", "-C", str(source), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "tree"], check=True)
    return extract.Tree(str(source / ".git"), "HEAD")


def test_each_definition_has_its_go_kind_and_prometheus_type(extract, tree):
    metrics = extract.metrics(tree, "go.temporal.io/server")["metrics"]
    assert metrics["service_requests"] == {"kind": "counter", "prometheus": "counter", "recorded": True}
    assert metrics["sharditem_acquisition_latency"] == {"kind": "timer", "prometheus": "histogram", "recorded": True}
    assert metrics["memory_num_gc"]["prometheus"] == "histogram"


def test_a_definition_never_used_elsewhere_is_not_recorded(extract, tree):
    assert extract.metrics(tree, "go.temporal.io/server")["metrics"]["empty_completion_commands"]["recorded"] is False


def test_a_metric_named_in_a_direct_handler_call_is_found(extract, tree):
    assert extract.metrics(tree, "go.temporal.io/server")["metrics"]["dsql_tx_conflict_total"]["kind"] == "counter"


def test_label_keys_come_from_both_tag_syntaxes_resolved_through_the_packages_constants(extract, tree):
    assert {"namespace", "old_style", "operation"} <= set(extract.metrics(tree, "go.temporal.io/server")["label_keys"])


def test_operation_values_are_the_scope_and_task_type_constants(extract, tree):
    assert extract.metrics(tree, "go.temporal.io/server")["operation_values"] == [
        "TimerActiveTaskWorkflowTaskTimeout", "TransferActiveTaskActivity"]
