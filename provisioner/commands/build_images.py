"""`provision build-images`: the temporal-dsql server and admin-tools images, built for linux/arm64
from a checkout of the fork (github.com/iw/temporal) and pushed to this project's ECR repositories.

The Go binaries come from the fork's own Makefile targets, cross-compiled with GOOS/GOARCH; they are
laid out where the fork's Dockerfiles expect them (docker/build/<arch>/, the schema in
docker/build/temporal/schema); the server image is the fork's docker/targets/server.Dockerfile, and
the admin-tools image this project's own Dockerfile (the fork's leaves temporal-dsql-tool out). Both
are tagged <git-sha>-<UTC time> and `latest` and pushed. The ECR password goes to `docker login` on
stdin only: never on a command line, in a log or on the terminal.
"""
from __future__ import annotations

import base64
import platform
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

from provisioner import operations
from provisioner.aws.session import Aws
from provisioner.config import Config
from provisioner.errors import BadInput, ProvisionError
from provisioner.naming import Naming
from provisioner.steps.ecr import IMAGES, Ecr, EcrOutputs

PLATFORM = "linux/arm64"
ARCH = "arm64"
ALPINE_TAG = "3.23"  # the fork's docker/docker-bake.hcl default
# What the two images hold: the server binary, and the schema tools (Makefile target = binary name).
BINARIES = ("temporal-server", "temporal-sql-tool", "temporal-elasticsearch-tool", "temporal-dsql-tool", "tdbg")
# The Temporal CLI in admin-tools, as the fork's CI adds it (.github/actions/build-docker-images, v1.5.1).
TEMPORAL_CLI_VERSION = "1.5.1"
TEMPORAL_CLI_URL = (f"https://github.com/temporalio/cli/releases/download/v{TEMPORAL_CLI_VERSION}/"
                    f"temporal_cli_{TEMPORAL_CLI_VERSION}_linux_{ARCH}.tar.gz")
# Files that tell the fork from upstream Temporal or anything else.
FORK_MARKERS = ("Makefile", "cmd/tools/dsql", "docker/targets/server.Dockerfile", "schema/dsql")
TOOLS = {
    "git": "install git (apt install git, brew install git)",
    "go": "install Go from https://go.dev/dl/ (the fork's go.mod names the version)",
    "make": "install make (apt install make, xcode-select --install)",
    "docker": "install Docker (https://docs.docker.com/get-docker/) and start it",
    "curl": "install curl (apt install curl)",
    "tar": "install tar (apt install tar)",
}


@dataclass(frozen=True)
class Command:
    phase: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    stdin: Callable[[], str] | None = None  # produced only when the command runs; never printed

    def shown(self) -> str:
        prefix = " ".join(f"{k}={v}" for k, v in self.env.items())
        line = " ".join(_quote(a) for a in self.argv)
        suffix = "  (password on stdin, from ECR's GetAuthorizationToken)" if self.stdin else ""
        return f"{prefix + ' ' if prefix else ''}{line}{suffix}"


@dataclass(frozen=True)
class BuildPlan:
    source: Path
    tag: str
    images: dict[str, str]  # image -> repository URI (no tag)
    commands: tuple[Command, ...]

    def tagged(self, image: str) -> str:
        return f"{self.images[image]}:{self.tag}"


def _quote(argument: str) -> str:
    return argument if re.fullmatch(r"[\w@%+=:,./-]+", argument) else "'" + argument.replace("'", "'\\''") + "'"


def check_tools() -> None:
    missing = [f"{tool}: {hint}" for tool, hint in TOOLS.items() if shutil.which(tool) is None]
    if not missing and subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode != 0:
        missing.append("docker buildx: install the buildx plugin (https://docs.docker.com/go/buildx/)")
    if missing:
        raise BadInput("build-images needs tools that are not on PATH:\n  " + "\n  ".join(missing))


# The kernel's registration of an aarch64 interpreter (QEMU user mode): with it an x86 host runs the arm64
# RUN steps of a linux/arm64 build (Linux binfmt_misc, Documentation/admin-guide/binfmt-misc.rst).
BINFMT_AARCH64 = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
ARM64_MACHINES = ("aarch64", "arm64")
# What GitHub's docker/setup-qemu-action runs (its default image, docker.io/tonistiigi/binfmt) before buildx,
# as the fork's CI does; the same, for arm64 only, on this host.
ENABLE_ARM64 = "docker run --privileged --rm tonistiigi/binfmt --install arm64"


