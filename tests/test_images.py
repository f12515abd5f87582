"""The image repositories and `provision build-images`, with fake go, docker, git, curl and tar
executables on PATH that record how they were called (make is the real one, running a stand-in
of the fork's Makefile). Nothing here needs Docker or Go."""
from __future__ import annotations

import base64
import json
import os
import sys
import textwrap
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from provisioner import operations
from provisioner.cli import app as cli
from provisioner.commands import build_images
from tests.conftest import (
    PROJECT,
    REGION,
    Requests,
    new_aws,
    up_ok,
)

BINARIES = ("temporal-server", "temporal-sql-tool", "temporal-elasticsearch-tool", "temporal-dsql-tool", "tdbg")
FAKE = textwrap.dedent('''\
    #!{python}
    import json, os, sys
    name = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    record = {{"tool": name, "args": args, "env": {{k: os.environ.get(k) for k in ("GOOS", "GOARCH", "CGO_ENABLED")}}}}
    if name == "docker" and "--password-stdin" in args:
        open(os.environ["FAKE_STDIN"], "w").write(sys.stdin.read())
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps(record) + "\\n")
    if name == "git":
        print("0123456789ab")
    elif name == "go" and "-o" in args:
        open(args[args.index("-o") + 1], "w").write("binary")
    elif name == "curl":
        open(args[args.index("-o") + 1], "w").write("archive")
    elif name == "tar":
        open(os.path.join(args[args.index("-C") + 1], args[-1]), "w").write("cli")
    elif name == "docker" and args[:1] == ["buildx"] and "build" in args:
        print("#1 building", args[-1])
    elif name == "docker" and args[:2] == ["buildx", "inspect"]:
        print("Name: default\\nDriver: docker\\nPlatforms: " + os.environ.get("FAKE_BUILDX_PLATFORMS", ""))
''')


def fake_tools(directory: Path, tools=("git", "go", "docker", "curl", "tar")) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for tool in tools:
        path = directory / tool
        path.write_text(FAKE.format(python=sys.executable))
        path.chmod(0o755)
    return directory


def fake_fork(root: Path) -> Path:
    """A stand-in of the fork's tree: the files build-images looks for and a Makefile whose targets call go."""
    for directory in ("cmd/tools/dsql", "docker/targets", "schema/dsql/temporal"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "docker/targets/server.Dockerfile").write_text("FROM alpine\n")
    (root / "schema/dsql/temporal/schema.sql").write_text("-- schema\n")
    rules = "\n".join(f"{b}:\n\tgo build -o {b} ./cmd/{b}" for b in BINARIES)
    (root / "Makefile").write_text(f"clean-bins:\n\trm -f {' '.join(BINARIES)}\n{rules}\n")
    return root


