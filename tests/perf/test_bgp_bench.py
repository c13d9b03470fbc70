"""BGP origination benchmarks against a real BIRD receiver, ExaBGP as the anchor (same run).

Smoke size by default (runs in `make test`); 100 000 prefixes with METALLB_BENCH=full. Results are
printed (`BENCH ...` lines, see -s) and appended as a Markdown table to $BENCH_BGP_OUT when set.
Only correctness is asserted (every prefix arrives); the figures belong in docs/bench-bgp.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab import bgp_bench as bb
from tests.lab.topology import Lan

N = bb.bench_size()


@pytest.fixture
def report() -> Iterator[bb.Report]:
    rep = bb.Report()
    yield rep
    rep.write()


@pytest.fixture
def rx(lan: Lan) -> bb.Receiver:
    return bb.Receiver(lan, lan.nodes).start()


def test_exabgp_cold_start(lan: Lan, rx: bb.Receiver, report: bb.Report) -> None:
    r = report.add(bb.exabgp_cold_start(lan, rx, lan.nodes[0], N, communities=False))
    assert r.seconds > 0 and r.peak_rss_mb


def test_exabgp_run_time(lan: Lan, rx: bb.Receiver, report: bb.Report) -> None:
    r = report.add(bb.exabgp_run_time(lan, rx, lan.nodes[0], N))
    assert r.rate > 0


def test_exabgp_cold_start_with_community_sets(
    lan: Lan, rx: bb.Receiver, report: bb.Report
) -> None:
    r = report.add(bb.exabgp_cold_start(lan, rx, lan.nodes[0], N, communities=True))
    assert r.seconds > 0


def test_speaker_cold_start(lan: Lan, rx: bb.Receiver, report: bb.Report) -> None:
    r = report.add(bb.speaker_cold_start(lan, rx, lan.nodes[1], N, communities=False))
    assert r.seconds > 0 and r.peak_rss_mb


def test_speaker_run_time(lan: Lan, rx: bb.Receiver, report: bb.Report) -> None:
    r = report.add(bb.speaker_run_time(lan, rx, lan.nodes[1], N))
    assert r.rate > 0


def test_speaker_cold_start_with_community_sets(
    lan: Lan, rx: bb.Receiver, report: bb.Report
) -> None:
    r = report.add(bb.speaker_cold_start(lan, rx, lan.nodes[1], N, communities=True))
    assert r.seconds > 0
