"""Our membership against the real hashicorp/memberlist (Debian's 0.2.2, what MetalLB links).

MetalLB speakers and ours must be able to share one cluster during a migration, and a cluster of
ours must behave towards memberlist exactly as memberlist does. Each test builds a LAN of three
nodes (198.51.100.11-13, port 7946 everywhere) and runs one member per node: ours
(tests/lab/membership_member.py, a `MembershipService` with the `fast` profile) and Go ones
(tests/lab/memberlist/peer.go with memberlist's `local` or `lan` config), with and without the
MetalLB secret (each side derives its AES key from the secret string as the speaker does).

Kill tests SIGKILL the member's process, so its sockets vanish without a goodbye. Time bounds
come from the profiles (`detection_bound`); they are generous on purpose, the typical times are
a fraction of them. Without Go or root the tests skip, except under CI=true where they fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from metallb_py.membership.config import fast
from tests.lab.memberlist_peer import Event, GoMemberlistPeer
from tests.lab.membership_interop import (
    OTHER_SECRET,
    SECRET,
    OurMember,
    addr,
    detection_bound,
    ensure_go,
    events_of,
    go_profile,
    kill,
    live_names,
    start_go,
    start_ours,
    wait_all_see_all,
    wait_event_after,
)
from tests.lab.netns import Lab, wait_for
from tests.lab.topology import Lan, build_lan

pytestmark = pytest.mark.lab

ENCRYPTION = pytest.mark.parametrize("secret", ["", SECRET], ids=["plain", "encrypted"])
GO_PROFILE = "local"
QUIET = 4.0  # seconds a mixed cluster must run without any suspicion


@pytest.fixture
def lan3(lab: Lab) -> Iterator[Lan]:
    """A three-node LAN, the Go peer built; every member started on it is stopped after."""
    ensure_go()
    yield build_lan(lab, nodes=3)


def _leave_of(name: str) -> Callable[[Event], bool]:
    return lambda e: e.get("event") == "leave" and e.get("name") == name


# -- 1. joining either way ----------------------------------------------------------------------


@ENCRYPTION
def test_our_member_joins_a_go_cluster(lab: Lab, lan3: Lan, secret: str) -> None:
    """A speaker of ours added to a running MetalLB (Go) cluster is admitted: every Go member
    lists it alive at its real address, and it lists every Go member alive."""
    go1 = start_go(lab, lan3, 1, secret=secret, profile=GO_PROFILE)
    go2 = start_go(lab, lan3, 2, secret=secret, profile=GO_PROFILE, join=[addr(lan3, 1)])
    py3 = start_ours(lab, lan3, 3, secret=secret, join=[addr(lan3, 2)])
    assert py3.join_result is not None and py3.join_result["contacted"] == 1, py3.join_result
    wait_all_see_all([go1, go2, py3])
    for go in (go1, go2):
        (entry,) = [m for m in go.members() if m["name"] == "py3"]
        assert (entry["addr"], entry["port"], entry["state"]) == (lan3.nodes[2].ipv4, 7946, "alive")
    assert py3.member_states() == {"go1": "alive", "go2": "alive", "py3": "alive"}
    assert py3.dropped() == {}


@ENCRYPTION
def test_go_member_joins_our_cluster(lab: Lab, lan3: Lan, secret: str) -> None:
    """A MetalLB (Go) speaker joining a cluster of ours is admitted by memberlist's own join:
    it reaches us, and both sides then list all three members alive."""
    py1 = start_ours(lab, lan3, 1, secret=secret)
    py2 = start_ours(lab, lan3, 2, secret=secret, join=[lan3.nodes[0].ipv4])
    assert py2.join_result is not None and py2.join_result["contacted"] == 1
    go3 = start_go(lab, lan3, 3, secret=secret, profile=GO_PROFILE, join=[addr(lan3, 2)])
    joined = go3.wait_event("joined", timeout=15)
    assert joined.get("contacted") == 1 and "error" not in joined, joined
    wait_all_see_all([py1, py2, go3])
    for py in (py1, py2):
        assert py.member_states() == {"py1": "alive", "py2": "alive", "go3": "alive"}
        assert py.dropped() == {}


# -- 2. kill -9 ---------------------------------------------------------------------------------


@ENCRYPTION
def test_our_members_detect_a_killed_go_member(lab: Lab, lan3: Lan, secret: str) -> None:
    """When a Go member's node dies (SIGKILL), our members declare it dead ("dead", not
    "left") within the fast profile's detection time, and keep each other alive."""
    py1 = start_ours(lab, lan3, 1, secret=secret)
    py2 = start_ours(lab, lan3, 2, secret=secret, join=[lan3.nodes[0].ipv4])
    go3 = start_go(lab, lan3, 3, secret=secret, profile=GO_PROFILE, join=[addr(lan3, 1)])
    wait_all_see_all([py1, py2, go3])
    marks = {py: len(py.events) for py in (py1, py2)}
    kill(go3)
    killed_at = time.monotonic()
    bound = detection_bound(fast(), members=3)
    for py in (py1, py2):
        left = wait_event_after(py, _leave_of("go3"), bound, marks[py])
        assert left["reason"] == "dead", left
    elapsed = time.monotonic() - killed_at
    assert elapsed < bound
    for py in (py1, py2):
        assert py.member_states() == {"py1": "alive", "py2": "alive", "go3": "dead"}
        assert events_of(py, "leave", "py1") == events_of(py, "leave", "py2") == []


