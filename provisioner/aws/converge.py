"""Find-or-create, converge and destroy for any resource kind.

A step finds its resource by the ID in the state first, then by its tags (more
than one match is an error, never a guess), and only then creates it with the
tags set in the same call. The tags of a resource it finds are restored where they
drifted: they are what finds it again when the state is lost.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, TypeVar

from botocore.exceptions import ClientError

from provisioner.aws.kinds import KINDS, Desired, Kind, Lifecycle, changes
from provisioner.aws.named_kinds import NamedKind, tag_dict
from provisioner.aws.run_pool import side_by_side
from provisioner.aws.waiter import call_with_retry, look_a_few_times, wait_for
from provisioner.aws.waiter import create_without_twins as create_without_twins  # where the steps import it from
from provisioner.errors import ProvisionError, aws_failure
from provisioner.naming import TAG_KEY, TAG_STEP

T = TypeVar("T")


def live(ctx, kind: Kind, resource_id: str) -> dict | None:
    """The live description of a recorded resource, read once per run (provisioner/aws/reads.py).

    Kinds that can describe many resources in one call (`get_many`) describe every recorded resource of
    the kind at once, whichever step recorded it: a no-op run makes one call per kind, not one per
    resource (and, in that call, what a step reads every run beside them: `read_with`). A recorded resource of a
    kind with `lookup_untagged` is described without its tags, which come with every other recorded resource's
    in one call (live_tags). Never use it to poll: a cached answer does not change until the run writes to the
    service.
    """
    recorded = tuple(ctx.state.ids_of_kind(kind.kind))
    also = tuple(getattr(kind, "read_with", ()))  # read in the same call (an AWS public SSM parameter)
    batch = recorded + also
    if kind.batched and resource_id in batch and (len(batch) > 1 or resource_id in also):
        described = ctx.aws.read(kind.service, ("get_many", kind.kind, batch),
                                 lambda: kind.get_many(ctx.aws, list(batch)))
        if described is not None and resource_id in described:
            return described[resource_id]
        if resource_id in also:
            return None  # not this tool's: its lookup (with the tags of a resource of ours) is no question to ask
        # One of them is gone (EC2 then refuses the whole batch), or reads lag a write: ask alone.
    if isinstance(kind, NamedKind) and kind.lookup_untagged and resource_id in recorded:
        # Without its tags: the run reads those of every recorded resource in one call (live_tags).
        return ctx.aws.read(kind.service, ("untagged", kind.kind, resource_id),
                            lambda: kind.get(ctx.aws, resource_id, untagged=True))
    return ctx.aws.read(kind.service, ("get", kind.kind, resource_id), lambda: kind.get(ctx.aws, resource_id))


def look_before_start(ctx, kind: Kind, key: str, name: str | None) -> list[dict]:
    """`kind.find` for the resource `key`, asked by the preflight (Step.check_names: is its name free?) before
    the run writes anything. The answer is set aside for the step's own first look (`ensure`): only that step
    makes the resource, so nothing the run writes in between can change it, and a resource left by a run that
    stopped after creating it is seen by both. Used once: any later look asks AWS again."""
    matches = kind.find(ctx.aws, ctx.naming, key, name)
    ctx.aws.reads.set_aside(("find", kind.kind, key, name), matches)
    return matches


def ensure(
    ctx,
    kind: Kind,
    key: str,
    create: Callable[[], dict | None],
    detail: str = "",
    name: str | None = None,
    attributes_of: Callable[[dict], dict] | None = None,
    **attributes: Any,
) -> dict | None:
    """The resource `key` of this step: found by state ID, then by tags (or `name`), else created and recorded.

    `create` returns the live item, or None when a read right after its write does not see it yet: it is then
    looked for by tags (or `name`). `attributes` (and `attributes_of(item)`) are recorded beside the ID for
    later steps to read.
    Returns the live description, or None in a plan when it does not exist yet.
    """
    recorded_id = ctx.state.id_of(ctx.step, key)
    item = live(ctx, kind, recorded_id) if recorded_id else None
    if item is not None and not _belongs(ctx, kind, item, key):
        # An account-wide resource recorded but not this region's (a role from before region-named IAM,
        # which another region's stack may share): left alone, this stack's own is found or created.
        item = None
    if item is None:
        matches = ctx.aws.reads.take_aside(("find", kind.kind, key, name))
        if matches is None:
            matches = kind.find(ctx.aws, ctx.naming, key, name)
        if len(matches) > 1:
            ids = ", ".join(kind.id_of(m) for m in matches)
            raise ProvisionError(
                f"Found {len(matches)} {kind.noun}s tagged as {ctx.naming.name(key)} ({ids}); expected one. "
                "Delete the extra ones, then run again."
            )
        item = matches[0] if matches else None
    if item is None:
        def lookup() -> dict | None:
            found = kind.find(ctx.aws, ctx.naming, key, name)
            return found[0] if len(found) == 1 else None

        def made() -> dict:
            item = create() or look_a_few_times(lookup)
            if item is None:
                raise ProvisionError(f"{kind.noun} {key} was created but cannot be read back yet; run the command "
                                     "again (it is found by its tags: no twin is made).")
            return item

        item = ctx.change("create", kind.noun, key, detail,
                          act=lambda: create_without_twins(made, lookup, f"{kind.noun} {key}"))
        if item is None:
            return None
    else:
        reconcile_tags(ctx, kind, key, item)
    if not ctx.dry_run:
        derived = attributes_of(item) if attributes_of else {}
        ctx.record(key, kind.id_of(item), kind=kind.kind, **attributes, **derived)
    return item


def converge(
    ctx,
    kind: Lifecycle,
    key: str,
    spec: dict[str, Any] | None = None,
    name: str | None = None,
    inputs: dict[str, Any] | None = None,
    detail: str = "",
    attributes_of: Callable[[dict], dict] | None = None,
    before_create: Callable[[], Any] | None = None,
    on_unchanged: Callable[[dict], Any] | None = None,
    after_replace: Callable[[dict], Any] | None = None,
    **attributes: Any,
) -> dict | None:
    """The resource `key`, as described: found (state ID, then tags or `name`) or created by its kind with the
    step's tags and an idempotency token, its tags restored, and the fields of `spec` that differ from the
    live ones updated in place by the kind (one "update" change naming them). What a step declares:

        converge(ctx, LOG_GROUP, "log-history", name="/provision/demo/history", spec={"retentionInDays": 30})

    `before_create`: what only a create waits for (the NAT gateway's address, freed by a deleted one).
    `on_unchanged(item)`: called when the live resource was read and holds the spec, for a step that remembers
    so (a launch template's version, recorded with its data's digest, is not read again).
    A kind that AWS never changes (`update_replaces`: a task definition) is updated by a new resource in the old
    one's place: a plan says later steps will read its ID after apply (ctx.will_replace); the new one is recorded
    under the key as soon as it exists, then `after_replace(new item)` runs within the same change (the older
    revisions retired). Returns the live item: the new one once replaced (None in a plan, for what does not
    exist yet).
    """
    make = kind.create
    if make is None:
        raise TypeError(f"{kind.noun}: converge() needs a kind with create")
    desired = Desired(key, name, kind.desired_tags(ctx.naming, ctx.step, key), ctx.naming.client_token(key), spec or {},
                      inputs or {}, ctx.config.timeouts)
    what = f"{kind.noun} {name or key}"
    def create() -> dict | None:
        if before_create:
            before_create()
        return _refused_as(f"create {what}", lambda: make(ctx.aws, desired))

    item = ensure(ctx, kind, key, create, detail=detail or name or "", name=name, attributes_of=attributes_of,
                  **attributes)
    if item is None or not desired.spec:
        return item
    current = kind.settings(ctx.aws, item) if kind.settings else {}
    differing = changes(current, desired.spec)
    update = kind.update
    fixed = list(differing) if update is None else [f for f in differing if f in kind.fixed]
    if fixed:
        what_differs = "; ".join(f"{f} {current.get(f)} where {differing[f]} is asked for" for f in fixed)
        raise ProvisionError(
            f"The {kind.noun} {key} ({kind.id_of(item)}) has {what_differs}, and AWS cannot change that in place. "
            f"Put the config back, or delete the {kind.noun} (or run 'provision destroy') and run 'provision up' "
            "to rebuild it.")
    if differing and update and kind.update_replaces:
        ctx.will_replace(key)

        def replace() -> dict:
            new = _refused_as(f"update {what}", lambda: update(ctx.aws, item, differing, desired))
            if new is None:
                raise TypeError(f"{kind.noun}: an update that replaces must return the new resource")
            derived = attributes_of(new) if attributes_of else {}
            ctx.record(key, kind.id_of(new), kind=kind.kind, **attributes, **derived)
            if after_replace:
                after_replace(new)
            return new

        return ctx.change("update", kind.noun, key, "new revision: " + ", ".join(differing), act=replace) or item
    if differing and update:  # without update, every difference was refused above
        ctx.change("update", kind.noun, key, ", ".join(differing),
                   act=lambda: _refused_as(f"update {what}", lambda: update(ctx.aws, item, differing, desired)))
    elif on_unchanged:
        on_unchanged(item)
    return item


def _refused_as(action: str, call: Callable[[], T]) -> T:
    """An AWS refusal of a kind's create or update, as one message naming what was being done."""
    try:
        return call()
    except ClientError as exc:
        raise aws_failure(action, exc) from exc


def tag_drift(desired: dict[str, str], current: dict[str, str]) -> dict[str, str]:
    """The tool's tags that are missing or hold another value; tags the user added are no concern of it."""
    return {k: v for k, v in desired.items() if current.get(k) != v}


def reconcile_tags(ctx, kind: Kind, key: str, item: dict) -> None:
    """Restore the project's tags (from naming: whatever set the tool creates with) on a resource this step found.

    Found by the state's ID, it is ours even when its Project, ManagedBy or ProvisionKey were edited to
    another's: the state is the truth while it exists, and the restored tags are what finds the resource
    again once it is lost. Found by its tags, only what else drifted (Name, ProvisionStep) is restored.
    """
    desired = kind.desired_tags(ctx.naming, ctx.step, key)
    current = live_tags(ctx, kind, item)
    drift = tag_drift(desired, current)
    if not drift:
        return
    detail = "restore tags: " + ", ".join(
        f"{k}={v} (was {current[k]})" if k in current else f"{k}={v} (missing)" for k, v in drift.items())

    def restore() -> None:
        kind.write_tags(ctx.aws, item, drift)
        if getattr(kind, "tag_arn", None):
            ctx.aws.reads.wrote(tagging_event_name(ctx.aws))  # the run's read of those tags is stale now

    ctx.change("update", kind.noun, key, detail, act=restore)


TAGGING = "resourcegroupstaggingapi"


def tagging_event_name(aws) -> str:
    return aws.client(TAGGING).meta.service_model.service_id.hyphenize()


def live_tags(ctx, kind: Kind, item: dict) -> dict[str, str]:
    """The resource's tags: from its description, or for kinds whose batched describe carries none (log
    groups, image repositories, SSM parameters; a recorded task definition is not described at all) and kinds
    whose service answers them only to a call of their own (KMS keys, SNS topics, Backup vaults and plans,
    OpenSearch domains, Cloud Map namespaces: `lookup_untagged`), from the run's one read of every recorded
    one's tags."""
    tag_arn = getattr(kind, "tag_arn", None)
    if tag_arn is None or "_tags" in item:
        return kind.tags_of(item)
    resource_id = kind.id_of(item)
    tags = recorded_tags(ctx).get(tag_arn(ctx.naming, ctx.aws.account_id, resource_id))
    if tags is None:
        # Not in that answer (the Tagging API's index lags a new resource, and its reference says GetResources
        # leaves out a resource without tags, such as one whose tags were all removed): ask the service itself.
        described = kind.get(ctx.aws, resource_id)
        return kind.tags_of(described) if described else {}
    return tags


def recorded_tags(ctx) -> dict[str, dict[str, str]]:
    """Tags by ARN of every recorded resource of the kinds with `tag_arn`, read once per run with the Resource
    Groups Tagging API: GetResources with a ResourceARNList takes up to 100 ARNs of any service and no
    pagination parameters, and answers for the tagged ones of any service: "All tagged resources, whether the
    tagging used the Resource Groups Tagging API or not, are returned by the Get* operation" (botocore's model of
    GetResources, ResourceTypeFilters). Every resource this tool makes is tagged at create. One call where
    ListTagsForResource (ListTags, ListResourceTags) takes one per resource; one missing from the answer is
    asked alone (live_tags)."""
    arns = tuple(sorted(
        tag_arn(ctx.naming, ctx.aws.account_id, resource_id)
        for kind in KINDS.values() if (tag_arn := getattr(kind, "tag_arn", None))
        for resource_id in ctx.state.ids_of_kind(kind.kind)
    ))

    def read() -> dict[str, dict[str, str]]:
        tagging = ctx.aws.client(TAGGING)
        found: dict[str, dict[str, str]] = {}
        for start in range(0, len(arns), 100):
            answer = tagging.get_resources(ResourceARNList=list(arns[start:start + 100]))
            found |= {m["ResourceARN"]: tag_dict(m["Tags"]) for m in answer["ResourceTagMappingList"]}
        return found

    return ctx.aws.read(TAGGING, ("tags", arns), read) if arns else {}


def _belongs(ctx, kind: Kind, item: dict, key: str) -> bool:
    """Only account-wide kinds (IAM) can be another region's; every regional resource is this region's.

    One recorded under this region's own name (Naming.global_name) is this stack's whatever its tags now
    say: the state is the truth while it exists (and reconcile_tags restores them).
    """
    belongs = getattr(kind, "belongs", None)
    if belongs is None or belongs(ctx.naming, item):
        return True
    return kind.id_of(item).rsplit("/", 1)[-1] == ctx.naming.global_name(key)


def _tagged(ctx, kind: Kind) -> Iterator[tuple[str, dict]]:
    """(logical key, item) for every live resource of `kind` tagged for this project and step."""
    for item in kind.find(ctx.aws, ctx.naming):
        tags = kind.tags_of(item)
        if tags.get(TAG_STEP) == ctx.step:
            yield tags.get(TAG_KEY, "?"), item


def step_inventory(ctx, kinds: list[Kind]) -> list[tuple[str, str, str]]:
    """Every live resource of these kinds tagged for this project and step, as (key, kind, id)."""
    return [(key, kind.kind, kind.id_of(item)) for kind in kinds for key, item in _tagged(ctx, kind)]


def owned(ctx, kind: Kind) -> dict[str, tuple[str, dict]]:
    """Live resources of `kind` this step owns, by ID: recorded in the state or found by tags.

    Records of resources that are gone are dropped from the state on the way.
    """
    found: dict[str, tuple[str, dict]] = {}
    records = [(key, record) for key, record in ctx.state.step_records(ctx.step).items() if record.get("kind") == kind.kind]
    described = side_by_side(records, lambda entry: live(ctx, kind, entry[1]["id"]))
    for (key, record), item in zip(records, described, strict=True):
        if item is None or not _belongs(ctx, kind, item, key):
            # Gone, or another region's account-wide resource (never deleted from here): not this stack's.
            ctx.state.forget(ctx.step, key)
        else:
            found[record["id"]] = (key, item)
    for key, item in _tagged(ctx, kind):
        found.setdefault(kind.id_of(item), (key, item))
    return found


def destroy_kind(
    ctx,
    kind: Kind,
    before_delete: Callable[[dict], Any] | None = None,
    retry_dependency: float = 0,
) -> list[str]:
    """Delete every resource of `kind` this step owns: recorded in the state or found by tags.

    With `retry_dependency`, a DependencyViolation (a dependent still going away) is retried that many seconds.
    """
    targets = owned(ctx, kind)

    def delete(target: tuple[str, tuple[str, dict]]) -> str:
        resource_id, (key, item) = target

        def act() -> None:
            if before_delete:
                before_delete(item)
            if retry_dependency:
                call_with_retry(
                    lambda: kind.delete(ctx.aws, resource_id),
                    retry_codes=("DependencyViolation",), timeout=retry_dependency,
                )
            else:
                kind.delete(ctx.aws, resource_id)

        ctx.change("delete", kind.noun, key, resource_id, act=act)
        if not ctx.dry_run:
            ctx.state.forget(ctx.step, key)
        return resource_id

    # Resources of one kind do not depend on each other: deleted side by side.
    return ctx.each(sorted(targets.items(), key=lambda t: t[1][0]), delete)


def wait_deleted(ctx, kind: Kind, resource_ids: list[str], timeout: float | None = None) -> None:
    """Wait until each deleted resource is gone (default: the config's default timeout)."""
    def gone(resource_id: str) -> None:
        ctx.say(f"waiting for {kind.noun} {resource_id} to be deleted")
        wait_for(
            f"{kind.noun} {resource_id} to be deleted",
            lambda: True if kind.get(ctx.aws, resource_id) is None else None,
            timeout=timeout or ctx.config.timeouts.default,
        )

    side_by_side(resource_ids, gone)
