"""Where a state lives: a local file, or s3://BUCKET/KEY (parsed here without importing boto3)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from state.store import StateInvalid

# S3's bucket naming rules (3-63 lower-case letters, digits, dots and hyphens), then a non-empty key.
S3_URL = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>\S.*)$")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def beside(self, suffix: str) -> S3Location:
        """An object next to this one: the key with `suffix` added."""
        return S3Location(self.bucket, self.key + suffix)


def is_s3_url(text: str) -> bool:
    return text.startswith("s3://")


def parse_s3_url(text: str) -> S3Location:
    match = S3_URL.match(text)
    if not match or match["key"].endswith("/"):
        raise StateInvalid(f"{text!r} is not an S3 state location: give s3://BUCKET/KEY, like "
                           "s3://my-team-state/temporal/eu-west-1.json")
    return S3Location(match["bucket"], match["key"])


def create_bucket_commands(bucket: str, region: str) -> str:
    """The AWS CLI commands that make a versioned state bucket (us-east-1 takes no LocationConstraint)."""
    where = "" if region == "us-east-1" else f" --create-bucket-configuration LocationConstraint={region}"
    return (f"aws s3api create-bucket --bucket {bucket} --region {region}{where}\n"
            f"  aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled")
