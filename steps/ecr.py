"""The ECR repositories for the server and admin-tools images `build-images` pushes (README: "Two commands").

Each scans on push, is encrypted with AES256 (S3-managed keys), expires untagged images beyond the
newest 10, and refuses to overwrite a versioned tag: IMMUTABLE_WITH_EXCLUSION with `latest` excluded,
so `<sha>-<time>` tags are fixed forever while `latest` moves. `destroy` keeps a repository that
holds images unless --delete-data.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from provisioner.aws.converge import ensure
from provisioner.aws.named_kinds import ECR_REPOSITORY
from provisioner.engine import Step, StepContext
from provisioner.errors import ProvisionError
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
        ecr = ctx.aws.client("ecr")
        for image, repository in IMAGES.items():
            key = repository_key(image)
            name = ctx.naming.repository(repository)
            found = ensure(
                ctx, ECR_REPOSITORY, key,
                lambda name=name, key=key: ecr.create_repository(
                    repositoryName=name, imageScanningConfiguration={"scanOnPush": True},
                    encryptionConfiguration=ENCRYPTION, imageTagMutability=TAG_MUTABILITY,
                    imageTagMutabilityExclusionFilters=MUTABLE_TAGS,
                    tags=ctx.naming.tag_list(self.name, key),
                )["repository"],
                detail=name, name=name, attributes_of=lambda r: {"uri": r["repositoryUri"]},
            )
            self._converge(ctx, key, name, found)

    def _converge(self, ctx: StepContext, key: str, name: str, repository: dict | None) -> None:
        ecr = ctx.aws.client("ecr")
        if repository is not None and repository.get("encryptionConfiguration", ENCRYPTION) != ENCRYPTION:
            raise ProvisionError(
                f"repository {name} is encrypted with {repository['encryptionConfiguration']}, not AES256, and ECR "
                "cannot change a repository's encryption. Delete it (with its images) or rename the project."
            )
        # A new repository gets scanning and tag mutability from CreateRepository; the lifecycle policy comes apart.
        if repository is not None and not repository.get("imageScanningConfiguration", {}).get("scanOnPush"):
            ctx.change("update", ECR_REPOSITORY.noun, key, "scan on push", act=lambda: ecr.put_image_scanning_configuration(
                repositoryName=name, imageScanningConfiguration={"scanOnPush": True}))
        if repository is not None and (repository.get("imageTagMutability"), repository.get("imageTagMutabilityExclusionFilters")) \
                != (TAG_MUTABILITY, MUTABLE_TAGS):
            ctx.change("update", ECR_REPOSITORY.noun, key, "immutable tags except latest", act=lambda: ecr.put_image_tag_mutability(
                repositoryName=name, imageTagMutability=TAG_MUTABILITY, imageTagMutabilityExclusionFilters=MUTABLE_TAGS))
        current = None
        if repository is not None:
            try:
                current = json.loads(ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"])
            except ecr.exceptions.LifecyclePolicyNotFoundException:
                current = None
        if current != LIFECYCLE_POLICY:
            ctx.change("update", ECR_REPOSITORY.noun, key, f"keep the newest {UNTAGGED_KEPT} untagged images",
                       act=lambda: ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=json.dumps(LIFECYCLE_POLICY)))

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
