"""The resource kinds of alerting (README: "Alerts"): the KMS key and SNS topic alerts go to, the workspace's
rule groups namespace and its alert manager definition.

Each is a NamedKind (provisioner/aws/named_kinds.py) that converge() drives: create from a Desired, settings
read back in the spec's shape, update of what differs. The alert manager definition has no tags and no name
of its own (one per workspace, AMP API reference): it is the workspace's, addressed by the workspace ID.
"""
from __future__ import annotations

import json

from botocore.exceptions import ClientError

from provisioner.aws.kinds import Desired, register
from provisioner.aws.named_kinds import NamedKind, tag_dict, tag_list, with_tags
from provisioner.aws.run_pool import side_by_side
from provisioner.aws.session import Aws
from provisioner.errors import error_code
from provisioner.naming import TAG_PROJECT, Naming

# -- KMS key ----------------------------------------------------------------------------------

# A key scheduled for deletion (or disabled) can encrypt nothing: not this stack's key any more.
KEY_GONE = ("PendingDeletion", "PendingReplicaDeletion", "Disabled")
# The shortest waiting period KMS allows before a scheduled key is deleted (KMS API reference,
# ScheduleKeyDeletion: PendingWindowInDays 7-30); the key can be restored until then (CancelKeyDeletion).
KEY_DELETION_DAYS = 7


def _key(aws: Aws, key_id: str) -> dict | None:
    """The key's metadata and policy; its tags apart (`_key_item`), or from the run's Tagging API read."""
    kms = aws.client("kms")
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    if metadata["KeyState"] in KEY_GONE or metadata.get("KeyManager") != "CUSTOMER":
        return None
    policy = kms.get_key_policy(KeyId=metadata["KeyId"], PolicyName="default")["Policy"]
    return metadata | {"Policy": json.loads(policy)}


def _key_item(aws: Aws, key_id: str) -> dict | None:
    key = _key(aws, key_id)
    if key is None:
        return None
    tags = aws.client("kms").list_resource_tags(KeyId=key["KeyId"])["Tags"]
    return with_tags(key, [{"Key": t["TagKey"], "Value": t["TagValue"]} for t in tags])


def _list_keys(aws: Aws, naming: Naming) -> list[dict]:
    """Customer keys tagged with the project (a key has no name to find it by; ListKeys then the tags of each)."""
    kms = aws.client("kms")
    ids = [k["KeyId"] for page in kms.get_paginator("list_keys").paginate() for k in page["Keys"]]

    def tagged(key_id: str) -> dict | None:
        try:
            tags = tag_dict([{"Key": t["TagKey"], "Value": t["TagValue"]}
                             for t in kms.list_resource_tags(KeyId=key_id)["Tags"]])
        except ClientError as exc:
            if error_code(exc) in ("NotFoundException", "AccessDeniedException"):
                return None  # another's key (AWS managed keys refuse ListResourceTags to most callers)
            raise
        return _key_item(aws, key_id) if tags.get(TAG_PROJECT) == naming.project else None

    return [k for k in side_by_side(ids, tagged) if k]


def _create_key(aws: Aws, desired: Desired) -> dict | None:
    kms = aws.client("kms")
    key = kms.create_key(
        Description=f"{desired.key}: encrypts the alerts SNS topic",
        Policy=json.dumps(desired.spec["Policy"]),
        Tags=[{"TagKey": k, "TagValue": v} for k, v in desired.tags.items()],
    )["KeyMetadata"]
    return _key_item(aws, key["KeyId"])


KMS_KEY = register(NamedKind(
    "kms-key", "KMS key", _key_item, "KeyId",
    lambda aws, key_id: aws.client("kms").schedule_key_deletion(KeyId=key_id, PendingWindowInDays=KEY_DELETION_DAYS),
    _list_keys, not_found=("NotFoundException",), service="kms",
    tag=lambda aws, key, tags: aws.client("kms").tag_resource(
        KeyId=key["KeyId"], Tags=[{"TagKey": k, "TagValue": v} for k, v in tags.items()]),
    tag_arn=lambda naming, account, key_id: naming.arn("kms", account, f"key/{key_id}"), lookup_untagged=_key,
    create=_create_key,
    settings=lambda aws, key: {"Policy": key["Policy"]},
    update=lambda aws, key, fields, desired: aws.client("kms").put_key_policy(
        KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(fields["Policy"])),
))


