"""The embedded AWS: moto's server on loopback, started and stopped by the tool.

`provision emulator start` runs it in the background so that successive
commands (up, status, scale, destroy) see the same emulated account. The moto
settings this stack needs are set here, in one place.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from provisioner.aws.waiter import LOCAL_BACKOFF, TimedOut, wait_for
from provisioner.errors import BadInput, ProvisionError

HOST = "127.0.0.1"
EMULATOR_MODULE = "provisioner.emulator.server"
DEFAULT_PORT = 4566
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# How long `stop` waits for the process to exit after SIGTERM (moto's server stops in well under a second),
# then after SIGKILL.
STOP_SECONDS = 10

# moto settings this stack relies on (see docs in README, "The embedded AWS").
MOTO_SETTINGS = {
    # AWS managed policies (AmazonECSTaskExecutionRolePolicy, ...) exist only with this.
    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
    # DSQL's backend is registered for two regions only; this opens the others.
    "MOTO_ALLOW_NONEXISTENT_REGION": "true",
}


def configure_moto() -> None:
    """Set moto's settings and apply the emulator patches in this process, before serving."""
    for name, value in MOTO_SETTINGS.items():
        os.environ.setdefault(name, value)
    from provisioner.emulator import patches

    patches.apply()


def serve(host: str, port: int) -> None:
    """Run the emulator in the foreground (what the background process does)."""
    configure_moto()
    from moto.server import ThreadedMotoServer

    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # server threads inherit the mask
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    signal.sigwait(stop_signals)
    # Nothing to save: the emulated account lives in this process's memory and goes with it. Exiting at once
    # spares werkzeug's graceful shutdown, which waits out its half-second poll of the listening socket.
    sys.stderr.flush()
    os._exit(0)


def info_path(state_dir: Path) -> Path:
    return state_dir / "emulator.json"


def endpoint(port: int) -> str:
    return f"http://{HOST}:{port}"


def running(state_dir: Path) -> dict | None:
    """The record of the emulator this tool started, if that very process still runs; else None.

    A record that is not ours to trust (unreadable, or naming a pid that is now another program, as
    after a reboot) is removed rather than acted on.
    """
    path = info_path(state_dir)
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
        pid, port = int(info["pid"]), int(info["port"])
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return None
    if not _is_our_emulator(pid, port):
        path.unlink(missing_ok=True)
        return None
    return info


def _is_our_emulator(pid: int, port: int) -> bool:
    """Whether `pid` is alive and is `python -m provisioner.emulator.server ... --port <port>`."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        try:
            os.kill(pid, 0)  # no /proc (macOS): the pid must at least be alive
        except (ProcessLookupError, PermissionError):
            return False
        return True
    arguments = [part.decode(errors="replace") for part in command]
    return EMULATOR_MODULE in arguments and "--port" in arguments and str(port) in arguments


def start(state_dir: Path, port: int = DEFAULT_PORT, timeout: float = 30) -> dict:
    existing = running(state_dir)
    if existing:
        return existing
    if _port_taken(port):
        raise ProvisionError(f"port {port} on {HOST} is in use; pass --port with a free one.")
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise BadInput(f"{state_dir} is a file, but the emulator keeps its record and log in a directory of that "
                       "name: move the file away.") from None
    with open(state_dir / "emulator.log", "ab") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", EMULATOR_MODULE, "--host", HOST, "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    info = {"pid": process.pid, "port": port, "endpoint": endpoint(port)}

    def ready():
        if process.poll() is not None:
            raise ProvisionError(f"the emulator exited at start; see {state_dir / 'emulator.log'}")
        return True if _healthy(port) else None

    wait_for("the embedded AWS emulator", ready, timeout=timeout, backoff=LOCAL_BACKOFF)
    info_path(state_dir).write_text(json.dumps(info))
    return info


def stop(state_dir: Path) -> bool:
    """Stop the emulator recorded in `state_dir`; returns once its process is gone and its port free, so an
    immediate `start` can take the port again."""
    info = running(state_dir)
    if not info:
        return False
    _terminate(int(info["pid"]), int(info["port"]))
    info_path(state_dir).unlink(missing_ok=True)
    return True


def _terminate(pid: int, port: int) -> None:
    def gone() -> bool | None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped if this process started it: a zombie still looks alive
        return True if not _is_our_emulator(pid, port) and not _port_taken(port) else None

    for stop_signal in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, stop_signal)
        try:
            wait_for(f"the emulator (pid {pid}) to exit", gone, timeout=STOP_SECONDS, backoff=LOCAL_BACKOFF)
            return
        except TimedOut:
            continue
    raise ProvisionError(f"the emulator (pid {pid}) did not exit, or port {port} is still in use; see "
                         f"'ps -p {pid}'.")


@dataclass(frozen=True)
class Elsewhere:
    """An emulator of this user's, found by its process rather than by a record here."""
    pid: int
    port: int
    started_in: str

    @property
    def endpoint(self) -> str:
        return endpoint(self.port)


def running_elsewhere() -> list[Elsewhere]:
    """This user's emulators, found in /proc by their command line, with the directory each was started in
    (its working directory, which holds its record): the record is relative to where `start` ran. Empty where
    there is no /proc (macOS): only the record is known there."""
    found = []
    for entry in Path("/proc").glob("[0-9]*") if Path("/proc/self").exists() else ():
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            arguments = [part.decode(errors="replace") for part in (entry / "cmdline").read_bytes().split(b"\0")]
            if EMULATOR_MODULE not in arguments or "--port" not in arguments:
                continue
            port = int(arguments[arguments.index("--port") + 1])
            found.append(Elsewhere(int(entry.name), port, os.readlink(entry / "cwd")))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not readable
    return sorted(found, key=lambda e: e.port)


def stop_on_port(state_dir: Path, port: int) -> Elsewhere | None:
    """Stop this user's emulator on `port`, wherever it was started, and drop its record there (`state_dir`
    relative to the directory it was started in)."""
    match = next((e for e in running_elsewhere() if e.port == port), None)
    if match is None:
        return None
    _terminate(match.pid, match.port)
    record = info_path(Path(match.started_in) / state_dir)
    try:
        if int(json.loads(record.read_text()).get("pid", -1)) == match.pid:
            record.unlink()
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    return match


def environment(info: dict, region: str) -> dict[str, str]:
    """What a shell needs to point boto3 (and this tool) at the emulator."""
    return {"AWS_ENDPOINT_URL": info["endpoint"], "AWS_REGION": region, "AWS_DEFAULT_REGION": region, **CREDENTIALS}


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint(port)}/moto-api/", timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((HOST, port)) == 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Run the embedded AWS emulator in the foreground.")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    serve(args.host, args.port)
