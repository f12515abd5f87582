"""`provision grafana-secret`: create the Grafana admin secret once (README: "Using it"), for `up` to find."""
from __future__ import annotations

import json
from dataclasses import dataclass

from botocore.exceptions import ClientError

from provisioner.aws.converge import create_without_twins
from provisioner.aws.session import Aws
from provisioner.config import Config
from provisioner.errors import aws_failure, error_code
from provisioner.naming import Naming


@dataclass(frozen=True)
class GrafanaSecret:
    arn: str
    created: bool
    password: str | None  # only when the caller asked to see it


def ensure_grafana_secret(config: Config, aws: Aws, name: str | None = None, show_password: bool = False) -> GrafanaSecret:
    """Create the Grafana admin secret once, with a generated password.

    The password goes straight from Secrets Manager's generator into the secret; it is returned
    (to be printed) only when asked for, and never written anywhere else.
    """
    client = aws.client("secretsmanager")
    name = name or config.grafana.admin_secret_name
    try:
        existing = client.describe_secret(SecretId=name)
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise aws_failure(f"look up secret {name}", exc) from exc
        existing = None
    if existing:
        password = None
        if show_password:
            password = json.loads(client.get_secret_value(SecretId=name)["SecretString"])["admin_password"]
        return GrafanaSecret(existing["ARN"], False, password)
    password = client.get_random_password(PasswordLength=32, ExcludePunctuation=True)["RandomPassword"]
    def existing_arn() -> dict | None:
        try:
            return {"ARN": client.describe_secret(SecretId=name)["ARN"]}
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise

    try:
        created = create_without_twins(lambda: client.create_secret(
            Name=name, Description=f"Grafana admin login for {config.project}",
            SecretString=json.dumps({"admin_user": "admin", "admin_password": password}),
            ClientRequestToken=Naming(config.project, aws.region).client_token(f"secret/{name}")[:64],
        ), existing_arn, f"secret {name}")
    except ClientError as exc:
        raise aws_failure(f"create secret {name}", exc) from exc
    return GrafanaSecret(created["ARN"], True, password if show_password else None)
