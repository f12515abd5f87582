"""Real software the tests check the tool's output with (promtool, amtool: Debian's `prometheus` and
`prometheus-alertmanager`), found or installed, or the test is skipped naming the package to install.

Where apt is there and the tests run as root (CI does, on this project's machines), a missing package is installed
once, under a lock the pytest-xdist workers share. Under CI=true a peer that is still missing fails the run:
CI must never pass by skipping the checks."""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

LOCK = Path("/tmp/provision-tests-apt.lock")
APT_TIMEOUT_SECONDS = 600


def require_binary(name: str, package: str) -> str:
    """The path of `name`, installing Debian's `package` if it is missing and apt can; else skip (fail in CI)."""
    found = shutil.which(name)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        with LOCK.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = shutil.which(name) or _apt_install(name, package)
    if found:
        return found
    message = f"{name} is missing: install Debian's {package} package (apt-get install -y {package})"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _apt_install(name: str, package: str) -> str | None:
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "install", "-y", "--no-install-recommends", package], ["apt-get", "update"],
                    ["apt-get", "install", "-y", "--no-install-recommends", package]):
        subprocess.run(command, env=env, capture_output=True, timeout=APT_TIMEOUT_SECONDS, check=False)
        if shutil.which(name):
            return shutil.which(name)
    return None
