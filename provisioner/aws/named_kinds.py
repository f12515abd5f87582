"""Resource kinds addressed by name rather than by a generated ID: IAM, CloudWatch Logs, ECS,
Auto Scaling, Cloud Map namespaces, Prometheus workspaces and the external Grafana secret.

Each one answers the same questions as an EC2 kind (get, find, id, tags, write tags, delete), so the
generic find-or-create in converge.py works unchanged. Items carry their tags under "_tags", except
those a batched describe of log groups, image repositories or SSM parameters returns (those services
describe no tags) and recorded task definitions (not described at all): converge.py reads the tags of
every recorded one of those at once (`tag_arn`).
A resource whose name is taken by something this project did not tag is an error, never adopted.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from botocore.exceptions import ClientError

from provisioner.aws.kinds import Desired, changes, differs, register
from provisioner.aws.propagation import ECS_ROLE, NEW_INSTANCE_PROFILE, POLICY_PRINCIPAL, until_propagated
from provisioner.aws.run_pool import side_by_side
from provisioner.aws.session import Aws
from provisioner.aws.waiter import WaitFailed, create_without_twins, wait_for
from provisioner.errors import ProvisionError, aws_failure, error_code
from provisioner.naming import (
    MANAGED_BY,
    TAG_KEY,
    TAG_MANAGED_BY,
    TAG_PROJECT,
    TAG_REGION,
    Naming,
)


def tag_dict(tags: Any) -> dict[str, str]:
    """Tags in any of AWS's shapes: [{Key, Value}], [{key, value}] or {k: v}."""
    if isinstance(tags, dict):
        return dict(tags)
    out = {}
    for tag in tags or []:
        out[tag.get("Key", tag.get("key"))] = tag.get("Value", tag.get("value"))
    return out


def with_tags(item: dict, tags: Any = None) -> dict:
    """The item with its tags under "_tags": its own Tags/tags field unless they come from another call."""
    return item | {"_tags": tag_dict(item.get("Tags", item.get("tags")) if tags is None else tags)}


def ours(naming: Naming, tags: dict[str, str], key: str | None = None, global_scope: bool = False) -> bool:
    """Tagged as this project's (and `key`'s); an account-wide resource also as this region's stack's."""
    return (
        tags.get(TAG_PROJECT) == naming.project
        and tags.get(TAG_MANAGED_BY) == MANAGED_BY
        and (key is None or tags.get(TAG_KEY) == key)
        and (not global_scope or tags.get(TAG_REGION) == naming.region)
    )


@dataclass(frozen=True)
class NamedKind:
    """A kind whose resources are looked up by name; `lookup` returns the item with "_tags", or None."""

    kind: str
    noun: str
    lookup: Callable[[Aws, str], dict | None]
    id_field: str
    remove: Callable[[Aws, str], None]
    list_all: Callable[[Aws, Naming], list[dict]] | None = None
    not_found: tuple[str, ...] = ()
    service: str = ""
    # Many by ID in one or a few calls: {id: item} of those that exist (provisioner/aws/converge.py live()).
    lookup_many: Callable[[Aws, list[str]], dict[str, dict] | None] | None = None

    # Read at the start of a run (Engine.read_ahead): the steps read it by its recorded ID.
    read_ahead: bool = True
    # The service's own tag call (item, tags to add or overwrite); None for what this tool never tags.
    tag: Callable[[Aws, dict, dict[str, str]], None] | None = None
    # For kinds whose batched describe carries no tags: the resource's ARN from (naming, account, ID),
    # by which the Resource Groups Tagging API reads the tags of them all in one call.
    tag_arn: Callable[[Naming, str, str], str] | None = None
    # For kinds with `tag_arn` whose `lookup` takes a call of its own for the tags (ListTags...): the item
    # without them. A recorded one is read so (converge.live), its tags coming with that one Tagging API call.
    lookup_untagged: Callable[[Aws, str], dict | None] | None = None
    # For a batched kind: IDs of resources not this tool's that a step reads every run, read in the same batched
    # call as the recorded ones (converge.live): the ECS-optimized AMI's public parameter with the recorded ones.
    read_with: tuple[str, ...] = ()
    # Account-wide (IAM): the same project's stacks in other regions see it too, so a stack owns only
    # those tagged with its own region (Naming.global_tags), never adopting or deleting another's.
    global_scope: bool = False
    # The lifecycle converge() drives (provisioner/aws/converge.py): `create` makes the resource from a
    # Desired (name, tags, idempotency token, spec) and returns its live item; `settings` reads the live
    # item's fields in the spec's shape; `update` applies the fields that differ ({field: desired value}, and
    # the whole Desired).
    # A kind without `update` has no field the tool changes in place; `fixed` names the fields AWS cannot
    # change in place, whose difference is refused. With `update_replaces`, AWS changes none: `update` makes a
    # new resource in the old one's place (a task definition's next revision) and returns it.
    create: Callable[[Aws, Desired], dict | None] | None = None
    settings: Callable[[Aws, dict], dict] | None = None
    update: Callable[[Aws, dict, dict, Desired], dict | None] | None = None
    fixed: tuple[str, ...] = ()
    update_replaces: bool = False

    def belongs(self, naming: Naming, item: dict) -> bool:
        """Whether this region's stack of the project owns the item (always, for a regional kind)."""
        return not self.global_scope or ours(naming, item["_tags"], global_scope=True)

    def desired_tags(self, naming: Naming, step: str, key: str) -> dict[str, str]:
        """The tags this tool gives the resource: an account-wide one's name its region too."""
        return naming.global_tags(step, key) if self.global_scope else naming.tags(step, key)

    @property
    def batched(self) -> bool:
        return self.lookup_many is not None

    def get_many(self, aws: Aws, resource_ids: list[str]) -> dict[str, dict] | None:
        if self.lookup_many is None:
            return None  # each is read alone
        try:
            return self.lookup_many(aws, resource_ids)
        except ClientError as exc:
            raise aws_failure(f"describe {self.noun}s", exc) from exc

    def get(self, aws: Aws, resource_id: str, untagged: bool = False) -> dict | None:
        """The live item, None when gone; `untagged`: without its tags, where `lookup_untagged` saves a call."""
        lookup = self.lookup_untagged if untagged and self.lookup_untagged else self.lookup
        try:
            return lookup(aws, resource_id)
        except ClientError as exc:
            if error_code(exc) in self.not_found:
                return None
            raise aws_failure(f"describe {self.noun} {resource_id}", exc) from exc

    def find(self, aws: Aws, naming: Naming, key: str | None = None, name: str | None = None) -> list[dict]:
        if name is None:
            # Kinds without a name (a DSQL cluster) are found by their tags alone.
            if self.list_all is None:
                return []
            return [i for i in self.list_all(aws, naming) if ours(naming, i["_tags"], key, self.global_scope)]
        item = self.get(aws, name)
        if item is None:
            return []
        if not ours(naming, item["_tags"], key, self.global_scope):
            owner = f" in {naming.region}" if self.global_scope else ""
            raise ProvisionError(
                f"A {self.noun} named {name} already exists but is not tagged as this project's {key}{owner}. "
                "Rename the project in the config, or delete that resource if it is a leftover."
            )
        return [item]

    def id_of(self, item: dict) -> str:
        return item[self.id_field]

    def tags_of(self, item: dict) -> dict[str, str]:
        return item["_tags"]

    def write_tags(self, aws: Aws, item: dict, tags: dict[str, str]) -> None:
        if self.tag is None:
            raise ProvisionError(f"refusing to tag {self.id_of(item)}: this {self.noun} is not this project's")
        self.tag(aws, item, tags)

    def delete(self, aws: Aws, resource_id: str) -> None:
        try:
            self.remove(aws, resource_id)
        except ClientError as exc:
            if error_code(exc) in self.not_found:
                return
            raise aws_failure(f"delete {self.noun} {resource_id}", exc) from exc


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _tag_ecs(aws: Aws, arn: str, tags: dict[str, str]) -> None:
    # ECS TagResource adds or overwrites only the tags given (ECS API reference).
    aws.client("ecs").tag_resource(resourceArn=arn, tags=_ecs_tags(tags))


