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


def describe_all_capacity_providers() -> None:
    """DescribeCapacityProviders without `capacityProviders` fails with a 500 in moto 5.2.

    AWS answers with every provider of the account; the tool lists its own that way when the
    state is lost, so that `destroy` still finds them.
    """
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.describe_capacity_providers

    def describe_capacity_providers(self, names):
        return original(self, names if names is not None else list(self.capacity_providers))

    EC2ContainerServiceBackend.describe_capacity_providers = describe_capacity_providers


def launch_template_user_data() -> None:
    """An Auto Scaling group fails (500) on a launch template with UserData in moto 5.2.

    moto keeps the template's UserData as the plain base64 string it received and then asserts
    it is its own Base64EncodedString type when the group launches instances.
    """
    from moto.core.types import Base64EncodedString
    from moto.ec2.models.launch_templates import LaunchTemplateVersion

    def user_data(self):
        value = self.data.get("UserData")
        return Base64EncodedString(value) if isinstance(value, str) else value

    LaunchTemplateVersion.user_data = property(user_data)


def launch_template_own_tags() -> None:
    """CreateLaunchTemplate copies the template's own tags into version 1's LaunchTemplateData in moto 5.2.

    AWS keeps the tags of the launch-template resource apart from the tags its instances get;
    with moto's copy, version 1 never equals the data the tool sent, so every first run made a
    needless version 2.
    """
    from moto.ec2.models.launch_templates import LaunchTemplateBackend

    original = LaunchTemplateBackend.create_launch_template

    def create_launch_template(self, name, description, template_data, tag_spec):
        specs = template_data.get("TagSpecifications")
        if specs:
            template_data = template_data | {
                "TagSpecifications": [s for s in specs if s.get("ResourceType") != "launch-template"]
            }
            if not template_data["TagSpecifications"]:
                del template_data["TagSpecifications"]
        return original(self, name, description, template_data, tag_spec)

    LaunchTemplateBackend.create_launch_template = create_launch_template


NAT_DELAY_SETTING = "PROVISION_EMULATOR_NAT_SECONDS"


def slow_nat_gateways() -> None:
    """An opt-in emulator hook: NAT gateways stay "pending" for a while, as in AWS (minutes there).

    moto makes every NAT gateway available at once, so nothing would show whether the tool
    waits for it only where it must. With PROVISION_EMULATOR_NAT_SECONDS set, a new NAT
    gateway turns available that many seconds after it was created.
    """
    import os
    import time

    from moto.ec2.models.nat_gateways import NatGateway, NatGatewayBackend

    delay = float(os.environ.get(NAT_DELAY_SETTING, "0") or 0)
    if delay <= 0:
        return
    original_init = NatGateway.__init__
    original_describe = NatGatewayBackend.describe_nat_gateways

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.state = "pending"
        self.available_at = time.monotonic() + delay

    def describe_nat_gateways(self, filters, nat_gateway_ids):
        found = original_describe(self, filters, nat_gateway_ids)
        for nat in found:
            if nat.state == "pending" and time.monotonic() >= getattr(nat, "available_at", 0):
                nat.state = "available"
        return found

    NatGateway.__init__ = __init__
    NatGatewayBackend.describe_nat_gateways = describe_nat_gateways


PATCHES = (
    nat_gateway_tag_filters,
    describe_all_capacity_providers,
    launch_template_user_data,
    launch_template_own_tags,
    slow_nat_gateways,
)


def apply() -> None:
    global _applied
    if _applied:
        return
    for patch in PATCHES:
        patch()
    _applied = True
