"""One bound per run on each client's AWS requests in flight, whatever the threads that send them (CallLimit)."""
from __future__ import annotations

import threading

from provisioner.aws.run_pool import MAX_CONCURRENT_CALLS, side_by_side
from provisioner.aws.session import CallLimit


class Wire:
    """A stand-in for the HTTP send a CallLimit bounds: counts the requests on it, and holds them until let go."""

    def __init__(self):
        self.on_wire = 0
        self.peak = 0
        self.sent = 0
        self.changed = threading.Condition()
        self.let_go = threading.Event()

    def send(self) -> None:
        with self.changed:
            self.on_wire += 1
            self.peak = max(self.peak, self.on_wire)
            self.changed.notify_all()
        self.let_go.wait()
        with self.changed:
            self.on_wire -= 1
            self.sent += 1


def test_a_client_never_has_more_requests_on_the_wire_than_its_connection_pool():
    wire = Wire()
    send = CallLimit(MAX_CONCURRENT_CALLS).bound(wire.send)
    senders = [threading.Thread(target=send) for _ in range(3 * MAX_CONCURRENT_CALLS)]
    for sender in senders:
        sender.start()
    with wire.changed:
        assert wire.changed.wait_for(lambda: wire.on_wire == MAX_CONCURRENT_CALLS, timeout=30)
    wire.let_go.set()
    for sender in senders:
        sender.join()
    assert (wire.peak, wire.sent) == (MAX_CONCURRENT_CALLS, 3 * MAX_CONCURRENT_CALLS)


def test_side_by_side_nested_in_side_by_side_finishes_within_the_bound():
    """A step's `each` runs inside the engine's step threads: the inner actions must not wait for slots the
    outer ones hold."""
    wire = Wire()
    wire.let_go.set()
    send = CallLimit(MAX_CONCURRENT_CALLS).bound(wire.send)
    outer = threading.Thread(target=side_by_side, args=(
        range(2 * MAX_CONCURRENT_CALLS), lambda _: (send(), side_by_side(range(MAX_CONCURRENT_CALLS), lambda _: send()))))
    outer.start()
    outer.join(timeout=60)
    assert not outer.is_alive()
    assert wire.sent == 2 * MAX_CONCURRENT_CALLS * (1 + MAX_CONCURRENT_CALLS)
    assert wire.peak <= MAX_CONCURRENT_CALLS
