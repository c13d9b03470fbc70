"""One JSON object per line on stdout, for every component.

MetalLB logs go-kit JSON; ours keeps its event names and adds fixed keys (`ts`, `level`,
`event`, `logger`) so one log pipeline parses every component. stdlib logging (aiohttp,
kubernetes_asyncio and our protocol libraries, which must not depend on structlog) is routed
through the same renderer so nothing escapes as plain text. `--log-format text` swaps the JSON
renderer for an aligned console line with the same keys, for a person at a terminal.

One API and one field style: product code logs through `get_logger(component)` with keyword
fields (`log.info("ipAllocated", service=..., ip=...)`); the protocol libraries use stdlib
`logging.getLogger("bgp"|"bfd"|"l2")` with `extra={...}`. Field keys are camelCase like MetalLB's
(`peer`, `localASN`, `holdTime`); tests/unit/test_log_style.py enforces all three rules.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog

# MetalLB's --log-level values; "all" is everything, "none" silences the component.
LEVELS: dict[str, int] = {
    "all": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "none": logging.CRITICAL + 10,
}
LEVEL_NAMES = tuple(LEVELS)
# "json" for log pipelines (the default), "text" for a person reading a terminal.
FORMATS = ("json", "text")

# Logger names: one per product component, one per protocol library (which log through stdlib).
COMPONENTS = frozenset(
    {
        "apiserver",
        "config",
        "controller",
        "demo",
        "explain",
        "kube",
        "membership",
        "operator",
        "speaker",
        "webhook",
    }
)
LIBRARIES = frozenset({"bgp", "bfd", "l2"})

_LEVEL_LABEL = {
    "debug": "debug",
    "info": "info",
    "warning": "warn",
    "warn": "warn",
    "error": "error",
    "exception": "error",
    "critical": "error",
}


def _timestamp(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    now = datetime.now(UTC)
    event_dict["ts"] = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    return event_dict


def _level(_: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    raw = str(event_dict.pop("level", method_name)).lower()
    event_dict["level"] = _LEVEL_LABEL.get(raw, raw)
    return event_dict


def _logger_name(logger: Any, _: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    if "logger" not in event_dict:
        record = event_dict.get("_record")
        if record is not None:
            event_dict["logger"] = record.name
        else:
            event_dict["logger"] = getattr(logger, "name", None) or "metallb-py"
    return event_dict


def _stdlib_extras(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Keep structured `extra=` fields that protocol libraries attach to stdlib records."""
    record: logging.LogRecord | None = event_dict.get("_record")
    if record is not None:
        for key, value in record.__dict__.items():
            if key not in _STD_RECORD_KEYS and not key.startswith("_") and key not in event_dict:
                event_dict[key] = value
    return event_dict


_STD_RECORD_KEYS = set(logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        _logger_name,
        _level,
        _timestamp,
        _stdlib_extras,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]


def _order_keys(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    ordered: dict[str, Any] = {
        k: event_dict.pop(k) for k in ("ts", "level", "event", "logger") if k in event_dict
    }
    ordered.update(event_dict)
    return ordered


def configure(
    level: str = "info",
    stream: TextIO | None = None,
    component: str | None = None,
    fmt: str = "json",
) -> None:
    """Set up structlog and the stdlib root logger; call once per process."""
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVEL_NAMES)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(FORMATS)}")
    threshold = LEVELS[level]
    out = stream if stream is not None else sys.stdout

    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False, default=str)
    else:
        colors = bool(getattr(out, "isatty", lambda: False)())
        renderer = structlog.dev.ConsoleRenderer(colors=colors, timestamp_key="ts", sort_keys=False)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _order_keys,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    # Library chatter at debug level would drown ours; they follow our threshold but not below info.
    for noisy in ("aiohttp.access", "asyncio", "pyroute2"):
        logging.getLogger(noisy).setLevel(max(threshold, logging.INFO))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    if component:
        structlog.contextvars.bind_contextvars(component=component)


def get_logger(name: str) -> Any:
    """A structlog logger whose `logger` key is `name` (a member of `COMPONENTS`).

    It stays lazy (a proxy assembled at each call from the current configuration, since
    `cache_logger_on_first_use` is off), so a module-level `log = get_logger(...)` imported
    before `configure()` still logs in the configured format; no wrapper class is needed.
    """
    return structlog.get_logger(name)
