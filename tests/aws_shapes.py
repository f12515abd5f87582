"""Check every request the tool sends against botocore's service model, as real AWS would.

moto accepts requests that AWS rejects, and botocore's own client-side validation only checks
required members, types and `min`. This module also checks enums, string patterns, `max`
lengths, numeric ranges, unknown members and tagged unions, on the API parameters a client
method receives (before botocore fills in idempotency tokens or serializes anything).

Use it by registering a recorder on a session BEFORE any client is made from it (a client
copies the session's event handlers when it is created)::

    recorder = aws_shapes.register(session)
    ...                      # run the tool with clients from `session`
    recorder.assert_clean()

Patterns in AWS models are Java regular expressions matched against the whole value
(`Matcher.matches()`); they are translated to Python (see `translate_pattern`) and applied with
`fullmatch`. A pattern that cannot be translated or compiled is never treated as a pass: it is
added to `UNCHECKED_PATTERNS`.
"""
from __future__ import annotations

import base64
import datetime
import decimal
import json
import re
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import botocore
from botocore.utils import is_json_value_header, parse_to_aware_datetime

try:  # The `regex` module knows Unicode properties natively (\p{L}, \p{Alphabetic}, scripts...).
    import regex as _regex
except ImportError:  # pragma: no cover - depends on the environment
    _regex = None

__all__ = [
    "OPEN_ENUMS", "ShapeViolation", "check_params", "RequestRecorder", "register", "UNCHECKED_PATTERNS",
    "UntranslatablePattern", "translate_pattern", "compile_pattern", "iter_input_shapes", "survey_patterns",
]

# (operation, path, pattern) of every pattern met during checks that could not be compiled.
UNCHECKED_PATTERNS: set[tuple[str, str, str]] = set()

# Names of string shapes whose enum is not enforced. A model's enum can lag the service: e.g. the
# opensearch OpenSearchPartitionInstanceType of botocore 1.44.8 has no r7g/m7g/c7g types, which
# the service accepts. Add a shape here (with the reason) only when AWS is known to accept more.
OPEN_ENUMS: set[str] = set()


@dataclass(frozen=True)
class ShapeViolation:
    operation: str  # "ec2.CreateVpc"
    path: str  # "TagSpecifications[0].Tags[1].Key", "" for the input itself
    rule: str  # enum, pattern, max length, min length, range, required, unknown member, type, union
    message: str

    def __str__(self) -> str:
        return f"{self.operation} {self.path or '<input>'}: {self.rule}: {self.message}"


# --------------------------------------------------------------------------------------------
# Java regex -> Python regex
# --------------------------------------------------------------------------------------------

class UntranslatablePattern(ValueError):
    """A Java construct with no faithful Python equivalent (for the engine in use)."""


_MAX_CP = 0x10FFFF
Ranges = list  # list[tuple[int, int]], inclusive code point ranges


