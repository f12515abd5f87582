"""Temporal dynamic config: the keys the pinned server version knows, and the file the server reads.

The server silently ignores a key it does not know, so a typo would pass unnoticed in
production. Every key is checked against the keys that version registers, extracted from its
own source (provisioner/data/temporal/<version>.json names the commit), and every value against
the type the key's constructor declares there: a value the server cannot convert is not an
error to it either, it logs a warning and keeps the default.
"""
from __future__ import annotations

import difflib
import re
from typing import Any

from provisioner.temporal.versions import ServerVersion


def check_keys(values: dict[str, Any], version: ServerVersion) -> None:
    """Raise ValueError naming every key the server version does not know (with the nearest known key).

    The server matches keys case-insensitively (common/dynamicconfig/key.go lower-cases them).
    """
    known = {key.lower(): key for key in version.dynamic_config_keys}
    problems = []
    for key in sorted(k for k in values if k.lower() not in known):
        close = difflib.get_close_matches(key.lower(), known, n=1)
        hint = f" (did you mean {known[close[0]]!r}?)" if close else ""
        problems.append(f"{key!r}{hint}")
    if problems:
        raise ValueError(
            f"unknown dynamic config key {', '.join(problems)}: Temporal {version.describe()} does not know it "
            "and would ignore it silently"
        )


