"""The network layer as created in the emulator: seed properties 1 and 4, plan, status and outputs."""
from __future__ import annotations

import ipaddress

import boto3
import pytest

from provisioner import operations
from provisioner.emulator.patches import NAT_DELAY_SETTING
from provisioner.steps.endpoints import ECS_SERVICES, INTERFACE_SERVICES
from tests.conftest import (
    PROJECT,
    REGION,
    CallLog,
    Requests,
    build_stack,
    make_config,
    new_aws,
    own_emulator,
    up_ok,
    world,
)


def ec2():
    return boto3.client("ec2", region_name=REGION)


def project_vpc():
    vpcs = ec2().describe_vpcs(Filters=[{"Name": "tag:Project", "Values": [PROJECT]}])["Vpcs"]
    assert len(vpcs) == 1
    return vpcs[0]


@pytest.fixture(scope="module")
def stack(moto_endpoint, tmp_path_factory):
    """One default stack for the read-only tests of this module."""
    return build_stack(moto_endpoint, tmp_path_factory)


def test_property_1_private_only_networking(stack):
    client = ec2()
    vpc = project_vpc()
    subnets = client.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
    tiers = {s["SubnetId"]: {t["Key"]: t["Value"] for t in s["Tags"]}["ProvisionKey"] for s in subnets}
    assert all(not s["MapPublicIpOnLaunch"] for s in subnets)
    assert all(not s.get("AssignIpv6AddressOnCreation") for s in subnets)

    tables = client.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["RouteTables"]
    default_route = {}
    for table in tables:
        for association in table.get("Associations", []):
            if association.get("SubnetId"):
                routes = [r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
                default_route[association["SubnetId"]] = routes[0] if routes else None
    for subnet_id, key in tiers.items():
        route = default_route[subnet_id]
        if key == "public-nat":
            assert route["GatewayId"].startswith("igw-")
        else:
            assert route is not None and route.get("NatGatewayId", "").startswith("nat-"), key
            assert not route.get("GatewayId", "").startswith("igw-")

    public = [s for s, k in tiers.items() if k == "public-nat"]
    nats = client.describe_nat_gateways(Filter=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["NatGateways"]
    assert [n["SubnetId"] for n in nats] == public
    nat_interfaces = {a["NetworkInterfaceId"] for n in nats for a in n["NatGatewayAddresses"]}
    interfaces = client.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["NetworkInterfaces"]
    in_public = {i["NetworkInterfaceId"] for i in interfaces if i["SubnetId"] in public}
    assert in_public == nat_interfaces
    with_public_ip = {i["NetworkInterfaceId"] for i in interfaces if i.get("Association", {}).get("PublicIp")}
    assert with_public_ip == nat_interfaces

    groups = client.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["SecurityGroups"]
    for group in groups:
        for rule in group["IpPermissions"]:
            assert all(r["CidrIp"] != "0.0.0.0/0" for r in rule.get("IpRanges", [])), group["GroupId"]
            assert all(r["CidrIpv6"] != "::/0" for r in rule.get("Ipv6Ranges", [])), group["GroupId"]


def test_vpc_has_dns_support_and_hostnames(stack):
    vpc_id = project_vpc()["VpcId"]
    for attribute, field in (("enableDnsSupport", "EnableDnsSupport"), ("enableDnsHostnames", "EnableDnsHostnames")):
        assert ec2().describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)[field]["Value"] is True


def test_private_subnets_spread_over_distinct_zones(stack):
    config, _, _ = stack
    subnets = ec2().describe_subnets(Filters=[{"Name": "vpc-id", "Values": [project_vpc()["VpcId"]]}])["Subnets"]
    private = [s for s in subnets if s["CidrBlock"] in config.network.private_subnet_cidrs]
    assert sorted(s["CidrBlock"] for s in private) == sorted(config.network.private_subnet_cidrs)
    assert len({s["AvailabilityZone"] for s in private}) == len(private)


def test_plan_after_up_shows_no_changes(stack):
    config, state_path, _ = stack
    assert operations.plan(config, new_aws(), state_path, quiet=True).changes == []


def test_outputs_name_the_network(stack):
    config, state_path, _ = stack
    values = operations.outputs(config, new_aws(), state_path)
    vpc = project_vpc()
    assert values["vpc_id"] == vpc["VpcId"]
    assert len(values["private_subnet_ids"]) == len(config.network.private_subnet_cidrs)
    assert values["nat_gateway_id"].startswith("nat-")
    assert set(values["vpc_endpoints"]) == {f"vpce-{s.replace('.', '-')}" for s in INTERFACE_SERVICES} | {"vpce-s3"}
    for cidr in config.network.private_subnet_cidrs:
        assert ipaddress.ip_network(cidr).subnet_of(ipaddress.ip_network(vpc["CidrBlock"]))



def test_property_4_vpc_endpoint_completeness(stack):
    """The default: no ECS endpoints (endpoints.ecs_endpoints is off)."""
    config, _, _ = stack
    assert config.endpoints.ecs_endpoints is False
    assert_vpc_endpoints_complete(config)


# Tests below build their own stack in a clean account.
def test_property_4_vpc_endpoint_completeness_with_the_ecs_endpoints(endpoint, state_path):
    config = make_config(endpoints={"ecs_endpoints": True})
    up_ok(config, new_aws(), state_path)
    assert_vpc_endpoints_complete(config)


def assert_vpc_endpoints_complete(config) -> None:
    """Every endpoint the config asks for, interface ones in every private subnet behind one HTTPS-only group."""
    ecs_endpoints = config.endpoints.ecs_endpoints
    client = ec2()
    vpc = project_vpc()
    endpoints = client.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["VpcEndpoints"]
    by_service = {e["ServiceName"].removeprefix(f"com.amazonaws.{REGION}."): e for e in endpoints}
    expected = set(INTERFACE_SERVICES) | (set(ECS_SERVICES) if ecs_endpoints else set()) | {"s3"}
    assert set(by_service) == expected

    private_subnets = {
        s["SubnetId"] for s in client.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
        if s["CidrBlock"] in config.network.private_subnet_cidrs
    }
    group_ids = set()
    for service, ep in by_service.items():
        if service == "s3":
            continue
        assert ep["VpcEndpointType"] == "Interface"
        assert ep["PrivateDnsEnabled"] is True
        assert set(ep["SubnetIds"]) == private_subnets
        group_ids |= {g["GroupId"] for g in ep["Groups"]}

    assert len(group_ids) == 1
    (group,) = client.describe_security_groups(GroupIds=list(group_ids))["SecurityGroups"]
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"], [x["CidrIp"] for x in r["IpRanges"]], r["UserIdGroupPairs"])
            for r in group["IpPermissions"]] == [("tcp", 443, 443, [vpc["CidrBlock"]], [])]

    s3 = by_service["s3"]
    assert s3["VpcEndpointType"] == "Gateway"
    private_tables = client.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": sorted(private_subnets)}]
    )["RouteTables"]
    assert {t["RouteTableId"] for t in private_tables} == set(s3["RouteTableIds"])


