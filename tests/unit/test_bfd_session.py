"""The BFD session state machine driven by a fake clock (no sockets, no real time)."""

from __future__ import annotations

import itertools
import random

import pytest

from bfd.events import PollCompleted, StateChanged
from bfd.packet import ControlPacket, Diag, State, decode
from bfd.session import Session, SessionParams

FAST = SessionParams(desired_min_tx_us=300_000, required_min_rx_us=300_000, detect_mult=3)


def make(discr: int = 1, params: SessionParams = FAST, seed: int = 1) -> Session:
    return Session(discr, params, rng=random.Random(seed))


def sent_by(s: Session) -> list[ControlPacket]:
    """What the session queued for the peer, decoded."""
    return [decode(wire) for wire in s.datagrams_to_send()]


def events(s: Session) -> list[object]:
    out: list[object] = []
    while (ev := s.next_event()) is not None:
        out.append(ev)
    return out


def changes(s: Session) -> list[tuple[State, State, Diag]]:
    return [(e.old, e.new, e.diag) for e in events(s) if isinstance(e, StateChanged)]


def peer_packet(state: State, *, your: int = 1, **kw: object) -> ControlPacket:
    fields: dict[str, object] = {
        "my_discriminator": 99,
        "desired_min_tx_us": 300_000,
        "required_min_rx_us": 300_000,
        "detect_mult": 3,
    }
    fields.update(kw)
    return ControlPacket(state=state, your_discriminator=your, **fields)  # type: ignore[arg-type]


class Wire:
    """Two sessions joined by a lossless, zero-delay link under one fake clock."""

    def __init__(self, a: Session, b: Session) -> None:
        self.a, self.b = a, b
        self.now = 0.0
        self.connected = True
        self.sent: dict[int, list[tuple[float, ControlPacket]]] = {id(a): [], id(b): []}

    def start(self) -> None:
        self.a.start(self.now)
        self.b.start(self.now)
        self._deliver()

    def _deliver(self) -> None:
        moved = True
        while moved:
            moved = False
            for src, dst in ((self.a, self.b), (self.a, self.b)[::-1]):
                for wire in src.datagrams_to_send():
                    packet = decode(wire)
                    self.sent[id(src)].append((self.now, packet))
                    if self.connected:
                        dst.packet_received(packet, self.now)
                        moved = True

    def run_until(self, t_end: float) -> None:
        self._deliver()
        while True:
            timers = [t for t in (self.a.get_timer(), self.b.get_timer()) if t is not None]
            if not timers or min(timers) > t_end:
                self.now = t_end
                return
            self.now = max(self.now, min(timers))
            for s in (self.a, self.b):
                t = s.get_timer()
                if t is not None and t <= self.now:
                    s.handle_timer(self.now)
            self._deliver()


def up_pair(pa: SessionParams = FAST, pb: SessionParams = FAST) -> Wire:
    wire = Wire(make(1, pa, seed=1), make(2, pb, seed=2))
    wire.start()
    wire.run_until(5.0)
    assert wire.a.state is State.UP and wire.b.state is State.UP
    return wire


def test_three_way_handshake_brings_both_sides_up() -> None:
    wire = Wire(make(1), make(2, seed=2))
    wire.start()
    wire.run_until(0.5)
    # Both spoke at once (Down): each went Init on the other's Down, then Up on its Init.
    for s in (wire.a, wire.b):
        assert changes(s) == [
            (State.DOWN, State.INIT, Diag.NONE),
            (State.INIT, State.UP, Diag.NONE),
        ]
    assert wire.a.remote_discriminator == 2 and wire.b.remote_discriminator == 1
    assert wire.a.counters.session_up_events == 1


def test_one_sided_start_goes_down_up_on_the_first_side() -> None:
    a, b = make(1), make(2, seed=2)
    wire = Wire(a, b)
    a.start(0.0)
    wire.run_until(0.2)  # b is not started yet: its state moved to Init but it said nothing
    b.start(0.2)
    wire.run_until(0.5)
    assert changes(a) == [(State.DOWN, State.UP, Diag.NONE)]
    assert changes(b) == [(State.DOWN, State.INIT, Diag.NONE), (State.INIT, State.UP, Diag.NONE)]


def test_slow_one_second_transmit_until_up() -> None:
    alone = make(1)
    alone.start(0.0)
    sent = [(0.0, p) for p in sent_by(alone)]
    now = 0.0
    while now < 10:
        now = alone.get_timer() or 0.0
        alone.handle_timer(now)
        sent += [(now, p) for p in sent_by(alone)]
    assert all(p.desired_min_tx_us == 1_000_000 and p.state is State.DOWN for _, p in sent)
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(sent)]
    assert gaps and all(0.75 - 1e-9 <= g <= 1.0 + 1e-9 for g in gaps)


