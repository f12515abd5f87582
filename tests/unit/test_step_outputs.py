"""Typed step outputs: what a step hands to later steps and commands, read from the state it recorded.

A missing output is an error outside a plan and the placeholder only inside one, so a placeholder can
never reach AWS; the state file keeps its records and keys."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from provisioner.engine import StepContext
from provisioner.errors import ProvisionError
from provisioner.step_outputs import KNOWN_AFTER_APPLY, NotRecorded, known
from provisioner.state import StateStore
from provisioner.steps import pipeline
from provisioner.steps.ecs_services import ServicesOutputs
from provisioner.steps.network import NetworkOutputs
from provisioner.steps.task_definitions import TaskDefinitionOutputs, definition_key

ROOT = Path(__file__).resolve().parents[2]


def context(state: StateStore, dry_run: bool) -> StepContext:
    # Reading outputs needs only the state and the plan/apply switch.
    return StepContext("services", None, None, None, state, dry_run, None)  # type: ignore[arg-type]


@pytest.fixture
def state(tmp_path):
    store = StateStore(tmp_path / "proj.json", "proj", "eu-west-1")
    with store.locked("up"):
        store.put("network", "vpc", "vpc-1", kind="vpc", cidr="10.0.0.0/16")
        store.put("network", "private-eu-west-1a", "subnet-b", kind="subnet", tier="private", zone="eu-west-1a",
                  cidr="10.0.1.0/24")
        store.put("network", "private-eu-west-1b", "subnet-a", kind="subnet", tier="private", zone="eu-west-1b",
                  cidr="10.0.2.0/24")
        yield store


def test_an_apply_reading_an_output_not_recorded_stops_with_the_step_and_key(state):
    with pytest.raises(NotRecorded, match="the network step has not recorded private-routes yet"):
        context(state, dry_run=False).outputs_of(NetworkOutputs)


def test_a_plan_reads_an_output_not_recorded_as_known_after_apply(state):
    network = context(state, dry_run=True).outputs_of(NetworkOutputs)
    assert (network.vpc_id, network.private_subnet_ids) == ("vpc-1", ("subnet-a", "subnet-b"))
    assert network.nat_gateway_id == KNOWN_AFTER_APPLY == "(known after apply)"
    assert not known(network.nat_gateway_id) and known(network.vpc_id)


def test_an_apply_reads_every_output_once_recorded(state):
    state.put("network", "private-routes", "rtb-1", kind="route-table")
    state.put("network", "nat", "nat-1", kind="nat-gateway")
    network = context(state, dry_run=False).outputs_of(NetworkOutputs)
    assert (network.private_route_table_id, network.nat_gateway_id, network.vpc_cidr) == ("rtb-1", "nat-1", "10.0.0.0/16")


def test_a_live_value_not_known_yet_is_a_placeholder_in_a_plan_and_an_error_in_an_apply(state):
    assert context(state, dry_run=True).known_after_apply("the OpenSearch endpoint") == KNOWN_AFTER_APPLY
    with pytest.raises(ProvisionError, match="the OpenSearch endpoint is not known yet"):
        context(state, dry_run=False).known_after_apply("the OpenSearch endpoint")


def test_a_definition_the_plan_replaces_reads_as_known_after_apply_in_that_plan_only(state):
    for name in ("history", "matching", "frontend", "worker", "ui", "grafana", "collector", "schema-dsql",
                 "schema-visibility"):
        state.put("task_definitions", definition_key(name), f"arn:td/{name}:1", kind="task-definition", family=name)
    plan = context(state, dry_run=True)
    plan.replacing.add(("task_definitions", definition_key("history")))
    assert plan.outputs_of(TaskDefinitionOutputs).services["history"].arn == KNOWN_AFTER_APPLY
    assert plan.outputs_of(TaskDefinitionOutputs).services["matching"].arn == "arn:td/matching:1"
    assert context(state, dry_run=False).outputs_of(TaskDefinitionOutputs).services["history"].arn == "arn:td/history:1"


def test_outputs_read_a_state_file_written_before_they_existed(tmp_path):
    path = tmp_path / "proj.json"
    path.write_text(json.dumps({
        "version": 1, "lineage": "l-1", "serial": 3, "project": "proj", "region": "eu-west-1", "account": None,
        "settings": {},
        "resources": {"services": {"svc-history": {"id": "arn:svc/history", "kind": "ecs-service", "name": "proj-history"}}},
    }))
    store = StateStore(path, "proj", "eu-west-1")
    with store.locked("status"):
        services = ServicesOutputs.of(store)
    assert (services.names, services.arns) == ({"history": "proj-history"}, {"history": "arn:svc/history"})


def test_every_step_that_produces_outputs_declares_them_under_its_own_name_and_plans_on_an_empty_state(tmp_path):
    empty = StateStore(tmp_path / "empty.json", "proj", "eu-west-1")
    with empty.locked("plan"):
        producers = [step for step in pipeline() if step.produces]
        for step in producers:
            assert step.produces.step == step.name
            step.produces.of(empty, planning=True)
    assert {step.name for step in producers} >= {"network", "security_groups", "iam", "cluster", "task_definitions"}


def test_no_step_or_command_reads_another_steps_records_by_string_key():
    """Records are read by their own step (`self.name`) or through typed outputs, never as ("step", "key")."""
    offenders = []
    for path in [*(ROOT / "steps").glob("*.py"), *(ROOT / "provisioner").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("get", "step_records") and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                    and "state" in (getattr(node.func.value, "attr", None), getattr(node.func.value, "id", None))):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
