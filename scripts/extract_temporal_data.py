#!/usr/bin/env python3
"""Extract, from a Temporal server source tree, the data `provision` checks configs against.

The tree is read straight out of a git directory (no work tree needed): files are
listed with ``git ls-tree -r`` and read with ``git cat-file`` at the given ref, so a
bare mirror of github.com/temporalio/temporal or of the temporal-dsql fork
(github.com/iw/temporal) is enough.

The output is one JSON file (default ``provisioner/data/temporal/<X.Y>.json`` next to
this script's repository) with:

``source``
    repository, ref, full commit sha, ``server_version`` (the ``ServerVersion``
    constant of ``common/headers/version_checker.go``) and the YAML library the
    static config loader uses.

``dynamic_config_keys``
    sorted list of every dynamic config key the server registers.  A key is the first
    argument of a call to one of the setting constructors that package
    ``common/dynamicconfig`` defines (every ``func New...Setting...(key string, ...)``,
    e.g. ``NewGlobalBoolSetting``, ``NewNamespaceIntSetting``,
    ``NewTaskQueueTypedSettingWithConverter``, ``NewDestinationDurationSetting``).
    Every non-test ``.go`` file of the tree is scanned (``*_test.go``, ``vendor/`` and
    ``testdata/`` are skipped), not only ``constants.go``.  Keys written as string
    literals (or concatenations of them) are taken as they are; keys given as a named
    constant are resolved when the constant is a string literal in the same package
    (or a package of the tree), and listed under ``dynamic_config_notes``.  Calls
    whose key is a function parameter (the constructors' own plumbing) are not keys.
    ``dynamic_config_key_files`` counts keys per file, and ``dynamic_config_check``
    compares the count with a naive regular-expression scan.

``dynamic_config_types``
    each key's value type, read off the constructor's name: ``New<Scope><Type>Setting...``
    with Type one of Bool, Int, Float, String, Duration, Map gives ``"bool"``, ``"int"``,
    ``"float"``, ``"string"``, ``"duration"``, ``"map"`` (the converters ``convertBool``,
    ``convertInt``, ... of ``common/dynamicconfig/collection.go`` that setting_gen.go wires
    to them).  ``New<Scope>TypedSetting...`` is ``"list"`` when its default is a slice
    literal (``[]string(nil)``, ``[]T{...}``: mapstructure decodes only a list into a
    slice) and ``"typed"`` otherwise (a struct decoded by mapstructure, or a custom
    converter: the value's shape is the converter's business).  A key registered twice
    with different types is ``"typed"`` and listed under ``dynamic_config_notes``.

``server_config``
    the tree of YAML keys the static server config accepts, starting at struct
    ``Config`` of ``common/config/config.go``, resolved through Go struct types in any
    package of the tree.  Key naming follows gopkg.in/yaml.v3 (and v2, which agree):
    the ``yaml:"name"`` tag, else the field name lower-cased; ``yaml:"-"`` and
    unexported non-embedded fields are skipped; ``,inline`` merges the inner struct
    (or, for a map, adds ``"*"``); an embedded field without ``inline`` is an ordinary
    key named after its type.  A struct becomes ``{"key": subtree}``, a map
    ``{"*": subtree}``, a slice or array ``{"[]": subtree}``, and scalars one of
    ``"string"``, ``"int"``, ``"bool"``, ``"float"``, ``"duration"`` (time.Duration),
    ``"any"`` (interface types, yaml.Node).  Pointers resolve to their element.
    Types that cannot be resolved are written ``"unresolved:<type>"``; a type that
    contains itself is written ``"recursive:<type>"``.  Types with their own
    ``UnmarshalYAML`` are followed when the method decodes into one of the receiver's
    fields (``n.Decode(&x.inner)``) or into a local overlay struct (the receiver's
    fields plus ``yaml.Node`` fields, whose possible concrete types are the ones the
    method assigns); every such type is listed under ``server_config_notes``.

``metrics``
    every metric the server defines, name -> ``{"kind", "prometheus"}``.  A metric is the
    first argument of a definition constructor of package ``common/metrics``
    (``NewCounterDef``, ``NewGaugeDef``, ``NewTimerDef``, ``NewBytesHistogramDef``,
    ``NewDimensionlessHistogramDef``; defs.go) or of a direct handler call with a literal
    name (``handler.Counter("dsql_tx_conflict_total")``, ``.Gauge``, ``.Timer``,
    ``.Histogram``: the fork's DSQL plugin names its metrics so).  ``kind`` is the Go
    definition's (counter, gauge, timer, histogram); ``recorded`` is false for a definition
    whose Go variable appears nowhere else in the tree (defined, never recorded: 1.31's
    ``empty_completion_commands``); ``prometheus`` is the type the
    Prometheus reporter exposes: timers and both histograms are Prometheus histograms
    (``_bucket``, ``_sum``, ``_count``) with ``timerType: histogram``, which is what the
    dev server and the rendered server config use.

``metric_label_keys``
    every label key the server sets on a metric: the ``Key`` of each ``Tag{Key: ...}``
    literal (``&tagImpl{key: ...}`` before 1.30) and the first argument of each
    ``StringTag(...)`` call in the tree, resolved
    through the string constants of package ``common/metrics`` (tags.go, metric_defs.go).

``metric_operation_values``
    the ``operation`` and ``task_type`` label values the server names as constants in
    ``common/metrics/metric_defs.go`` (``...Scope = "..."``, ``TaskType... = "..."``): the
    task processors' and background jobs' operations.  API handlers' operations are their
    gRPC method names and are not listed.

This script is stdlib only.  Example::

    python scripts/extract_temporal_data.py --git-dir /path/temporal.git \\
        --ref v1.31.2 --version 1.31 --repository temporalio/temporal
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

# ---------------------------------------------------------------------------
# git access


class Tree:
    """Read-only view of one commit of a git directory."""

    def __init__(self, git_dir: str, ref: str):
        self.git_dir = git_dir
        self.ref = ref
        self.commit = self._git("rev-parse", f"{ref}^{{commit}}").strip()
        out = self._git("ls-tree", "-r", "-z", "--full-tree", self.commit)
        self.blobs: dict[str, str] = {}
        for entry in out.split("\0"):
            if not entry:
                continue
            meta, path = entry.split("\t", 1)
            _mode, kind, sha = meta.split()
            if kind == "blob":
                self.blobs[path] = sha
        self._cache: dict[str, str] = {}

    def _git(self, *args: str) -> str:
        return subprocess.run(
            ["git", f"--git-dir={self.git_dir}", *args],
            check=True,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
        ).stdout

    def read_many(self, paths: list[str]) -> None:
        """Load many blobs in one ``git cat-file --batch`` run."""
        todo = [p for p in paths if p not in self._cache and p in self.blobs]
        if not todo:
            return
        proc = subprocess.run(
            ["git", f"--git-dir={self.git_dir}", "cat-file", "--batch"],
            input="".join(self.blobs[p] + "\n" for p in todo).encode(),
            check=True,
            capture_output=True,
        )
        data = proc.stdout
        pos = 0
        for path in todo:
            nl = data.index(b"\n", pos)
            header = data[pos:nl].split()
            size = int(header[2])
            start = nl + 1
            self._cache[path] = data[start : start + size].decode(
                "utf-8", errors="replace"
            )
            pos = start + size + 1

    def read(self, path: str) -> str:
        if path not in self._cache:
            if path not in self.blobs:
                raise FileNotFoundError(path)
            self.read_many([path])
        return self._cache[path]

    def go_files(self, directory: str | None = None) -> list[str]:
        """Non-test Go files, in one directory (not below it) or in the whole tree."""
        out = []
        for path in self.blobs:
            if not path.endswith(".go") or path.endswith("_test.go"):
                continue
            parts = path.split("/")
            if "vendor" in parts[:-1] or "testdata" in parts[:-1]:
                continue
            if directory is not None and path.rsplit("/", 1)[0] != directory.rstrip(
                "/"
            ):
                continue
            out.append(path)
        return sorted(out)


# ---------------------------------------------------------------------------
# Go tokenizer (enough of the spec for declarations)

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[ \t\r]+)
  | (?P<nl>\n)
  | (?P<lcomment>//[^\n]*)
  | (?P<bcomment>/\*.*?\*/)
  | (?P<raw>`[^`]*`)
  | (?P<str>"(?:\\.|[^"\\\n])*")
  | (?P<rune>'(?:\\.|[^'\\\n])+')
  | (?P<num>\.?[0-9][0-9a-zA-Z_.]*(?:[eEpP][+-][0-9_]+)?)
  | (?P<ident>[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)
  | (?P<op>\.\.\.|<<=|>>=|&\^=|&&|\|\||<-|\+\+|--|==|!=|<=|>=|:=|<<|>>|&\^|[-+*/%&|^<>=!]=?|[()\[\]{},;.:~])
    """,
    re.VERBOSE | re.DOTALL,
)
_SEMI_AFTER_KEYWORDS = {"break", "continue", "fallthrough", "return"}