def _merge(ranges) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _complement(ranges) -> list[tuple[int, int]]:
    out, nxt = [], 0
    for lo, hi in _merge(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX_CP:
        out.append((nxt, _MAX_CP))
    return out


def _chars(text: str) -> list[tuple[int, int]]:
    return [(ord(c), ord(c)) for c in text]


# Java's predefined and POSIX classes are US-ASCII only (no UNICODE_CHARACTER_CLASS flag), unlike
# Python's \w, \d, \s on str and the `regex` module's \p{Punct}, \p{Alnum}, \p{Print}...
_LOWER, _UPPER, _DIGIT = [(0x61, 0x7A)], [(0x41, 0x5A)], [(0x30, 0x39)]
_PUNCT = _chars("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_JAVA_SPACE = [(0x09, 0x0D), (0x20, 0x20)]  # [ \t\n\x0B\f\r]
_POSIX = {
    "lower": _LOWER, "upper": _UPPER, "ascii": [(0, 0x7F)], "alpha": _LOWER + _UPPER,
    "digit": _DIGIT, "alnum": _LOWER + _UPPER + _DIGIT, "punct": _PUNCT, "graph": [(0x21, 0x7E)],
    "print": [(0x20, 0x7E)], "blank": [(0x09, 0x09), (0x20, 0x20)], "cntrl": [(0, 0x1F), (0x7F, 0x7F)],
    "xdigit": _DIGIT + [(0x41, 0x46), (0x61, 0x66)], "space": _JAVA_SPACE,
}
_PREDEFINED = {
    "w": _LOWER + _UPPER + _DIGIT + [(0x5F, 0x5F)],
    "d": _DIGIT,
    "s": _JAVA_SPACE,
    "h": [(0x09, 0x09), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x180E, 0x180E),
          (0x2000, 0x200A), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000)],
    "v": [(0x0A, 0x0D), (0x85, 0x85), (0x2028, 0x2029)],
}
_LINE_TERMINATORS = "\\n\\r\\u0085\\u2028\\u2029"  # what Java's `.` does not match (without DOTALL)
_WHITE_SPACE = [(0x09, 0x0D), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680),
                (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000)]
_GENERAL_CATEGORIES = {
    "L", "Lu", "Ll", "Lt", "Lm", "Lo", "LC", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl", "No",
    "P", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "S", "Sm", "Sc", "Sk", "So",
    "Z", "Zs", "Zl", "Zp", "C", "Cc", "Cf", "Co", "Cs", "Cn",
}
# Java binary properties (\p{IsXxx}): the `regex` spelling, and an expression in general
# categories used without `regex` (Alphabetic/Lowercase/Uppercase are then approximated).
_BINARY = {
    "alphabetic": (r"\p{Alphabetic}", ("L", "Nl")),
    "letter": (r"\p{L}", ("L",)),
    "lowercase": (r"\p{Lowercase}", ("Ll",)),
    "uppercase": (r"\p{Uppercase}", ("Lu",)),
    "titlecase": (r"\p{Lt}", ("Lt",)),
    "punctuation": (r"\p{P}", ("P",)),
    "control": (r"\p{Cc}", ("Cc",)),
    "digit": (r"\p{Nd}", ("Nd",)),
    "whitespace": (r"\p{White_Space}", None),
    "white_space": (r"\p{White_Space}", None),
    "hexdigit": (r"\p{Hex_Digit}", None),
    "hex_digit": (r"\p{Hex_Digit}", None),
    "ideographic": (r"\p{Ideographic}", None),
    "assigned": (r"\P{Cn}", None),
    "noncharacter_code_point": (r"\p{Noncharacter_Code_Point}", None),
    "joincontrol": (r"\p{Join_Control}", None),
    "join_control": (r"\p{Join_Control}", None),
}
_JAVA_CHARACTER = {  # \p{javaXxx}: java.lang.Character.isXxx
    "javalowercase": "lowercase", "javauppercase": "uppercase", "javaletter": "letter",
    "javadigit": "digit", "javaalphabetic": "alphabetic", "javaideographic": "ideographic",
    "javatitlecase": "titlecase",
}


@lru_cache(maxsize=1)
def _category_table() -> dict[str, list[tuple[int, int]]]:
    """Code point ranges of each Unicode general category (from Python's unicodedata)."""
    table: dict[str, list[tuple[int, int]]] = {}
    start, current = 0, unicodedata.category("\0")
    for cp in range(1, _MAX_CP + 2):
        cat = unicodedata.category(chr(cp)) if cp <= _MAX_CP else None
        if cat != current:
            table.setdefault(current, []).append((start, cp - 1))
            start, current = cp, cat
    return table


def _category_ranges(names) -> list[tuple[int, int]]:
    table, out = _category_table(), []
    for name in names:
        if name == "LC":
            out += table.get("Lu", []) + table.get("Ll", []) + table.get("Lt", [])
        elif len(name) == 1:
            out += [r for cat, rs in table.items() if cat.startswith(name) for r in rs]
        else:
            out += table.get(name, [])
    return _merge(out)


