"""The Temporal server dashboards Grafana is provisioned with: Temporal's own, from
github.com/temporalio/dashboards (MIT, its LICENSE beside them), committed verbatim in
provisioner/data/dashboards at the commit below so that an upgrade is a reviewed diff.

They query the default data source (`"datasource": null`, or an undefined `${datasource}`); here every
such panel and target is pointed at the provisioned Amazon Managed Prometheus source by uid, so that
they keep working if a user adds another default. Grafana's own annotation source is left alone. Their queries use the server's bare metric names (`service_requests`, no `_total`),
which is what the collector keeps (translation_strategy UnderscoreEscapingWithoutSuffixes).
"""
from __future__ import annotations

import json
from functools import cache
from importlib import resources

from provisioner.metrics.grafana import DATASOURCE_UID

SOURCE_REPOSITORY = "https://github.com/temporalio/dashboards"
SOURCE_COMMIT = "b5d9a1bc1888f73057f1639495e5773caad783ee"  # 2025-09-17
# name (the file Grafana reads, <name>.json) -> path in the source repository
SOURCE_FILES = {
    "server-general": "server/server-general.json",
    "frontend-service-specific": "misc/frontend-service-specific.json",
    "history-service-specific": "misc/history-service-specific.json",
    "matching-service-specific": "misc/matching-service-specific.json",
    "worker-service-specific": "misc/worker-service-specific.json",
}
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}


def _is_default_source(value) -> bool:
    """The default source (null) or a template variable (`${datasource}`, which the worker dashboard
    uses without defining it)."""
    return value is None or (isinstance(value, str) and value.startswith("$"))


def _provisioned_source(node):
    if isinstance(node, dict):
        return {key: (DATASOURCE if _is_default_source(value) else value) if key == "datasource"
                else _provisioned_source(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_provisioned_source(item) for item in node]
    return node


def committed(name: str) -> dict:
    """The dashboard exactly as committed from the source repository."""
    return json.loads(resources.files("provisioner").joinpath(f"data/dashboards/{name}.json").read_text())


@cache
def _all() -> dict[str, str]:
    return {name: json.dumps(_provisioned_source(committed(name)), sort_keys=True) for name in SOURCE_FILES}


def all_dashboards() -> dict[str, dict]:
    """name -> dashboard as Grafana gets it; the name is the file the init container writes (<name>.json)."""
    return {name: json.loads(text) for name, text in _all().items()}
