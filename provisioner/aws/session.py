"""The one session factory: every AWS client comes from here.

Credentials, profile, region and endpoint follow boto3's own chain
(AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ~/.aws/config), so the tool runs
unchanged against AWS, the embedded emulator or any compatible endpoint.
"""
from __future__ import annotations

import functools
import os
import re
import threading
from typing import Callable, TypeVar

import boto3
import botocore.config
import botocore.loaders
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

from provisioner.aws.reads import RunReads
from provisioner.aws.run_pool import MAX_CONCURRENT_CALLS
from provisioner.errors import AmbiguousCreate, BadInput, ProvisionError

# Calls that make something new: a blind resend after a lost answer could make a second one.
CREATE_PREFIXES = ("Create", "Allocate", "Register", "Run", "Request")
# 5xx answers that say the call was not processed (throttled): safe for botocore to resend.
NOT_PROCESSED_CODES = ("Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
                       "RequestThrottled", "SlowDown")
# The user agent app ID of the calls that keep the tool's own books (the state in S3, the project lock), not
# the stack's: CloudTrail shows it, and whoever counts the stack's calls can leave these out.
BOOKKEEPING_APPID = "provision-state"


R = TypeVar("R")


class CallLimit:
    """At most `size` HTTP requests of one client on the wire at once, whichever thread sends them.

    One per client: the run's pool (run_pool.py) runs at most as many actions as a client keeps
    connections, but requests also go out from outside its actions (the command's own thread, checking
    the release while the reads ahead run; commands that open no run), and one request more than the pool
    holds is not a wait but a connection opened, then discarded with urllib3's warning on the terminal. A
    slot is held only while one request is on the wire, never while waiting for other work, so it cannot
    deadlock with anything."""

    def __init__(self, size: int):
        self._slots = threading.BoundedSemaphore(size)

    def bound(self, send: Callable[..., R]) -> Callable[..., R]:
        def bounded(*args, **kwargs) -> R:
            with self._slots:
                return send(*args, **kwargs)
        return bounded


class Aws:
    """Clients for one account and region, with botocore's standard retries configured explicitly."""

    def __init__(self, session: boto3.Session, max_attempts: int = 10):
        if not session.region_name:
            raise BadInput(
                "No AWS region is set. Set AWS_REGION (or AWS_DEFAULT_REGION), or give your profile a region."
            )
        check_region(session.region_name)
        self.session = session
        # Adaptive mode is standard mode (throttling and 5xx retried with jittered backoff) plus a
        # client-side rate limiter, so calls made side by side slow down when AWS throttles instead of
        # failing (botocore retries.adaptive). The tool's own retries (waiter.py) cover only
        # eventual-consistency codes.
        self._config = botocore.config.Config(
            retries={"mode": "adaptive", "max_attempts": max_attempts},
            max_pool_connections=MAX_CONCURRENT_CALLS,
            connect_timeout=10,
            read_timeout=60,
            user_agent_appid="provision",
        )
        # For questions whose failure is itself the answer (is this API here at all?): fail in seconds.
        self._probe_config = botocore.config.Config(
            retries={"mode": "standard", "max_attempts": 2}, connect_timeout=3, read_timeout=10,
            user_agent_appid="provision",
        )
        self._clients: dict[str, object] = {}
        self._account: str | None = None
        self._lock = threading.Lock()
        # First in line, before botocore's own retry handler (clients copy the session's handlers when made).
        session.events.register_first("needs-retry", no_blind_resend)
        self.reads = RunReads()
        session.events.register("before-call", self.reads.on_call)
        session.events.register("after-call", self.reads.on_call)

    @property
    def region(self) -> str:
        return self.session.region_name

    @property
    def account_id(self) -> str:
        with self._lock:
            if self._account is None:
                self._account = self._identity()
            return self._account

    def _identity(self) -> str:
        """STS GetCallerIdentity, with a short connect timeout: an unreachable endpoint fails in seconds."""
        fix = ("set AWS_ENDPOINT_URL (or the profile's endpoint_url) to a URL like "
               "https://sts.eu-west-1.amazonaws.com or http://127.0.0.1:4566, or unset it.")
        try:
            sts = self.session.client("sts", config=self._probe_config)
        except ValueError as exc:  # botocore's "Invalid endpoint: ..." for an endpoint URL it cannot use
            raise BadInput(f"{exc}: {fix}") from None
        # botocore takes any scheme (ftp://...) and fails only when it sends: AWS APIs are HTTP(S)
        if not re.match(r"https?://", sts.meta.endpoint_url, re.IGNORECASE):
            raise BadInput(f"Invalid endpoint: {sts.meta.endpoint_url} is not an http:// or https:// URL: {fix}")
        try:
            return sts.get_caller_identity()["Account"]
        except ResponseParserError:
            raise ProvisionError(f"{sts.meta.endpoint_url} answered, but not as an AWS API does (its answer is not "
                                 "an STS response). Check AWS_ENDPOINT_URL: it must point at AWS or the emulator "
                                 "('provision emulator start').") from None
        except (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError, ReadTimeoutError) as exc:
            endpoint = sts.meta.endpoint_url
            hint = (" The embedded emulator is not running there: start it with 'provision emulator start' and run "
                    "the exports it prints." if re.match(r"https?://(127\.0\.0\.1|localhost)[:/]", endpoint) else
                    " Check the network, AWS_ENDPOINT_URL and AWS_REGION.")
            raise ProvisionError(f"AWS cannot be reached at {endpoint} ({type(exc).__name__}).{hint}") from None

    def check_reachable(self) -> str:
        """The first call of every command: who these credentials are, and that AWS answers at all."""
        return self.account_id

    def read(self, service: str, key, load):
        """A read shared by the whole run (provisioner/aws/reads.py) until the run writes to `service`."""
        event_name = self.client(service).meta.service_model.service_id.hyphenize()
        return self.reads.read(event_name, key, load)

    def client(self, service: str):
        with self._lock:
            if service not in self._clients:
                self._clients[service] = limited(self.session.client(service, config=self._config))
            return self._clients[service]

    def bookkeeping_client(self, service: str):
        """A client for the state and the lock: the same settings, marked with BOOKKEEPING_APPID."""
        with self._lock:
            key = f"bookkeeping:{service}"
            if key not in self._clients:
                self._clients[key] = limited(self.session.client(
                    service, config=self._config.merge(botocore.config.Config(user_agent_appid=BOOKKEEPING_APPID))))
            return self._clients[key]

    def probe_client(self, service: str):
        """A client that gives up after one retry and a 3 s connect timeout."""
        with self._lock:
            key = f"probe:{service}"
            if key not in self._clients:
                self._clients[key] = limited(self.session.client(service, config=self._probe_config))
            return self._clients[key]


