"""The one session factory: every AWS client comes from here.

Credentials, profile, region and endpoint follow boto3's own chain
(AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ~/.aws/config), so the tool runs
unchanged against AWS, the embedded emulator or any compatible endpoint.
"""
from __future__ import annotations

import os
import threading

import boto3
import botocore.config
from botocore.exceptions import ProfileNotFound

from provisioner.errors import ProvisionError

READ_PREFIXES = ("Describe", "List", "Get", "Search", "Lookup")


class Aws:
    """Clients for one account and region, with botocore's standard retries configured explicitly."""

    def __init__(self, session: boto3.Session, max_attempts: int = 10):
        if not session.region_name:
            raise ProvisionError(
                "No AWS region is set. Set AWS_REGION (or AWS_DEFAULT_REGION), or give your profile a region."
            )
        self.session = session
        # Standard mode retries throttling and 5xx with jittered backoff; the
        # tool's own retries (waiter.py) cover only eventual-consistency codes.
        self._config = botocore.config.Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
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

    @property
    def region(self) -> str:
        return self.session.region_name

    @property
    def account_id(self) -> str:
        with self._lock:
            if self._account is None:
                self._account = self.session.client("sts", config=self._config).get_caller_identity()["Account"]
            return self._account

    def client(self, service: str):
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.session.client(service, config=self._config)
            return self._clients[service]

    def probe_client(self, service: str):
        """A client that gives up after one retry and a 3 s connect timeout."""
        with self._lock:
            key = f"probe:{service}"
            if key not in self._clients:
                self._clients[key] = self.session.client(service, config=self._probe_config)
            return self._clients[key]


def make_session(profile: str | None = None, region: str | None = None) -> boto3.Session:
    # AWS_REGION is what the AWS SDKs and CLI v2 document; older botocore reads only AWS_DEFAULT_REGION.
    region = region or os.environ.get("AWS_REGION") or None
    try:
        return boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as exc:
        raise ProvisionError(f"{exc}. Check AWS_PROFILE or --profile against ~/.aws/config.") from None


def is_mutating(operation_name: str) -> bool:
    return not operation_name.startswith(READ_PREFIXES)
