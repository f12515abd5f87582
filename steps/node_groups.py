"""The node groups (README: "Capacity and ENI trunking"): Graviton capacity, one group per workload.

Per node group: a launch template (ECS-optimized AL2023 arm64 AMI from SSM, IMDSv2 only with
hop limit 1, encrypted gp3 root, no public IP, user data that joins the cluster with a
`workload` attribute and blocks task access to IMDS), an Auto Scaling group in the private
subnets, and an ECS capacity provider with managed scaling, attached to the cluster.
"""
from __future__ import annotations

import base64
import hashlib
import json

from botocore.exceptions import ClientError

from provisioner.aws.converge import converge, destroy_kind, live, wait_deleted
from provisioner.aws.kinds import LAUNCH_TEMPLATE
from provisioner.aws.named_kinds import (
    AUTOSCALING_GROUP,
    CAPACITY_PROVIDER,
    ECS_AMI_PARAMETER,
    ECS_CLUSTER,
    SSM_PARAMETER,
)
from provisioner.ecs_layout import NODE_GROUPS
from provisioner.engine import Step, StepContext
from provisioner.errors import BadInput, ProvisionError
from provisioner.placement_check import CATALOG_SETTING, checked_facts, instance_types, offered
from provisioner.step_outputs import known
from provisioner.steps.cluster import ClusterOutputs
from provisioner.steps.iam import IamOutputs
from provisioner.steps.network import NetworkOutputs
from provisioner.steps.security_groups import SecurityGroupOutputs
from provisioner.zones import zones_of

# The cluster's default capacity provider strategy: where a task that names no provider runs.
DEFAULT_PROVIDER = "frontend"



def node_name(ctx: StepContext, group: str) -> str:
    return ctx.naming.name(f"node-{group}")


def user_data(cluster_name: str, workload: str) -> str:
    return "\n".join([
        "#!/bin/bash",
        "cat >> /etc/ecs/ecs.config <<'EOF'",
        f"ECS_CLUSTER={cluster_name}",
        f'ECS_INSTANCE_ATTRIBUTES={{"workload":"{workload}"}}',
        # Tasks use their task role through the agent, never the instance role through IMDS.
        "ECS_AWSVPC_BLOCK_IMDS=true",
        "ECS_ENABLE_CONTAINER_METADATA=true",
        "EOF",
        "",
    ])


def launch_template_data(ctx: StepContext, group: str, ami: str, profile_arn: str, instances_sg: str, cluster_name: str) -> dict:
    node = getattr(ctx.config.capacity, group)
    tags = ctx.naming.tag_list("capacity", f"node-{group}")
    return {
        "ImageId": ami,
        "InstanceType": node.instance_type,
        "IamInstanceProfile": {"Arn": profile_arn},
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1, "HttpEndpoint": "enabled"},
        "BlockDeviceMappings": [{
            "DeviceName": "/dev/xvda",
            "Ebs": {"VolumeSize": node.root_volume_gib, "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True},
        }],
        "NetworkInterfaces": [{
            "DeviceIndex": 0, "AssociatePublicIpAddress": False, "Groups": [instances_sg], "DeleteOnTermination": True,
        }],
        "UserData": base64.b64encode(user_data(cluster_name, group).encode()).decode(),
        "Monitoring": {"Enabled": True},
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}, {"ResourceType": "volume", "Tags": tags}],
    }


