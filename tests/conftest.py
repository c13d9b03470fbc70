"""Shared fixtures. Lab tests need root and network namespaces: they skip on a developer machine
that lacks them, but fail in CI (CI=true), where skipping would hide a broken lab."""

from __future__ import annotations

import os
from collections.abc import Iterator

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
