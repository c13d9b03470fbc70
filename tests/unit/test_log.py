"""Logs are one JSON object per line with ts/level/event/logger, MetalLB's level names apply,
and stdlib logging (libraries, protocol code) comes out in the same format."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from metallb_py import log


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)


def test_structlog_line_has_fixed_keys() -> None:
    out = io.StringIO()
    log.configure("info", stream=out)
    log.get_logger("controller").info("ipAllocated", ip=["203.0.113.5"], service="default/web")
    (rec,) = lines(out)
    assert list(rec)[:4] == ["ts", "level", "event", "logger"]
    assert (
        rec["event"] == "ipAllocated" and rec["level"] == "info" and rec["logger"] == "controller"
    )
    assert rec["ip"] == ["203.0.113.5"] and rec["service"] == "default/web"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(rec["ts"]))


def test_stdlib_logging_is_routed_with_extras() -> None:
    out = io.StringIO()
    log.configure("debug", stream=out)
    logging.getLogger("bgp.session").warning("sessionDown", extra={"peer": "198.51.100.1"})
    (rec,) = lines(out)
    assert rec["event"] == "sessionDown" and rec["level"] == "warn"
    assert rec["logger"] == "bgp.session" and rec["peer"] == "198.51.100.1"


@pytest.mark.parametrize(
    ("level", "expected"),
    [("all", 4), ("debug", 4), ("info", 3), ("warn", 2), ("error", 1), ("none", 0)],
)
def test_level_filtering(level: str, expected: int) -> None:
    out = io.StringIO()
    log.configure(level, stream=out)
    logger = log.get_logger("x")
    logger.debug("d")
    logger.info("i")
    logger.warning("w")
    logger.error("e")
    assert len(lines(out)) == expected


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        log.configure("loud")


def test_exceptions_are_one_line() -> None:
    out = io.StringIO()
    log.configure("info", stream=out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.get_logger("x").exception("failed")
    assert len(out.getvalue().strip().splitlines()) == 1
    (rec,) = lines(out)
    assert "RuntimeError: boom" in str(rec["exception"])


def test_text_format_is_one_readable_line_with_the_same_keys() -> None:
    out = io.StringIO()
    log.configure("info", stream=out, component="apiserver", fmt="text")
    log.get_logger("apiserver").info("apiserverServing", url="https://127.0.0.1:6443")
    logging.getLogger("aiohttp.server").warning("slow %s", "client")
    first, second = out.getvalue().splitlines()
    assert not first.startswith("{") and "\x1b[" not in first  # no JSON, no colours off a tty
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[info\s*\] apiserverServing", first)
    assert "[apiserver]" in first and "url=https://127.0.0.1:6443" in first
    assert "component=apiserver" in first
    assert "slow client" in second and "[aiohttp.server]" in second and "warn" in second


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        log.configure("info", fmt="xml")


def test_logger_made_before_configure_follows_it() -> None:
    """A module-level `log = get_logger(...)` (imported before the CLI configures logging) must
    not freeze structlog's default console output."""
    early = log.get_logger("apiserver")
    out = io.StringIO()
    log.configure("info", stream=out)
    early.info("apiserverServing", url="https://127.0.0.1:6443")
    (rec,) = lines(out)
    assert rec["event"] == "apiserverServing" and rec["logger"] == "apiserver"
