"""Shared fixtures. Lab tests need root and network namespaces: they skip on a developer machine
that lacks them, but fail in CI (CI=true), where skipping would hide a broken lab."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.lab.netns import Lab, can_build_labs, sweep_stale
from tests.lab.topology import Lan, build_lan

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_sessionstart(session: pytest.Session) -> None:
    ok, _ = can_build_labs()
    if ok and not hasattr(session.config, "workerinput"):
        sweep_stale()


def require_lab() -> None:
    ok, why = can_build_labs()
    if ok:
        return
    if IN_CI:
        pytest.fail(f"lab test cannot run in CI: {why}")
    pytest.skip(f"lab test: {why}")


@pytest.fixture
def lab() -> Iterator[Lab]:
    """An empty lab; namespaces and processes are removed after the test, pass or fail."""
    require_lab()
    with Lab() as the_lab:
        yield the_lab


@pytest.fixture
def lan(lab: Lab) -> Lan:
    """Switch + router + client + two nodes, IPv4 and IPv6 (see tests/lab/topology.py)."""
    return build_lan(lab, nodes=2)


@pytest.fixture
async def apiserver_http() -> AsyncIterator[tuple[Any, Any]]:
    """An in-process API server on a loopback port and a client session for it
    (tests.lab.apiserver.request_json sends to it)."""
    from tests.lab.apiserver import served_in_process

    async with served_in_process() as pair:
        yield pair
