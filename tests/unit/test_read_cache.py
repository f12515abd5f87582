"""One run's shared reads (provisioner/aws/reads.py): read once per run, dropped by any write to the service."""
from __future__ import annotations

import threading

from provisioner.aws.reads import RunReads, is_mutating


class Loads:
    """A stand-in for a describe call: counts how often it was asked, answers with a fresh value each time."""

    def __init__(self, answer: str = "answer") -> None:
        self.answer = answer
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"{self.answer}-{self.count}"


def test_outside_a_run_every_read_asks_again():
    reads, load = RunReads(), Loads()
    assert (reads.read("ec2", "vpcs", load), reads.read("ec2", "vpcs", load)) == ("answer-1", "answer-2")


def test_within_a_run_a_read_is_asked_once_and_shared():
    reads, load = RunReads(), Loads()
    with reads.run():
        assert [reads.read("ec2", "vpcs", load) for _ in range(3)] == ["answer-1"] * 3
    assert load.count == 1


def test_answers_are_kept_per_question():
    reads, vpcs, subnets = RunReads(), Loads("vpcs"), Loads("subnets")
    with reads.run():
        assert reads.read("ec2", "vpcs", vpcs) == "vpcs-1"
        assert reads.read("ec2", "subnets", subnets) == "subnets-1"


def test_the_answers_are_forgotten_when_the_run_ends():
    reads, load = RunReads(), Loads()
    with reads.run():
        reads.read("ec2", "vpcs", load)
    with reads.run():
        assert reads.read("ec2", "vpcs", load) == "answer-2"


def test_a_nested_run_keeps_the_answers_until_the_outer_one_ends():
    reads, load = RunReads(), Loads()
    with reads.run():
        with reads.run():
            reads.read("ec2", "vpcs", load)
        assert reads.read("ec2", "vpcs", load) == "answer-1"


def test_a_write_to_a_service_drops_its_answers_only():
    reads, vpcs, roles = RunReads(), Loads("vpcs"), Loads("roles")
    with reads.run():
        reads.read("ec2", "vpcs", vpcs)
        reads.read("iam", "roles", roles)
        reads.on_call("before-call.ec2.CreateVpc")
        assert reads.read("ec2", "vpcs", vpcs) == "vpcs-2"
        assert reads.read("iam", "roles", roles) == "roles-1"


def test_a_read_call_drops_nothing():
    reads, load = RunReads(), Loads()
    with reads.run():
        reads.read("ec2", "vpcs", load)
        for event in ("before-call.ec2.DescribeVpcs", "after-call.ec2.DescribeVpcs"):
            reads.on_call(event)
        assert reads.read("ec2", "vpcs", load) == "answer-1"


def test_an_answer_read_while_a_write_was_in_flight_is_not_kept():
    reads = RunReads()
    load = Loads()

    def read_during_a_write() -> str:
        answer = load()
        reads.on_call("before-call.ec2.CreateSubnet")  # another step writes while this answer travels
        return answer

    with reads.run():
        assert reads.read("ec2", "subnets", read_during_a_write) == "answer-1"
        assert reads.read("ec2", "subnets", load) == "answer-2"


def test_two_steps_asking_at_once_make_one_call():
    reads = RunReads()
    asked, release = threading.Event(), threading.Event()
    calls = []

    def slow_describe() -> str:
        calls.append(1)
        asked.set()
        assert release.wait(10)
        return "vpcs"

    answers = []
    with reads.run():
        first = threading.Thread(target=lambda: answers.append(reads.read("ec2", "vpcs", slow_describe)))
        first.start()
        assert asked.wait(10)
        second = threading.Thread(target=lambda: answers.append(reads.read("ec2", "vpcs", slow_describe)))
        second.start()
        second.join(0.05)
        assert second.is_alive(), "the second asker did not wait for the first one's answer"
        release.set()
        first.join(10)
        second.join(10)
    assert answers == ["vpcs", "vpcs"] and calls == [1]


def test_reads_are_the_describe_list_and_get_calls_and_everything_else_writes():
    assert not any(map(is_mutating, ("DescribeVpcs", "ListRoles", "GetParameter", "SearchResources",
                                     "LookupEvents")))
    assert all(map(is_mutating, ("CreateVpc", "PutParameter", "DeleteRole", "TagResource", "UpdateService",
                                 "RegisterTaskDefinition", "RunTask")))


def test_an_answer_set_aside_is_taken_once_whatever_the_run_writes_meanwhile():
    reads = RunReads()
    with reads.run():
        reads.set_aside(("find", "log-group", "log-history"), [])
        reads.on_call("before-call.cloudwatch-logs.CreateLogGroup")
        assert reads.take_aside(("find", "log-group", "log-history")) == []
        assert reads.take_aside(("find", "log-group", "log-history")) is None


def test_nothing_is_set_aside_outside_a_run_nor_kept_after_it():
    reads = RunReads()
    reads.set_aside("question", "outside")
    with reads.run():
        assert reads.take_aside("question") is None
        reads.set_aside("question", "inside")
    with reads.run():
        assert reads.take_aside("question") is None