def _last(arn_or_name: str) -> str:
    return arn_or_name.rsplit("/", 1)[-1]


def _batches(items: list, size: int) -> Iterator[list]:
    """ECS's describe and delete calls take a limited number of names at a time."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


# -- IAM ---------------------------------------------------------------------------------

def _get_role(aws: Aws, role: str) -> dict:
    item = aws.client("iam").get_role(RoleName=_last(role))["Role"]
    return with_tags(item)


def _list_roles(aws: Aws, naming: Naming) -> list[dict]:
    # ListRoles answers without tags; the account's role details carry them (and are read once per run).
    return [role for role in account_roles(aws).values() if role["Path"].startswith(iam_path(naming))]


def account_roles(aws: Aws) -> dict[str, dict]:
    """Every role of the account by name, with its inline and attached policies, in pages of up to 1,000
    (GetAccountAuthorizationDetails), read once per run: one call where GetRole, ListRolePolicies,
    GetRolePolicy and ListAttachedRolePolicies per role take four or more. Items keep RolePolicyList and
    AttachedManagedPolicies. Service-linked roles are among them. (IAM API reference: RoleDetail holds
    RolePolicyList, AttachedManagedPolicies and Tags; GetAccountAuthorizationDetails MaxItems is 1 to 1,000.)"""
    def read() -> dict[str, dict]:
        pages = aws.client("iam").get_paginator("get_account_authorization_details").paginate(
            Filter=["Role"], PaginationConfig={"PageSize": 1000})
        return {role["RoleName"]: with_tags(role) for page in pages for role in page["RoleDetailList"]}
    return aws.read("iam", "authorization-details", read)


def _roles_by_arn(aws: Aws, arns: list[str]) -> dict[str, dict]:
    wanted = set(arns)
    return {role["Arn"]: role for role in account_roles(aws).values() if role["Arn"] in wanted}


def _delete_role(aws: Aws, role: str) -> None:
    iam = aws.client("iam")
    name = _last(role)
    for policy in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
    for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
    for profile in iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]:
        iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
    iam.delete_role(RoleName=name)


def _get_profile(aws: Aws, profile: str) -> dict:
    item = aws.client("iam").get_instance_profile(InstanceProfileName=_last(profile))["InstanceProfile"]
    return with_tags(item)


def _list_profiles(aws: Aws, naming: Naming) -> list[dict]:
    pages = aws.client("iam").get_paginator("list_instance_profiles").paginate(PathPrefix=iam_path(naming))
    return [_get_profile(aws, p["InstanceProfileName"]) for page in pages for p in page["InstanceProfiles"]]


def _delete_profile(aws: Aws, profile: str) -> None:
    iam = aws.client("iam")
    name = _last(profile)
    for role in iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"]:
        iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=role["RoleName"])
    iam.delete_instance_profile(InstanceProfileName=name)


def iam_path(naming: Naming) -> str:
    """Every role and profile lives under /<project>/, so the project's IAM can be listed (every region's
    stack of the project shares the path; the ProvisionRegion tag tells them apart)."""
    return f"/{naming.project}/"


def _create_role(aws: Aws, desired: Desired) -> dict:
    """The role with its trust policy, then its managed and inline policies: the item as IAM now holds it."""
    iam = aws.client("iam")
    spec = desired.spec
    role = iam.create_role(
        RoleName=desired.name, AssumeRolePolicyDocument=json.dumps(spec["AssumeRolePolicyDocument"]),
        Tags=desired.tag_list(), **desired.inputs,
    )["Role"]
    for arn in spec["AttachedManagedPolicies"]:
        iam.attach_role_policy(RoleName=desired.name, PolicyArn=arn)
    for inline in spec["RolePolicyList"]:
        iam.put_role_policy(RoleName=desired.name, PolicyName=inline["PolicyName"],
                            PolicyDocument=json.dumps(inline["PolicyDocument"]))
    return with_tags(role, desired.tags) | {
        "AttachedManagedPolicies": [{"PolicyArn": arn} for arn in spec["AttachedManagedPolicies"]],
        "RolePolicyList": spec["RolePolicyList"],
    }


def role_policies(managed: tuple[str, ...] | list[str], inline: dict[str, dict]) -> dict:
    """A role's policies in the shape of the account's role details (RoleDetail): the managed ones by ARN, in
    order, and the inline ones by name, in order, so that a policy too many shows as a difference too."""
    return {
        "AttachedManagedPolicies": sorted(managed),
        "RolePolicyList": [{"PolicyName": name, "PolicyDocument": inline[name]} for name in sorted(inline)],
    }


def _role_settings(aws: Aws, role: dict) -> dict:
    """A role described with the others (account_roles) carries its policies; one found alone is asked for them."""
    iam = aws.client("iam")
    name = role["RoleName"]
    if "RolePolicyList" in role:
        managed = [p["PolicyArn"] for p in role["AttachedManagedPolicies"]]
        inline = {p["PolicyName"]: p["PolicyDocument"] for p in role["RolePolicyList"]}
    else:
        managed = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]]
        inline = {policy: iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
                  for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]}
    return {"AssumeRolePolicyDocument": role.get("AssumeRolePolicyDocument", {}), **role_policies(managed, inline)}


def _update_role(aws: Aws, role: dict, changed: dict, desired: Desired) -> None:
    iam = aws.client("iam")
    name = role["RoleName"]
    if "AssumeRolePolicyDocument" in changed:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(changed["AssumeRolePolicyDocument"]))
    current = _role_settings(aws, role) if {"AttachedManagedPolicies", "RolePolicyList"} & set(changed) else {}
    if "AttachedManagedPolicies" in changed:
        attached, wanted_arns = set(current["AttachedManagedPolicies"]), set(changed["AttachedManagedPolicies"])
        for arn in sorted(wanted_arns - attached):
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        for arn in sorted(attached - wanted_arns):
            iam.detach_role_policy(RoleName=name, PolicyArn=arn)
    if "RolePolicyList" in changed:
        present = {p["PolicyName"]: p["PolicyDocument"] for p in current["RolePolicyList"]}
        wanted = {p["PolicyName"]: p["PolicyDocument"] for p in changed["RolePolicyList"]}
        for policy, document in wanted.items():
            if policy not in present or differs(present[policy], document):
                iam.put_role_policy(RoleName=name, PolicyName=policy, PolicyDocument=json.dumps(document))
        for policy in sorted(set(present) - set(wanted)):
            iam.delete_role_policy(RoleName=name, PolicyName=policy)


IAM_ROLE = register(NamedKind(
    "iam-role", "IAM role", _get_role, "Arn", _delete_role, _list_roles, ("NoSuchEntity",), "iam", _roles_by_arn,
    global_scope=True,
    tag=lambda aws, role, tags: aws.client("iam").tag_role(RoleName=role["RoleName"], Tags=tag_list(tags)),
    create=_create_role, settings=_role_settings, update=_update_role,
))
def _get_service_linked_role(aws: Aws, role: str) -> dict:
    return with_tags(aws.client("iam").get_role(RoleName=_last(role))["Role"])


def _keep_service_linked_role(aws: Aws, role: str) -> None:
    raise ProvisionError(f"refusing to delete {role}: service-linked roles belong to the account, not to this project")


# IAM answers a second create with InvalidInput ("... has been taken in this account"); moto says EntityAlreadyExists.
SERVICE_LINKED_ROLE_TAKEN = ("InvalidInput", "EntityAlreadyExists")


def create_service_linked_role(aws: Aws, desired: Desired) -> dict | None:
    """The role AWS names for the service (desired.inputs["AWSServiceName"]); made meanwhile (by the service
    itself, or a call whose answer was lost) is as good. IAM takes no tags or token for it."""
    try:
        aws.client("iam").create_service_linked_role(**desired.inputs)
    except ClientError as exc:
        if error_code(exc) not in SERVICE_LINKED_ROLE_TAKEN:
            raise aws_failure(f"create the service-linked role for {desired.inputs['AWSServiceName']}", exc) from exc
    if desired.name is None:
        raise TypeError("a service-linked role is read by the name AWS gives it")
    return SERVICE_LINKED_ROLE.get(aws, desired.name)


# Account-wide roles AWS services assume (created on demand, never deleted by this tool). Neither tagged nor
# found by tags: steps/service_roles.py reads them by the names AWS gives them.
SERVICE_LINKED_ROLE = register(NamedKind(
    "service-linked-role", "service-linked role", _get_service_linked_role, "Arn", _keep_service_linked_role,
    not_found=("NoSuchEntity",),
    service="iam",
    read_ahead=False,  # read with every role of the account (account_roles)
    create=create_service_linked_role,
))
def _create_profile(aws: Aws, desired: Desired) -> dict:
    """The profile, holding its role (a profile holds at most one): the item as IAM now holds it."""
    iam = aws.client("iam")
    profile = iam.create_instance_profile(
        InstanceProfileName=desired.name, Tags=desired.tag_list(), **desired.inputs)["InstanceProfile"]
    for role in desired.spec["Roles"]:
        iam.add_role_to_instance_profile(InstanceProfileName=desired.name, RoleName=role)
    return with_tags(profile, desired.tags) | {"Roles": [{"RoleName": role} for role in desired.spec["Roles"]]}


def _update_profile(aws: Aws, profile: dict, changed: dict, desired: Desired) -> None:
    iam = aws.client("iam")
    name = profile["InstanceProfileName"]
    for other in profile.get("Roles", []):
        iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=other["RoleName"])
    for role in changed["Roles"]:
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role)


INSTANCE_PROFILE = register(NamedKind(
    "instance-profile", "instance profile", _get_profile, "Arn", _delete_profile, _list_profiles, ("NoSuchEntity",),
    service="iam", global_scope=True,
    tag=lambda aws, profile, tags: aws.client("iam").tag_instance_profile(
        InstanceProfileName=profile["InstanceProfileName"], Tags=tag_list(tags)),
    create=_create_profile,
    settings=lambda aws, profile: {"Roles": [role["RoleName"] for role in profile.get("Roles", [])]},
    update=_update_profile,
))


# -- CloudWatch Logs ------------------------------------------------------------------

def _log_group_item(aws: Aws, group: dict) -> dict:
    arn = group["arn"].removesuffix(":*")
    tags = aws.client("logs").list_tags_for_resource(resourceArn=arn).get("tags", {})
    return with_tags(group, tags)


def _get_log_group(aws: Aws, name: str) -> dict | None:
    groups = aws.client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    exact = [g for g in groups if g["logGroupName"] == name]
    return _log_group_item(aws, exact[0]) if exact else None


def _list_log_groups(aws: Aws, naming: Naming) -> list[dict]:
    logs = aws.client("logs")
    groups = []
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=naming.log_group()):
        groups.extend(side_by_side(page["logGroups"], lambda group: _log_group_item(aws, group)))
    return groups


def _log_groups_by_name(aws: Aws, names: list[str]) -> dict[str, dict]:
    """Recorded groups in one listing of their common prefix. Their tags are not read again: they were
    checked when each group was created or adopted, and the state names them (no other lookup trusts that)."""
    prefix = os.path.commonprefix(names)
    pages = aws.client("logs").get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix)
    wanted = set(names)
    return {g["logGroupName"]: g for page in pages for g in page["logGroups"] if g["logGroupName"] in wanted}


def _create_log_group(aws: Aws, desired: Desired) -> dict | None:
    # CreateLogGroup takes no retention: it is set at once, so no log line outlives the configured days.
    if desired.name is None:
        raise TypeError("a log group is created by its name")
    logs = aws.client("logs")
    logs.create_log_group(logGroupName=desired.name, tags=desired.tags)
    if "retentionInDays" in desired.spec:
        logs.put_retention_policy(logGroupName=desired.name, retentionInDays=desired.spec["retentionInDays"])
    return _get_log_group(aws, desired.name)


def _update_log_group(aws: Aws, group: dict, changed: dict, desired: Desired) -> None:
    aws.client("logs").put_retention_policy(logGroupName=group["logGroupName"], retentionInDays=changed["retentionInDays"])


LOG_GROUP = register(NamedKind(
    "log-group", "log group", _get_log_group, "logGroupName",
    lambda aws, name: aws.client("logs").delete_log_group(logGroupName=name),
    _list_log_groups, ("ResourceNotFoundException",), "logs", _log_groups_by_name,
    # TagResource takes the group's ARN without the ":*" DescribeLogGroups' "arn" ends with (its logGroupArn).
    tag=lambda aws, group, tags: aws.client("logs").tag_resource(
        resourceArn=group["arn"].removesuffix(":*"), tags=tags),
    tag_arn=lambda naming, account, name: naming.arn("logs", account, f"log-group:{name}"),
    create=_create_log_group,
    settings=lambda aws, group: {"retentionInDays": group.get("retentionInDays")},
    update=_update_log_group,
))


# -- Cloud Map namespace --------------------------------------------------------------

def _namespace_item(aws: Aws, namespace: dict) -> dict:
    tags = aws.client("servicediscovery").list_tags_for_resource(ResourceARN=namespace["Arn"])["Tags"]
    return with_tags(namespace, tags)


def _namespace(aws: Aws, namespace_id: str) -> dict:
    """The namespace by its ID; its tags apart (`_namespace_item`), or from the run's Tagging API read."""
    return aws.client("servicediscovery").get_namespace(Id=namespace_id)["Namespace"]


