"""BGP origination benchmarks against a real BIRD receiver, ExaBGP as the anchor.

Each test measures ExaBGP and our speaker back to back in the same lab (same BIRD), so both
see the same machine load. Smoke size by default (runs in `make test`); 100 000 prefixes with
METALLB_BENCH=full. Results are printed (`BENCH ...` lines, see -s) and appended as a Markdown
table to $BENCH_BGP_OUT when set. Only correctness is asserted (every prefix arrives, with its
communities in the community variant); the figures and ratios belong in docs/bench-bgp.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab import bgp_bench as bb
from tests.lab.topology import Lan

N = bb.bench_size()
# At full size on a loaded 2-core machine ExaBGP alone can take minutes per scenario.
pytestmark = pytest.mark.timeout(1800 if bb.FULL else 300)


@pytest.fixture
def report() -> Iterator[bb.Report]:
    rep = bb.Report()
    yield rep
    rep.write()


@pytest.fixture
def rx(lan: Lan) -> bb.Receiver:
    return bb.Receiver(lan, lan.nodes).start()


def test_cold_start_exabgp_then_speaker(lan: Lan, rx: bb.Receiver, report: bb.Report) -> None:
    exa = report.add(bb.exabgp_cold_start(lan, rx, lan.nodes[0], N, communities=False))
    ours = report.add(bb.speaker_cold_start(lan, rx, lan.nodes[1], N, communities=False))
    report.ratio("cold start time", ours.seconds / exa.seconds, "<= 0.5")
    assert exa.peak_rss_mb and ours.peak_rss_mb
    report.ratio("cold start peak RSS", ours.peak_rss_mb / exa.peak_rss_mb, "<= 0.25")


def test_run_time_exabgp_then_speaker(lan: Lan, rx: bb.Receiver, report: bb.Report) -> None:
    exa = report.add(bb.exabgp_run_time(lan, rx, lan.nodes[0], N))
    ours = report.add(bb.speaker_run_time(lan, rx, lan.nodes[1], N))
    report.ratio("run-time rate", ours.rate / exa.rate, ">= 10")


def test_cold_start_with_1000_community_sets(lan: Lan, rx: bb.Receiver, report: bb.Report) -> None:
    exa = report.add(bb.exabgp_cold_start(lan, rx, lan.nodes[0], N, communities=True))
    ours = report.add(bb.speaker_cold_start(lan, rx, lan.nodes[1], N, communities=True))
    report.ratio("cold start time, 1 000 community sets", ours.seconds / exa.seconds, "<= 0.5")
