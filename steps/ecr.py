"""The ECR repositories for the server and admin-tools images `build-images` pushes (README: "Two commands").

Each scans on push, is encrypted with AES256 (S3-managed keys), expires untagged images beyond the
newest 10, and refuses to overwrite a versioned tag: IMMUTABLE_WITH_EXCLUSION with `latest` excluded,
so `<sha>-<time>` tags are fixed forever while `latest` moves. `destroy` keeps a repository that
holds images unless --delete-data.
"""
from __future__ import annotations

from dataclasses import dataclass

from provisioner.aws.converge import converge
from provisioner.aws.named_kinds import ECR_REPOSITORY
from provisioner.engine import Step, StepContext
from provisioner.step_outputs import Recorded, StepOutputs

# image -> the repository's name under the project (<project>/<name>).
IMAGES = {"server": "temporal-server", "admin-tools": "temporal-admin-tools"}
UNTAGGED_KEPT = 10
# ECR user guide, lifecycle_policy_examples.md ("Filtering on image count").
LIFECYCLE_POLICY = {"rules": [{
    "rulePriority": 1,
    "description": f"Expire untagged images beyond the newest {UNTAGGED_KEPT}",
    "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": UNTAGGED_KEPT},
    "action": {"type": "expire"},
}]}
TAG_MUTABILITY = "IMMUTABLE_WITH_EXCLUSION"
MUTABLE_TAGS = [{"filterType": "WILDCARD", "filter": "latest"}]
ENCRYPTION = {"encryptionType": "AES256"}
# Each repository, as ECR describes it (named_kinds.ECR_REPOSITORY).
SPEC = {
    "imageScanningConfiguration": {"scanOnPush": True},
    "imageTagMutability": TAG_MUTABILITY,
    "imageTagMutabilityExclusionFilters": MUTABLE_TAGS,
    "encryptionConfiguration": ENCRYPTION,
    "lifecyclePolicy": LIFECYCLE_POLICY,
}


def repository_key(image: str) -> str:
    return f"repo-{image}"


@dataclass(frozen=True)
class EcrOutputs(StepOutputs):
    """The URI of each image's repository, by its name in IMAGES."""

    step = "ecr"
    repository_uris: dict[str, str]

    @classmethod
    def read(cls, recorded: Recorded) -> EcrOutputs:
        return cls({image: recorded.value(repository_key(image), "uri") for image in IMAGES})


class Ecr(Step):
    name = "ecr"
    title = "Image repositories"
    produces = EcrOutputs
    kinds = (ECR_REPOSITORY,)

    def names(self, ctx: StepContext) -> list:
        return [(ECR_REPOSITORY, repository_key(image), ctx.naming.repository(name)) for image, name in IMAGES.items()]

    def apply(self, ctx: StepContext) -> None:
        for image, repository in IMAGES.items():
            name = ctx.naming.repository(repository)
            converge(ctx, ECR_REPOSITORY, repository_key(image), name=name, spec=SPEC,
                     attributes_of=lambda r: {"uri": r["repositoryUri"]})

    def destroy(self, ctx: StepContext) -> None:
        ecr = ctx.aws.client("ecr")
        found = {r["repositoryName"]: r for r in ECR_REPOSITORY.find(ctx.aws, ctx.naming)}
        for record in ctx.state.step_records(self.name).values():
            live = ECR_REPOSITORY.get(ctx.aws, record["id"])
            if live is not None:
                found.setdefault(live["repositoryName"], live)
        for name, repository in sorted(found.items()):
            key = repository["_tags"].get("ProvisionKey", name)
            images = ecr.list_images(repositoryName=name, maxResults=1)["imageIds"]
            if images and not ctx.delete_data:
                ctx.note(f"Kept the image repository {repository['repositoryUri']}: it holds images. "
                         f"Delete it with 'provision destroy --delete-data' or: aws ecr delete-repository "
                         f"--repository-name {name} --force")
            else:
                ctx.change("delete", ECR_REPOSITORY.noun, key, name + (" and its images" if images else ""),
                           act=lambda name=name: ECR_REPOSITORY.delete(ctx.aws, name))
            if not ctx.dry_run:
                ctx.state.forget(self.name, key)

    def outputs(self, ctx: StepContext) -> dict:
        records = ctx.state.step_records(self.name)
        return {"image_repositories": {k.removeprefix("repo-"): r["uri"] for k, r in sorted(records.items())}} if records else {}
