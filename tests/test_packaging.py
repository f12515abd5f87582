"""The wheel built from the repository, installed in a fresh virtual environment as `pipx install` would:
it carries every data file the tool reads, its `provision` runs from outside the repository, and a plain
install needs no emulator: moto comes only with the `emulator` extra."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

from tests.conftest import config_text

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "provisioner" / "data"
# setuptools' words when a directory holding package data is not in the packages list.
NOT_A_PACKAGE = "is absent from the `packages` configuration"


def test_the_wheel_carries_its_data_and_runs_outside_the_repository(endpoint, tmp_path):
    # Build from a copy of the sources, so the build's own build/ and egg-info never touch the checkout.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".provision", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", ".", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist")],
        cwd=source, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert NOT_A_PACKAGE not in built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("provision-*.whl")

    # A fresh environment holding only the wheel's files. Its dependencies (boto3, moto, ...) are this
    # environment's, seen through a .pth file rather than downloaded: the test runs offline and fast, and
    # what it checks is what the wheel itself holds. A .pth line only adds a directory: the .pth files in
    # it (this checkout's editable install) are not run, so nothing can be imported from the repository.
    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=False)
    python = fresh / "bin" / "python"
    purelib = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True, timeout=120)

    installed = purelib / "provisioner" / "data"
    missing = sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file()
                     and "__pycache__" not in p.parts and not (installed / p.relative_to(DATA)).is_file())
    assert not missing, f"the wheel leaves out {missing}"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "provision.toml").write_text(config_text())
    env = {**os.environ, "PYTHONPATH": ""}  # nothing but the fresh environment on the path
    located = subprocess.run([python, "-c", "import provisioner; print(provisioner.__file__)"], cwd=elsewhere,
                             env=env, capture_output=True, text=True, check=True)
    assert Path(located.stdout.strip()).is_relative_to(purelib)
    # One top-level package: steps/ and state/ are installed inside it, never as `steps` and `state`.
    assert sorted(p.name for p in purelib.iterdir() if (p / "__init__.py").is_file()) == ["provisioner"]
    inside = subprocess.run([python, "-c", "import provisioner.steps, provisioner.state"], cwd=elsewhere, env=env,
                            capture_output=True, text=True)
    assert inside.returncode == 0, inside.stderr
    for generic in ("steps", "state"):
        stray = subprocess.run([python, "-c", f"import {generic}"], cwd=elsewhere, env=env, capture_output=True, text=True)
        assert f"No module named '{generic}'" in stray.stderr

    provision = fresh / "bin" / "provision"
    shown = subprocess.run([provision, "--help"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "build-images" in shown.stdout, shown.stderr
    # The dependencies are this environment's, moto among them: the plan runs with moto made unimportable, as in
    # a plain install, against the endpoint.
    planned = subprocess.run([python, "-c", WITHOUT_MOTO, "plan"], cwd=elsewhere, env=env, capture_output=True,
                             text=True, timeout=120)
    assert planned.returncode == 0, planned.stderr
    assert "Plan: " in planned.stdout and "create" in planned.stdout
    assert requirements(wheel)["moto"] == ['extra == "emulator"']


def requirements(wheel: Path) -> dict[str, list[str]]:
    """Each Requires-Dist of the wheel's METADATA: the project named, and the marker of each line naming it
    ("" for an unconditional one)."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    found: dict[str, list[str]] = {}
    for line in lines:
        if line.startswith("Requires-Dist: "):
            requirement, _, marker = line.removeprefix("Requires-Dist: ").partition(";")
            name = requirement.strip().split("[")[0].split("<")[0].split(">")[0].split("=")[0].split(" ")[0]
            found.setdefault(name.lower(), []).append(marker.strip())
    return found


# `provision` with any import of moto failing, as where the emulator extra is not installed.
WITHOUT_MOTO = """
import sys
class NoMoto:
    def find_spec(self, name, path=None, target=None):
        if name == "moto" or name.startswith("moto."):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NoMoto())
from provisioner.cli import main
sys.argv = ["provision", *sys.argv[1:]]
main()
"""
