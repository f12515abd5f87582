"""The pipeline: ordered, idempotent steps run as a dependency graph.

Each step reads the world, compares it with the desired state from config,
acts only on the difference and records what it created in the state. `plan`
is the same walk with acting switched off. Independent steps run side by side,
so a slow resource started by one step is only awaited by the step that needs it.
"""
from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any, Callable, Iterable, Iterator, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from provisioner.aws.converge import live, look_before_start, step_inventory
from provisioner.aws.kinds import KINDS, Kind
from provisioner.aws.run_pool import run_pool, side_by_side
from provisioner.aws.session import Aws
from provisioner.config import Config
from provisioner.errors import BadInput, ProvisionError, aws_failure
from provisioner.naming import Naming
from provisioner.progress import Reporter
from provisioner.state import RecordedState
from provisioner.step_outputs import KNOWN_AFTER_APPLY, StepOutputs

T = TypeVar("T")
R = TypeVar("R")
O = TypeVar("O", bound=StepOutputs)


class Interrupted(ProvisionError):
    """Ctrl-C: the run stopped between two changes; everything created so far is in the state."""


@dataclass(frozen=True)
class Change:
    step: str
    action: str  # create | update | delete
    noun: str
    key: str
    detail: str = ""

    def describe(self) -> str:
        text = f"{self.action} {self.noun} {self.key}"
        return f"{text} ({self.detail})" if self.detail else text


@dataclass
class StepContext:
    """What a step may use: config, clients, names, the state, and the plan/apply switch."""

    step: str
    config: Config
    aws: Aws
    naming: Naming
    state: RecordedState
    dry_run: bool
    reporter: Reporter
    # destroy --delete-data: also delete what holds data (the DSQL cluster, image repositories).
    delete_data: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)
    changes: list[Change] = field(default_factory=list)
    # What a plan expects earlier steps to replace, where the new ID is only known after apply.
    replacing: set[tuple[str, str]] = field(default_factory=set)
    # What the user should know when the command ends: what was kept, what to run next.
    notes: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    def say(self, message: str) -> None:
        # Waits report through here, so a Ctrl-C also ends a wait at its next poll.
        self.check_cancelled()
        self.reporter.update(self.step, message)

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise Interrupted("interrupted before finishing")

    def change(self, action: str, noun: str, key: str, detail: str = "", act: Callable[..., Any] | None = None) -> Any:
        """Record a change; perform it unless this is a plan. `act` is called with no argument (typed `...`: a
        lambda in a loop binds the loop's variables as defaults, ruff B023, which mypy cannot match to `[]`)."""
        self.changes.append(Change(self.step, action, noun, key, detail))
        if self.dry_run or act is None:
            return None
        self.check_cancelled()
        self.say(f"{action} {noun} {key}")
        return act()

    def each(self, items: Iterable[T], action: Callable[[T], R]) -> list[R]:
        """`action(item)` for every item, side by side (aws.run_pool.side_by_side): for the independent
        resources of one step (its subnets, groups, roles, services...). Every action runs to its end, so
        what each one creates is recorded before an error goes up. A plan runs them one by one: its
        output stays in order."""
        if self.dry_run:
            return [action(item) for item in items]
        return side_by_side(items, action)

    def together(self, *actions: Callable[[], Any]) -> list[Any]:
        """Independent actions side by side (as `each`), their results in order."""
        return self.each(actions, lambda action: action())

    def record(self, key: str, resource_id: str, kind: str, **attributes: Any) -> None:
        self.state.put(self.step, key, resource_id, kind, **attributes)

    def outputs_of(self, outputs: type[O]) -> O:
        """What an earlier step produced, typed (provisioner/step_outputs.py): in a plan, what it has yet to
        create (or will replace) reads as KNOWN_AFTER_APPLY; in an apply, a missing output raises."""
        return outputs.of(self.state, planning=self.dry_run, replacing=self.replacing)

    def known_after_apply(self, what: str) -> str:
        """The plan's placeholder for a live value (an endpoint) that appears only once earlier changes are
        made; outside a plan such a value must have been awaited, so asking for a placeholder is an error."""
        if not self.dry_run:
            raise ProvisionError(f"{what} is not known yet; run 'provision up' again")
        return KNOWN_AFTER_APPLY

    def will_replace(self, key: str) -> None:
        """In a plan: note that this step's `key` gets a new ID, so later steps read it as known after apply."""
        if self.dry_run:
            self.replacing.add((self.step, key))