def test_switching_ecs_endpoints_off_deletes_them(endpoint, state_path):
    on = make_config(endpoints={"ecs_endpoints": True})
    up_ok(on, new_aws(), state_path)
    off = make_config()
    up_ok(off, new_aws(), state_path)
    keys = [k for kind, k in world() if kind == "VpcEndpoint"]
    assert not [k for k in keys if k in ("vpce-ecs", "vpce-ecs-agent", "vpce-ecs-telemetry")]
    assert len(keys) == len(INTERFACE_SERVICES) + 1


def test_explicit_availability_zones_are_used(endpoint, state_path):
    config = make_config(
        network={"availability_zones": ["eu-west-1c", "eu-west-1b"], "private_subnet_cidrs": ["10.0.0.0/20", "10.0.16.0/20"]},
    )
    up_ok(config, new_aws(), state_path)
    subnets = {s["CidrBlock"]: s["AvailabilityZone"] for s in ec2().describe_subnets(
        Filters=[{"Name": "tag:Project", "Values": [PROJECT]}])["Subnets"]}
    assert subnets["10.0.0.0/20"] == "eu-west-1c"
    assert subnets["10.0.16.0/20"] == "eu-west-1b"


def test_plan_lists_creations_and_calls_nothing_mutating(endpoint, config, state_path):
    log = CallLog()
    result = operations.plan(config, new_aws(("before-call", log)), state_path, quiet=True)
    assert result.ok
    assert log.mutating == []
    assert world() == []
    created = {(c.noun, c.key) for c in result.changes if c.action == "create"}
    assert ("VPC", "vpc") in created and ("NAT gateway", "nat") in created
    assert ("VPC endpoint", "vpce-s3") in created