def _property(name: str, native: bool):
    """A Java \\p{name} as ("ranges", [...]) or ("native", regex-module text)."""
    key = name
    for prefix in ("general_category=", "gc="):
        if key.startswith(prefix):
            key = key[len(prefix):]
    low = key.lower()
    if low in _POSIX:  # \p{Punct}, \p{Alnum}, \p{Print}, ...: ASCII only in Java
        return "ranges", _POSIX[low]
    if low in _JAVA_CHARACTER:
        low = "is" + _JAVA_CHARACTER[low]
    bare = key[2:] if key.startswith("Is") else key
    if bare in _GENERAL_CATEGORIES:
        return ("native", rf"\p{{{bare}}}") if native else ("ranges", _category_ranges([bare]))
    if bare == "L&":
        return ("native", r"\p{LC}") if native else ("ranges", _category_ranges(["LC"]))
    if low.startswith("is") and low[2:] in _BINARY:
        regex_text, categories = _BINARY[low[2:]]
        if native:
            return "native", regex_text
        if low[2:] in ("whitespace", "white_space"):
            return "ranges", _WHITE_SPACE
        if categories is None:
            raise UntranslatablePattern(f"\\p{{{name}}} needs the `regex` module")
        return "ranges", _category_ranges(categories)
    # Scripts (IsLatin, script=Latin, sc=Latin) and blocks (InGreek, block=Greek, blk=Greek).
    for prefixes, kind in ((("script=", "sc="), "Script"), (("block=", "blk="), "Block")):
        for prefix in prefixes:
            if low.startswith(prefix) and native:
                return "native", rf"\p{{{kind}={key[len(prefix):]}}}"
    if native and (key.startswith("Is") or key.startswith("In")) and len(key) > 2:
        kind = "Script" if key.startswith("Is") else "Block"
        candidate = rf"\p{{{kind}={key[2:]}}}"
        try:
            _regex.compile(candidate)
        except Exception as exc:
            raise UntranslatablePattern(f"unknown property \\p{{{name}}}") from exc
        return "native", candidate
    raise UntranslatablePattern(f"unsupported property \\p{{{name}}}")


def _esc(cp: int) -> str:
    c = chr(cp)
    if c.isascii() and c.isalnum():
        return c
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


def _render_ranges(ranges) -> str:
    return "".join(_esc(lo) if lo == hi else f"{_esc(lo)}-{_esc(hi)}" for lo, hi in _merge(ranges))


