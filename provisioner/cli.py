"""The `provision` command line.

Exit codes: 0 ok, 1 failure, 2 bad input (config or arguments). Heavy modules
(boto3, moto) are imported inside commands so that --help answers at once.
"""
from __future__ import annotations

import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from provisioner.cli_support import (
    DEFAULT_CONFIG,
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    ConfigOption,
    JsonOption,
    ProfileOption,
    StateOption,
    err,
    fail,
    handled,
    load,
    out,
)
from provisioner.commands.backup_cli import backup_app, restore_command
from provisioner.commands.state import state_app
from provisioner.ecs_layout import SERVICES

app = typer.Typer(
    help="Stand up, scale and tear down a production Temporal cluster on AWS (ECS on Graviton).\n\n"
    "Credentials, profile, region and endpoint come from the standard AWS settings "
    "(AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL). To try it with no AWS account, run "
    "'provision emulator start' and the exports it prints.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
emulator_app = typer.Typer(help="Run the embedded AWS emulator (moto) in the background, on loopback.", no_args_is_help=True)
app.add_typer(emulator_app, name="emulator")


def _shown_type(original):
    """typer 0.29 prints every option's Python type (<bool>, <str>) before its help: a flag takes no value and a
    text's help says what it is, so only the types that help (paths, numbers and their ranges) are shown."""
    def display_type_rich(self, ctx):
        described = getattr(self, "type_descriptor", None)
        if getattr(self, "is_flag", False) or getattr(described, "annotation", None) in (str, list[str]):
            return None
        if getattr(described, "is_path", False):
            return "PATH"
        return original(self, ctx)
    return display_type_rich


# A typer without this hook prints its own help unchanged rather than failing to start (help is cosmetic).
for _parameter_class in (typer.core.TyperOption, typer.core.TyperArgument):
    if hasattr(_parameter_class, "display_type_rich"):
        _parameter_class.display_type_rich = _shown_type(_parameter_class.display_type_rich)  # type: ignore[method-assign]


def version_text() -> str:
    from importlib.metadata import version

    from provisioner.temporal import versions

    default = versions.load(versions.DEFAULT)
    return (f"provision {version('provision')}\nTemporal server: {default.describe()}, which reports "
            f"{default.declared} (supported: {', '.join(versions.SUPPORTED)})")


def show_version(asked: bool) -> None:
    if asked:
        out.print(version_text(), highlight=False, markup=False)
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option(
        "--version", "-V", callback=show_version, is_eager=True,
        help="Print the tool's version and the Temporal server version it deploys by default, and exit.")] = False,
) -> None:
    """--version, and typer's completion options; the help text is the one given to typer.Typer above."""



def report(result, verb: str) -> None:
    from provisioner.errors import BadInput

    for message in result.notes:
        err.print(message, highlight=False)
    for step, error in result.errors:
        err.print(f"[red]✗ {step}:[/] {error}", highlight=False)
    if result.errors and all(isinstance(error, BadInput) for _, error in result.errors):
        raise fail(f"{verb}: the config asks for what this account or region cannot give; nothing was changed.",
                   EXIT_BAD_INPUT)
    if result.errors:
        raise fail(f"{verb} did not finish. Fix the cause above and run it again: finished work is kept.")


@app.command()
def up(config: ConfigOption = DEFAULT_CONFIG, state: StateOption = None, profile: ProfileOption = None) -> None:
    """Create or converge the whole stack; a second run changes nothing."""
    from provisioner import operations as ops

    with handled():
        cfg, aws = load(config, profile)
        result = ops.up(cfg, aws, state, console=err)
        report(result, "up")
        out.print(f"[green]Up to date[/] in {aws.region}: {_count(result.changes)}.", highlight=False)
        if result.next_step:
            out.print(f"Next: {result.next_step}", highlight=False)