def _get_namespace(aws: Aws, id_or_name: str) -> dict | None:
    sd = aws.client("servicediscovery")
    if id_or_name.startswith("ns-"):
        return _namespace_item(aws, _namespace(aws, id_or_name))
    found = sd.list_namespaces(Filters=[{"Name": "NAME", "Values": [id_or_name], "Condition": "EQ"}])["Namespaces"]
    found = [n for n in found if n["Name"] == id_or_name]
    return _namespace_item(aws, found[0]) if found else None


def wait_operation(aws: Aws, operation_id: str, what: str, timeout: float) -> dict:
    """Cloud Map changes are asynchronous: wait for the operation, fail with its reason."""
    sd = aws.client("servicediscovery")

    def probe():
        operation = sd.get_operation(OperationId=operation_id)["Operation"]
        if operation["Status"] == "FAIL":
            raise ProvisionError(f"Failed: {what}: {operation.get('ErrorCode')}: {operation.get('ErrorMessage')}")
        return operation if operation["Status"] == "SUCCESS" else None

    return wait_for(what, probe, timeout=timeout)


def _list_namespaces(aws: Aws, naming: Naming) -> list[dict]:
    sd = aws.client("servicediscovery")
    found = []
    for page in sd.get_paginator("list_namespaces").paginate():
        found.extend(side_by_side(page["Namespaces"], lambda namespace: _namespace_item(aws, namespace)))
    return found


def _create_namespace(aws: Aws, desired: Desired) -> dict | None:
    """An HTTP namespace (Service Connect needs no DNS), once its creation has succeeded."""
    operation = aws.client("servicediscovery").create_http_namespace(
        Name=desired.name, CreatorRequestId=desired.client_token, Tags=desired.tag_list(), **desired.inputs,
    )["OperationId"]
    done = wait_operation(aws, operation, f"namespace {desired.name}", desired.timeouts.default)
    return _get_namespace(aws, done["Targets"]["NAMESPACE"])


NAMESPACE = register(NamedKind(
    "namespace", "Service Connect namespace", _get_namespace, "Id",
    lambda aws, namespace_id: aws.client("servicediscovery").delete_namespace(Id=namespace_id), _list_namespaces,
    not_found=("NamespaceNotFound",),
    service="servicediscovery",
    tag=lambda aws, namespace, tags: aws.client("servicediscovery").tag_resource(
        ResourceARN=namespace["Arn"], Tags=tag_list(tags)),
    # Its ARN: arn:aws:servicediscovery:REGION:ACCOUNT:namespace/NAMESPACE_ID (Cloud Map API reference, Namespace).
    tag_arn=lambda naming, account, namespace_id: naming.arn("servicediscovery", account, f"namespace/{namespace_id}"),
    lookup_untagged=_namespace,
    create=_create_namespace,
))


