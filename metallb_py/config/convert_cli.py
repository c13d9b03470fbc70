"""`metallb-py config convert FILE`: MetalLB's pre-v0.13 ConfigMap as metallb.io resources.

The resources go to stdout (or `-o FILE`) as multi-document YAML, ready for `kubectl apply -f`;
what changed or could not be carried over goes to stderr, one line each, followed by the verdict
of the parser the cluster runs on the result. Exit 0 when everything was carried over and the
result is valid, 1 when something was left out or the result breaks a rule (the YAML is still
written), 2 when the input cannot be read or holds no legacy configuration.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

import yaml

from metallb_py.config.legacy_configmap import (
    LegacyConfigError,
    convert,
    find_legacy_config,
    load_all,
)
from metallb_py.config.objects import DEFAULT_NAMESPACE
from metallb_py.config.parser import parse
from metallb_py.config.problems import bounded_lines
from metallb_py.config.validate_cli import InputError, _read, yaml_error_line

EXIT_OK, EXIT_INCOMPLETE, EXIT_UNREADABLE = 0, 1, 2
HEADER = "# Converted from MetalLB's legacy ConfigMap by metallb-py config convert.\n"
PROG = "metallb-py config convert"


def dump(objects: list[dict[str, Any]]) -> str:
    """Multi-document YAML, keys in the order Kubernetes shows them."""
    return HEADER + "".join(
        "---\n" + yaml.safe_dump(o, sort_keys=False, default_flow_style=False) for o in objects
    )


def run_convert(name: str, output: str | None, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    namespace = os.environ.get("METALLB_NAMESPACE") or DEFAULT_NAMESPACE
    try:
        text = _read(name, stdin)
        try:
            docs = load_all(text)
        except yaml.YAMLError as exc:
            shown = "<stdin>" if name == "-" else name
            raise InputError(yaml_error_line(shown, exc)) from None
        config = find_legacy_config(docs)
    except (InputError, LegacyConfigError) as exc:
        print(f"{PROG}: {exc}", file=err)
        return EXIT_UNREADABLE
    result = convert(config, namespace)
    text = dump(result.objects)
    if output and output != "-":
        try:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            print(f"{PROG}: cannot write {output}: {exc.strerror or exc}", file=err)
            return EXIT_UNREADABLE
    else:
        out.write(text)
    for note in result.notes:
        print(note.line(), file=err)
    _, problems = parse(result.objects, namespace=namespace, lenient_references=True)
    for line in bounded_lines(problems, lambda p: f"result: {p.line()}"):
        print(line, file=err)
    errors = sum(1 for p in problems if p.is_error)
    dropped = sum(1 for n in result.notes if n.severity == "dropped")
    kinds: dict[str, int] = {}
    for o in result.objects:
        kinds[o["kind"]] = kinds.get(o["kind"], 0) + 1
    made = ", ".join(f"{n} {k}" for k, n in kinds.items()) or "no object"
    print(
        f"{made}; {dropped} item(s) not carried over; result: {errors} error(s), "
        f"{len(problems) - errors} warning(s)",
        file=err,
    )
    return EXIT_INCOMPLETE if dropped or errors else EXIT_OK


def run(args: argparse.Namespace) -> int:
    try:
        return run_convert(args.file, args.output, sys.stdin, sys.stdout, sys.stderr)
    except Exception as exc:  # never a traceback for the user
        print(f"{PROG}: internal error: {exc!r}", file=sys.stderr)
        return EXIT_UNREADABLE