def test_plan_announces_exactly_what_up_then_does(endpoint, config, state_path):
    def what(changes):
        return sorted((c.step, c.action, c.noun, c.key) for c in changes)

    planned = operations.plan(config, new_aws(), state_path, quiet=True)
    done = up_ok(config, new_aws(), state_path)
    assert what(planned.changes) == what(done.changes)


def test_status_reports_missing_drifted_and_untracked(aws, config, state_path):
    up_ok(config, aws, state_path)
    client = ec2()
    state = operations.outputs(config, aws, state_path)
    ssm_endpoint = next(
        e["VpcEndpointId"] for e in client.describe_vpc_endpoints()["VpcEndpoints"]
        if e["ServiceName"].endswith(".ssm")
    )
    client.delete_vpc_endpoints(VpcEndpointIds=[ssm_endpoint])
    client.modify_vpc_attribute(VpcId=state["vpc_id"], EnableDnsHostnames={"Value": False})
    stray = client.create_security_group(
        GroupName="stray", Description="stray", VpcId=state["vpc_id"],
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [
            {"Key": "Project", "Value": PROJECT}, {"Key": "ManagedBy", "Value": "provision"},
            {"Key": "ProvisionStep", "Value": "endpoints"}, {"Key": "ProvisionKey", "Value": "stray"}]}],
    )["GroupId"]

    rows = operations.status(config, aws, state_path)
    by_status = {}
    for row in rows:
        by_status.setdefault(row.status, []).append(row)
    assert [r.key for r in by_status["missing"]] == ["vpce-ssm"]
    assert [r.id for r in by_status["untracked"]] == [stray]
    assert any("enableDnsHostnames" in r.detail for r in by_status["drifted"])

    up_ok(config, aws, state_path)
    assert ec2().describe_vpc_attribute(VpcId=state["vpc_id"], Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"]
    assert "vpce-ssm" in [k for kind, k in world() if kind == "VpcEndpoint"]


def test_a_nat_gateway_deleted_out_of_band_is_replaced_on_its_address_and_routed(endpoint, config, state_path):
    """AWS frees the address once the NAT gateway is deleted ("Deleting a public NAT gateway disassociates its
    Elastic IP address", EC2 API reference, DeleteNatGateway); the replacement takes the same address."""
    up_ok(config, new_aws(), state_path)
    (old,) = ec2().describe_nat_gateways(Filter=[{"Name": "tag:Project", "Values": [PROJECT]}])["NatGateways"]
    ec2().delete_nat_gateway(NatGatewayId=old["NatGatewayId"])
    up_ok(config, new_aws(), state_path)
    live = [n for n in ec2().describe_nat_gateways(Filter=[{"Name": "tag:Project", "Values": [PROJECT]}])["NatGateways"]
            if n["State"] not in ("deleting", "deleted")]
    (replacement,) = live
    assert replacement["NatGatewayAddresses"][0]["AllocationId"] == old["NatGatewayAddresses"][0]["AllocationId"]
    private = ec2().describe_route_tables(Filters=[{"Name": "tag:ProvisionKey", "Values": ["private-routes"]},
                                                   {"Name": "tag:Project", "Values": [PROJECT]}])["RouteTables"][0]
    (default,) = [r for r in private["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    assert default["NatGatewayId"] == replacement["NatGatewayId"]
    assert up_ok(config, new_aws(), state_path).changes == []


def test_a_nat_gateway_address_held_by_something_else_is_named_not_waited_for(endpoint, config, state_path):
    up_ok(config, new_aws(), state_path)
    (old,) = ec2().describe_nat_gateways(Filter=[{"Name": "tag:Project", "Values": [PROJECT]}])["NatGateways"]
    allocation = old["NatGatewayAddresses"][0]["AllocationId"]
    ec2().delete_nat_gateway(NatGatewayId=old["NatGatewayId"])
    subnet = old["SubnetId"]
    interface = ec2().create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    ec2().associate_address(AllocationId=allocation, NetworkInterfaceId=interface)
    result = operations.up(config, new_aws(), state_path, quiet=True)
    assert not result.ok
    (message,) = [str(error) for step, error in result.errors if step == "network"]
    assert f"is associated with {interface}, not with a NAT gateway being deleted" in message


def test_up_waits_for_a_nat_gateway_deleted_out_of_band_to_free_its_address(moto_endpoint, config, tmp_path, monkeypatch):
    """In AWS a deleted NAT gateway is "deleting" for a while and holds its address until "deleted"; a
    CreateNatGateway before that fails (Resource.AlreadyAssociated). The slow-NAT hook behaves so."""
    with own_emulator(tmp_path / "slow-nat", monkeypatch, **{NAT_DELAY_SETTING: "2"}):
        state = tmp_path / "state.json"
        up_ok(config, new_aws(), state)
        (old,) = ec2().describe_nat_gateways(Filter=[{"Name": "tag:Project", "Values": [PROJECT]}])["NatGateways"]
        ec2().delete_nat_gateway(NatGatewayId=old["NatGatewayId"])
        sent = Requests()
        up_ok(config, new_aws(("provide-client-params", sent)), state)
        operations_sent = [name for name, _ in sent.sent]
        create = operations_sent.index("ec2.CreateNatGateway")
        assert "ec2.DescribeAddresses" in operations_sent[:create]
        (request,) = sent.of("ec2.CreateNatGateway")
        assert request["AllocationId"] == old["NatGatewayAddresses"][0]["AllocationId"]
        states = {n["NatGatewayId"]: n["State"] for n in ec2().describe_nat_gateways(
            Filter=[{"Name": "tag:Project", "Values": [PROJECT]}])["NatGateways"]}
        assert states.pop(old["NatGatewayId"]) == "deleted" and list(states.values()) == ["available"]


def test_ingress_changed_out_of_band_is_put_back_and_a_held_one_is_read_without_rule_ids(aws, config, state_path):
    """A rule added out of band is revoked by its ID and a removed one authorized again; while a group holds
    exactly its rules, its DescribeSecurityGroups item says so and no rule IDs are asked for."""
    up_ok(config, aws, state_path)
    group = operations.outputs(config, aws, state_path)["security_groups"]["history"]
    client = ec2()
    held = [r for r in client.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroupRules"] if not r["IsEgress"]]
    removed = held[0]
    client.revoke_security_group_ingress(GroupId=group, SecurityGroupRuleIds=[removed["SecurityGroupRuleId"]])
    client.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])

    log = CallLog()
    result = up_ok(config, new_aws(("before-call", log)), state_path)

    assert sorted(c.detail for c in result.changes if c.key == "sg-history") == [
        "allow 1 ingress rules", "revoke 1 ingress rules not in the config"]
    after = [r for r in client.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroupRules"] if not r["IsEgress"]]
    assert sorted((r["FromPort"], r.get("ReferencedGroupInfo", {}).get("GroupId")) for r in after) == sorted(
        (r["FromPort"], r.get("ReferencedGroupInfo", {}).get("GroupId")) for r in held)
    assert "ec2.DescribeSecurityGroupRules" in log.calls
    quiet = CallLog()
    assert up_ok(config, new_aws(("before-call", quiet)), state_path).changes == []
    assert "ec2.DescribeSecurityGroupRules" not in quiet.calls
