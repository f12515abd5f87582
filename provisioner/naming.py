"""The one place that derives resource names, tags and client tokens."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

MANAGED_BY = "provision"
TAG_PROJECT = "Project"
TAG_STEP = "ProvisionStep"
TAG_KEY = "ProvisionKey"
TAG_MANAGED_BY = "ManagedBy"
# On account-wide (global) resources only, such as IAM roles: the region whose stack owns the resource.
TAG_REGION = "ProvisionRegion"
# IAM's limit on role names (roleNameType in botocore's iam model: 1 to 64); instance profile names allow 128.
GLOBAL_NAME_LIMIT = 64


@dataclass(frozen=True)
class Naming:
    project: str
    region: str
    lineage: str = ""

    def name(self, key: str) -> str:
        """Human-readable name of the resource with logical key `key`."""
        return f"{self.project}-{key}"

    def tags(self, step: str, key: str) -> dict[str, str]:
        return {
            "Name": self.name(key),
            TAG_PROJECT: self.project,
            TAG_STEP: step,
            TAG_KEY: key,
            TAG_MANAGED_BY: MANAGED_BY,
        }

    def tag_list(self, step: str, key: str) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in self.tags(step, key).items()]

    def global_name(self, key: str) -> str:
        """Name of an account-wide resource (IAM role, instance profile): <project>-<region>-<key>.

        IAM is global, so the same project in two regions needs two sets of names; the longest
        (a 20-character project, a 14-character region such as ap-southeast-4 and
        "ecs-instance-profile") is 56 characters, within IAM's 64.
        """
        name = f"{self.project}-{self.region}-{key}"
        if len(name) > GLOBAL_NAME_LIMIT:
            raise ValueError(f"{name} is longer than IAM's {GLOBAL_NAME_LIMIT} characters")
        return name

    def legacy_global_name(self, key: str) -> str:
        """The name versions before region-named IAM gave it (<project>-<key>), shared by every region."""
        return self.name(key)

    def global_tags(self, step: str, key: str) -> dict[str, str]:
        """Tags of an account-wide resource: also the region whose stack owns it, so another region's
        stack of the same project never adopts or deletes it."""
        return self.tags(step, key) | {"Name": self.global_name(key), TAG_REGION: self.region}

    def global_tag_list(self, step: str, key: str) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in self.global_tags(step, key).items()]

    def tag_filters(self, key: str | None = None) -> list[dict]:
        """EC2-style filters selecting this project's resources (one logical key if given)."""
        filters = [
            {"Name": f"tag:{TAG_PROJECT}", "Values": [self.project]},
            {"Name": f"tag:{TAG_MANAGED_BY}", "Values": [MANAGED_BY]},
        ]
        if key is not None:
            filters.append({"Name": f"tag:{TAG_KEY}", "Values": [key]})
        return filters

    def client_token(self, key: str) -> str:
        """Deterministic idempotency token, so a retried create cannot make a twin.

        The state lineage is part of it: after a full destroy the state starts a new
        lineage, so a later create is not answered with the deleted resource.
        """
        digest = hashlib.sha256(f"{self.project}/{self.region}/{self.lineage}/{key}".encode()).hexdigest()
        return f"provision-{digest[:40]}"

    @property
    def partition(self) -> str:
        if self.region.startswith("cn-"):
            return "aws-cn"
        if self.region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    def arn(self, service: str, account: str, resource: str, region: str | None = None) -> str:
        return f"arn:{self.partition}:{service}:{self.region if region is None else region}:{account}:{resource}"

    def root_arn(self, account: str) -> str:
        """The account's root user, the principal whose ECS account settings are the account's defaults."""
        return f"arn:{self.partition}:iam::{account}:root"

    def opensearch_domain(self) -> str:
        """OpenSearch allows 28 characters; the project name allows 20."""
        return f"{self.project}-vis"

    def log_group(self, service: str = "") -> str:
        """/ecs/<project>/<service>; with no service, the prefix every log group of the project shares."""
        return f"/ecs/{self.project}/{service}"

    def cluster(self) -> str:
        return self.name("cluster")

    def parameter(self, path: str) -> str:
        """An SSM parameter of the project: /<project>/<path>."""
        return f"/{self.project}/{path}"

    def lock_parameter(self) -> str:
        """The SSM parameter that is the project's lock in this region (beside a local state)."""
        return self.parameter(f"lock/{self.region}")

    def parameter_arn(self, account: str, path: str) -> str:
        """Its ARN: the name without its leading slash after 'parameter/' (SSM's ARN format)."""
        return self.arn("ssm", account, f"parameter/{self.project}/{path}")

    def repository(self, image: str) -> str:
        """ECR repository of one of the project's images: <project>/<image>."""
        return f"{self.project}/{image}"

    def state_file_name(self) -> str:
        return f"{self.project}-{self.region}.json"