class _Translator:
    def __init__(self, src: str, native: bool):
        self.src, self.i, self.native = src, 0, native
        self.dotall = bool(re.search(r"\(\?[a-zA-Z]*s[a-zA-Z]*[:)]", src))

    def error(self, what: str):
        raise UntranslatablePattern(f"{what} at position {self.i} of {self.src!r}")

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.src[j] if j < len(self.src) else ""

    def hex_digits(self, count: int) -> int:
        text = self.src[self.i:self.i + count]
        if len(text) != count or not all(c in "0123456789abcdefABCDEF" for c in text):
            self.error("bad hex escape")
        self.i += count
        return int(text, 16)

    # -- escapes -------------------------------------------------------------------------
    def escape(self, in_class: bool):
        """After a backslash: ("literal", cp) | ("ranges", [...]) | ("native", text) | ("raw", text)."""
        c = self.peek()
        if not c:
            self.error("trailing backslash")
        self.i += 1
        if c in "pP":
            if self.peek() == "{":
                end = self.src.find("}", self.i)
                if end < 0:
                    self.error("unclosed \\p{")
                name, self.i = self.src[self.i + 1:end], end + 1
            else:
                name = self.peek()
                self.i += 1
            kind, value = _property(name, self.native)
            if c == "P":
                if kind == "ranges":
                    value = _complement(value)
                else:
                    value = "\\P" + value[2:] if value.startswith("\\p") else "\\p" + value[2:]
            return kind, value
        if c in "wdshv" or c in "WDSHV":
            ranges = _PREDEFINED[c.lower()]
            return "ranges", (ranges if c.islower() else _complement(ranges))
        if c == "u":
            cp = self.hex_digits(4)
            # Java joins an escaped surrogate pair (\uD800\uDC00) into one supplementary code point.
            if 0xD800 <= cp <= 0xDBFF and self.src.startswith("\\u", self.i):
                save = self.i
                self.i += 2
                low = self.hex_digits(4)
                if 0xDC00 <= low <= 0xDFFF:
                    return "literal", 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)
                self.i = save
            return "literal", cp
        if c == "x":
            if self.peek() == "{":
                end = self.src.find("}", self.i)
                if end < 0:
                    self.error("unclosed \\x{")
                cp, self.i = int(self.src[self.i + 1:end], 16), end + 1
                return "literal", cp
            return "literal", self.hex_digits(2)
        if c == "0":
            m = re.match(r"[0-3][0-7]{2}|[0-7]{1,2}", self.src[self.i:])  # \0n, \0nn, \0mnn (m <= 3)
            digits = m.group(0) if m else ""
            self.i += len(digits)
            if not digits:
                self.error("bad octal escape")
            return "literal", int(digits, 8)
        simple = {"t": 9, "n": 10, "r": 13, "f": 12, "a": 7, "e": 27}
        if c in simple:
            return "literal", simple[c]
        if c == "c":
            ctl = self.peek()
            self.i += 1
            return "literal", ord(ctl) ^ 64
        if c == "Q":
            end = self.src.find("\\E", self.i)
            text = self.src[self.i:] if end < 0 else self.src[self.i:end]
            self.i = len(self.src) if end < 0 else end + 2
            return "quoted", text
        if in_class:
            if c.isascii() and c.isalnum():
                self.error(f"escape \\{c} in a character class")
            return "literal", ord(c)
        # Outside a character class only.
        if c in "bBA":
            return "raw", "\\" + c
        if c == "z":
            return "raw", r"\Z"
        if c == "Z":
            return "raw", r"(?=(?:\r\n|[\n\r\u0085\u2028\u2029])?\Z)"
        if c == "R":
            return "raw", r"(?:\r\n|[\n\x0b\x0c\r\u0085\u2028\u2029])"
        if c in "GX":
            if self.native:
                return "raw", "\\" + c
            self.error(f"\\{c} needs the `regex` module")
        if c == "k":
            m = re.match(r"<([A-Za-z][A-Za-z0-9]*)>", self.src[self.i:])
            if not m:
                self.error("bad \\k<name>")
            self.i += m.end()
            return "raw", f"(?P={m.group(1)})"
        if c == "N" and self.peek() == "{":
            end = self.src.find("}", self.i)
            name, self.i = self.src[self.i + 1:end], end + 1
            return "literal", ord(unicodedata.lookup(name))
        if c.isdigit():
            digits = c
            while self.peek().isdigit():
                digits += self.peek()
                self.i += 1
            return "raw", f"(?:\\{digits})"
        if c.isascii() and c.isalnum():
            self.error(f"unknown escape \\{c}")
        return "literal", ord(c)

    # -- character classes ---------------------------------------------------------------
    def char_class(self):
        """At '[': returns (negated, ranges, natives)."""
        self.i += 1
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        return self.class_body(negated, first=True)

    def class_body(self, negated: bool, first: bool):
        """The items of a class up to and including its closing ']'."""
        ranges: list[tuple[int, int]] = []
        natives: list[str] = []
        while True:
            c = self.peek()
            if not c:
                self.error("unclosed character class")
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if c == "[":
                sub_negated, sub_ranges, sub_natives = self.char_class()
                if sub_negated:
                    if sub_natives:
                        self.error("negated nested class")
                    sub_ranges = _complement(sub_ranges)
                ranges += sub_ranges  # Java: a nested class is a union
                natives += sub_natives
                continue
            if c == "&" and self.peek(1) == "&":  # Java intersection: left && (rest of the class)
                self.i += 2
                _, right, right_natives = self.class_body(False, first=False)
                if negated or natives or right_natives:
                    self.error("character class intersection (&&) with negation or Unicode properties")
                return False, _complement(_complement(ranges) + _complement(right)), []
            if c == "\\":
                self.i += 1
                kind, value = self.escape(in_class=True)
                if kind == "ranges":
                    ranges += value
                    continue
                if kind == "native":
                    natives.append(value)
                    continue
                if kind == "quoted":
                    ranges += _chars(value)
                    continue
                start = value
            else:
                self.i += 1
                start = ord(c)
            # A range start-end: '-' not followed by ']' (Java: '-' after a class or range is literal).
            if self.peek() == "-" and self.peek(1) not in ("]", "[", ""):
                self.i += 1
                if self.peek() == "\\":
                    self.i += 1
                    kind, end = self.escape(in_class=True)
                    if kind != "literal":
                        self.error("character range ending in a class")
                else:
                    end = ord(self.peek())
                    self.i += 1
                if end < start:
                    self.error("illegal character range")
                ranges.append((start, end))
            else:
                ranges.append((start, start))
        return negated, ranges, natives

    @staticmethod
    def render_class(negated: bool, ranges, natives) -> str:
        if not natives and not ranges:
            return "[^\\s\\S]" if not negated else "[\\s\\S]"
        return "[" + ("^" if negated else "") + _render_ranges(ranges) + "".join(natives) + "]"

    # -- whole pattern -------------------------------------------------------------------
    def translate(self) -> str:
        out: list[str] = []
        while self.i < len(self.src):
            c = self.peek()
            if c == "\\":
                self.i += 1
                kind, value = self.escape(in_class=False)
                if kind == "literal":
                    out.append(_esc(value))
                elif kind == "ranges":
                    out.append(self.render_class(False, value, []))
                elif kind == "quoted":
                    out.append("".join(_esc(ord(ch)) for ch in value))
                else:  # native or raw
                    out.append(value)
            elif c == "[":
                out.append(self.render_class(*self.char_class()))
            elif c == "(" and self.src.startswith("(?<", self.i) and self.peek(3) not in ("=", "!"):
                out.append("(?P<")
                self.i += 3
            elif c == "." and not self.dotall:
                out.append(f"[^{_LINE_TERMINATORS}]")
                self.i += 1
            else:
                out.append(c)
                self.i += 1
        return "".join(out)


