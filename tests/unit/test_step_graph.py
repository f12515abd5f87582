"""The step graph (provisioner/engine.py): plan, apply and destroy are ordered by each step's `requires`;
a graph that cannot run (a cycle, an unknown or doubled name) is refused when the engine is made."""
from __future__ import annotations

import threading

import pytest
from rich.console import Console

from provisioner.engine import Engine, Step, StepContext
from provisioner.errors import ProvisionError
from provisioner.progress import Reporter
from provisioner.state import StateStore
from tests.conftest import PROJECT, REGION, make_config, new_aws


class StepFailed(Exception):
    pass


class Journal(Reporter):
    """The progress display's calls, in order: what a user sees queued, started, finished and skipped."""

    def __init__(self) -> None:
        super().__init__(Console(quiet=True), quiet=True)
        self.seen: list[tuple[str, str]] = []
        self._seen_lock = threading.Lock()

    def _note(self, event: str, step: str) -> None:
        with self._seen_lock:
            self.seen.append((event, step))

    def queue(self, step: str, title: str) -> None:
        self._note("queue", step)

    def start(self, step: str, title: str) -> None:
        self._note("start", step)

    def finish(self, step: str, ok: bool, message: str = "") -> None:
        self._note("finish" if ok else "fail", step)

    def skip(self, step: str) -> None:
        self._note("skip", step)

    def steps(self, event: str) -> list[str]:
        return [step for seen, step in self.seen if seen == event]


class Recorded(Step):
    """A step that only notes that it ran (and fails when told to)."""

    def __init__(self, name: str, *requires: str, fails: bool = False):
        self.name, self.title, self.requires, self.fails = name, name.title(), requires, fails
        self.ran: list[str] = []

    def _act(self, ctx: StepContext) -> None:
        self.ran.append("plan" if ctx.dry_run else "run")
        if self.fails:
            raise StepFailed(f"{self.name} failed")

    apply = _act
    destroy = _act


@pytest.fixture
def engine(tmp_path):
    """An engine over the given steps, with a real (empty, locked) state file and a recording display."""
    opened = []

    def make(*steps: Step) -> Engine:
        store = StateStore(tmp_path / "state.json", PROJECT, REGION)
        context = store.locked("test")
        context.__enter__()
        opened.append(context)
        return Engine(list(steps), make_config(), new_aws(), store, Journal())

    yield make
    for context in opened:
        context.__exit__(None, None, None)


def names(steps) -> list[str]:
    return [step.name for step in steps]


def test_each_step_comes_after_what_it_requires_whatever_the_pipeline_order(engine):
    made = engine(Recorded("services", "cluster", "roles"), Recorded("cluster", "network"),
                  Recorded("roles"), Recorded("network"))
    assert names(made.steps) == ["roles", "network", "cluster", "services"]


def test_a_pipeline_already_in_order_keeps_its_order(engine):
    pipeline = [Recorded("a"), Recorded("c", "a"), Recorded("b"), Recorded("d", "b", "c")]
    assert names(engine(*pipeline).steps) == ["a", "c", "b", "d"]


def test_plan_walks_the_order_apply_starts_from(engine):
    made = engine(Recorded("services", "cluster"), Recorded("cluster", "network"), Recorded("network"),
                  Recorded("logs"))
    assert made.plan().ok
    planned = made.reporter.steps("start")
    made.reporter.seen.clear()
    assert made.apply().ok
    assert planned == names(made.steps) == made.reporter.steps("queue")
    assert sorted(made.reporter.steps("start")) == sorted(planned)


def test_apply_starts_a_step_only_after_what_it_requires_has_finished(engine):
    made = engine(Recorded("services", "cluster", "roles"), Recorded("cluster", "network"),
                  Recorded("roles"), Recorded("network"))
    assert made.apply().ok
    seen = made.reporter.seen
    for step in made.steps:
        for required in step.requires:
            assert seen.index(("finish", required)) < seen.index(("start", step.name)), (step.name, seen)


def test_destroy_starts_a_step_only_after_what_requires_it_has_finished(engine):
    made = engine(Recorded("services", "cluster"), Recorded("cluster", "network"), Recorded("network"))
    assert made.destroy().ok
    assert made.reporter.steps("start") == ["services", "cluster", "network"]
    seen = made.reporter.seen
    assert seen.index(("finish", "services")) < seen.index(("start", "cluster"))
    assert seen.index(("finish", "cluster")) < seen.index(("start", "network"))


def test_a_cycle_is_refused_when_the_engine_is_made_naming_its_steps(engine):
    with pytest.raises(ProvisionError, match="cycle") as refused:
        engine(Recorded("network"), Recorded("cluster", "services", "network"), Recorded("tasks", "cluster"),
               Recorded("services", "tasks"))
    message = str(refused.value)
    assert all(name in message for name in ("cluster", "tasks", "services")), message
    assert "network" not in message


def test_a_step_requiring_itself_is_a_cycle(engine):
    with pytest.raises(ProvisionError, match="cycle: network -> network"):
        engine(Recorded("network", "network"))


def test_an_unknown_requirement_is_refused_naming_the_step_and_the_name(engine):
    with pytest.raises(ProvisionError, match="cluster requires netwrk"):
        engine(Recorded("network"), Recorded("cluster", "netwrk"))


def test_two_steps_with_one_name_are_refused(engine):
    with pytest.raises(ProvisionError, match="more than one step named network"):
        engine(Recorded("network"), Recorded("network"))


def test_a_failed_step_stops_its_dependents_only(engine):
    network, cluster, services = Recorded("network", fails=True), Recorded("cluster", "network"), Recorded(
        "services", "cluster")
    logs, dashboards = Recorded("logs"), Recorded("dashboards", "logs")
    made = engine(network, cluster, services, logs, dashboards)
    result = made.apply()
    assert [(step, str(error)) for step, error in result.errors] == [("network", "network failed")]
    assert (cluster.ran, services.ran) == ([], [])
    assert (logs.ran, dashboards.ran) == (["run"], ["run"])
    assert sorted(made.reporter.steps("skip")) == ["cluster", "services"]


def test_a_failed_destroy_keeps_what_the_failed_step_requires(engine):
    network, cluster, services = Recorded("network"), Recorded("cluster", "network"), Recorded(
        "services", "cluster", fails=True)
    logs = Recorded("logs")
    result = engine(network, cluster, services, logs).destroy()
    assert [step for step, _ in result.errors] == ["services"]
    assert (cluster.ran, network.ran, logs.ran) == ([], [], ["run"])


def test_a_plan_goes_on_past_a_failed_step_and_reports_it(engine):
    network, cluster = Recorded("network", fails=True), Recorded("cluster", "network")
    result = engine(network, cluster).plan()
    assert [step for step, _ in result.errors] == ["network"]
    assert cluster.ran == ["plan"]


class FinishFails(Journal):
    """A display whose success line fails: the step's work is done, the run is not."""

    def finish(self, step: str, ok: bool, message: str = "") -> None:
        super().finish(step, ok, message)
        if ok and step == "network":
            raise StepFailed("the progress line of network failed")


def test_a_failure_after_a_steps_work_is_reported_not_taken_for_success(engine):
    made = engine(Recorded("network"), Recorded("cluster", "network"))
    made.reporter = FinishFails()
    result = made.apply()
    assert not result.ok
    assert [(step, str(error)) for step, error in result.errors] == [
        ("network", "the progress line of network failed")]
    assert made.reporter.steps("skip") == ["cluster"]
