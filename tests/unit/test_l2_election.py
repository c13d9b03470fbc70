"""MetalLB's layer-2 election: weight first, then SHA-256("<node>#<first IP>") ascending."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from l2 import election


def test_metallb_verified_vectors() -> None:
    """The vectors of MetalLB's TestSortL2Candidates (its layer-2 candidate sort)."""
    assert election.rank(["node-a", "node-b", "node-c"], "10.0.0.1") == [
        "node-b",
        "node-a",
        "node-c",
    ]
    assert election.rank(["node-a", "node-b", "node-c"], "10.0.0.2") == [
        "node-b",
        "node-c",
        "node-a",
    ]
    weights = {"edge-a": 100, "edge-b": 100}
    assert election.rank(["worker-a", "edge-a", "edge-b"], "10.20.30.1", weights) == [
        "edge-b",
        "edge-a",
        "worker-a",
    ]


def test_vectors_for_the_lab_addresses() -> None:
    """Computed from the rule by hand (sha256 of "node#ip"), for the lab's service ranges."""
    digests = {
        n: hashlib.sha256(f"{n}#198.51.100.200".encode()).hexdigest() for n in ("node1", "node2")
    }
    expected = min(digests, key=lambda n: digests[n])
    assert election.winner(["node1", "node2"], "198.51.100.200") == expected
    # Written-out digests pin the exact string format "<node>#<ip>" (no spaces, RFC 5952).
    assert (
        election.hash_key("node1", "2001:DB8:100:0:0:0:0:200").hex()
        == hashlib.sha256(b"node1#2001:db8:100::200").hexdigest()
    )
    assert election.hash_key("node1", "::ffff:198.51.100.200") == election.hash_key(
        "node1", "198.51.100.200"
    )


def test_weight_beats_hash_and_first_ip_decides_for_the_whole_service() -> None:
    nodes = ["node-a", "node-b", "node-c"]
    # node-b wins 10.0.0.1 on hash; a weight lifts node-c above it.
    assert election.winner(nodes, "10.0.0.1", {"node-c": 1}) == "node-c"
    assignment = election.assign(["10.0.0.1", "2001:db8::1"], nodes)
    assert assignment == {"10.0.0.1": "node-b", "2001:db8::1": "node-b"}
    assert election.should_announce("node-b", ["10.0.0.1", "2001:db8::1"], nodes)
    assert not election.should_announce("node-a", ["10.0.0.1"], nodes)


def test_no_candidates_or_no_ips_means_nobody() -> None:
    assert election.winner([], "10.0.0.1") is None
    assert election.assign([], ["a"]) == {}
    assert election.assign(["10.0.0.1"], []) == {}
    assert not election.should_announce("a", [], ["a"])


names = st.lists(st.text(alphabet="abcdefgh-0123", min_size=1, max_size=8), min_size=1, max_size=8)


@given(names, st.integers(0, 2**32 - 1))
def test_stable_removing_a_non_owner_never_moves_the_ip(nodes: list[str], ip_int: int) -> None:
    ip = ".".join(str(ip_int >> s & 255) for s in (24, 16, 8, 0))
    owner = election.winner(nodes, ip)
    assert owner in nodes
    assert election.winner(list(reversed(nodes)), ip) == owner  # order of input is irrelevant
    for other in set(nodes) - {owner}:
        assert election.winner([n for n in nodes if n != other], ip) == owner