# What each type's converter accepts (common/dynamicconfig/collection.go, the same in 1.28-1.31 and the fork):
# convertInt takes Go integer kinds only, convertFloat floats and integers, convertBool a bool or a string
# strconv.ParseBool reads, convertString and convertMap nothing else, and convertDuration an integer or a
# float (seconds) or a string timestamp.ParseDurationDefaultSeconds reads.
TYPE_NAMES = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "string": "a string",
    "duration": 'a duration like "30s", "5m" or "1h30m", or a number of seconds',
    "map": "a table (mapping)",
    "list": "a list",
}
# strconv.ParseBool (Go standard library, strconv/atob.go)
GO_BOOL_STRINGS = {"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"}
# common/primitives/timestamp/parse_duration.go: a unit-less number means seconds, "d" means 24 hours.
_UNITLESS = re.compile(r"^(\d+(\.\d*)?|(\.\d+))$")
_DAYS = re.compile(r"(\d+(\.\d*)?|(\.\d+))d")
# time.ParseDuration (Go standard library, time/format.go): [-+]?(number unit)+, or "0".
_GO_DURATION = re.compile(r"^[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+$")
_MAX_DURATION_NS = 2**63 - 1
_UNIT_NS = {"ns": 1, "us": 1e3, "\u00b5s": 1e3, "\u03bcs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


def is_go_duration(text: str) -> bool:
    """Whether timestamp.ParseDurationDefaultSeconds accepts `text` (unit-less seconds, "d" days, Go units)."""
    if _UNITLESS.match(text):
        text += "s"
    text = _DAYS.sub(lambda m: f"{24 * float(m.group(1)):f}h", text)
    if text in ("0", "+0", "-0"):
        return True
    if not _GO_DURATION.match(text):
        return False
    total = sum(float(number) * _UNIT_NS[unit]
                for number, unit in re.findall(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)", text))
    return total <= _MAX_DURATION_NS


def converts(value: Any, kind: str) -> bool:
    """Whether the server's converter for `kind` accepts `value` (as TOML gives it, and YAML hands it on)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": number,
        "bool": isinstance(value, bool) or (isinstance(value, str) and value in GO_BOOL_STRINGS),
        "string": isinstance(value, str),
        "duration": number or (isinstance(value, str) and is_go_duration(value)),
        "map": isinstance(value, dict),
        "list": isinstance(value, list),
    }.get(kind, True)  # "typed": a struct or a custom converter, whose shape is the server's business


def _constrained(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and "value" in v for v in value)


def is_negative_duration(value: Any) -> bool:
    """A duration below zero, which the server converts without complaint (time.ParseDuration takes a sign)
    though no duration setting means anything by it: a timeout expires at once, and an interval handed to
    time.NewTicker panics (Go's time package: "the duration d must be greater than zero")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value < 0
    return isinstance(value, str) and value.strip().startswith("-") and value.strip() != "-0"


# The constraints the server's loader knows, matched lower-cased, and the type of each one's value
# (convertYamlConstraints: common/dynamicconfig/file_based_client.go in 1.28 and 1.29, yaml_loader.go from
# 1.30 and in the fork). Any other name, or a value of another type, is an error that aborts loading the
# whole file ("Errors should abort the loading process", LoadResult): the server does not start.
CONSTRAINTS: dict[str, tuple[type, ...]] = {
    "namespace": (str,),
    "namespaceId": (str,),
    "taskQueueName": (str,),
    "taskType": (str, int),  # a task queue type: "Workflow", "Activity" (or its enum number)
    "historyTaskType": (str, int),
    "shardId": (int,),
    "destination": (str,),
}
# 1.31 adds chasmTaskType (yaml_loader.go at v1.31.2).
CONSTRAINTS_SINCE = {(1, 31): {"chasmTaskType": (str,)}}
# What a constrained value holds: the loader reads each list item into struct {Constraints; Value} and drops
# any other field without a word, so a misspelled "constraint" would apply the value everywhere.
CONSTRAINED_VALUE_FIELDS = ("value", "constraints")


def constraints_of(version: ServerVersion) -> dict[str, tuple[type, ...]]:
    """The constraint names `version` knows (as written in Temporal's docs), with their value types."""
    release = tuple(int(part) for part in version.declared.split(".")[:2])
    known = dict(CONSTRAINTS)
    for since, added in CONSTRAINTS_SINCE.items():
        if release >= since:
            known |= added
    return known


def check_constraints(values: dict[str, Any], version: ServerVersion) -> None:
    """Raise ValueError naming every constrained value with a field, constraint or constraint value the
    server's loader refuses (it would then load none of the file)."""
    known = {name.lower(): (name, types) for name, types in constraints_of(version).items()}
    problems = []
    for key, value in sorted(values.items()):
        if not _constrained(value):
            continue
        for each in value:
            for field in sorted(set(each) - set(CONSTRAINED_VALUE_FIELDS)):
                problems.append(f"{key!r} has {field!r} beside value and constraints (only those two are read)")
            constraints = each.get("constraints", {})
            if not isinstance(constraints, dict):
                problems.append(f"{key!r}: constraints = {constraints!r} is not a table")
                continue
            for name, constraint in sorted(constraints.items()):
                if name.lower() not in known:
                    problems.append(f"{key!r}: unknown constraint {name!r} (Temporal {version.id} knows "
                                    f"{', '.join(sorted(n for n, _ in known.values()))})")
                    continue
                spelled, types = known[name.lower()]
                if isinstance(constraint, bool) or not isinstance(constraint, types):
                    wanted = " or ".join({str: "a string", int: "a whole number"}[t] for t in types)
                    problems.append(f"{key!r}: constraint {spelled} = {constraint!r} is not {wanted}")
    if problems:
        raise ValueError(
            f"{'; '.join(problems)}. Temporal {version.describe()} refuses an unknown constraint or one of "
            "another type (and then loads none of the file: the server does not start), and drops any other field "
            "without a word; fix or remove them"
        )


def check_types(values: dict[str, Any], version: ServerVersion) -> None:
    """Raise ValueError naming every key whose value (or constrained value) its type's converter refuses, or
    that is a negative duration."""
    types = {key.lower(): kind for key, kind in version.dynamic_config_types.items()}
    problems, negative = [], []
    for key, value in sorted(values.items()):
        kind = types.get(key.lower())
        if kind is None:
            continue
        for each in ([v["value"] for v in value] if _constrained(value) else [value]):
            if not converts(each, kind):
                problems.append(f"{key!r} = {each!r} is not {TYPE_NAMES[kind]} (Temporal reads it as {kind})")
            elif kind == "duration" and is_negative_duration(each):
                negative.append(f"{key!r} = {each!r}")
    if problems:
        raise ValueError(
            f"{'; '.join(problems)}. Temporal {version.describe()} would ignore the value and keep its default; "
            "give a value of the key's type"
        )
    if negative:
        raise ValueError(
            f"{', '.join(negative)}: a negative duration, which Temporal takes but no setting means anything by "
            "(a timeout expires at once, an interval stops the server); give zero or more"
        )


def render(values: dict[str, Any]) -> dict[str, list[dict]]:
    """The server's file format: each key holds a list of {value, constraints}; a plain value applies everywhere."""
    rendered = {}
    for key, value in sorted(values.items()):
        if isinstance(value, list) and value and all(isinstance(v, dict) and "value" in v for v in value):
            rendered[key] = [{"value": v["value"], "constraints": v.get("constraints", {})} for v in value]
        else:
            rendered[key] = [{"value": value, "constraints": {}}]
    return rendered
