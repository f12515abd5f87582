"""One bounded pool of threads per run for its AWS actions: the steps of the graph, what each step does
side by side (`ctx.each`), the reads ahead and destroy's deletions.

Over a real network each AWS call takes 50-300 ms, so the tool makes independent calls side by side
(README, Benchmark). A thread pool per call site, nested inside the engine's step threads, multiplies:
twenty steps, each with a pool of ten, each item with its own. One pool per run instead: at most
MAX_CONCURRENT_CALLS actions run at once, whichever code started them, on at most that many threads (plus
the command's own), so together they never need more connections than a client keeps (its
max_pool_connections; session.CallLimit holds each client to that whatever the threads).

Nested work cannot deadlock ("caller runs"): `side_by_side` puts its items in a queue of their own and
offers helpers to the pool; the calling thread itself takes items from that queue while any remain, then
waits only for the items other threads have already taken. A thread takes an item only while it holds one
of the pool's slots (an action's right to run), so every item waited for is running: on a thread that is
either working or waiting in turn for items taken after its own, which ends with one that works. When the
pool is busy, nobody else takes the items and the caller runs them all, one after another. A thread keeps
its slot through nested calls (an item of a step's `each` runs in the step's slot).

A command that opens no run (`side_by_side` outside one) gets a pool for that call and the calls nested
in it, ended with it: bounded the same way.
"""
from __future__ import annotations

import contextvars
import queue
import threading
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# The actions a run runs at once, and so the connections each client keeps to its endpoint
# (max_pool_connections; botocore's default is 10) and the requests it has on the wire at once
# (session.CallLimit). Measured with scripts/benchmark.py at 150 ms per call: with 10, steps waited up to
# 0.8 s for a slot (the pool full for half of an `up`); with 20, at most 0.15 s.
MAX_CONCURRENT_CALLS = 20

_current: contextvars.ContextVar[RunPool | None] = contextvars.ContextVar("run_pool", default=None)


class RunPool:
    """At most `size` actions at once on at most `size` threads; see the module's docstring.

    Its threads are daemons (unlike concurrent.futures' executor, which the interpreter joins at exit): the
    run ends them, and a thread stuck past its run (a bug) can never keep the process from exiting."""

    def __init__(self, size: int = MAX_CONCURRENT_CALLS):
        self.size = size
        self._slots = threading.BoundedSemaphore(size)
        self._held = threading.local()
        self._work: queue.SimpleQueue[tuple[Future, Callable[[], Any]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._lock = threading.Lock()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """One of the `size` slots for the block, waited for if none is free; a thread that holds one
        already (in an action) goes on in it."""
        depth = getattr(self._held, "depth", 0)
        if depth == 0:
            self._slots.acquire()
        self._held.depth = depth + 1
        try:
            yield
        finally:
            self._held.depth = depth
            if depth == 0:
                self._slots.release()

    def submit(self, action: Callable[..., R], *args: Any) -> Future[R]:
        """`action(*args)` as one action on a pool thread (in a slot). Never wait for it from inside an
        action (the pool may be full of actions waiting likewise): there, use side_by_side."""
        def in_slot() -> R:
            with self.slot():
                return action(*args)
        return self._offer(in_slot)

    def _offer(self, work: Callable[[], R]) -> Future[R]:
        """`work()` on a pool thread when one is free, in the caller's context (its run)."""
        future: Future[R] = Future()
        context = contextvars.copy_context()
        with self._lock:
            if self._closed:  # a helper offered by work that outlived its caller (after a Ctrl-C): not needed
                future.cancel()
                return future
            self._work.put((future, lambda: context.run(work)))
            if len(self._threads) < self.size:
                thread = threading.Thread(target=self._serve, name=f"aws-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def _serve(self) -> None:
        while (offered := self._work.get()) is not None:
            future, work = offered
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = work()
            except BaseException as exc:  # the future's to report, as concurrent.futures does
                future.set_exception(exc)
            else:
                future.set_result(result)

    def side_by_side(self, items: list[T], action: Callable[[T], R]) -> list[R]:
        """`action(item)` for every item: up to `size` at once with the helpers this pool can spare, the
        caller taking its share (all of them when the pool is busy). Results in item order; every action
        runs to its end, then the first failure in item order is raised."""
        batch = _Batch(items, action)
        for _ in range(min(len(items) - 1, self.size)):
            self._offer(lambda: batch.work(self))
        try:
            batch.work(self)
        except BaseException:
            batch.close()  # Ctrl-C in the caller's own action: nothing more is taken
            raise
        return batch.results()

    def close(self) -> None:
        """End the threads once all work offered has run (helpers still queued find nothing to take)."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._work.put(None)
        for thread in threads:
            thread.join()


class _Batch(Generic[T, R]):
    """The items of one side_by_side call: taken in order, each by one thread holding a slot."""

    def __init__(self, items: list[T], action: Callable[[T], R]):
        self._items = items
        self._action = action
        self._outcomes: list[tuple[bool, Any]] = [(False, None)] * len(items)
        self._taken = 0
        self._finished = 0
        self._changed = threading.Condition()

    def work(self, pool: RunPool) -> None:
        """Take and run items until none is left; each taken only once a slot is held."""
        while True:
            with self._changed:
                if self._taken == len(self._items):
                    return  # a helper come too late: no slot needed to find nothing
            with pool.slot():
                with self._changed:
                    if self._taken == len(self._items):
                        return
                    index = self._taken
                    self._taken += 1
                self._run(index)

    def _run(self, index: int) -> None:
        try:
            outcome = (True, self._action(self._items[index]))
        except BaseException as exc:
            self._finish(index, (False, exc))
            if not isinstance(exc, Exception):
                raise
            return
        self._finish(index, outcome)

    def _finish(self, index: int, outcome: tuple[bool, Any]) -> None:
        with self._changed:
            self._outcomes[index] = outcome
            self._finished += 1
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._taken = len(self._items)

    def results(self) -> list[R]:
        """Once every taken item has finished: the results in item order, or the first failure raised."""
        with self._changed:
            self._changed.wait_for(lambda: self._finished == self._taken)
        for succeeded, value in self._outcomes:
            if not succeeded:
                raise value
        return [value for _, value in self._outcomes]


@contextmanager
def run_pool(size: int = MAX_CONCURRENT_CALLS) -> Iterator[RunPool]:
    """The run's pool for the block: the one already open in this context, or a new one, closed (its threads
    ended) when the block ends. Threads of the pool run in the context that submitted their work, so
    whatever they start is in the same run."""
    current = _current.get()
    if current is not None:
        yield current
        return
    pool = RunPool(size)
    token = _current.set(pool)
    try:
        yield pool
    finally:
        _current.reset(token)
        pool.close()


def side_by_side(items: Iterable[T], action: Callable[[T], R]) -> list[R]:
    """`action(item)` for every item, side by side in the run's pool (at most MAX_CONCURRENT_CALLS actions
    at once in the whole run), results in item order. Every action runs to its end; then the first
    failure, in item order, is raised."""
    items = list(items)
    if len(items) < 2 and _current.get() is None:
        return [action(item) for item in items]
    with run_pool() as pool:
        return pool.side_by_side(items, action)