# -- ECS ---------------------------------------------------------------------------------

def _get_cluster(aws: Aws, cluster: str) -> dict | None:
    found = aws.client("ecs").describe_clusters(
        clusters=[cluster], include=["CONFIGURATIONS", "SETTINGS", "TAGS"]
    )["clusters"]
    live = [c for c in found if c["status"] in ("ACTIVE", "PROVISIONING")]
    return with_tags(live[0]) if live else None


def _list_clusters(aws: Aws, naming: Naming) -> list[dict]:
    ecs = aws.client("ecs")
    arns = [a for page in ecs.get_paginator("list_clusters").paginate() for a in page["clusterArns"]]
    found: list[dict] = []
    for batch in _batches(arns, 100):
        described = ecs.describe_clusters(clusters=batch, include=["TAGS"])["clusters"]
        found.extend(with_tags(c) for c in described if c["status"] == "ACTIVE")
    return found


def _ecs_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    """ECS takes tags as lower-case key/value pairs."""
    return [{"key": k, "value": v} for k, v in tags.items()]


CLUSTER_FIELDS = ("settings", "configuration", "serviceConnectDefaults")


def _create_cluster(aws: Aws, desired: Desired) -> dict:
    # Right after ECS's service-linked role is created, ECS may not be able to assume it yet.
    return with_tags(until_propagated(ECS_ROLE, desired.timeouts.iam_propagation, lambda: aws.client("ecs").create_cluster(
        clusterName=desired.name, tags=_ecs_tags(desired.tags), **desired.spec))["cluster"])


ECS_CLUSTER = register(NamedKind(
    "ecs-cluster", "ECS cluster", _get_cluster, "clusterArn",
    lambda aws, arn: aws.client("ecs").delete_cluster(cluster=arn), _list_clusters,
    not_found=("ClusterNotFoundException",),
    service="ecs",
    tag=lambda aws, cluster, tags: _tag_ecs(aws, cluster["clusterArn"], tags),
    create=_create_cluster,
    settings=lambda aws, cluster: {field: cluster.get(field) for field in CLUSTER_FIELDS},
    # UpdateCluster takes each of them as CreateCluster does.
    update=lambda aws, cluster, changed, desired: aws.client("ecs").update_cluster(cluster=cluster["clusterArn"], **changed),
))


def _get_capacity_provider(aws: Aws, name: str) -> dict | None:
    found = aws.client("ecs").describe_capacity_providers(capacityProviders=[_last(name)], include=["TAGS"])
    live = [c for c in found["capacityProviders"] if c.get("status", "ACTIVE") == "ACTIVE"]
    return with_tags(live[0]) if live else None


def _list_capacity_providers(aws: Aws, naming: Naming) -> list[dict]:
    found = aws.client("ecs").describe_capacity_providers(include=["TAGS"])["capacityProviders"]
    return [with_tags(c) for c in found if c.get("status", "ACTIVE") == "ACTIVE"]


