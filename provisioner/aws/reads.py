"""One run's shared reads: an answer read once is served to every step of the run, until the run
itself writes to that service.

A no-op `up` asks each service the same questions many times (every step checks what it needs, and
every resource of a kind can be described in one call instead of one call each). Over a real network
each call costs 50-300 ms, so the calls, not the work, set the time. Answers live for one command
only: a later command reads the world afresh. Any mutating call to a service, before and after it is
sent, drops that service's answers, and an answer read while a write was in flight is not kept.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Hashable, Iterator

# Filter: CloudWatch Logs' FilterLogEvents (provision logs) reads.
READ_PREFIXES = ("Describe", "List", "Get", "Search", "Lookup", "Filter")


def is_mutating(operation_name: str) -> bool:
    return not operation_name.startswith(READ_PREFIXES)


class RunReads:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, Hashable], Any] = {}
        self._loading: dict[tuple[str, Hashable], threading.Lock] = {}
        self._generation: dict[str, int] = {}
        self._set_aside: dict[Hashable, Any] = {}
        self._depth = 0

    @contextmanager
    def run(self) -> Iterator[None]:
        """Share reads for the duration of one command (re-entrant); forget them all at its end."""
        with self._lock:
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._answers.clear()
                    self._loading.clear()
                    self._set_aside.clear()

    def read(self, service: str, key: Hashable, load: Callable[[], Any]) -> Any:
        """`load()`'s answer, read at most once per run while `service` is not written to.
        `service` is the service's event name (client.meta.service_model.service_id.hyphenize())."""
        slot = (service, key)
        with self._lock:
            if self._depth == 0:
                sharing = False
            else:
                sharing = True
                if slot in self._answers:
                    return self._answers[slot]
                gate = self._loading.setdefault(slot, threading.Lock())
        if not sharing:
            return load()
        with gate:  # two steps asking at once make one call
            with self._lock:
                if slot in self._answers:
                    return self._answers[slot]
                generation = self._generation.get(service, 0)
            answer = load()
            with self._lock:
                if self._depth and self._generation.get(service, 0) == generation:
                    self._answers[slot] = answer
            return answer

    def set_aside(self, key: Hashable, answer: Any) -> None:
        """Keep `answer` for one later `take_aside(key)` in this run, whatever the run writes meanwhile: for an
        answer only its taker's own writes could change (converge.look_before_start)."""
        with self._lock:
            if self._depth:
                self._set_aside[key] = answer

    def take_aside(self, key: Hashable) -> Any:
        """The answer set aside for `key`, once (None if there is none, or it was taken)."""
        with self._lock:
            return self._set_aside.pop(key, None)

    def wrote(self, service: str) -> None:
        with self._lock:
            self._generation[service] = self._generation.get(service, 0) + 1
            for slot in [s for s in self._answers if s[0] == service]:
                del self._answers[slot]

    def on_call(self, event_name: str, **_) -> None:
        """botocore's before-call and after-call events: `<event>.<service>.<Operation>`."""
        _event, service, operation = event_name.split(".", 2)
        if is_mutating(operation):
            self.wrote(service)