def test_poll_final_after_up_switches_to_fast_timers() -> None:
    wire = up_pair()
    polls = [p for _, p in wire.sent[id(wire.a)] if p.poll]
    finals = [p for _, p in wire.sent[id(wire.b)] if p.final]
    assert polls and finals
    assert all(p.desired_min_tx_us == 300_000 for p in polls)
    assert any(isinstance(e, PollCompleted) for e in events(wire.a))
    assert not wire.a.poll_active and not wire.b.poll_active
    assert wire.a.tx_interval_us == 300_000
    assert wire.a.detection_time_us == 900_000
    # Once Up and settled, periodic packets come every 225-300 ms.
    late = [t for t, p in wire.sent[id(wire.a)] if t > 3 and not p.final]
    gaps = [b - a for a, b in itertools.pairwise(late)]
    assert gaps and all(0.225 - 1e-9 <= g <= 0.3 + 1e-9 for g in gaps)


def test_detection_time_expiry_takes_both_sides_down_with_diag_1() -> None:
    wire = up_pair()
    events(wire.a), events(wire.b)
    last_rx = wire.now
    wire.connected = False
    wire.run_until(last_rx + 3)
    for s in (wire.a, wire.b):
        assert changes(s) == [(State.UP, State.DOWN, Diag.CONTROL_DETECTION_EXPIRED)]
        assert s.remote_discriminator == 0
        assert s.counters.session_down_events == 1


def test_detection_fires_at_remote_mult_times_agreed_interval_not_before() -> None:
    s = make(1, SessionParams(desired_min_tx_us=50_000, required_min_rx_us=100_000))
    s.start(0.0)
    s.packet_received(
        peer_packet(State.DOWN, your=0, desired_min_tx_us=200_000, detect_mult=4), 1.0
    )
    assert s.state is State.INIT
    # Remote multiplier 4 x max(our RequiredMinRx 100 ms, its DesiredMinTx 200 ms) = 800 ms.
    assert s.detection_time_us == 800_000
    s.handle_timer(1.79)
    assert s.state is State.INIT
    s.handle_timer(1.8)
    assert s.state is State.DOWN and s.local_diag is Diag.CONTROL_DETECTION_EXPIRED


@pytest.mark.parametrize(
    ("local", "remote", "expected", "diag"),
    [
        (State.DOWN, State.ADMIN_DOWN, State.DOWN, Diag.NONE),
        (State.DOWN, State.DOWN, State.INIT, Diag.NONE),
        (State.DOWN, State.INIT, State.UP, Diag.NONE),
        (State.DOWN, State.UP, State.DOWN, Diag.NONE),
        (State.INIT, State.ADMIN_DOWN, State.DOWN, Diag.NEIGHBOR_DOWN),
        (State.INIT, State.DOWN, State.INIT, Diag.NONE),
        (State.INIT, State.INIT, State.UP, Diag.NONE),
        (State.INIT, State.UP, State.UP, Diag.NONE),
        (State.UP, State.ADMIN_DOWN, State.DOWN, Diag.NEIGHBOR_DOWN),
        (State.UP, State.DOWN, State.DOWN, Diag.NEIGHBOR_DOWN),
        (State.UP, State.INIT, State.UP, Diag.NONE),
        (State.UP, State.UP, State.UP, Diag.NONE),
        (State.ADMIN_DOWN, State.DOWN, State.ADMIN_DOWN, Diag.ADMIN_DOWN),
        (State.ADMIN_DOWN, State.INIT, State.ADMIN_DOWN, Diag.ADMIN_DOWN),
        (State.ADMIN_DOWN, State.UP, State.ADMIN_DOWN, Diag.ADMIN_DOWN),
    ],
)
def test_state_transition_table(local: State, remote: State, expected: State, diag: Diag) -> None:
    s = make(1)
    s.start(0.0)
    if local is State.INIT:
        s.packet_received(peer_packet(State.DOWN, your=0), 0.1)
    elif local is State.UP:
        s.packet_received(peer_packet(State.INIT), 0.1)
    elif local is State.ADMIN_DOWN:
        s.admin_down(0.1)
    assert s.state is local
    events(s)
    s.packet_received(
        peer_packet(remote, your=0 if remote in (State.DOWN, State.ADMIN_DOWN) else 1), 0.2
    )
    assert s.state is expected
    if expected is not local:
        assert s.local_diag is diag
        assert changes(s) == [(local, expected, diag)]
        # A state change is told to the peer at once, not at the next periodic slot.
        assert any(p.state is expected for p in sent_by(s))
    else:
        assert changes(s) == []


def test_poll_from_peer_is_answered_at_once_with_final() -> None:
    s = make(1)
    s.start(0.0)
    s.packet_received(peer_packet(State.INIT), 0.1)
    sent_by(s)
    s.packet_received(peer_packet(State.UP, poll=True, desired_min_tx_us=50_000), 0.2)
    out = sent_by(s)
    assert [p.final for p in out] == [True]
    assert not out[0].poll