def translate_pattern(java_pattern: str, native_properties: bool | None = None) -> str:
    """The Python equivalent of a Java regex from an AWS model.

    Java semantics kept: \\w \\d \\s and POSIX classes (\\p{Alnum}, \\p{Punct}, \\p{Print}...) are
    US-ASCII; `.` excludes all Java line terminators; an escaped surrogate pair (\\uD800\\uDC00) is
    one code point; `-` after a class escape in a class is a literal ([\\w-_]); nested classes are
    unions. Unicode properties (\\p{L}, \\p{IsAlphabetic}...) are left to the `regex` module when
    `native_properties` (default: when it is installed), else expanded into code point ranges.
    Possessive quantifiers and atomic groups pass through (Python >= 3.11 `re` has them).
    """
    if native_properties is None:
        native_properties = _regex is not None
    return _Translator(java_pattern, native_properties).translate()


@lru_cache(maxsize=None)
def compile_pattern(java_pattern: str, engine: str | None = None):
    """The compiled translation of a Java pattern; raises UntranslatablePattern or the engine's error.

    engine: "regex", "re", or None for `regex` if installed, else `re`.
    """
    if engine is None:
        engine = "regex" if _regex is not None else "re"
    native = engine == "regex"
    translated = translate_pattern(java_pattern, native_properties=native)
    if native:
        return _regex.compile(translated, _regex.V0)
    return re.compile(translated)


