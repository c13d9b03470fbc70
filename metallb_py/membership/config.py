"""The membership protocol's tunables, its named profiles, and MetalLB's memberlist config file.

Field names are hashicorp/memberlist's `Config` fields in snake case, durations in seconds. The
`lan`, `wan` and `local` profiles are memberlist's DefaultLANConfig/DefaultWANConfig/
DefaultLocalConfig value for value, so a cluster mixing our members with Go members behaves as a
Go cluster would. `fast` is our default: it detects a kill -9'ed speaker in a few hundred
milliseconds, which is what layer-2 failover needs.

Why `fast` has the values it has (3-node LAN cluster, Python event loops on a busy machine):

* Detection time of a dead member X at a survivor is roughly
  wait-until-someone-probes-X + probe_interval (direct ping, indirect pings, TCP ping all get
  until the end of the interval) + the suspicion timeout. With probe_interval = 100 ms every
  survivor probes X every 2 intervals (round robin over the 2 others), so with two survivors the
  first probe comes on average ~70 ms after the death; the probe round adds 100 ms; the suspicion
  timeout is suspicion_mult * max(1, log10(n)) * probe_interval = 2 * 1 * 100 ms = 200 ms.
  That gives ~370 ms median and ~500 ms at worst, with gossip of the death another gossip_interval
  (40 ms) to the other survivor.
* suspicion_mult = 2 makes memberlist's confirmation count k = suspicion_mult - 2 = 0, so the
  suspicion timer runs at its minimum straight away. With k >= 1 a 3-node cluster starts at the
  *maximum* timeout and waits for the other survivor's own failed probe (up to three more probe
  intervals) before shrinking, which would put the median above 0.5 s. Lifeguard's local health
  (awareness) still applies, and the lan/wan/local profiles keep the confirmation scheme.
* No false deaths: to be declared dead a live member must (1) miss a direct ping for
  probe_timeout = 50 ms, (2) miss the indirect pings through up to indirect_checks = 3 peers and
  the TCP ping for the rest of the 100 ms interval, and then (3) fail to refute for 200 ms although
  the suspicion is gossiped to it every gossip_interval = 40 ms (suspects are gossip targets) and
  rides on the next ping to it (the buddy system). A refutation is also sent straight to the
  accuser. So a member survives a stall of roughly 250 ms; tens of milliseconds of event-loop
  delay, or an occasional 100+ ms one, never kill it. A prober that is itself slow sees its own
  probes fail without the nacks the indirect peers send; its health score grows and stretches its
  probe interval (up to awareness_max_multiplier = 8 times), which keeps it from accusing others.
  The shell must hand received datagrams to the core before it runs a due timer, so a stalled
  loop that wakes up sees the late acks before it judges the probe failed; and when the core
  notices it ran late it gives the indirect phase its full share of the interval again.
* gossip_interval = 40 ms to gossip_nodes = 3 peers spreads a suspicion, refutation or death to
  a small cluster within one or two rounds; retransmit_mult = 4 sends each message
  4 * ceil(log10(n + 1)) times. push_pull_interval = 10 s of anti-entropy is cheap at MetalLB's
  sizes. gossip_to_the_dead_time = 5 s keeps telling a dead member (so a wrongly-dead one can
  refute) well beyond the time gossip of its death takes, then forgets it.
* reconnect_interval = probe_interval: memberlist never probes dead members, so two halves of a
  healed partition would stay apart; each interval the core pings one member it holds as dead
  (not left) that died within dead_retention = 5 minutes, and on an ack it starts a join
  push-pull with it, after which the wrongly-dead side refutes with a higher incarnation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from metallb_py.config.durations import DurationError, parse_duration


@dataclass(frozen=True, slots=True)
class MembershipConfig:
    """memberlist's tunables (seconds for durations); defaults are the `fast` profile."""

    probe_interval: float = 0.1
    probe_timeout: float = 0.05
    indirect_checks: int = 3
    suspicion_mult: int = 2
    suspicion_max_timeout_mult: int = 6
    gossip_interval: float = 0.04
    gossip_nodes: int = 3
    gossip_to_the_dead_time: float = 5.0
    retransmit_mult: int = 4
    push_pull_interval: float = 10.0
    tcp_timeout: float = 1.0
    awareness_max_multiplier: int = 8
    disable_tcp_pings: bool = False
    udp_buffer_size: int = 1400
    dead_node_reclaim_time: float = 0.0
    gossip_verify_incoming: bool = True
    gossip_verify_outgoing: bool = True
    enable_compression: bool = True
    handoff_queue_depth: int = 1024
    queue_check_interval: float = 30.0
    # Ours, beyond memberlist: healing after a partition (see the module docstring).
    reconnect_interval: float = 0.1
    dead_retention: float = 300.0


def fast() -> MembershipConfig:
    """Our default: sub-second failure detection on a LAN (see the module docstring)."""
    return MembershipConfig()


def lan() -> MembershipConfig:
    """memberlist's DefaultLANConfig."""
    return MembershipConfig(
        probe_interval=1.0,
        probe_timeout=0.5,
        indirect_checks=3,
        suspicion_mult=4,
        suspicion_max_timeout_mult=6,
        gossip_interval=0.2,
        gossip_nodes=3,
        gossip_to_the_dead_time=30.0,
        retransmit_mult=4,
        push_pull_interval=30.0,
        tcp_timeout=10.0,
        awareness_max_multiplier=8,
        disable_tcp_pings=False,
        udp_buffer_size=1400,
        dead_node_reclaim_time=0.0,
        reconnect_interval=1.0,
    )


