"""One BFD session as a sans-I/O state machine (RFC 5880 §6.2, §6.5, §6.8).

Inputs: `packet_received(packet, now)` (a decoded Control packet; `bfd.dispatch` decodes the
datagram and finds its session), `handle_timer(now)` and commands (`start`, `admin_down`,
`admin_up`, `set_params`, `echo_failed`). Outputs: `datagrams_to_send()` (encoded Control
packets), `get_timer()` (the next deadline) and `next_event()`. Time is a float in seconds from
any monotonic clock; the session never reads a clock or touches a socket, so tests drive it with a
fake clock.

Not implemented on purpose: authentication (packets with the A bit never reach a session) and
Demand mode (we never ask for it; a peer's D bit is ignored, so we keep sending periodically).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from bfd.events import Event, PollCompleted, StateChanged
from bfd.packet import ControlPacket, Diag, State

SLOW_TX_US = 1_000_000  # RFC 5880 §6.8.3: at least 1 s while the session is not Up


@dataclass(frozen=True, slots=True)
class SessionParams:
    """What the local system asks for; intervals in microseconds as on the wire."""

    desired_min_tx_us: int = 300_000
    required_min_rx_us: int = 300_000
    detect_mult: int = 3
    required_min_echo_rx_us: int = 0
    passive: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.detect_mult <= 255:
            raise ValueError("detect_mult must be in 1..255")
        if self.desired_min_tx_us <= 0:
            raise ValueError("desired_min_tx_us must be positive")
        if self.required_min_rx_us < 0 or self.required_min_echo_rx_us < 0:
            raise ValueError("receive intervals must not be negative")


@dataclass(slots=True)
class SessionCounters:
    """Plain counters, mapped to MetalLB's metallb_bfd_* metrics by the product."""

    control_packet_input: int = 0
    control_packet_output: int = 0
    echo_packet_input: int = 0
    echo_packet_output: int = 0
    session_up_events: int = 0
    session_down_events: int = 0


@dataclass(slots=True)
class _Timers:
    next_tx: float | None = None
    detect_deadline: float | None = None