def _compiled_or_none(java_pattern: str):
    try:
        return compile_pattern(java_pattern)
    except Exception:  # untranslatable, or the engine refuses it
        return None


# --------------------------------------------------------------------------------------------
# Parameter checks
# --------------------------------------------------------------------------------------------

def _base64_user_data(params: dict) -> dict:
    """botocore's base64_encode_user_data: the model constrains the encoded value."""
    value = params.get("UserData")
    if isinstance(value, (str, bytes, bytearray)):
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        params = dict(params, UserData=base64.b64encode(raw).decode("ascii"))
    return params


def _quote_copy_source(params: dict) -> dict:
    """botocore's handle_copy_source_param accepts CopySource as a dict."""
    source = params.get("CopySource")
    if isinstance(source, Mapping) and "Bucket" in source and "Key" in source:
        from botocore.handlers import _quote_source_header_from_dict

        params = dict(params, CopySource=_quote_source_header_from_dict(source))
    return params


# What botocore's own handlers do to parameters after `provide-client-params` and before
# serializing them, where that changes what the model constraints apply to.
_BOTOCORE_CUSTOMIZATIONS = {
    "ec2.RunInstances": _base64_user_data,
    "autoscaling.CreateLaunchConfiguration": _base64_user_data,
    "s3.CopyObject": _quote_copy_source,
    "s3.UploadPartCopy": _quote_copy_source,
}


def _show(value, shape, limit: int = 80) -> str:
    if shape.metadata.get("sensitive"):
        size = len(value) if hasattr(value, "__len__") else "?"
        return f"<sensitive value of length {size}>"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _type_name(value) -> str:
    return type(value).__name__