@ENCRYPTION
def test_go_members_detect_a_killed_member_of_ours(lab: Lab, lan3: Lan, secret: str) -> None:
    """When a node running our member dies (SIGKILL: sockets gone, no goodbye), memberlist's
    own failure detector notices: every Go member reports it gone (NotifyLeave) and drops it
    from Members() within its profile's detection time."""
    go1 = start_go(lab, lan3, 1, secret=secret, profile=GO_PROFILE)
    go2 = start_go(lab, lan3, 2, secret=secret, profile=GO_PROFILE, join=[addr(lan3, 1)])
    py3 = start_ours(lab, lan3, 3, secret=secret, join=[addr(lan3, 1)])
    wait_all_see_all([go1, go2, py3])
    marks = {go: len(go.events) for go in (go1, go2)}
    kill(py3)
    bound = detection_bound(go_profile(GO_PROFILE), members=3)
    for go in (go1, go2):
        # memberlist 0.2.2 hands NotifyLeave the node with its state field still "alive"; the
        # event itself is the failure report (a kill cannot say goodbye).
        wait_event_after(go, _leave_of("py3"), bound, marks[go])
        assert {m["name"] for m in go.members()} == {"go1", "go2"}


def test_killed_members_restart_and_rejoin_either_way(lab: Lab, lan3: Lan) -> None:
    """A speaker restarted after a crash (a new process, incarnation back to 1, while the
    others hold it dead) is admitted again, ours by Go members and Go's by ours: the restarted
    member refutes its death with a higher incarnation and everyone lists everyone alive."""
    go1 = start_go(lab, lan3, 1, secret=SECRET, profile=GO_PROFILE)
    py2 = start_ours(lab, lan3, 2, secret=SECRET, join=[addr(lan3, 1)])
    py3 = start_ours(lab, lan3, 3, secret=SECRET, join=[addr(lan3, 1)])
    wait_all_see_all([go1, py2, py3])
    bound = detection_bound(go_profile(GO_PROFILE), members=3)

    mark = len(go1.events)
    kill(py3)
    wait_event_after(go1, _leave_of("py3"), bound, mark)
    py3 = start_ours(lab, lan3, 3, secret=SECRET, join=[addr(lan3, 1)])
    wait_all_see_all([go1, py2, py3])
    (entry,) = [m for m in py3.members() if m["name"] == "py3"]
    assert entry["incarnation"] > 1, entry  # it refuted the death the Go member told it of

    mark = len(py2.events)
    kill(go1)
    wait_event_after(py2, _leave_of("go1"), detection_bound(fast(), 3), mark)
    go1 = start_go(lab, lan3, 1, secret=SECRET, profile=GO_PROFILE, join=[addr(lan3, 2)])
    wait_all_see_all([go1, py2, py3])
    for py in (py2, py3):
        (entry,) = [m for m in py.members() if m["name"] == "go1"]
        assert (entry["state"], entry["incarnation"] > 1) == ("alive", True), entry


