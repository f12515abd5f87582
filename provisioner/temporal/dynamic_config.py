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


def check_types(values: dict[str, Any], version: ServerVersion) -> None:
    """Raise ValueError naming every key whose value (or constrained value) its type's converter refuses."""
    types = {key.lower(): kind for key, kind in version.dynamic_config_types.items()}
    problems = []
    for key, value in sorted(values.items()):
        kind = types.get(key.lower())
        if kind is None:
            continue
        for each in ([v["value"] for v in value] if _constrained(value) else [value]):
            if not converts(each, kind):
                problems.append(f"{key!r} = {each!r} is not {TYPE_NAMES[kind]} (Temporal reads it as {kind})")
    if problems:
        raise ValueError(
            f"{'; '.join(problems)}. Temporal {version.describe()} would ignore the value and keep its default; "
            "give a value of the key's type"
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
