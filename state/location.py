"""Where a state lives: a local file, or s3://BUCKET/KEY (parsed here without importing boto3)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from provisioner.state.store import StateInvalid

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


# A URL scheme (RFC 3986: a letter, then letters, digits, +, - or .) of two characters or more, a colon and a
# slash (a one-letter scheme would be a Windows drive, C:/), or s3: in any case and form.
URL_LIKE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+:/|[sS]3:)")


def is_s3_url(text: str) -> bool:
    """Whether `text` is meant as a URL, and so must be s3://BUCKET/KEY: `S3://b/k`, `s3:/b/k`, `https://...` or
    `gs://...` would otherwise be taken as local paths (a directory named 'S3:'); parse_s3_url refuses them."""
    return bool(URL_LIKE.match(text))


def parse_s3_url(text: str) -> S3Location:
    match = S3_URL.match(text)
    if not match or match["key"].endswith("/"):
        raise StateInvalid(f"{text!r} is not an S3 state location: give s3://BUCKET/KEY (lower-case s3://, the only "
                           "URL a state can have), like s3://my-team-state/temporal/eu-west-1.json, or a file path")
    return S3Location(match["bucket"], match["key"])


def create_bucket_commands(bucket: str, region: str) -> str:
    """The AWS CLI commands that make a versioned state bucket (us-east-1 takes no LocationConstraint)."""
    where = "" if region == "us-east-1" else f" --create-bucket-configuration LocationConstraint={region}"
    return (f"aws s3api create-bucket --bucket {bucket} --region {region}{where}\n"
            f"  aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled")