class Tok:
    __slots__ = ("kind", "line", "text")

    def __init__(self, kind: str, text: str, line: int):
        self.kind, self.text, self.line = kind, text, line

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"{self.kind}:{self.text}"


def tokenize(src: str) -> list[Tok]:
    """Go tokens with automatic semicolons inserted, comments dropped."""
    toks: list[Tok] = []
    line = 1
    pos = 0
    n = len(src)

    def needs_semi() -> bool:
        if not toks:
            return False
        last = toks[-1]
        if last.kind in ("ident", "num", "str", "raw", "rune"):
            return last.kind != "ident" or last.text not in _GO_KEYWORDS_NO_SEMI
        return last.kind == "op" and last.text in (")", "]", "}", "++", "--")

    while pos < n:
        m = _TOKEN_RE.match(src, pos)
        if not m:  # unknown character: skip it
            pos += 1
            continue
        kind = m.lastgroup
        text = m.group(kind)
        if kind == "nl" or (kind == "bcomment" and "\n" in text):
            if needs_semi():
                toks.append(Tok("op", ";", line))
        elif kind in ("ws", "lcomment", "bcomment"):
            pass
        else:
            toks.append(Tok(kind, text, line))
        line += text.count("\n")
        pos = m.end()
    if needs_semi():
        toks.append(Tok("op", ";", line))
    return toks


# identifiers after which a newline does not end the statement
_GO_KEYWORDS_NO_SEMI = {
    "package",
    "import",
    "func",
    "var",
    "const",
    "type",
    "struct",
    "interface",
    "map",
    "chan",
    "if",
    "else",
    "for",
    "switch",
    "case",
    "default",
    "select",
    "go",
    "defer",
    "range",
    "goto",
}


def go_string_value(tok: Tok) -> str:
    """Value of a Go string literal token."""
    if tok.kind == "raw":
        return tok.text[1:-1].replace("\r", "")
    return json.loads(_go_escape_to_json(tok.text))


def _go_escape_to_json(lit: str) -> str:
    body = lit[1:-1]
    body = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: "\\u00" + m.group(1), body)
    body = re.sub(
        r"\\U([0-9a-fA-F]{8})",
        lambda m: chr(int(m.group(1), 16)).replace("\\", "\\\\").replace('"', '\\"'),
        body,
    )
    body = re.sub(r"\\([0-7]{3})", lambda m: f"\\u{int(m.group(1), 8):04x}", body)
    body = body.replace("\\'", "'").replace("\\a", "\\u0007").replace("\\v", "\\u000b")
    return '"' + body + '"'


