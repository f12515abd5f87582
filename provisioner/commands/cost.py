"""`provision cost`: the monthly cost of the configured stack, line by line, from committed price tables.

Prices come from provisioner/data/prices/<region>.json, one file per priced region, recording the date
they were taken and the AWS pricing page of every section. Quantities come from the validated config
alone; what depends on traffic (bytes through the NAT gateway and the endpoints, log volume, metric
series, DSQL activity) is estimated from the assumptions below, and each estimated line says which one it
used. No AWS call: the command needs no credentials.

Money is Decimal. Each line's monthly figure is its unit price times its quantity rounded to the cent,
and the totals are the sums of those figures, so the table adds up as printed.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from importlib import resources

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from provisioner.config import Config, duration_seconds
from provisioner.ecs_layout import NODE_GROUPS, SERVICES
from provisioner.errors import BadInput
from provisioner.temporal.roles import TEMPORAL_ROLES

HOURS_PER_MONTH = Decimal(730)  # AWS's own convention for monthly figures
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
CENT = Decimal("0.01")
OFF_TERMINAL_WIDTH = 160
GIB = Decimal(2**30)  # AMP counts a GB as 2^30 bytes (its pricing page)

# Estimates: what the config cannot say. Each is shown on the line it prices.
# The NAT gateway carries image pulls from public registries (UI, Grafana, busybox, the collector) and, unless
# dsql.private_link is on, every query Temporal sends to DSQL.
NAT_GB_PER_MONTH = Decimal(100)
# The interface endpoints carry logs, the metrics remote write, ECR and Secrets Manager calls and ECS Exec sessions
# (image layers come from S3 through the free gateway endpoint).
ENDPOINT_GB_PER_MONTH = Decimal(20)
# Series one Temporal server task exposes on :9090: its histograms per operation dominate. Real numbers grow with
# namespaces and task queues; read them from the workspace (count by (ecs_task) ({job=~"temporal-.*"})).
SERIES_PER_TEMPORAL_TASK = 5000
# "typically 1 or 2 bytes" per stored sample (AMP pricing page); metadata is left out. AMP keeps 150 days by default.
BYTES_PER_STORED_SAMPLE = 2
AMP_RETENTION_DAYS = 150
# CloudWatch Logs volume of one task at log_level info.
LOG_GB_PER_TASK_MONTH = Decimal(1)
# DSQL activity of a lightly loaded cluster (history's shards poll and renew leases even when idle); the
# CloudWatch metrics ComputeDPU, ReadDPU and WriteDPU give the real figure.
DSQL_MILLION_DPU_PER_MONTH = Decimal(5)
DSQL_STORAGE_GB = Decimal(10)

# Series the alert rules read on one Temporal task (provisioner/metrics/alert_rules.py): mostly the buckets of
# persistence_latency per operation, and service_requests/service_errors per operation; each over a 5-minute window.
ALERT_SERIES_PER_TASK = 1000
ALERT_WINDOW_SECONDS = 300
# Alert mails one address gets in a month (each firing, resolution and repeat is one notification).
ALERT_MAILS_PER_ADDRESS_MONTH = 300

NOT_INCLUDED = (
    "data transfer between zones and out to the internet, ECR image storage, AMP query samples of dashboards, "
    "SNS publish requests and KMS requests of the alerts (fractions of a cent), CloudWatch "
    "metrics and alarms; free tiers are not subtracted"
)


@dataclass(frozen=True)
class Line:
    """One priced item: `quantity` units of `unit` at `unit_price` each, per month."""

    item: str
    unit_price: Decimal
    unit: str  # singular, for the price: "instance-hour"
    quantity: Decimal  # at each node group's desired_capacity
    quantity_unit: str  # for the quantity: "instance-hours"
    monthly: Decimal
    quantity_at_max: Decimal  # at each node group's max_size
    monthly_at_max: Decimal
    basis: str  # where the quantity comes from; an estimate names its assumption
    source: str  # the AWS pricing page of the unit price


@dataclass(frozen=True)
class Estimate:
    project: str
    region: str
    currency: str
    prices_as_of: str
    lines: list[Line]

    @property
    def total(self) -> Decimal:
        return sum((line.monthly for line in self.lines), Decimal(0))

    @property
    def total_at_max(self) -> Decimal:
        return sum((line.monthly_at_max for line in self.lines), Decimal(0))


def default_region() -> str:
    """The region every other command would use (AWS_REGION, AWS_DEFAULT_REGION, the profile's); no credentials."""
    from provisioner.aws.session import make_session

    region = make_session().region_name
    if not region:
        raise BadInput(f"no region to price: pass --region (priced: {', '.join(priced_regions())}) or set AWS_REGION.")
    return region


def priced_regions() -> list[str]:
    folder = resources.files("provisioner").joinpath("data/prices")
    return sorted(entry.name.removesuffix(".json") for entry in folder.iterdir() if entry.name.endswith(".json"))


@lru_cache(maxsize=None)
def prices(region: str) -> dict:
    """The price table of a region, numbers as Decimal; an unpriced region is refused by name."""
    if region not in priced_regions():
        add = f", or add provisioner/data/prices/{region}.json with its prices and sources" if region else ""
        raise BadInput(
            f"no price table for region {region!r}: provision cost prices {', '.join(priced_regions())}. "
            f"Pass --region with one of them{add}."
        )
    text = resources.files("provisioner").joinpath(f"data/prices/{region}.json").read_text(encoding="utf-8")
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def line(item: str, unit_price: Decimal, unit: str, quantity: Decimal, quantity_unit: str, basis: str, source: str,
         quantity_at_max: Decimal | None = None) -> Line:
    at_max = quantity if quantity_at_max is None else quantity_at_max
    return Line(item, unit_price, unit, quantity, quantity_unit, _cents(unit_price * quantity), at_max,
                _cents(unit_price * at_max), basis, source)


def estimate(config: Config, region: str) -> Estimate:
    table = prices(region)
    lines = [
        *_node_groups(config, table, region),
        *_network(config, table),
        *_opensearch(config, table, region),
        *_prometheus(config, table),
        *_alerts(config, table),
        *_logs(config, table),
        *_dsql(config, table),
        *_secrets_and_parameters(config, table, region),
    ]
    return Estimate(config.project, region, table["currency"], table["as_of"], lines)


def _node_groups(config: Config, table: dict, region: str) -> list[Line]:
    ec2, ebs = table["ec2"], table["ebs"]
    lines = []
    for group in NODE_GROUPS:
        node = getattr(config.capacity, group)
        hourly = ec2["linux_on_demand_per_hour"].get(node.instance_type)
        if hourly is None:
            raise BadInput(
                f"capacity.{group}.instance_type = {node.instance_type!r} has no price in the {region} table; priced "
                f"types: {', '.join(ec2['linux_on_demand_per_hour'])}. Add it to provisioner/data/prices/{region}.json."
            )
        desired, most = Decimal(node.desired_capacity), Decimal(node.max_size)
        lines.append(line(
            f"EC2 {group} ({node.instance_type})", hourly, "instance-hour", desired * HOURS_PER_MONTH, "instance-hours",
            f"{node.desired_capacity} at desired_capacity, {node.max_size} at max_size",
            ec2["source"], most * HOURS_PER_MONTH))
        volume = Decimal(node.root_volume_gib)
        lines.append(line(
            f"EBS gp3 {group}", ebs["gp3_per_gb_month"], "GB-month", desired * volume, "GB-months",
            f"{node.root_volume_gib} GiB root volume per instance", ebs["source"], most * volume))
    return lines


def _network(config: Config, table: dict) -> list[Line]:
    from provisioner.steps.endpoints import ECS_SERVICES, INTERFACE_SERVICES

    vpc, link = table["vpc"], table["privatelink"]
    zones = len(config.network.private_subnet_cidrs)  # one private subnet per zone; each endpoint has a leg in each
    endpoints = [*INTERFACE_SERVICES, *(ECS_SERVICES if config.endpoints.ecs_endpoints else ()),
                 *(("dsql",) if config.dsql.private_link else ())]
    nat_traffic = "public image pulls" + ("" if config.dsql.private_link else " and DSQL queries")
    return [
        line("NAT gateway", vpc["nat_gateway_per_hour"], "gateway-hour", HOURS_PER_MONTH, "gateway-hours",
             "one NAT gateway, in the public subnet", vpc["source"]),
        line("NAT gateway data (estimate)", vpc["nat_gateway_per_gb"], "GB", NAT_GB_PER_MONTH, "GB",
             f"assumed {NAT_GB_PER_MONTH} GB a month: {nat_traffic}", vpc["source"]),
        line("Public IPv4 address (NAT)", vpc["public_ipv4_per_hour"], "address-hour", HOURS_PER_MONTH,
             "address-hours", "the NAT gateway's Elastic IP", vpc["source"]),
        line(f"Interface endpoints ({len(endpoints)} x {zones} zones)", link["interface_endpoint_per_az_hour"],
             "endpoint-AZ-hour", len(endpoints) * zones * HOURS_PER_MONTH, "endpoint-AZ-hours",
             f"{', '.join(endpoints)}, each in {zones} zones (the S3 gateway endpoint is free)", link["source"]),
        line("Interface endpoint data (estimate)", link["interface_endpoint_per_gb"], "GB", ENDPOINT_GB_PER_MONTH, "GB",
             f"assumed {ENDPOINT_GB_PER_MONTH} GB a month: logs, metrics, ECR and Secrets Manager calls, ECS Exec",
             link["source"]),
    ]


def _opensearch(config: Config, table: dict, region: str) -> list[Line]:
    search, settings = table["opensearch"], config.opensearch
    hourly = search["instance_per_hour"].get(settings.instance_type)
    if hourly is None:
        raise BadInput(
            f"opensearch.instance_type = {settings.instance_type!r} has no price in the {region} table; priced types: "
            f"{', '.join(search['instance_per_hour'])}. Add it to provisioner/data/prices/{region}.json."
        )
    count = Decimal(settings.instance_count)
    return [
        line(f"OpenSearch ({settings.instance_type})", hourly, "instance-hour", count * HOURS_PER_MONTH,
             "instance-hours", f"{settings.instance_count} data node(s)", search["source"]),
        line("OpenSearch gp3 storage", search["gp3_per_gb_month"], "GB-month", count * settings.volume_gib,
             "GB-months", f"{settings.volume_gib} GiB per data node", search["source"]),
    ]


def _prometheus(config: Config, table: dict) -> list[Line]:
    """Ingestion is tiered by samples a month: one line per tier reached."""
    amp = table["prometheus"]
    tasks = sum(getattr(config.services, role).replicas for role in TEMPORAL_ROLES)
    interval = config.collector.scrape_interval_seconds
    samples = tasks * SERIES_PER_TEMPORAL_TASK * HOURS_PER_MONTH * 3600 / interval
    basis = (f"{tasks} Temporal tasks (replicas) x {SERIES_PER_TEMPORAL_TASK:,} series each (assumed), scraped every "
             f"{interval} s: {samples:,.0f} samples a month")
    lines, left = [], samples
    for number, tier in enumerate(amp["ingestion_per_10m_samples"], start=1):
        in_tier = left if tier["samples"] is None else min(left, tier["samples"])
        if in_tier <= 0:
            break
        lines.append(line(f"AMP ingestion, tier {number} (estimate)", tier["price"], "10M samples",
                          _hundredths(in_tier / 10_000_000), "x 10M samples", basis, amp["source"]))
        left -= in_tier
    stored = samples * AMP_RETENTION_DAYS / DAYS_PER_MONTH * BYTES_PER_STORED_SAMPLE / GIB
    lines.append(line("AMP storage (estimate)", amp["storage_per_gb_month"], "GB-month", _hundredths(stored),
                      "GB-months", f"{AMP_RETENTION_DAYS} days of those samples at {BYTES_PER_STORED_SAMPLE} bytes each",
                      amp["source"]))
    return lines


def _alerts(config: Config, table: dict) -> list[Line]:
    """AMP bills the samples each rule evaluation reads (Query Samples Processed, its pricing page); the alerts
    topic's key is a customer managed KMS key; SNS bills email notifications."""
    amp, kms, sns = table["prometheus"], table["kms"], table["sns"]
    tasks = sum(getattr(config.services, role).replicas for role in TEMPORAL_ROLES)
    interval = config.collector.scrape_interval_seconds
    evaluations = HOURS_PER_MONTH * 3600 / duration_seconds(config.alerts.evaluation_interval)
    samples = tasks * ALERT_SERIES_PER_TASK * (ALERT_WINDOW_SECONDS // interval) * evaluations
    lines = [
        line("AMP alert rule evaluation (estimate)", amp["query_per_billion_samples"], "billion samples",
             _hundredths(samples / 1_000_000_000), "x 1B samples",
             f"{tasks} Temporal tasks x {ALERT_SERIES_PER_TASK:,} series read (assumed) x {ALERT_WINDOW_SECONDS} s "
             f"windows at {interval} s, every {config.alerts.evaluation_interval}: {samples:,.0f} samples a month",
             amp["source"]),
        line("KMS key (alerts topic)", kms["customer_managed_key_per_month"], "key-month", Decimal(1), "key-months",
             "one customer managed key", kms["source"]),
    ]
    if config.alerts.email:
        mails = len(config.alerts.email) * ALERT_MAILS_PER_ADDRESS_MONTH
        lines.append(line("SNS alert emails (estimate)", sns["email_per_100k_notifications"], "100K notifications",
                          _hundredths(Decimal(mails) / 100_000), "x 100K notifications",
                          f"{len(config.alerts.email)} address(es) x {ALERT_MAILS_PER_ADDRESS_MONTH} mails (assumed)",
                          sns["source"]))
    return lines


def _logs(config: Config, table: dict) -> list[Line]:
    logs = table["cloudwatch_logs"]
    tasks = sum(getattr(config.services, service).replicas for service in SERVICES)
    ingested = tasks * LOG_GB_PER_TASK_MONTH
    retention = config.logs.retention_days
    return [
        line("CloudWatch Logs ingestion (estimate)", logs["ingestion_per_gb"], "GB", ingested, "GB",
             f"{tasks} tasks (replicas of every service) x {LOG_GB_PER_TASK_MONTH} GB a month each (assumed)",
             logs["source"]),
        line("CloudWatch Logs storage (estimate)", logs["storage_per_gb_month"], "GB-month",
             _hundredths(ingested * retention / DAYS_PER_MONTH), "GB-months",
             f"{retention} days kept (logs.retention_days), uncompressed: an upper bound", logs["source"]),
    ]


def _dsql(config: Config, table: dict) -> list[Line]:
    dsql = table["dsql"]
    adopted = " (the adopted cluster)" if config.dsql.cluster_arn else ""
    return [
        line(f"Aurora DSQL activity{adopted} (estimate)", dsql["per_million_dpu"], "1M DPUs",
             DSQL_MILLION_DPU_PER_MONTH, "x 1M DPUs",
             f"assumed {DSQL_MILLION_DPU_PER_MONTH}M DPUs a month, a light load; see ComputeDPU, ReadDPU and "
             "WriteDPU in CloudWatch", dsql["source"]),
        line(f"Aurora DSQL storage{adopted} (estimate)", dsql["storage_per_gb_month"], "GB-month", DSQL_STORAGE_GB,
             "GB-months", f"assumed {DSQL_STORAGE_GB} GB of history and visibility tasks", dsql["source"]),
    ]


def _secrets_and_parameters(config: Config, table: dict, region: str) -> list[Line]:
    secrets, ssm = table["secrets_manager"], table["ssm"]
    lines = [line("Secrets Manager", secrets["per_secret_month"], "secret-month", Decimal(1), "secret-months",
                  f"the Grafana admin secret ({config.grafana.admin_secret_name})", secrets["source"])]
    advanced = _advanced_parameters(config, region)
    if advanced:
        lines.append(line("SSM Advanced parameters", ssm["advanced_parameter_per_month"], "parameter-month",
                          Decimal(len(advanced)), "parameter-months",
                          f"over 4 KB, so Advanced: {', '.join(advanced)} (Standard ones are free)", ssm["source"]))
    return lines


def _advanced_parameters(config: Config, region: str) -> list[str]:
    """The parameters the metrics_config step writes in the Advanced tier: rendered by that step itself, as `plan`
    renders them before the workspace exists (its URL then a placeholder: the sizes differ by a few dozen bytes)."""
    from types import SimpleNamespace

    from provisioner.naming import Naming
    from provisioner.steps.metrics_config import STANDARD_LIMIT, MetricsConfig

    # A plan before anything exists: every earlier step's output reads as known after apply.
    nothing_recorded = SimpleNamespace(step_records=lambda step: {})
    context = SimpleNamespace(config=config, naming=Naming(config.project, region),
                              aws=SimpleNamespace(region=region),
                              outputs_of=lambda outputs: outputs.so_far(nothing_recorded))
    return [path for path, value in MetricsConfig().values(context).items() if len(value) > STANDARD_LIMIT]


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def _hundredths(quantity: Decimal) -> Decimal:
    return Decimal(quantity).quantize(CENT, rounding=ROUND_HALF_UP)


# -- presentation ---------------------------------------------------------------------------------------------

def as_json(result: Estimate) -> dict:
    """The same numbers as the table, as JSON numbers."""
    def number(value: Decimal) -> int | float:
        return int(value) if value == value.to_integral_value() else float(value)

    return {
        "project": result.project,
        "region": result.region,
        "currency": result.currency,
        "prices_as_of": result.prices_as_of,
        "hours_per_month": number(HOURS_PER_MONTH),
        "lines": [{key: number(value) if isinstance(value, Decimal) else value for key, value in asdict(item).items()}
                  for item in result.lines],
        "total_monthly": number(result.total),
        "total_monthly_at_max": number(result.total_at_max),
        "not_included": NOT_INCLUDED,
    }


def money(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def unit_price(item: Line) -> str:
    # Cents at least ($0.90, not $0.9); finer prices keep every digit the table has ($0.1824).
    price = item.unit_price.normalize()
    shown = f"{price:f}" if -price.as_tuple().exponent > 2 else f"{price:.2f}"
    return f"${shown}/{item.unit}"


def quantity(item: Line, value: Decimal) -> str:
    shown = f"{value:,.2f}".removesuffix(".00")
    singular = value == 1 and item.quantity_unit == f"{item.unit}s"
    return f"{shown} {item.unit if singular else item.quantity_unit}"


def table(result: Estimate) -> Table:
    grid = Table()
    # On a narrow terminal the units and the basis fold; the items and the money never do.
    grid.add_column("item", no_wrap=True)
    grid.add_column("unit price", justify="right", min_width=10)
    grid.add_column("quantity", justify="right", min_width=10)
    grid.add_column("monthly", justify="right", no_wrap=True)
    grid.add_column("at max_size", justify="right", no_wrap=True)
    grid.add_column("basis", min_width=16)
    for item in result.lines:
        grid.add_row(item.item, unit_price(item), quantity(item, item.quantity), money(item.monthly),
                     money(item.monthly_at_max), item.basis)
    grid.add_section()
    grid.add_row("Total", "", "", money(result.total), money(result.total_at_max), "the sum of the lines above")
    return grid


def show(console: Console, result: Estimate) -> None:
    grid = table(result)
    if not console.is_terminal:
        # Off a terminal (CI logs, the README) the figures keep their natural width instead of folding to 80 columns;
        # only the basis column folds, past OFF_TERMINAL_WIDTH.
        natural = Measurement.get(console, console.options.update_width(10_000), grid).maximum
        console = Console(file=console.file, width=min(natural, OFF_TERMINAL_WIDTH), emoji=False)
    # A line of its own, not the table's title, which rich pads with trailing spaces.
    console.print(f"Monthly cost of {result.project} in {result.region} ({result.currency}, prices of "
                  f"{result.prices_as_of}, {HOURS_PER_MONTH} hours a month)", highlight=False, markup=False, soft_wrap=True)
    console.print(grid)
    for note in notes(result):
        console.print(note, highlight=False, markup=False, soft_wrap=True)


def notes(result: Estimate) -> list[str]:
    """What the table leaves out, and the page behind every price."""
    sources = dict.fromkeys(item.source for item in result.lines)
    return [f"Not included: {NOT_INCLUDED}.",
            f"Prices of {result.prices_as_of} (provisioner/data/prices/{result.region}.json), from:",
            *(f"  {source}" for source in sources)]