def test_parameter_change_while_up_uses_poll_and_does_not_flap() -> None:
    wire = up_pair()
    events(wire.a), events(wire.b)
    quick = SessionParams(desired_min_tx_us=100_000, required_min_rx_us=100_000, detect_mult=3)
    wire.a.set_params(quick, wire.now)
    wire.run_until(wire.now + 5)
    a_events, b_events = events(wire.a), events(wire.b)
    assert not [e for e in a_events + b_events if isinstance(e, StateChanged)]
    assert [e for e in a_events if isinstance(e, PollCompleted)][-1].desired_min_tx_us == 100_000
    assert wire.a.state is State.UP and wire.b.state is State.UP
    # b must now send at a's faster RequiredMinRx and detect with a's faster DesiredMinTx.
    assert wire.b.tx_interval_us == 300_000  # b still wants 300 ms for itself
    assert wire.a.tx_interval_us == 300_000  # a may not send faster than b accepts
    assert wire.b.detection_time_us == 900_000
    wire.b.set_params(quick, wire.now)
    wire.run_until(wire.now + 5)
    assert wire.a.tx_interval_us == 100_000 and wire.b.tx_interval_us == 100_000
    assert wire.a.detection_time_us == 300_000
    assert not [e for e in events(wire.a) + events(wire.b) if isinstance(e, StateChanged)]


def test_reduced_receive_interval_keeps_old_detection_time_until_final() -> None:
    s = make(1, SessionParams(desired_min_tx_us=300_000, required_min_rx_us=300_000))
    s.start(0.0)
    s.packet_received(peer_packet(State.INIT, desired_min_tx_us=50_000), 0.1)
    s.packet_received(peer_packet(State.UP, final=True, desired_min_tx_us=50_000), 0.2)
    assert s.state is State.UP and not s.poll_active
    assert s.detection_time_us == 900_000
    s.set_params(SessionParams(desired_min_tx_us=300_000, required_min_rx_us=50_000), 0.3)
    assert s.poll_active
    sent = sent_by(s)
    assert sent[-1].poll and sent[-1].required_min_rx_us == 50_000
    assert s.detection_time_us == 900_000  # the peer has not yet agreed to send faster
    s.packet_received(peer_packet(State.UP, final=True, desired_min_tx_us=50_000), 0.4)
    assert not s.poll_active
    assert s.detection_time_us == 150_000


def test_increased_transmit_interval_waits_for_final() -> None:
    s = make(1, SessionParams(desired_min_tx_us=100_000, required_min_rx_us=100_000))
    s.start(0.0)
    s.packet_received(peer_packet(State.INIT, required_min_rx_us=10_000), 0.1)
    s.packet_received(peer_packet(State.UP, final=True, required_min_rx_us=10_000), 0.2)
    assert s.tx_interval_us == 100_000
    s.set_params(SessionParams(desired_min_tx_us=500_000, required_min_rx_us=100_000), 0.3)
    assert s.tx_interval_us == 100_000
    s.packet_received(peer_packet(State.UP, final=True, required_min_rx_us=10_000), 0.35)
    assert s.tx_interval_us == 500_000


def test_a_second_change_during_a_poll_waits_then_polls_again() -> None:
    s = make(1)
    s.start(0.0)
    s.packet_received(peer_packet(State.INIT, required_min_rx_us=10_000), 0.1)
    s.packet_received(peer_packet(State.UP, final=True, required_min_rx_us=10_000), 0.2)
    s.set_params(SessionParams(desired_min_tx_us=200_000, required_min_rx_us=300_000), 0.3)
    s.set_params(SessionParams(desired_min_tx_us=100_000, required_min_rx_us=300_000), 0.31)
    assert s.advertised_tx_us == 200_000 and s.poll_active
    s.packet_received(peer_packet(State.UP, final=True, required_min_rx_us=10_000), 0.4)
    assert s.advertised_tx_us == 100_000 and s.poll_active
    s.packet_received(peer_packet(State.UP, final=True, required_min_rx_us=10_000), 0.5)
    assert not s.poll_active and s.tx_interval_us == 100_000


@pytest.mark.parametrize(("mult", "low", "high"), [(3, 0.75, 1.0), (1, 0.75, 0.90)])
def test_transmit_jitter_bounds(mult: int, low: float, high: float) -> None:
    s = make(1, SessionParams(desired_min_tx_us=1_000_000, detect_mult=mult), seed=7)
    s.start(0.0)
    gaps = []
    now = 0.0
    for _ in range(400):
        nxt = s.get_timer()
        assert nxt is not None
        gaps.append(nxt - now)
        now = nxt
        s.handle_timer(now)
    assert min(gaps) >= low - 1e-9 and max(gaps) <= high + 1e-9
    assert max(gaps) - min(gaps) > (high - low) * 0.8, "jitter must actually vary"