@dataclass(slots=True)
class Session:
    """Built from its discriminator, parameters and random source only; everything after `rng`
    is state the protocol owns (init=False), so no caller can construct a session mid-flight."""

    local_discriminator: int
    params: SessionParams = field(default_factory=SessionParams)
    rng: random.Random = field(default_factory=random.Random)

    state: State = field(init=False, default=State.DOWN)
    local_diag: Diag = field(init=False, default=Diag.NONE)
    remote_discriminator: int = field(init=False, default=0)
    remote_state: State = field(init=False, default=State.DOWN)
    remote_diag: Diag = field(init=False, default=Diag.NONE)
    remote_min_rx_us: int = field(init=False, default=1)  # RFC 5880 §6.8.1 initial value
    remote_desired_min_tx_us: int = field(init=False, default=0)
    remote_detect_mult: int = field(init=False, default=0)
    remote_min_echo_rx_us: int = field(init=False, default=0)
    counters: SessionCounters = field(init=False, default_factory=SessionCounters)

    # Timer parameters: what our packets carry, and what our own timers use (these differ while a
    # Poll Sequence is in flight, RFC 5880 §6.8.3).
    advertised_tx_us: int = field(init=False, default=SLOW_TX_US)
    advertised_rx_us: int = field(init=False, default=0)
    poll_active: bool = field(init=False, default=False)
    _poll_pending: bool = field(init=False, default=False)
    _tx_us_in_use: int = field(init=False, default=SLOW_TX_US)
    _detect_rx_us_in_use: int = field(init=False, default=0)
    _started: bool = field(init=False, default=False)
    _urgent: bool = field(init=False, default=False)
    _last_fields: tuple[object, ...] = field(init=False, default=())
    _last_wire: bytes = field(init=False, default=b"")
    _last_rx: float | None = field(init=False, default=None)
    _timers: _Timers = field(init=False, default_factory=_Timers)
    _out: list[bytes] = field(init=False, default_factory=list)
    _events: deque[Event] = field(init=False, default_factory=deque)

    def __post_init__(self) -> None:
        if not 0 < self.local_discriminator < 2**32:
            raise ValueError("local discriminator must be a non-zero 32-bit value")
        self.advertised_rx_us = self.params.required_min_rx_us
        self._detect_rx_us_in_use = self.params.required_min_rx_us
        self.advertised_tx_us = self._tx_us_in_use = max(self.params.desired_min_tx_us, SLOW_TX_US)

    # -- outputs ------------------------------------------------------------------------------
    def datagrams_to_send(self) -> list[bytes]:
        """Encoded Control packets for the peer, oldest first; each call empties the queue."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        tx, detect = self._timers.next_tx, self._timers.detect_deadline
        if tx is None:
            return detect
        if detect is None:
            return tx
        return min(tx, detect)

    @property
    def detect_deadline(self) -> float | None:
        return self._timers.detect_deadline

    @property
    def detection_time_us(self) -> int:
        """Remote multiplier x agreed interval (RFC 5880 §6.8.4, asynchronous mode)."""
        return self.remote_detect_mult * max(
            self._detect_rx_us_in_use, self.remote_desired_min_tx_us
        )

    @property
    def tx_interval_us(self) -> int:
        """The negotiated transmit interval before jitter."""
        return max(self._tx_us_in_use, self.remote_min_rx_us)

    # -- commands -----------------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Begin: an active session sends its first packet now, a passive one waits to hear."""
        if self._started:
            return
        self._started = True
        self._transmit_now(now)

    def admin_down(self, now: float) -> None:
        """Take the session administratively down; the peer is told at once (diag 7)."""
        if self.state is State.ADMIN_DOWN:
            return
        self.poll_active = self._poll_pending = False
        self._set_state(State.ADMIN_DOWN, Diag.ADMIN_DOWN, now)
        self._timers.detect_deadline = None
        self._apply_advertised(now)
        self._urgent = False
        self._transmit_now(now, force=True)

    def admin_up(self, now: float) -> None:
        if self.state is not State.ADMIN_DOWN:
            return
        self._set_state(State.DOWN, Diag.NONE, now)
        self._apply_advertised(now)
        self._urgent = False
        self._transmit_now(now)

    def set_params(self, params: SessionParams, now: float) -> None:
        """Change timers or roles at run time; an Up session changes them with a Poll Sequence."""
        self.params = params
        self._apply_advertised(now)
        self._flush_urgent(now)

    def echo_failed(self, now: float) -> None:
        """The Echo function lost its packets: the path is down (diag 2)."""
        if self.state in (State.UP, State.INIT):
            self._set_state(State.DOWN, Diag.ECHO_FAILED, now)
            self._urgent = True
            self._apply_advertised(now)
            self._flush_urgent(now)

    # -- inputs -------------------------------------------------------------------------------
    def packet_received(self, packet: ControlPacket, now: float) -> None:
        """A validated packet for this session arrived at `now` (RFC 5880 §6.8.6)."""
        self.counters.control_packet_input += 1
        if packet.your_discriminator not in (0, self.local_discriminator):
            return  # the engine demultiplexes; this is a guard, not a path
        self.remote_discriminator = packet.my_discriminator
        self.remote_state = packet.state
        self.remote_diag = packet.diag
        self.remote_desired_min_tx_us = packet.desired_min_tx_us
        self.remote_detect_mult = packet.detect_mult
        self.remote_min_echo_rx_us = packet.required_min_echo_rx_us
        previous_tx_interval = self.tx_interval_us
        self.remote_min_rx_us = packet.required_min_rx_us
        if packet.final and self.poll_active:
            self._finish_poll(now)

        if self.state is State.ADMIN_DOWN:
            return
        self._last_rx = now
        self._timers.detect_deadline = now + self.detection_time_us / 1e6

        if self._run_state_machine(packet.state, now):
            self._urgent = True
        if packet.poll:
            # RFC 5880 §6.5: answer a Poll at once, outside the periodic schedule.
            self._out.append(self._packet(final=True))
            self.counters.control_packet_output += 1
        if self._urgent:
            self._flush_urgent(now)
        elif self.tx_interval_us < previous_tx_interval or self._timers.next_tx is None:
            # The peer lets us send faster (or at all): do not sit out the old, longer interval.
            self._schedule_tx(now)

    def handle_timer(self, now: float) -> None:
        detect = self._timers.detect_deadline
        if detect is not None and now >= detect:
            self._detection_expired(now)
            self._flush_urgent(now)
        tx = self._timers.next_tx
        if tx is not None and now >= tx:
            if self._may_transmit():
                self._out.append(self._packet(poll=self.poll_active))
                self.counters.control_packet_output += 1
            self._schedule_tx(now)

    # -- internals ----------------------------------------------------------------------------
    def _run_state_machine(self, remote: State, now: float) -> bool:
        state = self.state
        if remote is State.ADMIN_DOWN:
            if state is not State.DOWN:
                self._set_state(State.DOWN, Diag.NEIGHBOR_DOWN, now)
                self._apply_advertised(now)
                return True
            return False
        if state is State.DOWN:
            if remote is State.DOWN:
                self._set_state(State.INIT, Diag.NONE, now)
            elif remote is State.INIT:
                self._set_state(State.UP, Diag.NONE, now)
            else:
                return False
        elif state is State.INIT:
            if remote in (State.INIT, State.UP):
                self._set_state(State.UP, Diag.NONE, now)
            else:
                return False
        elif remote is State.DOWN:  # local Up
            self._set_state(State.DOWN, Diag.NEIGHBOR_DOWN, now)
        else:
            return False
        self._apply_advertised(now)
        return True

    def _detection_expired(self, now: float) -> None:
        self._timers.detect_deadline = None
        if self.state in (State.INIT, State.UP):
            self._set_state(State.DOWN, Diag.CONTROL_DETECTION_EXPIRED, now)
            self._urgent = True
        # RFC 5880 §6.8.1: forget the peer, so a passive session falls silent again.
        self.remote_discriminator = 0
        self.remote_state = State.DOWN
        self.remote_min_rx_us = 1
        self.remote_min_echo_rx_us = 0
        self._apply_advertised(now)

    def _set_state(self, new: State, diag: Diag, now: float) -> None:
        old = self.state
        if new is old:
            return
        self.state = new
        self.local_diag = diag
        if new is State.UP:
            self.counters.session_up_events += 1
        elif old is State.UP:
            self.counters.session_down_events += 1
        self._events.append(StateChanged(old, new, diag, self.remote_state, self.remote_diag, now))

    def _target(self) -> tuple[int, int]:
        tx = self.params.desired_min_tx_us
        if self.state is not State.UP:
            tx = max(tx, SLOW_TX_US)
        return tx, self.params.required_min_rx_us

    def _apply_advertised(self, now: float) -> None:
        """Move towards the target parameters: at once unless Up, else by a Poll Sequence."""
        target = self._target()
        if target == (self.advertised_tx_us, self.advertised_rx_us):
            return
        if self.state is not State.UP:
            self.poll_active = self._poll_pending = False
            self.advertised_tx_us, self.advertised_rx_us = target
            self._tx_us_in_use, self._detect_rx_us_in_use = target
            self._rearm_detection()
            return
        if self.poll_active:
            self._poll_pending = True  # one Poll Sequence at a time (RFC 5880 §6.5)
            return
        old_tx, old_rx = self.advertised_tx_us, self.advertised_rx_us
        self.advertised_tx_us, self.advertised_rx_us = target
        # Until the peer answers: a longer transmit interval must wait, a shorter one may start;
        # a shorter receive interval must not yet shorten our detection time.
        self._tx_us_in_use = min(old_tx, target[0])
        self._detect_rx_us_in_use = max(old_rx, target[1])
        self.poll_active = True
        self._urgent = True
        self._rearm_detection()

    def _finish_poll(self, now: float) -> None:
        self.poll_active = False
        self._tx_us_in_use = self.advertised_tx_us
        self._detect_rx_us_in_use = self.advertised_rx_us
        self._rearm_detection()
        self._events.append(PollCompleted(self.advertised_tx_us, self.advertised_rx_us, now))
        if self._poll_pending:
            self._poll_pending = False
            self._apply_advertised(now)

    def _rearm_detection(self) -> None:
        if self._timers.detect_deadline is not None and self._last_rx is not None:
            self._timers.detect_deadline = self._last_rx + self.detection_time_us / 1e6

    def _may_transmit(self) -> bool:
        if not self._started:
            return False
        if self.params.passive and self.remote_discriminator == 0:
            return False  # RFC 5880 §6.8.7: a passive system waits for the peer
        return self.remote_min_rx_us != 0

    def _flush_urgent(self, now: float) -> None:
        """Send one packet now if the state or parameters changed (not waiting for the timer)."""
        if self._urgent:
            self._urgent = False
            self._transmit_now(now)

    def _transmit_now(self, now: float, *, force: bool = False) -> None:
        if force or self._may_transmit():
            self._out.append(self._packet(poll=self.poll_active))
            self.counters.control_packet_output += 1
        self._schedule_tx(now)

    def _schedule_tx(self, now: float) -> None:
        if not self._started:
            self._timers.next_tx = None
            return
        interval = self.tx_interval_us
        if self.params.detect_mult == 1:
            factor = self.rng.uniform(0.75, 0.90)
        else:
            factor = self.rng.uniform(0.75, 1.0)
        self._timers.next_tx = now + interval * factor / 1e6

    def _packet(self, *, poll: bool = False, final: bool = False) -> bytes:
        """The packet to send, encoded; the same bytes as last time when nothing in it changed,
        so a steady session neither builds nor encodes anything per transmission."""
        fields = (
            self.state,
            self.remote_discriminator,
            self.local_diag,
            self.params.detect_mult,
            self.advertised_tx_us,
            self.advertised_rx_us,
            self.params.required_min_echo_rx_us,
            poll and not final,
            final,
        )
        if fields == self._last_fields and self._last_wire:
            return self._last_wire
        wire = ControlPacket(
            state=self.state,
            my_discriminator=self.local_discriminator,
            your_discriminator=self.remote_discriminator,
            diag=self.local_diag,
            detect_mult=self.params.detect_mult,
            desired_min_tx_us=self.advertised_tx_us,
            required_min_rx_us=self.advertised_rx_us,
            required_min_echo_rx_us=self.params.required_min_echo_rx_us,
            poll=poll and not final,
            final=final,
        ).encode()
        self._last_fields, self._last_wire = fields, wire
        return wire
