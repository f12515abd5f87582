"""Benchmark (not a test): time `up` from nothing, a no-op `up` and `destroy` on the embedded emulator,
and count AWS calls by kind. Run with: .venv/bin/python scripts/benchmark.py [--runs N]
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3  # noqa: E402

from provisioner import operations  # noqa: E402
from provisioner.aws.session import Aws, is_mutating  # noqa: E402
from provisioner.commands.grafana_secret import ensure_grafana_secret  # noqa: E402
from provisioner.config import load_config  # noqa: E402
from provisioner.emulator import server as emulator  # noqa: E402

REGION = "eu-west-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure(operation, config, state_path) -> tuple[float, Counter]:
    calls: Counter = Counter()

    def count(event_name: str, **_) -> None:
        calls["mutating" if is_mutating(event_name.rsplit(".", 1)[-1]) else "read"] += 1

    session = boto3.Session(region_name=REGION)
    session.events.register("before-call", count)
    started = time.perf_counter()
    result = operation(config, Aws(session, config.aws.max_attempts), state_path, quiet=True)
    elapsed = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"{operation.__name__} failed: {result.errors}")
    return elapsed, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--config", type=Path, default=Path("config.example.toml"))
    args = parser.parse_args()
    config = load_config(args.config)

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
        finally:
            emulator.stop(Path(workdir))

    print(f"{'operation':<18}{'median s':>10}{'min s':>8}{'mutating':>10}{'read':>8}")
    for label, times in figures.items():
        print(f"{label:<18}{statistics.median(times):>10.2f}{min(times):>8.2f}"
              f"{counts[label]['mutating']:>10}{counts[label]['read']:>8}")


if __name__ == "__main__":
    main()