# -- SNS topic --------------------------------------------------------------------------------

def topic_arn(aws: Aws, name: str) -> str:
    """A standard topic's ARN is its region, account and name (SNS API reference, CreateTopic)."""
    return Naming("-", aws.region).arn("sns", aws.account_id, name)


def _topic(aws: Aws, name_or_arn: str) -> dict:
    """The topic's attributes; its tags apart (`_topic_item`), or from the run's Tagging API read."""
    arn = name_or_arn if name_or_arn.startswith("arn:") else topic_arn(aws, name_or_arn)
    attributes = aws.client("sns").get_topic_attributes(TopicArn=arn)["Attributes"]
    return {"TopicArn": arn, "KmsMasterKeyId": attributes.get("KmsMasterKeyId", ""),
            "Policy": json.loads(attributes.get("Policy") or "{}"), "Attributes": attributes}


def _topic_item(aws: Aws, name_or_arn: str) -> dict | None:
    topic = _topic(aws, name_or_arn)
    return with_tags(topic, aws.client("sns").list_tags_for_resource(ResourceArn=topic["TopicArn"])["Tags"])


def _list_topics(aws: Aws, naming: Naming) -> list[dict]:
    """The project's topics (by name prefix, then tags): how `destroy` finds the topic when the state is lost."""
    pages = aws.client("sns").get_paginator("list_topics").paginate()
    arns = [t["TopicArn"] for page in pages for t in page["Topics"]
            if t["TopicArn"].rsplit(":", 1)[-1].startswith(f"{naming.project}-")]
    return [t for t in side_by_side(arns, lambda arn: _topic_item(aws, arn)) if t]


def _create_topic(aws: Aws, desired: Desired) -> dict | None:
    # CreateTopic is idempotent by name and attributes: a resend after a lost answer returns the same topic.
    arn = aws.client("sns").create_topic(
        Name=desired.name,
        Attributes={"KmsMasterKeyId": desired.spec["KmsMasterKeyId"], "Policy": json.dumps(desired.spec["Policy"])},
        Tags=tag_list(desired.tags),
    )["TopicArn"]
    return _topic_item(aws, arn)


def _update_topic(aws: Aws, topic: dict, fields: dict, desired: Desired) -> None:
    sns = aws.client("sns")
    for name, value in fields.items():
        sns.set_topic_attributes(TopicArn=topic["TopicArn"], AttributeName=name,
                                 AttributeValue=value if isinstance(value, str) else json.dumps(value))


SNS_TOPIC = register(NamedKind(
    "sns-topic", "SNS topic", _topic_item, "TopicArn",
    # DeleteTopic "deletes a topic and all its subscriptions" (SNS API reference).
    lambda aws, arn: aws.client("sns").delete_topic(TopicArn=arn), _list_topics,
    not_found=("NotFound", "NotFoundException"), service="sns",
    tag=lambda aws, topic, tags: aws.client("sns").tag_resource(ResourceArn=topic["TopicArn"], Tags=tag_list(tags)),
    tag_arn=lambda naming, account, arn: arn, lookup_untagged=_topic,  # its recorded ID is its ARN
    create=_create_topic,
    settings=lambda aws, topic: {"KmsMasterKeyId": topic["KmsMasterKeyId"], "Policy": topic["Policy"]},
    update=_update_topic,
))


# -- AMP rule groups namespace ------------------------------------------------------------------

def namespace_address(workspace_id: str, name: str) -> str:
    """How the namespace is named to its kind: WORKSPACE/NAME, as its ARN ends (…:rulegroupsnamespace/WS/NAME)."""
    return f"{workspace_id}/{name}"


