"""Benchmark (not a test): time `up` from nothing, a no-op `up` and `destroy` on the embedded emulator,
count AWS calls (read and mutating) and report peak memory.

    .venv/bin/python scripts/benchmark.py [--runs N] [--latency-ms MS] [--calls]

--latency-ms adds MS to every AWS call (the emulator's PROVISION_EMULATOR_LATENCY_MS), as a real
round trip to AWS does; --calls lists the calls of the last run of each operation by name.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from provisioner import operations  # noqa: E402
from provisioner.aws.reads import is_mutating  # noqa: E402
from provisioner.aws.session import Aws, is_bookkeeping  # noqa: E402
from provisioner.commands.grafana_secret import ensure_grafana_secret  # noqa: E402
from provisioner.config import load_config  # noqa: E402
from provisioner.emulator import server as emulator  # noqa: E402
from provisioner.emulator.patches import LATENCY_SETTING  # noqa: E402

REGION = "eu-west-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure(operation, config, state_path) -> tuple[float, Counter]:
    calls: Counter = Counter()

    def count(event_name: str, context: dict | None = None, **_) -> None:
        if context and is_bookkeeping(context):
            calls["bookkeeping"] += 1  # the state in S3 and the project lock, not the stack
            return
        calls["mutating" if is_mutating(event_name.rsplit(".", 1)[-1]) else "read"] += 1
        calls["call " + event_name.split(".", 1)[1]] += 1

    session = boto3.Session(region_name=REGION)
    session.events.register("before-call", count)
    started = time.perf_counter()
    result = operation(config, Aws(session, config.aws.max_attempts), state_path, quiet=True)
    elapsed = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"{operation.__name__} failed: {result.errors}")
    return elapsed, calls


def peak_memory(command: str, config_path: Path, state_path: Path) -> float:
    """Peak resident set (MB) of `provision <command>` as a process of its own. Measured by GNU time
    (/usr/bin/time): a child forked from this process would count this process's pages as its own
    (ru_maxrss survives execve)."""
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "provisioner", command, "--config", str(config_path),
         "--state", str(state_path)] + (["--yes"] if command == "destroy" else []),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    if result.returncode != 0:
        raise SystemExit(f"provision {command} failed (exit {result.returncode}): {result.stderr[-500:]}")
    return int(result.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--config", type=Path, default=Path("config.example.toml"))
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every AWS call")
    parser.add_argument("--calls", action="store_true", help="list the calls of each operation by name")
    args = parser.parse_args()
    config = load_config(args.config)
    os.environ[LATENCY_SETTING] = str(args.latency_ms)

    with tempfile.TemporaryDirectory() as workdir:
        info = emulator.start(Path(workdir), free_port())
        os.environ.update(emulator.environment(info, REGION))
        try:
            ensure_grafana_secret(config, Aws(boto3.Session(region_name=REGION)))
            figures: dict[str, list[float]] = {"up from nothing": [], "no-op up": [], "destroy": []}
            counts: dict[str, Counter] = {}
            for run in range(args.runs):
                state_path = Path(workdir) / f"run-{run}.json"
                for label, operation in (("up from nothing", operations.up), ("no-op up", operations.up), ("destroy", operations.destroy)):
                    elapsed, calls = measure(operation, config, state_path)
                    figures[label].append(elapsed)
                    counts[label] = calls
            # Memory as a user's command uses it: each command alone in its own process.
            state_path = Path(workdir) / "memory.json"
            memory = {label: peak_memory(command, args.config.resolve(), state_path) for label, command in (
                ("up from nothing", "up"), ("no-op up", "up"), ("destroy", "destroy"))}
        finally:
            emulator.stop(Path(workdir))

    print(f"latency {args.latency_ms} ms per call, median of {args.runs} runs")
    print(f"{'operation':<18}{'median s':>10}{'min s':>8}{'mutating':>10}{'read':>8}{'lock+state':>12}{'peak MB':>9}")
    for label, times in figures.items():
        print(f"{label:<18}{statistics.median(times):>10.2f}{min(times):>8.2f}{counts[label]['mutating']:>10}"
              f"{counts[label]['read']:>8}{counts[label]['bookkeeping']:>12}{memory[label]:>9.0f}")
    if args.calls:
        for label, calls in counts.items():
            print(f"\n{label}:")
            for name, number in sorted(((k[5:], v) for k, v in calls.items() if k.startswith("call ")),
                                       key=lambda item: -item[1]):
                print(f"  {number:>4}  {name}")


if __name__ == "__main__":
    main()