# -- 3. graceful leave --------------------------------------------------------------------------


@ENCRYPTION
def test_go_members_see_our_graceful_leave_at_once(lab: Lab, lan3: Lan, secret: str) -> None:
    """A speaker of ours shutting down says goodbye: the Go members drop it long before their
    failure detector could have (well under probe timeout + the minimum suspicion timeout)."""
    go1 = start_go(lab, lan3, 1, secret=secret, profile=GO_PROFILE)
    go2 = start_go(lab, lan3, 2, secret=secret, profile=GO_PROFILE, join=[addr(lan3, 1)])
    py3 = start_ours(lab, lan3, 3, secret=secret, join=[addr(lan3, 1)])
    wait_all_see_all([go1, go2, py3])
    marks = {go: len(go.events) for go in (go1, go2)}
    cfg = go_profile(GO_PROFILE)
    fastest_failure = cfg.probe_timeout + cfg.suspicion_mult * cfg.probe_interval
    started = time.monotonic()
    py3.leave()
    for go in (go1, go2):
        wait_event_after(go, _leave_of("py3"), fastest_failure, marks[go])
    elapsed = time.monotonic() - started
    assert elapsed < fastest_failure / 2, f"leave took {elapsed:.2f}s"
    for go in (go1, go2):
        assert {m["name"] for m in go.members()} == {"go1", "go2"}


@ENCRYPTION
def test_our_members_see_a_go_graceful_leave_as_left(lab: Lab, lan3: Lan, secret: str) -> None:
    """A MetalLB speaker that leaves (memberlist's Leave: its own dead message) is reported by
    our members as left, not failed, at once, so failover logs and metrics tell them apart."""
    py1 = start_ours(lab, lan3, 1, secret=secret)
    py2 = start_ours(lab, lan3, 2, secret=secret, join=[lan3.nodes[0].ipv4])
    go3 = start_go(lab, lan3, 3, secret=secret, profile=GO_PROFILE, join=[addr(lan3, 1)])
    wait_all_see_all([py1, py2, go3])
    marks = {py: len(py.events) for py in (py1, py2)}
    started = time.monotonic()
    answer = go3.leave()
    assert "error" not in answer, answer
    for py in (py1, py2):
        left = wait_event_after(py, _leave_of("go3"), 5.0, marks[py])
        assert left["reason"] == "left", left
    assert time.monotonic() - started < 5.0
    for py in (py1, py2):
        assert py.member_states() == {"py1": "alive", "py2": "alive", "go3": "left"}
        assert events_of(py, "suspect", "go3") == []


# -- 4. wrong or missing key --------------------------------------------------------------------


def _apart(ours: list[OurMember], go: GoMemberlistPeer) -> None:
    """Neither side lists the other."""
    go_name = go.ready["name"]
    our_names = {m.ready["name"] for m in ours}
    for py in ours:
        assert go_name not in py.member_states(), py.member_states()
        assert live_names(py) == our_names
    assert live_names(go) == {go_name}


