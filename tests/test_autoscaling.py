"""Frontend autoscaling (steps/autoscaling.py): Application Auto Scaling target tracking on the frontend's CPU."""
from __future__ import annotations

import json

import boto3
import pytest

from provisioner import operations
from provisioner.commands import scale as scaling
from tests.conftest import (
    PROJECT,
    REGION,
    CallLog,
    Requests,
    build_stack,
    config_text,
    make_config,
    new_aws,
    record_cli_calls,
    run_cli,
    up_ok,
)

AUTOSCALING = {"frontend": {"replicas": 2, "autoscaling": {"min": 2, "max": 4, "cpu_target": 55}}}
# Node B at its default max_size holds the defaults with little room: two more nodes for the frontend's max.
ROOM = {"frontend": {"max_size": 4}}
ROOM_TOML = "[capacity.frontend]\nmax_size = 4\n"
AUTOSCALING_TOML = ROOM_TOML + "[services.frontend]\nreplicas = 2\n[services.frontend.autoscaling]\nmin = 2\nmax = 4\ncpu_target = 55\n"
RESOURCE = f"service/{PROJECT}-cluster/{PROJECT}-frontend"


def autoscaled(**changes) -> dict:
    return {"frontend": AUTOSCALING["frontend"] | {"autoscaling": AUTOSCALING["frontend"]["autoscaling"] | changes}}


def targets() -> list[dict]:
    return boto3.client("application-autoscaling", region_name=REGION).describe_scalable_targets(
        ServiceNamespace="ecs")["ScalableTargets"]


def policies() -> list[dict]:
    return boto3.client("application-autoscaling", region_name=REGION).describe_scaling_policies(
        ServiceNamespace="ecs")["ScalingPolicies"]


def frontend_count() -> int:
    ecs = boto3.client("ecs", region_name=REGION)
    return ecs.describe_services(cluster=f"{PROJECT}-cluster", services=[f"{PROJECT}-frontend"])["services"][0]["desiredCount"]


@pytest.fixture
def stack(endpoint, tmp_path):
    """A stack whose config autoscales the frontend, built but not yet scaled (every service at 0)."""
    config = make_config(services=AUTOSCALING, capacity=ROOM)
    state = tmp_path / "state.json"
    up_ok(config, new_aws(), state)
    return config, state


@pytest.fixture(scope="module")
def unscaled(moto_endpoint, tmp_path_factory):
    """The same stack, built once for the tests that only read it or are refused: each checks it changed nothing."""
    config, state, _ = build_stack(moto_endpoint, tmp_path_factory, services=AUTOSCALING, capacity=ROOM)
    return config, state


def scale(config, state, targets_: dict[str, int], *hooks):
    return scaling.scale(config, new_aws(*hooks), targets_, state, quiet=True)


def test_a_frontend_at_zero_tasks_is_not_registered_so_nothing_starts_before_the_schema(unscaled):
    assert targets() == []
    assert frontend_count() == 0


def test_scale_up_registers_the_target_and_a_cpu_target_tracking_policy(stack):
    config, state = stack
    sent = Requests()
    scale(config, state, {"frontend": 2}, ("provide-client-params", sent))
    assert sent.of("application-autoscaling.RegisterScalableTarget") == [{
        "ServiceNamespace": "ecs", "ResourceId": RESOURCE, "ScalableDimension": "ecs:service:DesiredCount",
        "MinCapacity": 2, "MaxCapacity": 4,
        "Tags": {"Name": f"{PROJECT}-frontend-target", "Project": PROJECT, "ProvisionStep": "autoscaling",
                 "ProvisionKey": "frontend-target", "ManagedBy": "provision"},
    }]
    assert sent.of("application-autoscaling.PutScalingPolicy") == [{
        "PolicyName": f"{PROJECT}-frontend-cpu", "ServiceNamespace": "ecs", "ResourceId": RESOURCE,
        "ScalableDimension": "ecs:service:DesiredCount", "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 55.0, "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
            "ScaleOutCooldown": 60, "ScaleInCooldown": 300, "DisableScaleIn": False,
        },
    }]
    assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in targets()] == [(RESOURCE, 2, 4)]
    assert [p["PolicyName"] for p in policies()] == [f"{PROJECT}-frontend-cpu"]
    assert frontend_count() == 2
    records = json.loads(state.read_text())["resources"]["autoscaling"]
    assert records["frontend-target"]["id"] == RESOURCE