def _capacity_providers_by_name(aws: Aws, names: list[str]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    # DescribeCapacityProviders takes up to 100 names but answers 10 a page (ECS API reference): 10 a call.
    for batch in _batches(names, 10):
        described = aws.client("ecs").describe_capacity_providers(capacityProviders=batch, include=["TAGS"])
        found |= {c["name"]: with_tags(c) for c in described["capacityProviders"] if c.get("status", "ACTIVE") == "ACTIVE"}
    return found


CAPACITY_PROVIDER = register(NamedKind(
    "capacity-provider", "capacity provider", _get_capacity_provider, "name",
    lambda aws, name: aws.client("ecs").delete_capacity_provider(capacityProvider=name), _list_capacity_providers,
    not_found=("ClientException", "InvalidParameterException"), service="ecs", lookup_many=_capacity_providers_by_name,
    tag=lambda aws, provider, tags: _tag_ecs(aws, provider["capacityProviderArn"], tags),
    create=lambda aws, desired: with_tags(aws.client("ecs").create_capacity_provider(
        name=desired.name, tags=_ecs_tags(desired.tags), **desired.inputs)["capacityProvider"], desired.tags),
))


def _get_task_definition(aws: Aws, family_or_arn: str) -> dict | None:
    """The latest ACTIVE revision of a family (or exactly the revision an ARN names, while ACTIVE)."""
    found = aws.client("ecs").describe_task_definition(taskDefinition=_last(family_or_arn), include=["TAGS"])
    definition = found["taskDefinition"]
    if definition.get("status") != "ACTIVE":
        return None
    return with_tags(definition, found.get("tags"))


def _list_task_definitions(aws: Aws, naming: Naming) -> list[dict]:
    pages = aws.client("ecs").get_paginator("list_task_definition_families").paginate(
        familyPrefix=naming.name(""), status="ACTIVE"
    )
    families = [f for page in pages for f in page["families"]]
    return [d for d in side_by_side(families, lambda family: TASK_DEFINITION.get(aws, family)) if d]


def active_revisions(aws: Aws) -> frozenset[str]:
    """Every ACTIVE task definition revision of the account and region, listed once per run (pages of
    100) rather than one describe per family."""
    def read() -> frozenset[str]:
        pages = aws.client("ecs").get_paginator("list_task_definitions").paginate(status="ACTIVE")
        return frozenset(arn for page in pages for arn in page["taskDefinitionArns"])
    return aws.read("ecs", "active-task-definitions", read)


def task_definition_revisions(aws: Aws, family: str, status: str = "ACTIVE") -> list[str]:
    pages = aws.client("ecs").get_paginator("list_task_definitions").paginate(familyPrefix=family, status=status)
    return [arn for page in pages for arn in page["taskDefinitionArns"]]


def revision_family(arn: str) -> str:
    """The family of a task definition revision's ARN (…:task-definition/<family>:<revision>)."""
    return _last(arn).rsplit(":", 1)[0]


def retire_older_revisions(aws: Aws, family: str, keep: str) -> None:
    """Deregister every ACTIVE revision of the family but `keep`. A service can still run a deregistered
    (INACTIVE) revision, but none can be moved onto one (ECS API reference, DeregisterTaskDefinition): a
    revision a rollback may return to is retired only once the rollout completed (provision upgrade)."""
    ecs = aws.client("ecs")
    for arn in task_definition_revisions(aws, family):
        if arn != keep:
            ecs.deregister_task_definition(taskDefinition=arn)


def _register_task_definition(aws: Aws, desired: Desired) -> dict:
    """The family's next revision: `spec` is RegisterTaskDefinition's parameters, family included. The call
    takes no client token (ECS API reference): a revision whose answer was lost is found as the family's
    latest (by its name on create; `_register_revision`'s lookup on update)."""
    definition = aws.client("ecs").register_task_definition(**desired.spec, tags=_ecs_tags(desired.tags))
    return with_tags(definition["taskDefinition"], desired.tags)


def _register_revision(aws: Aws, definition: dict, changed: dict, desired: Desired) -> dict:
    """A revision never changes: any difference is a new revision of the whole definition, which becomes the
    family's latest. Whether the older ones are deregistered is the caller's choice (retire_older_revisions)."""
    family = definition["family"]

    def registered() -> dict | None:
        latest = TASK_DEFINITION.get(aws, family)
        return latest if latest and not changes(latest, desired.spec) else None

    return create_without_twins(lambda: _register_task_definition(aws, desired), registered, f"a revision of {family}")


def _delete_task_definition(aws: Aws, arn: str) -> None:
    """Deregister every revision of the family, then delete them: AWS keeps INACTIVE ones listed otherwise."""
    ecs = aws.client("ecs")
    family = _last(arn).split(":")[0]
    for revision in task_definition_revisions(aws, family):
        ecs.deregister_task_definition(taskDefinition=revision)
    inactive = task_definition_revisions(aws, family, status="INACTIVE")
    for batch in _batches(inactive, 10):
        ecs.delete_task_definitions(taskDefinitions=batch)


TASK_DEFINITION = register(NamedKind(
    "task-definition", "task definition", _get_task_definition, "taskDefinitionArn", _delete_task_definition,
    _list_task_definitions, not_found=("ClientException",),
    service="ecs",
    read_ahead=False,  # a recorded revision is checked by its digest (steps/task_definitions.py), not described
    tag=lambda aws, definition, tags: _tag_ecs(aws, definition["taskDefinitionArn"], tags),
    tag_arn=lambda naming, account, arn: arn,  # its recorded ID is its ARN
    create=_register_task_definition,
    # DescribeTaskDefinition answers with RegisterTaskDefinition's own field names: the item is the spec's shape.
    settings=lambda aws, definition: definition,
    update=_register_revision, update_replaces=True,
))


def service_address(cluster: str, service: str) -> str:
    """How a service is named to ECS_SERVICE: "<cluster>/<service>", the tail of its ARN."""
    return f"{cluster}/{service}"


def _split_service(address_or_arn: str) -> tuple[str, str]:
    cluster, _, service = address_or_arn.split(":service/", 1)[-1].partition("/")
    return cluster, service


def _get_service(aws: Aws, address_or_arn: str) -> dict | None:
    cluster, name = _split_service(address_or_arn)
    found = aws.client("ecs").describe_services(cluster=cluster, services=[name], include=["TAGS"])["services"]
    live = [s for s in found if s["status"] in ("ACTIVE", "DRAINING")]
    return with_tags(live[0]) if live else None


def _list_services(aws: Aws, naming: Naming) -> list[dict]:
    ecs = aws.client("ecs")
    try:
        arns = [a for page in ecs.get_paginator("list_services").paginate(cluster=naming.cluster()) for a in page["serviceArns"]]
    except ClientError as exc:
        if error_code(exc) == "ClusterNotFoundException":
            return []
        raise
    found: list[dict] = []
    for batch in _batches(arns, 10):
        described = ecs.describe_services(cluster=naming.cluster(), services=batch, include=["TAGS"])
        found.extend(with_tags(s) for s in described["services"] if s["status"] in ("ACTIVE", "DRAINING"))
    return found


def _delete_service(aws: Aws, arn: str) -> None:
    cluster, name = _split_service(arn)
    aws.client("ecs").delete_service(cluster=cluster, service=name, force=True)


def _services_by_arn(aws: Aws, arns: list[str]) -> dict[str, dict]:
    by_cluster: dict[str, list[str]] = {}
    for arn in arns:
        cluster, name = _split_service(arn)
        by_cluster.setdefault(cluster, []).append(name)
    found: dict[str, dict] = {}
    for cluster, names in by_cluster.items():
        for batch in _batches(names, 10):  # DescribeServices: "up to 10 services" a call (ECS API reference)
            try:
                described = aws.client("ecs").describe_services(cluster=cluster, services=batch, include=["TAGS"])
            except ClientError as exc:
                if error_code(exc) == "ClusterNotFoundException":
                    continue
                raise
            found |= {s["serviceArn"]: with_tags(s) for s in described["services"] if s["status"] in ("ACTIVE", "DRAINING")}
    return found


def _create_service(aws: Aws, desired: Desired) -> dict:
    """The service `desired.name` ("<cluster>/<service>", service_address) with the spec's settings over the
    inputs' (a count the state records over the 0 a new service starts at). The client token makes a resent
    create return the same service, not a twin; CreateService takes "up to 36 ASCII characters" (ECS API
    reference), so the token is cut to that."""
    cluster, name = _split_service(desired.name or "")
    ecs = aws.client("ecs")
    # ECS assumes its service-linked role (perhaps made by this run) to wire the task network.
    return with_tags(until_propagated(ECS_ROLE, desired.timeouts.iam_propagation, lambda: ecs.create_service(
        cluster=cluster, serviceName=name, **(desired.inputs | desired.spec),
        tags=_ecs_tags(desired.tags), clientToken=desired.client_token[:36],
    ))["service"], desired.tags)


def _service_settings(aws: Aws, service: dict) -> dict:
    """The settings the tool gives a service, as DescribeServices reports them: Service Connect's on the
    PRIMARY deployment (the service itself does not carry it), the subnets in order."""
    primary = [d for d in service.get("deployments", []) if d.get("status") == "PRIMARY"]
    network = service.get("networkConfiguration", {}).get("awsvpcConfiguration", {})
    return {
        "taskDefinition": service.get("taskDefinition"),
        "capacityProviderStrategy": service.get("capacityProviderStrategy"),
        "networkConfiguration": {"awsvpcConfiguration": network | {"subnets": sorted(network.get("subnets", []))}},
        "placementConstraints": service.get("placementConstraints"),
        "placementStrategy": service.get("placementStrategy"),
        "deploymentConfiguration": service.get("deploymentConfiguration"),
        "enableExecuteCommand": service.get("enableExecuteCommand"),
        "serviceConnectConfiguration": primary[0].get("serviceConnectConfiguration") if primary else None,
        "desiredCount": service.get("desiredCount"),
    }


# A new capacity provider strategy, network or placement strategy only takes effect with a new deployment.
NEEDS_NEW_DEPLOYMENT = frozenset({"capacityProviderStrategy", "networkConfiguration", "placementStrategy"})


def _update_service(aws: Aws, service: dict, changed: dict, desired: Desired) -> None:
    """UpdateService takes each of these settings as CreateService does."""
    cluster, name = _split_service(desired.name or service["serviceArn"])
    aws.client("ecs").update_service(cluster=cluster, service=name,
                                     forceNewDeployment=bool(NEEDS_NEW_DEPLOYMENT & set(changed)), **changed)


ECS_SERVICE = register(NamedKind(
    "ecs-service", "ECS service", _get_service, "serviceArn", _delete_service, _list_services,
    # A draining service answers a second delete with ServiceNotActiveException: it is going already.
    not_found=("ClusterNotFoundException", "ServiceNotFoundException", "ServiceNotActiveException"),
    service="ecs", lookup_many=_services_by_arn,
    tag=lambda aws, service, tags: _tag_ecs(aws, service["serviceArn"], tags),
    create=_create_service, settings=_service_settings, update=_update_service,
))


def tasks_started_by(aws: Aws, cluster: str, started_by: str) -> list[dict]:
    """The tasks of the cluster started with `started_by`, described, stopped ones included where ECS still lists
    them; none when the cluster is gone. ListTasks gets startedBy alone: "When you specify startedBy as the
    filter, it must be the only filter that you use" (ECS API reference, ListTasks); callers match the task
    definition on what DescribeTasks answers (up to 100 tasks a call)."""
    ecs = aws.client("ecs")
    try:
        arns = [arn for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster, startedBy=started_by)
                for arn in page["taskArns"]]
        return [task for batch in _batches(arns, 100) for task in ecs.describe_tasks(cluster=cluster, tasks=batch)["tasks"]]
    except ClientError as exc:
        if error_code(exc) == "ClusterNotFoundException":
            return []
        raise aws_failure(f"list the tasks of {cluster} started by {started_by}", exc) from exc


def task_family(task: dict) -> str:
    """The task definition family of a described task (…:task-definition/<family>:<revision>)."""
    return task["taskDefinitionArn"].rsplit("/", 1)[-1].rsplit(":", 1)[0]


def still_running(task: dict) -> bool:
    """Not stopped, nor on its way there."""
    return task.get("lastStatus") != "STOPPED" and task.get("desiredStatus") != "STOPPED"


# -- Auto Scaling -------------------------------------------------------------------------

def _get_asg(aws: Aws, name: str) -> dict | None:
    found = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    live = [g for g in found if not g.get("Status")]  # "Delete in progress" means going
    return with_tags(live[0]) if live else None


def _list_asgs(aws: Aws, naming: Naming) -> list[dict]:
    paginator = aws.client("autoscaling").get_paginator("describe_auto_scaling_groups")
    groups: list[dict] = []
    for page in paginator.paginate(Filters=[{"Name": f"tag:{TAG_PROJECT}", "Values": [naming.project]}]):
        groups.extend(with_tags(g) for g in page["AutoScalingGroups"] if not g.get("Status"))
    return groups


