"""`python -m bgp speak` against BIRD 2: what BIRD accepts and shows, and recovery."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from tests.lab.bgp_speak import Speak, peer_args
from tests.lab.daemons import Bird
from tests.lab.netns import Lab, wait_for
from tests.lab.topology import Lan, build_lan

ROUTER_AS = 64500
FAST_DIAL = "start delay time 1; connect delay time 1; connect retry time 1;"
PROBE = str(Path(__file__).resolve().parents[1] / "lab" / "bgp_tcpprobe.py")


@pytest.fixture
def lan1(lab: Lab) -> Lan:
    return build_lan(lab, nodes=1)


def bird(lan: Lan, body: str) -> Bird:
    return Bird(lan.lab, "router", lan.router.ipv4, body).start()


def proto(name: str, local: str, neighbor: str, peer_as: int, channel: str, extra: str = "") -> str:
    return f"""
    protocol bgp {name} {{
      local {local} as {ROUTER_AS};
      neighbor {neighbor} as {peer_as};
      {extra}
      {channel} {{ import all; export none; }};
    }}
    """


def route(b: Bird, prefix: str, table: str = "master4") -> str:
    return b.cmd(f"show route {prefix} table {table} all")


def test_ebgp_ipv4_and_ipv6_four_byte_asn_communities_then_withdraw_and_cease(lan1: Lan) -> None:
    node, rtr = lan1.nodes[0], lan1.router
    asn = 4200000001
    b = bird(
        lan1,
        proto("v4", rtr.ipv4, node.ipv4, asn, "ipv4")
        + proto("v6", rtr.ipv6, node.ipv6, asn, "ipv6"),
    )
    sp = Speak(
        lan1.lab,
        "node1",
        [
            *peer_args(str(asn), f"{ROUTER_AS}@{rtr.ipv4}"),
            "--peer",
            f"{ROUTER_AS}@[{rtr.ipv6}]:179",
            "--announce",
            "203.0.113.10/32",
            "203.0.113.11/32",
            "2001:db8:200::10/128",
            "--community",
            "65000:10",
            "--community",
            "no-export",
            "--large-community",
            "4200000001:1:2",
        ],
        stdin=True,
    ).start()
    b.wait_established("v4")
    b.wait_established("v6")
    wait_for(lambda: "203.0.113.11/32" in b.routes(), 10, what="IPv4 routes at BIRD")
    wait_for(lambda: "2001:db8:200::10/128" in b.routes("master6"), 10, what="IPv6 route")
    r4 = route(b, "203.0.113.10/32")
    assert "BGP.as_path: 4200000001" in r4
    assert f"BGP.next_hop: {node.ipv4}" in r4
    assert "(65000,10)" in r4 and "(65535,65281)" in r4  # no-export
    assert "(4200000001, 1, 2)" in r4
    r6 = route(b, "2001:db8:200::10/128", "master6")
    assert "BGP.next_hop: 2001:db8:100::b fe80::" in r6, "global + link-local next hop"
    assert "(4200000001, 1, 2)" in r6

    sp.send("withdraw 203.0.113.10/32")
    sp.send("withdraw 2001:db8:200::10/128")
    sp.send("announce 203.0.113.12/32 community 65000:12 large-community 1:2:3 med 42")
    sp.send("announce 2001:db8:200::12/128")
    sp.send("this is not a command")
    wait_for(lambda: "203.0.113.12/32" in b.routes(), 10, what="stdin announcement")
    wait_for(lambda: "2001:db8:200::12/128" in b.routes("master6"), 10, what="stdin v6")
    wait_for(lambda: "203.0.113.10/32" not in b.routes(), 10, what="v4 withdrawal")
    wait_for(lambda: "2001:db8:200::10/128" not in b.routes("master6"), 10, what="v6 withdrawal")
    r = route(b, "203.0.113.12/32")
    assert "(65000,12)" in r and "(1, 2, 3)" in r and "BGP.med: 42" in r
    assert "203.0.113.11/32" in b.routes(), "an unrelated route must stay"
    assert sp.events("badCommand"), "a bad command is reported, not fatal"

    assert sp.stop(signal.SIGINT) == 0
    wait_for(lambda: "Administrative shutdown" in b.cmd("show protocols all v4"), 10, what="Cease")
    assert "python -m bgp speak stopped (SIGINT)" in b.cmd("show protocols all v4")
    wait_for(lambda: b.route_count() == 0, 10, what="routes withdrawn at once")


def test_ibgp_local_pref_default_and_configured(lan1: Lan) -> None:
    node, rtr = lan1.nodes[0], lan1.router
    b = bird(
        lan1,
        proto("int4", rtr.ipv4, node.ipv4, ROUTER_AS, "ipv4", "direct;")
        + proto("int6", rtr.ipv6, node.ipv6, ROUTER_AS, "ipv6", "direct;"),
    )
    sp = Speak(
        lan1.lab,
        "node1",
        [
            *peer_args(str(ROUTER_AS), f"internal@{rtr.ipv4}"),
            "--peer",
            f"{ROUTER_AS}@{rtr.ipv6}",
            "--announce",
            "203.0.113.20/32",
            "2001:db8:200::20/128",
        ],
        stdin=True,
    ).start()
    b.wait_established("int4")
    b.wait_established("int6")
    wait_for(lambda: "203.0.113.20/32" in b.routes(), 10, what="iBGP route")
    r = route(b, "203.0.113.20/32")
    assert "BGP.local_pref: 100" in r, "LOCAL_PREF 100 by default on iBGP"
    as_path = [line.strip() for line in r.splitlines() if "BGP.as_path:" in line]
    assert as_path == ["BGP.as_path:"], "iBGP routes carry an empty AS_PATH"
    sp.send("announce 203.0.113.21/32 local-pref 250")
    sp.send("announce 2001:db8:200::21/128 local-pref 300")
    wait_for(lambda: "203.0.113.21/32" in b.routes(), 10, what="route with LOCAL_PREF")
    wait_for(lambda: "2001:db8:200::21/128" in b.routes("master6"), 10, what="v6 LOCAL_PREF")
    assert "BGP.local_pref: 250" in route(b, "203.0.113.21/32")
    assert "BGP.local_pref: 300" in route(b, "2001:db8:200::21/128", "master6")
    sp.stop()


def test_md5_wrong_password_never_establishes_and_right_one_does(lan1: Lan) -> None:
    node, rtr = lan1.nodes[0], lan1.router
    b = bird(lan1, proto("sig", rtr.ipv4, node.ipv4, 64512, "ipv4", 'password "s3cret";'))
    base = [
        *peer_args("64512", f"{ROUTER_AS}@{rtr.ipv4}"),
        "--announce",
        "203.0.113.30",
    ]
    wrong = Speak(lan1.lab, "node1", [*base, "--password", "wrong"]).start()
    with pytest.raises(TimeoutError):
        b.wait_established("sig", timeout=4)
    assert not wrong.events("sessionEstablished")
    wrong.stop()
    Speak(lan1.lab, "node1", [*base, "--password", "s3cret"]).start()
    b.wait_established("sig")
    wait_for(lambda: "203.0.113.30/32" in b.routes(), 10, what="route over MD5 session")


def test_passive_mode_accepts_the_configured_peer_and_refuses_others(lan1: Lan) -> None:
    node, rtr = lan1.nodes[0], lan1.router
    b = bird(
        lan1,
        proto(
            "active",
            rtr.ipv4,
            node.ipv4,
            64512,
            "ipv4",
            FAST_DIAL,
        ),
    )
    sp = Speak(
        lan1.lab,
        "node1",
        [
            *peer_args("64512", f"{ROUTER_AS}@{rtr.ipv4}"),
            "--passive",
            "--announce",
            "203.0.113.40",
        ],
    ).start()
    sp.wait_event("speakerStarted")
    b.wait_established("active")
    wait_for(lambda: "203.0.113.40/32" in b.routes(), 10, what="route over passive session")
    # The router's IPv6 address is not a configured peer: refused at once.
    probe = [sys.executable, PROBE, "connect", node.ipv6, "179", rtr.ipv6, ""]
    assert lan1.lab.run("router", probe).returncode != 0
    wait_for(lambda: sp.events("connectionRefused"), 5, what="refusal logged")


def test_link_cut_frame_loss_and_router_restart_are_recovered(lan1: Lan) -> None:
    node, rtr = lan1.nodes[0], lan1.router
    b = bird(
        lan1, proto("n1", rtr.ipv4, node.ipv4, 64512, "ipv4", "hold time 3; error wait time 1,5;")
    )
    sp = Speak(
        lan1.lab,
        "node1",
        [
            *peer_args("64512", f"{ROUTER_AS}@{rtr.ipv4}"),
            "--hold-time",
            "3",
            "--announce",
            "203.0.113.50",
        ],
    ).start()
    b.wait_established("n1")
    wait_for(lambda: "203.0.113.50/32" in b.routes(), 10, what="route")

    lan1.cut("node1")
    sp.wait_event("sessionDown", timeout=15)  # hold timer (3 s) with a generous margin
    wait_for(lambda: b.route_count() == 0, 15, what="router drops the route")
    lan1.restore("node1")
    sp.wait_event("sessionEstablished", count=2, timeout=30)
    wait_for(lambda: "203.0.113.50/32" in b.routes(), 10, what="route back after link loss")

    # Every frame lost while the carrier stays up: only the hold timer can tell.
    lan1.drop("node1", 100)
    sp.wait_event("sessionDown", count=2, timeout=15)
    lan1.heal("node1")
    sp.wait_event("sessionEstablished", count=3, timeout=30)
    wait_for(lambda: "203.0.113.50/32" in b.routes(), 10, what="route back after frame loss")

    assert b.proc is not None
    b.proc.stop()
    sp.wait_event("sessionDown", count=3, timeout=15)
    b.start()
    b.wait_established("n1", timeout=30)
    wait_for(lambda: "203.0.113.50/32" in b.routes(), 10, what="route back after router restart")


def test_full_table_from_router_with_3s_hold_time_keeps_session(lan1: Lan) -> None:
    """The router sends us a big table; reading it must not starve our keepalives."""
    from tests.lab.bgp_bench import FULL, prefixes

    n = 100_000 if FULL else 30_000
    node, rtr = lan1.nodes[0], lan1.router
    statics = "".join(f"  route {p} blackhole;\n" for p in prefixes(n))
    b = bird(
        lan1,
        "protocol static bulk { ipv4; \n"
        + statics
        + "}\n"
        + f"""
        protocol bgp n1 {{
          local {rtr.ipv4} as {ROUTER_AS};
          neighbor {node.ipv4} as 64512;
          hold time 3;
          ipv4 {{ import all; export all; }};
        }}
        """,
    )
    sp = Speak(
        lan1.lab,
        "node1",
        [
            *peer_args("64512", f"{ROUTER_AS}@{rtr.ipv4}"),
            "--hold-time",
            "3",
            "--graceful-restart",
            "--announce",
            "203.0.113.60",
        ],
    ).start()
    b.wait_established("n1")
    eor = sp.wait_event("endOfRibReceived", timeout=120 if FULL else 60)
    assert eor["prefixesReceived"] == n
    # Keep the session under observation for more than two hold times.
    time.sleep(7)
    assert not sp.events("sessionDown"), sp.output()[-2000:]
    assert b.protocol_state("n1") == "Established"
    assert "203.0.113.60/32" in b.routes()


def test_sessions_bound_to_a_device(lan1: Lan) -> None:
    """--vrf binds with SO_BINDTODEVICE: no VRF devices here, so an ordinary interface stands
    in. Bound to eth0 the session comes up; a missing device is reported on every attempt."""
    node, rtr = lan1.nodes[0], lan1.router
    b = bird(lan1, proto("bound", rtr.ipv4, node.ipv4, 64512, "ipv4"))
    base = [
        *peer_args("64512", f"{ROUTER_AS}@{rtr.ipv4}"),
        "--announce",
        "203.0.113.70",
    ]
    wrong = Speak(lan1.lab, "node1", [*base, "--vrf", "vrf-red", "--log-level", "debug"]).start()
    failed = wrong.wait_event("connectFailed")
    assert "SO_BINDTODEVICE 'vrf-red'" in failed["error"]
    assert not wrong.events("sessionEstablished")
    wrong.stop()
    Speak(lan1.lab, "node1", [*base, "--vrf", "eth0"]).start()
    b.wait_established("bound")
    wait_for(lambda: "203.0.113.70/32" in b.routes(), 10, what="route over the bound session")


def test_both_sides_active_end_with_one_stable_session(lan1: Lan) -> None:
    """We dial and listen, BIRD dials too: whichever connection wins (collision detection,
    RFC 4271 §6.8, when they cross), exactly one session stays up."""
    node, rtr = lan1.nodes[0], lan1.router
    b = bird(
        lan1,
        proto(
            "both",
            rtr.ipv4,
            node.ipv4,
            64512,
            "ipv4",
            FAST_DIAL,
        ),
    )
    sp = Speak(
        lan1.lab,
        "node1",
        [
            *peer_args("64512", f"{ROUTER_AS}@{rtr.ipv4}"),
            "--listen-port",
            "179",
            "--announce",
            "203.0.113.45",
            "--log-level",
            "debug",
        ],
    ).start()
    b.wait_established("both")
    wait_for(lambda: "203.0.113.45/32" in b.routes(), 10, what="route")
    time.sleep(3)
    assert b.protocol_state("both") == "Established"
    assert len(sp.events("sessionEstablished")) == 1
    assert not sp.events("sessionDown")
