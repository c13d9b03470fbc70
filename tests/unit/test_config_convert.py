"""`metallb-py config convert`: MetalLB's documented pre-v0.13 ConfigMaps into metallb.io resources.

Each example is written in the documented ConfigMap format; the converted YAML must be what the
CRDs hold and must pass `metallb-py config validate` (the parser the cluster runs) unchanged.
The command run as a process is in tests/e2e/test_config_convert_cli.py.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_py.config.convert_cli import dump, run_convert
from metallb_py.config.legacy_configmap import (
    MAX_NAME,
    LegacyConfigError,
    convert,
    dns_name,
    find_legacy_config,
    load_all,
)
from metallb_py.config.validate_cli import validate


def configmap(config: str, namespace: str = "metallb-system") -> str:
    body = textwrap.indent(textwrap.dedent(config).strip() + "\n", "    ")
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        f"  namespace: {namespace}\n  name: config\ndata:\n  config: |\n{body}"
    )


LAYER2 = configmap(
    """
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - 192.168.1.240-192.168.1.250
    """
)

BGP = configmap(
    """
    peers:
    - peer-address: 10.0.0.1
      peer-asn: 64501
      my-asn: 64500
      hold-time: 120s
      keepalive-time: 40s
      router-id: 10.0.0.100
      source-address: 10.0.0.2
      peer-port: 1179
      bfd-profile: full-bfd-profile
      node-selectors:
      - match-labels:
          rack: frontend
        match-expressions:
        - key: network-speed
          operator: NotIn
          values: [slow]
    - peer-address: 10.0.0.5
      peer-asn: 64502
      my-asn: 64500
      ebgp-multihop: true
    bfd-profiles:
    - name: full-bfd-profile
      receive-interval: 179
      transmit-interval: 180
      echo-interval: 62
      echo-mode: false
      passive-mode: true
      minimum-ttl: 254
      detect-multiplier: 4
    bgp-communities:
      no-advertise: 65535:65282
    address-pools:
    - name: default
      protocol: bgp
      addresses:
      - 198.51.100.0/24
      bgp-advertisements:
      - aggregation-length: 32
        localpref: 100
        communities:
        - no-advertise
      - aggregation-length: 24
        communities:
        - 64500:1
    """
)

IPV6 = configmap(
    """
    peers:
    - peer-address: 2001:db8::1
      peer-asn: 64501
      my-asn: 64500
    address-pools:
    - name: v6
      protocol: bgp
      addresses:
      - 2001:db8:1::/64
      bgp-advertisements:
      - aggregation-length-v6: 64
    - name: v6-l2
      protocol: layer2
      addresses:
      - fc00:f853:ccd:e799::/124
      - 2001:db8:2::10-2001:db8:2::20
    """
)

AVOID_BUGGY = configmap(
    """
    address-pools:
    - name: buggy
      protocol: layer2
      addresses:
      - 192.168.144.0/20
      avoid-buggy-ips: true
    """
)

MANUAL = configmap(
    """
    address-pools:
    - name: cheap
      protocol: layer2
      addresses:
      - 192.168.144.0/20
    - name: expensive
      protocol: bgp
      addresses:
      - 42.176.25.64/30
      auto-assign: false
    peers:
    - peer-address: 10.0.0.1
      peer-asn: 64501
      my-asn: 64500
    """
)


def converted(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    result = convert(find_legacy_config(load_all(text)))
    return result.objects, [n.line() for n in result.notes]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == kind}


def assert_valid(objects: list[dict[str, Any]]) -> None:
    """The output, as YAML text, passes `config validate` with no error and no warning."""
    out, err = io.StringIO(), io.StringIO()
    status = validate(["-"], io.StringIO(dump(objects)), out, err)
    assert status == 0, out.getvalue()
    assert out.getvalue() == "", out.getvalue()


def test_layer2_example() -> None:
    objects, notes = converted(LAYER2)
    assert notes == []
    assert [o["kind"] for o in objects] == ["IPAddressPool", "L2Advertisement"]
    assert all(o["metadata"]["namespace"] == "metallb-system" for o in objects)
    assert by_kind(objects, "IPAddressPool") == {
        "default": {"addresses": ["192.168.1.240-192.168.1.250"]}
    }
    assert by_kind(objects, "L2Advertisement") == {
        "l2advertisement1": {"ipAddressPools": ["default"]}
    }
    assert_valid(objects)


def test_bgp_example_with_communities_and_bfd() -> None:
    objects, notes = converted(BGP)
    assert notes == []
    assert [o["kind"] for o in objects] == [
        "BFDProfile",
        "Community",
        "IPAddressPool",
        "BGPAdvertisement",
        "BGPAdvertisement",
        "BGPPeer",
        "BGPPeer",
    ]
    assert by_kind(objects, "BFDProfile") == {
        "full-bfd-profile": {
            "receiveInterval": 179,
            "transmitInterval": 180,
            "detectMultiplier": 4,
            "echoInterval": 62,
            "echoMode": False,
            "passiveMode": True,
            "minimumTtl": 254,
        }
    }
    assert by_kind(objects, "Community") == {
        "communities": {"communities": [{"name": "no-advertise", "value": "65535:65282"}]}
    }
    assert by_kind(objects, "BGPAdvertisement") == {
        "bgpadvertisement1": {
            "ipAddressPools": ["default"],
            "aggregationLength": 32,
            "localPref": 100,
            "communities": ["no-advertise"],
        },
        # an unquoted 64500:1 is a community, not YAML 1.1's base-60 integer 3870001
        "bgpadvertisement2": {
            "ipAddressPools": ["default"],
            "aggregationLength": 24,
            "communities": ["64500:1"],
        },
    }
    peers = by_kind(objects, "BGPPeer")
    assert peers["peer1"] == {
        "myASN": 64500,
        "peerASN": 64501,
        "peerAddress": "10.0.0.1",
        "sourceAddress": "10.0.0.2",
        "routerID": "10.0.0.100",
        "peerPort": 1179,
        "holdTime": "2m0s",
        "keepaliveTime": "40s",
        "bfdProfile": "full-bfd-profile",
        "nodeSelectors": [
            {
                "matchLabels": {"rack": "frontend"},
                "matchExpressions": [
                    {"key": "network-speed", "operator": "NotIn", "values": ["slow"]}
                ],
            }
        ],
    }
    assert peers["peer2"] == {
        "myASN": 64500,
        "peerASN": 64502,
        "peerAddress": "10.0.0.5",
        "ebgpMultiHop": True,
    }
    assert all(o["apiVersion"] == "metallb.io/v1beta2" for o in objects if o["kind"] == "BGPPeer")
    assert_valid(objects)


def test_ipv6_example() -> None:
    objects, notes = converted(IPV6)
    assert notes == []
    assert by_kind(objects, "IPAddressPool") == {
        "v6": {"addresses": ["2001:db8:1::/64"]},
        "v6-l2": {"addresses": ["fc00:f853:ccd:e799::/124", "2001:db8:2::10-2001:db8:2::20"]},
    }
    assert by_kind(objects, "BGPAdvertisement") == {
        "bgpadvertisement1": {"ipAddressPools": ["v6"], "aggregationLengthV6": 64}
    }
    assert by_kind(objects, "L2Advertisement") == {
        "l2advertisement1": {"ipAddressPools": ["v6-l2"]}
    }
    assert by_kind(objects, "BGPPeer")["peer1"]["peerAddress"] == "2001:db8::1"
    assert_valid(objects)


def test_avoid_buggy_ips_example() -> None:
    objects, notes = converted(AVOID_BUGGY)
    assert notes == []
    assert by_kind(objects, "IPAddressPool") == {
        "buggy": {"addresses": ["192.168.144.0/20"], "avoidBuggyIPs": True}
    }
    assert_valid(objects)


def test_auto_assign_false_example() -> None:
    objects, notes = converted(MANUAL)
    assert notes == []
    assert by_kind(objects, "IPAddressPool") == {
        "cheap": {"addresses": ["192.168.144.0/20"]},
        "expensive": {"addresses": ["42.176.25.64/30"], "autoAssign": False},
    }
    # a bgp pool without bgp-advertisements gets one default advertisement
    assert by_kind(objects, "BGPAdvertisement") == {
        "bgpadvertisement1": {"ipAddressPools": ["expensive"]}
    }
    assert by_kind(objects, "L2Advertisement") == {
        "l2advertisement1": {"ipAddressPools": ["cheap"]}
    }
    assert_valid(objects)


def test_bare_config_and_single_address() -> None:
    text = (
        "address-pools:\n- name: one\n  protocol: layer2\n  addresses: [192.0.2.7, 2001:db8::7]\n"
    )
    objects, notes = converted(text)
    assert notes == []
    # MetalLB wants a prefix length: single addresses become /32 and /128
    assert by_kind(objects, "IPAddressPool") == {
        "one": {"addresses": ["192.0.2.7/32", "2001:db8::7/128"]}
    }
    assert_valid(objects)


def test_what_cannot_be_carried_over_is_named() -> None:
    objects, notes = converted(
        configmap(
            """
            peers:
            - peer-address: 192.0.2.1
              peer-asn: 64501
              my-asn: 64500
              hold-time: soon
              password: s3cret
              bfd-profile: missing
              color: blue
            - peer-address: 192.0.2.2
              my-asn: 64500
            bgp-communities:
              bad: 70000:1
            address-pools:
            - name: Prod_Pool
              protocol: bgp
              addresses: [198.51.100.0/24, 198.51.100.300]
              bgp-advertisements:
              - communities: [bad, nope]
            - name: l2-with-ads
              protocol: layer2
              addresses: [203.0.113.0/28]
              bgp-advertisements: [{aggregation-length: 24}]
            - name: typo
              protocol: l2
              addresses: [203.0.113.16/28]
            - name: empty
              protocol: layer2
              addresses: [bogus]
            bgpextras: {}
            """
        )
    )
    assert notes == [
        "config.bgpextras: not carried over: unknown key (not part of MetalLB's configuration)",
        "bgp-communities.bad: not carried over: invalid first section '70000' of community "
        "'70000:1': must fit in 16 bits",
        "address-pools[0].addresses[1]: not carried over: invalid address '198.51.100.300' in "
        "'198.51.100.300'",
        "address-pools[0].name: changed: name 'Prod_Pool' is not a valid object name; renamed "
        "to 'prod-pool'",
        "address-pools[0].bgp-advertisements[0].communities[0]: not carried over: community "
        "alias 'bad' is not defined in bgp-communities",
        "address-pools[0].bgp-advertisements[0].communities[1]: not carried over: community "
        "alias 'nope' is not defined in bgp-communities",
        "address-pools[1].bgp-advertisements: not carried over: bgp-advertisements are only "
        "allowed with protocol bgp",
        "address-pools[2].protocol: not carried over: protocol 'l2' is neither layer2 nor bgp; "
        "pool 'typo' is converted without an advertisement (IPs are allocated, not announced)",
        "address-pools[3].addresses[0]: not carried over: invalid address 'bogus' in 'bogus'",
        "address-pools[3]: not carried over: pool 'empty' has no usable address; it is left out",
        "peers[0].color: not carried over: unknown key (not part of MetalLB's configuration)",
        "peers[0].hold-time: not carried over: invalid duration 'soon': expected a number and a "
        "unit (ns, us, ms, s, m, h)",
        "peers[0].bfd-profile: not carried over: BFD profile 'missing' is not defined in "
        "bfd-profiles; the peer runs without BFD",
        "peers[0].password: changed: kept in plain text in spec.password; consider a Secret "
        "(spec.passwordSecret, type kubernetes.io/basic-auth)",
        "peers[1]: not carried over: missing peer-asn: the peer cannot be converted",
    ]
    assert sorted(by_kind(objects, "IPAddressPool")) == ["l2-with-ads", "prod-pool", "typo"]
    assert sorted(by_kind(objects, "BGPPeer")) == ["peer1"]
    assert "Community" not in {o["kind"] for o in objects}
    assert_valid(objects)


def test_names_are_made_valid_and_unique() -> None:
    assert dns_name("Capitalized_Pool.v2") == "capitalized-pool-v2"
    assert len(dns_name("x" * 100)) == MAX_NAME
    objects, notes = converted(
        "address-pools:\n"
        "- {name: A_B, protocol: layer2, addresses: [192.0.2.0/28]}\n"
        "- {name: a-b, protocol: layer2, addresses: [192.0.2.16/28]}\n"
        "- {name: a.b, protocol: layer2, addresses: [192.0.2.32/28]}\n"
    )
    pools = by_kind(objects, "IPAddressPool")
    assert pools["a-b"] == {"addresses": ["192.0.2.16/28"]}  # written as is: keeps its name
    assert pools["a-b-2"] == {"addresses": ["192.0.2.0/28"]}
    assert pools["a-b-3"] == {"addresses": ["192.0.2.32/28"]}
    assert notes == [
        "address-pools[0].name: changed: name 'A_B' is not a valid object name; renamed to 'a-b-2'",
        "address-pools[2].name: changed: name 'a.b' is not a valid object name; renamed to 'a-b-3'",
    ]
    assert_valid(objects)


def test_malformed_node_selectors_are_named() -> None:
    """Every list of the configuration is checked alike: items must be mappings with known keys,
    and match-expressions must be a list (not a mapping or a string)."""
    objects, notes = converted(
        "address-pools:\n"
        "- {name: a, protocol: layer2, addresses: [192.0.2.0/28]}\n"
        "peers:\n"
        "- peer-address: 192.0.2.1\n"
        "  peer-asn: 64501\n"
        "  my-asn: 64500\n"
        "  node-selectors:\n"
        "  - 7\n"
        "  - {match-labels: {rack: r1}, match-expressions: {key: zone}, colour: red}\n"
        "  - match-expressions: [{key: zone, operator: In, values: [a]}, x]\n"
    )
    assert notes == [
        "peers[0].node-selectors[0]: not carried over: expected a mapping, got int",
        "peers[0].node-selectors[1].colour: not carried over: unknown key (not part of "
        "MetalLB's configuration)",
        "peers[0].node-selectors[1].match-expressions: not carried over: expected a list",
        "peers[0].node-selectors[2].match-expressions[1]: not carried over: expected a "
        "mapping, got str",
    ]
    assert by_kind(objects, "BGPPeer")["peer1"]["nodeSelectors"] == [
        {"matchLabels": {"rack": "r1"}},
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the input is empty"),
        ("kind: Service\napiVersion: v1\nmetadata: {name: x}\n", "no MetalLB configuration"),
        (
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: x}\n",
            "already holds metallb.io resources",
        ),
        (configmap("[1, 2]"), "data.config must hold a mapping"),
        (LAYER2 + "---\n" + LAYER2, "several ConfigMaps"),
    ],
)
def test_inputs_that_are_not_a_legacy_config(text: str, message: str) -> None:
    with pytest.raises(LegacyConfigError, match=message):
        find_legacy_config(load_all(text))


def test_cli_function_writes_yaml_and_notes(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    target = tmp_path / "crs.yaml"
    status = run_convert("-", str(target), io.StringIO(BGP), out, err)
    assert status == 0, err.getvalue()
    assert out.getvalue() == ""
    docs = [d for d in yaml.safe_load_all(target.read_text()) if d]
    assert len(docs) == 7
    assert err.getvalue().splitlines() == [
        "1 BFDProfile, 1 Community, 1 IPAddressPool, 2 BGPAdvertisement, 2 BGPPeer; "
        "0 item(s) not carried over; result: 0 error(s), 0 warning(s)"
    ]


def test_cli_function_exit_codes() -> None:
    err = io.StringIO()
    lossy = "address-pools:\n- {name: a, protocol: layer2, addresses: [192.0.2.0/28, nope]}\n"
    assert run_convert("-", None, io.StringIO(lossy), io.StringIO(), err) == 1
    assert "not carried over" in err.getvalue()
    err = io.StringIO()
    assert run_convert("-", None, io.StringIO("a: [\n"), io.StringIO(), err) == 2
    assert "invalid YAML" in err.getvalue()
    err = io.StringIO()
    assert run_convert("/nonexistent/cm.yaml", None, io.StringIO(), io.StringIO(), err) == 2
    assert "cannot read" in err.getvalue()