class NodeGroups(Step):
    name = "capacity"
    title = "Graviton capacity"
    # placement: ENI trunking, when asked for, is on before the first node launches.
    requires = ("network", "iam", "security_groups", "cluster", "placement")
    kinds = (LAUNCH_TEMPLATE, AUTOSCALING_GROUP, CAPACITY_PROVIDER)

    def preflight(self, ctx: StepContext) -> None:
        """Each type exists in the region, is arm64 and is offered in every zone: asked of AWS only for a type or
        zone not checked before (the state's CATALOG_SETTING, which `apply` records once these checks passed)."""
        types = {getattr(ctx.config.capacity, g).instance_type: g for g in NODE_GROUPS}
        recorded = ctx.state.setting(CATALOG_SETTING, {})
        try:
            found = instance_types(ctx.aws, set(types), recorded)
        except ClientError as exc:
            raise BadInput(
                f"capacity: an instance type is not offered in {ctx.aws.region}: {exc}. Pick another in the config."
            ) from None
        for item in found:
            if "arm64" not in item["ProcessorInfo"]["SupportedArchitectures"]:
                group = types[item["InstanceType"]]
                raise BadInput(f"capacity.{group}.instance_type = {item['InstanceType']!r} is not arm64 (Graviton).")
        # Every node group spreads over every zone of the private subnets: each type must be offered in each.
        zones = zones_of(ctx)
        pairs = offered(ctx.aws, set(types), zones, recorded)
        for instance_type, group in sorted(types.items()):
            missing = [zone for zone in zones if (instance_type, zone) not in pairs]
            if missing:
                raise BadInput(
                    f"capacity.{group}.instance_type = {instance_type!r} is not offered in {', '.join(missing)}; "
                    "pick another type, or other zones in network.availability_zones."
                )

    def names(self, ctx: StepContext) -> list:
        return [(kind, f"{prefix}-{group}", node_name(ctx, group)) for group in NODE_GROUPS
                for kind, prefix in ((AUTOSCALING_GROUP, "asg"), (CAPACITY_PROVIDER, "cp"))]

    def apply(self, ctx: StepContext) -> None:
        # Read with the recorded SSM parameters, in one call (SSM_PARAMETER's read_with).
        parameter = live(ctx, SSM_PARAMETER, ECS_AMI_PARAMETER)
        if parameter is None:
            raise ProvisionError(f"SSM has no parameter {ECS_AMI_PARAMETER} in {ctx.aws.region}: the ECS-optimized "
                                 "Amazon Linux 2023 arm64 AMI is not published there.")
        ami = parameter["Value"]
        profile_arn = ctx.outputs_of(IamOutputs).instance_profile
        instances_sg = ctx.outputs_of(SecurityGroupOutputs).instances
        cluster_arn = ctx.outputs_of(ClusterOutputs).cluster_arn
        subnets = list(ctx.outputs_of(NetworkOutputs).private_subnet_ids)
        cluster_name = ctx.naming.cluster()

        def node_group(group: str) -> str:
            """Launch template, then Auto Scaling group, then capacity provider: in order within a group,
            the groups side by side."""
            data = launch_template_data(ctx, group, ami, profile_arn, instances_sg, cluster_name)
            template = self._launch_template(ctx, group, data)
            asg = self._autoscaling_group(ctx, group, template, subnets)
            provider = self._capacity_provider(ctx, group, asg)
            return provider["name"] if provider else node_name(ctx, group)

        self._attach(ctx, cluster_arn, ctx.each(NODE_GROUPS, node_group))
        self._record_checked_types(ctx)

    def _record_checked_types(self, ctx: StepContext) -> None:
        """The instance type facts the preflight checked (the run's answers, no new call), for later runs."""
        if ctx.dry_run:
            return
        types = {getattr(ctx.config.capacity, g).instance_type for g in NODE_GROUPS}
        recorded = ctx.state.setting(CATALOG_SETTING, {})
        checked = recorded | checked_facts(ctx.aws, types, zones_of(ctx), recorded)
        if checked != recorded:
            ctx.state.set_setting(CATALOG_SETTING, checked)

    def _launch_template(self, ctx: StepContext, group: str, data: dict) -> dict | None:
        """A version never changes: when the latest is the one recorded as holding this data (by its digest),
        it still does, and is not read again; otherwise its data is read, and other data is a new version."""
        key = f"lt-{group}"
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        previous = ctx.state.get(self.name, key) or {}
        current = live(ctx, LAUNCH_TEMPLATE, previous["id"]) if previous else None
        settled = bool(current and previous.get("digest") == digest
                       and previous.get("version") == current.get("LatestVersionNumber"))

        def checked(template: dict) -> None:
            if not ctx.dry_run:
                ctx.record(key, template["LaunchTemplateId"], kind=LAUNCH_TEMPLATE.kind,
                           version=template["LatestVersionNumber"], digest=digest)

        return converge(
            ctx, LAUNCH_TEMPLATE, key, name=node_name(ctx, group), detail=data["InstanceType"],
            spec=None if settled else {"LaunchTemplateData": data}, on_unchanged=checked,
            attributes_of=lambda _: {"version": previous["version"], "digest": digest} if settled else {},
        )

    def _autoscaling_group(self, ctx: StepContext, group: str, template: dict | None, subnets: list[str]) -> dict | None:
        node = getattr(ctx.config.capacity, group)
        return converge(
            ctx, AUTOSCALING_GROUP, f"asg-{group}", name=node_name(ctx, group), detail=node.instance_type,
            spec={
                "LaunchTemplate": {"LaunchTemplateId": template["LaunchTemplateId"] if template else "", "Version": "$Latest"},
                "MinSize": node.min_size,
                "MaxSize": node.max_size,
                "VPCZoneIdentifier": ",".join(subnets),
            },
            # Set once: from then on it is ECS's managed scaling that moves it.
            inputs={"DesiredCapacity": node.desired_capacity},
            attributes_of=lambda g: {"arn": g["AutoScalingGroupARN"]},
        )

    def _capacity_provider(self, ctx: StepContext, group: str, asg: dict | None) -> dict | None:
        return converge(ctx, CAPACITY_PROVIDER, f"cp-{group}", name=node_name(ctx, group), inputs={
            "autoScalingGroupProvider": {
                "autoScalingGroupArn": asg["AutoScalingGroupARN"] if asg else None,
                "managedScaling": {"status": "ENABLED", "targetCapacity": 100},
                "managedTerminationProtection": "DISABLED",
            },
        })

    def _attach(self, ctx: StepContext, cluster_arn: str, providers: list[str]) -> None:
        ecs = ctx.aws.client("ecs")
        attached = live(ctx, ECS_CLUSTER, cluster_arn) if known(cluster_arn) else None
        strategy = [{"capacityProvider": ctx.naming.name(f"node-{DEFAULT_PROVIDER}"), "weight": 1, "base": 0}]
        if attached and sorted(attached.get("capacityProviders", [])) == sorted(providers):
            return
        ctx.change(
            "update", ECS_CLUSTER.noun, "cluster", "attach capacity providers",
            act=lambda: ecs.put_cluster_capacity_providers(
                cluster=cluster_arn, capacityProviders=providers, defaultCapacityProviderStrategy=strategy,
            ),
        )

    def destroy(self, ctx: StepContext) -> None:
        ecs = ctx.aws.client("ecs")
        # By name, not by state: a lost state must not leave providers stuck to the cluster.
        live = ECS_CLUSTER.get(ctx.aws, ctx.naming.cluster())
        if live and live.get("capacityProviders"):
            ctx.change(
                "update", ECS_CLUSTER.noun, "cluster", "detach capacity providers",
                act=lambda: ecs.put_cluster_capacity_providers(
                    cluster=live["clusterArn"], capacityProviders=[], defaultCapacityProviderStrategy=[],
                ),
            )
        destroy_kind(ctx, CAPACITY_PROVIDER)
        # The instances go with their group; the launch template can go only after them.
        wait_deleted(ctx, AUTOSCALING_GROUP, destroy_kind(ctx, AUTOSCALING_GROUP))
        destroy_kind(ctx, LAUNCH_TEMPLATE)

    def outputs(self, ctx: StepContext) -> dict:
        records = ctx.state.step_records(self.name)
        return {"capacity_providers": sorted(r["id"] for k, r in records.items() if k.startswith("cp-"))}
