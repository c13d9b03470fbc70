"""`python -m bgp decode`: BGP messages (hex, raw bytes or a pcap capture) -> one JSON line each.

Every field is printed, including capabilities and attributes we never originate; unknown
ones appear as raw hex.  A malformed message prints the NOTIFICATION (code, subcode, names)
it would cause and its RFC 7606 action.  Exit status: 0 all well-formed, 1 some malformed,
2 usage error or unreadable input.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any, TextIO

from bgp import attributes as A
from bgp import capabilities as C
from bgp import messages as M
from bgp.context import EXTENDED_MAX_MESSAGE, CodecContext, family_name
from bgp.errors import (
    BAD_MESSAGE_LENGTH,
    CONNECTION_NOT_SYNCHRONIZED,
    MESSAGE_HEADER_ERROR,
    BGPError,
    error_name,
)
from bgp.nlri import Prefix
from netkit.cli import EXIT_USAGE, UsageError, UsageParser

_HEX_NOISE = re.compile(r"0x|\\x|[\s:.,\-\"']", re.IGNORECASE)
_HEX = re.compile(r"[0-9a-fA-F]*")


def parse_hex(text: str) -> bytes:
    """Hex with spaces, colons, dots, dashes, newlines, quotes, 0x or \\x between octets
    (Wireshark's "hex stream" and "escaped string" copies both work)."""
    cleaned = _HEX_NOISE.sub("", text)
    if not _HEX.fullmatch(cleaned):
        bad = next(ch for ch in cleaned if ch not in "0123456789abcdefABCDEF")
        raise UsageError(f"not hex: unexpected character {bad!r}")
    if len(cleaned) % 2:
        raise UsageError("odd number of hex digits")
    return bytes.fromhex(cleaned)


def looks_like_hex(data: bytes) -> bool:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return False
    return bool(text.strip()) and _HEX.fullmatch(_HEX_NOISE.sub("", text)) is not None


# ----------------------------------------------------------------------------- JSON


def _family(afi: int, safi: int) -> dict[str, Any]:
    return {"afi": afi, "safi": safi, "family": family_name(afi, safi)}


def _prefixes(prefixes: tuple[Prefix, ...]) -> list[Any]:
    return [
        str(p) if p.path_id is None else {"prefix": str(p), "path_id": p.path_id} for p in prefixes
    ]


def capability_json(cap: C.Capability) -> dict[str, Any]:
    out: dict[str, Any] = {
        "code": cap.code,
        "name": C.CAPABILITY_NAMES.get(cap.code, "unknown"),
    }
    if isinstance(cap, C.Multiprotocol):
        out.update(_family(cap.afi, cap.safi))
    elif isinstance(cap, C.FourOctetAS):
        out["asn"] = cap.asn
    elif isinstance(cap, C.GracefulRestart):
        out.update(
            restart_time=cap.restart_time,
            restart_state=cap.restart_state,
            notification=cap.notification,
            families=[
                {**_family(f.afi, f.safi), "forwarding_preserved": f.forwarding_preserved}
                for f in cap.families
            ],
        )
    elif isinstance(cap, C.ExtendedNextHop):
        out["entries"] = [{**_family(a, s), "next_hop_afi": nh} for a, s, nh in cap.entries]
    elif isinstance(cap, C.AddPath):
        modes = {1: "receive", 2: "send", 3: "send-receive"}
        out["entries"] = [{**_family(a, s), "mode": modes[m]} for a, s, m in cap.entries]
    elif isinstance(cap, C.UnknownCapability):
        out["value_hex"] = cap.value.hex()
    return out


def _segments(segs: tuple[A.AsPathSegment, ...]) -> dict[str, Any]:
    parts = []
    for s in segs:
        asns = " ".join(str(a) for a in s.asns)
        if s.type == A.AS_SET:
            asns = "{" + asns + "}"
        elif s.type == A.AS_CONFED_SEQUENCE:
            asns = "(" + asns + ")"
        elif s.type == A.AS_CONFED_SET:
            asns = "[" + asns + "]"
        parts.append(asns)
    return {
        "segments": [
            {"type": A.SEGMENT_NAMES.get(s.type, str(s.type)), "asns": list(s.asns)} for s in segs
        ],
        "text": " ".join(parts),
    }


_FLAG_NAMES = (
    (A.FLAG_OPTIONAL, "optional"),
    (A.FLAG_TRANSITIVE, "transitive"),
    (A.FLAG_PARTIAL, "partial"),
    (A.FLAG_EXTENDED_LENGTH, "extended-length"),
)


def received_flags(raw: bytes) -> dict[int, int]:
    """Flags of each attribute as sent (first occurrence), read from an UPDATE's bytes."""
    out: dict[int, int] = {}
    try:
        wlen = int.from_bytes(raw[19:21], "big")
        pos = 21 + wlen
        end = pos + 2 + int.from_bytes(raw[pos : pos + 2], "big")
        pos += 2
        while pos + 3 <= end:
            flags, code = raw[pos], raw[pos + 1]
            if flags & A.FLAG_EXTENDED_LENGTH:
                length, head = int.from_bytes(raw[pos + 2 : pos + 4], "big"), 4
            else:
                length, head = raw[pos + 2], 3
            out.setdefault(code, flags)
            pos += head + length
    except IndexError:
        pass
    return out


def attribute_json(attr: A.Attribute, flags: int | None = None) -> dict[str, Any]:
    flags = attr.flags if flags is None else flags
    out: dict[str, Any] = {
        "type_code": attr.type_code,
        "name": A.ATTRIBUTE_NAMES.get(attr.type_code, "UNKNOWN"),
        "flags": f"0x{flags:02x}",
        "flag_names": [name for bit, name in _FLAG_NAMES if flags & bit],
    }
    if isinstance(attr, A.Origin):
        out["value"] = A.ORIGIN_NAMES[attr.value]
    elif isinstance(attr, A.AsPath | A.As4Path):
        out.update(_segments(attr.segments))
    elif isinstance(attr, A.NextHop):
        out["next_hop"] = str(attr.address)
    elif isinstance(attr, A.MultiExitDisc | A.LocalPref):
        out["value"] = attr.value
    elif isinstance(attr, A.Aggregator | A.As4Aggregator):
        out.update(asn=attr.asn, address=str(attr.address))
    elif isinstance(attr, A.Communities):
        out["communities"] = [A.format_community(v) for v in attr.values]
    elif isinstance(attr, A.ExtendedCommunities):
        out["extended_communities"] = [A.format_extended_community(v) for v in attr.values]
    elif isinstance(attr, A.LargeCommunities):
        out["large_communities"] = [f"{a}:{b}:{c}" for a, b, c in attr.values]
    elif isinstance(attr, A.OriginatorId):
        out["originator_id"] = str(attr.address)
    elif isinstance(attr, A.ClusterList):
        out["cluster_list"] = [str(a) for a in attr.ids]
    elif isinstance(attr, A.MpReachNlri):
        out.update(_family(attr.afi, attr.safi))
        hops = attr.next_hop_addresses()
        out["next_hop"] = [str(h) for h in hops] if hops else []
        out["next_hop_hex"] = attr.next_hop.hex()
        out["nlri"] = _prefixes(attr.nlri)
        if attr.raw_nlri:
            out["nlri_hex"] = attr.raw_nlri.hex()
    elif isinstance(attr, A.MpUnreachNlri):
        out.update(_family(attr.afi, attr.safi))
        out["withdrawn"] = _prefixes(attr.withdrawn)
        if attr.raw_withdrawn:
            out["withdrawn_hex"] = attr.raw_withdrawn.hex()
    elif isinstance(attr, A.UnknownAttribute):
        out["value_hex"] = attr.value.hex()
    return out


def error_json(err: BGPError) -> dict[str, Any]:
    return {
        "code": err.code,
        "subcode": err.subcode,
        "name": err.name,
        "reason": err.reason,
        "data_hex": err.data.hex(),
        "action": err.action.name.lower().replace("_", "-"),
    }


def notification_json(msg: M.Notification) -> dict[str, Any]:
    out: dict[str, Any] = {
        "code": msg.code,
        "subcode": msg.subcode,
        "name": error_name(msg.code, msg.subcode),
        "data_hex": msg.data.hex(),
    }
    inner = msg.inner
    if inner is not None:
        out["hard_reset"] = notification_json(inner)
    text = msg.shutdown_message
    if text is not None:
        out["shutdown_message"] = text
    return out


def message_json(msg: M.Message, raw: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"type": M.MESSAGE_NAMES[msg.msg_type], "length": len(raw)}
    if isinstance(msg, M.Open):
        out.update(
            version=msg.version,
            asn=msg.asn,
            my_as=msg.my_as_field if msg.my_as_field is not None else msg.asn,
            hold_time=msg.hold_time,
            router_id=str(msg.router_id),
            capabilities=[capability_json(c) for c in msg.capabilities],
        )
    elif isinstance(msg, M.Update):
        eor = msg.end_of_rib()
        sent_flags = received_flags(raw)
        out.update(
            withdrawn=_prefixes(msg.withdrawn),
            attributes=[attribute_json(a, sent_flags.get(a.type_code)) for a in msg.attributes],
            nlri=_prefixes(msg.nlri),
            end_of_rib=family_name(*eor) if eor else None,
        )
        if msg.problems:
            out["problems"] = [error_json(p) for p in msg.problems]
            out["treat_as_withdraw"] = msg.treat_as_withdraw
    elif isinstance(msg, M.Notification):
        out.update(notification_json(msg))
    elif isinstance(msg, M.RouteRefresh):
        out.update(_family(msg.afi, msg.safi))
        out["subtype"] = {0: "normal", 1: "BoRR", 2: "EoRR"}.get(msg.subtype, str(msg.subtype))
    return out


# ----------------------------------------------------------------------------- framing


def split_stream(data: bytes) -> list[tuple[bytes, BGPError | None]]:
    """Cut a byte stream into messages, resynchronising on the marker after bad framing."""
    out: list[tuple[bytes, BGPError | None]] = []
    pos = 0
    end = len(data)
    while pos < end:
        if data[pos : pos + 16] != M.MARKER[: min(16, end - pos)]:
            nxt = data.find(M.MARKER, pos + 1)
            stop = nxt if nxt != -1 else end
            out.append(
                (
                    data[pos:stop],
                    BGPError(
                        MESSAGE_HEADER_ERROR,
                        CONNECTION_NOT_SYNCHRONIZED,
                        reason="marker is not all ones",
                    ),
                )
            )
            pos = stop
            continue
        if end - pos < M.HEADER_LEN:
            out.append(
                (
                    data[pos:],
                    BGPError(
                        MESSAGE_HEADER_ERROR,
                        BAD_MESSAGE_LENGTH,
                        reason=f"truncated: {end - pos} octets, a header needs 19",
                    ),
                )
            )
            break
        length = int.from_bytes(data[pos + 16 : pos + 18], "big")
        if length < M.HEADER_LEN:
            nxt = data.find(M.MARKER, pos + 16)
            stop = nxt if nxt != -1 else end
            out.append((data[pos:stop], _decode_error(data[pos:stop])))
            pos = stop
            continue
        if pos + length > end:
            out.append(
                (
                    data[pos:],
                    BGPError(
                        MESSAGE_HEADER_ERROR,
                        BAD_MESSAGE_LENGTH,
                        length.to_bytes(2, "big"),
                        reason=f"truncated: length field {length}, {end - pos} octets present",
                    ),
                )
            )
            break
        out.append((data[pos : pos + length], None))
        pos += length
    return out


def _decode_error(raw: bytes) -> BGPError:
    try:
        M.decode(raw, CodecContext(extended_message=True))
    except BGPError as err:
        return err
    return BGPError(MESSAGE_HEADER_ERROR, BAD_MESSAGE_LENGTH, reason="bad framing")


def sender_limits(ctx: CodecContext, sent: M.Open) -> CodecContext:
    """Narrow `ctx` by what the sender of `sent` can do at all: without the 4-octet AS
    capability its UPDATEs carry 2-octet ASes; without add-path send, no path ids."""
    can_send = {
        (a, s)
        for c in sent.capabilities
        if isinstance(c, C.AddPath)
        for a, s, m in c.entries
        if m & C.ADD_PATH_SEND
    }
    four = ctx.four_octet_as and sent.capability(C.CAP_FOUR_OCTET_AS) is not None
    return CodecContext(four, frozenset(ctx.add_path & can_send), ctx.extended_message)


def decode_stream(data: bytes, ctx: CodecContext, out: TextIO, follow_open: bool = False) -> bool:
    """Print every message in `data`; return True if any was malformed.

    With `follow_open`, an OPEN in the stream narrows the context for what follows it
    (`sender_limits`)."""
    malformed = False
    for raw, framing_error in split_stream(data):
        err = framing_error
        record: dict[str, Any]
        if err is None:
            try:
                msg = M.decode(raw, ctx)
            except BGPError as exc:
                err = exc
            else:
                record = message_json(msg, raw)
                if follow_open and isinstance(msg, M.Open):
                    ctx = sender_limits(ctx, msg)
                if isinstance(msg, M.Update) and msg.problems:
                    malformed = True
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                continue
        malformed = True
        msg_type = raw[18] if len(raw) > 18 else None
        record = {
            "type": M.MESSAGE_NAMES.get(msg_type, f"type {msg_type}")
            if msg_type is not None
            else None,
            "length": len(raw),
            "error": error_json(err),
            "notification": f"{err.code}/{err.subcode} ({err.name})",
            "raw_hex": raw.hex(),
        }
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return malformed


# ----------------------------------------------------------------------------- captures


def first_open(payload: bytes) -> M.Open | None:
    """The OPEN a captured flow starts with, if the capture holds the session's start."""
    if len(payload) < M.HEADER_LEN or payload[18] != M.OPEN:
        return None
    length = int.from_bytes(payload[16:18], "big")
    try:
        msg = M.decode(payload[:length], CodecContext(four_octet_as=False))
    except BGPError:
        return None
    return msg if isinstance(msg, M.Open) else None


def flow_context(flow: str, opens: dict[str, M.Open | None]) -> CodecContext | None:
    """What the two OPENs of a captured session negotiated, for the direction `flow`
    ('SENDER > RECEIVER'); None when either OPEN is missing from the capture."""
    sender, _, receiver = flow.partition(" > ")
    ours, theirs = opens.get(flow), opens.get(f"{receiver} > {sender}")
    if ours is None or theirs is None:
        return None

    def codes(o: M.Open) -> set[int]:
        return {c.code for c in o.capabilities}

    def add_path(o: M.Open, mode: int) -> set[tuple[int, int]]:
        return {
            (a, s)
            for c in o.capabilities
            if isinstance(c, C.AddPath)
            for a, s, m in c.entries
            if m & mode
        }

    both = codes(ours) & codes(theirs)
    return CodecContext(
        four_octet_as=C.CAP_FOUR_OCTET_AS in both,
        add_path=frozenset(add_path(ours, C.ADD_PATH_SEND) & add_path(theirs, C.ADD_PATH_RECEIVE)),
        extended_message=True,
    )


def context_json(ctx: CodecContext) -> dict[str, Any]:
    return {
        "four_octet_as": ctx.four_octet_as,
        "add_path": sorted(family_name(a, s) for a, s in ctx.add_path),
        "max_size": ctx.max_message_size,
    }


# ----------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(
        prog="python -m bgp decode",
        description="Decode BGP messages (hex, raw bytes on stdin, or a pcap file) to JSON, "
        "one object per line. Exit 1 if any message is malformed.",
    )
    p.add_argument(
        "hex",
        nargs="*",
        metavar="HEX | -",
        help="hex octets (spaces, colons and newlines allowed; several messages in a row), "
        "or - to read stdin (raw bytes, or hex text)",
    )
    p.add_argument("--pcap", metavar="FILE", help="read BGP (TCP port 179) from a pcap capture")
    p.add_argument(
        "--two-octet-as",
        action="store_true",
        help="AS numbers in AS_PATH/AGGREGATOR are 2 octets (no 4-octet AS capability)",
    )
    p.add_argument(
        "--add-path",
        action="append",
        default=[],
        metavar="AFI/SAFI",
        help="NLRI of this family carry add-path identifiers, e.g. 1/1 (repeatable)",
    )
    p.add_argument(
        "--max-size",
        type=int,
        choices=(4096, 65535),
        default=EXTENDED_MAX_MESSAGE,
        help="maximum message size to accept (4096 without RFC 8654; default 65535)",
    )
    return p