def matching(toks: list[Tok], i: int) -> int:
    """Index of the bracket closing the one at toks[i]."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    open_, close = toks[i].text, pairs[toks[i].text]
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].kind != "op":
            continue
        if toks[j].text == open_:
            depth += 1
        elif toks[j].text == close:
            depth -= 1
            if depth == 0:
                return j
    raise ValueError(f"unbalanced {open_!r} at line {toks[i].line}")


# ---------------------------------------------------------------------------
# Go type expressions


class TypeExpr:
    """A parsed Go type: kind in ident/qual/ptr/slice/array/map/struct/iface/func/chan/generic."""

    __slots__ = ("args", "elem", "fields", "key", "kind", "name", "pkg")

    def __init__(
        self, kind, name=None, pkg=None, elem=None, key=None, fields=None, args=None
    ):
        self.kind, self.name, self.pkg, self.elem = kind, name, pkg, elem
        self.key, self.fields, self.args = key, fields, args

    def __str__(self) -> str:
        k = self.kind
        if k == "ident":
            return self.name
        if k == "qual":
            return f"{self.pkg}.{self.name}"
        if k == "ptr":
            return f"*{self.elem}"
        if k == "slice":
            return f"[]{self.elem}"
        if k == "array":
            return f"[N]{self.elem}"
        if k == "map":
            return f"map[{self.key}]{self.elem}"
        if k == "generic":
            return f"{self.elem}[...]"
        return {
            "struct": "struct{...}",
            "iface": "interface{...}",
            "func": "func(...)",
            "chan": "chan",
        }.get(k, k)


class Field:
    __slots__ = ("embedded", "names", "tag", "type")

    def __init__(self, names, type_, tag, embedded):
        self.names, self.type, self.tag, self.embedded = names, type_, tag, embedded


class TypeParser:
    """Recursive-descent parser for Go type expressions over a token list."""

    def __init__(self, toks: list[Tok]):
        self.t = toks

    def at(self, i: int, text: str) -> bool:
        return i < len(self.t) and self.t[i].kind == "op" and self.t[i].text == text

    def parse_type(self, i: int) -> tuple[TypeExpr, int]:
        t = self.t
        tok = t[i]
        if tok.kind == "op":
            if tok.text == "*":
                elem, j = self.parse_type(i + 1)
                return TypeExpr("ptr", elem=elem), j
            if tok.text == "(":
                inner, j = self.parse_type(i + 1)
                return inner, j + 1  # skip ')'
            if tok.text == "[":
                if self.at(i + 1, "]"):
                    elem, j = self.parse_type(i + 2)
                    return TypeExpr("slice", elem=elem), j
                close = matching(t, i)
                elem, j = self.parse_type(close + 1)
                return TypeExpr("array", elem=elem), j
            if tok.text == "<-":  # <-chan T
                elem, j = self.parse_type(i + 2)
                return TypeExpr("chan", elem=elem), j
            raise ValueError(f"unexpected {tok.text!r} in type at line {tok.line}")
        if tok.kind != "ident":
            raise ValueError(f"unexpected {tok.text!r} in type at line {tok.line}")
        word = tok.text
        if word == "map":
            close = matching(t, i + 1)
            key, _ = self.parse_type(i + 2)
            elem, j = self.parse_type(close + 1)
            return TypeExpr("map", key=key, elem=elem), j
        if word == "chan":
            j = i + 1
            if self.at(j, "<-"):
                j += 1
            elem, j = self.parse_type(j)
            return TypeExpr("chan", elem=elem), j
        if word == "struct":
            close = matching(t, i + 1)
            return TypeExpr("struct", fields=self.parse_fields(i + 2, close)), close + 1
        if word == "interface":
            close = matching(t, i + 1)
            return TypeExpr("iface"), close + 1
        if word == "func":
            j = matching(t, i + 1) + 1  # parameters
            # result: a parenthesised list, or a single type, or nothing
            if self.at(j, "("):
                j = matching(t, j) + 1
            elif (
                j < len(t)
                and not (t[j].kind == "op" and t[j].text in (";", ",", ")", "]", "}"))
                and t[j].kind not in ("raw", "str")
            ):
                _, j = self.parse_type(j)
            return TypeExpr("func"), j
        j = i + 1
        if self.at(j, ".") and j + 1 < len(t) and t[j + 1].kind == "ident":
            texpr = TypeExpr("qual", pkg=word, name=t[j + 1].text)
            j += 2
        else:
            texpr = TypeExpr("ident", name=word)
        if self.at(j, "["):  # instantiation of a generic type
            close = matching(t, j)
            args = []
            k = j + 1
            while k < close:
                a, k = self.parse_type(k)
                args.append(a)
                if self.at(k, ","):
                    k += 1
            texpr = TypeExpr("generic", elem=texpr, args=args)
            j = close + 1
        return texpr, j

    def parse_fields(self, i: int, end: int) -> list[Field]:
        """Fields of a struct body between tokens i and end (exclusive)."""
        t = self.t
        fields: list[Field] = []
        while i < end:
            if self.at(i, ";"):
                i += 1
                continue
            # find the end of this field declaration
            j = i
            depth = 0
            while j < end:
                tk = t[j]
                if tk.kind == "op":
                    if tk.text in "([{":
                        depth += 1
                    elif tk.text in ")]}":
                        depth -= 1
                    elif tk.text == ";" and depth == 0:
                        break
                j += 1
            decl = t[i:j]
            tag = None
            if decl and decl[-1].kind in ("raw", "str"):
                tag = go_string_value(decl[-1])
                decl = decl[:-1]
            fields.append(self._field(decl, tag))
            i = j + 1
        return fields

    def _field(self, decl: list[Tok], tag: str | None) -> Field:
        # embedded: [*] Name | [*] pkg.Name [type args]
        k = 0
        if decl[0].kind == "op" and decl[0].text == "*":
            k = 1
        rest = decl[k:]
        is_embedded = (
            (len(rest) == 1 and rest[0].kind == "ident")
            or (
                len(rest) == 3
                and rest[0].kind == "ident"
                and rest[1].text == "."
                and rest[2].kind == "ident"
            )
            or (
                len(rest) >= 2
                and rest[0].kind == "ident"
                and rest[1].text == "["
                and rest[-1].text == "]"
                and not (len(rest) > 2 and rest[2].text == "]")
                and _looks_generic_embed(rest)
            )
        )
        sub = TypeParser(decl + [Tok("op", ";", 0)])
        if is_embedded:
            texpr, _ = sub.parse_type(0)
            base = texpr.elem if texpr.kind == "ptr" else texpr
            if base.kind == "generic":
                base = base.elem
            return Field([base.name], texpr, tag, True)
        names = []
        j = 0
        while True:
            names.append(decl[j].text)
            j += 1
            if sub.at(j, ","):
                j += 1
                continue
            break
        texpr, _ = sub.parse_type(j)
        return Field(names, texpr, tag, False)


def _looks_generic_embed(rest: list[Tok]) -> bool:
    # Name[T] embedded (rare); "Name [N]T" would be a named array field instead.
    close_depth = 0
    for idx, tk in enumerate(rest):
        if tk.text == "[":
            close_depth += 1
        elif tk.text == "]":
            close_depth -= 1
            if close_depth == 0:
                return idx == len(rest) - 1
    return False


# ---------------------------------------------------------------------------
# Go packages


class Method:
    __slots__ = ("body", "params", "recv_name", "recv_type")

    def __init__(self, recv_name, recv_type, body, params):
        self.recv_name, self.recv_type, self.body, self.params = (
            recv_name,
            recv_type,
            body,
            params,
        )


class Package:
    """Declarations of one directory of the tree: types, string consts, methods, imports per file."""

    def __init__(self, tree: Tree, directory: str, module: str):
        self.dir = directory
        self.name = None
        self.types: dict[
            str, tuple[TypeExpr, dict[str, str], str]
        ] = {}  # name -> (expr, imports, file)
        self.consts: dict[str, str] = {}
        self.methods: dict[
            tuple[str, str], tuple[Method, list[Tok], dict[str, str]]
        ] = {}
        files = tree.go_files(directory)
        tree.read_many(files)
        for path in files:
            src = tree.read(path)
            if _ignored_by_build_tag(src):
                continue
            try:
                self._parse_file(path, tokenize(src))
            except (ValueError, IndexError) as exc:
                print(f"warning: {path}: {exc}", file=sys.stderr)

    def _parse_file(self, path: str, t: list[Tok]) -> None:
        imports: dict[str, str] = {}
        parser = TypeParser(t)
        i = 0
        n = len(t)
        while i < n:
            tk = t[i]
            if tk.kind != "ident":
                i += 1
                continue
            if tk.text == "package" and self.name is None:
                self.name = t[i + 1].text
                i += 2
            elif tk.text == "import":
                i = self._parse_imports(t, i + 1, imports)
            elif tk.text == "type":
                i = self._group(
                    t,
                    i + 1,
                    lambda a, b: self._type_spec(parser, t, a, b, imports, path),
                )
            elif tk.text == "const" or tk.text == "var":
                i = self._group(t, i + 1, lambda a, b: self._value_spec(t, a, b))
            elif tk.text == "func":
                i = self._func(parser, t, i, imports)
            else:
                i += 1

    @staticmethod
    def _group(t: list[Tok], i: int, handle) -> int:
        """Call handle(start, end) for each spec of a possibly parenthesised declaration."""
        if t[i].kind == "op" and t[i].text == "(":
            close = matching(t, i)
            j = i + 1
            while j < close:
                if t[j].kind == "op" and t[j].text == ";":
                    j += 1
                    continue
                k = j
                depth = 0
                while k < close:
                    if t[k].kind == "op":
                        if t[k].text in "([{":
                            depth += 1
                        elif t[k].text in ")]}":
                            depth -= 1
                        elif t[k].text == ";" and depth == 0:
                            break
                    k += 1
                handle(j, k)
                j = k + 1
            return close + 1
        k = i
        depth = 0
        while k < len(t):
            if t[k].kind == "op":
                if t[k].text in "([{":
                    depth += 1
                elif t[k].text in ")]}":
                    depth -= 1
                elif t[k].text == ";" and depth == 0:
                    break
            k += 1
        handle(i, k)
        return k + 1

    @staticmethod
    def _parse_imports(t: list[Tok], i: int, imports: dict[str, str]) -> int:
        def one(a: int, b: int) -> None:
            spec = t[a:b]
            if not spec:
                return
            path = go_string_value(spec[-1])
            alias = (
                spec[0].text if len(spec) > 1 else path.rstrip("/").rsplit("/", 1)[-1]
            )
            if len(spec) == 1:
                # gopkg.in/yaml.v3 -> yaml ; foo/v2 -> foo
                last = alias
                if re.fullmatch(r"v[0-9]+", last):
                    last = path.rstrip("/").rsplit("/", 2)[-2]
                alias = re.sub(r"\.v[0-9]+$", "", last).replace("-", "_")
            imports[alias] = path

        return Package._group(t, i, one)

    def _type_spec(
        self, parser: TypeParser, t: list[Tok], a: int, b: int, imports, path
    ) -> None:
        name = t[a].text
        j = a + 1
        if parser.at(j, "[") and not parser.at(j + 1, "]"):
            # type parameters "Name[T any]" (an array type "Name [N]T" has a literal or const inside)
            close = matching(t, j)
            inner = t[j + 1 : close]
            if (
                len(inner) >= 2
                and inner[0].kind == "ident"
                and inner[1].kind == "ident"
                or any(x.text in ("any", "comparable", "interface") for x in inner)
            ):
                j = close + 1
        if parser.at(j, "="):
            j += 1
        texpr, _ = parser.parse_type(j)
        self.types[name] = (texpr, imports, path)

    def _value_spec(self, t: list[Tok], a: int, b: int) -> None:
        spec = t[a:b]
        if "=" not in [x.text for x in spec if x.kind == "op"]:
            return
        eq = next(k for k, x in enumerate(spec) if x.kind == "op" and x.text == "=")
        names = [x.text for x in spec[:eq] if x.kind == "ident"]
        values = spec[eq + 1 :]
        if (
            len(names) == 1
            and values
            and all(
                x.kind in ("str", "raw") or (x.kind == "op" and x.text == "+")
                for x in values
            )
        ):
            self.consts[names[0]] = "".join(
                go_string_value(x) for x in values if x.kind in ("str", "raw")
            )

    def _func(self, parser: TypeParser, t: list[Tok], i: int, imports) -> int:
        j = i + 1
        recv_name = recv_type = None
        if parser.at(j, "("):  # method receiver
            close = matching(t, j)
            recv = [x for x in t[j + 1 : close] if x.kind == "ident"]
            if len(recv) >= 2:
                recv_name, recv_type = recv[0].text, recv[1].text
            elif recv:
                recv_type = recv[0].text
            j = close + 1
        fname = t[j].text
        j += 1
        if parser.at(j, "["):
            j = matching(t, j) + 1
        params_close = matching(t, j)
        params = t[j + 1 : params_close]
        k = params_close + 1
        while k < len(t) and not parser.at(k, "{") and not parser.at(k, ";"):
            if parser.at(k, "(") or parser.at(k, "["):
                k = matching(t, k)
            k += 1
        if not parser.at(k, "{"):
            return k + 1
        close = matching(t, k)
        if recv_type:
            self.methods[(recv_type, fname)] = (
                Method(recv_name, recv_type, t[k + 1 : close], params),
                t,
                imports,
            )
        return close + 1


def _ignored_by_build_tag(src: str) -> bool:
    m = re.search(r"^//go:build (.+)$", src[:2000], re.MULTILINE)
    return bool(m and re.fullmatch(r"\s*ignore\s*", m.group(1)))


# ---------------------------------------------------------------------------
# server config tree

_BASIC = {
    "string": "string",
    "bool": "bool",
    "byte": "int",
    "rune": "int",
    "int": "int",
    "int8": "int",
    "int16": "int",
    "int32": "int",
    "int64": "int",
    "uint": "int",
    "uint8": "int",
    "uint16": "int",
    "uint32": "int",
    "uint64": "int",
    "uintptr": "int",
    "float32": "float",
    "float64": "float",
    "any": "any",
    "error": "any",
    "complex64": "unresolved:complex64",
    "complex128": "unresolved:complex128",
}
_EXTERNAL = {
    ("time", "Duration"): "duration",
    # net/url.URL has no text unmarshaler, so yaml decodes it as a struct of its exported
    # fields, lower-cased (e.g. "url: {scheme: https, host: es:443}"); User (*Userinfo) has
    # only unexported fields.  Written from the Go standard library's documentation.
    ("net/url", "URL"): {
        "scheme": "string",
        "opaque": "string",
        "user": {},
        "host": "string",
        "path": "string",
        "rawpath": "string",
        "omithost": "bool",
        "forcequery": "bool",
        "rawquery": "string",
        "fragment": "string",
        "rawfragment": "string",
    },
    ("gopkg.in/yaml.v3", "Node"): "any",
    ("gopkg.in/yaml.v2", "MapSlice"): "any",
    ("go.yaml.in/yaml/v3", "Node"): "any",
}


class ConfigResolver:
    def __init__(self, tree: Tree, module: str):
        self.tree = tree
        self.module = module
        self.packages: dict[str, Package] = {}
        self.unresolved: set[str] = set()
        self.notes: list[dict] = []
        self._noted: set[str] = set()

    def package(self, directory: str) -> Package:
        if directory not in self.packages:
            self.packages[directory] = Package(self.tree, directory, self.module)
        return self.packages[directory]

    def _dir_for_import(self, import_path: str) -> str | None:
        if import_path == self.module:
            return ""
        if import_path.startswith(self.module + "/"):
            return import_path[len(self.module) + 1 :]
        return None

    def resolve_named(
        self,
        directory: str,
        name: str,
        stack: tuple,
        path: str,
        local: dict | None = None,
    ):
        pkg = self.package(directory)
        if local and name in local:
            texpr, imports = local[name]
            if (
                texpr.kind == "ident"
                and texpr.name in pkg.types
                and texpr.name not in local
            ):
                # "type conn connection" inside a method: same fields, none of the methods,
                # so the underlying struct is read without its UnmarshalYAML
                texpr, imports, _file = pkg.types[texpr.name]
            return self.resolve(texpr, directory, imports, stack, path, local)
        if name not in pkg.types:
            if name in _BASIC:
                return _BASIC[name]
            label = f"unresolved:{directory}.{name}"
            self.unresolved.add(f"{directory}.{name}")
            return label
        ident = f"{directory}.{name}"
        if ident in stack:
            return f"recursive:{ident}"
        texpr, imports, _file = pkg.types[name]
        custom = self._custom_unmarshal(
            pkg, name, directory, imports, stack + (ident,), path
        )
        if custom is not None:
            return custom
        return self.resolve(texpr, directory, imports, stack + (ident,), path)

    def resolve(
        self,
        texpr: TypeExpr,
        directory: str,
        imports: dict,
        stack: tuple,
        path: str,
        local: dict | None = None,
    ):
        k = texpr.kind
        if k == "ptr":
            return self.resolve(texpr.elem, directory, imports, stack, path, local)
        if k == "slice" or k == "array":
            if texpr.elem.kind == "ident" and texpr.elem.name == "byte":
                return "string"  # []byte takes a (binary or plain) string
            return {
                "[]": self.resolve(
                    texpr.elem, directory, imports, stack, path + ".[]", local
                )
            }
        if k == "map":
            return {
                "*": self.resolve(
                    texpr.elem, directory, imports, stack, path + ".*", local
                )
            }
        if k == "iface":
            return "any"
        if k == "func" or k == "chan":
            self.unresolved.add(f"{k} field at {path}")
            return f"unresolved:{k}"
        if k == "struct":
            return self.struct_keys(
                texpr.fields, directory, imports, stack, path, local
            )
        if k == "generic":
            return self.resolve(texpr.elem, directory, imports, stack, path, local)
        if k == "ident":
            if (
                texpr.name in _BASIC
                and not (local and texpr.name in local)
                and texpr.name not in self.package(directory).types
            ):
                return _BASIC[texpr.name]
            return self.resolve_named(directory, texpr.name, stack, path, local)
        if k == "qual":
            import_path = imports.get(texpr.pkg)
            if import_path is None:
                self.unresolved.add(f"{texpr.pkg}.{texpr.name}")
                return f"unresolved:{texpr.pkg}.{texpr.name}"
            if (import_path, texpr.name) in _EXTERNAL:
                known = _EXTERNAL[(import_path, texpr.name)]
                if (
                    isinstance(known, dict)
                    and f"{import_path}.{texpr.name}" not in self._noted
                ):
                    self._noted.add(f"{import_path}.{texpr.name}")
                    self.notes.append(
                        {
                            "type": f"{import_path}.{texpr.name}",
                            "path": path.lstrip("."),
                            "note": "standard library type, keys of its exported fields "
                            "(lower-cased) from the Go documentation",
                        }
                    )
                return json.loads(json.dumps(known))
            target = self._dir_for_import(import_path)
            if target is None or not self.tree.go_files(target):
                self.unresolved.add(f"{import_path}.{texpr.name}")
                return f"unresolved:{import_path}.{texpr.name}"
            return self.resolve_named(target, texpr.name, stack, path)
        raise AssertionError(k)

    def struct_keys(
        self,
        fields: list[Field],
        directory: str,
        imports: dict,
        stack: tuple,
        path: str,
        local: dict | None = None,
    ) -> dict:
        out: dict = {}
        for f in fields:
            tag = _yaml_tag(f.tag)
            if tag == "-":
                continue
            parts = tag.split(",") if tag else [""]
            flags = set(parts[1:])
            for name in f.names:
                exported = name[:1].isupper()
                if not exported and not f.embedded:
                    continue
                if "inline" in flags:
                    sub = self.resolve(f.type, directory, imports, stack, path, local)
                    if isinstance(sub, dict):
                        for key, val in sub.items():
                            out[key] = _merge(out.get(key), val)
                    else:
                        out.setdefault("<inline>", []).append(sub)
                    continue
                if not exported:
                    continue
                key = parts[0] or name.lower()
                out[key] = self.resolve(
                    f.type, directory, imports, stack, f"{path}.{key}", local
                )
        return out

    # -- types with UnmarshalYAML ------------------------------------------------

    def _custom_unmarshal(
        self,
        pkg: Package,
        name: str,
        directory: str,
        imports: dict,
        stack: tuple,
        path: str,
    ):
        entry = pkg.methods.get((name, "UnmarshalYAML"))
        if entry is None:
            return None
        method, _toks, m_imports = entry
        body = method.body
        texts = [x.text for x in body]
        ident = f"{directory}.{name}"
        texpr = pkg.types[name][0]
        how = None
        result = None
        # 1. "n.Decode(&recv.field)" / "unmarshal(&recv.field)": the field's type
        for idx in range(len(body) - 4):
            if (
                texts[idx] == "&"
                and texts[idx + 1] == method.recv_name
                and texts[idx + 2] == "."
                and texts[idx + 4] == ")"
                and texts[idx - 1] == "("
            ):
                fname = texts[idx + 3]
                ftype = _field_type(texpr, fname)
                if ftype is not None:
                    how = f"decodes into field {fname}"
                    result = self.resolve(ftype, directory, imports, stack, path)
                    break
        # 2. a local overlay struct decoded instead of the receiver
        if result is None:
            local = self._local_types(body, m_imports)
            overlay = next(
                (
                    nm
                    for nm, (te, _) in reversed(list(local.items()))
                    if te.kind == "struct"
                ),
                None,
            )
            if overlay is not None:
                how = f"decodes a local overlay struct {overlay}"
                result = self.struct_keys(
                    local[overlay][0].fields, directory, m_imports, stack, path, local
                )
                # yaml.Node fields of the overlay: the concrete types the method assigns
                for f in local[overlay][0].fields:
                    key = _yaml_tag(f.tag).split(",")[0] or (f.names[0].lower())
                    if result.get(key) != "any":
                        continue
                    candidates = self._assigned_types(body, method.recv_name)
                    merged = None
                    for cand in candidates:
                        merged = _merge(
                            merged,
                            self.resolve(
                                cand, directory, imports, stack, f"{path}.{key}"
                            ),
                        )
                    if merged is not None:
                        result[key] = merged
        if result is None:
            how = "custom UnmarshalYAML not followed; keys from the Go struct"
        if ident not in self._noted:
            self._noted.add(ident)
            self.notes.append(
                {"type": ident, "path": path.lstrip("."), "UnmarshalYAML": how}
            )
        return result

    def _local_types(self, body: list[Tok], imports: dict) -> dict:
        """Local 'type X ...' declarations of a function body, by name."""
        out: dict = {}
        parser = TypeParser(body)
        i = 0
        while i < len(body):
            if body[i].kind == "ident" and body[i].text == "type" and i + 2 < len(body):
                try:
                    te, j = parser.parse_type(i + 2)
                except (ValueError, IndexError):
                    i += 1
                    continue
                out[body[i + 1].text] = (te, imports)
                i = j
            else:
                i += 1
        return out

    @staticmethod
    def _assigned_types(body: list[Tok], recv: str) -> list[TypeExpr]:
        """Types T of 'recv.X = &T{}' and 'recv.X = new(T)' in a method body."""
        texts = [x.text for x in body]
        out = []
        for idx in range(len(body) - 5):
            if texts[idx] == recv and texts[idx + 1] == "." and texts[idx + 3] == "=":
                if (
                    texts[idx + 4] == "&"
                    and body[idx + 5].kind == "ident"
                    and idx + 6 < len(body)
                    and texts[idx + 6] == "{"
                ):
                    out.append(TypeExpr("ident", name=texts[idx + 5]))
                elif (
                    texts[idx + 4] == "new"
                    and texts[idx + 5] == "("
                    and idx + 7 < len(body)
                    and texts[idx + 7] == ")"
                ):
                    out.append(TypeExpr("ident", name=texts[idx + 6]))
        return out


def _field_type(texpr: TypeExpr, fname: str) -> TypeExpr | None:
    if texpr.kind != "struct":
        return None
    for f in texpr.fields:
        if fname in f.names:
            return f.type
    return None


def _yaml_tag(tag: str | None) -> str:
    """reflect.StructTag.Get("yaml"), with yaml.v2/v3's fallback to a colon-less whole tag."""
    if not tag:
        return ""
    m = re.search(r'(?:^|\s)yaml:"((?:\\.|[^"\\])*)"', tag)
    if m:
        return m.group(1)
    if ":" not in tag:
        return tag
    return ""


