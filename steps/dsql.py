"""The Aurora DSQL cluster Temporal persists to (README: "What gets built"), created or adopted.

With `dsql.cluster_arn` empty, the cluster is created here with deletion protection, the project's
tags and a deterministic client token, and never awaited: IAM needs only its ARN, and whatever
needs it running waits for it there. With an ARN, that cluster is adopted as it is: it must exist,
be usable and live in this account and region, and it is never modified or deleted.

`destroy` keeps a created cluster, because it holds every workflow's history, and says how to
delete it; `destroy --delete-data` deletes it. An adopted cluster is never touched.
"""
from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
)

from provisioner.aws.converge import converge, wait_deleted
from provisioner.aws.named_kinds import DSQL_CLUSTER, DSQL_USABLE
from provisioner.engine import Step, StepContext
from provisioner.errors import BadInput
from provisioner.step_outputs import KNOWN_AFTER_APPLY, Recorded, StepOutputs, known

CLUSTER = "cluster"


@dataclass(frozen=True)
class DsqlOutputs(StepOutputs):
    """The cluster Temporal persists to; with dsql.private_link, its endpoint service and PrivateLink host
    (None without it)."""

    step = "dsql"
    cluster_arn: str
    adopted: bool
    service_name: str | None
    vpc_host: str | None

    @classmethod
    def read(cls, recorded: Recorded) -> DsqlOutputs:
        arn = recorded.value(CLUSTER)
        if not known(arn):
            return cls(arn, False, KNOWN_AFTER_APPLY, KNOWN_AFTER_APPLY)
        return cls(arn, bool(recorded.optional(CLUSTER, "adopted")), recorded.optional(CLUSTER, "service_name"),
                   recorded.optional(CLUSTER, "vpc_host"))


def cluster_identifier(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


class Dsql(Step):
    name = "dsql"
    title = "Aurora DSQL cluster"
    produces = DsqlOutputs
    kinds = (DSQL_CLUSTER,)

    def preflight(self, ctx: StepContext) -> None:
        region, arn = ctx.aws.region, ctx.config.dsql.cluster_arn
        # The region's DSQL API: where DSQL is not offered, its endpoint does not exist. Asked only before a
        # cluster is recorded: this region's state (checked for its region and account) records one only once
        # made or adopted here, so the region offers DSQL, and the run reads that cluster anyway (GetCluster).
        try:
            if ctx.state.get(self.name, CLUSTER) is None:
                ctx.aws.probe_client("dsql").list_clusters(maxResults=1)
        except (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError) as exc:
            raise BadInput(
                f"Aurora DSQL does not answer in {region} ({exc}): the region does not offer it, or it cannot be "
                "reached from here. Temporal must run in a region with DSQL: pick one with AWS_REGION."
            ) from None
        if not arn:
            return
        _, _, _, arn_region, account, _ = arn.split(":", 5)
        if arn_region != region:
            raise BadInput(
                f"dsql.cluster_arn is in {arn_region} but this run targets {region}; Temporal must run in the "
                "DSQL cluster's region. Fix the ARN or AWS_REGION."
            )
        if account != ctx.aws.account_id:
            raise BadInput(
                f"dsql.cluster_arn belongs to account {account}, but these credentials are for {ctx.aws.account_id}. "
                "Use the credentials of the cluster's account, or leave dsql.cluster_arn empty to create one."
            )
        cluster = DSQL_CLUSTER.get(ctx.aws, arn)
        if cluster is None:
            raise BadInput(f"dsql.cluster_arn names {arn}, which does not exist (or is being deleted).")
        if cluster["status"] not in DSQL_USABLE + ("CREATING", "UPDATING"):
            raise BadInput(f"the Aurora DSQL cluster {arn} is {cluster['status']}: it cannot be used.")

    def apply(self, ctx: StepContext) -> None:
        arn = ctx.config.dsql.cluster_arn
        if arn:
            cluster = DSQL_CLUSTER.get(ctx.aws, arn)
            if cluster is not None and not ctx.dry_run:
                ctx.record(CLUSTER, cluster["arn"], kind=DSQL_CLUSTER.kind, adopted=True, **self._facts(ctx, cluster))
            return
        converge(
            ctx, DSQL_CLUSTER, CLUSTER, inputs={"deletionProtectionEnabled": True},
            detail="deletion protection on, not awaited",
            attributes_of=lambda cluster: {"adopted": False, **self._facts(ctx, cluster)},
        )

    def _facts(self, ctx: StepContext, cluster: dict) -> dict:
        """What later steps read: the identifier and, for PrivateLink, the endpoint service and host."""
        facts = {"identifier": cluster["identifier"]}
        if ctx.config.dsql.private_link:
            found = ctx.aws.client("dsql").get_vpc_endpoint_service_name(identifier=cluster["identifier"])
            facts |= {"service_name": found["serviceName"], "vpc_host": found.get("clusterVpcEndpoint")}
        return facts

    def destroy(self, ctx: StepContext) -> None:
        record = ctx.state.get(self.name, CLUSTER)
        if record and record.get("adopted"):
            ctx.state.forget(self.name, CLUSTER)
            ctx.note(f"Left the Aurora DSQL cluster {record['id']} untouched: it was adopted (dsql.cluster_arn).")
            return
        live = DSQL_CLUSTER.get(ctx.aws, record["id"]) if record else None
        if live is None:
            live = next(iter(DSQL_CLUSTER.find(ctx.aws, ctx.naming, CLUSTER)), None)
        if live is None:
            ctx.state.forget(self.name, CLUSTER)
            return
        if not ctx.delete_data:
            # Forgotten, not deleted: a later `up` finds it again by its tags and carries on with its data.
            ctx.state.forget(self.name, CLUSTER)
            ctx.note(
                f"Kept the Aurora DSQL cluster {live['arn']}: it holds every workflow's history. A later 'provision up' "
                "uses it again. To delete it with its data: provision destroy --delete-data (or: aws dsql "
                f"update-cluster --identifier {live['identifier']} --no-deletion-protection-enabled && aws dsql "
                f"delete-cluster --identifier {live['identifier']})"
            )
            return

        ctx.change("delete", DSQL_CLUSTER.noun, CLUSTER, f"{live['arn']} and all its data",
                   act=lambda: DSQL_CLUSTER.delete(ctx.aws, live["arn"]))
        if not ctx.dry_run:
            wait_deleted(ctx, DSQL_CLUSTER, [live["arn"]], ctx.config.timeouts.dsql)
            ctx.state.forget(self.name, CLUSTER)

    def outputs(self, ctx: StepContext) -> dict:
        record = ctx.state.get(self.name, CLUSTER)
        if not record:
            return {}
        return {"dsql_cluster_arn": record["id"], "dsql_cluster_adopted": record.get("adopted", False)}
