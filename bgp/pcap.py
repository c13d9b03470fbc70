"""Pull BGP byte streams (TCP port 179) out of a classic pcap file, for `python -m bgp decode`.

Just enough to read what `tcpdump -w` writes: pcap (either byte order, micro- or
nanosecond), link types Ethernet, Linux cooked (SLL, SLL2), raw IP and BSD loopback;
IPv4/IPv6 (with 802.1Q tags), TCP.  Segments of each direction are ordered by sequence
number and retransmissions dropped, so messages split across segments decode whole.
pcapng is not read: convert with `tcpdump -r in.pcapng -w out.pcap`.
"""

from __future__ import annotations

import ipaddress
import struct

BGP_PORT = 179


class PcapError(Exception):
    pass


def _packets(data: bytes) -> tuple[int, list[bytes]]:
    if len(data) < 24:
        raise PcapError("file too short for a pcap header")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    elif magic == b"\x0a\x0d\x0d\x0a":
        raise PcapError("pcapng is not supported; convert with tcpdump -r IN -w OUT.pcap")
    else:
        raise PcapError("not a pcap file")
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    pos = 24
    out = []
    while pos + 16 <= len(data):
        incl = struct.unpack_from(endian + "I", data, pos + 8)[0]
        pos += 16
        out.append(data[pos : pos + incl])
        pos += incl
    return linktype, out


def _ip_payload(linktype: int, frame: bytes) -> bytes | None:
    if linktype == 1:  # Ethernet
        off, ethertype = 14, int.from_bytes(frame[12:14], "big")
        while ethertype in (0x8100, 0x88A8) and len(frame) >= off + 4:
            ethertype = int.from_bytes(frame[off + 2 : off + 4], "big")
            off += 4
    elif linktype == 113:  # Linux cooked v1
        off, ethertype = 16, int.from_bytes(frame[14:16], "big")
    elif linktype == 276:  # Linux cooked v2
        off, ethertype = 20, int.from_bytes(frame[0:2], "big")
    elif linktype in (101, 12, 14):  # raw IP
        return frame
    elif linktype == 0:  # BSD loopback
        return frame[4:]
    else:
        raise PcapError(f"unsupported link type {linktype}")
    if ethertype not in (0x0800, 0x86DD):
        return None
    return frame[off:]


def _tcp(packet: bytes) -> tuple[str, str, int, bytes] | None:
    """(source, destination, sequence number, payload) of a TCP segment to/from port 179."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4:
        if len(packet) < 20 or packet[9] != 6:
            return None
        ihl = (packet[0] & 0x0F) * 4
        total = int.from_bytes(packet[2:4], "big")
        src = str(ipaddress.IPv4Address(packet[12:16]))
        dst = str(ipaddress.IPv4Address(packet[16:20]))
        seg = packet[ihl:total] if total else packet[ihl:]
    elif version == 6:
        if len(packet) < 40 or packet[6] != 6:
            return None
        plen = int.from_bytes(packet[4:6], "big")
        src = f"[{ipaddress.IPv6Address(packet[8:24])}]"
        dst = f"[{ipaddress.IPv6Address(packet[24:40])}]"
        seg = packet[40 : 40 + plen]
    else:
        return None
    if len(seg) < 20:
        return None
    sport, dport, seq = struct.unpack_from("!HHI", seg)
    if BGP_PORT not in (sport, dport):
        return None
    doff = (seg[12] >> 4) * 4
    return f"{src}:{sport}", f"{dst}:{dport}", seq, seg[doff:]


def bgp_streams(data: bytes) -> list[tuple[str, bytes]]:
    """[("SRC:PORT > DST:PORT", reassembled payload), ...] in order of first appearance."""
    linktype, frames = _packets(data)
    segments: dict[str, list[tuple[int, bytes]]] = {}
    for frame in frames:
        packet = _ip_payload(linktype, frame)
        if packet is None:
            continue
        tcp = _tcp(packet)
        if tcp is None or not tcp[3]:
            continue
        src, dst, seq, payload = tcp
        segments.setdefault(f"{src} > {dst}", []).append((seq, payload))
    out = []
    for flow, segs in segments.items():
        base = segs[0][0]
        ordered = sorted(segs, key=lambda s: (s[0] - base) & 0xFFFFFFFF)
        stream = bytearray()
        next_rel = 0
        for seq, payload in ordered:
            rel = (seq - base) & 0xFFFFFFFF
            if rel + len(payload) <= next_rel:
                continue  # retransmission
            stream += payload[max(0, next_rel - rel) :]
            next_rel = rel + len(payload)
        out.append((flow, bytes(stream)))
    return out