@pytest.fixture
def workshop(endpoint, tmp_path, monkeypatch):
    """Fake tools first on PATH (make stays the real one), a fake fork, and a config file."""
    tools = fake_tools(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("FAKE_STDIN", str(tmp_path / "stdin.txt"))
    # An x86 host whose buildx builder can build arm64 (as Docker Desktop's does), whatever this machine is.
    monkeypatch.setattr(build_images.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(build_images, "BINFMT_AARCH64", tmp_path / "binfmt_misc" / "qemu-aarch64")
    monkeypatch.setenv("FAKE_BUILDX_PLATFORMS", "linux/amd64*, linux/arm64, linux/386")
    config_file = tmp_path / "provision.toml"
    config_file.write_text(f'project = "{PROJECT}"\n\n[temporal]\n# the image\nserver_version = "fork"\n')
    return {"source": fake_fork(tmp_path / "temporal"), "config": config_file, "state": tmp_path / "state.json",
            "log": tmp_path / "calls.jsonl", "stdin": tmp_path / "stdin.txt", "tmp": tmp_path}


def calls(workshop) -> list[dict]:
    if not workshop["log"].exists():
        return []
    return [json.loads(line) for line in workshop["log"].read_text().splitlines()]


def build(workshop, *extra: str):
    return CliRunner().invoke(cli, ["build-images", "--source", str(workshop["source"]), "--config",
                                    str(workshop["config"]), "--state", str(workshop["state"]), *extra])


def ecr_password() -> str:
    token = boto3.client("ecr", region_name=REGION).get_authorization_token()["authorizationData"][0]["authorizationToken"]
    return base64.b64decode(token).decode().split(":", 1)[1]


REGISTRY = f"123456789012.dkr.ecr.{REGION}.amazonaws.com"


def test_repositories_scan_encrypt_expire_untagged_and_keep_versioned_tags(endpoint, config, state_path):
    sent = Requests()
    up_ok(config, new_aws(("provide-client-params", sent)), state_path)
    requests = {r["repositoryName"]: r for r in sent.of("ecr.CreateRepository")}
    assert sorted(requests) == [f"{PROJECT}/temporal-admin-tools", f"{PROJECT}/temporal-server"]
    ecr = boto3.client("ecr", region_name=REGION)
    for name, request in requests.items():
        assert request["imageScanningConfiguration"] == {"scanOnPush": True}
        assert request["encryptionConfiguration"] == {"encryptionType": "AES256"}
        assert request["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
        assert request["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": "latest"}]
        (live,) = ecr.describe_repositories(repositoryNames=[name])["repositories"]
        assert live["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
        policy = json.loads(ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"])
        (rule,) = policy["rules"]
        assert rule["selection"] == {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 10}
        assert rule["action"] == {"type": "expire"}
    assert up_ok(config, new_aws(), state_path).changes == []


def test_destroy_keeps_a_repository_holding_images_unless_delete_data(endpoint, config, state_path):
    up_ok(config, new_aws(), state_path)
    ecr = boto3.client("ecr", region_name=REGION)
    name = f"{PROJECT}/temporal-server"
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"digest": "sha256:" + "a" * 64, "size": 1}, "layers": []})
    ecr.put_image(repositoryName=name, imageManifest=manifest, imageTag="0123456789ab-20261129T000000Z")
    kept = operations.destroy(config, new_aws(), state_path, quiet=True)
    assert kept.ok, kept.errors
    names = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
    assert names == [name]
    assert any(f"--repository-name {name} --force" in note for note in kept.notes)
    assert operations.destroy(config, new_aws(), state_path, delete_data=True, quiet=True).ok
    assert ecr.describe_repositories()["repositories"] == []


def test_build_images_runs_the_fork_build_in_order_and_pushes_both_images(workshop):
    result = build(workshop, "--write-config")
    assert result.exit_code == 0, result.output
    recorded = [(c["tool"], c["args"]) for c in calls(workshop)]
    source, docker_dir = str(workshop["source"]), str(workshop["source"] / "docker")
    assert [tool for tool, _ in recorded] == ["docker", "docker", "git", *["go"] * 5, "curl", "tar", "docker", "docker",
                                              "docker"]
    assert recorded[:2] == [("docker", ["buildx", "version"]), ("docker", ["buildx", "inspect", "--bootstrap"])]
    assert recorded[2] == ("git", ["-C", source, "rev-parse", "--short=12", "HEAD"])
    # The fork's Makefile targets, cross-compiled for linux/arm64.
    assert [args[args.index("-o") + 1] for tool, args in recorded if tool == "go"] == list(BINARIES)
    assert all(c["env"] == {"GOOS": "linux", "GOARCH": "arm64", "CGO_ENABLED": "0"} for c in calls(workshop)
               if c["tool"] == "go")
    assert recorded[-3] == ("docker", ["login", "--username", "AWS", "--password-stdin", REGISTRY])
    server, admin = recorded[-2][1], recorded[-1][1]
    tag = "0123456789ab-"
    assert server[:7] == ["buildx", "build", "--platform", "linux/arm64", "--build-arg", "ALPINE_TAG=3.23", "-f"]
    assert server[7] == f"{docker_dir}/targets/server.Dockerfile" and server[-2:] == ["--push", docker_dir]
    assert admin[7].endswith("provisioner/data/docker/admin-tools.Dockerfile") and admin[-1] == docker_dir
    uri = f"{REGISTRY}/{PROJECT}/temporal-server"
    tags = [server[i + 1] for i, a in enumerate(server) if a == "-t"]
    assert tags[0].startswith(f"{uri}:{tag}") and tags[1] == f"{uri}:latest"
    # The binaries and the schema sit where the Dockerfiles COPY them from.
    for binary in (*BINARIES, "temporal"):
        assert (workshop["source"] / "docker/build/arm64" / binary).exists()
    assert (workshop["source"] / "docker/build/temporal/schema/dsql/temporal/schema.sql").exists()
    # The URIs went into the config, which still loads, comments and all.
    written = workshop["config"].read_text()
    assert f'server_image = "{tags[0]}"' in written and "# the image" in written
    assert f'admin_tools_image = "{REGISTRY}/{PROJECT}/temporal-admin-tools:{tags[0].rsplit(":", 1)[1]}"' in written
    assert tags[0] in result.stdout


def test_the_ecr_password_goes_to_docker_on_stdin_only(workshop):
    result = build(workshop, "--no-write-config")
    assert result.exit_code == 0, result.output
    password = ecr_password()
    assert workshop["stdin"].read_text() == password
    assert all(password not in " ".join(c["args"]) for c in calls(workshop))
    assert password not in result.output


def test_dry_run_prints_the_same_commands_and_runs_none(workshop):
    dry = build(workshop, "--dry-run")
    assert dry.exit_code == 0, dry.output
    # buildx version, what the builder can build, the commit: questions only
    assert [(c["tool"], c["args"][:2]) for c in calls(workshop)] == [
        ("docker", ["buildx", "version"]), ("docker", ["buildx", "inspect"]), ("git", ["-C", str(workshop["source"])])]
    printed = dry.stdout.splitlines()
    assert printed[0] == f"GOOS=linux GOARCH=arm64 CGO_ENABLED=0 make -C {workshop['source']} clean-bins"
    assert any(line.startswith("docker login --username AWS --password-stdin") for line in printed)
    assert sum(line.startswith("docker buildx build --platform linux/arm64") for line in printed) == 2
    assert boto3.client("ecr", region_name=REGION).describe_repositories()["repositories"] == []
    assert not (workshop["source"] / "docker/build").exists()


@pytest.mark.parametrize("missing", ["go", "docker", "git", "curl", "tar"])
def test_a_missing_tool_is_named_with_how_to_get_it_before_anything_runs(workshop, tmp_path, monkeypatch, missing):
    present = [t for t in ("git", "go", "docker", "curl", "tar") if t != missing]
    only = fake_tools(tmp_path / "only", present)
    make = Path(os.popen("command -v make").read().strip())
    (only / "make").symlink_to(make)
    monkeypatch.setenv("PATH", str(only))
    result = build(workshop)
    assert result.exit_code == 2, result.output
    assert f"{missing}: install" in result.output and "Traceback" not in result.output
    assert [c for c in calls(workshop) if c["args"][:2] != ["buildx", "version"]] == []


def test_a_source_tree_that_is_not_the_fork_is_refused(workshop, tmp_path):
    workshop["source"] = tmp_path / "upstream"
    (tmp_path / "upstream").mkdir()
    (tmp_path / "upstream" / "Makefile").write_text("all:\n")
    result = build(workshop)
    assert result.exit_code == 2
    assert "is not a checkout of the temporal-dsql fork" in result.output and "cmd/tools/dsql" in result.output
    assert calls(workshop) == []  # the source is checked first


def test_a_missing_source_is_named_first_even_without_the_tools(workshop, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(fake_tools(tmp_path / "none", ())))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # never asked: the path is checked before AWS
    workshop["source"] = tmp_path / "nonexistent"
    result = build(workshop, "--dry-run")
    assert result.exit_code == 2, result.output
    assert f"--source {tmp_path / 'nonexistent'}: no such directory" in result.output
    assert "go: install" not in result.output and calls(workshop) == []


def test_an_x86_host_that_cannot_run_arm64_is_told_how_to_enable_it(workshop, monkeypatch):
    monkeypatch.setenv("FAKE_BUILDX_PLATFORMS", "linux/amd64, linux/386")
    result = build(workshop, "--dry-run")
    assert result.exit_code == 2, result.output
    assert "host cannot build linux/arm64 images" in result.output
    assert "docker run --privileged --rm tonistiigi/binfmt --install arm64" in result.output
    assert [c["args"][:2] for c in calls(workshop)] == [["buildx", "version"], ["buildx", "inspect"]]


def test_a_registered_qemu_aarch64_handler_is_enough_to_build_arm64(workshop, monkeypatch):
    monkeypatch.setenv("FAKE_BUILDX_PLATFORMS", "linux/amd64")
    build_images.BINFMT_AARCH64.parent.mkdir()
    build_images.BINFMT_AARCH64.write_text("enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\n")
    result = build(workshop, "--dry-run")
    assert result.exit_code == 0, result.output
    assert [c["args"][:2] for c in calls(workshop) if c["tool"] == "docker"] == [["buildx", "version"]]


def test_an_arm64_host_builds_without_qemu(workshop, monkeypatch):
    monkeypatch.setenv("FAKE_BUILDX_PLATFORMS", "")
    monkeypatch.setattr(build_images.platform, "machine", lambda: "aarch64")
    result = build(workshop, "--dry-run")
    assert result.exit_code == 0, result.output


def test_up_without_a_server_image_says_how_to_build_one(endpoint, tmp_path):
    config_file = tmp_path / "provision.toml"
    config_file.write_text(f'project = "{PROJECT}"\n')
    result = CliRunner().invoke(cli, ["up", "--config", str(config_file), "--state", str(tmp_path / "s.json")])
    assert result.exit_code == 2, result.output
    assert "provision build-images --source PATH" in result.output
