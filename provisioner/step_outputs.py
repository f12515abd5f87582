"""What one step hands to the steps and commands after it: typed outputs read from the state.

Each step that others depend on declares a frozen dataclass of what it produces (the VPC and private
subnets of the network, the role ARNs of IAM, the cluster's name...), next to the step, with a `read`
that builds it from the step's records in the state. Steps read it with `ctx.outputs_of(NetworkOutputs)`,
commands with `NetworkOutputs.of(state)`, and use its attributes: an output renamed or removed is an
import or attribute error that the tests and a type checker see, never a lookup failing during `up`.

A value not recorded yet exists only in a plan: there it reads as `KNOWN_AFTER_APPLY` (what the plan
shows, and what `known()` tells apart). Outside a plan, reading an output that is not recorded raises
`NotRecorded`, so a placeholder can never be sent to AWS. The state file keeps its records and keys; the
dataclasses only read them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import AbstractSet, Any, ClassVar, TypeVar

from provisioner.errors import ProvisionError
from provisioner.state import RecordedState

O = TypeVar("O", bound="StepOutputs")


class KnownAfterApply(str):
    """The text a plan shows for a value an earlier step has yet to create."""


# Stands in a plan for an ID an earlier step has yet to create (or to replace).
KNOWN_AFTER_APPLY = KnownAfterApply("(known after apply)")


def known(value: str) -> bool:
    """Whether `value` is real, not the plan's placeholder."""
    return not isinstance(value, KnownAfterApply)


class NotRecorded(ProvisionError):
    """An output read outside a plan that its step has not recorded: the step has not run (or not to its end)."""

    def __init__(self, step: str, key: str):
        super().__init__(f"the {step} step has not recorded {key} yet; run 'provision up' (again)")
        self.step = step
        self.key = key


class Recorded:
    """One step's records, as its outputs class reads them: a missing value is the placeholder in a plan
    and `NotRecorded` otherwise. A record the plan expects its step to replace reads as the placeholder too."""

    def __init__(self, step: str, state: RecordedState, planning: bool, replacing: AbstractSet[tuple[str, str]] = frozenset()):
        self.step = step
        self.planning = planning
        self._records = state.step_records(step)
        self._replacing = replacing

    def value(self, key: str, attribute: str = "id") -> Any:
        """The recorded `attribute` of `key`."""
        record = self._records.get(key)
        if self.planning and (record is None or attribute not in record or (self.step, key) in self._replacing):
            return KNOWN_AFTER_APPLY
        if record is None or attribute not in record:
            raise NotRecorded(self.step, key)
        return record[attribute]

    def optional(self, key: str, attribute: str = "id") -> Any:
        """The recorded `attribute` of `key`, or None: for what a step records only in some configurations."""
        return (self._records.get(key) or {}).get(attribute)

    def ids(self, **match: Any) -> tuple[str, ...]:
        """IDs of the records whose attributes match, sorted; at least one outside a plan."""
        return self.each("id", **match)

    def each(self, attribute: str, **match: Any) -> tuple[Any, ...]:
        """`attribute` of every record whose attributes match, sorted; at least one outside a plan."""
        found = tuple(sorted(r[attribute] for r in self._records.values()
                             if attribute in r and all(r.get(k) == v for k, v in match.items())))
        if not found and not self.planning:
            raise NotRecorded(self.step, " and ".join(f"{k}={v}" for k, v in match.items()))
        return found

    def pairs(self, key_attribute: str, value_attribute: str, **match: Any) -> dict[Any, Any]:
        """{key_attribute: value_attribute} of the records whose attributes match and that hold both; maybe none."""
        return {r[key_attribute]: r[value_attribute] for r in self._records.values()
                if key_attribute in r and value_attribute in r and all(r.get(k) == v for k, v in match.items())}

    def by_prefix(self, prefix: str, attribute: str = "id") -> dict[str, str]:
        """`attribute` of every record whose key starts with `prefix`, by the rest of the key."""
        return {key.removeprefix(prefix): record[attribute] for key, record in sorted(self._records.items())
                if key.startswith(prefix) and attribute in record}


def recorded_as(key: str, attribute: str = "id") -> Any:
    """An output field that is `attribute` of the step's record `key`: what `StepOutputs.read` fills it with."""
    return field(metadata={"key": key, "attribute": attribute})


@dataclass(frozen=True)
class StepOutputs:
    """Base of each step's outputs: subclasses are frozen dataclasses naming their `step`. A field declared
    with `recorded_as(key, attribute)` is read from that record; a class with other fields overrides `read`."""

    step: ClassVar[str]

    @classmethod
    def read(cls: type[O], recorded: Recorded) -> O:
        return cls(**{f.name: recorded.value(f.metadata["key"], f.metadata["attribute"]) for f in fields(cls)})

    @classmethod
    def of(cls: type[O], state: RecordedState, planning: bool = False,
           replacing: AbstractSet[tuple[str, str]] = frozenset()) -> O:
        """The outputs as recorded in `state`; outside a plan, `NotRecorded` when one is missing."""
        return cls.read(Recorded(cls.step, state, planning, replacing))

    @classmethod
    def so_far(cls: type[O], state: RecordedState) -> O:
        """What is recorded so far, the rest KNOWN_AFTER_APPLY: for `destroy` and the checks of a half-built
        stack (provisioner/immutable.py), which act only on what `known()` says is real."""
        return cls.read(Recorded(cls.step, state, planning=True))
