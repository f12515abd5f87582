"""The OpenSearch domain Temporal keeps its visibility records in (README: "What gets built, step by step"),
private and encrypted.

Creating a domain takes 15-20 minutes in AWS. This step only starts it (and converges its size and
access policy); whatever needs its endpoint waits for it there, so nothing else is held up.
"""
from __future__ import annotations

from dataclasses import dataclass

from provisioner.aws.converge import converge, destroy_kind
from provisioner.aws.named_kinds import OPENSEARCH_DOMAIN
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
        settings = ctx.config.opensearch
        domain_name = ctx.naming.opensearch_domain()
        roles = ctx.outputs_of(IamOutputs)
        subnets = list(ctx.outputs_of(NetworkOutputs).private_subnet_ids)
        converge(
            ctx, OPENSEARCH_DOMAIN, DOMAIN, name=domain_name,
            # Instance type, count and volume change in place (a blue/green deployment in AWS), as does the policy.
            spec={
                "ClusterConfig": {
                    "InstanceType": settings.instance_type, "InstanceCount": settings.instance_count,
                    "DedicatedMasterEnabled": False, "ZoneAwarenessEnabled": False,
                },
                "EBSOptions": {"EBSEnabled": True, "VolumeType": "gp3", "VolumeSize": settings.volume_gib},
                "AccessPolicies": access_policy(ctx.naming.arn("es", ctx.aws.account_id, f"domain/{domain_name}"),
                                                [roles.temporal_role, roles.schema_role]),
            },
            inputs={
                "EngineVersion": settings.engine_version,
                # One subnet: a single-node domain lives in one zone.
                "VPCOptions": {"SubnetIds": subnets[:1], "SecurityGroupIds": [ctx.outputs_of(SecurityGroupOutputs).opensearch]},
                "EncryptionAtRestOptions": {"Enabled": True},
                "NodeToNodeEncryptionOptions": {"Enabled": True},
                "DomainEndpointOptions": {"EnforceHTTPS": True, "TLSSecurityPolicy": TLS_POLICY},
            },
            detail=f"{settings.instance_type} x{settings.instance_count}, not awaited",
            attributes_of=lambda d: {"arn": d["ARN"], "engine_version": d.get("EngineVersion", settings.engine_version)},
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
