"""The state as one S3 object, shared by a team: the same document and checks as the local file, nothing
written locally.

Every write names the ETag it read (If-Match; the first write If-None-Match: *), so two writers never
overwrite each other. A write that loses the race (412 PreconditionFailed, or 409 ConditionalRequestConflict
while another write is in flight) re-reads, re-applies its own change and tries again, as the S3 User Guide
advises (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html). Every write is
encrypted on the server: SSE-S3 (AES256), or SSE-KMS with a configured key.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Callable, Collection, Iterator

from botocore.exceptions import ClientError

from provisioner.state.location import S3Location, create_bucket_commands
from provisioner.state.store import (
    MAX_STATE_BYTES,
    RecordedState,
    StateError,
    StateInvalid,
    empty_document,
    serialized,
)

LOST_RACE = ("PreconditionFailed", "ConditionalRequestConflict")
WRITE_ATTEMPTS = 5
DENIED = ("AccessDenied", "AllAccessDisabled", "Forbidden", "403")
NOT_VERSIONED = ("the bucket has no versioning, so the object's own history is all the backup there is "
                 "(a local .backup has no meaning here)")


def code_of(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def encryption(kms_key_id: str) -> dict[str, str]:
    """PutObject's server-side encryption parameters: a KMS key if one is configured, else SSE-S3."""
    if kms_key_id:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
    return {"ServerSideEncryption": "AES256"}


# What the state commands call: GetObject with a versionId (state history's restore, state restore) is
# authorised by s3:GetObjectVersion, not s3:GetObject (Amazon S3 API reference, GetObject: "To access a specific
# version of an object ... you must have the s3:GetObjectVersion permission").
STATE_PERMISSIONS = ("s3:GetObject, s3:GetObjectVersion, s3:PutObject, s3:DeleteObject, s3:ListBucketVersions and "
                     "s3:GetBucketVersioning")


def unreachable(location: S3Location, region: str, action: str, exc: ClientError) -> StateError:
    """A missing or forbidden bucket is input (exit 2, with the commands that make it); anything else a failure."""
    code = code_of(exc)
    create = create_bucket_commands(location.bucket, region)
    if code == "NoSuchBucket":
        return StateInvalid(f"the state bucket {location.bucket} does not exist ({location.url}). Create it, "
                            f"versioned so that the state keeps its history:\n  {create}")
    if code in DENIED:
        return StateInvalid(
            f"cannot {action} {location.url} ({code}): these credentials need {STATE_PERMISSIONS} on the bucket "
            f"{location.bucket}. "
            f"If it does not exist yet, create it:\n  {create}")
    message = exc.response.get("Error", {}).get("Message", "")
    return StateError(f"Failed to {action} {location.url}: {code}: {message}")


class S3StateStore(RecordedState):
    def __init__(self, location: S3Location, project: str, region: str, account: str | None, s3,
                 kms_key_id: str = "", warn: Callable[[str], None] = lambda message: None, steps: Collection[str] = ()):
        super().__init__(project, region, account, steps)
        self.location = location
        self.encryption = encryption(kms_key_id)
        self._s3 = s3
        self._warn = warn
        self._etag: str | None = None  # of the object as last read or written; None: there is none yet

    @property
    def where(self) -> str:
        return self.location.url

    @contextmanager
    def locked(self, operation: str) -> Iterator[S3StateStore]:
        """No hold of its own: every write is conditional, and mutating commands hold the project lock."""
        if not self.versioned():
            self._warn(f"{self.where}: {NOT_VERSIONED}. Turn it on: aws s3api put-bucket-versioning --bucket "
                       f"{self.location.bucket} --versioning-configuration Status=Enabled")
        self._data, self._etag = self._read()
        yield self

    def versioned(self) -> bool:
        try:
            return self._s3.get_bucket_versioning(Bucket=self.location.bucket).get("Status") == "Enabled"
        except ClientError as exc:
            raise unreachable(self.location, self.region, "read the versioning of", exc) from None

    def _read(self, version_id: str | None = None) -> tuple[dict, str | None]:
        """The state (or one version of it) and its ETag; a new, empty state if there is no object yet."""
        extra = {"VersionId": version_id} if version_id else {}
        try:
            response = self._s3.get_object(Bucket=self.location.bucket, Key=self.location.key, **extra)
        except ClientError as exc:
            if code_of(exc) == "NoSuchKey" and not version_id:
                return empty_document(self.project, self.region, self.account), None
            if code_of(exc) in ("NoSuchVersion", "InvalidArgument") and version_id:
                raise StateInvalid(f"{self.where} has no version {version_id!r}: 'provision state history' lists "
                                   "them.") from None
            raise unreachable(self.location, self.region, "read", exc) from None
        where = f"{self.where} (version {version_id})" if version_id else self.where
        recovery = ("Bring back an earlier version ('provision state history', then 'provision state restore "
                    "VERSION'), or delete the object and run again: resources are found again by their tags.")
        return self.checked(response["Body"].read(MAX_STATE_BYTES + 1), where, recovery), response["ETag"]

    def version(self, version_id: str) -> dict:
        """One earlier version of the state, checked like the current one."""
        return self._read(version_id)[0]

    def history(self) -> list[dict]:
        """The object's versions, newest first: VersionId, LastModified, Size, IsLatest."""
        if not self.versioned():
            raise StateInvalid(f"{self.where} has no history: {NOT_VERSIONED}. Turn it on for the next writes: "
                               f"aws s3api put-bucket-versioning --bucket {self.location.bucket} "
                               "--versioning-configuration Status=Enabled")
        pages = self._s3.get_paginator("list_object_versions").paginate(
            Bucket=self.location.bucket, Prefix=self.location.key)
        try:
            versions = [v for page in pages for v in page.get("Versions", []) if v["Key"] == self.location.key]
        except ClientError as exc:
            raise unreachable(self.location, self.region, "list the versions of", exc) from None
        return sorted(versions, key=lambda v: v["LastModified"], reverse=True)

    def _commit(self, updated: dict, change: Callable[[dict], None]) -> dict:
        # A state not yet stored has only a proposed lineage: the first writer's stands.
        stored = self._etag is not None
        for _ in range(WRITE_ATTEMPTS):
            updated["serial"] += 1
            condition = {"IfMatch": self._etag} if self._etag else {"IfNoneMatch": "*"}
            try:
                self._etag = self._s3.put_object(
                    Bucket=self.location.bucket, Key=self.location.key, Body=serialized(updated),
                    ContentType="application/json", **condition, **self.encryption)["ETag"]
                return updated
            except ClientError as exc:
                if code_of(exc) not in LOST_RACE:
                    raise unreachable(self.location, self.region, "write", exc) from None
            # Another writer got there first: take what it wrote, and apply this change to it again.
            current, self._etag = self._read()
            if stored and current["lineage"] != self._data["lineage"]:
                raise StateError(
                    f"{self.where} was replaced by another state (lineage {current['lineage']}) while this run "
                    "wrote to it. Run the command again: what this run made is found again by its tags.")
            updated = copy.deepcopy(current)
            change(updated)
            if updated == current:
                return current
        raise StateError(f"{self.where}: {WRITE_ATTEMPTS} writes in a row lost the race to other writers. Run the "
                         "command again.")
