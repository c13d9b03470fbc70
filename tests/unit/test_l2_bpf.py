"""The BPF programs, run by an interpreter of the instructions they use (the kernel runs them in
tests/interop/test_l2_announce.py): what reaches Python and what does not."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Ether

from l2 import bpf
from netkit.bpf import BPF_MAXINSNS

VIP4 = ipaddress.IPv4Address("198.51.100.200")
VIP6 = ipaddress.IPv6Address("2001:db8:100::200")
MAC = "02:00:00:00:00:64"


def arp(
    op: int = 1, pdst: str = str(VIP4), psrc: str = "198.51.100.100", dst: str = "ff:ff:ff:ff:ff:ff"
) -> bytes:
    return bytes(Ether(src=MAC, dst=dst) / ARP(op=op, psrc=psrc, pdst=pdst, hwsrc=MAC))


def ns(tgt: str = str(VIP6)) -> bytes:
    return bytes(
        Ether(src=MAC, dst="33:33:ff:00:02:00")
        / IPv6(src="2001:db8:100::64", dst="ff02::1:ff00:200", hlim=255)
        / ICMPv6ND_NS(tgt=tgt)
    )


def na(tgt: str = str(VIP6), dst: str = "ff02::1") -> bytes:
    return bytes(Ether(src=MAC) / IPv6(src=tgt, dst=dst, hlim=255) / ICMPv6ND_NA(tgt=tgt, O=1))


def accepts(program: bpf.Program, frame: bytes, pkttype: int = 0) -> bool:
    return bpf.run(program, frame, pkttype) > 0


def test_generic_arp_program() -> None:
    prog = bpf.arp_program()
    assert accepts(prog, arp())
    assert accepts(prog, arp(pdst="198.51.100.77"))
    assert accepts(prog, arp(dst="02:00:00:00:00:11"))  # unicast request
    assert accepts(prog, arp(op=2))  # broadcast (gratuitous) reply
    assert not accepts(prog, arp(op=2, dst="02:00:00:00:00:11"))  # ordinary reply: kernel's
    assert not accepts(prog, arp(), bpf.PACKET_OUTGOING)
    assert not accepts(prog, bytes(Ether() / IP(dst="198.51.100.200") / UDP()))
    assert not accepts(prog, ns())
    assert not accepts(prog, arp()[:15])


def test_exact_arp_program_keeps_other_addresses_out() -> None:
    prog = bpf.arp_program([VIP4, ipaddress.IPv4Address("198.51.100.201")])
    assert accepts(prog, arp())
    assert accepts(prog, arp(pdst="198.51.100.201"))
    assert not accepts(prog, arp(pdst="198.51.100.202"))
    assert accepts(prog, arp(pdst="198.51.100.1", psrc=str(VIP4)))  # a claim on our address
    assert not accepts(prog, arp(), bpf.PACKET_OUTGOING)
    assert not accepts(bpf.arp_program([]), arp())


def test_ndp_programs() -> None:
    generic = bpf.ndp_program()
    exact = bpf.ndp_program([VIP6])
    for prog in (generic, exact):
        assert accepts(prog, ns())
        assert accepts(prog, na())  # unsolicited, to all-nodes: conflict detection
        assert not accepts(prog, na(dst="2001:db8:100::64"))  # solicited: somebody else's
        assert not accepts(prog, ns(), bpf.PACKET_OUTGOING)
        assert not accepts(
            prog, bytes(Ether() / IPv6(dst="2001:db8:100::200") / ICMPv6EchoRequest())
        )
        assert not accepts(prog, arp())
    assert accepts(generic, ns("2001:db8:100::201"))
    assert not accepts(exact, ns("2001:db8:100::201"))
    assert not accepts(exact, ns("2001:db8:100:1::200"))  # differs in one middle word only


def test_long_lists_stay_valid_and_fall_back_to_generic() -> None:
    many4 = [ipaddress.IPv4Address(int(VIP4) + i) for i in range(bpf.MAX_EXACT_V4)]
    prog = bpf.arp_program(many4)
    assert len(prog) <= BPF_MAXINSNS
    assert all(insn.jt <= 255 and insn.jf <= 255 for insn in prog)
    assert accepts(prog, arp(pdst=str(many4[-1])))
    assert not accepts(prog, arp(pdst="198.51.99.1"))
    too_many = [ipaddress.IPv4Address(int(VIP4) + i) for i in range(bpf.MAX_EXACT_V4 + 1)]
    assert bpf.arp_program(too_many) == bpf.arp_program()
    many6 = [ipaddress.IPv6Address(int(VIP6) + i) for i in range(bpf.MAX_EXACT_V6)]
    prog6 = bpf.ndp_program(many6)
    assert len(prog6) <= BPF_MAXINSNS
    assert accepts(prog6, ns(str(many6[-1])))


@given(
    st.lists(st.integers(0, 2**32 - 1), max_size=20),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)
def test_exact_program_accepts_exactly_the_listed_targets(
    ips: list[int], target: int, sender: int
) -> None:
    addrs = [ipaddress.IPv4Address(i) for i in ips]
    prog = bpf.arp_program(addrs)
    frame = arp(pdst=str(ipaddress.IPv4Address(target)), psrc=str(ipaddress.IPv4Address(sender)))
    assert accepts(prog, frame) == (target in ips or sender in ips)