def check_arm64_builds() -> None:
    """A host that is not arm64 can build linux/arm64 images only through QEMU: an aarch64 handler registered
    in binfmt_misc, or a buildx builder that lists linux/arm64 (Docker Desktop ships one). Without either, the
    image build fails with 'exec format error' after the whole Go build."""
    if platform.machine().lower() in ARM64_MACHINES:
        return
    try:
        if BINFMT_AARCH64.is_file() and BINFMT_AARCH64.read_text().splitlines()[:1] == ["enabled"]:
            return
    except OSError:
        pass
    inspected = subprocess.run(["docker", "buildx", "inspect", "--bootstrap"], capture_output=True, text=True)
    platforms = [line.split(":", 1)[1] for line in inspected.stdout.splitlines() if line.strip().startswith("Platforms:")]
    if inspected.returncode == 0 and any(PLATFORM in line.replace("*", "") for line in platforms):
        return
    raise BadInput(
        f"this {platform.machine()} host cannot build {PLATFORM} images: no QEMU aarch64 handler is registered "
        f"({BINFMT_AARCH64} is absent) and 'docker buildx inspect --bootstrap' does not list {PLATFORM}. Enable "
        f"it once (until the next reboot) with:\n  {ENABLE_ARM64}\nor build on an arm64 (Graviton) machine."
    )


def check_source(source: Path) -> None:
    if not source.is_dir():
        raise BadInput(f"--source {source}: no such directory. Clone the fork: git clone https://github.com/iw/temporal")
    absent = [marker for marker in FORK_MARKERS if not (source / marker).exists()]
    if absent:
        raise BadInput(
            f"--source {source} is not a checkout of the temporal-dsql fork (github.com/iw/temporal): it has no "
            f"{', '.join(absent)}. Upstream Temporal does not run on Aurora DSQL."
        )


