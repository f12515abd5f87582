"""Property: whatever config file or command line a user gives, the CLI works or refuses with a clear
message and an exit code (2 for input, 1 for AWS): never a Python traceback."""
from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from provisioner.cli import app as cli
from tests.conftest import config_text, free_port

TEXT = st.text(alphabet=string.printable + "³٣éé\u200b\U0001f600", max_size=12)
SCALARS = st.one_of(st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False), TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=4)
SECTIONS = {
    "network": ["vpc_cidr", "private_subnet_cidrs", "availability_zones", "public_subnet_cidr"],
    "dsql": ["cluster_arn", "private_link", "user"],
    "temporal": ["server_version", "server_image", "admin_tools_image", "ui_image", "num_history_shards", "log_level"],
    "services.history": ["cpu", "memory", "replicas", "max_conns", "max_idle_conns"],
    "capacity.worker": ["instance_type", "min_size", "max_size", "desired_capacity", "root_volume_gib"],
    "opensearch": ["instance_type", "instance_count", "volume_gib", "engine_version", "visibility_index"],
    "logs": ["retention_days"], "timeouts": ["nat_gateway", "default"], "aws": ["max_attempts"], "bogus": ["key"],
}


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + value.replace("\\\\", "\\\\\\\\").replace('"', '\\\\"').encode("unicode_escape").decode() + '"'


@st.composite
def config_documents(draw) -> str:
    lines = []
    if draw(st.booleans()):
        lines.append(f"project = {toml_value(draw(st.one_of(TEXT, st.sampled_from(['temporal', 'prod-a1']))))}")
    for section, keys in SECTIONS.items():
        chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=3))
        if chosen:
            lines.append(f"[{section}]")
            lines += [f"{key} = {toml_value(draw(VALUES))}" for key in chosen]
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["[", "x =", "= 1", "[temporal]\n[temporal]", '"a" = "b"'])))
    return "\n".join(lines) + "\n"


def check(result) -> None:
    assert "Traceback" not in result.output and "unexpected error" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=config_documents())
def test_any_config_document_validates_or_is_refused_with_exit_2(tmp_path, document):
    path = tmp_path / "fuzz.toml"
    path.write_text(document)
    result = CliRunner().invoke(cli, ["validate", "--config", str(path)])
    check(result)
    assert result.exit_code in (0, 2), result.output
    if result.exit_code:
        assert result.output.startswith("Error: ") and str(path) in result.output


WORDS = ["up", "plan", "status", "outputs", "scale", "destroy", "schema", "validate", "build-images",
         "grafana-secret", "emulator", "stop", "env", "history=2", "down", "ui=0", "--json", "--yes", "--help",
         "--delete-data", "--dry-run", "--timeout", "--source", "--name", "--config", "--state", "=", "³", "-1",
         "0", "99999", "", "--", "--port"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arguments=st.lists(st.one_of(st.sampled_from(WORDS), TEXT), max_size=6))
def test_any_command_line_works_or_fails_cleanly(tmp_path, monkeypatch, arguments):
    """AWS is unreachable here: commands that get that far fail with exit 1 within seconds."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    (tmp_path / "provision.toml").write_text(config_text())
    if "start" in arguments:
        pytest.skip("never start emulators from random input")
    result = CliRunner().invoke(cli, arguments)
    check(result)
    assert result.exit_code in (0, 1, 2), result.output