class Step:
    """One module in steps/: one clear job. Subclasses set `name`, `title`, `requires` and, when later steps
    read what it made, `produces`."""

    name: str = ""
    title: str = ""
    requires: tuple[str, ...] = ()
    kinds: tuple[Kind, ...] = ()
    # What later steps and commands read from this one (provisioner/step_outputs.py), if anything.
    produces: type[StepOutputs] | None = None

    def preflight(self, ctx: StepContext) -> None:
        """Read-only checks run for every step before anything is created (a missing secret, a wrong region)."""

    def names(self, ctx: StepContext) -> list[tuple[Kind, str, str]]:
        """(kind, key, name) of the resources this step addresses by name: each name must be free or ours."""
        return []

    def check_names(self, ctx: StepContext) -> None:
        """A name held by a resource this project did not tag is refused before anything is created."""
        def check(entry: tuple[Kind, str, str]) -> None:
            kind, key, name = entry
            try:
                look_before_start(ctx, kind, key, name)
            except ProvisionError as exc:
                raise BadInput(str(exc)) from None

        side_by_side([entry for entry in self.names(ctx) if ctx.state.get(self.name, entry[1]) is None], check)

    def apply(self, ctx: StepContext) -> None:
        raise NotImplementedError

    def destroy(self, ctx: StepContext) -> None:
        raise NotImplementedError

    def inventory(self, ctx: StepContext) -> list[tuple[str, str, str]]:
        """Live resources carrying this step's tags, as (key, kind, id)."""
        return step_inventory(ctx, list(self.kinds))

    def exists(self, ctx: StepContext, kind: str, resource_id: str) -> bool | str:
        """Whether the resource is there, for `status`; or a word for a state of its own (a subscription "pending")."""
        return KINDS[kind].get(ctx.aws, resource_id) is not None

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        return {}


@dataclass
class RunResult:
    changes: list[Change]
    errors: list[tuple[str, BaseException]]
    notes: list[str] = field(default_factory=list)
    next_step: str | None = None  # the command the user should run next, if any

    @property
    def ok(self) -> bool:
        return not self.errors


def ordered(steps: list[Step]) -> list[Step]:
    """The steps ordered by `requires`, each after every step it requires; among steps free to go, the
    pipeline's order. A duplicate name, a requirement no step provides and a cycle are refused, naming
    the steps, before anything runs: otherwise a cycle would start nothing and look like success."""
    names = [step.name for step in steps]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ProvisionError(f"the pipeline has more than one step named {', '.join(duplicates)}")
    unknown = [f"{step.name} requires {', '.join(missing)}" for step in steps
               if (missing := [name for name in step.requires if name not in names])]
    if unknown:
        raise ProvisionError(f"steps require steps that are not in the pipeline: {'; '.join(unknown)}")
    sorter = TopologicalSorter({step.name: step.requires for step in steps})
    try:
        sorter.prepare()
    except CycleError as exc:
        raise ProvisionError(f"the steps require each other in a cycle: {' -> '.join(exc.args[1])}") from None
    position = {name: index for index, name in enumerate(names)}
    by_name = {step.name: step for step in steps}
    free: list[str] = []
    order: list[Step] = []
    while sorter.is_active():
        free.extend(sorter.get_ready())
        first = min(free, key=position.__getitem__)
        free.remove(first)
        order.append(by_name[first])
        sorter.done(first)
    return order


