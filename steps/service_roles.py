"""The account-wide service-linked roles the stack relies on: ECS's and OpenSearch's.

AWS usually creates them on first use, but not always in time: CreateDomain with VPCOptions fails
on an account that never had a VPC domain ("you must enable a service-linked role"), and the first
CreateService or RunTask of an account can fail with "Unable to assume the service linked role.
Please verify that the ECS service linked role exists." So they are made here, before anything
needs them. They belong to the account, not to this project: `destroy` keeps them and says so.
"""
from __future__ import annotations

from provisioner.aws.converge import create_without_twins
from provisioner.aws.kinds import Desired
from provisioner.aws.named_kinds import SERVICE_LINKED_ROLE, account_roles, create_service_linked_role
from provisioner.engine import Step, StepContext

# key -> (AWSServiceName, the role AWS names for it): opensearch-service/latest/developerguide/slr-aos.html,
# AmazonECS/latest/developerguide/using-service-linked-roles.html.
ROLES = {
    "ecs": ("ecs.amazonaws.com", "AWSServiceRoleForECS"),
    "opensearch": ("opensearchservice.amazonaws.com", "AWSServiceRoleForAmazonOpenSearchService"),
}


class ServiceRoles(Step):
    name = "service_roles"
    title = "Service-linked roles"

    def apply(self, ctx: StepContext) -> None:
        for key, (service, role_name) in ROLES.items():
            role = account_roles(ctx.aws).get(role_name)
            if role is None:
                # Untagged and named by AWS: not converge()'s to find, but its kind still makes it.
                desired = Desired(key, role_name, {}, "", {}, {"AWSServiceName": service})

                def create(desired: Desired = desired, role_name: str = role_name) -> dict | None:
                    return create_without_twins(lambda: create_service_linked_role(ctx.aws, desired),
                                                lambda: SERVICE_LINKED_ROLE.get(ctx.aws, role_name), role_name)

                role = ctx.change("create", SERVICE_LINKED_ROLE.noun, key, f"{role_name}, account-wide", act=create)
            if role is not None and not ctx.dry_run:
                ctx.record(key, role["Arn"], kind=SERVICE_LINKED_ROLE.kind, name=role_name)

    def destroy(self, ctx: StepContext) -> None:
        for key in list(ctx.state.step_records(self.name)):
            ctx.state.forget(self.name, key)
        names = ", ".join(name for _, name in ROLES.values())
        ctx.note(
            f"Kept the account-wide service-linked roles {names}: other stacks in this account may use them. "
            "If nothing else does, delete each with: aws iam delete-service-linked-role --role-name NAME"
        )

    def outputs(self, ctx: StepContext) -> dict:
        records = ctx.state.step_records(self.name)
        return {"service_linked_roles": {key: record["id"] for key, record in sorted(records.items())}} if records else {}
