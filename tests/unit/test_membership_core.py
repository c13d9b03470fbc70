"""The sans-I/O membership core: memberlist's rules, Lifeguard, and our partition healing.

Everything runs on the simulated network of membership_sim.py with a fake clock.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
from functools import partial

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metallb_py.membership import config as profiles
from metallb_py.membership.awareness import Awareness
from metallb_py.membership.config import MembershipConfig, apply_memberlist_json
from metallb_py.membership.core import (
    PACKET_RESERVE,
    MembershipCore,
    StreamKind,
    estimate_size,
)
from metallb_py.membership.events import (
    LeaveComplete,
    LocalHealthChanged,
    MemberJoined,
    MemberLeft,
    MemberSuspected,
    SuspicionRefuted,
)
from metallb_py.membership.gossip import BroadcastQueue, retransmit_limit
from metallb_py.membership.messages import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    Message,
    Nack,
    NodeState,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
)
from metallb_py.membership.suspicion import (
    Suspicion,
    remaining_suspicion_time,
    suspicion_timeout,
)
from tests.unit.membership_sim import Addr, SimMember, SimNetwork, addr_of

FAST = profiles.fast()


def detection_bound(config: MembershipConfig, n: int, delay: float = 0.002) -> float:
    """Worst case from a kill to every survivor holding the member dead (no local degradation).

    Round robin with a reshuffle at each wrap can leave up to 2 (n - 1) intervals between two
    probes of the same member; then a probe round, the TCP-ping grace, the longest suspicion
    timeout, and gossip of the death to the rest.
    """
    min_t = suspicion_timeout(config.suspicion_mult, n, config.probe_interval)
    k = config.suspicion_mult - 2
    suspicion = min_t if (k < 1 or n - 2 < k) else config.suspicion_max_timeout_mult * min_t
    return (
        2 * (n - 1) * config.probe_interval
        + config.probe_interval
        + config.probe_timeout
        + suspicion
        + 3 * config.gossip_interval
        + 10 * delay
    )


def dead_everywhere(net: SimNetwork, name: str) -> bool:
    return all(name not in net.members[m].core.members() for m in net.live())


def _gone_at(core: MembershipCore, name: str) -> bool:
    return name not in core.members()


def left_events(net: SimNetwork, observer: str, name: str) -> list[str]:
    return [
        e.reason
        for _, e in net.members[observer].events
        if isinstance(e, MemberLeft) and e.name == name
    ]


# ------------------------------------------------------------------ joining


@pytest.mark.parametrize("n", [2, 3, 5])
def test_join_converges(n: int) -> None:
    net = SimNetwork(FAST, n, seed=n)
    assert net.run_until(net.converged, 2.0) is not None
    names = set(net.members)
    for member in net.members.values():
        joined = {e.name for _, e in member.events if isinstance(e, MemberJoined)}
        assert joined == names
        states = member.core.member_states()
        assert {s.state for s in states.values()} == {NodeState.ALIVE}
    net.run(1.0)  # and stays converged without false suspicions
    assert net.converged()
    assert all(m.core.counters.deaths == 0 for m in net.members.values())


def test_join_failure_is_reported() -> None:
    core = MembershipCore(FAST, "a", b"\x0a\x00\x00\x01", 7946, now=0.0, rng=random.Random(1))
    (rid,) = core.join([(b"\x0a\x00\x00\x09", 7946)], 0.0)
    (req,) = core.stream_requests()
    assert req.request_id == rid and req.kind is StreamKind.PUSH_PULL
    assert req.push_pull is not None and req.push_pull.join
    core.stream_result(rid, False, None, 0.01)
    events = []
    while (e := core.next_event()) is not None:
        events.append(e)
    assert any(getattr(e, "ok", None) is False for e in events)


# ------------------------------------------------------------------ failure detection


@pytest.mark.parametrize("n", [3, 5])
def test_killed_member_declared_dead_within_bound(n: int) -> None:
    net = SimNetwork(FAST, n, seed=10 + n)
    net.run_until(net.converged, 2.0)
    net.run(0.5)
    victim = f"node-{n - 1}"
    net.kill(victim)
    start = net.now
    took = net.run_until(lambda: dead_everywhere(net, victim), 5.0)
    assert took is not None
    assert took - start <= detection_bound(FAST, n)
    for survivor in net.live():
        assert left_events(net, survivor, victim) == ["dead"]
        assert net.members[survivor].core.member_states()[victim].state == NodeState.DEAD


def test_fast_profile_median_detection_is_well_under_half_a_second() -> None:
    times = []
    for seed in range(15):
        net = SimNetwork(FAST, 3, seed=100 + seed)
        net.run_until(net.converged, 2.0)
        net.run(0.3 + seed * 0.017)
        net.kill("node-2")
        start = net.now
        survivors = ["node-0", "node-1"]
        for name in survivors:
            t = net.run_until(partial(_gone_at, net.members[name].core, "node-2"), 3.0)
            assert t is not None
            times.append(t - start)
    assert statistics.median(times) < 0.45
    assert max(times) <= detection_bound(FAST, 3)


def test_graceful_leave_is_reported_as_left_quickly() -> None:
    net = SimNetwork(FAST, 3, seed=3)
    net.run_until(net.converged, 2.0)
    leaver = net.members["node-1"]
    leaver.core.leave(net.now)
    net._after_call(leaver)
    start = net.now
    took = net.run_until(
        lambda: all("node-1" not in net.members[m].core.members() for m in ("node-0", "node-2")),
        1.0,
    )
    assert took is not None and took - start < 2 * FAST.gossip_interval
    assert left_events(net, "node-0", "node-1") == ["left"]
    assert left_events(net, "node-2", "node-1") == ["left"]
    net.run(0.5)
    assert any(isinstance(e, LeaveComplete) for _, e in leaver.events)
    net.kill("node-1")
    net.run(2.0)  # a member that left is never probed back to dead
    assert net.members["node-0"].core.member_states()["node-1"].state in (NodeState.LEFT,)
    assert net.members["node-0"].core.counters.reconnect_pings == 0


def test_leave_alone_completes_at_once() -> None:
    core = MembershipCore(FAST, "a", b"\x0a\x00\x00\x01", 7946, now=0.0, rng=random.Random(1))
    core.leave(0.0)
    events = []
    while (event := core.next_event()) is not None:
        events.append(event)
    assert MemberLeft("a", "left") in events and LeaveComplete() in events
    assert core.members() == frozenset()


# ------------------------------------------------------------------ incarnations


def test_suspicion_is_refuted_with_a_higher_incarnation() -> None:
    net = SimNetwork(FAST, 3, seed=4)
    net.run_until(net.converged, 2.0)
    b = net.members["node-1"]
    c = net.members["node-2"]
    inc = c.core.member_states()["node-1"].incarnation
    # node-2 hears (from node-0) that node-1 is suspect; node-1 hears it too.
    c.core.messages_received([Suspect(inc, "node-1", "node-0")], addr_of(0), net.now)
    net._after_call(c)
    assert c.core.member_states()["node-1"].state == NodeState.SUSPECT
    assert any(isinstance(e, MemberSuspected) and e.by == "node-0" for _, e in c.events)
    took = net.run_until(
        lambda: c.core.member_states()["node-1"].state == NodeState.ALIVE, FAST.probe_interval * 2
    )
    assert took is not None
    assert b.core.incarnation > inc
    assert c.core.member_states()["node-1"].incarnation == b.core.incarnation
    assert any(isinstance(e, SuspicionRefuted) and e.name == "node-1" for _, e in b.events)
    assert any(isinstance(e, SuspicionRefuted) and e.name == "node-1" for _, e in c.events)
    net.run(1.0)
    assert net.converged()


def test_dead_message_about_self_is_refuted_and_stale_ones_ignored() -> None:
    core = MembershipCore(FAST, "a", b"\x0a\x00\x00\x01", 7946, now=0.0, rng=random.Random(1))
    core.messages_received([Dead(5, "a", "b")], (b"\x0a\x00\x00\x02", 7946), 0.0)
    assert core.incarnation == 6
    assert core.members() == {"a"}
    # An older alive about a known member changes nothing; a newer one does.
    core.messages_received(
        [Alive(3, "b", b"\x0a\x00\x00\x02", 7946)], (b"\x0a\x00\x00\x02", 7946), 0.0
    )
    core.messages_received(
        [Alive(2, "b", b"\x0a\x00\x00\x02", 7946, b"x")], (b"\x0a\x00\x00\x02", 7946), 0.0
    )
    assert core.member_states()["b"].meta == b""
    core.messages_received([Suspect(2, "b", "c")], (b"\x0a\x00\x00\x02", 7946), 0.0)
    assert core.member_states()["b"].state == NodeState.ALIVE
    # Dead from someone else is "dead"; dead from itself is "left".
    core.messages_received([Dead(3, "b", "c")], (b"\x0a\x00\x00\x02", 7946), 0.0)
    assert core.member_states()["b"].state == NodeState.DEAD
    core.messages_received(
        [Alive(4, "c", b"\x0a\x00\x00\x03", 7946)], (b"\x0a\x00\x00\x03", 7946), 0.0
    )
    core.messages_received([Dead(4, "c", "c")], (b"\x0a\x00\x00\x03", 7946), 0.0)
    assert core.member_states()["c"].state == NodeState.LEFT
    # A new address is refused for a live member, and for a dead one without a reclaim time.
    core.messages_received(
        [Alive(9, "b", b"\x0a\x00\x00\x07", 7946)], (b"\x0a\x00\x00\x07", 7946), 0.0
    )
    core.messages_received(
        [Alive(9, "z", b"\x0a\x00\x00\x08", 7946)], (b"\x0a\x00\x00\x08", 7946), 0.0
    )
    core.messages_received(
        [Alive(10, "z", b"\x0a\x00\x00\x09", 7946)], (b"\x0a\x00\x00\x09", 7946), 0.0
    )
    assert core.counters.address_conflicts == 2
    assert core.member_states()["z"].addr == b"\x0a\x00\x00\x08"


def test_push_pull_merge_suspects_rather_than_kills() -> None:
    core = MembershipCore(FAST, "a", b"\x0a\x00\x00\x01", 7946, now=0.0, rng=random.Random(1))
    state = PushPull(
        nodes=(
            PushNodeState("b", b"\x0a\x00\x00\x02", 7946, 1, NodeState.ALIVE),
            PushNodeState("c", b"\x0a\x00\x00\x03", 7946, 1, NodeState.ALIVE),
        )
    )
    reply = core.merge_remote_state(state, (b"\x0a\x00\x00\x02", 7946), 0.0)
    assert [n.name for n in reply.nodes] == ["a"]  # our state from before the merge
    dead_c = PushPull(nodes=(PushNodeState("c", b"\x0a\x00\x00\x03", 7946, 1, NodeState.DEAD),))
    assert core.merge_exchange_reply(dead_c, (b"\x0a\x00\x00\x02", 7946), 0.0)
    assert core.member_states()["c"].state == NodeState.SUSPECT
    assert core.members() == {"a", "b", "c"}
    bad = PushPull(
        nodes=(
            PushNodeState(
                "d", b"\x0a\x00\x00\x04", 7946, 1, NodeState.ALIVE, vsn=(1, 5, 9, 0, 0, 0)
            ),
        )
    )
    assert not core.merge_exchange_reply(bad, (b"\x0a\x00\x00\x04", 7946), 0.0)
    assert "d" not in core.members()


def test_restart_with_new_incarnation_rejoins() -> None:
    net = SimNetwork(FAST, 3, seed=5)
    net.run_until(net.converged, 2.0)
    net.kill("node-2")
    net.run_until(lambda: dead_everywhere(net, "node-2"), 3.0)
    dead_inc = net.members["node-0"].core.member_states()["node-2"].incarnation
    net.restart("node-2", join="node-0")
    took = net.run_until(net.converged, 1.0)
    assert took is not None
    new = net.members["node-2"].core
    assert new.incarnation > dead_inc
    for name in ("node-0", "node-1"):
        assert net.members[name].core.member_states()["node-2"].incarnation == new.incarnation
    net.run(1.0)
    assert net.converged()


def test_quick_restart_before_detection_keeps_member() -> None:
    net = SimNetwork(FAST, 3, seed=6)
    net.run_until(net.converged, 2.0)
    net.kill("node-2")
    net.restart("node-2", join="node-1")
    net.run(2.0)
    assert net.converged({"node-0", "node-1", "node-2"})


# ------------------------------------------------------------------ partitions


def test_partition_heals_through_reconnect() -> None:
    net = SimNetwork(FAST, 3, seed=7)
    net.run_until(net.converged, 2.0)
    net.partition({"node-0", "node-1"}, {"node-2"})
    assert net.run_until(
        lambda: (
            net.members["node-0"].core.members() == {"node-0", "node-1"}
            and net.members["node-1"].core.members() == {"node-0", "node-1"}
            and net.members["node-2"].core.members() == {"node-2"}
        ),
        5.0,
    )
    net.run(1.0)
    net.heal()
    start = net.now
    took = net.run_until(net.converged, 10 * FAST.reconnect_interval)
    assert took is not None, net.views()
    assert took - start <= 10 * FAST.reconnect_interval
    net.run(2.0)
    assert net.converged()
    assert net.members["node-2"].core.counters.reconnects >= 1 or any(
        net.members[m].core.counters.reconnects for m in ("node-0", "node-1")
    )


def test_partition_heals_after_dead_members_are_reaped() -> None:
    config = dataclasses.replace(FAST, gossip_to_the_dead_time=0.5)
    net = SimNetwork(config, 3, seed=8)
    net.run_until(net.converged, 2.0)
    net.partition({"node-0"}, {"node-1", "node-2"})
    net.run(3.0)
    assert "node-0" not in net.members["node-1"].core.member_states()  # reaped
    net.heal()
    assert net.run_until(net.converged, 1.0) is not None, net.views()


# ------------------------------------------------------------------ Lifeguard pieces


def test_lone_survivor_loses_health_but_still_detects() -> None:
    net = SimNetwork(FAST, 2, seed=12)
    net.run_until(net.converged, 2.0)
    net.kill("node-1")
    survivor = net.members["node-0"]
    took = net.run_until(partial(_gone_at, survivor.core, "node-1"), 5.0)
    assert took is not None
    # No peer could nack for it, so its failed probe counts against its own health.
    assert any(isinstance(e, LocalHealthChanged) and e.score >= 1 for _, e in survivor.events)
    assert survivor.core.health_score >= 1
    assert survivor.core.counters.probes_failed >= 1


def test_nacks_keep_a_healthy_prober_healthy() -> None:
    net = SimNetwork(FAST, 3, seed=13)
    net.run_until(net.converged, 2.0)
    net.kill("node-2")
    net.run_until(lambda: dead_everywhere(net, "node-2"), 3.0)
    for name in ("node-0", "node-1"):
        core = net.members[name].core
        assert core.health_score == 0
    assert sum(net.members[n].core.counters.nacks_received for n in ("node-0", "node-1")) >= 1


def test_indirect_probe_relays_ack_or_nacks() -> None:
    core = MembershipCore(FAST, "b", b"\x0a\x00\x00\x02", 7946, now=0.0, rng=random.Random(1))
    requester = (b"\x0a\x00\x00\x01", 7946)
    target = (b"\x0a\x00\x00\x03", 7946)
    ind = IndirectPing(77, target[0], 7946, "c", True, requester[0], 7946, "a")
    core.messages_received([ind], requester, 0.0)
    ((dest, msgs),) = core.datagrams_to_send()
    assert dest == target and isinstance(msgs[0], Ping) and msgs[0].node == "c"
    assert msgs[0].source_node == "b"
    core.handle_timer(FAST.probe_timeout)
    ((dest, msgs),) = core.datagrams_to_send()
    assert dest == requester and msgs[0] == Nack(77)  # gossip may ride along
    assert core.counters.nacks_sent == 1
    # Answered in time, the ack is forwarded with the requester's sequence number.
    core.messages_received([ind], requester, 1.0)
    ((_, msgs),) = core.datagrams_to_send()
    assert isinstance(msgs[0], Ping)
    core.messages_received([Ack(msgs[0].seq_no)], target, 1.01)
    ((dest, msgs),) = core.datagrams_to_send()
    assert dest == requester and msgs[0] == Ack(77)


def test_ping_to_suspect_carries_the_suspicion() -> None:
    core = MembershipCore(FAST, "a", b"\x0a\x00\x00\x01", 7946, now=0.0, rng=random.Random(1))
    core.messages_received(
        [Alive(1, "b", b"\x0a\x00\x00\x02", 7946)], (b"\x0a\x00\x00\x02", 7946), 0.0
    )
    core.messages_received([Suspect(1, "b", "c")], (b"\x0a\x00\x00\x03", 7946), 0.0)
    core.datagrams_to_send()
    t = 0.0
    while t < 1.0:
        t += 0.01
        core.handle_timer(t)
        for _, msgs in core.datagrams_to_send():
            if isinstance(msgs[0], Ping):
                assert msgs[1:] == [Suspect(1, "b", "a")]
                return
    raise AssertionError("no ping to the suspect")


def test_packets_fit_the_udp_buffer() -> None:
    config = dataclasses.replace(FAST, udp_buffer_size=600)
    core = MembershipCore(config, "a", b"\x0a\x00\x00\x01", 7946, now=0.0, rng=random.Random(1))
    for i in range(200):
        addr = bytes([10, 1, i // 250, i % 250 + 1])
        core.messages_received(
            [Alive(1, f"member-{i:03d}", addr, 7946, b"m" * 20)], (addr, 7946), 0.0
        )
    sent = 0
    for step in range(1, 50):
        core.handle_timer(step * 0.01)
        for _, msgs in core.datagrams_to_send():
            sent += 1
            size = sum(estimate_size(m) for m in msgs) + 2 * len(msgs)
            assert size <= config.udp_buffer_size - PACKET_RESERVE + 2 or len(msgs) == 1
    assert sent > 0


def test_suspicion_timer_matches_memberlist() -> None:
    # memberlist's suspicion_test.go: min 2s, max 30s, k=3.
    assert remaining_suspicion_time(0, 3, 0, 2.0, 30.0) == 30.0
    assert remaining_suspicion_time(1, 3, 2.0, 2.0, 30.0) == pytest.approx(14.0)
    assert remaining_suspicion_time(2, 3, 3.0, 2.0, 30.0) == pytest.approx(4.810)
    assert remaining_suspicion_time(3, 3, 4.0, 2.0, 30.0) == pytest.approx(-2.0)
    assert suspicion_timeout(4, 3, 1.0) == 4.0
    assert suspicion_timeout(4, 1000, 1.0) == 12.0
    s = Suspicion("a", 2, 1.0, 6.0, now=0.0)
    assert s.deadline == 6.0
    assert not s.confirm("a", 0.1)  # the accuser never counts twice
    assert s.confirm("b", 0.1) and s.deadline < 6.0
    assert s.confirm("c", 0.2) and s.deadline == pytest.approx(1.0)
    assert not s.confirm("d", 0.3)
    assert Suspicion("a", 0, 1.0, 6.0, now=0.0).deadline == 1.0


def test_awareness_is_clamped_and_scales() -> None:
    a = Awareness(8)
    assert a.apply_delta(20) and a.score == 7
    assert a.scale(1.0) == 8.0
    assert a.apply_delta(-100) and a.score == 0
    assert not a.apply_delta(-1)


def test_broadcast_queue_order_limits_and_cap() -> None:
    q = BroadcastQueue(retransmit_mult=2, max_items=3)
    q.queue("a", Alive(1, "a", b"", 1), 10)
    q.queue("b", Alive(1, "b", b"", 1), 30)
    q.queue("a", Alive(2, "a", b"", 1), 10)  # replaces the first
    assert len(q) == 2
    assert q.get(2, 1000, num_nodes=3) == [Alive(1, "b", b"", 1), Alive(2, "a", b"", 1)]
    finished: list[str] = []
    q.queue("c", Dead(1, "c", "c"), 10, on_finished=lambda: finished.append("c"))
    assert q.pending()[0] == Dead(1, "c", "c")  # never sent goes first
    for _ in range(retransmit_limit(2, 3)):
        q.get(2, 1000, num_nodes=3)
    assert finished == ["c"] and len(q) == 0
    for name in "defgh":
        q.queue(name, Alive(1, name, b"", 1), 10)
    assert len(q) == 3
    assert q.get(2, 13, num_nodes=3) == [Alive(1, "h", b"", 1)]


def test_state_stays_bounded_under_a_flood() -> None:
    core = MembershipCore(FAST, "a", b"\x0a\x00\x00\x01", 7946, now=0.0, rng=random.Random(1))
    src = (b"\x0a\x00\x00\x02", 7946)
    for i in range(3000):
        core.messages_received([IndirectPing(i, b"\x0a\x09\x00\x01", 7946, "x")], src, 0.0)
    assert len(core._relays) <= 1024
    core.handle_timer(1.0)
    assert not core._relays
    for i in range(1500):
        addr = bytes([10, 2, i // 250, i % 250 + 1])
        core.messages_received(
            [Alive(1, f"m{i}", addr, 7946), Dead(1, f"m{i}", "z")], (addr, 7946), 0.0
        )
    assert len(core._graves) <= 1024


def test_tcp_ping_fallback_saves_a_member_reachable_only_over_tcp() -> None:
    net = SimNetwork(FAST, 3, seed=9, loss=0.0)
    net.run_until(net.converged, 2.0)
    real_send = net._send

    def udp_blackhole(sender: SimMember, dest: Addr, msgs: list[Message]) -> None:
        if dest == addr_of(2) or sender.name == "node-2":
            return
        real_send(sender, dest, msgs)

    net._send = udp_blackhole  # type: ignore[method-assign]
    net.run(2.0)
    assert net.converged({"node-0", "node-1", "node-2"})
    assert net.members["node-0"].core.counters.tcp_ping_successes > 0
    no_tcp = dataclasses.replace(FAST, disable_tcp_pings=True)
    net2 = SimNetwork(no_tcp, 3, seed=9)
    net2.run_until(net2.converged, 2.0)
    real_send2 = net2._send

    def udp_blackhole2(sender: SimMember, dest: Addr, msgs: list[Message]) -> None:
        if dest == addr_of(2) or sender.name == "node-2":
            return
        real_send2(sender, dest, msgs)

    net2._send = udp_blackhole2  # type: ignore[method-assign]
    assert net2.run_until(lambda: "node-2" not in net2.members["node-0"].core.members(), 3.0)


# ------------------------------------------------------------------ properties

_PROPERTY = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@_PROPERTY
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(3, 5),
    loss=st.floats(0.0, 0.05),
    max_delay=st.floats(0.0005, 0.02),
    stalls=st.lists(st.tuples(st.floats(0.5, 4.0), st.floats(0.01, 0.15)), max_size=4),
    tcp=st.booleans(),
)
def test_live_members_are_never_declared_dead(
    seed: int,
    n: int,
    loss: float,
    max_delay: float,
    stalls: list[tuple[float, float]],
    tcp: bool,
) -> None:
    config = dataclasses.replace(FAST, disable_tcp_pings=not tcp)
    net = SimNetwork(config, n, seed=seed, loss=0.0, delay=(0.0002, max_delay))
    assert net.run_until(net.converged, 2.0) is not None
    net.loss = loss
    rng = random.Random(seed)
    start = net.now
    for at, length in sorted(stalls):
        net.run(max(0.0, start + at - net.now))
        net.stall(rng.choice(net.live()), length)
    net.run(max(0.0, start + 5.0 - net.now))
    for member in net.members.values():
        assert member.core.counters.deaths == 0, [
            e for _, e in member.events if isinstance(e, MemberLeft)
        ]
    assert net.converged()


@_PROPERTY
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(3, 5),
    loss=st.floats(0.0, 0.05),
    max_delay=st.floats(0.0005, 0.01),
)
def test_dead_member_is_always_declared_dead_within_bound(
    seed: int, n: int, loss: float, max_delay: float
) -> None:
    net = SimNetwork(FAST, n, seed=seed, delay=(0.0002, max_delay))
    assert net.run_until(net.converged, 2.0) is not None
    net.loss = loss
    net.run(0.2 + (seed % 100) / 1000)
    victim = f"node-{seed % n}"
    net.kill(victim)
    start = net.now
    took = net.run_until(lambda: dead_everywhere(net, victim), 5.0)
    assert took is not None
    # Lost nacks may raise a survivor's health score and stretch its probes: allow one more
    # (scaled) probe round per lost packet's worth, bounded by a couple of intervals.
    assert took - start <= detection_bound(FAST, n, max_delay) + 2 * FAST.probe_interval


# ------------------------------------------------------------------ configuration


def test_profiles_match_memberlist() -> None:
    lan = profiles.lan()
    assert (lan.tcp_timeout, lan.indirect_checks, lan.retransmit_mult) == (10.0, 3, 4)
    assert (lan.suspicion_mult, lan.suspicion_max_timeout_mult) == (4, 6)
    assert (lan.push_pull_interval, lan.probe_timeout, lan.probe_interval) == (30.0, 0.5, 1.0)
    assert (lan.disable_tcp_pings, lan.awareness_max_multiplier) == (False, 8)
    assert (lan.gossip_nodes, lan.gossip_interval, lan.gossip_to_the_dead_time) == (3, 0.2, 30.0)
    assert (lan.gossip_verify_incoming, lan.gossip_verify_outgoing) == (True, True)
    assert (lan.enable_compression, lan.handoff_queue_depth, lan.udp_buffer_size) == (
        True,
        1024,
        1400,
    )
    assert lan.dead_node_reclaim_time == 0.0
    wan = profiles.wan()
    assert (wan.tcp_timeout, wan.suspicion_mult, wan.push_pull_interval) == (30.0, 6, 60.0)
    assert (wan.probe_timeout, wan.probe_interval, wan.gossip_nodes) == (3.0, 5.0, 4)
    assert (wan.gossip_interval, wan.gossip_to_the_dead_time) == (0.5, 60.0)
    local = profiles.local()
    assert (local.tcp_timeout, local.indirect_checks, local.retransmit_mult) == (1.0, 1, 2)
    assert (local.suspicion_mult, local.push_pull_interval) == (3, 15.0)
    assert (local.probe_timeout, local.probe_interval, local.gossip_interval) == (0.2, 1.0, 0.1)
    assert local.gossip_to_the_dead_time == 15.0
    assert profiles.profile("fast") == MembershipConfig()
    assert FAST.reconnect_interval == FAST.probe_interval
    with pytest.raises(ValueError, match="unknown membership profile"):
        profiles.profile("lab")


def test_lan_profile_detects_with_memberlist_timing() -> None:
    lan = profiles.lan()
    net = SimNetwork(lan, 5, seed=11)
    net.run_until(net.converged, 5.0)
    net.run(3.0)
    net.kill("node-4")
    start = net.now
    took = net.run_until(lambda: dead_everywhere(net, "node-4"), 60.0)
    assert took is not None
    # At least memberlist's minimum suspicion (4 * 1 s for 5 members) after a 1 s probe round.
    assert lan.suspicion_mult * lan.probe_interval <= took - start <= detection_bound(lan, 5)


def test_apply_memberlist_json() -> None:
    data = {
        "TCPTimeout": "1m30s",
        "IndirectChecks": 2,
        "RetransmitMult": 3,
        "SuspicionMult": 5,
        "SuspicionMaxTimeoutMult": 7,
        "PushPullInterval": "45s",
        "ProbeTimeout": "300ms",
        "ProbeInterval": "750ms",
        "DisableTcpPings": True,
        "AwarenessMaxMultiplier": 4,
        "GossipNodes": 5,
        "GossipInterval": 250_000_000,  # Go's encoding/json form: nanoseconds
        "GossipToTheDeadTime": "1m",
        "GossipVerifyIncoming": False,
        "GossipVerifyOutgoing": False,
        "EnableCompression": False,
        "HandoffQueueDepth": 2048,
        "UDPBufferSize": 1200,
        "QueueCheckInterval": "10s",
        "Name": "ignored",
        "bindport": 1234,
    }
    c = apply_memberlist_json(profiles.lan(), data)
    assert c.tcp_timeout == 90.0 and c.indirect_checks == 2 and c.retransmit_mult == 3
    assert c.suspicion_mult == 5 and c.suspicion_max_timeout_mult == 7
    assert c.push_pull_interval == 45.0 and c.probe_timeout == 0.3 and c.probe_interval == 0.75
    assert c.disable_tcp_pings and c.awareness_max_multiplier == 4 and c.gossip_nodes == 5
    assert c.gossip_interval == 0.25 and c.gossip_to_the_dead_time == 60.0
    assert not (c.gossip_verify_incoming or c.gossip_verify_outgoing or c.enable_compression)
    assert c.handoff_queue_depth == 2048 and c.udp_buffer_size == 1200
    assert c.queue_check_interval == 10.0
    assert apply_memberlist_json(FAST, {"probeinterval": "200ms"}).probe_interval == 0.2
    assert apply_memberlist_json(FAST, {}) == FAST


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"ProbeInterval": "fast"}, "ProbeInterval"),
        ({"ProbeInterval": "0s"}, "ProbeInterval"),
        ({"PushPullInterval": "-1s"}, "PushPullInterval"),
        ({"TCPTimeout": 1.5}, "TCPTimeout"),
        ({"IndirectChecks": "3"}, "IndirectChecks"),
        ({"IndirectChecks": -1}, "IndirectChecks"),
        ({"SuspicionMult": 0}, "SuspicionMult"),
        ({"DisableTcpPings": "yes"}, "DisableTcpPings"),
        ({"GossipNodes": True}, "GossipNodes"),
        ({"UDPBufferSize": 100}, "UDPBufferSize"),
        ({"ProbeTimeout": "2s"}, "ProbeTimeout"),
    ],
)
def test_apply_memberlist_json_errors_name_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        apply_memberlist_json(FAST, data)
