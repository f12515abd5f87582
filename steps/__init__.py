"""The pipeline, in order. Each step names the steps it needs; independent ones run side by side."""
from steps.autoscaling import Autoscaling
from steps.cluster import Cluster
from steps.dsql import Dsql
from steps.ecr import Ecr
from steps.ecs_services import Services
from steps.endpoints import Endpoints
from steps.iam import Iam
from steps.logs import Logs
from steps.metrics_config import MetricsConfig
from steps.nat_route import NatRoute
from steps.network import Network
from steps.node_groups import NodeGroups
from steps.opensearch import OpenSearch
from steps.placement import Placement
from steps.prometheus import Prometheus
from steps.secret import Secret
from steps.security_groups import SecurityGroups
from steps.service_roles import ServiceRoles
from steps.task_definitions import TaskDefinitions


def pipeline():
    return [
        Secret(), ServiceRoles(), Dsql(), Ecr(), Network(), NatRoute(), Endpoints(), Prometheus(), Logs(), Iam(), SecurityGroups(), Cluster(),
        MetricsConfig(), OpenSearch(), Placement(), NodeGroups(), TaskDefinitions(), Services(),
        Autoscaling(),
    ]
