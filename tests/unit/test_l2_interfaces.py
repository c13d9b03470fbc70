"""Interface selection (MetalLB's rules) and the kernel-also-answers check, on plain snapshots."""

from __future__ import annotations

import ipaddress

import pytest

from l2 import interfaces as ifs

UP = ifs.IFF_UP | ifs.IFF_BROADCAST | ifs.IFF_LOWER_UP
MAC = bytes.fromhex("020000000011")


def link(
    name: str,
    flags: int = UP,
    master: int | None = None,
    index: int = 2,
    addrs: tuple[ifs.Address, ...] = (),
) -> ifs.Link:
    return ifs.Link(index, name, MAC, flags, master, None, addrs)


@pytest.mark.parametrize(
    "name",
    [
        "docker0",
        "cbr0",
        "dummy1",
        "virbr0",
        "lxcbr0",
        "veth1234",
        "lo",
        "cali12",
        "tunl0",
        "flannel.1",
        "kube-ipvs0",
        "cni0",
        "nodelocaldns",
        "lxc99",
    ],
)
def test_default_exclusions_match_metallb(name: str) -> None:
    assert ifs.why_not_served(link(name)) == "excluded-name"


@pytest.mark.parametrize("name", ["eth0", "ens3", "bond0", "br0", "eth0.100", "loop1", "enp0s3"])
def test_ordinary_names_are_served(name: str) -> None:
    # `eth0` in the lab is a veth device: exclusions match names, not kinds.
    assert ifs.why_not_served(link(name)) is None


def test_members_noarp_down_and_explicit_list() -> None:
    assert ifs.why_not_served(link("eth1", master=5)) == "bridge-or-bond-member"
    assert ifs.why_not_served(link("eth1", flags=UP | ifs.IFF_SLAVE)) == "bridge-or-bond-member"
    assert ifs.why_not_served(link("eth1", flags=UP | ifs.IFF_NOARP)) == "noarp"
    assert ifs.why_not_served(link("eth1", flags=ifs.IFF_BROADCAST)) == "down"
    assert ifs.why_not_served(link("eth1", flags=ifs.IFF_UP | ifs.IFF_LOWER_UP)) == "no-broadcast"
    assert ifs.why_not_served(link("eth1", flags=UP & ~ifs.IFF_LOWER_UP)) == "no-carrier"
    # An explicit list replaces name patterns and the membership rule...
    assert ifs.why_not_served(link("veth9", master=5), ["veth9"]) is None
    assert ifs.why_not_served(link("eth0"), ["veth9"]) == "not-selected"
    # ...but cannot make a down or NOARP interface answer ARP.
    assert ifs.why_not_served(link("veth9", flags=ifs.IFF_BROADCAST), ["veth9"]) == "down"
    assert ifs.why_not_served(link("veth9", flags=UP | ifs.IFF_NOARP), ["veth9"]) == "noarp"
    lo = ifs.Link(1, "lo", bytes(6), ifs.IFF_UP | ifs.IFF_LOOPBACK)
    assert ifs.why_not_served(lo, ["lo"]) == "not-ethernet"
    served = ifs.served([link("eth0"), link("docker0", index=3), link("eth1", master=9, index=4)])
    assert list(served) == ["eth0"]
    custom = ifs.served(
        [link("eth0"), link("docker0", index=3)], excludes=ifs.compile_excludes([r"^eth"])
    )
    assert list(custom) == ["docker0"]


def test_usable_link_local_skips_tentative() -> None:
    ll = ipaddress.IPv6Address("fe80::1")
    tentative = link("eth0", addrs=(ifs.Address(ll, 64, ifs.IFA_F_TENTATIVE),))
    assert ifs.usable_link_local(tentative) is None
    ready = link(
        "eth0", addrs=(ifs.Address(ipaddress.IPv6Address("2001:db8::1"), 64), ifs.Address(ll, 64))
    )
    assert ifs.usable_link_local(ready) == ll


def test_kernel_answers_follows_arp_ignore() -> None:
    vip = ipaddress.IPv4Address("198.51.100.200")
    eth0 = link("eth0", index=2)
    ipvs = link("kube-ipvs0", index=3, addrs=(ifs.Address(vip, 32),))
    links = [eth0, ipvs]
    # kube-proxy IPVS without strictARP: arp_ignore=0 answers for kube-ipvs0's address on eth0.
    assert ifs.kernel_answers(vip, "eth0", links, {"all": 0, "eth0": 0}) is not None
    # strictARP (arp_ignore=1) stops that; the larger of all/interface counts.
    assert ifs.kernel_answers(vip, "eth0", links, {"all": 1, "eth0": 0}) is None
    assert ifs.kernel_answers(vip, "eth0", links, {"all": 0, "eth0": 1}) is None
    on_eth0 = [link("eth0", addrs=(ifs.Address(vip, 24),))]
    assert ifs.kernel_answers(vip, "eth0", on_eth0, {"all": 1}) is not None
    assert ifs.kernel_answers(vip, "eth0", on_eth0, {"all": 8}) is None
    assert ifs.kernel_answers(vip, "eth0", [eth0], {}) is None
    vip6 = ipaddress.IPv6Address("2001:db8:100::200")
    lo6 = [eth0, link("lo", index=1, addrs=(ifs.Address(vip6, 128),))]
    assert ifs.kernel_answers(vip6, "eth0", lo6, {}) is None  # NDP answers on-link only
    on6 = [link("eth0", addrs=(ifs.Address(vip6, 64),))]
    assert ifs.kernel_answers(vip6, "eth0", on6, {}) is not None