def test_passive_session_waits_for_the_peer_then_comes_up() -> None:
    passive = make(2, SessionParams(passive=True), seed=2)
    active = make(1)
    wire = Wire(active, passive)
    wire.connected = False
    wire.start()
    wire.run_until(5.0)
    assert wire.sent[id(passive)] == []
    assert wire.sent[id(active)], "the active side keeps trying"
    wire.connected = True
    wire.run_until(10.0)
    assert passive.state is State.UP and active.state is State.UP
    # When the active side dies, the passive side detects it and falls silent again.
    wire.connected = False
    wire.run_until(13.0)
    assert passive.state is State.DOWN and passive.remote_discriminator == 0
    count = len(wire.sent[id(passive)])
    wire.run_until(20.0)
    assert len(wire.sent[id(passive)]) == count


def test_admin_down_tells_the_peer_which_goes_down_with_diag_3() -> None:
    wire = up_pair()
    events(wire.a), events(wire.b)
    wire.a.admin_down(wire.now)
    wire.run_until(wire.now + 0.01)
    assert changes(wire.a) == [(State.UP, State.ADMIN_DOWN, Diag.ADMIN_DOWN)]
    assert changes(wire.b) == [(State.UP, State.DOWN, Diag.NEIGHBOR_DOWN)]
    sent = [p for _, p in wire.sent[id(wire.a)]]
    assert sent[-1].state is State.ADMIN_DOWN and sent[-1].diag is Diag.ADMIN_DOWN
    # Still AdminDown after many seconds: the peer's packets are ignored, packets keep flowing.
    wire.run_until(wire.now + 10)
    assert wire.a.state is State.ADMIN_DOWN and wire.b.state is State.DOWN
    wire.a.admin_up(wire.now)
    wire.run_until(wire.now + 5)
    assert wire.a.state is State.UP and wire.b.state is State.UP


def test_demand_bit_from_peer_is_ignored() -> None:
    s = make(1)
    s.start(0.0)
    s.packet_received(peer_packet(State.INIT, demand=True), 0.1)
    s.packet_received(peer_packet(State.UP, demand=True, final=True), 0.2)
    assert s.state is State.UP
    sent_by(s)
    s.handle_timer(0.2 + 0.31)
    assert sent_by(s), "we keep transmitting periodically"
    assert all(not p.demand for p in sent_by(s))
    s.handle_timer(0.2 + 0.9)
    assert s.state is State.DOWN, "and we still run detection"


def test_no_periodic_transmission_when_peer_asks_for_none() -> None:
    s = make(1)
    s.start(0.0)
    s.packet_received(peer_packet(State.DOWN, your=0, required_min_rx_us=0), 0.1)
    sent_by(s)
    for t in (1.2, 2.4, 3.6):
        s.packet_received(peer_packet(State.DOWN, your=0, required_min_rx_us=0), t - 0.1)
        s.handle_timer(t)
    assert [p for p in sent_by(s) if not p.final] == []


def test_transmit_interval_is_the_larger_of_ours_and_the_peers_receive() -> None:
    s = make(1, SessionParams(desired_min_tx_us=50_000, required_min_rx_us=50_000))
    s.start(0.0)
    s.packet_received(peer_packet(State.INIT, required_min_rx_us=200_000), 0.1)
    s.packet_received(peer_packet(State.UP, final=True, required_min_rx_us=200_000), 0.2)
    assert s.tx_interval_us == 200_000


def test_echo_failure_takes_the_session_down_with_diag_2() -> None:
    wire = up_pair()
    events(wire.a)
    wire.a.echo_failed(wire.now)
    assert changes(wire.a) == [(State.UP, State.DOWN, Diag.ECHO_FAILED)]


def test_packets_carry_the_session_fields() -> None:
    s = make(7, SessionParams(detect_mult=5, required_min_echo_rx_us=50_000))
    s.start(0.0)
    (p,) = sent_by(s)
    assert (p.my_discriminator, p.your_discriminator, p.detect_mult) == (7, 0, 5)
    assert p.required_min_echo_rx_us == 50_000 and p.state is State.DOWN
    assert not (p.authenticated or p.demand or p.multipoint)


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        SessionParams(detect_mult=0)
    with pytest.raises(ValueError):
        Session(0)


def test_the_constructor_takes_no_protocol_state() -> None:
    s = Session(7, SessionParams(), rng=random.Random(1))
    assert (s.state, s.remote_discriminator, s.counters.control_packet_output) == (State.DOWN, 0, 0)
    with pytest.raises(TypeError):
        Session(7, state=State.UP)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Session(7, _started=True)  # type: ignore[call-arg]
