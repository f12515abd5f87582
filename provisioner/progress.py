"""Progress display: one rich live display on a terminal, plain lines elsewhere.

Steps run in worker threads and only call the Reporter; the display itself is
owned by rich's refresh thread, so output never interleaves.
"""
from __future__ import annotations

import os
import threading
import time

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn


class Reporter:
    def __init__(self, console: Console, quiet: bool = False):
        self.console = console
        self.quiet = quiet
        self.live = console.is_terminal and not os.environ.get("CI") and not quiet
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskID] = {}
        self._titles: dict[str, str] = {}
        self._started: dict[str, float] = {}
        self._progress = Progress(
            SpinnerColumn(finished_text=" "),
            TextColumn("{task.fields[title]:<28}"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )

    def __enter__(self) -> Reporter:
        if self.live:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self._progress.stop()

    def _task(self, step: str, title: str) -> TaskID:
        with self._lock:
            self._titles.setdefault(step, title or step)
            if step not in self._tasks:
                self._tasks[step] = self._progress.add_task(
                    "waiting", title=self._titles[step], total=1, start=False
                )
            return self._tasks[step]

    def _plain(self, step: str, message: str) -> None:
        if not self.live and not self.quiet:
            with self._lock:
                self.console.print(f"[bold]{self._titles.get(step, step)}[/]: {message}", highlight=False)

    def queue(self, step: str, title: str) -> None:
        self._task(step, title)

    def start(self, step: str, title: str) -> None:
        task = self._task(step, title)
        self._started[step] = time.monotonic()
        self._progress.start_task(task)
        self._progress.update(task, description="working")
        self._plain(step, "started")

    def update(self, step: str, message: str) -> None:
        task = self._task(step, "")
        self._progress.update(task, description=message)
        self._plain(step, message)

    def finish(self, step: str, ok: bool, message: str) -> None:
        task = self._task(step, "")
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        self._progress.update(task, description=f"{mark} {message}", completed=1)
        self._progress.stop_task(task)
        elapsed = time.monotonic() - self._started.get(step, time.monotonic())
        self._plain(step, f"{'done' if ok else 'FAILED'}: {message} ({elapsed:.1f}s)")

    def skip(self, step: str) -> None:
        task = self._task(step, "")
        self._progress.update(task, description="[dim]not run[/]")
        self._plain(step, "not run")