def test_a_second_up_changes_nothing_and_reads_the_target_and_policy_once_each(stack):
    config, state = stack
    scale(config, state, {"frontend": 2})
    before = state.read_bytes()
    log = CallLog()
    assert up_ok(config, new_aws(("before-call", log)), state).changes == []
    assert log.mutating == []
    assert sorted(c for c in log.calls if c.startswith("application-auto-scaling.")) == [
        "application-auto-scaling.DescribeScalableTargets", "application-auto-scaling.DescribeScalingPolicies"]
    assert state.read_bytes() == before


def test_status_shows_the_target_and_policy_and_a_deregistered_target_as_missing(stack):
    config, state = stack
    scale(config, state, {"frontend": 2})
    rows = {(r.key, r.kind, r.status) for r in operations.status(config, new_aws(), state) if r.step == "autoscaling"}
    assert rows == {("frontend-target", "ScalableTarget", "ok"), ("frontend-cpu", "ScalingPolicy", "ok")}
    boto3.client("application-autoscaling", region_name=REGION).deregister_scalable_target(
        ServiceNamespace="ecs", ResourceId=RESOURCE, ScalableDimension="ecs:service:DesiredCount")
    rows = {(r.key, r.status) for r in operations.status(config, new_aws(), state) if r.step == "autoscaling"}
    assert {("frontend-target", "missing"), ("frontend-cpu", "missing")} <= rows


def test_up_keeps_the_count_the_autoscaler_chose(stack):
    config, state = stack
    scale(config, state, {"frontend": 2})
    boto3.client("ecs", region_name=REGION).update_service(
        cluster=f"{PROJECT}-cluster", service=f"{PROJECT}-frontend", desiredCount=3)  # as the autoscaler does
    assert up_ok(config, new_aws(), state).changes == []
    assert frontend_count() == 3


def test_up_registers_a_running_frontend_when_autoscaling_is_turned_on(endpoint, tmp_path):
    state = tmp_path / "state.json"
    up_ok(make_config(capacity=ROOM), new_aws(), state)
    scale(make_config(capacity=ROOM), state, {"frontend": 2})
    result = up_ok(make_config(services=AUTOSCALING, capacity=ROOM), new_aws(), state)
    assert [c.describe() for c in result.changes] == [
        f"create scalable target frontend-target ({RESOURCE}, 2..4 tasks)",
        f"create scaling policy frontend-cpu ({PROJECT}-frontend-cpu: average CPU at 55 %)",
    ]
    assert [t["ResourceId"] for t in targets()] == [RESOURCE]


def test_changed_limits_and_cpu_target_update_the_target_and_policy(stack):
    config, state = stack
    scale(config, state, {"frontend": 2})
    changed = make_config(services=autoscaled(max=6, cpu_target=70), capacity=ROOM)
    result = up_ok(changed, new_aws(), state)
    assert [c.describe() for c in result.changes] == [
        f"update scalable target frontend-target ({RESOURCE}, 2..6 tasks)",
        f"update scaling policy frontend-cpu ({PROJECT}-frontend-cpu: average CPU at 70 %)",
    ]
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in targets()] == [(2, 6)]
    assert [p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] for p in policies()] == [70.0]


