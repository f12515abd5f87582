"""Named, tested fixes to moto where it mis-implements something this stack relies on.

Applied by the embedded emulator (and the test harness) before it serves a request;
each patch is the smallest change that makes moto answer as AWS does.
"""
from __future__ import annotations

_applied = False


def nat_gateway_tag_filters() -> None:
    """DescribeNatGateways ignores `tag:*`, `tag-key` and `tag-value` filters in moto 5.2.

    AWS applies them, and the tool finds its NAT gateway by tags after a crash or a lost
    state: without this, another project's NAT gateway in the same account would match.
    """
    from moto.ec2.models.nat_gateways import NatGatewayBackend
    from moto.ec2.utils import tag_filter_matches

    original = NatGatewayBackend.describe_nat_gateways

    def describe_nat_gateways(self, filters, nat_gateway_ids):
        found = original(self, filters, nat_gateway_ids)
        tag_filters = {
            name: values for name, values in (filters or {}).items()
            if name.startswith("tag:") or name in ("tag-key", "tag-value")
        }
        return [n for n in found if all(tag_filter_matches(n, k, v) for k, v in tag_filters.items())]

    NatGatewayBackend.describe_nat_gateways = describe_nat_gateways


PATCHES = (nat_gateway_tag_filters,)


def apply() -> None:
    global _applied
    if _applied:
        return
    for patch in PATCHES:
        patch()
    _applied = True
