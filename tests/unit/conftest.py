"""The fast layer: the engine's own logic, with no emulator, in seconds (`scripts/test.sh --quick`).

Every test under tests/unit is marked `quick`. A test here never calls AWS: it drives the module's own
code (the step graph, the read cache, the diff helper, the retry rule, lock records, the state document).
"""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.quick)


@pytest.fixture(autouse=True)
def no_aws(monkeypatch, tmp_path):
    """Clients may be made, never reach anything: placeholder credentials, no AWS files of the developer's,
    and an endpoint where nothing listens (a call that slipped through fails instead of reaching AWS)."""
    from provisioner.emulator.server import CREDENTIALS

    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**CREDENTIALS, "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1",
                        "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(name, value)
