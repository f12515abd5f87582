"""`provision backup` (list, now) and `provision restore` (README: "Backups and restore"); the work is in
provisioner/commands/backup.py."""
from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from provisioner.cli_support import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    ProfileOption,
    StateOption,
    err,
    handled,
    load,
    out,
)

backup_app = typer.Typer(help="AWS Backup of the DSQL cluster: list its recovery points, take one now.",
                         no_args_is_help=True)


def _size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


@backup_app.command("list")
def list_points(config: ConfigOption = DEFAULT_CONFIG, state: StateOption = None, profile: ProfileOption = None,
                as_json: JsonOption = False) -> None:
    """The recovery points in the stack's vault, newest first: time, size, status."""
    from provisioner.commands import backup

    with handled():
        cfg, aws = load(config, profile)
        points = backup.recovery_points(cfg, aws, state, console=err)
        if as_json:
            out.print_json(data=backup.as_rows(points))
            return
        if not points:
            out.print("No recovery points yet: the plan makes one on its schedule, or run 'provision backup now'.",
                      highlight=False)
            return
        table = Table(title=f"{cfg.project} recovery points in {aws.region}")
        for column in ("time", "size", "status", "recovery point"):
            table.add_column(column, overflow="fold")
        for point in points:
            table.add_row(point.created, _size(point.size_bytes), point.status, point.arn)
        out.print(table)


@backup_app.command("now")
def now(config: ConfigOption = DEFAULT_CONFIG, state: StateOption = None, profile: ProfileOption = None,
        wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the backup job completes.")] = True,
        timeout: Annotated[Optional[int], typer.Option(
            "--timeout", min=1, help="Seconds to wait (default: timeouts.default).")] = None,
        as_json: JsonOption = False) -> None:
    """Start an on-demand backup of the DSQL cluster into the stack's vault (kept backup.retention_days)."""
    from dataclasses import asdict

    from provisioner.commands import backup

    with handled():
        cfg, aws = load(config, profile)
        job = backup.backup_now(cfg, aws, state, wait=wait, timeout=timeout, console=err, quiet=as_json)
        if as_json:
            out.print_json(data=asdict(job))
        elif wait:
            out.print(f"Backup completed: {job.recovery_point} ({_size(job.size_bytes)}).", highlight=False)
        else:
            out.print(f"Backup job {job.job_id} started; its recovery point will be {job.recovery_point}. "
                      "'provision backup list' shows its status.", highlight=False)


def restore_command(
    recovery_point: Annotated[str, typer.Argument(help="The recovery point's ARN ('provision backup list').",
                                                  metavar="RECOVERY_POINT_ARN", show_default=False)],
    config: ConfigOption = DEFAULT_CONFIG,
    state: StateOption = None,
    profile: ProfileOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print every action; change nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Restore a recovery point into a new DSQL cluster and move the stack onto it; the old cluster is kept.

    The Temporal services are scaled to 0, the stack is pointed at the new cluster, the schema is checked, and the services are scaled back. Safe to run again after an interruption: it carries on where it stopped. Visibility (OpenSearch) is not restored.
    """
    from provisioner.commands import backup

    with handled():
        cfg, aws = load(config, profile)
        report = backup.restore(cfg, aws, recovery_point, state, dry_run=dry_run, console=err, quiet=as_json)
        if as_json:
            out.print_json(data=report.as_dict())
            return
        heading = "Would do, in order:" if dry_run else "Done:"
        out.print(heading, highlight=False)
        for number, action in enumerate(report.actions, 1):
            out.print(f"  {number}. {action}", highlight=False)
        if report.done:
            out.print(f"[green]Restored[/]: the stack now uses {report.new_cluster}.", highlight=False)
            out.print(f"Kept the old cluster {report.old_cluster}. Once you no longer need it, delete it with: "
                      f"{backup.delete_command(report.old_cluster)}", highlight=False)
        out.print(f"[yellow]Note:[/] {backup.VISIBILITY_NOTE}", highlight=False)