class _Checker:
    def __init__(self, operation: str):
        self.operation = operation
        self.violations: list[ShapeViolation] = []

    def add(self, path: str, rule: str, message: str) -> None:
        self.violations.append(ShapeViolation(self.operation, path, rule, message))

    def check(self, value, shape, path: str, top: bool = False) -> None:
        if shape.type_name == "structure" and shape.is_document_type:
            return  # free-form JSON document
        if is_json_value_header(shape):
            try:
                json.dumps(value)
            except (TypeError, ValueError) as exc:
                self.add(path, "type", f"jsonvalue {_show(value, shape)} cannot be encoded as JSON: {exc}")
            return
        getattr(self, "check_" + shape.type_name)(value, shape, path, top)

    def type_error(self, value, shape, path: str, expected: str) -> None:
        self.add(path, "type", f"{_show(value, shape)} ({_type_name(value)}) is not a valid {shape.type_name} "
                               f"({shape.name}); expected {expected}")

    def length(self, size: int, shape, path: str, what: str) -> None:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and size < low:
            self.add(path, "min length", f"{what} has length {size}; {shape.name} requires at least {low}")
        if high is not None and size > high:
            self.add(path, "max length", f"{what} has length {size}; {shape.name} allows at most {high}")

    # -- containers ----------------------------------------------------------------------
    def check_structure(self, value, shape, path, top=False):
        if not isinstance(value, Mapping):
            return self.type_error(value, shape, path, "a dict")
        members = shape.members
        required = shape.metadata.get("required", [])
        for name in required:
            if value.get(name) is None:
                # botocore fills an absent top-level idempotency token with a UUID4.
                if top and name not in value and members[name].metadata.get("idempotencyToken"):
                    continue
                self.add(_join(path, name), "required",
                         f"required member {name!r} of {shape.name} is {'None' if name in value else 'missing'}")
        for name, item in value.items():
            if name not in members:
                self.add(_join(path, name), "unknown member",
                         f"{name!r} is not a member of {shape.name} (members: {', '.join(members)})")
            elif item is None:
                if name not in required:
                    self.add(_join(path, name), "type", f"None is not a valid value for {name!r}; omit the member")
            else:
                self.check(item, members[name], _join(path, name))
        if shape.is_tagged_union:
            given = [name for name, item in value.items() if name in members and item is not None]
            if len(given) != 1:
                self.add(path, "union", f"{shape.name} is a union: exactly one of ({', '.join(members)}) "
                                        f"must be set, got {len(given)}: {given}")

    def check_list(self, value, shape, path, top=False):
        if not isinstance(value, (list, tuple)):
            return self.type_error(value, shape, path, "a list")
        self.length(len(value), shape, path, "the list")
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            if item is None:
                self.add(item_path, "type", "None is not a valid list element")
            else:
                self.check(item, shape.member, item_path)

    def check_map(self, value, shape, path, top=False):
        if not isinstance(value, Mapping):
            return self.type_error(value, shape, path, "a dict")
        self.length(len(value), shape, path, "the map")
        for key, item in value.items():
            item_path = f"{path}[{key!r}]"
            self.check(key, shape.key, f"{item_path}(key)")
            if item is None:
                self.add(item_path, "type", "None is not a valid map value")
            else:
                self.check(item, shape.value, item_path)

    # -- scalars -------------------------------------------------------------------------
    def check_string(self, value, shape, path, top=False):
        if not isinstance(value, str):
            return self.type_error(value, shape, path, "a str")
        enum = shape.enum
        if enum and value not in enum and shape.name not in OPEN_ENUMS:
            allowed = ", ".join(map(repr, enum[:12])) + (f", ... ({len(enum)} values)" if len(enum) > 12 else "")
            self.add(path, "enum", f"{_show(value, shape)} is not a value of {shape.name} in the botocore "
                                   f"{botocore.__version__} model: {allowed}")
        self.length(len(value), shape, path, _show(value, shape))
        pattern = shape.metadata.get("pattern")
        if pattern is not None:
            compiled = _compiled_or_none(pattern)
            if compiled is None:
                UNCHECKED_PATTERNS.add((self.operation, path, pattern))
            elif not compiled.fullmatch(value):
                self.add(path, "pattern", f"{_show(value, shape)} does not match {shape.name} pattern {pattern!r}")

    def number(self, value, shape, path, types, expected):
        if isinstance(value, bool) or not isinstance(value, types):
            return self.type_error(value, shape, path, expected)
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            self.add(path, "range", f"{_show(value, shape)} is outside {shape.name} range "
                                    f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]")

    def check_integer(self, value, shape, path, top=False):
        self.number(value, shape, path, (int,), "an int")

    check_long = check_integer

    def check_double(self, value, shape, path, top=False):
        self.number(value, shape, path, (int, float, decimal.Decimal), "a number")

    check_float = check_double

    def check_boolean(self, value, shape, path, top=False):
        if not isinstance(value, bool):
            self.type_error(value, shape, path, "a bool")

    def check_blob(self, value, shape, path, top=False):
        if isinstance(value, (bytes, bytearray)):
            self.length(len(value), shape, path, "the blob")
        elif isinstance(value, str):
            self.length(len(value.encode("utf-8")), shape, path, "the blob")
        elif not hasattr(value, "read"):
            self.type_error(value, shape, path, "bytes, str or a file-like object")

    def check_timestamp(self, value, shape, path, top=False):
        if isinstance(value, bool):
            return self.type_error(value, shape, path, "a datetime, epoch number or ISO 8601 string")
        if isinstance(value, (datetime.datetime, int, float)):
            return
        if isinstance(value, str):
            try:
                parse_to_aware_datetime(value)
                return
            except (TypeError, ValueError, AttributeError, OverflowError):
                pass
        self.type_error(value, shape, path, "a datetime, epoch number or ISO 8601 string")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def operation_name(operation_model) -> str:
    return f"{operation_model.service_model.service_name}.{operation_model.name}"