def _asgs_by_name(aws: Aws, names: list[str]) -> dict[str, dict]:
    pages = aws.client("autoscaling").get_paginator("describe_auto_scaling_groups").paginate(AutoScalingGroupNames=names)
    return {g["AutoScalingGroupName"]: with_tags(g) for page in pages for g in page["AutoScalingGroups"] if not g.get("Status")}


def _tag_asg(aws: Aws, name: str, tags: dict[str, str]) -> None:
    """CreateOrUpdateTags, propagated at launch as at create (steps/capacity.py): new instances carry them."""
    aws.client("autoscaling").create_or_update_tags(Tags=[
        {"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": k, "Value": v, "PropagateAtLaunch": True}
        for k, v in tags.items()
    ])


ASG_FIELDS = ("LaunchTemplate", "MinSize", "MaxSize", "VPCZoneIdentifier")


def _create_asg(aws: Aws, desired: Desired) -> dict | None:
    """Every group this tool makes backs an ECS capacity provider, which adds the AmazonECSManaged tag to its
    group: created with it, propagated to every instance, so it is never a difference (as Terraform's AWS
    provider documents for aws_ecs_capacity_provider). The project's tags propagate to the instances too.
    Right after the instance profile is created, Auto Scaling may not see it yet."""
    if desired.name is None:
        raise TypeError("an Auto Scaling group is created by its name")
    tags = [{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in desired.tags.items()]
    tags.append({"Key": "AmazonECSManaged", "Value": "", "PropagateAtLaunch": True})
    until_propagated(NEW_INSTANCE_PROFILE, desired.timeouts.iam_propagation,
                     lambda: aws.client("autoscaling").create_auto_scaling_group(
                         AutoScalingGroupName=desired.name, Tags=tags, **desired.inputs, **desired.spec))
    return _get_asg(aws, desired.name)


def _asg_settings(aws: Aws, group: dict) -> dict:
    return {
        "LaunchTemplate": {k: group.get("LaunchTemplate", {}).get(k) for k in ("LaunchTemplateId", "Version")},
        "MinSize": group["MinSize"],
        "MaxSize": group["MaxSize"],
        # A set to Auto Scaling, which answers it in its own order.
        "VPCZoneIdentifier": ",".join(sorted(group["VPCZoneIdentifier"].split(","))),
    }


AUTOSCALING_GROUP = register(NamedKind(
    "autoscaling-group", "Auto Scaling group", _get_asg, "AutoScalingGroupName",
    lambda aws, name: aws.client("autoscaling").delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True),
    _list_asgs, service="autoscaling", lookup_many=_asgs_by_name,
    tag=lambda aws, group, tags: _tag_asg(aws, group["AutoScalingGroupName"], tags),
    create=_create_asg, settings=_asg_settings,
    # UpdateAutoScalingGroup takes each field as CreateAutoScalingGroup does.
    update=lambda aws, group, changed, desired: aws.client("autoscaling").update_auto_scaling_group(
        AutoScalingGroupName=group["AutoScalingGroupName"], **changed),
))


# -- Application Auto Scaling ---------------------------------------------------------------
# An ECS service's scalable target and its policies are named by the service's resource ID
# (service/<cluster>/<service>), which is deterministic: they are found by it, never by tags (the emulator
# has no tag API for them), so they are no registered kind (steps/autoscaling.py records and checks them).

ECS_SCALING = {"ServiceNamespace": "ecs", "ScalableDimension": "ecs:service:DesiredCount"}


def scalable_target(aws: Aws, resource: str) -> dict | None:
    targets = aws.client("application-autoscaling").describe_scalable_targets(
        ResourceIds=[resource], **ECS_SCALING)["ScalableTargets"]
    return targets[0] if targets else None


def scaling_policy(aws: Aws, resource: str, name: str) -> dict | None:
    policies = aws.client("application-autoscaling").describe_scaling_policies(
        ResourceId=resource, PolicyNames=[name], **ECS_SCALING)["ScalingPolicies"]
    return policies[0] if policies else None


def register_scalable_target(aws: Aws, resource: str, limits: dict, tags: dict[str, str]) -> dict | None:
    """Register (or update) the target with `limits` (MinCapacity, MaxCapacity): the same call converges, so a
    lost answer is looked up by the resource ID, then resent. Tags are set on create only."""
    def call() -> dict | None:
        try:
            aws.client("application-autoscaling").register_scalable_target(
                ResourceId=resource, **ECS_SCALING, **limits, Tags=tags)
        except ClientError as exc:
            raise aws_failure(f"register the scalable target {resource}", exc) from exc
        return scalable_target(aws, resource)

    def found() -> dict | None:
        target = scalable_target(aws, resource)
        return target if target and not changes(target, limits) else None

    return create_without_twins(call, found, f"the scalable target {resource}")


def put_scaling_policy(aws: Aws, resource: str, name: str, policy: dict) -> dict:
    """Create or replace the policy (PutScalingPolicy on an existing name updates it); `policy`: PolicyType and
    its configuration, as PutScalingPolicy takes them."""
    try:
        return aws.client("application-autoscaling").put_scaling_policy(
            PolicyName=name, ResourceId=resource, **ECS_SCALING, **policy)
    except ClientError as exc:
        raise aws_failure(f"put the scaling policy {name} on {resource}", exc) from exc


def deregister_scalable_target(aws: Aws, resource: str) -> None:
    """Deregister the target, which deletes its scaling policies; gone already is done."""
    try:
        aws.client("application-autoscaling").deregister_scalable_target(ResourceId=resource, **ECS_SCALING)
    except ClientError as exc:
        # botocore's application-autoscaling model: DeregisterScalableTarget raises ObjectNotFoundException
        # for a scalable target that does not exist.
        if error_code(exc) != "ObjectNotFoundException":
            raise aws_failure(f"deregister the scalable target {resource}", exc) from exc


# -- Amazon Managed Prometheus ------------------------------------------------------------

def _workspace_item(aws: Aws, workspace: dict) -> dict | None:
    if workspace["status"]["statusCode"] in ("DELETING", "CREATION_FAILED"):
        return None
    return with_tags(workspace)


def _get_workspace(aws: Aws, id_or_alias: str) -> dict | None:
    amp = aws.client("amp")
    if id_or_alias.startswith("ws-"):
        return _workspace_item(aws, amp.describe_workspace(workspaceId=id_or_alias)["workspace"])
    found = [w for w in amp.list_workspaces(alias=id_or_alias)["workspaces"] if w.get("alias") == id_or_alias]
    # The list omits the endpoint: describe each match.
    live = [i for i in (_get_workspace(aws, w["workspaceId"]) for w in found) if i]
    if len(live) > 1:
        ids = ", ".join(w["workspaceId"] for w in live)
        raise ProvisionError(f"Found {len(live)} Prometheus workspaces with alias {id_or_alias} ({ids}); expected one.")
    return live[0] if live else None


def _list_workspaces(aws: Aws, naming: Naming) -> list[dict]:
    pages = aws.client("amp").get_paginator("list_workspaces").paginate()
    items = side_by_side([w for page in pages for w in page["workspaces"]], lambda w: _workspace_item(aws, w))
    return [i for i in items if i]


AMP_WORKSPACE = register(NamedKind(
    "amp-workspace", "Prometheus workspace", _get_workspace, "workspaceId",
    lambda aws, ws: aws.client("amp").delete_workspace(workspaceId=ws), _list_workspaces,
    not_found=("ResourceNotFoundException",),
    service="amp",
    tag=lambda aws, workspace, tags: aws.client("amp").tag_resource(resourceArn=workspace["arn"], tags=tags),
    # Found again by its alias (the desired name); not awaited: ACTIVE within a minute, before a collector writes.
    create=lambda aws, desired: _get_workspace(aws, aws.client("amp").create_workspace(
        alias=desired.name, clientToken=desired.client_token, tags=desired.tags)["workspaceId"]),
))


# -- OpenSearch -------------------------------------------------------------------------------