def test_up_interrupted_after_registering_the_target_converges_with_one_target(stack):
    config, state = stack
    operations.up(make_config(capacity=ROOM), new_aws(), state, quiet=True)  # autoscaling off: nothing to register yet
    scale(make_config(capacity=ROOM), state, {"frontend": 2})

    def crash(**_):
        raise RuntimeError("the process dies after AWS registered the target, before the state records it")

    crashed = operations.up(config, new_aws(("after-call.application-auto-scaling.RegisterScalableTarget", crash)),
                            state, quiet=True)
    assert not crashed.ok and len(targets()) == 1
    assert "autoscaling" not in json.loads(state.read_text())["resources"]
    result = up_ok(config, new_aws(), state)
    assert [c.describe() for c in result.changes] == [
        f"create scaling policy frontend-cpu ({PROJECT}-frontend-cpu: average CPU at 55 %)"]
    assert len(targets()) == 1 and len(policies()) == 1
    assert set(json.loads(state.read_text())["resources"]["autoscaling"]) == {"frontend-target", "frontend-cpu"}


def test_turning_autoscaling_off_deregisters_the_target_and_keeps_the_count(stack):
    config, state = stack
    scale(config, state, {"frontend": 2})
    result = up_ok(make_config(capacity=ROOM), new_aws(), state)
    assert [c.describe() for c in result.changes] == [
        f"delete scalable target frontend-target ({RESOURCE} (autoscaling is off))"]
    assert targets() == [] and policies() == []
    assert frontend_count() == 2
    assert "autoscaling" not in json.loads(state.read_text())["resources"]


def test_scale_down_deregisters_so_the_frontend_stays_stopped_and_scale_up_registers_again(stack):
    config, state = stack
    scale(config, state, {"frontend": 2})
    scale(config, state, {"frontend": 0})
    assert targets() == [] and frontend_count() == 0
    assert up_ok(config, new_aws(), state).changes == []
    scale(config, state, {"frontend": 3})
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in targets()] == [(2, 4)] and frontend_count() == 3


def test_destroy_deregisters_the_target_before_deleting_the_service(stack):
    config, state = stack
    scale(config, state, {"frontend": 2})
    sent = Requests()
    assert operations.destroy(config, new_aws(("provide-client-params", sent)), state, quiet=True).ok
    order = [name for name, _ in sent.sent]
    deregistered = order.index("application-autoscaling.DeregisterScalableTarget")
    frontend_deleted = next(i for i, (name, params) in enumerate(sent.sent)
                            if name == "ecs.DeleteService" and params["service"].endswith("-frontend"))
    assert deregistered < frontend_deleted
    assert targets() == [] and policies() == []


def test_destroy_without_state_finds_the_target_by_its_resource_id(stack):
    config, state = stack
    scale(config, state, {"frontend": 2})
    state.unlink()
    assert operations.destroy(config, new_aws(), state, quiet=True).ok
    assert targets() == []


@pytest.mark.parametrize("count", ["1", "5"])
def test_scale_outside_min_max_is_refused_and_changes_nothing(unscaled, tmp_path, monkeypatch, count):
    """On the module's stack: a refusal that changed anything fails here (no mutating call, same state)."""
    _, state = unscaled
    config_file = tmp_path / "provision.toml"
    config_file.write_text(config_text(extra=AUTOSCALING_TOML))
    before, calls = state.read_bytes(), record_cli_calls(monkeypatch)
    result = run_cli("scale", f"frontend={count}", config_file=config_file, state=state)
    assert result.exit_code == 2, result.output
    assert "the frontend autoscales between 2 and 4 tasks (services.frontend.autoscaling.min/max)" in result.output
    assert "Traceback" not in result.output
    assert calls.mutating == [] and state.read_bytes() == before
    assert frontend_count() == 0 and targets() == []


def test_up_refuses_an_autoscaling_max_the_frontend_node_group_cannot_hold(endpoint, tmp_path):
    config = make_config(services=autoscaled(max=40), capacity={"frontend": {"min_size": 1, "max_size": 1,
                                                                             "desired_capacity": 1}})
    result = operations.up(config, new_aws(), tmp_path / "state.json", quiet=True)
    assert not result.ok
    message = "\n".join(str(error) for _, error in result.errors)
    assert "cannot hold matching=2 frontend=40" in message and "lower services.frontend.autoscaling.max" in message
    assert targets() == []
