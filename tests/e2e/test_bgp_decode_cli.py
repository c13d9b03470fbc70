"""`python -m bgp decode` run as a subprocess, the way a network engineer runs it."""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
import sys
from pathlib import Path

from bgp import attributes as A
from bgp import capabilities as C
from bgp import messages as M
from bgp.context import CodecContext
from bgp.nlri import Prefix

logging.getLogger("scapy").setLevel(logging.ERROR)

ROOT = Path(__file__).resolve().parents[2]

# An UPDATE from scapy's BGP layer (2-octet AS): ORIGIN, AS_PATH 64500 64501, NEXT_HOP,
# MED 10, no-export, large community 64512:1:2, NLRI 203.0.113.0/24 and 192.0.2.128/25.
SCAPY_UPDATE = (
    "ffffffffffffffffffffffffffffffff00510200000031400101004002060202fbf4fbf5400304c633"
    "64018004040000000ac00804ffffff01c0200c0000fc00000000010000000218cb007119c0000280"
)
KEEPALIVE = "ff" * 16 + "001304"


def run(*args: str, stdin: bytes | None = None) -> tuple[int, list[dict], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "bgp", "decode", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    out = proc.stdout.decode()
    return proc.returncode, [json.loads(line) for line in out.splitlines()], proc.stderr.decode()


def spaced(hexstr: str, sep: str) -> str:
    return sep.join(hexstr[i : i + 2] for i in range(0, len(hexstr), 2))


def test_hex_with_separators_and_several_messages() -> None:
    text = spaced(KEEPALIVE, ":") + "\n" + spaced(SCAPY_UPDATE, " ")
    rc, records, _ = run("--two-octet-as", text)
    assert rc == 0
    assert [r["type"] for r in records] == ["KEEPALIVE", "UPDATE"]
    upd = records[1]
    assert upd["nlri"] == ["203.0.113.0/24", "192.0.2.128/25"]
    by_name = {a["name"]: a for a in upd["attributes"]}
    assert by_name["AS_PATH"]["text"] == "64500 64501"
    assert by_name["NEXT_HOP"]["next_hop"] == "198.51.100.1"
    assert by_name["MULTI_EXIT_DISC"]["value"] == 10
    assert by_name["COMMUNITIES"]["communities"] == ["no-export"]
    assert by_name["LARGE_COMMUNITY"]["large_communities"] == ["64512:1:2"]


def test_raw_bytes_and_hex_text_on_stdin() -> None:
    wire = bytes.fromhex(KEEPALIVE) + M.encode(M.RouteRefresh(2, 1, 1)) + M.end_of_rib(2, 1)
    rc, records, _ = run("-", stdin=wire)
    assert rc == 0
    assert records[1] == {
        "type": "ROUTE-REFRESH",
        "length": 23,
        "afi": 2,
        "safi": 1,
        "family": "ipv6-unicast",
        "subtype": "BoRR",
    }
    assert records[2]["end_of_rib"] == "ipv6-unicast"
    rc, records, _ = run("-", stdin=(spaced(KEEPALIVE, " ") + "\n").encode())
    assert rc == 0 and records == [{"type": "KEEPALIVE", "length": 19}]


def test_open_with_foreign_capabilities() -> None:
    # OPEN: AS 64500, hold 90, id 198.51.100.1; MP ipv4/unicast, FQDN (73), LLGR (71),
    # add-path ipv4/unicast receive, private capability 200.
    caps = "0104 00010001 4907 056e6f646531 00 4707 0001 0180 000e10 4504 00010101 c801ff"
    caps = caps.replace(" ", "")
    params = "02" + f"{len(caps) // 2:02x}" + caps
    body = "04fbf4005ac6336401" + f"{len(params) // 2:02x}" + params
    wire = "ff" * 16 + f"{19 + len(body) // 2:04x}" + "01" + body
    rc, (rec,), _ = run(wire)
    assert rc == 0
    assert rec["type"] == "OPEN" and rec["asn"] == 64500 and rec["router_id"] == "198.51.100.1"
    caps_out = rec["capabilities"]
    assert caps_out[0]["family"] == "ipv4-unicast"
    assert caps_out[1] == {"code": 73, "name": "fqdn", "value_hex": "056e6f646531" + "00"}
    assert caps_out[2]["name"] == "long-lived-graceful-restart"
    assert caps_out[3]["entries"] == [
        {"afi": 1, "safi": 1, "family": "ipv4-unicast", "mode": "receive"}
    ]
    assert caps_out[4] == {"code": 200, "name": "unknown", "value_hex": "ff"}


def test_unknown_attribute_shown_raw_and_vpn_nlri_kept() -> None:
    nlri = "70 000641 0000fbf400000001 cb0071".replace(" ", "")
    mp = "0001800c" + "00" * 8 + "c0000201" + "00" + nlri
    attrs = (
        "40010100"
        + "400206020100 00fbf4".replace(" ", "")
        + "800e"
        + f"{len(mp) // 2:02x}"
        + mp
        + "e0c803abcdef"
    )
    body = "0000" + f"{len(attrs) // 2:04x}" + attrs
    wire = "ff" * 16 + f"{19 + len(body) // 2:04x}" + "02" + body
    rc, (rec,), _ = run(wire)
    assert rc == 0
    mp_out = next(a for a in rec["attributes"] if a["name"] == "MP_REACH_NLRI")
    assert mp_out["family"] == "ipv4-mpls-vpn" and mp_out["nlri_hex"] == nlri
    assert mp_out["next_hop"] == ["192.0.2.1"]
    unknown = next(a for a in rec["attributes"] if a["type_code"] == 200)
    assert unknown == {
        "type_code": 200,
        "name": "UNKNOWN",
        "flags": "0xe0",
        "flag_names": ["optional", "transitive", "partial"],
        "value_hex": "abcdef",
    }


def test_malformed_message_prints_its_notification_and_exits_1() -> None:
    # AS_PATH with segment type 7 -> 3/11 (treat-as-withdraw under RFC 7606).
    attrs = A.encode_attributes((A.Origin(0), A.NextHop(ipaddress.IPv4Address("192.0.2.1"))))
    attrs += b"\x40\x02\x06\x07\x01\x00\x00\xfb\xf4"
    wire = M.encode_update_raw(b"", attrs, Prefix.parse("203.0.113.0/24").encode())
    rc, (rec,), _ = run(wire.hex())
    assert rc == 1
    (problem,) = rec["problems"]
    assert (problem["code"], problem["subcode"]) == (3, 11)
    assert problem["name"] == "UPDATE Message Error / Malformed AS_PATH"
    assert problem["action"] == "treat-as-withdraw" and rec["treat_as_withdraw"] is True


def test_fatal_errors_and_resynchronisation() -> None:
    bad_version = "ff" * 16 + "001d01" + "03fbf4005ac633640100"
    bad_marker = "00" * 19
    rc, records, _ = run(bad_version + bad_marker + KEEPALIVE)
    assert rc == 1
    assert records[0]["notification"] == "2/1 (OPEN Message Error / Unsupported Version Number)"
    assert records[0]["error"]["data_hex"] == "0004"
    assert records[1]["error"]["code"] == 1 and records[1]["error"]["subcode"] == 1
    assert records[2] == {"type": "KEEPALIVE", "length": 19}


def test_usage_errors_exit_2() -> None:
    for args in ([], ["zz"], ["fff"], ["-", "00"]):
        rc, records, err = run(*args)
        assert rc == 2 and records == [], args
        assert "python -m bgp decode" in err or "usage" in err
    for argv, status in ((["nonsense"], 2), ([], 2), (["--help"], 0)):
        proc = subprocess.run(
            [sys.executable, "-m", "bgp", *argv], capture_output=True, cwd=ROOT, timeout=60
        )
        assert proc.returncode == status, argv
        assert b"python -m bgp" in proc.stdout + proc.stderr


def test_pcap_capture(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.packet import Packet
    from scapy.utils import wrpcap

    update = M.encode(
        M.Update(
            (),
            (
                A.Origin(0),
                A.AsPath.sequence(64512),
                A.NextHop(ipaddress.IPv4Address("198.51.100.11")),
            ),
            (Prefix.parse("203.0.113.10/32"),),
        )
    )
    stream = bytes.fromhex(KEEPALIVE) + update
    half = 30

    def seg(seq: int, payload: bytes) -> Packet:
        return (
            Ether()
            / IP(src="198.51.100.11", dst="198.51.100.1")
            / TCP(sport=40000, dport=179, seq=seq, flags="PA")
            / payload
        )

    packets = [
        seg(1000, stream[:half]),
        seg(1000, stream[:half]),  # retransmission
        seg(1000 + half, stream[half:]),
        Ether()
        / IP(src="198.51.100.1", dst="198.51.100.11")
        / TCP(sport=179, dport=40000, seq=5, flags="PA")
        / bytes.fromhex(KEEPALIVE),
    ]
    path = tmp_path / "bgp.pcap"
    wrpcap(str(path), packets)
    rc, records, _ = run("--pcap", str(path))
    assert rc == 0
    assert records[0]["flow"] == "198.51.100.11:40000 > 198.51.100.1:179"
    assert [r.get("type") for r in records[1:]] == ["KEEPALIVE", "UPDATE", None, "KEEPALIVE"]
    assert records[2]["nlri"] == ["203.0.113.10/32"]
    rc, _, err = run("--pcap", str(tmp_path / "missing.pcap"))
    assert rc == 2 and "cannot read" in err


def test_pcap_context_follows_the_captured_opens(tmp_path: Path) -> None:
    """A 2-octet-AS session with add-path: the OPENs in the capture set the decoding."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.packet import Packet
    from scapy.utils import wrpcap

    from bgp import capabilities as C
    from bgp.context import CodecContext

    rid = ipaddress.IPv4Address("198.51.100.11")
    open_a = M.encode(M.Open(64512, 90, rid, (C.AddPath(((1, 1, 3),)),)))
    open_b = M.encode(
        M.Open(64500, 90, ipaddress.IPv4Address("198.51.100.1"), (C.AddPath(((1, 1, 3),)),))
    )
    ctx = CodecContext(four_octet_as=False, add_path=frozenset({(1, 1)}))
    update = M.encode(
        M.Update(
            (),
            (A.Origin(0), A.AsPath.sequence(64512), A.NextHop(rid)),
            (Prefix.parse("203.0.113.10/32", 7),),
        ),
        ctx,
    )

    def seg(src: str, dst: str, sport: int, dport: int, payload: bytes) -> Packet:
        return (
            Ether()
            / IP(src=src, dst=dst)
            / TCP(sport=sport, dport=dport, seq=1, flags="PA")
            / payload
        )

    path = tmp_path / "addpath.pcap"
    wrpcap(
        str(path),
        [
            seg("198.51.100.11", "198.51.100.1", 40000, 179, open_a + update),
            seg("198.51.100.1", "198.51.100.11", 179, 40000, open_b),
        ],
    )
    rc, records, _ = run("--pcap", str(path))
    assert rc == 0, records
    assert records[0]["context"] == {
        "four_octet_as": False,
        "add_path": ["ipv4-unicast"],
        "max_size": 65535,
    }
    upd = records[2]
    assert upd["nlri"] == [{"prefix": "203.0.113.10/32", "path_id": 7}]
    assert next(a for a in upd["attributes"] if a["name"] == "AS_PATH")["text"] == "64512"


def test_hex_formats_engineers_paste() -> None:
    from bgp.decode_cli import UsageError, parse_hex

    want = bytes.fromhex(KEEPALIVE)
    for text in (
        KEEPALIVE,
        spaced(KEEPALIVE, ":"),
        spaced(KEEPALIVE, " ").upper(),
        "".join(f"\\x{b:02x}" for b in want),  # Wireshark "escaped string"
        ",".join(f"0x{b:02x}" for b in want),  # C array
        "'" + KEEPALIVE + "'\n",
    ):
        assert parse_hex(text) == want, text
    for bad in ("fg", "fff", "ff-g0"):
        try:
            parse_hex(bad)
        except UsageError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def test_an_open_in_the_stream_sets_two_octet_decoding() -> None:
    """A sender without the 4-octet AS capability sends 2-octet AS_PATHs: decoded as such."""
    rid = ipaddress.IPv4Address("198.51.100.1")
    two = CodecContext(four_octet_as=False)
    upd = M.Update(
        (),
        (A.Origin(0), A.AsPath.sequence(64500, 65001), A.NextHop(rid)),
        (Prefix.parse("203.0.113.0/24"),),
    )
    wire = M.encode(M.Open(64500, 90, rid, (C.Multiprotocol(1, 1),))) + M.encode(upd, two)
    rc, records, _ = run(wire.hex())
    assert rc == 0
    as_path = next(a for a in records[1]["attributes"] if a["name"] == "AS_PATH")
    assert as_path["text"] == "64500 65001"