def git_tag(source: Path) -> str:
    """<git-sha>-<UTC time>: unique per build, so a pushed tag never has to be overwritten."""
    found = subprocess.run(["git", "-C", str(source), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    if found.returncode != 0:
        raise BadInput(f"--source {source} is not a git checkout: {found.stderr.strip()}")
    return f"{found.stdout.strip()}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


def plan_build(source: Path, tag: str, images: dict[str, str], registry: str, password: Callable[[], str]) -> BuildPlan:
    docker_dir = source / "docker"
    go_env = {"GOOS": "linux", "GOARCH": ARCH, "CGO_ENABLED": "0"}
    cli_archive = docker_dir / "build" / f"temporal_cli_{TEMPORAL_CLI_VERSION}.tar.gz"
    admin_dockerfile = resources.files("provisioner").joinpath("data/docker/admin-tools.Dockerfile")

    def buildx(image: str, dockerfile: str) -> Command:
        return Command(f"build and push the {image} image", (
            "docker", "buildx", "build", "--platform", PLATFORM, "--build-arg", f"ALPINE_TAG={ALPINE_TAG}",
            "-f", dockerfile, "-t", f"{images[image]}:{tag}", "-t", f"{images[image]}:latest", "--push", str(docker_dir),
        ))

    commands = (
        # The Makefile's binaries are file targets: stale ones of another architecture would be kept.
        Command("build the Go binaries", ("make", "-C", str(source), "clean-bins"), go_env),
        Command("build the Go binaries", ("make", "-C", str(source), *BINARIES), go_env),
        Command("fetch the Temporal CLI", ("curl", "-fsSL", "-o", str(cli_archive), TEMPORAL_CLI_URL)),
        Command("fetch the Temporal CLI", ("tar", "-xzf", str(cli_archive), "-C", str(docker_dir / "build" / ARCH), "temporal")),
        Command("log in to ECR", ("docker", "login", "--username", "AWS", "--password-stdin", registry), stdin=password),
        buildx("server", str(docker_dir / "targets" / "server.Dockerfile")),
        buildx("admin-tools", str(admin_dockerfile)),
    )
    return BuildPlan(source, tag, images, commands)


def lay_out(source: Path) -> None:
    """Binaries into docker/build/<arch>/ and the schema into docker/build/temporal/schema, where the
    fork's Dockerfiles (and this project's admin-tools one) COPY them from."""
    build = source / "docker" / "build"
    (build / ARCH).mkdir(parents=True, exist_ok=True)
    for binary in BINARIES:
        shutil.copy2(source / binary, build / ARCH / binary)
    shutil.copytree(source / "schema", build / "temporal" / "schema", dirs_exist_ok=True)


def ecr_login(aws: Aws) -> tuple[str, Callable[[], str]]:
    """The registry host, and a function that fetches the password when the login runs."""
    registry = f"{aws.account_id}.dkr.ecr.{aws.region}.amazonaws.com"

    def password() -> str:
        token = aws.client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
        return base64.b64decode(token).decode().split(":", 1)[1]

    return registry, password


def ensure_repositories(config: Config, aws: Aws, state_path: Path | str | None) -> dict[str, str]:
    """The project's repositories, made (or converged) by the same step `up` runs: image -> URI."""
    with operations.open_engine(config, aws, state_path, "build-images", quiet=True, steps=[Ecr()]) as engine:
        result = engine.apply()
        if not result.ok:
            (_, error), *_ = result.errors
            raise error
        return EcrOutputs.of(engine.state).repository_uris


def build_images(config: Config, aws: Aws, state_path: Path | str | None, source: Path, dry_run: bool,
                 say: Callable[[str], None], stream: Callable[[str], None]) -> BuildPlan:
    """Check, then build and push (or, with dry_run, only show what would run)."""
    check_source(source)
    check_tools()
    check_arm64_builds()
    tag = git_tag(source)
    registry, password = ecr_login(aws)
    if dry_run:
        images = {image: f"{registry}/{Naming(config.project, aws.region).repository(name)}" for image, name in IMAGES.items()}
    else:
        images = ensure_repositories(config, aws, state_path)
    plan = plan_build(source, tag, images, registry, password)
    if not dry_run:
        run(plan, say, stream)
    return plan


def run(plan: BuildPlan, say: Callable[[str], None], stream: Callable[[str], None]) -> None:
    """Every command in order, its output streamed; the first failure stops the build."""
    phases = list(dict.fromkeys(c.phase for c in plan.commands))
    laid_out = False
    for command in plan.commands:
        if command.phase == "fetch the Temporal CLI" and not laid_out:
            say(f"[{phases.index(command.phase) + 1}/{len(phases)}] lay out the binaries in docker/build/{ARCH}")
            lay_out(plan.source)
            laid_out = True
        say(f"[{phases.index(command.phase) + 1}/{len(phases)}] {command.phase}: {command.shown()}")
        process = subprocess.Popen(
            command.argv, env=_environment(command.env), text=True,
            stdin=subprocess.PIPE if command.stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        assert process.stdout is not None  # stdout=PIPE
        if command.stdin:
            assert process.stdin is not None  # stdin=PIPE when there is something to send
            process.stdin.write(command.stdin())
            process.stdin.close()
        for line in process.stdout:
            stream(line.rstrip("\n"))
        if process.wait() != 0:
            raise ProvisionError(
                f"build-images stopped: '{command.argv[0]} {command.argv[1]}' ({command.phase}) exited with "
                f"{process.returncode}; its output is above."
            )


def _environment(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **extra}


def write_images(config_path: Path, images: dict[str, str]) -> None:
    """Set temporal.server_image and temporal.admin_tools_image in the config file, keeping everything else
    (comments included) as it is."""
    text = config_path.read_text()
    values = {"server_image": images["server"], "admin_tools_image": images["admin-tools"]}
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "[temporal]"), None)
    if start is None:
        lines += ["", "[temporal]"]
        start = len(lines) - 1
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    for key, value in values.items():
        setting = f'{key} = "{value}"'
        found = next((i for i in range(start + 1, end) if re.match(rf"\s*{key}\s*=", lines[i])), None)
        if found is None:
            lines.insert(start + 1, setting)
            end += 1
        else:
            lines[found] = setting
    config_path.write_text("\n".join(lines) + "\n")