def wan() -> MembershipConfig:
    """memberlist's DefaultWANConfig."""
    return dataclasses.replace(
        lan(),
        tcp_timeout=30.0,
        suspicion_mult=6,
        push_pull_interval=60.0,
        probe_timeout=3.0,
        probe_interval=5.0,
        gossip_nodes=4,
        gossip_interval=0.5,
        gossip_to_the_dead_time=60.0,
        reconnect_interval=5.0,
    )


def local() -> MembershipConfig:
    """memberlist's DefaultLocalConfig."""
    return dataclasses.replace(
        lan(),
        tcp_timeout=1.0,
        indirect_checks=1,
        retransmit_mult=2,
        suspicion_mult=3,
        push_pull_interval=15.0,
        probe_timeout=0.2,
        probe_interval=1.0,
        gossip_interval=0.1,
        gossip_to_the_dead_time=15.0,
    )


PROFILES = {"fast": fast, "lan": lan, "wan": wan, "local": local}


def profile(name: str) -> MembershipConfig:
    """The named profile; ValueError for an unknown name."""
    try:
        return PROFILES[name]()
    except KeyError:
        raise ValueError(
            f"unknown membership profile {name!r} (known: {', '.join(PROFILES)})"
        ) from None


# Go field name -> (our field, kind). "positive" durations must be > 0, "duration" >= 0.
_KEYS: dict[str, tuple[str, str]] = {
    "TCPTimeout": ("tcp_timeout", "positive"),
    "IndirectChecks": ("indirect_checks", "count"),
    "RetransmitMult": ("retransmit_mult", "multiplier"),
    "SuspicionMult": ("suspicion_mult", "multiplier"),
    "SuspicionMaxTimeoutMult": ("suspicion_max_timeout_mult", "multiplier"),
    "PushPullInterval": ("push_pull_interval", "duration"),
    "ProbeTimeout": ("probe_timeout", "positive"),
    "ProbeInterval": ("probe_interval", "positive"),
    "DisableTcpPings": ("disable_tcp_pings", "bool"),
    "AwarenessMaxMultiplier": ("awareness_max_multiplier", "multiplier"),
    "GossipNodes": ("gossip_nodes", "count"),
    "GossipInterval": ("gossip_interval", "duration"),
    "GossipToTheDeadTime": ("gossip_to_the_dead_time", "duration"),
    "GossipVerifyIncoming": ("gossip_verify_incoming", "bool"),
    "GossipVerifyOutgoing": ("gossip_verify_outgoing", "bool"),
    "EnableCompression": ("enable_compression", "bool"),
    "HandoffQueueDepth": ("handoff_queue_depth", "multiplier"),
    "UDPBufferSize": ("udp_buffer_size", "udp"),
    "QueueCheckInterval": ("queue_check_interval", "duration"),
    "DeadNodeReclaimTime": ("dead_node_reclaim_time", "duration"),
}
_BY_LOWER = {key.lower(): key for key in _KEYS}
_MIN_UDP_BUFFER = 512


def _convert(key: str, kind: str, value: Any) -> float | int | bool:
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{key}: expected true or false, got {value!r}")
        return value
    if kind in ("positive", "duration"):
        # Go's encoding/json writes a time.Duration as integer nanoseconds; MetalLB's file
        # spells durations as Go duration strings. Accept both.
        if isinstance(value, bool):
            raise ValueError(f"{key}: expected a duration such as '500ms', got {value!r}")
        if isinstance(value, int):
            seconds = value / 1e9
        elif isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except DurationError as exc:
                raise ValueError(f"{key}: {exc}") from None
        else:
            raise ValueError(f"{key}: expected a duration such as '500ms', got {value!r}")
        if seconds < 0 or (kind == "positive" and seconds == 0):
            bound = "positive" if kind == "positive" else "zero or more"
            raise ValueError(f"{key}: duration must be {bound}, got {value!r}")
        return seconds
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key}: expected an integer, got {value!r}")
    if kind == "count" and value < 0:
        raise ValueError(f"{key}: must be zero or more, got {value}")
    if kind == "multiplier" and value < 1:
        raise ValueError(f"{key}: must be at least 1, got {value}")
    if kind == "udp" and value < _MIN_UDP_BUFFER:
        raise ValueError(f"{key}: must be at least {_MIN_UDP_BUFFER} bytes, got {value}")
    return value


def apply_memberlist_json(config: MembershipConfig, data: Mapping[str, Any]) -> MembershipConfig:
    """`config` with the keys of MetalLB's `metallb-memberlist-config` file applied.

    Keys are memberlist's Go field names, matched case-insensitively as Go's encoding/json
    does; keys we have no use for (Name, BindAddr, ...) are ignored as Go ignores unknown ones.
    A bad value raises ValueError naming the key.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"memberlist config must be a JSON object, got {type(data).__name__}")
    changes: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = _BY_LOWER.get(str(raw_key).lower())
        if key is None:
            continue
        field_name, kind = _KEYS[key]
        changes[field_name] = _convert(key, kind, value)
    result = dataclasses.replace(config, **changes)
    if result.probe_timeout > result.probe_interval:
        raise ValueError(
            f"ProbeTimeout ({result.probe_timeout}s) must not exceed "
            f"ProbeInterval ({result.probe_interval}s)"
        )
    return result