def _domain(aws: Aws, name: str) -> dict | None:
    """The domain; its tags apart (`_get_domain`), or from the run's Tagging API read."""
    domain = aws.client("opensearch").describe_domain(DomainName=_last(name))["DomainStatus"]
    return None if domain.get("Deleted") else domain


def _get_domain(aws: Aws, name: str) -> dict | None:
    domain = _domain(aws, name)
    if domain is None:
        return None
    return with_tags(domain, aws.client("opensearch").list_tags(ARN=domain["ARN"])["TagList"])


def _list_domains(aws: Aws, naming: Naming) -> list[dict]:
    names = [d["DomainName"] for d in aws.client("opensearch").list_domain_names()["DomainNames"]]
    return [d for d in side_by_side(names, lambda name: _get_domain(aws, name)) if d]


def _create_domain(aws: Aws, desired: Desired) -> dict:
    """Started, not awaited (15-20 minutes in AWS). The access policy may name a role made seconds ago."""
    spec = desired.spec
    return until_propagated(POLICY_PRINCIPAL, desired.timeouts.iam_propagation, lambda: aws.client("opensearch").create_domain(
        DomainName=desired.name, ClusterConfig=spec["ClusterConfig"], EBSOptions=spec["EBSOptions"],
        AccessPolicies=json.dumps(spec["AccessPolicies"]), TagList=desired.tag_list(), **desired.inputs,
    )["DomainStatus"]) | {"_tags": desired.tags}


def _domain_settings(aws: Aws, domain: dict) -> dict:
    return {"ClusterConfig": domain.get("ClusterConfig", {}), "EBSOptions": domain.get("EBSOptions", {}),
            "AccessPolicies": json.loads(domain.get("AccessPolicies") or "{}")}


def _update_domain(aws: Aws, domain: dict, changed: dict, desired: Desired) -> None:
    """Instance type, count and volume change in place (AWS runs a blue/green deployment); the access policy
    in a call of its own, retried while IAM propagates a role it names."""
    client = aws.client("opensearch")
    name = domain["DomainName"]
    resized = {field: value for field, value in changed.items() if field != "AccessPolicies"}
    if resized:
        client.update_domain_config(DomainName=name, **resized)
    if "AccessPolicies" in changed:
        policy = json.dumps(changed["AccessPolicies"])
        until_propagated(POLICY_PRINCIPAL, desired.timeouts.iam_propagation,
                         lambda: client.update_domain_config(DomainName=name, AccessPolicies=policy))


OPENSEARCH_DOMAIN = register(NamedKind(
    "opensearch-domain", "OpenSearch domain", _get_domain, "DomainName",
    lambda aws, name: aws.client("opensearch").delete_domain(DomainName=name), _list_domains,
    not_found=("ResourceNotFoundException",),
    service="opensearch",
    tag=lambda aws, domain, tags: aws.client("opensearch").add_tags(ARN=domain["ARN"], TagList=tag_list(tags)),
    # Its ARN (DescribeDomain's ARN): OpenSearch Service keeps the "es" service prefix, arn:aws:es:REGION:ACCOUNT:domain/NAME.
    tag_arn=lambda naming, account, name: naming.arn("es", account, f"domain/{_last(name)}"),
    lookup_untagged=_domain,
    create=_create_domain, settings=_domain_settings, update=_update_domain,
))


# -- Aurora DSQL ------------------------------------------------------------------------------

def _get_dsql_cluster(aws: Aws, arn_or_identifier: str) -> dict | None:
    item = aws.client("dsql").get_cluster(identifier=_last(arn_or_identifier))
    if item["status"] in ("DELETING", "DELETED", "PENDING_DELETE"):
        return None
    return with_tags(item)


def _list_dsql_clusters(aws: Aws, naming: Naming) -> list[dict]:
    pages = aws.client("dsql").get_paginator("list_clusters").paginate()
    items = side_by_side([c["identifier"] for page in pages for c in page["clusters"]],
                         lambda identifier: _get_dsql_cluster(aws, identifier))
    return [i for i in items if i]


def _delete_dsql_cluster(aws: Aws, arn_or_identifier: str) -> None:
    """Deletion protection first (UpdateCluster), then the cluster: DeleteCluster refuses a protected one.
    A cluster already being deleted answers ConflictException: it is going already."""
    dsql = aws.client("dsql")
    identifier = _last(arn_or_identifier)
    if dsql.get_cluster(identifier=identifier).get("deletionProtectionEnabled"):
        dsql.update_cluster(identifier=identifier, deletionProtectionEnabled=False)
    try:
        dsql.delete_cluster(identifier=identifier)
    except ClientError as exc:
        if error_code(exc) != "ConflictException":
            raise


def _create_dsql_cluster(aws: Aws, desired: Desired) -> dict:
    # Its answer carries no tags: they are the desired ones, set by this very call.
    created = aws.client("dsql").create_cluster(tags=desired.tags, clientToken=desired.client_token, **desired.inputs)
    return with_tags(created, desired.tags)


DSQL_CLUSTER = register(NamedKind(
    "dsql-cluster", "Aurora DSQL cluster", _get_dsql_cluster, "arn", _delete_dsql_cluster, _list_dsql_clusters,
    not_found=("ResourceNotFoundException",),
    service="dsql",
    tag=lambda aws, cluster, tags: aws.client("dsql").tag_resource(resourceArn=cluster["arn"], tags=tags),
    create=_create_dsql_cluster,
))
# Usable states (Aurora DSQL user guide, "Aurora DSQL cluster lifecycle"): IDLE is a cluster that scaled
# its resources down, INACTIVE one idle for a prolonged period, scaled to zero with its data preserved.
# A connection brings either back to ACTIVE, so both are used as they are (botocore's ClusterStatus enum:
# CREATING, ACTIVE, IDLE, INACTIVE, UPDATING, DELETING, DELETED, FAILED, PENDING_SETUP, PENDING_DELETE).
DSQL_USABLE = ("ACTIVE", "IDLE", "INACTIVE")


def wait_dsql_usable(aws: Aws, arn: str, timeout: float, say: Callable[[str], None]) -> dict:
    """The cluster once usable (ACTIVE, IDLE or INACTIVE); fails at once if it failed or is being deleted."""
    def probe() -> dict | None:
        cluster = DSQL_CLUSTER.get(aws, arn)
        if cluster is None or cluster["status"] == "FAILED":
            raise WaitFailed(f"the Aurora DSQL cluster {arn} is {cluster['status'] if cluster else 'gone'}")
        if cluster["status"] in DSQL_USABLE:
            return cluster
        say(f"waiting for Aurora DSQL cluster {_last(arn)} ({cluster['status']})")
        return None

    return wait_for(f"Aurora DSQL cluster {arn}", probe, timeout=timeout)


# -- Secrets Manager (created by the user, only ever described) ---------------------------

def _get_secret(aws: Aws, secret: str) -> dict | None:
    item = aws.client("secretsmanager").describe_secret(SecretId=secret)
    if item.get("DeletedDate"):
        return None
    return with_tags(item)


def _never_delete(aws: Aws, secret: str) -> None:
    raise ProvisionError(f"refusing to delete {secret}: the Grafana secret belongs to you, not to this tool")


EXTERNAL_SECRET = register(NamedKind(
    "external-secret", "secret", _get_secret, "ARN", _never_delete, not_found=("ResourceNotFoundException",),
    service="secretsmanager", read_ahead=False,  # looked up by name, never by ID
))


# -- ECR ----------------------------------------------------------------------------------------

def _repository_item(aws: Aws, repository: dict) -> dict:
    tags = aws.client("ecr").list_tags_for_resource(resourceArn=repository["repositoryArn"])["tags"]
    return with_tags(repository, tags)


def _get_repository(aws: Aws, name: str) -> dict | None:
    found = aws.client("ecr").describe_repositories(repositoryNames=[name.split("repository/", 1)[-1]])["repositories"]
    return _repository_item(aws, found[0]) if found else None


def _list_repositories(aws: Aws, naming: Naming) -> list[dict]:
    pages = aws.client("ecr").get_paginator("describe_repositories").paginate()
    return side_by_side([r for page in pages for r in page["repositories"]
                         if r["repositoryName"].startswith(f"{naming.project}/")], lambda r: _repository_item(aws, r))


