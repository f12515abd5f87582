"""The README cannot drift from the tool, and the tool's interface is complete (property 13).

The README's convention, checked here: in its ```sh, ```bash and ```console blocks, every line (without
a leading `$ ` prompt and its trailing `# comment`, split at `&&`) is a command.

- A `provision ...` command runs here, against an embedded emulator the README's own `provision emulator
  start` starts, in a directory holding a copy of config.example.toml (as `provision.toml`, by the
  README's `cp`) and examples/. It must exit 0, or the code its comment starts with (`# exits 2: ...`).
  Each distinct command runs once, ordered by what it needs (PHASES): setup, then `up` (once for the
  file), `schema`, `scale`, what reads the stack, `scale down`, `destroy`, `emulator stop`. build-images
  and tunnel find fake docker, go, aws and session-manager-plugin on PATH, and a stand-in of the fork.
- An `aws ...` command is not run (no AWS CLI here): its operation must exist in botocore's model and take
  every option shown.
- Any other line is the shell around those commands: RUN_HERE lists those this test runs, NOT_RUN why
  the others are not run.

The tests of this module share the one emulated stack: each runs the phases it needs that have not run yet
(Readme.reach), so any one passes alone and in any order.
"""
from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import shlex
import shutil
import struct
import subprocess
import sys
import termios
import typing
from pathlib import Path
from xml.etree import ElementTree

import boto3
import botocore.session
import pytest
from botocore import xform_name
from pydantic import BaseModel
from rich.console import Console
from typer.testing import CliRunner

from provisioner import cli as cli_module
from provisioner.cli import app as cli
from provisioner.config import Config, ServicesConfig
from provisioner.emulator import server as emulator
from provisioner.operations import ResourceStatus
from tests.conftest import REGION, free_port
from tests.test_images import fake_fork, fake_tools

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHELL_BLOCK = re.compile(r"^```(?:sh|bash|console)\n(.*?)^```", re.S | re.M)
EXPECTED_EXIT = re.compile(r"^exits (\d+)\b")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

# Lines that are not provision commands: those this test runs itself, and why the others are not run.
RUN_HERE = {
    "cp config.example.toml provision.toml": "run in the test's directory",
    # The team-state bucket: made through boto3 with the same operation and options (aws_call).
    "aws s3api create-bucket --bucket my-team-state --region eu-west-1 --create-bucket-configuration "
    "LocationConstraint=eu-west-1": "run through boto3 against the emulator",
    "aws s3api put-bucket-versioning --bucket my-team-state --versioning-configuration Status=Enabled":
        "run through boto3 against the emulator",
    'eval "$(provision emulator env)"': "runs 'provision emulator env' and sets the variables it exports",
}
NOT_RUN = {
    "scripts/demo.sh": "the demo runs these same commands, which this test runs one by one",
    "scripts/test.sh": "it runs the test suite this test is part of",
    "scripts/setup.sh": "it installs into .venv, the environment running this test",
    'export PATH="$PWD/.venv/bin:$PATH"': "provision runs in-process here",
}
# Commands ordered by what they need; a command not listed needs only the config (validate, cost, plan,
# grafana-secret, build-images) and runs right after the emulator starts.
PHASES = {
    "provision emulator start": 0, "cp": 0, "eval": 0, "aws s3api": 1,
    "provision up": 2, "provision schema": 3, "provision scale": 4,
    "provision status": 5, "provision outputs": 5, "provision tunnel": 5, "provision emulator env": 5,
    "provision logs": 5, "provision exec": 5, "provision alerts": 5, "provision upgrade": 5,
    "provision scale down": 6, "provision destroy": 7, "provision emulator stop": 8,
}
SETUP_PHASE = 1
TEARDOWN_PHASE = PHASES["provision scale down"]
# AWS CLI command names that are not botocore's service names.
CLI_SERVICES = {"s3api": "s3"}
# Options of every AWS CLI command, and those of paginated ones.
AWS_CLI_GLOBAL_OPTIONS = {"--region", "--profile", "--output", "--query", "--endpoint-url", "--no-cli-pager",
                          "--max-items", "--starting-token", "--page-size"}
# AWS CLI commands that are customizations with no API operation behind them, and their options
# (https://awscli.amazonaws.com/v2/documentation/api/latest/reference/logs/tail.html).
AWS_CLI_ONLY = {("logs", "tail"): {"--since", "--follow", "--format", "--filter-pattern", "--log-stream-names"}}