def test_go_member_with_another_key_cannot_join_ours(lab: Lab, lan3: Lan) -> None:
    """A MetalLB speaker holding a different secret is kept out of our cluster: its join
    fails, nobody lists it, and we count the streams we could not decrypt."""
    py1 = start_ours(lab, lan3, 1, secret=SECRET)
    py2 = start_ours(lab, lan3, 2, secret=SECRET, join=[lan3.nodes[0].ipv4])
    go3 = start_go(lab, lan3, 3, secret=OTHER_SECRET, profile=GO_PROFILE, join=[addr(lan3, 1)])
    joined = go3.wait_event("joined", timeout=15)
    assert joined.get("contacted") == 0 and "error" in joined, joined
    wait_for(lambda: py1.dropped().get("decrypt", 0) > 0, 5, what="py1 counts decrypt failures")
    _apart([py1, py2], go3)


def test_our_member_with_another_key_cannot_join_go(lab: Lab, lan3: Lan) -> None:
    """Our speaker holding a different secret from the Go cluster cannot join it: its join
    push-pull fails, the lists stay apart, and it counts the Go side's answer it could not
    decrypt (memberlist replies with an error message sealed with its own key)."""
    go1 = start_go(lab, lan3, 1, secret=OTHER_SECRET, profile=GO_PROFILE)
    py2 = start_ours(lab, lan3, 2, secret=SECRET, join=[addr(lan3, 1)])
    assert py2.join_result is not None
    assert py2.join_result["contacted"] == 0, py2.join_result
    assert py2.join_result["results"] == {lan3.nodes[0].ipv4: False}, py2.join_result
    assert py2.dropped().get("decrypt", 0) > 0
    _apart([py2], go1)


def test_unencrypted_go_member_is_refused_by_our_encrypted_cluster(lab: Lab, lan3: Lan) -> None:
    """A MetalLB speaker without the secret is refused by an encrypted cluster of ours both
    ways (its join, and our join towards it), and we count its plaintext as "unencrypted"."""
    py1 = start_ours(lab, lan3, 1, secret=SECRET)
    py2 = start_ours(lab, lan3, 2, secret=SECRET, join=[lan3.nodes[0].ipv4])
    go3 = start_go(lab, lan3, 3, profile=GO_PROFILE, join=[addr(lan3, 1)])
    joined = go3.wait_event("joined", timeout=15)
    assert joined.get("contacted") == 0 and "error" in joined, joined
    wait_for(
        lambda: py1.dropped().get("unencrypted", 0) > 0, 5, what="py1 counts plaintext refused"
    )
    before = py2.dropped().get("unencrypted", 0)
    answer = py2.join(lan3.nodes[2].ipv4)
    assert answer["contacted"] == 0, answer
    assert py2.dropped().get("unencrypted", 0) > before  # memberlist's plaintext error reply
    _apart([py1, py2], go3)


# -- 5. a mixed cluster on different profiles ---------------------------------------------------


@ENCRYPTION
def test_mixed_cluster_on_lan_and_fast_profiles_stays_quiet(
    lab: Lab, lan3: Lan, secret: str
) -> None:
    """A Go member on memberlist's LAN defaults and two of ours on the fast profile probe each
    other at very different rates; for several seconds nobody is suspected or declared dead."""
    go1 = start_go(lab, lan3, 1, secret=secret, profile="lan")
    py2 = start_ours(lab, lan3, 2, secret=secret, join=[addr(lan3, 1)])
    py3 = start_ours(lab, lan3, 3, secret=secret, join=[addr(lan3, 1)])
    members = [go1, py2, py3]
    wait_all_see_all(members)
    time.sleep(QUIET)
    wait_all_see_all(members, timeout=1.0)
    for member in members:
        assert events_of(member, "leave") == [], member.output()[-3000:]
    for py in (py2, py3):
        assert events_of(py, "suspect") == [], events_of(py, "suspect")
        snap = py.snapshot()
        assert snap["counters"]["deaths"] == 0
        assert snap["counters"]["suspicions_raised"] == 0
        assert snap["counters"]["probes_sent"] > 0
        assert snap["dropped"] == {}
