"""Temporal dynamic config: the keys the pinned server version knows, and the file the server reads.

The server silently ignores a key it does not know, so a typo would pass unnoticed in
production. Every key is checked against the list extracted from the server's own
source (provisioner/data/dynamicconfig_keys.json names the commit it came from).
"""
from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources
from typing import Any


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads(resources.files("provisioner").joinpath("data/dynamicconfig_keys.json").read_text())


def known_keys() -> frozenset[str]:
    return frozenset(_data()["keys"])


def source() -> dict:
    """Where the key list comes from: repository, path, commit and server release line."""
    return dict(_data()["source"])


def check_keys(values: dict[str, Any]) -> None:
    """Raise ValueError naming every key the pinned server does not know (with the nearest known key)."""
    known = known_keys()
    problems = []
    for key in sorted(set(values) - known):
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"{key!r}{hint}")
    if problems:
        origin = source()
        raise ValueError(
            f"unknown dynamic config key {', '.join(problems)}: Temporal {origin['server_line']} does not know it "
            f"and would ignore it silently (keys from {origin['path']} at {origin['commit'][:12]})"
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
