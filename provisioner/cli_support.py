"""What every `provision` command shares: the consoles, the common options, the exit codes, and `handled()`,
which turns every known failure into one message and its exit code (README: "Exit codes").

`provisioner/cli.py` registers the commands; command groups in their own module (`provision state`) take
these from here, so neither imports the other.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import click
import typer
from rich.console import Console

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

out = Console(soft_wrap=True, emoji=False)
err = Console(stderr=True, soft_wrap=True, emoji=False)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", envvar="PROVISION_CONFIG", help="Config file (see config.example.toml).")
]
StateOption = Annotated[
    Optional[str],
    typer.Option("--state", envvar="PROVISION_STATE", help="State file, or s3://BUCKET/KEY (default: the config's "
                 "state.location, else .provision/<project>-<region>.json)."),
]
ProfileOption = Annotated[Optional[str], typer.Option("--profile", help="AWS profile (default: AWS_PROFILE or the default chain).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
DEFAULT_CONFIG = Path("provision.toml")


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    from rich.markup import escape

    # The message is text, not markup: it may quote a log line or an AWS message with [brackets] in it.
    err.print(f"[red]Error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


@contextmanager
def handled() -> Iterator[None]:
    """Turn every known failure into one clear message and the right exit code."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )
    from botocore.parsers import ResponseParserError

    from provisioner.commands.scale import BadArguments
    from provisioner.config import ConfigError
    from provisioner.engine import Interrupted
    from provisioner.errors import BadInput, ProvisionError, aws_failure, one_line
    from provisioner.state import StateError, StateInvalid

    try:
        yield
    except (typer.Exit, typer.Abort, click.ClickException):
        raise  # an exit code already decided, or a usage error click reports itself
    except ConfigError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    except BadArguments as exc:
        raise fail(f"scale: {exc}", EXIT_BAD_INPUT) from None
    except Interrupted as exc:
        raise fail(str(exc), EXIT_INTERRUPTED) from None
    except (BadInput, StateInvalid) as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    except (ProvisionError, StateError) as exc:
        raise fail(str(exc)) from None
    except NoCredentialsError:
        raise fail(
            "No AWS credentials found. Configure a profile (AWS_PROFILE), or start the embedded emulator "
            "with 'provision emulator start' and run the exports it prints."
        ) from None
    except EndpointConnectionError as exc:
        raise fail(f"{exc}. If you use the embedded emulator, start it: 'provision emulator start'.") from None
    except (ClientError, BotoCoreError) as exc:
        raise fail(f"{aws_failure('call AWS', exc)}. Check your credentials, region and permissions.") from None
    except ResponseParserError as exc:  # not a BotoCoreError: an endpoint that is no AWS API (a proxy page)
        raise fail(f"the endpoint's answer is not an AWS API response ({one_line(str(exc), 200)}). Check "
                   "AWS_ENDPOINT_URL and any proxy in between.") from None
    except KeyboardInterrupt:
        raise fail("Interrupted. What was created is in the state; run the same command again to resume.",
                   EXIT_INTERRUPTED) from None
    except Exception as exc:
        # Last resort: a bug must still end in one line, not a traceback, unless asked for one.
        if os.environ.get("PROVISION_DEBUG"):
            raise
        raise fail(f"unexpected error: {type(exc).__name__}: {exc}. This is a bug in provision: run again with "
                   "PROVISION_DEBUG=1 to see where, and report it.") from None


def load(config_path: Path, profile: str | None, check=None):
    """The validated config and an AWS session; `check(config)` vets arguments before any session exists."""
    from provisioner.aws.session import Aws, make_session
    from provisioner.aws.waiter import poll_scale
    from provisioner.config import load_config

    config = load_config(config_path)
    if check:
        check(config)
    poll_scale()  # read at each wait: a bad value must be refused here, before the first change, not at a wait
    aws = Aws(make_session(profile), config.aws.max_attempts)
    aws.check_reachable()
    return config, aws