def _parse_families(values: list[str]) -> frozenset[tuple[int, int]]:
    out = set()
    for v in values:
        afi, sep, safi = v.partition("/")
        if not sep or not afi.isdigit() or not safi.isdigit():
            raise UsageError(f"--add-path {v!r}: expected AFI/SAFI such as 1/1")
        out.add((int(afi), int(safi)))
    return frozenset(out)


def main(argv: list[str] | None = None, stdin: Any = None, stdout: TextIO | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = stdout or sys.stdout
    try:
        ctx = CodecContext(
            four_octet_as=not args.two_octet_as,
            add_path=_parse_families(args.add_path),
            extended_message=args.max_size == EXTENDED_MAX_MESSAGE,
        )
        streams: list[bytes] = []
        if args.pcap:
            if args.hex:
                raise UsageError("give either --pcap or HEX, not both")
            from bgp.pcap import PcapError, bgp_streams

            try:
                with open(args.pcap, "rb") as fh:
                    flows = bgp_streams(fh.read())
            except (OSError, PcapError) as exc:
                raise UsageError(f"cannot read {args.pcap}: {exc}") from None
            explicit = args.two_octet_as or args.add_path or args.max_size != EXTENDED_MAX_MESSAGE
            opens = {flow: first_open(payload) for flow, payload in flows}
            malformed = False
            for flow, payload in flows:
                flow_ctx = ctx if explicit else flow_context(flow, opens) or ctx
                out.write(json.dumps({"flow": flow, "context": context_json(flow_ctx)}) + "\n")
                malformed |= decode_stream(payload, flow_ctx, out)
            return 1 if malformed else 0
        if not args.hex:
            raise UsageError("give hex octets, - for stdin, or --pcap FILE")
        if args.hex == ["-"]:
            source = stdin if stdin is not None else sys.stdin.buffer
            data = source.read()
            if looks_like_hex(data):
                data = parse_hex(data.decode("ascii"))
            streams.append(data)
        else:
            if "-" in args.hex:
                raise UsageError("- must be the only argument")
            streams.append(parse_hex(" ".join(args.hex)))
    except UsageError as exc:
        print(f"python -m bgp decode: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not streams[0]:
        print("python -m bgp decode: no input", file=sys.stderr)
        return EXIT_USAGE
    explicit = args.two_octet_as or args.add_path
    malformed = decode_stream(streams[0], ctx, out, follow_open=not explicit)
    return 1 if malformed else 0
