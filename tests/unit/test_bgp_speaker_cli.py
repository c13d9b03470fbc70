"""`python -m bgp speak` argument parsing: peers, prefixes, communities, bad flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgp.packing import RouteAttrs, prefix_key
from bgp.speak_cli import (
    SESSION_SETTINGS,
    RouteSpecError,
    parse_args,
    parse_asn,
    parse_community,
    parse_large_community,
    parse_peer,
    parse_route_line,
    peer_config,
)

BASE = ["--local-as", "64512", "--peer", "64500@198.51.100.1"]


@pytest.mark.parametrize(
    ("text", "addr", "port", "asn"),
    [
        ("64500@198.51.100.1", "198.51.100.1", 179, 64500),
        ("64500@198.51.100.1:1179", "198.51.100.1", 1179, 64500),
        ("64501@[2001:db8:1::1]:1179", "2001:db8:1::1", 1179, 64501),
        ("64501@[2001:db8:1::1]", "2001:db8:1::1", 179, 64501),
        ("64501@2001:db8:1::1", "2001:db8:1::1", 179, 64501),
        ("4200000000@198.51.100.1", "198.51.100.1", 179, 4200000000),
        ("1.10@198.51.100.1", "198.51.100.1", 179, 65546),
    ],
)
def test_peer_forms(text: str, addr: str, port: int, asn: int) -> None:
    p = parse_peer(text)
    assert (str(p.address), p.port, p.asn) == (addr, port, asn)


def test_dynamic_peer_as() -> None:
    p = parse_peer("internal@198.51.100.1")
    assert p.asn is None and p.dynamic == "internal"


@pytest.mark.parametrize(
    "bad",
    [
        "198.51.100.1",
        "64500@",
        "64500@host.example",
        "64500@[2001:db8::1",
        "0@198.51.100.1",
        "64500@198.51.100.1:0",
        "64500@198.51.100.1:99999",
        "x@198.51.100.1",
        "64500@[::1]x",
    ],
)
def test_bad_peers(bad: str) -> None:
    with pytest.raises(RouteSpecError):
        parse_peer(bad)


def test_asn_range() -> None:
    assert parse_asn("4294967295") == 4294967295
    with pytest.raises(RouteSpecError):
        parse_asn("4294967296")


def test_communities() -> None:
    assert parse_community("65000:100") == (65000 << 16) | 100
    assert parse_community("no-export") == 0xFFFFFF01
    assert parse_community("NO-ADVERTISE") == 0xFFFFFF02
    assert parse_community("blackhole") == 0xFFFF029A
    assert parse_large_community("4200000000:1:2") == (4200000000, 1, 2)
    for bad in ("65536:1", "1:2:3", "x", "-1:5"):
        with pytest.raises(RouteSpecError):
            parse_community(bad)
    with pytest.raises(RouteSpecError):
        parse_large_community("1:2")


def test_route_line_merges_with_base_and_normalizes() -> None:
    base = RouteAttrs(communities=(parse_community("65000:1"),), local_pref=50)
    prefix, attrs = parse_route_line(
        "203.0.113.0/24 community 65000:2 community 65000:1 large-community 1:2:3 local-pref 200",
        base,
    )
    assert prefix == prefix_key("203.0.113.0/24")
    assert attrs.communities == ((65000 << 16) | 1, (65000 << 16) | 2)
    assert attrs.large_communities == ((1, 2, 3),)
    assert attrs.local_pref == 200
    with pytest.raises(RouteSpecError, match="host bits set"):
        parse_route_line("203.0.113.1/24")
    with pytest.raises(RouteSpecError, match="unknown attribute"):
        parse_route_line("203.0.113.1 color 3")


def test_full_command_line(tmp_path: Path) -> None:
    f = tmp_path / "routes"
    f.write_text("# comment\n203.0.113.7\n\n2001:db8:200::7/128 community no-export\n")
    cfg = parse_args(
        [
            *BASE,
            "--peer",
            "64501@[2001:db8:100::1]:1179",
            "--router-id",
            "198.51.100.11",
            "--local-address",
            "198.51.100.11",
            "--passive",
            "--hold-time",
            "9",
            "--keepalive",
            "3",
            "--password",
            "pw",
            "--ebgp-multihop",
            "4",
            "--graceful-restart",
            "--announce",
            "203.0.113.8/32",
            "203.0.113.9/32",
            "--announce",
            "203.0.113.10",
            "--announce-file",
            str(f),
            "--community",
            "65000:1",
            "--large-community",
            "1:2:3",
            "--local-pref",
            "150",
            "--stdin",
            "--vrf",
            "vrf-red",
        ]
    )
    assert cfg.vrf == "vrf-red"
    assert [p.key for p in cfg.peers] == ["198.51.100.1:179", "[2001:db8:100::1]:1179"]
    assert cfg.passive and cfg.graceful_restart and cfg.stdin
    assert (cfg.hold_time, cfg.keepalive, cfg.password, cfg.ebgp_multihop) == (9, 3, "pw", 4)
    routes = {(afi, k): a for afi, t in cfg.routes.items() for k, a in t.items()}
    assert len(routes) == 5
    file_v6 = routes[prefix_key("2001:db8:200::7/128")]
    assert 0xFFFFFF01 in file_v6.communities and (65000 << 16) | 1 in file_v6.communities
    assert routes[prefix_key("203.0.113.10/32")].local_pref == 150


@pytest.mark.parametrize(
    "extra",
    [
        ["--hold-time", "2"],
        ["--ebgp-multihop", "0"],
        ["--router-id", "0.0.0.0"],
        ["--community", "nope"],
        ["--announce", "203.0.113.1/24"],
        ["--password", "x" * 81],
        ["--local-address", "not-ip"],
        ["--announce-file", "/nonexistent/file"],
        ["--keepalive", "100"],
        ["--vrf", "x" * 16],
    ],
)
def test_bad_flags_exit_2_with_one_line(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args([*BASE, *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err


def test_missing_required_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["--local-as", "64512"])
    assert exc.value.code == 2
    assert "--peer" in capsys.readouterr().err


def test_bad_line_in_announce_file_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "routes"
    f.write_text("203.0.113.7\n203.0.113.300\n")
    with pytest.raises(SystemExit):
        parse_args([*BASE, "--announce-file", str(f)])
    assert f"{f}:2:" in capsys.readouterr().err


def test_equal_attribute_sets_share_one_object(tmp_path: Path) -> None:
    f = tmp_path / "routes"
    f.write_text("".join(f"198.18.0.{i} community 65000:{i % 2}\n" for i in range(10)))
    cfg = parse_args([*BASE, "--announce-file", str(f)])
    assert len({id(a) for t in cfg.routes.values() for a in t.values()}) == 2


def test_peer_config_carries_every_session_flag() -> None:
    flags = "--router-id 192.0.2.1 --local-address 2001:db8::2 --vrf red --passive --hold-time 9"
    flags += " --keepalive 3 --password pw --ebgp-multihop 4 --graceful-restart --restart-time 30"
    cfg = parse_args([*BASE[:2], "--peer", "internal@[2001:db8::1]:1179", *flags.split()])
    peer = peer_config(cfg, cfg.peers[0])
    assert (peer.address, peer.port, peer.peer_as) == ("2001:db8::1", 1179, "internal")
    assert {name: getattr(peer, name) for name in SESSION_SETTINGS} == {
        "router_id": "192.0.2.1",
        "local_address": "2001:db8::2",
        "vrf": "red",
        "passive": True,
        "hold_time": 9,
        "keepalive": 3,
        "password": "pw",
        "ebgp_multihop": 4,
        "graceful_restart": True,
        "restart_time": 30,
    }
