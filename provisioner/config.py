"""Validated configuration: the desired state every step reads.

The TOML file maps one to one onto these models; unknown keys are refused so a
typo cannot pass silently, and every error names the key, the value and the fix.
"""
from __future__ import annotations

import ipaddress
import json
import re
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from provisioner.state.location import is_s3_url, parse_s3_url
from provisioner.state.store import StateInvalid, read_regular_file
from provisioner.temporal import versions
from provisioner.temporal.versions import DEFAULT as DEFAULT_VERSION
from provisioner.temporal.versions import tag_version

# Lower-case letters, digits and hyphens, starting with a letter: the common
# subset accepted by every AWS name this project derives from it (ECS cluster,
# IAM role, log group, OpenSearch domain, which allows at most 28 characters).
PROJECT_NAME = re.compile(r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$")
AZ_NAME = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$")


def check_zone_names(zones: list[str], why_distinct: str = "") -> list[str]:
    """Zone names, each once: for the config's availability_zones and the zones a state records."""
    for zone in zones:
        if not AZ_NAME.match(zone):
            raise ValueError(f"{zone!r} is not an availability zone name (like 'eu-west-1a')")
    if len(set(zones)) != len(zones):
        raise ValueError(f"lists a zone twice{why_distinct}")
    return zones


class Strict(BaseModel):
    # strict: a string where a number or a boolean belongs is refused, never converted ("2" is not 2).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# Ranges AWS does not assign to a VPC. The VPC user guide (vpc-cidr-blocks.html) allows any block from /16 to
# /28, RFC 1918 or publicly routable, and names 169.254.0.0/16: "CIDR blocks from the link local block are
# reserved as described in RFC 5735 and cannot be assigned to VPCs". The others are RFC 5735's special-use
# blocks that are neither private nor publicly routable unicast addresses, which CreateVpc refuses likewise.
RESERVED_RANGES = {
    ipaddress.ip_network("0.0.0.0/8"): "'this network', RFC 5735",
    ipaddress.ip_network("127.0.0.0/8"): "loopback, RFC 5735",
    ipaddress.ip_network("169.254.0.0/16"): "link local, RFC 5735",
    ipaddress.ip_network("224.0.0.0/4"): "multicast, RFC 5735",
    ipaddress.ip_network("240.0.0.0/4"): "reserved for future use, RFC 5735",
}


class NetworkConfig(Strict):
    vpc_cidr: str = Field(
        "10.0.0.0/16", description="CIDR block of the VPC, /16 to /24, not in a range AWS reserves (like 169.254.0.0/16)."
    )
    availability_zones: list[str] = Field(
        default_factory=list,
        description="Availability zones, one per private subnet; empty takes the region's first zones.",
    )
    private_subnet_cidrs: list[str] = Field(
        default_factory=lambda: ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"],
        description="One private subnet per availability zone (at least two), each large enough for its endpoint "
        "interfaces, and together for every node, task and OpenSearch node ('validate' counts them).",
    )
    public_subnet_cidr: str = Field(
        "10.0.255.0/28", description="The small public subnet that holds only the NAT gateway."
    )

    @field_validator("vpc_cidr", "public_subnet_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        return str(_parse_cidr(value))

    @field_validator("private_subnet_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        if len(value) < 2:
            raise ValueError("needs at least two subnets in two availability zones for high availability")
        return [str(_parse_cidr(v)) for v in value]

    @field_validator("availability_zones")
    @classmethod
    def _zones(cls, value: list[str]) -> list[str]:
        return check_zone_names(value, "; each private subnet needs its own zone")

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_range(cls, value: str) -> str:
        network = ipaddress.ip_network(value)
        for reserved, what in RESERVED_RANGES.items():
            if network.overlaps(reserved):
                raise ValueError(
                    f"lies in {reserved} ({what}), which AWS does not assign to a VPC; pick a private range "
                    "(RFC 1918) like 10.0.0.0/16, 172.16.0.0/16 or 192.168.0.0/16"
                )
        return value

    @model_validator(mode="after")
    def _layout(self) -> NetworkConfig:
        vpc = ipaddress.ip_network(self.vpc_cidr)
        if not 16 <= vpc.prefixlen <= 24:
            raise ValueError(f"vpc_cidr {self.vpc_cidr}: AWS accepts prefixes from /16 to /24 for this layout")
        keyed = [("private_subnet_cidrs", c) for c in self.private_subnet_cidrs]
        keyed.append(("public_subnet_cidr", self.public_subnet_cidr))
        subnets = [ipaddress.ip_network(c) for _, c in keyed]
        for (key, _), subnet in zip(keyed, subnets, strict=True):
            if not subnet.subnet_of(vpc):
                raise ValueError(f"{key}: subnet {subnet} lies outside vpc_cidr {vpc}; pick a range inside it")
            if subnet.prefixlen > 28:
                raise ValueError(f"{key}: subnet {subnet} is smaller than /28, the smallest subnet AWS allows")
        for i, first in enumerate(subnets):
            for second in subnets[i + 1 :]:
                if first.overlaps(second):
                    raise ValueError(f"subnets {first} and {second} overlap; give each its own range")
        if self.availability_zones and len(self.availability_zones) != len(self.private_subnet_cidrs):
            raise ValueError(
                f"availability_zones has {len(self.availability_zones)} zones but private_subnet_cidrs "
                f"has {len(self.private_subnet_cidrs)} subnets; give one zone per subnet"
            )
        return self


class EndpointsConfig(Strict):
    ecs_endpoints: bool = Field(
        False,
        description="Also create the ECS, ECS agent and ECS telemetry endpoints (for accounts with no internet egress).",
    )


PositiveSeconds = Annotated[int, Field(gt=0, le=7200)]

# Graviton families: a digit generation then "g" (m7g, c7gn, r6gd, t4g, m8g, im4gn, ...), and the first
# Graviton generation, a1. Preflight asks DescribeInstanceTypes whether the type is really arm64.
GRAVITON_TYPE = re.compile(r"^([a-z]+[0-9]+g[a-z]*|a1)\.[0-9a-z]+$")
DSQL_CLUSTER_ARN = re.compile(r"^arn:aws[a-z-]*:dsql:[a-z0-9-]+:\d{12}:cluster/[a-z0-9]+$")
# The values CloudWatch Logs accepts for a retention policy.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)


class NodeGroupConfig(Strict):
    instance_type: str = Field("m7g.xlarge", description="Graviton (arm64) instance type for this node group.")
    min_size: int = Field(1, ge=0, le=100, description="Fewest instances the Auto Scaling group keeps.")
    max_size: int = Field(2, ge=1, le=100, description="Most instances ECS managed scaling may start.")
    desired_capacity: int = Field(1, ge=0, le=100, description="Instances at creation; ECS managed scaling owns it after.")
    root_volume_gib: int = Field(30, ge=30, le=1024, description="Encrypted gp3 root volume size (the ECS AMI needs 30).")

    @field_validator("instance_type")
    @classmethod
    def _graviton(cls, value: str) -> str:
        if not GRAVITON_TYPE.match(value):
            raise ValueError("is not a Graviton (arm64) instance type; pick one like m7g.xlarge, c7g.large or r8g.2xlarge")
        return value

    @model_validator(mode="after")
    def _sizes(self) -> NodeGroupConfig:
        if not self.min_size <= self.desired_capacity <= self.max_size:
            raise ValueError(
                f"needs min_size <= desired_capacity <= max_size, got {self.min_size} <= "
                f"{self.desired_capacity} <= {self.max_size}"
            )
        return self


class CapacityConfig(Strict):
    """Node A runs history; node B frontend, matching, UI and Grafana; node C worker and the collector."""

    history: NodeGroupConfig = Field(NodeGroupConfig(), description="Node A: Temporal history.")
    frontend: NodeGroupConfig = Field(NodeGroupConfig(), description="Node B: frontend, matching, UI, Grafana.")
    worker: NodeGroupConfig = Field(NodeGroupConfig(), description="Node C: Temporal worker and the metrics collector.")
    eni_trunking: bool = Field(
        False,
        description="Turn on ECS's awsvpcTrunking account setting (account-wide, per region; never turned off by "
        "destroy), so that nodes launched afterwards hold many more awsvpc tasks than their network interfaces "
        "(provisioner/data/eni_trunking.json).",
    )


class DsqlConfig(Strict):
    cluster_arn: str = Field(
        "",
        description="An existing Aurora DSQL cluster to use, by ARN: adopted as it is, never modified or deleted. "
        "Empty: 'up' creates one with deletion protection, and 'destroy' keeps it unless --delete-data.",
    )
    private_link: bool = Field(
        False,
        description="Reach the cluster through an interface endpoint (AWS PrivateLink) instead of the NAT gateway.",
    )

    @field_validator("cluster_arn")
    @classmethod
    def _arn(cls, value: str) -> str:
        if value and not DSQL_CLUSTER_ARN.match(value):
            raise ValueError("is not a DSQL cluster ARN like arn:aws:dsql:eu-west-1:123456789012:cluster/abc123")
        return value


# An image reference as the distribution spec's grammar has it (distribution/reference/regexp.go):
# [registry[:port]/]path[/path...], then a tag, a digest, or both. No scheme, no upper case in the path.
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH}(?:/{_PATH})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


# ECS API reference, ContainerDefinition.image (botocore's ecs service-2.json): "For images using tags
# (repository-url/image:tag), up to 255 characters total are allowed ... For images using digests
# (repository-url/image@digest), the 255 character limit applies only to the repository URL and image name".
IMAGE_MAX_LENGTH = 255
# Secrets Manager CreateSecret Name (botocore's secretsmanager service-2.json, NameType: min 1, max 512): "ASCII
# letters, numbers, and the following characters: /_+=.@-".
SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")


def check_secret_name(value: str) -> str:
    if not SECRET_NAME.match(value):
        raise ValueError(
            "is not a name Secrets Manager accepts: 1-512 characters of ASCII letters, digits and / _ + = . @ - "
            "(like grafana/admin)"
        )
    return value


def _pinned(value: str) -> str:
    named = value.split("@", 1)[0]
    if len(named) > IMAGE_MAX_LENGTH:
        raise ValueError(
            f"is {len(named)} characters long before any digest; ECS accepts at most {IMAGE_MAX_LENGTH} "
            "(ContainerDefinition image)"
        )
    match = IMAGE_REFERENCE.match(value)
    # A first component without a dot, colon or "localhost" is a path on Docker Hub, not a registry.
    if match and match["domain"] and not re.search(r"[.:]|^localhost$", match["domain"]):
        match = IMAGE_REFERENCE.match(f"docker.io/{value}")
    if not match or not (match["tag"] or match["digest"]):
        raise ValueError(
            "must be an image reference pinned by tag or digest, with no scheme, like "
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/temporal-server:1.29.0"
        )
    if match["tag"] == "latest" and not match["digest"]:
        raise ValueError("must not use the tag 'latest': pin a version so every task runs the same build")
    return value


class ServiceConfig(Strict):
    cpu: int = Field(description="CPU units for the task (1024 = one vCPU).", ge=128, le=16384)
    memory: int = Field(description="Memory for the task in MiB.", ge=256, le=122880)
    replicas: int = Field(description="Tasks 'provision scale up' starts (up applies 0 first: staged deployment).", ge=0, le=100)


# Application Auto Scaling's TargetValue for ECSServiceAverageCPUUtilization is a percentage of the tasks'
# reserved CPU (application/userguide/application-auto-scaling-target-tracking.html; API_TargetTrackingScaling
# PolicyConfiguration). The bounds are this tool's: below 20 % it adds tasks to an idle frontend, above 90 %
# a burst has no headroom before the next task is placed and started.
CPU_TARGET_RANGE = (20, 90)


class AutoscalingConfig(Strict):
    """Application Auto Scaling target tracking on the service's average CPU (steps/autoscaling.py)."""

    min: int = Field(ge=1, le=100, description="Fewest tasks the autoscaler keeps (at least 1 while it is on).")
    max: int = Field(ge=1, le=100, description="Most tasks the autoscaler starts; the node group must hold them "
                     "at its max_size (checked with the placement check).")
    cpu_target: int = Field(
        60, ge=CPU_TARGET_RANGE[0], le=CPU_TARGET_RANGE[1],
        description="Average CPU utilization (percent of the tasks' CPU units) the autoscaler keeps the service at.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingConfig:
        if self.min > self.max:
            raise ValueError(f"needs min <= max, got min = {self.min} and max = {self.max}: raise max or lower min")
        return self


class TemporalServiceConfig(ServiceConfig):
    max_conns: int = Field(
        20, ge=1, le=1000,
        description="DSQL connections one task opens and keeps: the fork warms its pool to this size and holds it.",
    )


class FrontendServiceConfig(TemporalServiceConfig):
    autoscaling: AutoscalingConfig | None = Field(
        None,
        description="Off when absent: { min, max, cpu_target } target tracking on the frontend's average CPU "
        "(steps/autoscaling.py).",
    )

    @model_validator(mode="after")
    def _replicas_in_range(self) -> FrontendServiceConfig:
        scaling = self.autoscaling
        if scaling is not None and self.replicas and not scaling.min <= self.replicas <= scaling.max:
            raise ValueError(
                f"replicas = {self.replicas} is what 'provision scale up' starts, outside autoscaling min..max "
                f"({scaling.min}..{scaling.max}): set replicas within that range"
            )
        return self


# Pinned images of the metrics stack (each multi-arch with linux/arm64).
GRAFANA_IMAGE = "grafana/grafana:12.4.10"
INIT_IMAGE = "public.ecr.aws/docker/library/busybox:1.37.0"
COLLECTOR_IMAGE = "public.ecr.aws/aws-observability/aws-otel-collector:v0.49.0"

# Sized for the default node groups: what `provision scale up` starts fits max_size m7g.xlarge nodes.
SERVICE_DEFAULTS = {
    "history": {"cpu": 2048, "memory": 6144, "replicas": 2, "max_conns": 40},
    "matching": {"cpu": 1024, "memory": 2048, "replicas": 2},
    "frontend": {"cpu": 1024, "memory": 2048, "replicas": 2},
    "worker": {"cpu": 512, "memory": 1024, "replicas": 1, "max_conns": 10},
    "ui": {"cpu": 256, "memory": 512, "replicas": 1},
    "grafana": {"cpu": 512, "memory": 1024, "replicas": 1},
    "collector": {"cpu": 512, "memory": 1024, "replicas": 1},
}


class ServicesConfig(Strict):
    """Node A runs history; node B matching, frontend, UI and Grafana; node C the worker and the collector."""

    history: TemporalServiceConfig = Field(description="Temporal history, on node A.")
    matching: TemporalServiceConfig = Field(description="Temporal matching, on node B.")
    frontend: FrontendServiceConfig = Field(description="Temporal frontend, on node B.")
    worker: TemporalServiceConfig = Field(description="Temporal's internal worker, on node C.")
    ui: ServiceConfig = Field(description="Temporal UI, on node B.")
    grafana: ServiceConfig = Field(description="Grafana, on node B.")
    collector: ServiceConfig = Field(description="The ADOT metrics collector, on node C (one is enough: it scrapes every task).")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        # A section may set one field; the others keep their defaults.
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for name, defaults in SERVICE_DEFAULTS.items():
            section = data.get(name, {})
            if isinstance(section, dict):
                merged[name] = defaults | section
        return merged


DynamicConfigValue = Union[bool, int, float, str, list, dict]


class TemporalConfig(Strict):
    # Declared first: the validators of the image and the dynamic config read it.
    server_version: str = Field(
        DEFAULT_VERSION,
        description="Temporal server version of server_image: it picks the dynamic config keys, the config keys and "
        "the ports each role opens. 'fork' is the temporal-dsql fork (github.com/iw/temporal main).",
    )
    server_image: str = Field(
        "",
        description="The temporal-dsql server image, pinned by tag or digest. 'provision build-images' builds it, "
        "pushes it to this project's repository and writes it here; 'up' refuses to start without it.",
    )
    admin_tools_image: str = Field(
        "",
        description="The admin-tools image 'provision schema' runs (temporal-dsql-tool, temporal-elasticsearch-tool), "
        "pinned; 'provision build-images' writes it here.",
    )
    ui_image: str = Field("temporalio/ui:2.34.0", description="The official Temporal UI image, pinned.")
    num_history_shards: int = Field(
        512, ge=1, le=65536,
        description="History shards. Fixed once the schema exists: changing it later needs a new cluster.",
    )
    log_level: Literal["debug", "info", "warn", "error"] = Field("info", description="Server log level.")
    dynamic_config: dict[str, DynamicConfigValue] = Field(
        default_factory=lambda: dict(DEFAULT_DYNAMIC_CONFIG),
        description="Dynamic config: key = value, or key = [{value = ..., constraints = {...}}]; each key and the "
        "type of its value are checked against the server version's own source.",
    )

    @field_validator("server_version")
    @classmethod
    def _supported(cls, value: str) -> str:
        versions.load(value)  # refuses an unsupported version by name, listing the supported ones
        return value

    @field_validator("ui_image")
    @classmethod
    def _ui_image(cls, value: str) -> str:
        return _pinned(value)

    @field_validator("admin_tools_image")
    @classmethod
    def _admin_tools_image(cls, value: str) -> str:
        return _pinned(value) if value else value

    @field_validator("server_image")
    @classmethod
    def _server_image(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            return value
        _pinned(value)
        version = info.data.get("server_version")
        tagged = tag_version(value)
        if version and tagged:
            declared = ".".join(versions.load(version).declared.split(".")[:2])
            if tagged != declared:
                raise ValueError(
                    f"its tag carries version {tagged} but temporal.server_version = {version!r} is Temporal "
                    f"{declared}: set server_version to the version the image was built from"
                )
        return value

    @field_validator("num_history_shards")
    @classmethod
    def _shards(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError("should be a power of two (512, 1024, 4096, ...), as Temporal recommends")
        return value

    @field_validator("dynamic_config")
    @classmethod
    def _known_keys(cls, value: dict, info: ValidationInfo) -> dict:
        from provisioner.temporal.dynamic_config import check_keys, check_types

        if info.data.get("server_version"):
            version = versions.load(info.data["server_version"])
            check_keys(value, version)
            check_types(value, version)
        return value


# Graceful shutdown: drain traffic before the stop timeout ends the task (history hands its shards off).
DEFAULT_DYNAMIC_CONFIG = {
    "frontend.enableServerVersionCheck": False,
    "frontend.shutdownDrainDuration": "20s",
    "matching.shutdownDrainDuration": "20s",
    "history.shutdownDrainDuration": "30s",
}


class GrafanaConfig(Strict):
    admin_secret_name: str = Field(
        "grafana/admin", description="Secrets Manager secret with admin_user and admin_password (you create it)."
    )
    @field_validator("admin_secret_name")
    @classmethod
    def _secret_name(cls, value: str) -> str:
        return check_secret_name(value)

    image: str = Field(
        GRAFANA_IMAGE,
        description="Grafana, pinned to a 12.x release: its core Prometheus data source still signs with SigV4 "
        "(Grafana 13 migrates such data sources to the Amazon Managed Service for Prometheus plugin at startup).",
    )
    init_image: str = Field(
        INIT_IMAGE,
        description="A small image with sh, base64 and gunzip that writes Grafana's data source and dashboards "
        "from SSM parameters into the task before Grafana starts.",
    )

    @field_validator("image", "init_image")
    @classmethod
    def _images(cls, value: str) -> str:
        return _pinned(value)

    @field_validator("image")
    @classmethod
    def _grafana_12(cls, value: str) -> str:
        # Grafana 13 turns the prometheusTypeMigration toggle on by default: at startup every core Prometheus
        # data source that signs with SigV4 becomes a grafana-amazonprometheus-datasource one. Grafana's
        # "Migrate from Prometheus SigV4 to Amazon Managed Service for Prometheus" (grafana.com/docs/grafana-cloud/
        # observe-and-act/connect-externally-hosted/data-sources/prometheus/configure/aws-authentication/).
        tag = value.rsplit(":", 1)[-1] if "@" not in value else ""
        if tag and not re.match(r"^12\.", tag):
            raise ValueError(
                "must be a Grafana 12.x image: Grafana 13 migrates core Prometheus data sources that sign with SigV4, "
                "as this stack's does, to the Amazon Managed Service for Prometheus plugin "
                "(grafana-amazonprometheus-datasource) at startup, a data source type this stack does not provision"
            )
        return value


class CollectorConfig(Strict):
    image: str = Field(
        COLLECTOR_IMAGE, description="The AWS Distro for OpenTelemetry collector, pinned (it ships arm64)."
    )
    scrape_interval_seconds: int = Field(
        30, ge=5, le=300, description="How often the collector scrapes every Temporal task's metrics (seconds)."
    )

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        return _pinned(value)


@cache
def opensearch_volume_limits() -> dict[str, dict[str, int]]:
    """provisioner/data/opensearch_volumes.json: gp3 volume sizes per instance type, with its source."""
    table = json.loads(resources.files("provisioner").joinpath("data/opensearch_volumes.json").read_text())
    return table["gp3_volume_gib"]


class OpenSearchConfig(Strict):
    instance_type: str = Field(
        "t3.small.search",
        description="Instance type of the visibility domain; one that takes gp3 volumes "
        "(provisioner/data/opensearch_volumes.json).",
    )
    instance_count: int = Field(1, ge=1, le=10, description="Data nodes (one is enough for visibility at this size).")
    volume_gib: int = Field(
        10, ge=10,
        description="Encrypted gp3 volume per node, within the instance type's limits "
        "(provisioner/data/opensearch_volumes.json: t3.small.search 10-100 GiB).",
    )
    engine_version: str = Field("OpenSearch_2.17", description="OpenSearch engine version.")
    visibility_index: str = Field(
        "temporal_visibility_v1",
        description="The visibility index 'provision schema' creates and the server uses; Temporal's index template "
        "applies only to names starting with temporal_visibility_v1.",
    )

    @field_validator("visibility_index")
    @classmethod
    def _index(cls, value: str) -> str:
        # The template (schema/elasticsearch/visibility/.../index_template_v7.json) matches temporal_visibility_v1*;
        # OpenSearch index names are lower case, without \\ / * ? " < > | , # : or spaces.
        if not re.match(r"^temporal_visibility_v1[a-z0-9_.-]{0,200}$", value):
            raise ValueError("must start with temporal_visibility_v1 and hold only lower-case letters, digits, _ . -")
        return value

    @field_validator("instance_type")
    @classmethod
    def _search_type(cls, value: str) -> str:
        if not value.endswith(".search"):
            raise ValueError("is not an OpenSearch instance type; they end in '.search', like t3.small.search")
        if value not in opensearch_volume_limits():
            raise ValueError(
                "is not an OpenSearch instance type that takes a gp3 volume (provisioner/data/opensearch_volumes.json, "
                f"from the OpenSearch Service quotas): pick one of {', '.join(opensearch_volume_limits())}"
            )
        return value

    @model_validator(mode="after")
    def _volume(self) -> OpenSearchConfig:
        limits = opensearch_volume_limits()[self.instance_type]
        if not limits["min_gib"] <= self.volume_gib <= limits["max_gib"]:
            raise ValueError(
                f"volume_gib = {self.volume_gib}: a {self.instance_type} takes a gp3 volume of {limits['min_gib']} to "
                f"{limits['max_gib']} GiB (OpenSearch Service quotas, provisioner/data/opensearch_volumes.json); "
                "lower opensearch.volume_gib or pick a larger opensearch.instance_type"
            )
        return self

    @field_validator("engine_version")
    @classmethod
    def _engine(cls, value: str) -> str:
        if not re.match(r"^OpenSearch_\d+\.\d+$", value):
            raise ValueError("must look like OpenSearch_2.17")
        return value


class LogsConfig(Strict):
    retention_days: int = Field(30, description="CloudWatch Logs retention for every log group.")

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"is not a retention CloudWatch accepts; pick one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
        return value


class TimeoutsConfig(Strict):
    nat_gateway: PositiveSeconds = Field(600, description="Seconds to wait for a NAT gateway.")
    vpc_endpoint: PositiveSeconds = Field(600, description="Seconds to wait for VPC endpoints.")
    iam_propagation: PositiveSeconds = Field(120, description="Seconds to retry while a new IAM role propagates.")
    opensearch: PositiveSeconds = Field(2400, description="Seconds to wait for the OpenSearch domain's endpoint.")
    dsql: PositiveSeconds = Field(600, description="Seconds to wait for the Aurora DSQL cluster to be active (or gone).")
    schema_task: PositiveSeconds = Field(900, description="Seconds 'provision schema' waits for each schema task to finish.")
    services_stable: PositiveSeconds = Field(900, description="Seconds 'provision scale' waits for services to settle.")
    default: PositiveSeconds = Field(900, description="Seconds to wait for anything else.")


class AwsConfig(Strict):
    max_attempts: int = Field(
        10, ge=1, le=25, description="botocore attempts per call (standard retry mode: throttling and 5xx)."
    )


class StateConfig(Strict):
    """Where the state lives and how the project lock behaves."""

    location: str = Field(
        "", description="Where the state lives: a file path, or s3://BUCKET/KEY for a team; empty: "
        ".provision/<project>-<region>.json. --state and PROVISION_STATE take precedence.")
    kms_key_id: str = Field(
        "", description="KMS key (ID, ARN or alias) that encrypts an S3 state (SSE-KMS); empty: SSE-S3 (AES256).")
    stale_lock_minutes: int = Field(
        720, ge=1, le=10080, description="A project lock older than this is reported as stale, with the command "
        "that releases it; it is never taken over.")

    @field_validator("location")
    @classmethod
    def _location(cls, value: str) -> str:
        if is_s3_url(value):
            try:
                parse_s3_url(value)
            except StateInvalid as exc:
                raise ValueError(str(exc)) from None
        return value


# A Prometheus duration as rules and the alert manager take it (prometheus/common model.ParseDuration), in the
# units this tool writes: whole seconds, minutes, hours or days, like "5m" or "1h30m".
DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
# AMP refuses a repeat_interval over 5 days (AMP user guide, AMP-alertmanager-config: "repeat_interval ... cannot
# be longer than 5 days"): provisioner/metrics/alert_rules.py checks the rendered definition against it too.
MAX_REPEAT_SECONDS = 5 * 24 * 3600
EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")


def duration_seconds(value: str) -> int:
    """Seconds of a duration like "1h30m"; ValueError for anything else."""
    match = DURATION.match(value)
    if not value or not match:
        raise ValueError(f"{value!r} is not a duration like '30s', '5m', '1h30m' or '2d'")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


Duration = Annotated[str, Field(min_length=2)]


class AlertFor(Strict):
    """An alert that fires once its condition has held `for` this long."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)
    for_: Duration = Field(alias="for", description="How long the condition must hold before the alert fires.")

    @field_validator("for_")
    @classmethod
    def _for(cls, value: str) -> str:
        duration_seconds(value)
        return value


class AlertThreshold(AlertFor):
    threshold: float = Field(ge=0, description="The value past which the condition holds (the rule says which way).")


def _threshold(threshold: float, for_: str) -> AlertThreshold:
    return AlertThreshold.model_validate({"threshold": threshold, "for": for_})


def _for(for_: str) -> AlertFor:
    return AlertFor.model_validate({"for": for_})


class AlertsConfig(Strict):
    """Alert rules on the Prometheus workspace, routed by its alert manager to an encrypted SNS topic.

    Temporal publishes metric names but no server-side thresholds: these defaults are starting points (the
    DSQL ones are the fork's own recommendations, docs/dsql/metrics.md). Each rule's reason is in
    provisioner/metrics/alert_rules.py."""

    email: list[str] = Field(
        default_factory=list,
        description="Addresses subscribed to the alerts topic; each must confirm from the mail SNS sends "
        "('provision status' shows those pending).")
    evaluation_interval: Duration = Field("1m", description="How often AMP evaluates the rules.")
    repeat_interval: Duration = Field(
        "4h", description="How often a still-firing alert is sent again (AMP allows at most 5 days).")
    target_down: AlertFor = Field(_for("5m"), description="A Temporal task's metrics cannot be scraped.")
    service_error_ratio: AlertThreshold = Field(
        _threshold(0.05, "10m"), description="Unexpected errors over requests, per frontend/history/matching.")
    persistence_error_rate: AlertThreshold = Field(
        _threshold(0.5, "10m"), description="Persistence errors per second, per service.")
    persistence_latency_p99_seconds: AlertThreshold = Field(
        _threshold(1.0, "10m"), description="p99 persistence latency in seconds, per service.")
    shard_ownership_lost_rate: AlertThreshold = Field(
        _threshold(0.1, "15m"), description="Shard ownership lost errors per second (history).")
    shard_closed_rate: AlertThreshold = Field(
        _threshold(0.1, "15m"), description="Shards closed per second (history).")
    shard_count_mismatch: AlertFor = Field(
        _for("15m"), description="The shards history owns (numshards_gauge) differ from temporal.num_history_shards.")
    no_poller_tasks_rate: AlertThreshold = Field(
        _threshold(0.0, "15m"), description="Tasks per second added to a task queue with no recent poller.")
    dsql_conflict_rate: AlertThreshold = Field(
        _threshold(10.0, "5m"), description="DSQL serialization conflicts (SQLSTATE 40001) per second.")
    dsql_exhausted_rate: AlertThreshold = Field(
        _threshold(0.0, "2m"), description="DSQL transactions failed after their retry budget, per second.")
    dsql_pool_saturation: AlertThreshold = Field(
        _threshold(0.9, "5m"), description="DSQL connections in use over the pool's maximum, per task.")
    membership_changes: AlertThreshold = Field(
        _threshold(10.0, "5m"), description="Membership changes seen by history within 15 minutes.")

    @field_validator("email")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            if not EMAIL.match(address):
                raise ValueError(f"{address!r} is not an email address like 'oncall@example.com'")
        if len(set(value)) != len(value):
            raise ValueError("lists an address twice; list each once")
        return value

    @field_validator("evaluation_interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        if duration_seconds(value) < 1:
            raise ValueError("must be at least 1s")
        return value

    @field_validator("repeat_interval")
    @classmethod
    def _repeat(cls, value: str) -> str:
        if not 0 < duration_seconds(value) <= MAX_REPEAT_SECONDS:
            raise ValueError("must be more than 0 and at most 5 days (120h): AMP refuses a longer repeat_interval")
        return value


class Config(Strict):
    project: str = Field("temporal", description="Project name: prefix of every resource name and tag.")
    network: NetworkConfig = Field(NetworkConfig(), description="The VPC: private subnets per zone, the NAT's public subnet.")
    endpoints: EndpointsConfig = Field(EndpointsConfig(), description="Which optional VPC endpoints to add.")
    dsql: DsqlConfig = Field(DsqlConfig(), description="The Aurora DSQL cluster Temporal persists to.")
    grafana: GrafanaConfig = Field(GrafanaConfig(), description="Grafana: its admin secret and images.")
    collector: CollectorConfig = Field(CollectorConfig(), description="The ADOT collector that scrapes Temporal's metrics.")
    opensearch: OpenSearchConfig = Field(OpenSearchConfig(), description="The OpenSearch domain for visibility.")
    logs: LogsConfig = Field(LogsConfig(), description="CloudWatch Logs for every service.")
    capacity: CapacityConfig = Field(CapacityConfig(), description="The three Graviton node groups and ENI trunking.")
    temporal: TemporalConfig = Field(TemporalConfig(), description="The Temporal server: version, images, shards, dynamic config.")
    alerts: AlertsConfig = Field(AlertsConfig(), description="Alert rules on the workspace, routed to an SNS topic.")
    services: ServicesConfig = Field(
        default_factory=lambda: ServicesConfig.model_validate({}),
        description="Each ECS service's task size, replicas and DSQL pool.",
    )
    timeouts: TimeoutsConfig = Field(TimeoutsConfig(), description="How long to wait for slow resources.")
    aws: AwsConfig = Field(AwsConfig(), description="How botocore retries AWS calls.")
    state: StateConfig = Field(StateConfig(), description="Where the state lives (a file, or S3 for a team) and its lock.")

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        if not PROJECT_NAME.match(value):
            raise ValueError(
                "must be 3-20 characters of lower-case letters, digits and hyphens, starting with a "
                "letter and not ending with a hyphen (it prefixes IAM, ECS and OpenSearch names)"
            )
        if value.startswith(("aws", "ecs", "fargate")):
            raise ValueError("must not start with 'aws', 'ecs' or 'fargate' (ECS refuses such capacity provider names)")
        return value


class ConfigError(Exception):
    """A config file that cannot be used; the message says which key and how to fix it."""


# A full config is a few kilobytes; the bound keeps a device such as /dev/zero from being read forever.
MAX_CONFIG_BYTES = 1024 * 1024


def load_config(path: Path) -> Config:
    if not str(path) or path.is_dir():
        raise ConfigError(f"--config {str(path)!r}: is a directory, not a config file; give a file like provision.toml.")
    if not path.exists():
        raise ConfigError(
            f"{path}: no such config file. Copy config.example.toml to {path} and edit it, "
            "or pass --config PATH."
        )
    try:
        payload = read_regular_file(path, MAX_CONFIG_BYTES + 1)
        if payload is None:
            raise ConfigError(f"--config {str(path)!r}: is not a regular file (a device, pipe or socket); give a "
                              "file like provision.toml.")
        if len(payload) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: over {MAX_CONFIG_BYTES // 1024} KiB, far more than any config; give the "
                              "provision.toml file.")
        data = tomllib.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested inline tables and arrays recursively
        raise ConfigError(f"{path}: nests tables or arrays too deeply to be a config; give the provision.toml "
                          "file.") from None
    try:
        return parse_config(data, source=str(path))
    except RecursionError:
        raise ConfigError(f"{path}: nests tables or arrays too deeply to be a config; give the provision.toml "
                          "file.") from None


# Settings earlier releases accepted, and why they are gone: a config that still sets one is refused
# with the reason, never silently ignored.
REMOVED_SETTINGS = {
    ("dsql", "user"): (
        "the temporal-dsql plugin ignores it and always connects as 'admin' with an admin token "
        "(dsql:DbConnectAdmin); remove the key"
    ),
    ("services", "*", "max_idle_conns"): (
        "the temporal-dsql plugin warms each pool to max_conns and keeps it there; an idle limit below it makes "
        "the pool close connections as fast as the plugin opens them, spending DSQL's 100 connections per second. "
        "Remove the key: max_conns sizes the pool"
    ),
}


# Settings that exist elsewhere but not here, and why: refused with the reason rather than as unknown.
REFUSED_SETTINGS = {
    ("services", role, "autoscaling"): (
        f"autoscaling is for services.frontend only: {role} rebalances its work (shards, task queue partitions) "
        "across the cluster on every task started or stopped, so Temporal's maintainers advise against "
        f"autoscaling it (temporalio/helm-charts PR 605, issue 448). Remove the key and size it with "
        f"services.{role}.replicas"
    )
    for role in ("history", "matching", "worker")
}


def _removed_settings(data: dict, source: str) -> list[str]:
    found = []
    for path, why in (REMOVED_SETTINGS | REFUSED_SETTINGS).items():
        sections = [(path[0], data.get(path[0]))]
        for part in path[1:-1]:
            sections = [
                (f"{name}.{key}", value.get(key)) for name, value in sections if isinstance(value, dict)
                for key in (value if part == "*" else [part])
            ]
        found += [f"{source}: {name}.{path[-1]}: {why}" for name, value in sections
                  if isinstance(value, dict) and path[-1] in value]
    return found


def parse_config(data: dict, source: str = "config") -> Config:
    removed = _removed_settings(data, source)
    if removed:
        raise ConfigError("\n".join(removed))
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    from provisioner.subnet_sizing import private_subnet_problems

    problems = private_subnet_problems(config)
    if problems:
        raise ConfigError("\n".join(f"{source}: {problem}" for problem in problems))
    return config


def _describe(exc: ValidationError, source: str) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key {key!r}; check its spelling against config.example.toml")
            continue
        if error["type"] == "missing":
            lines.append(f"{source}: {key} is required; see config.example.toml for what to put there")
            continue
        message = error["msg"].removeprefix("Value error, ")
        value = error.get("input")
        if isinstance(value, str) and len(value) > 80:
            value = f"{value[:60]}... ({len(value)} characters)"
            shown = f" = {value}"
        else:
            shown = f" = {value!r}" if isinstance(value, (str, int, float, bool, list)) else ""
        lines.append(f"{source}: {key}{shown}: {message}")
    return "\n".join(lines)


def _parse_cidr(value: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 CIDR block with its host bits zero (like '10.0.0.0/16')") from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise ValueError(f"{value!r} is IPv6; give an IPv4 CIDR block")
    return network
