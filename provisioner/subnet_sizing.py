"""Whether the private subnets have an address for every network interface the stack puts in them.

Every interface endpoint, node, awsvpc task and OpenSearch node takes one private IPv4 address from a
private subnet; a subnet too small makes `up` fail part-way (CreateVpcEndpoint, RunInstances or a task
that never starts), so `validate` and `plan` refuse it first. What is counted, from the config:

- 5 addresses per subnet that AWS reserves: the network address, the VPC router, DNS, one for future use
  and the broadcast address (VPC user guide, subnet-sizing.html);
- one ENI per interface endpoint in every private subnet (steps/endpoints.py puts each endpoint in all of
  them);
- one address per node at every group's max_size, and one more per node with ENI trunking (its trunk
  interface);
- one address per awsvpc task: every service's replicas at the deployment maximumPercent (a rolling
  deployment starts the new tasks before it stops the old ones), and the schema tasks;
- three per OpenSearch data node: "the number of IP addresses that OpenSearch Service reserves in each
  subnet is three times the number of data nodes, divided by the number of Availability Zones" (OpenSearch
  developer guide, vpc.html, Reserving IP addresses in a VPC subnet); the domain lives in one zone.

The endpoints are in every subnet, so each subnet must hold its own; the rest may land in any subnet, so
it is compared with what all of them have left. A necessary condition, as in provisioner/placement_check.py.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from provisioner.config import Config

AWS_RESERVED_PER_SUBNET = 5
OPENSEARCH_ADDRESSES_PER_NODE = 3


@dataclass(frozen=True)
class AddressNeed:
    endpoints_per_subnet: int
    nodes: int
    tasks: int
    schema_tasks: int
    opensearch: int

    @property
    def anywhere(self) -> int:
        return self.nodes + self.tasks + self.schema_tasks + self.opensearch


def address_need(config: Config) -> AddressNeed:
    from provisioner.ecs_layout import SERVICES
    from provisioner.steps.ecs_services import DEPLOYMENT_MAXIMUM_PERCENT
    from provisioner.steps.endpoints import ECS_SERVICES, INTERFACE_SERVICES
    from provisioner.temporal.schema_tasks import SCHEMA_TASKS

    endpoints = (len(INTERFACE_SERVICES) + (len(ECS_SERVICES) if config.endpoints.ecs_endpoints else 0)
                 + (1 if config.dsql.private_link else 0))
    groups = [config.capacity.history, config.capacity.frontend, config.capacity.worker]
    nodes = sum(g.max_size for g in groups) * (2 if config.capacity.eni_trunking else 1)
    replicas = sum(getattr(config.services, name).replicas for name in SERVICES)
    tasks = -(-replicas * DEPLOYMENT_MAXIMUM_PERCENT // 100)
    opensearch = OPENSEARCH_ADDRESSES_PER_NODE * config.opensearch.instance_count
    return AddressNeed(endpoints, nodes, tasks, len(SCHEMA_TASKS), opensearch)


def private_subnet_problems(config: Config) -> list[str]:
    """Why the private subnets cannot hold the stack's interfaces, naming the subnets and the numbers."""
    from provisioner.steps.ecs_services import DEPLOYMENT_MAXIMUM_PERCENT

    need = address_need(config)
    subnets = [ipaddress.ip_network(c) for c in config.network.private_subnet_cidrs]
    fixed = AWS_RESERVED_PER_SUBNET + need.endpoints_per_subnet
    problems = [
        f"network.private_subnet_cidrs: {subnet} has {subnet.num_addresses} addresses, fewer than the {fixed} it "
        f"needs for itself ({AWS_RESERVED_PER_SUBNET} that AWS reserves in every subnet and one for each of the "
        f"{need.endpoints_per_subnet} interface endpoints). Give it a larger range (a /24 has 256 addresses)."
        for subnet in subnets if subnet.num_addresses < fixed
    ]
    if problems:
        return problems
    left = sum(s.num_addresses - fixed for s in subnets)
    if left >= need.anywhere:
        return []
    trunk = " (and their trunk interfaces)" if config.capacity.eni_trunking else ""
    return [
        f"network.private_subnet_cidrs: {', '.join(map(str, subnets))} have {left} addresses left after the "
        f"{AWS_RESERVED_PER_SUBNET} AWS reserves and the {need.endpoints_per_subnet} interface endpoint ENIs in "
        f"each, but the stack needs {need.anywhere}: {need.nodes} for the nodes at capacity.*.max_size{trunk}, "
        f"{need.tasks} for the services' tasks (their replicas at the {DEPLOYMENT_MAXIMUM_PERCENT}% a rolling "
        "deployment may run), "
        f"{need.schema_tasks} for the schema tasks and {need.opensearch} for OpenSearch (3 per data node). "
        "Give the private subnets larger ranges (a /24 has 256 addresses)."
    ]
