"""`metallb-py config validate FILE...`: the parser the cluster runs, offline.

Exit 0 when valid, 1 when any object breaks a rule (one line per problem on stdout,
`kind/namespace/name: field: message`), 2 when an input cannot be read or is not YAML.
References that may be created later (BFDProfile, Secret, Community alias) only warn.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Any, TextIO

import yaml

from metallb_py import yamlsafe
from metallb_py.config.objects import DEFAULT_NAMESPACE
from metallb_py.config.parser import parse
from metallb_py.config.problems import Problem, bounded_lines

EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


class InputError(Exception):
    """An input that cannot be read or parsed as YAML."""


@dataclass(frozen=True)
class Origin:
    file: str
    document: int


def _read(name: str, stdin: TextIO) -> str:
    if name == "-":
        return stdin.read()
    try:
        with open(name, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"cannot read {name}: not UTF-8 text") from None


def yaml_error_line(shown: str, exc: yaml.YAMLError) -> str:
    """`FILE:LINE:COLUMN: what`; a refused document names the object and field (yamlsafe)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark is not None else shown
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, yamlsafe.YAMLLimitError):
        return f"{where}: refused: {problem}"
    return f"{where}: invalid YAML: {problem}"


def load_documents(name: str, text: str) -> list[tuple[Any, Origin]]:
    """Every object of a multi-document YAML stream; `kind: List` is flattened."""
    shown = "<stdin>" if name == "-" else name
    out: list[tuple[Any, Origin]] = []
    try:
        docs = yamlsafe.load_all(text)
    except yaml.YAMLError as exc:
        raise InputError(yaml_error_line(shown, exc)) from None
    for i, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        if (
            isinstance(doc, dict)
            and doc.get("kind") == "List"
            and isinstance(doc.get("items"), list)
        ):
            out.extend((item, Origin(shown, i)) for item in doc["items"])
        else:
            out.append((doc, Origin(shown, i)))
    return out


def _line(problem: Problem, origins: list[Origin]) -> str:
    name = problem.ref.name
    if name.startswith("<object ") and name.endswith(">"):
        try:
            origin = origins[int(name[len("<object ") : -1]) - 1]
        except (ValueError, IndexError):
            return problem.line()
        prefix = "warning: " if problem.severity == "warning" else ""
        return (
            f"{origin.file}: document {origin.document}: {prefix}{problem.message} "
            f"(rule {problem.rule})"
        )
    return problem.line()


def validate(files: list[str], stdin: TextIO, out: TextIO, err: TextIO) -> int:
    namespace = os.environ.get("METALLB_NAMESPACE") or DEFAULT_NAMESPACE
    resources: list[Any] = []
    origins: list[Origin] = []
    if files.count("-") > 1:
        print("metallb-py config validate: '-' (stdin) can be given only once", file=err)
        return EXIT_UNREADABLE
    try:
        for name in files:
            for doc, origin in load_documents(name, _read(name, stdin)):
                resources.append(doc)
                origins.append(origin)
    except InputError as exc:
        print(f"metallb-py config validate: {exc}", file=err)
        return EXIT_UNREADABLE
    config, problems = parse(resources, namespace=namespace, lenient_references=True)
    for line in bounded_lines(problems, lambda p: _line(p, origins)):
        print(line, file=out)
    errors = sum(1 for p in problems if p.is_error)
    warnings = len(problems) - errors
    summary = (
        f"{len(resources)} object(s): {len(config.pools)} pool(s), {len(config.peers)} peer(s), "
        f"{len(config.l2_advertisements)} L2 and {len(config.bgp_advertisements)} BGP "
        f"advertisement(s); {errors} error(s), {warnings} warning(s)"
    )
    print(summary, file=err)
    return EXIT_INVALID if errors else EXIT_VALID


def run(args: argparse.Namespace) -> int:
    try:
        return validate(list(args.files), sys.stdin, sys.stdout, sys.stderr)
    except Exception as exc:  # never a traceback for the user
        print(f"metallb-py config validate: internal error: {exc!r}", file=sys.stderr)
        return EXIT_UNREADABLE
