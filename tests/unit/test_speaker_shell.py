"""The speaker's shells without a network: BGPPeer -> session parameters, session reuse across
configuration changes, per-peer route tables, and MetalLB's metric names."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from bgp.packing import RouteAttrs, prefix_key
from metallb_py.config import Peer
from metallb_py.speaker.bgp_shell import BgpShell, peer_config
from metallb_py.speaker.metrics import SpeakerCollector
from metallb_py.speaker.status import session_state_name


def test_peer_config_maps_every_field() -> None:
    peer = Peer(
        name="tor",
        my_asn=64512,
        peer_asn=64500,
        local_asn=65000,
        address=ipaddress.ip_address("192.0.2.1"),
        source_address=ipaddress.ip_address("192.0.2.10"),
        port=1179,
        hold_time=9,
        keepalive_time=3,
        connect_time=5,
        router_id=ipaddress.ip_address("192.0.2.99"),
        password="pw",
        ebgp_multihop=True,
        enable_graceful_restart=True,
    )
    cfg = peer_config(peer)
    assert cfg is not None
    assert (cfg.address, cfg.port, cfg.key) == ("192.0.2.1", 1179, "192.0.2.1:1179")
    assert (cfg.peer_as, cfg.local_as, cfg.router_id) == (64500, 65000, "192.0.2.99")
    assert (cfg.local_address, cfg.hold_time, cfg.keepalive) == ("192.0.2.10", 9, 3.0)
    assert (cfg.password, cfg.ebgp_multihop, cfg.graceful_restart) == ("pw", 255, True)
    assert (cfg.connect_retry, cfg.name) == (5.0, "tor")
    dynamic = peer_config(Peer(name="d", my_asn=1, dynamic_asn="external", address=peer.address))
    assert dynamic is not None and dynamic.peer_as == "external"
    unnumbered = peer_config(Peer(name="u", my_asn=1, dynamic_asn="external", interface="eth0"))
    assert unnumbered is not None
    assert (unnumbered.address, unnumbered.interface, unnumbered.key) == ("", "eth0", "eth0:179")
    assert unnumbered.peer_as == "external"  # dynamicASN works with an interface peer
    no_keepalive = peer_config(
        Peer(name="k", my_asn=1, peer_asn=2, address=peer.address, hold_time=0)
    )
    assert no_keepalive is not None and no_keepalive.keepalive is None


async def test_unchanged_sessions_are_kept_and_tables_diffed() -> None:
    base = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}"
    shell = BgpShell("node-a")
    a = Peer(name="a", my_asn=64512, peer_asn=64500, address=ipaddress.ip_address(f"{base}.1"))
    b = Peer(name="b", my_asn=64512, peer_asn=64500, address=ipaddress.ip_address(f"{base}.2"))
    one = RouteAttrs(local_pref=100)
    try:
        shell.apply(None, {"a": a, "b": b}, {"a": {"203.0.113.1/32": one}})
        sessions = dict(shell.speaker.peers)
        assert set(sessions) == {f"{base}.1:179", f"{base}.2:179"}
        rib = shell.speaker.rib
        key = prefix_key("203.0.113.1/32")
        assert rib.lookup(f"{base}.1:179", *key) == one
        assert rib.lookup(f"{base}.2:179", *key) is None
        # A route change and a renamed peer: no session is replaced.
        shell.apply(None, {"a": a, "b2": b}, {"a": {"203.0.113.2/32": one}, "b2": {}})
        assert all(shell.speaker.peers[k] is v for k, v in sessions.items())
        assert rib.lookup(f"{base}.1:179", *key) is None
        assert rib.lookup(f"{base}.1:179", *prefix_key("203.0.113.2/32")) == one
        # A changed parameter replaces that session only, and its table is sent again.
        changed = Peer(
            name="a",
            my_asn=64512,
            peer_asn=64500,
            address=a.address,
            hold_time=30,
            keepalive_time=10,
        )
        shell.apply(None, {"a": changed, "b2": b}, {"a": {"203.0.113.2/32": one}})
        assert shell.speaker.peers[f"{base}.1:179"] is not sessions[f"{base}.1:179"]
        assert shell.speaker.peers[f"{base}.2:179"] is sessions[f"{base}.2:179"]
        assert rib.lookup(f"{base}.1:179", *prefix_key("203.0.113.2/32")) == one
        # A peer no longer selected is removed.
        shell.apply(None, {"b2": b}, {})
        assert set(shell.speaker.peers) == {f"{base}.2:179"}
    finally:
        await shell.shutdown(graceful=False)


def test_metric_names_and_labels_are_metallbs() -> None:
    snapshot = {
        "announced": [("default/web", "bgp", "node1", "203.0.113.1")],
        "bgp": {"192.0.2.1:179": {"session_up": 1.0, "updates_total": 3.0, "opens_sent": 1.0}},
        "bfd": {"192.0.2.1": {"session_up": 1, "control_packet_input": 7}},
        "layer2": {"requests_received": {"198.51.100.200": 4}},
    }
    reg = CollectorRegistry()
    reg.register(SpeakerCollector(lambda: snapshot))
    text = generate_latest(reg).decode()
    for line in (
        'metallb_speaker_announced{ip="203.0.113.1",node="node1",protocol="bgp",'
        'service="default/web"} 1.0',
        'metallb_bgp_session_up{peer="192.0.2.1:179"} 1.0',
        'metallb_bgp_updates_total{peer="192.0.2.1:179"} 3.0',
        'metallb_bgp_opens_sent{peer="192.0.2.1:179"} 1.0',
        'metallb_bfd_session_up{peer="192.0.2.1"} 1.0',
        'metallb_bfd_control_packet_input{peer="192.0.2.1"} 7.0',
        'metallb_layer2_requests_received{ip="198.51.100.200"} 4.0',
    ):
        assert line in text, line
    assert "# TYPE metallb_bgp_updates_total counter" in text
    assert "# TYPE metallb_bgp_session_up gauge" in text


def test_session_state_names_are_valid_object_names() -> None:
    assert session_state_name("node1", "tor-a") == "node1-tor-a"
    assert session_state_name("Node_1", "tor.a") == "node-1-tor.a"


_PREFIXES = [f"203.0.113.{i}/32" for i in range(6)]
_ATTRS = [RouteAttrs(local_pref=100), RouteAttrs(local_pref=200), RouteAttrs(communities=(1,))]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(_PREFIXES), st.integers(0, 2)), max_size=6))
def test_incremental_table_diff_leaves_exactly_the_wanted_routes(
    steps: list[dict[str, int]],
) -> None:
    """Whatever sequence of tables a peer is given (routes added, removed, attributes changed,
    equal attribute objects or equal copies), the RIB holds exactly the last one."""
    peer = Peer(name="a", my_asn=64512, peer_asn=64500, address=ipaddress.ip_address("127.9.9.1"))

    async def run() -> None:
        shell = BgpShell("node-a")
        try:
            for step in steps:
                # Alternate shared attribute objects and equal copies, as the memo does.
                table = {
                    p: _ATTRS[i] if len(p) % 2 else dataclasses.replace(_ATTRS[i])
                    for p, i in step.items()
                }
                shell.apply(None, {"a": peer}, {"a": table})
                for prefix in _PREFIXES:
                    got = shell.speaker.rib.lookup("127.9.9.1:179", *prefix_key(prefix))
                    assert got == table.get(prefix), (prefix, step)
        finally:
            await shell.shutdown(graceful=False)

    asyncio.run(run())
