"""One logging API, one logger-name scheme and one field style, checked on the syntax tree.

Every log line of every component must parse the same way in one pipeline, so the rules of
`metallb_py/log.py` are enforced here rather than by review:

- product code (metallb_py, webhooks) logs through `metallb_py.log.get_logger(component)`; only
  log.py itself touches stdlib `logging.getLogger` or structlog;
- logger names are a component (`log.COMPONENTS`) in the product and a library name
  (`log.LIBRARIES`: bgp, bfd, l2) in the protocol libraries, which log through stdlib `logging`
  because they must not import the product;
- field keys, whether keyword arguments or `extra={...}` keys (including dicts returned by a
  helper of the same module and passed as `extra=` or spread into it), are camelCase like
  MetalLB's (`peer`, `localASN`, `holdTime`): no underscores, lowercase first letter;
- in the product, the event (the first argument) is a camelCase name too (`leadershipLost`), so
  it can be matched exactly; the human sentence goes in `msg=`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from metallb_py import cli, log

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("metallb_py", "webhooks")
LIBRARIES = ("bgp", "bfd", "l2", "netkit")
# Product packages whose conversion to this API is still under way elsewhere; remove each entry
# once its package follows the rules.
PENDING: tuple[str, ...] = ()

LEVELS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log", "msg"}
RECEIVER = re.compile(r"_?(log|logger|stdlog)")
CAMEL = re.compile(r"[a-z][a-zA-Z0-9]*")
# Keyword arguments of the logging call itself, not fields of the line.
CALL_OPTIONS = {"exc_info", "stack_info", "stacklevel", "extra"}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def sources(packages: tuple[str, ...]) -> list[Path]:
    found: list[Path] = []
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not any(rel == p or rel.startswith(p + "/") for p in PENDING):
                found.append(path)
    return found


def _terminal_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _is_get_logger(node: ast.AST) -> bool:
    """`logging.getLogger(...)`, `getLogger(...)`, `get_logger(...)` or structlog's."""
    return isinstance(node, ast.Call) and _terminal_name(node.func) in {"getLogger", "get_logger"}


def logger_variables(tree: ast.Module) -> set[str]:
    """Names the module binds to a logger (`x = get_logger(...)`), whatever they are called."""
    return {
        _terminal_name(target)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and _is_get_logger(node.value)
        for target in node.targets
    }


def is_log_call(node: ast.AST, loggers: set[str]) -> bool:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    if node.func.attr not in LEVELS:
        return False
    receiver = node.func.value
    name = _terminal_name(receiver)
    return bool(RECEIVER.fullmatch(name)) or name in loggers or _is_get_logger(receiver)


def _returned_dict_keys(tree: ast.Module, name: str) -> list[ast.expr | None] | None:
    """Keys of the dict literals returned by the module's function `name`, if it has one."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            keys: list[ast.expr | None] = []
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Dict):
                    keys += ret.value.keys
            return keys
    return None


def field_keys(tree: ast.Module, call: ast.Call) -> list[tuple[int, str]]:
    """(line, key) of every field a logging call attaches that can be read statically."""
    out = [
        (kw.value.lineno, kw.arg) for kw in call.keywords if kw.arg and kw.arg not in CALL_OPTIONS
    ]
    pending: list[ast.expr] = [kw.value for kw in call.keywords if kw.arg == "extra"]
    while pending:
        value = pending.pop()
        if isinstance(value, ast.Dict):
            for key, item in zip(value.keys, value.values, strict=True):
                if key is None:  # `**spread`
                    pending.append(item)
                elif isinstance(key, ast.Constant) and isinstance(key.value, str):
                    out.append((key.lineno, key.value))
        elif isinstance(value, ast.Call):
            keys = _returned_dict_keys(tree, _terminal_name(value.func))
            for key in keys or ():
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    out.append((value.lineno, key.value))
    return out


def violations(path: Path, *, product: bool) -> tuple[list[Violation], int]:
    """Rule breaks in one file and how many logging calls it holds."""
    rel = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), rel)
    found: list[Violation] = []
    calls = 0
    is_log_module = rel == "metallb_py/log.py"
    names = log.COMPONENTS if product else log.LIBRARIES
    loggers = logger_variables(tree)
    for node in ast.walk(tree):
        if product and not is_log_module:
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                if any(m and m.split(".")[0] == "structlog" for m in modules):
                    found.append(Violation(rel, node.lineno, "structlog outside metallb_py/log.py"))
            if isinstance(node, ast.Call) and _terminal_name(node.func) == "getLogger":
                found.append(Violation(rel, node.lineno, "stdlib getLogger: use get_logger"))
        if _is_get_logger(node) and not is_log_module:
            assert isinstance(node, ast.Call)
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant):
                if arg.value not in names:
                    found.append(Violation(rel, node.lineno, f"logger name {arg.value!r}"))
            elif not (product and rel == "metallb_py/cli.py") and not (
                rel == "netkit/jsonlog.py" and arg is None  # the root logger's handler
            ):
                found.append(Violation(rel, node.lineno, "logger name is not a literal"))
        if is_log_call(node, loggers):
            assert isinstance(node, ast.Call)
            calls += 1
            event = node.args[0] if node.args else None
            if (
                product
                and isinstance(event, ast.Constant)
                and isinstance(event.value, str)
                and not CAMEL.fullmatch(event.value)
            ):
                found.append(
                    Violation(rel, node.lineno, f"log event {event.value!r} is not camelCase")
                )
            for line, key in field_keys(tree, node):
                if not CAMEL.fullmatch(key):
                    found.append(Violation(rel, line, f"log field {key!r} is not camelCase"))
    return found, calls


@pytest.mark.parametrize("packages", [PRODUCT, LIBRARIES], ids=["product", "libraries"])
def test_logging_follows_one_api_and_one_field_style(packages: tuple[str, ...]) -> None:
    product = packages == PRODUCT
    broken: list[Violation] = []
    calls = 0
    for path in sources(packages):
        found, n = violations(path, product=product)
        broken += found
        calls += n
    assert calls > 50, "the scanner no longer recognises the logging calls"
    assert not broken, "\n".join(map(str, broken))


def test_cli_components_log_under_a_component_name() -> None:
    """`run_component` names each long-running component's logger after its command."""
    assert {key.split()[0] for key in cli.COMPONENTS} <= log.COMPONENTS


SAMPLE = """
import logging
from metallb_py.log import get_logger
import structlog

log = logging.getLogger("metallb_py.speaker.bgp")
other = get_logger("speakers")

def _fields():
    return {"peer_address": "x", "interface": "eth0"}

def f(key):
    log.info("sessionDown", extra={"peer": key, "was_established": True, **_fields()})
    other.warning("configStale", retry_in=1, exc_info=True)
    other.info("lost leadership")
"""


def test_the_scanner_catches_each_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sample = tmp_path / "metallb_py" / "sample.py"
    sample.parent.mkdir()
    sample.write_text(SAMPLE)
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    found, calls = violations(sample, product=True)
    whats = sorted(v.what for v in found)
    assert calls == 3
    assert whats == sorted(
        [
            "structlog outside metallb_py/log.py",
            "stdlib getLogger: use get_logger",
            "logger name 'metallb_py.speaker.bgp'",
            "logger name 'speakers'",
            "log field 'was_established' is not camelCase",
            "log field 'peer_address' is not camelCase",
            "log field 'retry_in' is not camelCase",
            "log event 'lost leadership' is not camelCase",
        ]
    )
