"""The pipeline, in order. Each step names the steps it needs; independent ones run side by side."""
from provisioner.steps.alerts import Alerts
from provisioner.steps.autoscaling import Autoscaling
from provisioner.steps.cluster import Cluster
from provisioner.steps.dsql import Dsql
from provisioner.steps.ecr import Ecr
from provisioner.steps.ecs_services import Services
from provisioner.steps.endpoints import Endpoints
from provisioner.steps.iam import Iam
from provisioner.steps.logs import Logs
from provisioner.steps.metrics_config import MetricsConfig
from provisioner.steps.nat_route import NatRoute
from provisioner.steps.network import Network
from provisioner.steps.node_groups import NodeGroups
from provisioner.steps.opensearch import OpenSearch
from provisioner.steps.placement import Placement
from provisioner.steps.prometheus import Prometheus
from provisioner.steps.secret import Secret
from provisioner.steps.security_groups import SecurityGroups
from provisioner.steps.service_roles import ServiceRoles
from provisioner.steps.task_definitions import TaskDefinitions


def pipeline():
    return [
        Secret(), ServiceRoles(), Dsql(), Ecr(), Network(), NatRoute(), Endpoints(), Prometheus(), Alerts(), Logs(), Iam(), SecurityGroups(), Cluster(),
        MetricsConfig(), OpenSearch(), Placement(), NodeGroups(), TaskDefinitions(), Services(),
        Autoscaling(),
    ]