def readme_lines() -> list[str]:
    """Every command line of the README's shell blocks, in order."""
    lines = []
    for block in SHELL_BLOCK.findall(README.read_text()):
        for raw in block.splitlines():
            line = raw.strip().removeprefix("$ ")
            if line and not line.startswith("#"):
                lines += [part.strip() for part in line.split(" && ")]
    return lines


def split_comment(line: str) -> tuple[str, str]:
    """The command as written, and its comment (from the first " #")."""
    command, _, comment = line.partition(" #")
    return command.strip(), comment.strip()


def phase(command: str) -> int:
    matches = [(len(prefix), number) for prefix, number in PHASES.items()
               if command == prefix or command.startswith(prefix + " ")]
    return max(matches)[1] if matches else SETUP_PHASE


def runnable() -> list[tuple[str, int]]:
    """(command, expected exit code) of each distinct command to run, in phase order, README order within one."""
    seen: dict[str, int] = {}
    for line in readme_lines():
        command, comment = split_comment(line)
        if command.startswith("provision ") or command in RUN_HERE:
            expected = EXPECTED_EXIT.match(comment)
            seen.setdefault(command, int(expected[1]) if expected else 0)
    return sorted(seen.items(), key=lambda item: phase(item[0]))


def in_terminal(arguments: list[str], columns: int, answer: str = "") -> tuple[int, str]:
    """`provision ARGUMENTS` on a pseudo-terminal COLUMNS wide (typing `answer`): what a user sees."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "provisioner", *arguments],
                               stdin=terminal, stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    if answer:
        os.write(controller, answer.encode())
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    return process.wait(timeout=120), ANSI.sub("", shown.decode(errors="replace")).replace("\r\n", "\n")


def aws_call(words: list[str]) -> int:
    """`aws SERVICE OPERATION --option value ...` made through boto3: options become the operation's members
    (by botocore's model), `Key=Value` shorthand a structure. For the few aws lines in RUN_HERE."""
    _, service, operation, *rest = words
    client = boto3.client(CLI_SERVICES.get(service, service), region_name=REGION)
    model = client.meta.service_model
    name = {xform_name(n, "-"): n for n in model.operation_names}[operation]
    members = {xform_name(m, "-"): m for m in model.operation_model(name).input_shape.members}
    params = {}
    for option, value in zip(rest[::2], rest[1::2]):
        if option == "--region":
            continue
        params[members[option.removeprefix("--")]] = dict([value.split("=", 1)]) if "=" in value else value
    getattr(client, xform_name(name))(**params)
    return 0


class Readme:
    """The directory the README's commands run in, and the emulator they start."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.monkeypatch = monkeypatch
        self.work = root / "work"
        self.work.mkdir()
        shutil.copy(ROOT / "config.example.toml", self.work)
        shutil.copytree(ROOT / "examples", self.work / "examples")
        fake_fork(root / "temporal")  # the README's --source ../temporal
        self.calls = root / "calls.jsonl"  # every run of a fake tool (tests/test_images.py)
        self.exported: dict[str, str] = {}
        self.printed: dict[str, str] = {}  # what each command printed
        self.phases_run: set[int] = set()

    def reach(self, stop: int) -> None:
        """Run the README's commands of every phase before `stop` not run yet: each test of this module gets
        the stack it needs, alone or in any order (after the teardown, the README again from the start)."""
        if any(done >= stop for done in self.phases_run):
            self.phases_run.clear()
        run_phases(self, range(0, stop), skip=self.phases_run)
        self.phases_run.update(range(0, stop))

    def export(self, printed: str) -> dict[str, str]:
        """What `eval` would do with the `export NAME=value` lines a command printed."""
        exports = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1)
                       for line in printed.splitlines() if line.startswith("export "))
        for name, value in exports.items():
            self.monkeypatch.setenv(name, value)
        return exports

    def run(self, command: str) -> tuple[int, str]:
        """Run one README command: its exit code and what it printed."""
        words = shlex.split(command)
        if command.startswith("aws "):
            return aws_call(words), ""
        if command.startswith("cp "):
            copied = subprocess.run(words, cwd=self.work, capture_output=True, text=True)
            return copied.returncode, copied.stderr
        if command.startswith("eval "):
            result = CliRunner().invoke(cli, ["emulator", "env"])
            assert self.export(result.stdout) == self.exported, "emulator env differs from start"
            return result.exit_code, result.output
        arguments = words[1:]
        if arguments[:2] == ["emulator", "start"]:
            # The only change to a README command: a free port, so that parallel runs never collide.
            result = CliRunner().invoke(cli, [*arguments, "--port", str(free_port())])
            self.exported = self.export(result.stdout)
            return result.exit_code, result.output
        if arguments[0] == "destroy" and "--yes" not in arguments:
            code, shown = in_terminal(arguments, 120, answer="y\n")  # it asks on a terminal: answer yes
            assert "Delete every resource" in shown, shown
            return code, shown
        result = CliRunner().invoke(cli, arguments)
        return result.exit_code, result.output


@pytest.fixture(scope="module")
def readme(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "PROVISION_CONFIG", "PROVISION_STATE"):
            patch.delenv(name, raising=False)
        for name, value in {"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, **emulator.CREDENTIALS,
                            "AWS_CONFIG_FILE": str(root / "no-aws-config"),
                            "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials")}.items():
            patch.setenv(name, value)
        tools = fake_tools(root / "bin", tools=("git", "go", "docker", "curl", "tar", "aws", "session-manager-plugin"))
        patch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
        setup = Readme(root, patch)
        patch.setenv("FAKE_LOG", str(setup.calls))
        patch.setenv("FAKE_STDIN", str(root / "stdin.txt"))
        patch.setenv("FAKE_BUILDX_PLATFORMS", "linux/amd64, linux/arm64")  # the fake builder can build arm64
        patch.chdir(setup.work)
        try:
            yield setup
        finally:
            emulator.stop(setup.work / ".provision")  # if a failure left it running


def run_phases(readme: Readme, phases: range, skip: set[int] = frozenset()) -> None:
    for command, expected in runnable():
        if phase(command) in phases and phase(command) not in skip:
            code, shown = readme.run(command)
            readme.printed[command] = shown
            assert code == expected, f"README command {command!r} exited {code}, expected {expected}:\n{shown[-3000:]}"


def test_the_readme_follows_its_convention():
    lines = readme_lines()
    for line in lines:
        command, _ = split_comment(line)
        assert command.startswith(("provision ", "aws ")) or command in RUN_HERE | NOT_RUN, (
            f"README shell line {line!r}: not a provision or aws command, nor in RUN_HERE or NOT_RUN")
    commands = [command for command, _ in runnable()]
    for needed in ("provision build-images", "provision grafana-secret", "provision up", "provision schema",
                   "provision scale up", "provision tunnel grafana", "provision status", "provision destroy"):
        assert any(c == needed or c.startswith(needed + " ") for c in commands), f"the README shows no {needed!r}"


def test_readme_commands_up_to_the_teardown(readme):
    readme.reach(TEARDOWN_PHASE)
    ran = [json.loads(line) for line in readme.calls.read_text().splitlines()]
    assert any(call["tool"] == "aws" and call["args"][:2] == ["ssm", "start-session"] for call in ran), (
        "provision tunnel did not start the SSM session")


def test_status_in_a_narrow_terminal_and_in_a_log(readme, monkeypatch):
    readme.reach(TEARDOWN_PHASE)
    listed = CliRunner().invoke(cli, ["status", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [ResourceStatus(**row) for row in json.loads(listed.stdout)["resources"]]
    assert rows
    code, narrow = in_terminal(["status"], 60)
    assert code == 0, narrow
    logged = readme.printed["provision status"]  # the README's own run: stdout was not a terminal, as in CI
    for shown in (narrow, logged):
        assert "┃" not in shown, f"a table where it cannot fit:\n{shown}"
        for row in rows:
            assert row.id in shown, f"{row.id} is folded or missing:\n{shown}"
    wide = Console(file=io.StringIO(), force_terminal=True, width=400)
    monkeypatch.setattr(cli_module, "out", wide)
    cli_module.show_status("a terminal wide enough", rows)
    assert "┃" in wide.file.getvalue(), "a terminal wide enough shows the table"


def test_outputs_hold_what_scripts_need(readme):
    """Property 13: the identifiers scripts and people need, after an `up`."""
    readme.reach(TEARDOWN_PHASE)
    result = CliRunner().invoke(cli, ["outputs", "--json"])
    assert result.exit_code == 0, result.output
    outputs = json.loads(result.stdout)
    assert outputs["cluster_arn"].startswith("arn:aws:ecs:") and outputs["cluster_arn"].endswith(outputs["cluster_name"])
    services = set(ServicesConfig.model_fields)
    assert set(outputs["services"]) == services and all(outputs["services"].values())
    assert outputs["opensearch_endpoint"].startswith("https://")
    workspace = outputs["prometheus_workspace_id"]
    assert workspace and outputs["prometheus_remote_write_url"].endswith(f"/workspaces/{workspace}/api/v1/remote_write")
    for service, name in outputs["services"].items():
        command = outputs["exec_commands"][service]
        assert command.startswith("aws ecs execute-command ") and f"--service-name {name} " in command
        assert f"--cluster {outputs['cluster_name']} " in command and f"--container {service} --interactive" in command


def test_readme_teardown_commands(readme):
    readme.reach(max(PHASES.values()) + 1)
    assert not emulator.running(readme.work / ".provision")


def test_readme_aws_commands_exist_with_the_options_shown():
    models = botocore.session.get_session()
    checked = 0
    for line in readme_lines():
        command, _ = split_comment(line)
        if not command.startswith("aws "):
            continue
        _, service, operation, *rest = shlex.split(command)
        options = {word.split("=")[0] for word in rest if word.startswith("--")}
        if (service, operation) in AWS_CLI_ONLY:
            allowed = AWS_CLI_ONLY[service, operation]
        else:
            model = models.get_service_model(CLI_SERVICES.get(service, service))
            names = {xform_name(name, "-"): name for name in model.operation_names}
            assert operation in names, f"{command!r}: aws {service} has no {operation}"
            members = model.operation_model(names[operation]).input_shape.members
            allowed = {f"--{xform_name(m, '-')}" for m in members} | {
                f"--no-{xform_name(m, '-')}" for m, shape in members.items() if shape.type_name == "boolean"}
        unknown = options - allowed - AWS_CLI_GLOBAL_OPTIONS
        assert not unknown, f"{command!r}: aws {service} {operation} takes no {sorted(unknown)}"
        checked += 1
    assert checked, "the README's troubleshooting shows aws commands; none were found"


def settings(model: type[BaseModel], prefix: str = "") -> list[tuple[str, object]]:
    """Every setting of the config, as (dotted key, pydantic field), sections walked into."""
    found = []
    for attribute, field in model.model_fields.items():
        name = field.alias or attribute  # the key as the TOML file spells it ("for" in [alerts])
        annotation = field.annotation
        optional = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.append((prefix + name, field))
            found += settings(annotation, f"{prefix}{name}.")
        elif optional:  # a section that is off unless set, like services.frontend.autoscaling
            found.append((prefix + name, field))
            found += settings(optional[0], f"{prefix}{name}.")
        else:
            found.append((prefix + name, field))
    return found


def optional_sections(model: type[BaseModel], prefix: str = "") -> list[str]:
    """The dotted keys of sections that are off unless set (an optional model, like services.frontend.autoscaling)."""
    found = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += optional_sections(annotation, f"{prefix}{name}.")
        elif any(isinstance(a, type) and issubclass(a, BaseModel) for a in typing.get_args(annotation)):
            found.append(prefix + name)
    return found


def test_every_setting_is_described_and_shown_with_a_value():
    """Property 13: each setting has a description, and a default or a value in config.example.toml."""
    import tomllib

    text = (ROOT / "config.example.toml").read_text()
    example = tomllib.loads(text)
    defaults = Config().model_dump(by_alias=True)
    optional = optional_sections(Config)
    for key, field in settings(Config):
        assert field.description, f"{key} has no description (Field(description=...))"
        leaf = field.annotation
        if isinstance(leaf, type) and issubclass(leaf, BaseModel):
            continue
        section = next((s for s in optional if key == s or key.startswith(s + ".")), None)
        if section is not None:
            # Off by default, so shown commented out: the section's header and each of its settings.
            assert f"# [{section}]" in text, f"{section} is missing from config.example.toml (as a commented section)"
            if key != section:
                assert f"# {key.rsplit('.', 1)[1]} = " in text, f"{key} is missing from config.example.toml"
            continue
        shown, default = example, defaults
        for part in key.split("."):
            shown = shown.get(part, {}) if isinstance(shown, dict) else {}
            default = default.get(part) if isinstance(default, dict) else None
        assert shown != {} or default is not None, f"{key}: no default and not in config.example.toml"
        assert shown != {}, f"{key} is missing from config.example.toml, which shows every setting"


def test_the_architecture_picture_is_what_its_script_draws():
    drawn = subprocess.run([sys.executable, str(ROOT / "scripts" / "architecture.py"), "--stdout"],
                           capture_output=True, text=True, check=True).stdout
    ElementTree.fromstring(drawn)  # well-formed, so a browser shows it
    assert (ROOT / "docs" / "architecture.svg").read_text() == drawn, (
        "docs/architecture.svg is not what scripts/architecture.py draws: run the script and commit its output")
    assert "](docs/architecture.svg)" in README.read_text()
