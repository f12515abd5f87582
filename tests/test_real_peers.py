"""How a test meets a missing real peer (tests/real_peers.py): outside CI it skips and names the package to
install; under CI=true (where scripts/setup.sh installs every peer) it fails the run."""
from __future__ import annotations

import pytest

from tests.real_peers import require_binary

MISSING = "no-such-peer-for-provision-tests"


def test_a_missing_peer_skips_naming_the_package_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{MISSING} is not installed: install the-package"):
        require_binary(MISSING, "the-package")


def test_a_missing_peer_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="install the-package"):
        require_binary(MISSING, "the-package")


def test_a_present_peer_is_found_on_the_path_or_beside_the_interpreter():
    assert require_binary("python", "python").endswith("python")
