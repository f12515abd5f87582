"""The rendered alert rules on a real Prometheus, over the series a real Temporal server emitted under the SDK
workload (tests/real_peers.py): every rule evaluates without error, none is pending or firing on that healthy
workload, and `provision alerts list` reads their state from the Prometheus rules API answer as it really is.

The dev server is one process scraped as one task of the frontend job, so the rules that select
job="temporal-history" find no series there: they are exercised by their promtool unit tests
(tests/test_alert_rules.py), not here."""
from __future__ import annotations

import json
import time
import urllib.request

from provisioner.commands.alerts import alert_states
from provisioner.metrics.alert_rules import render_rules, rules
from tests.conftest import make_config
from tests.real_peers import REAL_PEERS_GROUP

EVALUATIONS_WAIT_SECONDS = 60


def _rules_api(prometheus_url: str) -> dict:
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/rules", timeout=10) as answer:  # noqa: S310 - loopback
        return json.load(answer)


@REAL_PEERS_GROUP
def test_every_alert_rule_evaluates_and_none_fires_on_the_healthy_workload(real_temporal_prometheus):
    config = make_config(alerts={"evaluation_interval": "2s"})  # evaluated at once, not every minute
    real_temporal_prometheus.load_rules("alerts.yml", render_rules(config))
    deadline = time.monotonic() + EVALUATIONS_WAIT_SECONDS
    while True:
        answer = _rules_api(real_temporal_prometheus.prometheus_url)
        loaded = [r for g in answer["data"]["groups"] if g["file"].endswith("alerts.yml") for r in g["rules"]]
        if loaded and all(r["health"] != "unknown" for r in loaded):  # "unknown" until first evaluated
            break
        assert time.monotonic() < deadline, f"the rules were not evaluated within {EVALUATIONS_WAIT_SECONDS} s"
        time.sleep(1)
    assert {r["name"] for r in loaded} == {r.alert for r in rules(config)}
    assert [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"] == []
    states = alert_states(answer)
    assert {name for name, state in states.items() if state != "inactive"} == set(), states
    print(f"{len(loaded)} alert rules evaluated on the real server's series: all inactive")