def check_params(operation_model, params) -> list[ShapeViolation]:
    """Every way `params` (a client method's keyword arguments) breaks the operation's input shape."""
    operation = operation_name(operation_model)
    checker = _Checker(operation)
    shape = operation_model.input_shape
    if shape is None:
        for name in params or {}:
            checker.add(name, "unknown member", f"{operation} takes no parameters")
        return checker.violations
    customize = _BOTOCORE_CUSTOMIZATIONS.get(operation)
    if customize is not None and isinstance(params, Mapping):
        params = customize(dict(params))
    checker.check(params if params is not None else {}, shape, "", top=True)
    return checker.violations


def iter_input_shapes(operation_model):
    """(path, shape) of every shape reachable from the operation's input (recursive shapes once per branch)."""
    def walk(shape, path, active):
        yield path, shape
        if shape.type_name == "structure":
            if shape.name in active or shape.is_document_type:
                return
            for name, member in shape.members.items():
                yield from walk(member, _join(path, name), active | {shape.name})
        elif shape.type_name == "list":
            yield from walk(shape.member, f"{path}[]", active)
        elif shape.type_name == "map":
            yield from walk(shape.key, f"{path}(key)", active)
            yield from walk(shape.value, f"{path}[]", active)

    if operation_model.input_shape is not None:
        yield from walk(operation_model.input_shape, "", frozenset())


def survey_patterns(service_model, engine: str | None = None) -> list[tuple[str, str, str, str]]:
    """(operation, path, pattern, error) of every input pattern of a service that does not compile."""
    failures = []
    for name in service_model.operation_names:
        operation_model = service_model.operation_model(name)
        for path, shape in iter_input_shapes(operation_model):
            pattern = shape.metadata.get("pattern")
            if pattern is None:
                continue
            try:
                compile_pattern(pattern, engine)
            except Exception as exc:
                failures.append((operation_name(operation_model), path, pattern, str(exc)))
    return failures


# --------------------------------------------------------------------------------------------
# Recording every call of a session
# --------------------------------------------------------------------------------------------

class RequestRecorder:
    """A `provide-client-params` handler checking the parameters of every API call.

    `provide-client-params` is the first event of BaseClient._make_api_call: it carries the
    caller's params and the operation model before any `before-parameter-build` handler fills in
    idempotency tokens, encodes UserData, etc. The handler returns None, so it never replaces
    the parameters.
    """

    def __init__(self) -> None:
        self.violations: list[ShapeViolation] = []
        self.calls = 0
        self.operations: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, params=None, model=None, **kwargs) -> None:
        if model is None:
            return None
        found = check_params(model, params or {})
        with self._lock:
            self.calls += 1
            self.operations.append(operation_name(model))
            self.violations.extend(found)
        return None

    def report(self) -> str:
        by_operation: dict[str, list[ShapeViolation]] = {}
        for violation in self.violations:
            by_operation.setdefault(violation.operation, []).append(violation)
        lines = [f"{len(self.violations)} request shape violation(s) in {self.calls} call(s):"]
        for operation, found in by_operation.items():
            lines.append(f"{operation}:")
            lines += [f"  {v.path or '<input>'}: {v.rule}: {v.message}" for v in found]
        return "\n".join(lines)

    def assert_clean(self) -> None:
        if self.violations:
            raise AssertionError(self.report())


def register(session, event: str = "provide-client-params") -> RequestRecorder:
    """A recorder checking every call of the clients `session` creates from now on.

    `session` is a boto3 Session (or a botocore one). Clients made before this call keep the
    handlers they were created with and are not checked.
    """
    recorder = RequestRecorder()
    events = session.events if hasattr(session, "events") else session.get_component("event_emitter")
    events.register(event, recorder)
    return recorder