def _repositories_by_name(aws: Aws, names: list[str]) -> dict[str, dict] | None:
    """Recorded repositories in one call; None when one is gone (ECR then refuses the whole call). Tags
    are not read again, as for log groups."""
    try:
        found = aws.client("ecr").describe_repositories(repositoryNames=names)["repositories"]
    except ClientError as exc:
        if error_code(exc) == "RepositoryNotFoundException":
            return None
        raise
    return {r["repositoryName"]: r for r in found}


def _create_repository(aws: Aws, desired: Desired) -> dict:
    """Scanning, encryption and tag mutability are set by CreateRepository; the lifecycle policy comes apart."""
    spec = desired.spec
    ecr = aws.client("ecr")
    repository = ecr.create_repository(
        repositoryName=desired.name, imageScanningConfiguration=spec["imageScanningConfiguration"],
        encryptionConfiguration=spec["encryptionConfiguration"], imageTagMutability=spec["imageTagMutability"],
        imageTagMutabilityExclusionFilters=spec["imageTagMutabilityExclusionFilters"], tags=desired.tag_list(),
    )["repository"]
    ecr.put_lifecycle_policy(repositoryName=desired.name, lifecyclePolicyText=json.dumps(spec["lifecyclePolicy"]))
    return repository


def _repository_settings(aws: Aws, repository: dict) -> dict:
    ecr = aws.client("ecr")
    try:
        policy = json.loads(ecr.get_lifecycle_policy(repositoryName=repository["repositoryName"])["lifecyclePolicyText"])
    except ClientError as exc:
        if error_code(exc) != "LifecyclePolicyNotFoundException":
            raise
        policy = None
    return {
        "imageScanningConfiguration": repository.get("imageScanningConfiguration"),
        "imageTagMutability": repository.get("imageTagMutability"),
        "imageTagMutabilityExclusionFilters": repository.get("imageTagMutabilityExclusionFilters"),
        # A repository described without it is AES256-encrypted: ECR's default.
        "encryptionConfiguration": repository.get("encryptionConfiguration", {"encryptionType": "AES256"}),
        "lifecyclePolicy": policy,
    }


def _update_repository(aws: Aws, repository: dict, changed: dict, desired: Desired) -> None:
    ecr = aws.client("ecr")
    name = repository["repositoryName"]
    if "imageScanningConfiguration" in changed:
        ecr.put_image_scanning_configuration(
            repositoryName=name, imageScanningConfiguration=changed["imageScanningConfiguration"])
    if {"imageTagMutability", "imageTagMutabilityExclusionFilters"} & set(changed):
        # PutImageTagMutability sets both together.
        ecr.put_image_tag_mutability(
            repositoryName=name, imageTagMutability=desired.spec["imageTagMutability"],
            imageTagMutabilityExclusionFilters=desired.spec["imageTagMutabilityExclusionFilters"])
    if "lifecyclePolicy" in changed:
        ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=json.dumps(changed["lifecyclePolicy"]))


ECR_REPOSITORY = register(NamedKind(
    "ecr-repository", "image repository", _get_repository, "repositoryName",
    # force: the step decides whether images may go (destroy --delete-data); by then they may.
    lambda aws, name: aws.client("ecr").delete_repository(repositoryName=name, force=True), _list_repositories,
    not_found=("RepositoryNotFoundException",),
    service="ecr", lookup_many=_repositories_by_name,
    tag=lambda aws, repository, tags: aws.client("ecr").tag_resource(
        resourceArn=repository["repositoryArn"], tags=tag_list(tags)),
    tag_arn=lambda naming, account, name: naming.arn("ecr", account, f"repository/{name}"),
    create=_create_repository, settings=_repository_settings, update=_update_repository,
    # "You can't change the encryption settings of a repository once it's created" (ECR user guide,
    # encryption-at-rest.html); no ECR call takes a repository's encryption but CreateRepository.
    fixed=("encryptionConfiguration",),
))


# -- SSM parameters -------------------------------------------------------------------------------

# The AWS public parameter naming the current ECS-optimized Amazon Linux 2023 arm64 AMI (ECS developer guide,
# retrieve-ecs-optimized_AMI.html), which the capacity step reads every run: read in the same GetParameters
# call as the recorded parameters (SSM_PARAMETER's `read_with`), which takes up to 10 names (SSM API reference).
ECS_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id"


def _parameter_item(aws: Aws, name: str) -> dict:
    ssm = aws.client("ssm")
    parameter = ssm.get_parameter(Name=name)["Parameter"]
    tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]
    return with_tags(parameter, tags)


def _get_parameter(aws: Aws, name_or_arn: str) -> dict | None:
    name = "/" + name_or_arn.split(":parameter/", 1)[1] if ":parameter/" in name_or_arn else name_or_arn
    return _parameter_item(aws, name)


def _list_parameters(aws: Aws, naming: Naming) -> list[dict]:
    pages = aws.client("ssm").get_paginator("describe_parameters").paginate(
        ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": [f"/{naming.project}/"]}]
    )
    return side_by_side([p["Name"] for page in pages for p in page["Parameters"]], lambda name: _parameter_item(aws, name))


def _parameters_by_name(aws: Aws, names: list[str]) -> dict[str, dict]:
    """Values of the recorded parameters (GetParameters, 10 names a call); their tags come from the run's one
    Tagging API read, as for log groups, and their tier only where an update needs it (`_update_parameter`)."""
    ssm = aws.client("ssm")
    return {parameter["Name"]: parameter for batch in _batches(names, 10)
            for parameter in ssm.get_parameters(Names=batch)["Parameters"]}


# SSM's limits on a value: 4 KB in the Standard tier, 8 KB in the Advanced one (charged per parameter and month).
STANDARD_LIMIT, ADVANCED_LIMIT = 4096, 8192


def _tier(value: str, current: str = "Standard") -> str:
    """Standard while the value fits; an Advanced parameter cannot go back to Standard, so it stays so."""
    return "Standard" if len(value) <= STANDARD_LIMIT and current != "Advanced" else "Advanced"


def _create_parameter(aws: Aws, desired: Desired) -> dict | None:
    if desired.name is None:
        raise TypeError("a parameter is created by its name")
    value = desired.spec["Value"]
    try:
        aws.client("ssm").put_parameter(Name=desired.name, Value=value, Type="String", Tier=_tier(value),
                                        Tags=desired.tag_list(), **desired.inputs)
    except ClientError as exc:
        # A resend after a lost answer the lookup did not see yet: the first call made it.
        if error_code(exc) != "ParameterAlreadyExists":
            raise
    return _get_parameter(aws, desired.name)


def _update_parameter(aws: Aws, parameter: dict, changed: dict, desired: Desired) -> None:
    """The tier is read here, not with the value: only a new value must know whether it may stay Standard."""
    ssm = aws.client("ssm")
    value = changed["Value"]
    metadata = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [parameter["Name"]]}])
    current = next((p.get("Tier", "Standard") for p in metadata["Parameters"]), "Standard")
    ssm.put_parameter(Name=parameter["Name"], Value=value, Type="String", Tier=_tier(value, current), Overwrite=True)


SSM_PARAMETER = register(NamedKind(
    "ssm-parameter", "SSM parameter", _get_parameter, "Name",
    lambda aws, name: aws.client("ssm").delete_parameter(Name=name), _list_parameters,
    not_found=("ParameterNotFound",), service="ssm", lookup_many=_parameters_by_name, read_with=(ECS_AMI_PARAMETER,),
    tag=lambda aws, parameter, tags: aws.client("ssm").add_tags_to_resource(
        ResourceType="Parameter", ResourceId=parameter["Name"], Tags=tag_list(tags)),
    # SSM's ARN drops the name's leading slash after "parameter/".
    tag_arn=lambda naming, account, name: naming.arn("ssm", account, f"parameter/{name.lstrip('/')}"),
    create=_create_parameter, settings=lambda aws, parameter: {"Value": parameter["Value"]}, update=_update_parameter,
))
