"""Temporal dynamic config: the keys the pinned server version knows, and the file the server reads.

The server silently ignores a key it does not know, so a typo would pass unnoticed in
production. Every key is checked against the keys that version registers, extracted from its
own source (provisioner/data/temporal/<version>.json names the commit).
"""
from __future__ import annotations

import difflib
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


def render(values: dict[str, Any]) -> dict[str, list[dict]]:
    """The server's file format: each key holds a list of {value, constraints}; a plain value applies everywhere."""
    rendered = {}
    for key, value in sorted(values.items()):
        if isinstance(value, list) and value and all(isinstance(v, dict) and "value" in v for v in value):
            rendered[key] = [{"value": v["value"], "constraints": v.get("constraints", {})} for v in value]
        else:
            rendered[key] = [{"value": value, "constraints": {}}]
    return rendered
