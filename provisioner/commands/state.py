"""provision state: an S3 state's history and restore, moving a state between a file and S3, and the project lock.

Push and restore are writes like any other: conditional in S3, under the project lock, and the serial moves on.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from provisioner.cli_support import (
    DEFAULT_CONFIG,
    EXIT_BAD_INPUT,
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

if TYPE_CHECKING:  # imported when a command runs: the CLI starts without boto3's S3 machinery
    from provisioner.state import RecordedState
    from provisioner.state.s3 import S3StateStore

state_app = typer.Typer(help="The state (a file, or an S3 object a team shares) and the project lock.",
                        no_args_is_help=True)


def _s3(store: RecordedState) -> S3StateStore:
    from provisioner.state.s3 import S3StateStore

    if not isinstance(store, S3StateStore):
        raise fail(f"{store.where} is a local file, which keeps no history: history and restore need an S3 state "
                   "(--state s3://BUCKET/KEY, or state.location in the config).", EXIT_BAD_INPUT)
    return store


@state_app.command()
def history(config: ConfigOption = DEFAULT_CONFIG, state: StateOption = None, profile: ProfileOption = None,
            as_json: JsonOption = False) -> None:
    """List the versions of an S3 state (in a versioned bucket), newest first."""
    from provisioner import operations as ops

    with handled():
        cfg, aws = load(config, profile)
        store = _s3(ops.open_store(cfg, aws, state))
        versions = store.history()
        rows = [{"version": v["VersionId"], "modified": v["LastModified"].isoformat(), "size": v["Size"],
                 "latest": v["IsLatest"]} for v in versions]
        if as_json:
            out.print_json(data=rows)
            return
        table = Table(title=store.where)
        for column in ("version", "modified", "size", "latest"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(row["version"], row["modified"], str(row["size"]), "latest" if row["latest"] else "")
        out.print(table)
        out.print("Bring one back with: provision state restore VERSION", highlight=False)


@state_app.command()
def restore(
    version: Annotated[str, typer.Argument(help="A version ID from 'provision state history'.", show_default=False)],
    config: ConfigOption = DEFAULT_CONFIG, state: StateOption = None, profile: ProfileOption = None,
) -> None:
    """Bring back an earlier version of an S3 state, written as its newest version (the serial moves on)."""
    from provisioner import operations as ops

    with handled():
        cfg, aws = load(config, profile)
        _s3(ops.open_store(cfg, aws, state))
        with ops.opened_state(cfg, aws, state, "state restore", err) as store:
            store.replace_with(_s3(store).version(version))
        out.print(f"Restored version {version} of {store.where} (now serial {store.serial}).", highlight=False)


@state_app.command()
def pull(
    to: Annotated[Optional[Path], typer.Option("--to", help="Write it to this new file (default: stdout).")] = None,
    config: ConfigOption = DEFAULT_CONFIG, state: StateOption = None, profile: ProfileOption = None,
) -> None:
    """Copy the state (from S3, or the file) to stdout or a new file."""
    from provisioner import operations as ops

    with handled():
        cfg, aws = load(config, profile)
        with ops.opened_state(cfg, aws, state, "state pull", err) as store:
            payload = store.payload()
        if not store.serial:
            raise fail(f"{store.where} holds no state yet: nothing to pull.", EXIT_BAD_INPUT)
        if to is None:
            typer.echo(payload.decode(), nl=False)
            return
        try:
            fd = os.open(to, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # mode 0600, like every state file
        except OSError as exc:
            raise fail(f"--to {to}: {exc.strerror}; give a new file's path.", EXIT_BAD_INPUT) from None
        with os.fdopen(fd, "wb") as file:
            file.write(payload)
        out.print(f"Wrote {store.where} (serial {store.serial}) to {to}.", highlight=False)


@state_app.command()
def push(
    source: Annotated[Path, typer.Option("--from", help="A state file, as 'state pull' writes it.", show_default=False)],
    config: ConfigOption = DEFAULT_CONFIG, state: StateOption = None, profile: ProfileOption = None,
) -> None:
    """Make a state file the state (in S3, or the file): only one of this project, region, account and lineage."""
    from provisioner import operations as ops
    from provisioner.state.store import MAX_STATE_BYTES, read_regular_file

    with handled():
        try:
            payload = read_regular_file(source, MAX_STATE_BYTES + 1)
        except OSError as exc:
            raise fail(f"--from {source}: {exc.strerror}.", EXIT_BAD_INPUT) from None
        if payload is None:
            raise fail(f"--from {source}: not a regular file (a device, pipe or socket).", EXIT_BAD_INPUT)
        cfg, aws = load(config, profile)
        with ops.opened_state(cfg, aws, state, "state push", err) as store:
            document = store.checked(payload, str(source), "Push a state that 'provision state pull' wrote.")
            if store.serial and document["lineage"] != store.lineage:
                raise fail(f"{source} is of lineage {document['lineage']}, but {store.where} is of lineage "
                           f"{store.lineage}: another state of this project (from before a destroy, or a copy made "
                           "apart). Nothing was pushed.", EXIT_BAD_INPUT)
            if document["serial"] < store.serial:
                raise fail(f"{source} is older (serial {document['serial']}) than {store.where} (serial "
                           f"{store.serial}): pull the current one instead. Nothing was pushed.", EXIT_BAD_INPUT)
            before = store.serial
            store.replace_with(document)
        verb = "Pushed" if store.serial != before else "Already there:"
        out.print(f"{verb} {source} to {store.where} (serial {store.serial}).", highlight=False)


@state_app.command()
def unlock(
    lock_id: Annotated[str, typer.Argument(help="The lock ID the refused command named.", show_default=False)],
    config: ConfigOption = DEFAULT_CONFIG, state: StateOption = None, profile: ProfileOption = None,
) -> None:
    """Release the project lock of a run that is gone; only the lock with this ID, never one whose process still runs here."""
    from provisioner import operations as ops

    with handled():
        cfg, aws = load(config, profile)
        lock = ops.project_lock(cfg, aws, ops.open_store(cfg, aws, state))
        released = lock.unlock(lock_id)
        if released is None:
            out.print(f"{lock.subject} is not locked: nothing to release.", highlight=False)
        else:
            out.print(f"Released the lock of {released.describe()}.", highlight=False)
