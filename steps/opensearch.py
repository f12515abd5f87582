"""The OpenSearch domain Temporal keeps its visibility records in (README: "What gets built, step by step"),
private and encrypted.

Creating a domain takes 15-20 minutes in AWS. This step only starts it (and converges its
access policy); whatever needs its endpoint waits for it there, so nothing else is held up.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from provisioner.aws.converge import destroy_kind, differs, ensure
from provisioner.aws.named_kinds import OPENSEARCH_DOMAIN
from provisioner.aws.propagation import POLICY_PRINCIPAL, until_propagated
from provisioner.engine import Step, StepContext
from provisioner.step_outputs import Recorded, StepOutputs
from provisioner.steps.iam import OPENSEARCH_HTTP, IamOutputs
from provisioner.steps.network import NetworkOutputs
from provisioner.steps.security_groups import SecurityGroupOutputs

DOMAIN = "visibility"
TLS_POLICY = "Policy-Min-TLS-1-2-2019-07"


@dataclass(frozen=True)
class OpenSearchOutputs(StepOutputs):
    """The visibility domain's name (its endpoint is read live: it appears only once the domain is up)."""

    step = "opensearch"
    domain_name: str
    engine_version: str | None  # None: not recorded yet

    @classmethod
    def read(cls, recorded: Recorded) -> OpenSearchOutputs:
        return cls(recorded.value(DOMAIN), recorded.optional(DOMAIN, "engine_version"))


def access_policy(domain_arn: str, role_arns: list[str]) -> dict:
    """Only the Temporal task role (the server) and the schema task role (the index set-up) may call it."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": role_arns},
            "Action": OPENSEARCH_HTTP,
            "Resource": f"{domain_arn}/*",
        }],
    }


class OpenSearch(Step):
    name = "opensearch"
    title = "OpenSearch domain"
    requires = ("service_roles", "network", "security_groups", "iam")
    produces = OpenSearchOutputs
    kinds = (OPENSEARCH_DOMAIN,)

    def names(self, ctx: StepContext) -> list:
        return [(OPENSEARCH_DOMAIN, DOMAIN, ctx.naming.opensearch_domain())]

    def apply(self, ctx: StepContext) -> None:
        client = ctx.aws.client("opensearch")
        settings = ctx.config.opensearch
        domain_name = ctx.naming.opensearch_domain()
        domain_arn = ctx.naming.arn("es", ctx.aws.account_id, f"domain/{domain_name}")
        roles = ctx.outputs_of(IamOutputs)
        principals = [roles.temporal_role, roles.schema_role]
        group_id = ctx.outputs_of(SecurityGroupOutputs).opensearch
        subnets = list(ctx.outputs_of(NetworkOutputs).private_subnet_ids)
        policy = access_policy(domain_arn, principals)
        # The access policy names a task role this run may have just created.
        propagated = ctx.config.timeouts.iam_propagation
        cluster_config = {
            "InstanceType": settings.instance_type, "InstanceCount": settings.instance_count,
            "DedicatedMasterEnabled": False, "ZoneAwarenessEnabled": False,
        }
        ebs = {"EBSEnabled": True, "VolumeType": "gp3", "VolumeSize": settings.volume_gib}
        domain = ensure(
            ctx, OPENSEARCH_DOMAIN, DOMAIN,
            lambda: until_propagated(POLICY_PRINCIPAL, propagated, lambda: client.create_domain(
                DomainName=domain_name,
                EngineVersion=settings.engine_version,
                ClusterConfig=cluster_config,
                EBSOptions=ebs,
                # One subnet: a single-node domain lives in one zone.
                VPCOptions={"SubnetIds": subnets[:1], "SecurityGroupIds": [group_id]},
                EncryptionAtRestOptions={"Enabled": True},
                NodeToNodeEncryptionOptions={"Enabled": True},
                DomainEndpointOptions={"EnforceHTTPS": True, "TLSSecurityPolicy": TLS_POLICY},
                AccessPolicies=json.dumps(policy),
                TagList=ctx.naming.tag_list(self.name, DOMAIN),
            )["DomainStatus"]),
            detail=f"{settings.instance_type} x{settings.instance_count}, not awaited",
            name=domain_name,
            attributes_of=lambda d: {"arn": d["ARN"], "engine_version": d.get("EngineVersion", settings.engine_version)},
        )
        if domain is None:
            return
        # Instance type, count and volume change in place (AWS runs a blue/green deployment).
        resized = {field: value for field, value in (("ClusterConfig", cluster_config), ("EBSOptions", ebs))
                   if differs(domain.get(field, {}), value)}
        if resized:
            ctx.change("update", OPENSEARCH_DOMAIN.noun, DOMAIN, f"{', '.join(resized)} (blue/green in AWS)",
                       act=lambda: client.update_domain_config(DomainName=domain_name, **resized))
        if json.loads(domain.get("AccessPolicies") or "{}") != policy:
            ctx.change(
                "update", OPENSEARCH_DOMAIN.noun, DOMAIN, "access policy",
                act=lambda: until_propagated(POLICY_PRINCIPAL, propagated, lambda: client.update_domain_config(
                    DomainName=domain_name, AccessPolicies=json.dumps(policy))),
            )

    def destroy(self, ctx: StepContext) -> None:
        destroy_kind(ctx, OPENSEARCH_DOMAIN)

    def outputs(self, ctx: StepContext) -> dict:
        record = ctx.state.get(self.name, DOMAIN)
        if not record:
            return {}
        domain = OPENSEARCH_DOMAIN.get(ctx.aws, record["id"])
        endpoint = (domain or {}).get("Endpoints", {}).get("vpc")
        return {"opensearch_domain": record["id"], "opensearch_endpoint": f"https://{endpoint}" if endpoint else None}