def _namespace_item(aws: Aws, address_or_arn: str) -> dict | None:
    workspace_id, name = address_or_arn.rsplit("/", 2)[-2:]
    described = aws.client("amp").describe_rule_groups_namespace(workspaceId=workspace_id, name=name)
    namespace = described["ruleGroupsNamespace"]
    if namespace["status"]["statusCode"] in ("DELETING", "CREATION_FAILED"):
        return None
    return with_tags(namespace | {"workspaceId": workspace_id})


def _create_namespace(aws: Aws, desired: Desired) -> dict | None:
    if desired.name is None:
        raise TypeError("a rule groups namespace is created by its name, workspace/namespace")
    workspace_id, name = desired.name.split("/")
    # boto3 base64-encodes the blob itself (botocore serializes blob members): the YAML goes as bytes.
    aws.client("amp").create_rule_groups_namespace(
        workspaceId=workspace_id, name=name, data=desired.spec["data"], clientToken=desired.client_token,
        tags=desired.tags)
    return _namespace_item(aws, desired.name)


def _update_namespace(aws: Aws, namespace: dict, fields: dict, desired: Desired) -> None:
    aws.client("amp").put_rule_groups_namespace(
        workspaceId=namespace["workspaceId"], name=namespace["name"], data=fields["data"])


RULE_GROUPS_NAMESPACE = register(NamedKind(
    "amp-rule-groups-namespace", "alert rule groups namespace", _namespace_item, "arn",
    lambda aws, arn: aws.client("amp").delete_rule_groups_namespace(
        workspaceId=arn.rsplit("/", 2)[-2], name=arn.rsplit("/", 1)[-1]),
    not_found=("ResourceNotFoundException",), service="amp",
    tag=lambda aws, namespace, tags: aws.client("amp").tag_resource(resourceArn=namespace["arn"], tags=tags),
    create=_create_namespace,
    settings=lambda aws, namespace: {"data": namespace["data"]},
    update=_update_namespace,
))


# -- AMP alert manager definition ----------------------------------------------------------------

def _definition(aws: Aws, workspace_id: str) -> dict | None:
    described = aws.client("amp").describe_alert_manager_definition(workspaceId=workspace_id)
    definition = described["alertManagerDefinition"]
    if definition["status"]["statusCode"] in ("DELETING", "CREATION_FAILED"):
        return None
    return definition | {"workspaceId": workspace_id, "_tags": {}}


def alert_manager_settings(aws: Aws, definition: dict) -> dict:
    return {"data": definition["data"]}


def put_alert_manager_data(aws: Aws, definition: dict, fields: dict, desired: Desired) -> None:
    aws.client("amp").put_alert_manager_definition(workspaceId=definition["workspaceId"], data=fields["data"])


ALERT_MANAGER = register(NamedKind(
    "amp-alert-manager", "alert manager definition", _definition, "workspaceId",
    lambda aws, workspace_id: aws.client("amp").delete_alert_manager_definition(workspaceId=workspace_id),
    not_found=("ResourceNotFoundException",), service="amp", read_ahead=False,
    settings=alert_manager_settings,
    update=put_alert_manager_data,
))


def create_alert_manager(aws: Aws, workspace_id: str, data: bytes, client_token: str) -> dict | None:
    aws.client("amp").create_alert_manager_definition(workspaceId=workspace_id, data=data, clientToken=client_token)
    return _definition(aws, workspace_id)


# -- SNS email subscriptions ---------------------------------------------------------------------

def subscriptions(aws: Aws, arn: str) -> list[dict]:
    """The topic's subscriptions; an email one not yet confirmed has SubscriptionArn "PendingConfirmation"
    (SNS API reference, ListSubscriptionsByTopic)."""
    pages = aws.client("sns").get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn)
    return [s for page in pages for s in page["Subscriptions"]]


def pending_confirmation(aws: Aws, subscription_arn: str) -> bool | None:
    """Whether the subscription still waits for its address to confirm; None when it is gone."""
    try:
        attributes = aws.client("sns").get_subscription_attributes(SubscriptionArn=subscription_arn)["Attributes"]
    except ClientError as exc:
        if error_code(exc) in ("NotFound", "NotFoundException"):
            return None
        raise
    return str(attributes.get("PendingConfirmation", "false")).lower() == "true"
