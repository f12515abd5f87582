"""Sessions share the process's one loader of botocore's data (provisioner/aws/session.py share_data_loader):
a service model parsed once serves every later session, and a session still makes working clients."""
from __future__ import annotations

from provisioner.aws.session import make_session


def test_every_session_of_the_process_reads_models_through_one_loader():
    first, second = make_session(region="eu-west-1"), make_session(region="eu-west-1")
    assert first._session.get_component("data_loader") is second._session.get_component("data_loader")


def test_a_model_parsed_for_one_session_is_not_parsed_again_for_the_next():
    first = make_session(region="eu-west-1").client("ec2").meta.service_model
    second = make_session(region="eu-west-1").client("ec2").meta.service_model
    assert first._service_description is second._service_description


def test_making_sessions_does_not_grow_the_shared_loader_search_path():
    loader = make_session(region="eu-west-1")._session.get_component("data_loader")
    paths = list(loader.search_paths)
    for _ in range(3):
        make_session(region="eu-west-1")
    assert loader.search_paths == paths


def test_a_session_with_the_shared_loader_makes_clients_of_its_own_region():
    client = make_session(region="us-east-2").client("ecs")
    assert client.meta.region_name == "us-east-2"
    assert client.meta.service_model.service_name == "ecs"