def limited(client):
    """`client`, its HTTP requests bounded by a CallLimit the size of its connection pool. The one place that
    sends them is its endpoint's HTTP session (botocore's URLLib3Session.send), below botocore's retries and
    event hooks, so every attempt takes a slot and gives it back whatever happens."""
    http = client._endpoint.http_session
    http.send = CallLimit(client.meta.config.max_pool_connections or MAX_CONCURRENT_CALLS).bound(http.send)
    return client


def no_blind_resend(response=None, operation=None, caught_exception=None, **_) -> None:
    """botocore's retry hook: a create whose answer was lost is not resent; AmbiguousCreate goes up instead.

    A dropped connection, a read timeout or a 5xx (other than throttling) may come after AWS acted. A
    connection that was never made (EndpointConnectionError, ConnectTimeoutError) sent nothing: botocore
    may retry it, as it does every other call.
    """
    if operation is None or not operation.name.startswith(CREATE_PREFIXES):
        return None
    if caught_exception is not None:
        if isinstance(caught_exception, (EndpointConnectionError, ConnectTimeoutError)):
            return None
        if isinstance(caught_exception, (ConnectionClosedError, ReadTimeoutError, HTTPClientError)):
            raise AmbiguousCreate(operation.name, type(caught_exception).__name__)
        return None
    if response is not None:
        http, parsed = response
        code = parsed.get("Error", {}).get("Code", "") if isinstance(parsed, dict) else ""
        if http.status_code >= 500 and code not in NOT_PROCESSED_CODES:
            raise AmbiguousCreate(operation.name, f"HTTP {http.status_code} {code}".strip())
    return None


def make_session(profile: str | None = None, region: str | None = None) -> boto3.Session:
    if profile is not None and not profile.strip():
        raise BadInput("--profile '': give a profile name from ~/.aws/config, or leave the option out to use "
                       "AWS_PROFILE or the default chain.")
    # AWS_REGION is what the AWS SDKs and CLI v2 document; older botocore reads only AWS_DEFAULT_REGION.
    region = region or os.environ.get("AWS_REGION") or None
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as exc:
        raise BadInput(f"{exc}. Check AWS_PROFILE or --profile against ~/.aws/config.") from None
    share_data_loader(session)
    return session


def share_data_loader(session: boto3.Session) -> None:
    """Give `session` the process's one loader of botocore's data (service models, endpoint rules), so a
    model read once is read once for every session: a new session otherwise parses again the JSON model of
    every client it makes (EC2's is megabytes; about 200 ms of CPU per session for the usual clients). The
    models are only read from, as clients of a single session already share them.

    Registered after boto3.Session is made: boto3 appends its own data path to the loader it finds then (it
    keeps that loader for its resources, which the tool does not use), and must not grow the shared one."""
    core = session._session
    core.register_component("data_loader", _data_loader(core.get_config_variable("data_path")))


@functools.cache
def _data_loader(data_path: str | None) -> botocore.loaders.Loader:
    return botocore.loaders.create_loader(data_path)


@functools.cache
def _region_patterns() -> tuple[str, ...]:
    return tuple(p["regionRegex"] for p in botocore.loaders.create_loader().load_data("partitions")["partitions"])


def check_region(region: str) -> None:
    """Refuse a region name no AWS partition has: botocore's partitions.json gives each partition's
    regionRegex (aws: ^(us|eu|ap|sa|ca|me|af|il|mx)-\\w+-\\d+$), which also admits regions newer than botocore."""
    # fullmatch: the patterns end in '$', which re.match lets through before a trailing newline ("eu-west-1\n")
    if not any(re.fullmatch(pattern, region) for pattern in _region_patterns()):
        raise BadInput(f"AWS region {region!r} is not a region name (like eu-west-1): set AWS_REGION (or the "
                       "profile's region) to a region of your account.")


def is_bookkeeping(context: dict) -> bool:
    """Whether a call (its botocore request context) was made by a bookkeeping client."""
    config = context.get("client_config")
    return getattr(config, "user_agent_appid", None) == BOOKKEEPING_APPID
