"""The pipeline, in order. Each step names the steps it needs; independent ones run side by side."""
from steps.endpoints import Endpoints
from steps.nat_route import NatRoute
from steps.network import Network


def pipeline():
    return [Network(), NatRoute(), Endpoints()]