def _merge(a, b):
    if a is None:
        return b
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge(out.get(k), v)
        return out
    return a if a == b else b


def _sort_tree(node):
    if isinstance(node, dict):
        return {k: _sort_tree(node[k]) for k in sorted(node)}
    return node


def flatten(node, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf of a config tree (for checks and counts)."""
    if not isinstance(node, dict) or not node:
        return [prefix]
    out = []
    for key, val in node.items():
        out.extend(flatten(val, f"{prefix}.{key}" if prefix else key))
    return out


# ---------------------------------------------------------------------------
# dynamic config keys

# New<Scope><Type>Setting..., the constructors setting_gen.go generates per value type.
_CONSTRUCTOR_TYPE_RE = re.compile(
    r"^New(?:Global|Namespace|NamespaceID|TaskQueue|ShardID|TaskType|Destination|ChasmTaskType)"
    r"(Bool|Int|Float|String|Duration|Map|Typed)Setting"
)


def setting_type(constructor: str, arguments: list[Tok]) -> str:
    """The value type a setting's constructor declares (see the module docstring)."""
    match = _CONSTRUCTOR_TYPE_RE.match(constructor)
    if not match:
        return "typed"
    kind = match.group(1).lower()
    if kind != "typed":
        return kind
    if constructor.endswith("WithConverter") or constructor.endswith("WithConstrainedDefault"):
        return "typed"
    # the default is the second argument: "[]T(nil)", "([]T)(nil)" or "[]T{...}"
    default = _argument(arguments, 1)
    texts = [x.text for x in default if not (x.kind == "op" and x.text == "(")]
    return "list" if texts[:2] == ["[", "]"] else "typed"


def _argument(toks: list[Tok], index: int) -> list[Tok]:
    """The index-th top-level comma-separated argument of a call's token list (without its parentheses)."""
    arguments: list[list[Tok]] = [[]]
    depth = 0
    for x in toks:
        if x.kind == "op" and x.text in "([{":
            depth += 1
        elif x.kind == "op" and x.text in ")]}":
            depth -= 1
        elif x.kind == "op" and x.text == "," and depth == 0:
            arguments.append([])
            continue
        arguments[-1].append(x)
    return arguments[index] if index < len(arguments) else []


_NAIVE_RE = re.compile(
    r"\bNew[A-Za-z]*Setting[A-Za-z]*(?:\[[^\]\n]*\])?\(\s*(\"[^\"\n]*\"|`[^`]*`)"
)


def dynamic_config(tree: Tree, module: str) -> dict:
    dc_dir = "common/dynamicconfig"
    files = tree.go_files()
    tree.read_many(files)
    # the constructors: func New...Setting...(key string, ...) in package dynamicconfig
    constructors: set[str] = set()
    for path in tree.go_files(dc_dir):
        for m in re.finditer(
            r"^func (New\w*Setting\w*)\s*(?:\[[^\]]*\])?\(\s*\w+\s+(?:string|Key)\b",
            tree.read(path),
            re.MULTILINE,
        ):
            constructors.add(m.group(1))
    dc_import = f"{module}/{dc_dir}"
    keys: dict[str, list[str]] = {}
    types: dict[str, set[str]] = {}
    notes: list[str] = []
    naive = 0
    packages: dict[str, Package] = {}
    for path in files:
        src = tree.read(path)
        naive += len(_NAIVE_RE.findall(src))
        if "Setting" not in src:
            continue
        toks = tokenize(src)
        directory = path.rsplit("/", 1)[0] if "/" in path else ""
        in_dc = directory == dc_dir
        aliases = {a for a, p in _file_imports(toks).items() if p == dc_import}
        for i, tk in enumerate(toks):
            if tk.kind != "ident" or tk.text not in constructors:
                continue
            if i > 0 and toks[i - 1].text == "func":
                continue
            qualified = (
                i >= 2 and toks[i - 1].text == "." and toks[i - 2].text in aliases
            )
            if not (qualified or (in_dc and toks[i - 1].text != ".")):
                continue
            j = i + 1
            if toks[j].text == "[":
                j = matching(toks, j) + 1
            if toks[j].text != "(":
                continue
            close = matching(toks, j)
            arg_end = j + 1
            depth = 0
            while arg_end < close:
                x = toks[arg_end]
                if x.kind == "op" and x.text in "([{":
                    depth += 1
                elif x.kind == "op" and x.text in ")]}":
                    depth -= 1
                elif x.kind == "op" and x.text == "," and depth == 0:
                    break
                arg_end += 1
            arg = toks[j + 1 : arg_end]
            where = f"{path}:{tk.line}"
            key = _const_string(arg, tree, module, directory, toks, packages)
            if key is None:
                if in_dc and len(arg) == 1 and arg[0].text == "key":
                    continue  # a constructor passing its own parameter on
                notes.append(
                    f"{where}: {tk.text}({' '.join(x.text for x in arg)}, ...) key not resolved"
                )
                continue
            if not (len(arg) == 1 and arg[0].kind in ("str", "raw")):
                notes.append(
                    f"{where}: {tk.text}({' '.join(x.text for x in arg)}) key built from constants = {key!r}"
                )
            keys.setdefault(key, []).append(where)
            types.setdefault(key, set()).add(setting_type(tk.text, toks[j + 1 : close]))
    dupes = {k: v for k, v in keys.items() if len(v) > 1}
    for k, v in sorted(dupes.items()):
        notes.append(f"key {k!r} registered {len(v)} times: {', '.join(v)}")
    for k, kinds in sorted(types.items()):
        if len(kinds) > 1:
            notes.append(f"key {k!r} registered with types {', '.join(sorted(kinds))}: typed")
    per_file = Counter(w.rsplit(":", 1)[0] for v in keys.values() for w in v)
    registrations = sum(len(v) for v in keys.values())
    return {
        "keys": sorted(keys),
        "types": {k: next(iter(v)) if len(v) == 1 else "typed" for k, v in sorted(types.items())},
        "notes": notes,
        "per_file": dict(sorted(per_file.items())),
        "check": {
            "constructors": len(constructors),
            "registrations_found": registrations,
            "distinct_keys": len(keys),
            "naive_regex_matches": naive,
            "naive_regex": _NAIVE_RE.pattern,
        },
    }


def _file_imports(toks: list[Tok]) -> dict[str, str]:
    imports: dict[str, str] = {}
    for i, tk in enumerate(toks):
        if tk.kind == "ident" and tk.text == "import":
            Package._parse_imports(toks, i + 1, imports)
        elif tk.kind == "ident" and tk.text in ("func", "type", "var", "const"):
            break
    return imports


def _const_string(
    arg: list[Tok],
    tree: Tree,
    module: str,
    directory: str,
    toks: list[Tok],
    packages: dict,
) -> str | None:
    """Value of a key argument made of string literals, consts and '+', else None."""
    if not arg:
        return None
    parts = []
    i = 0
    imports = None
    while i < len(arg):
        x = arg[i]
        if x.kind in ("str", "raw"):
            parts.append(go_string_value(x))
            i += 1
        elif x.kind == "op" and x.text in ("+", "(", ")"):
            i += 1
        elif x.kind == "ident":
            if i + 2 < len(arg) and arg[i + 1].text == ".":
                imports = imports if imports is not None else _file_imports(toks)
                target = imports.get(x.text, "")
                if not target.startswith(module + "/"):
                    return None
                d = target[len(module) + 1 :]
                name = arg[i + 2].text
                i += 3
            else:
                d, name = directory, x.text
                i += 1
            if d not in packages:
                packages[d] = Package(tree, d, module)
            val = packages[d].consts.get(name)
            if val is None:
                return None
            parts.append(val)
        else:
            return None
    return "".join(parts)


# ---------------------------------------------------------------------------
# metrics

_METRIC_KINDS = {
    "NewCounterDef": "counter",
    "NewGaugeDef": "gauge",
    "NewTimerDef": "timer",
    "NewBytesHistogramDef": "histogram",
    "NewDimensionlessHistogramDef": "histogram",
}
# counter -> counter, gauge -> gauge, timer and histogram -> histogram (timerType: histogram)
_PROMETHEUS_TYPES = {"counter": "counter", "gauge": "gauge", "timer": "histogram", "histogram": "histogram"}
_DEFINITION_RE = re.compile(
    r"\b(" + "|".join(_METRIC_KINDS) + r")\(\s*(\"[^\"\n]*\"|[A-Za-z_][\w.]*)"
)
_VARIABLE_RE = re.compile(
    r"^\s*([A-Z]\w*)\s*=\s*(?:" + "|".join(_METRIC_KINDS) + r")\(\s*(\"[^\"\n]*\"|[A-Za-z_][\w.]*)", re.MULTILINE
)
_EXPORTED_WORD_RE = re.compile(r"\b[A-Z]\w*\b")
_HANDLER_CALL_RE = re.compile(r"\.(Counter|Gauge|Timer|Histogram)\(\s*\"([a-z][a-z0-9_]*)\"")
# Tag{Key: k, ...} from 1.30; &tagImpl{key: k, ...} before; StringTag(k, v) in both.
_TAG_KEY_RE = re.compile(
    r"(?:\bTag\{\s*Key:\s*|\btagImpl\{\s*key:\s*|\bStringTag\(\s*)(\"[^\"\n]*\"|[A-Za-z_][\w.]*)"
)
_OPERATION_CONST_RE = re.compile(r"^\s*(\w+Scope|TaskType\w+)\s*=\s*\"([^\"]+)\"", re.MULTILINE)


def metrics(tree: Tree, module: str) -> dict:
    """The metrics, label keys and operation values (see the module docstring)."""
    metrics_dir = "common/metrics"
    consts = Package(tree, metrics_dir, module).consts

    def resolve(argument: str) -> str | None:
        if argument.startswith('"'):
            return json.loads(argument)
        return consts.get(argument.rsplit(".", 1)[-1] if argument.startswith("metrics.") else argument)

    found: dict[str, set[str]] = {}
    variables: dict[str, str] = {}  # metric name -> the Go variable it is defined as
    words: Counter = Counter()
    label_keys: set[str] = set()
    notes: list[str] = []
    for path in tree.go_files():
        src = tree.read(path)
        words.update(_EXPORTED_WORD_RE.findall(src))
        in_metrics = path.rsplit("/", 1)[0] == metrics_dir
        for m in _VARIABLE_RE.finditer(src):
            name = resolve(m.group(2))
            if name is not None:
                variables[name] = m.group(1)
        for m in _DEFINITION_RE.finditer(src):
            if src[max(0, m.start() - 5) : m.start()].endswith("func "):
                continue  # the constructor's own declaration
            name = resolve(m.group(2))
            if name is None:
                if not (in_metrics and m.group(2) == "name"):
                    notes.append(f"{path}: {m.group(1)}({m.group(2)}) name not resolved")
                continue
            found.setdefault(name, set()).add(_METRIC_KINDS[m.group(1)])
        for m in _HANDLER_CALL_RE.finditer(src):
            found.setdefault(m.group(2), set()).add(m.group(1).lower())
        for m in _TAG_KEY_RE.finditer(src):
            key = resolve(m.group(1))
            if key:
                label_keys.add(key)
    for name, kinds in sorted(found.items()):
        if len(kinds) > 1:
            notes.append(f"metric {name!r} defined as {', '.join(sorted(kinds))}")
    operations = {m.group(2) for m in _OPERATION_CONST_RE.finditer(tree.read(f"{metrics_dir}/metric_defs.go"))}
    return {
        "metrics": {name: {"kind": min(kinds), "prometheus": _PROMETHEUS_TYPES[min(kinds)],
                           "recorded": name not in variables or words[variables[name]] > 1}
                    for name, kinds in sorted(found.items())},
        "label_keys": sorted(label_keys),
        "operation_values": sorted(operations),
        "notes": notes,
    }


# ---------------------------------------------------------------------------


def server_version(tree: Tree) -> str | None:
    for path in (
        "common/headers/version_checker.go",
        "common/headers/versionChecker.go",
    ):
        if path in tree.blobs:
            m = re.search(r'\bServerVersion\s*=\s*"([^"]+)"', tree.read(path))
            if m:
                return m.group(1)
    return None


def module_path(tree: Tree) -> str:
    m = re.search(r"^module\s+(\S+)", tree.read("go.mod"), re.MULTILINE)
    return m.group(1) if m else "go.temporal.io/server"


def yaml_library(tree: Tree) -> str | None:
    for path in ("common/config/loader.go", "common/config/config.go"):
        if path in tree.blobs:
            m = re.search(
                r'"((?:gopkg\.in/yaml\.v\d)|(?:go\.yaml\.in/yaml/v\d)|(?:sigs\.k8s\.io/yaml))"',
                tree.read(path),
            )
            if m:
                return m.group(1)
    return None


def extract(git_dir: str, ref: str, repository: str) -> dict:
    tree = Tree(git_dir, ref)
    module = module_path(tree)
    lib = yaml_library(tree)
    resolver = ConfigResolver(tree, module)
    config_tree = _sort_tree(resolver.resolve_named("common/config", "Config", (), ""))
    dc = dynamic_config(tree, module)
    defined = metrics(tree, module)
    return {
        "source": {
            "repository": repository,
            "ref": ref,
            "commit": tree.commit,
            "server_version": server_version(tree),
            "go_module": module,
            "yaml_library": lib,
            "extracted_by": "scripts/extract_temporal_data.py",
        },
        "dynamic_config_keys": dc["keys"],
        "dynamic_config_types": dc["types"],
        "dynamic_config_notes": dc["notes"],
        "dynamic_config_key_files": dc["per_file"],
        "dynamic_config_check": dc["check"],
        "server_config": config_tree,
        "server_config_notes": resolver.notes,
        "server_config_unresolved": sorted(resolver.unresolved),
        "metrics": defined["metrics"],
        "metric_label_keys": defined["label_keys"],
        "metric_operation_values": defined["operation_values"],
        "metric_notes": defined["notes"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Writes provisioner/data/temporal/<X.Y>.json unless --out is given. "
        "See the module docstring (python -m pydoc) for the output format.",
    )
    ap.add_argument(
        "--git-dir",
        required=True,
        help="git directory of a temporal server repository (bare is fine)",
    )
    ap.add_argument(
        "--ref",
        required=True,
        help="tag, branch or commit to read, e.g. v1.31.2 or main",
    )
    ap.add_argument(
        "--version",
        required=True,
        help="release line X.Y, or a name such as 'fork'; names the output file",
    )
    ap.add_argument(
        "--repository",
        required=True,
        help="owner/name recorded as the source, e.g. temporalio/temporal",
    )
    ap.add_argument(
        "--out",
        help="output path (default: provisioner/data/temporal/<version>.json in this repository)",
    )
    ap.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="KEY",
        help="dynamic config key or dotted server config path ('*' for map entries) "
        "that must be present; repeatable; exit status 1 if one is missing",
    )
    args = ap.parse_args(argv)

    data = extract(args.git_dir, args.ref, args.repository)
    out = (
        Path(args.out)
        if args.out
        else (
            Path(__file__).resolve().parent.parent
            / "provisioner"
            / "data"
            / "temporal"
            / f"{args.version}.json"
        )
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")

    keys = set(data["dynamic_config_keys"])
    paths = set(flatten(data["server_config"]))
    prefixes = {p.rsplit(".", i)[0] for p in paths for i in range(p.count(".") + 1)}
    chk = data["dynamic_config_check"]
    print(
        f"{out}: {data['source']['ref']} {data['source']['commit']} server {data['source']['server_version']}: "
        f"{len(keys)} dynamic config keys ({chk['registrations_found']} registrations, naive regex "
        f"{chk['naive_regex_matches']}), {len(paths)} server config leaves, "
        f"{len(data['server_config_unresolved'])} unresolved types, {len(data['metrics'])} metrics, "
        f"{len(data['metric_label_keys'])} label keys"
    )
    missing = [c for c in args.check if c not in keys and c not in prefixes]
    for c in missing:
        print(f"missing: {c}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