class Engine:
    def __init__(self, steps: list[Step], config: Config, aws: Aws, state: RecordedState, reporter: Reporter,
                 delete_data: bool = False,
                 unchangeable: Callable[[Config, RecordedState], None] | None = None):
        # Plan, apply and destroy (reversed) all walk this one order.
        self.steps = ordered(steps)
        self.config = config
        self.aws = aws
        self.state = state
        self.reporter = reporter
        self.naming = Naming(config.project, aws.region, state.lineage)
        self.cancelled = threading.Event()
        self.replacing: set[tuple[str, str]] = set()
        self.notes: list[str] = []
        self.delete_data = delete_data
        # Refuses settings the built stack cannot change (provisioner/immutable.py's check), raising BadInput.
        self.unchangeable = unchangeable

    def context(self, step: Step, dry_run: bool) -> StepContext:
        return StepContext(
            step.name, self.config, self.aws, self.naming, self.state, dry_run, self.reporter, self.delete_data,
            self.cancelled, replacing=self.replacing, notes=self.notes,
        )

    def plan(self) -> RunResult:
        refused = self._unchangeable()
        if refused:
            return refused
        # Sequential, in the order apply starts the steps: a plan only reads, and the order makes its output stable.
        with self.run():
            return self._run_each(self.steps, lambda step, ctx: (step.preflight(ctx), step.apply(ctx)), dry_run=True)

    def _unchangeable(self) -> RunResult | None:
        """Settings the existing stack cannot change (provisioner/immutable.py): refused before anything else."""
        try:
            if self.unchangeable:
                self.unchangeable(self.config, self.state)
        except BadInput as exc:
            return RunResult([], [("settings", exc)])
        return None

    @contextmanager
    def run(self) -> Iterator[None]:
        """One run: reads shared (provisioner/aws/reads.py) and one pool for its actions
        (provisioner/aws/run_pool.py), or those of the command this run is part of (status runs a plan)."""
        with self.aws.reads.run(), run_pool():
            yield

    def read_ahead(self) -> Future:
        """Describe everything the state records, side by side, while the preflight runs: the steps then
        find their answers read (provisioner/aws/reads.py) instead of asking one after another. Kinds read
        in batches take one call each. A failed read never fails the run (the step that needs the answer
        asks again and reports its own failure), but it is not hidden: it becomes a note. Runs in the run's
        pool (outside a run, in a pool of its own, done when this returns); returns its future, to wait for
        before the notes are reported."""
        ctx = self.context(self.steps[0], dry_run=True)
        reads = [(kind, resource_id) for kind in KINDS.values() if kind.read_ahead
                 for resource_id in self.state.ids_of_kind(kind.kind)]

        def read(job: tuple[Kind, str]) -> None:
            kind, resource_id = job
            try:
                live(ctx, kind, resource_id)
            except Exception as exc:  # noqa: BLE001 - reported as a note; the step's own read decides
                ctx.note(f"Reading ahead, describing {kind.noun} {resource_id} failed ({exc}); the step that "
                         "needed it asked again.")

        with run_pool() as pool:
            return pool.submit(side_by_side, reads, read)

    def apply(self) -> RunResult:
        with self.run():
            reading_ahead = self.read_ahead()
            try:
                checked = self.preflight()
                if not checked.ok:
                    return checked
                result = self._run_graph(lambda step, ctx: step.apply(ctx), reverse=False)
            finally:
                # Also when preflight refuses: no read may outlive the run (and its lock on the state).
                wait([reading_ahead])
            result.notes = list(self.notes)
            return result

    def preflight(self) -> RunResult:
        refused = self._unchangeable()
        if refused:
            return refused

        def check(step: Step) -> tuple[str, BaseException] | None:
            try:
                ctx = self.context(step, dry_run=True)
                step.preflight(ctx)
                step.check_names(ctx)
            except ProvisionError as exc:
                return (step.name, exc)
            except (ClientError, BotoCoreError) as exc:
                return (step.name, aws_failure(f"check {step.title.lower()} before starting", exc))
            return None

        # Read-only checks: every step's side by side, reported in pipeline order.
        return RunResult([], [error for error in side_by_side(self.steps, check) if error])

    def destroy(self) -> RunResult:
        with self.run():
            result = self._run_graph(lambda step, ctx: step.destroy(ctx), reverse=True)
        if result.ok:
            self.state.reset_if_empty()
        return result

    def _run_each(self, steps: Iterable[Step], action, dry_run: bool) -> RunResult:
        """Every step in order; a failing step is reported and the next one still runs."""
        changes: list[Change] = []
        errors: list[tuple[str, BaseException]] = []
        for step in steps:
            ctx = self.context(step, dry_run)
            self.reporter.start(step.name, step.title)
            try:
                action(step, ctx)
            except Exception as exc:  # reported per step; the CLI decides the exit code
                errors.append((step.name, exc))
                self.reporter.finish(step.name, ok=False, message=str(exc))
            else:
                self.reporter.finish(step.name, ok=True, message=_summary(ctx.changes, dry_run))
            changes.extend(ctx.changes)
        return RunResult(changes, errors, list(self.notes))

    def _run_graph(self, action, reverse: bool) -> RunResult:
        """Run every step once its dependencies are done (dependents first when reversed).

        A failed step stops only the steps that depend on it (directly or through others): they never
        start, and are reported as skipped. Independent steps go on, and every error is reported.

        Each step is one action of the run's pool (provisioner/aws/run_pool.py), so the steps, what they do
        side by side and the reads ahead never run more than MAX_CONCURRENT_CALLS actions at once together;
        a step's `each` runs in the step's own slot and in the slots the pool can spare. A ready step is
        handed to the pool at once and starts when a slot is free. The steps that hold one longest wait on
        AWS (the NAT gateway, the VPC endpoints, the DSQL cluster, the Cloud Map namespace, OpenSearch for
        the task definitions): a few at once, each on AWS alone, never on another step, so they never keep
        every slot; a ready step waits for the short actions ahead of it. Measured at 150 ms per call
        (scripts/benchmark.py with the pool's use logged): no step waited more than 0.15 s for a slot.
        """
        waits_on: dict[str, set[str]] = {s.name: set() for s in self.steps}
        for step in self.steps:
            for required in step.requires:
                if reverse:
                    waits_on[required].add(step.name)
                else:
                    waits_on[step.name].add(required)
        by_name = {s.name: s for s in self.steps}
        order = [s.name for s in (reversed(self.steps) if reverse else self.steps)]
        done: set[str] = set()
        started: set[str] = set()
        changes: list[Change] = []
        errors: list[tuple[str, BaseException]] = []
        lock = threading.Lock()

        def run(name: str) -> None:
            step = by_name[name]
            self.reporter.start(name, step.title)
            ctx = self.context(step, dry_run=False)
            try:
                action(step, ctx)
            except BaseException as exc:
                with lock:
                    errors.append((name, exc))
                self.reporter.finish(name, ok=False, message=str(exc) or type(exc).__name__)
                raise
            finally:
                with lock:
                    changes.extend(ctx.changes)
            self.reporter.finish(name, ok=True, message=_summary(ctx.changes, dry_run=False))

        for name in order:
            self.reporter.queue(name, by_name[name].title)
        with run_pool() as pool:
            running: dict[Future, str] = {}
            while True:
                # A failed step never joins `done`, so what depends on it never becomes ready.
                for name in order:
                    if name not in started and waits_on[name] <= done:
                        started.add(name)
                        running[pool.submit(run, name)] = name
                if not running:
                    break
                try:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:
                    # Let running steps stop at their next change, so the state stays true; those still
                    # waiting for a slot never start.
                    self.cancelled.set()
                    for future in running:
                        future.cancel()
                    wait(running)
                    raise Interrupted(
                        "Interrupted. Everything created so far is recorded in the state; run the same "
                        "command again to resume."
                    ) from None
                for future in finished:
                    name = running.pop(future)
                    failure = future.exception()
                    if failure is None:
                        done.add(name)
                    elif all(failed != name for failed, _ in errors):
                        # Raised after the step's own work (its progress line): still a failure to report.
                        errors.append((name, failure))
        for name in order:
            if name not in started:
                self.reporter.skip(name)
        return RunResult(changes, errors, list(self.notes))


def _summary(changes: list[Change], dry_run: bool) -> str:
    if not changes:
        return "up to date"
    counts: dict[str, int] = {}
    for change in changes:
        counts[change.action] = counts.get(change.action, 0) + 1
    verb = {"create": "to create", "update": "to update", "delete": "to delete", "stop": "to stop"} if dry_run else {
        "create": "created", "update": "updated", "delete": "deleted", "stop": "stopped"}
    return ", ".join(f"{n} {verb[a]}" for a, n in sorted(counts.items()))