@app.command()
def validate(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Check the config file alone (types, ranges, keys, server version, images), with no AWS call."""
    from provisioner.config import ConfigError, deployment_problems, load_config

    with handled():
        cfg = load_config(config)
        problems = deployment_problems(cfg)
        if problems:
            raise ConfigError("\n".join(f"{config}: {problem}" for problem in problems))
        out.print(f"{config}: valid (project {cfg.project}, Temporal {cfg.temporal.server_version}).", highlight=False)


@app.command()
def plan(
    config: ConfigOption = DEFAULT_CONFIG, state: StateOption = None, profile: ProfileOption = None, as_json: JsonOption = False
) -> None:
    """Show what 'up' would create, change or delete, without changing anything."""
    from provisioner import operations as ops

    with handled():
        cfg, aws = load(config, profile)
        result = ops.plan(cfg, aws, state, console=err, quiet=as_json)
        if as_json:
            out.print_json(data={
                "changes": [c.__dict__ for c in result.changes],
                "errors": [{"step": s, "error": str(e)} for s, e in result.errors],
            })
        else:
            for change in result.changes:
                colour = {"create": "green", "update": "yellow", "delete": "red"}[change.action]
                out.print(f"[{colour}]{change.action:>6}[/] {change.step}: {change.noun} {change.key}"
                          + (f" ({change.detail})" if change.detail else ""), highlight=False)
            out.print(f"Plan: {_count(result.changes, planned=True)}." if result.changes else "No changes: the stack matches the config.")
        report(result, "plan")


@app.command()
def status(
    config: ConfigOption = DEFAULT_CONFIG, state: StateOption = None, profile: ProfileOption = None, as_json: JsonOption = False
) -> None:
    """Compare the state with what really exists: missing, drifted and untracked resources."""
    from provisioner import operations as ops
    from provisioner.commands import service_status as services_story
    from provisioner.commands.service_status import show as show_services

    with handled():
        cfg, aws = load(config, profile)
        rows = ops.status(cfg, aws, state, console=err)
        services = services_story.service_status(cfg, aws, state, console=err)
        if as_json:
            out.print_json(data={"resources": [r.__dict__ for r in rows], "services": [s.as_json() for s in services]})
        else:
            show_status(f"{cfg.project} in {aws.region}", rows)
            show_services(out, services)
        if any(r.status not in HEALTHY for r in rows):
            raise typer.Exit(EXIT_FAILURE)


# "pending": an alert email subscription whose address has not confirmed yet; nothing is wrong with the stack.
HEALTHY = ("ok", "pending")
STATUS_COLOURS = {"ok": "green", "pending": "yellow", "missing": "red", "untracked": "yellow", "drifted": "yellow", "error": "red"}


def show_status(title: str, rows: list) -> None:
    """A table on a terminal wide enough for it; otherwise one line per resource, status first, so that a
    narrow terminal or a CI log never folds an ID over several lines."""
    from rich.text import Text

    table = Table(title=title)
    for column in ("step", "key", "kind", "id", "status"):
        table.add_column(column)
    for row in rows:
        detail = f" {row.detail}" if row.detail and row.status != "ok" else ""
        table.add_row(row.step, row.key, row.kind, row.id, Text.assemble((row.status, STATUS_COLOURS[row.status]), detail))
    # Measured without the console's width as a cap: the width the table needs to show every ID whole.
    if out.is_terminal and out.measure(table, options=out.options.update_width(sys.maxsize)).maximum <= out.width:
        out.print(table)
    else:
        out.print(title, highlight=False)
        for row in rows:
            what = " ".join(part for part in (row.step, row.key, f"({row.kind})" if row.kind else "", row.id) if part)
            detail = f": {row.detail}" if row.detail and row.status != "ok" else ""
            out.print(Text.assemble((f"{row.status:<9}", STATUS_COLOURS[row.status]), f" {what}{detail}"), highlight=False)
    if not rows:
        out.print("Nothing recorded yet: run 'provision up'.")


@app.command()
def logs(
    service: Annotated[str, typer.Argument(
        help="history, matching, frontend, worker, ui, grafana, collector, schema-dsql or schema-visibility.",
        show_default=False)],
    config: ConfigOption = DEFAULT_CONFIG,
    state: StateOption = None,
    profile: ProfileOption = None,
    since: Annotated[Optional[str], typer.Option(
        "--since", help="Every line from this long ago: 30s, 10m, 2h, 1d (default: the last --lines of each task).",
        show_default=False)] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", min=1, max=10000, help="Lines per container.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    previous: Annotated[bool, typer.Option(
        "--previous", help="The logs of the most recently stopped task instead of the running ones.")] = False,
    task: Annotated[Optional[str], typer.Option(
        "--task", help="Only this task (its ID or the start of it, as the lines show it).", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line: task, container, timestamp, message.")] = False,
) -> None:
    """Print the CloudWatch logs of a service's tasks, each line prefixed with its task ID and container.

    Ctrl-C ends --follow (exit code 130).
    """
    from provisioner.commands import logs as reading
    from provisioner.commands.service_tasks import check_target

    def emit(line) -> None:
        if as_json:
            out.print(json.dumps(line.as_json()), highlight=False, markup=False, soft_wrap=True)
        else:
            out.print(line.shown(), highlight=False, markup=False)

    with handled():
        check_target(service, "logs")
        start = reading.now_ms() - reading.parse_since(since) * 1000 if since else None
        cfg, aws = load(config, profile)
        streams = reading.find_log_streams(cfg, aws, state, service, task, previous, console=err)
        try:
            newest: list = []  # the lines of the newest millisecond printed: where --follow goes on from
            for line in reading.since(aws, streams, start) if start is not None else reading.tail(aws, streams, lines):
                emit(line)
                if not newest or line.timestamp > newest[0].timestamp:
                    newest = [line]
                elif line.timestamp == newest[0].timestamp:
                    newest.append(line)
            if follow:
                reading.follow(aws, streams, newest, emit)
        except KeyboardInterrupt:
            # Ctrl-C is how --follow ends: exit code 130 (README, Exit codes), no message, nothing to resume.
            raise typer.Exit(EXIT_INTERRUPTED) from None


@app.command("exec")
def exec_command(
    service: Annotated[str, typer.Argument(help="history, matching, frontend, worker, ui, grafana or collector.",
                                           show_default=False)],
    command: Annotated[Optional[list[str]], typer.Argument(
        help="What to run, after '--' (default: a shell; the collector's /healthcheck).", show_default=False,
        metavar="COMMAND")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    state: StateOption = None,
    profile: ProfileOption = None,
    task: Annotated[Optional[str], typer.Option(
        "--task", help="This task (its ID or the start of it; default: the first running one).", show_default=False)] = None,
    print_only: Annotated[bool, typer.Option("--print", help="Print the aws ecs execute-command line instead of running it.")] = False,
) -> None:
    """Open a shell (or run a command) inside a running task of a service, through ECS Exec.

    Needs the AWS CLI and the session-manager-plugin; --print shows the command without them.
    """
    from provisioner.commands import exec_task
    from provisioner.commands.service_tasks import check_target
    from provisioner.commands.tunnel import check_tools

    with handled():
        check_target(service, "exec")
        if not print_only:
            check_tools("ECS Exec")
        cfg, aws = load(config, profile)
        session = exec_task.find_exec_session(cfg, aws, state, service, task, command or [], console=err)
        if print_only:
            out.print(shlex.join(session.cli()), highlight=False, markup=False)
            return
        raise typer.Exit(exec_task.run(session))


@app.command()
def outputs(
    config: ConfigOption = DEFAULT_CONFIG, state: StateOption = None, profile: ProfileOption = None, as_json: JsonOption = False
) -> None:
    """Print the identifiers other tools need (VPC, subnets, endpoints, ...)."""
    from provisioner import operations as ops

    with handled():
        cfg, aws = load(config, profile)
        values = ops.outputs(cfg, aws, state, console=err)
        if as_json:
            out.print_json(data=values)
        else:
            for name, value in values.items():
                shown = json.dumps(value) if not isinstance(value, str) else value
                out.print(f"[bold]{name}[/] = {shown}", highlight=False)


@app.command()
def scale(
    targets: Annotated[Optional[list[str]], typer.Argument(
        help="'up' (every service to its configured replicas) or 'down' (all to 0), alone; or service=count "
             f"pairs such as history=4 matching=3, each service once; services: {', '.join(SERVICES)}.",
        show_default=False,
    )] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    state: StateOption = None,
    profile: ProfileOption = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until every service settles.")] = True,
    timeout: Annotated[Optional[int], typer.Option(
        "--timeout", min=1, help="Seconds to wait (default: timeouts.services_stable in the config).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Set task counts. 'up' creates every service at 0 tasks (staged deployment); scale them once the schema is in place.

    The counts are recorded in the state, so the next 'provision up' keeps them. Exit code 1 if a service does not settle, with what ECS says is holding it back.
    """
    from provisioner.commands import scale as scaling

    wanted: dict[str, int] = {}
    with handled():
        cfg, aws = load(config, profile, check=lambda cfg: wanted.update(scaling.parse_targets(targets or [], cfg)))
        statuses = scaling.scale(cfg, aws, wanted, state, wait=wait, timeout=timeout, console=err, quiet=as_json)
        if as_json:
            out.print_json(data=scaling.as_rows(statuses))
            return
        table = Table(title=f"{cfg.project} services in {aws.region}")
        for column in ("service", "desired", "running", "pending", "status"):
            table.add_column(column, overflow="fold")
        for status in statuses:
            label = "[green]settled[/]" if status.stable else f"[yellow]{status.rollout.lower()}[/]"
            table.add_row(status.service, str(status.desired), str(status.running), str(status.pending), label)
        out.print(table)


@app.command()
def destroy(
    config: ConfigOption = DEFAULT_CONFIG,
    state: StateOption = None,
    profile: ProfileOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    delete_data: Annotated[bool, typer.Option(
        "--delete-data", help="Also delete what holds data: the Aurora DSQL cluster this tool created (every "
        "workflow's history) and the image repositories. Without it they are kept.")] = False,
) -> None:
    """Delete everything this project created (found by state and by tags), except its data unless --delete-data."""
    from provisioner import operations as ops

    with handled():
        cfg, aws = load(config, profile)
        if not yes:
            if not sys.stdin.isatty():
                raise fail("destroy needs confirmation: pass --yes when not running interactively.", EXIT_BAD_INPUT)
            what = "every resource, AND ITS DATA," if delete_data else "every resource (keeping its data)"
            typer.confirm(f"Delete {what} of project '{cfg.project}' in {aws.region}?", abort=True)
        result = ops.destroy(cfg, aws, state, delete_data=delete_data, console=err)
        report(result, "destroy")
        out.print(f"[green]Destroyed[/] {cfg.project} in {aws.region}: {_count(result.changes)}.", highlight=False)


@app.command()
def schema(
    config: ConfigOption = DEFAULT_CONFIG,
    state: StateOption = None,
    profile: ProfileOption = None,
    timeout: Annotated[Optional[int], typer.Option(
        "--timeout", min=1, help="Seconds to wait for the tasks (default: timeouts.schema_task).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Apply the DSQL schema and create the visibility index, with one-off ECS tasks; safe to run again.

    Run it after 'provision up' and before 'provision scale up'. Exit code 1 names a task that failed,
    with its exit code and the end of its log.
    """
    from provisioner.commands import schema as schema_command
    from provisioner.commands.schema import as_rows
    from provisioner.task_logs import LOG_TAIL

    with handled():
        cfg, aws = load(config, profile)
        results = schema_command.schema(cfg, aws, state, timeout=timeout, console=err, quiet=as_json)
        if as_json:
            out.print_json(data=as_rows(results))
        else:
            for result in results:
                mark = "[green]ok[/]" if result.ok else "[red]failed[/]"
                out.print(f"{result.task}: {mark} (exit code {result.exit_code})", highlight=False)
                if result.log_tail:
                    out.print(f"  last {min(LOG_TAIL, len(result.log_tail))} lines of its log:", highlight=False)
                for line in result.log_tail:
                    out.print(f"    {line}", highlight=False, markup=False)
        failed = [r for r in results if not r.ok]
        if failed:
            raise fail("the schema task(s) " + ", ".join(f"{r.task} (exit code {r.exit_code}: {r.reason})"
                                                      for r in failed) + " failed; see the log above. Fix the "
                       "cause and run 'provision schema' again: it is safe to repeat.")
        if not as_json:
            out.print("Schema ready. Next: provision scale up", highlight=False)


@app.command()
def upgrade(
    config: ConfigOption = DEFAULT_CONFIG,
    state: StateOption = None,
    profile: ProfileOption = None,
    server_image: Annotated[Optional[str], typer.Option(
        "--server-image", help="The server image to move to (default: temporal.server_image).", show_default=False)] = None,
    admin_tools_image: Annotated[Optional[str], typer.Option(
        "--admin-tools-image", help="The admin-tools image whose schema tasks run first (default: "
        "temporal.admin_tools_image).", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print every action in order and change nothing.")] = False,
    timeout: Annotated[Optional[int], typer.Option(
        "--timeout", min=1, help="Seconds to wait for each role's deployment (default: timeouts.services_stable).")] = None,
) -> None:
    """Move a running cluster to another Temporal server: the schema first, then frontend, history, matching, worker.

    Each role's service is updated only after the one before it completed its deployment. A failed schema task or
    deployment stops the upgrade (exit code 1) with its reason and log; run it again to resume where it stopped.
    """
    from provisioner.commands import upgrade as upgrading

    with handled():
        cfg, aws = load(config, profile)
        result = upgrading.upgrade(cfg, aws, state, server_image, admin_tools_image, dry_run, timeout, console=err)
        if dry_run:
            out.print(f"Upgrade from {result.from_image} to {result.to_image}, in this order:", highlight=False)
            for number, action in enumerate(result.actions, 1):
                out.print(f"  {number}. {action.shown()}", highlight=False, markup=False)
            out.print("Nothing was changed (--dry-run).", highlight=False)
            return
        for action in result.actions:
            out.print(f"  {action.shown()}", highlight=False, markup=False)
        out.print(f"[green]Upgraded[/]: every Temporal role runs {result.to_image}.", highlight=False)


@app.command()
def tunnel(
    service: Annotated[str, typer.Argument(help="grafana or ui.", show_default=False)],
    config: ConfigOption = DEFAULT_CONFIG,
    state: StateOption = None,
    profile: ProfileOption = None,
    local_port: Annotated[Optional[int], typer.Option(
        "--local-port", min=1024, max=65535, help="Port on this machine (default: the service's own).")] = None,
    print_only: Annotated[bool, typer.Option("--print", help="Print the command instead of running it.")] = False,
) -> None:
    """Open Grafana or the Temporal UI at http://localhost:PORT through an SSM port forward.

    Goes through a container instance of the cluster to a running task of the service. Needs the AWS CLI
    and the session-manager-plugin; --print shows the command without them.
    """
    from provisioner.commands import tunnel as tunnels

    with handled():
        if service not in tunnels.PORTS:
            raise fail(f"tunnel: unknown service {service!r}; choose one of {', '.join(tunnels.PORTS)}.", EXIT_BAD_INPUT)
        if not print_only:
            tunnels.check_tools()
        cfg, aws = load(config, profile)
        found = tunnels.find_tunnel(cfg, aws, state, service, local_port, console=err)
        if print_only:
            out.print(shlex.join(found.command()), highlight=False, markup=False)
            return
        err.print(f"Open {found.url} (Ctrl-C to close the tunnel).", highlight=False)
        raise typer.Exit(tunnels.open_tunnel(found))


@app.command("build-images")
def build_images(
    source: Annotated[Path, typer.Option(
        "--source", help="A checkout of the temporal-dsql fork (git clone https://github.com/iw/temporal).",
        show_default=False)],
    config: ConfigOption = DEFAULT_CONFIG,
    state: StateOption = None,
    profile: ProfileOption = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the commands and run none (git is asked for the commit only).")] = False,
    write_config: Annotated[Optional[bool], typer.Option(
        "--write-config/--no-write-config",
        help="Write the image URIs into the config (default: ask on a terminal, else don't).")] = None,
) -> None:
    """Build the temporal-dsql server and admin-tools images for linux/arm64 and push them to ECR.

    Go binaries from the fork's Makefile targets, the server image from its docker/targets/server.Dockerfile,
    admin-tools from this project's own Dockerfile (it adds temporal-dsql-tool). Tagged <git-sha>-<UTC time>
    and latest. Needs git, go, make, docker with buildx, curl and tar.
    """
    from provisioner.commands import build_images as builder

    with handled():
        cfg, aws = load(config, profile, check=lambda cfg: builder.check_source(source))  # before any AWS call
        plan = builder.build_images(
            cfg, aws, state, source, dry_run,
            say=lambda line: err.print(f"[bold]{line}[/]", highlight=False, markup=False),
            stream=lambda line: err.print(line, highlight=False, markup=False),
        )
        if dry_run:
            for command in plan.commands:
                out.print(command.shown(), highlight=False, markup=False)
            return
        tagged = {image: plan.tagged(image) for image in plan.images}
        for image, uri in tagged.items():
            out.print(f"{image}: {uri}", highlight=False)
        if write_config is None:
            write_config = sys.stdin.isatty() and typer.confirm(f"Write these into {config}?", default=True)
        if write_config:
            builder.write_images(config, tagged)
            out.print(f"Wrote temporal.server_image and temporal.admin_tools_image into {config}.", highlight=False)
        else:
            out.print(f"Put these in [temporal] of {config}:\n  server_image = \"{tagged['server']}\"\n"
                      f"  admin_tools_image = \"{tagged['admin-tools']}\"", highlight=False, markup=False)


def _secret_name(value: str | None) -> str | None:
    """--name as Secrets Manager accepts it; an empty name is refused, never replaced by the default."""
    from provisioner.config import check_secret_name

    if value is None:
        return value
    try:
        return check_secret_name(value)
    except ValueError as exc:
        shown = repr(value) if len(value) <= 80 else f"({len(value)} characters)"
        raise typer.BadParameter(f"{shown} {exc}") from None


@app.command("grafana-secret")
def grafana_secret(
    config: ConfigOption = DEFAULT_CONFIG,
    profile: ProfileOption = None,
    name: Annotated[Optional[str], typer.Option(
        "--name", help="Secret name (default: grafana.admin_secret_name).", callback=_secret_name)] = None,
    show_password: Annotated[bool, typer.Option("--show-password", help="Print the admin password.")] = False,
) -> None:
    """Create the Grafana admin secret (generated password) once; a second run only reports it."""
    from provisioner.commands.grafana_secret import ensure_grafana_secret

    with handled():
        cfg, aws = load(config, profile)
        secret = ensure_grafana_secret(cfg, aws, name, show_password)
        verb = "Created" if secret.created else "Found"
        out.print(f"{verb} {secret.arn}", highlight=False)
        if secret.password:
            out.print(f"admin password: {secret.password}", highlight=False)
        else:
            out.print("The password is not shown; pass --show-password to print it.")


@app.command()
def cost(
    config: ConfigOption = DEFAULT_CONFIG,
    region: Annotated[Optional[str], typer.Option(
        "--region", help="Region to price (default: AWS_REGION or the profile's region).")] = None,
    as_json: JsonOption = False,
) -> None:
    """The monthly cost of the configured stack, line by line, from the committed price tables (no AWS call).

    Traffic-driven lines (NAT and endpoint data, metrics, logs, DSQL) are estimates; each says what it assumed.
    """
    from provisioner.commands import cost as costing
    from provisioner.config import load_config

    with handled():
        cfg = load_config(config)
        # An empty --region is a region with no price table, never the default one.
        result = costing.estimate(cfg, costing.default_region() if region is None else region)
        if as_json:
            out.print_json(data=costing.as_json(result))
            return
        costing.show(out, result)


EmulatorPort = Annotated[int, typer.Option("--port", min=1024, max=65535, help="Loopback port (1024-65535).")]
EmulatorRegion = Annotated[str, typer.Option("--region", help="Region written into the printed exports.")]


@emulator_app.command("start")
def emulator_start(port: EmulatorPort = 4566, region: EmulatorRegion = "eu-west-1") -> None:
    """Start the emulator in the background and print the shell exports that point at it."""
    try:
        import moto  # noqa: F401  (the emulator extra)
    except ImportError:
        raise fail("the emulator is an extra this installation lacks; install it with: "
                   "pip install 'provision[emulator]'", EXIT_BAD_INPUT) from None
    from provisioner.aws.session import check_region
    from provisioner.emulator import server as emulator
    from provisioner.operations import STATE_DIR

    with handled():
        check_region(region)  # before the start: the exports would point every later command at a bad region
        info = emulator.start(STATE_DIR, port)
        err.print(f"Embedded AWS running at {info['endpoint']} (pid {info['pid']}). Point your shell at it with:")
        for name, value in emulator.environment(info, region).items():
            out.print(f"export {name}={value}", highlight=False)


@emulator_app.command("env")
def emulator_env(region: EmulatorRegion = "eu-west-1") -> None:
    """Print the exports for the running emulator (use: eval "$(provision emulator env)")."""
    from provisioner.aws.session import check_region
    from provisioner.emulator import server as emulator
    from provisioner.operations import STATE_DIR

    with handled():
        check_region(region)
    info = emulator.running(STATE_DIR)
    if not info:
        raise fail("the emulator is not running: 'provision emulator start'.")
    for name, value in emulator.environment(info, region).items():
        out.print(f"export {name}={value}", highlight=False)


@emulator_app.command("stop")
def emulator_stop(port: Annotated[Optional[int], typer.Option(
        "--port", min=1024, max=65535, help="Stop the emulator on this port, wherever it was started.")] = None) -> None:
    """Stop the background emulator started in this directory (its emulated resources are gone with it); returns
    once it has exited and its port is free."""
    from provisioner.emulator import server as emulator
    from provisioner.operations import STATE_DIR

    with handled():
        if port is not None:
            stopped = emulator.stop_on_port(STATE_DIR, port)
            err.print(f"Emulator on port {port} stopped." if stopped else
                      f"No emulator of yours was running on port {port}.", highlight=False)
            return
        if emulator.stop(STATE_DIR):
            err.print("Emulator stopped.")
            return
        others = emulator.running_elsewhere()
        err.print("The emulator was not running here." if others else "The emulator was not running.", highlight=False)
        for other in others:
            err.print(f"One runs at {other.endpoint} (pid {other.pid}), started in {other.started_in}: stop it "
                      f"there, or with 'provision emulator stop --port {other.port}'.", highlight=False, markup=False)


def _count(changes, planned: bool = False) -> str:
    counts: dict[str, int] = {}
    for change in changes:
        counts[change.action] = counts.get(change.action, 0) + 1
    if not counts:
        return "no changes"
    return ", ".join(f"{n} to {a}" if planned else f"{n} {a}d" for a, n in sorted(counts.items()))


app.add_typer(state_app, name="state")
app.add_typer(backup_app, name="backup")
app.command("restore")(restore_command)

alerts_app = typer.Typer(help="The alert rules on the Prometheus workspace and their SNS topic.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("list")
def alerts_list(
    config: ConfigOption = DEFAULT_CONFIG,
    state: StateOption = None,
    profile: ProfileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the alert rules: threshold, duration, the [alerts] setting, and their state where AMP reports it."""
    from provisioner.commands import alerts

    with handled():
        cfg, aws = load(config, profile)
        listing = alerts.list_alerts(cfg, aws, state, console=err)
        if as_json:
            out.print_json(data=listing.as_json())
            return
        table = Table(title=f"Alert rules in {listing.namespace} ({listing.namespace_status})")
        for column in ("alert", "severity", "threshold", "for", "setting", "state"):
            table.add_column(column)
        for rule in listing.rules:
            threshold = "" if rule.threshold is None else f"{rule.threshold:g}"
            table.add_row(rule.alert, rule.severity, threshold, rule.for_, rule.setting, rule.state)
        out.print(table)
        if listing.state_note:
            err.print(listing.state_note, highlight=False, markup=False)


@alerts_app.command("test")
def alerts_test(
    config: ConfigOption = DEFAULT_CONFIG,
    state: StateOption = None,
    profile: ProfileOption = None,
) -> None:
    """Publish a test notification, marked [TEST], to the alerts topic: every confirmed address gets it."""
    from provisioner.commands import alerts

    with handled():
        cfg, aws = load(config, profile)
        message_id = alerts.send_test(cfg, aws, state, console=err)
        out.print(f"Sent a test notification to the alerts topic (message {message_id}).", highlight=False)


def _sigterm_as_ctrl_c(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> None:
    # SIGTERM ends any command as Ctrl-C does (exit 130, one line), also before it holds the lock (the lock
    # installs the same for its own span, state/lock.py): the default action killed it with no word.
    signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)
    app()
