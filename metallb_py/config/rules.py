"""Every rule the parser enforces, by id: the id appears in each Problem and in the docs."""

from __future__ import annotations

RULES: dict[str, str] = {
    # envelope
    "object-shape": "a resource has apiVersion, kind and metadata.name; it nests at most 64 "
    "levels deep; labels and annotations are plain values",
    "unknown-kind": "only known metallb.io kinds are configuration",
    "api-version": "the apiVersion is one this kind is served at",
    "namespace": "only objects in the MetalLB namespace are honoured",
    "duplicate-object": "one object of a kind per name",
    "schema": "fields have the types, ranges and enums of the CRD schema; no unknown fields",
    "deprecated": "deprecated versions, fields and annotations warn",
    # pools
    "pool-address": "each address is a CIDR, a start-end range or a single address",
    "pool-duplicate-name": "pool names are unique across IPAddressPools and AddressPools",
    "pool-overlap": "no two address ranges overlap, in one pool or across pools (incl. legacy)",
    "pool-namespaces": "serviceAllocation.namespaces are valid namespace names, not repeated",
    "selector": "label selectors are well-formed and not repeated in one list",
    "legacy-protocol": "AddressPool protocol is layer2 or bgp; bgpAdvertisements only with bgp",
    "legacy-duplicate-advertisement": "no two identical bgpAdvertisements in one AddressPool",
    # peers
    "peer-asn": "myASN is set; exactly one of peerASN and dynamicASN",
    "peer-address": "exactly one of peerAddress and interface; addresses parse as IPs",
    "peer-router-id": "routerID is an IPv4 address",
    "peer-hold-time": "holdTime is 0 or at least 3 s",
    "peer-keepalive": "keepaliveTime is at most holdTime",
    "peer-v1beta1-keepalive": "v1beta1: keepaliveTime needs an explicit holdTime, strictly greater",
    "peer-connect-time": "connectTime is whole seconds in 1..65535",
    "peer-ebgp-multihop": "ebgpMultiHop only on eBGP sessions",
    "peer-password": "password and passwordSecret are mutually exclusive; the Secret is valid",
    "peer-bfd-profile": "a referenced BFDProfile exists",
    "peer-my-asn": "peers that can meet on one node share myASN (per VRF)",
    "peer-duplicate": "peers that can meet on one node have distinct addresses (per VRF)",
    # bfd
    "bfd-range": "intervals 10..60000 ms, multiplier 2..255, minimum TTL 1..254",
    "bfd-profile-in-use": "a BFDProfile used by a BGPPeer cannot be deleted",
    "bfd-echo-ipv6": "no IPv6 pool advertised to a peer whose BFD profile uses echo mode",
    # communities
    "community-syntax": "A:B with 16-bit numbers or large:A:B:C with 32-bit numbers",
    "community-duplicate-alias": "a community alias is defined once across Community objects",
    "community-alias": "an alias used by an advertisement exists",
    "community-in-use": "a Community alias used by a BGPAdvertisement cannot be deleted",
    # advertisements
    "advertisement-duplicate": "no repeated pools, peers, communities or interfaces in one list",
    "advertisement-reference": "referenced pools and peers exist",
    "aggregation-length": "aggregation length within range and not shorter than a pool "
    "entry's prefix",
    "aggregation-service-selectors": "serviceSelectors only with default aggregation lengths",
    "local-preference": "advertisements of one pool that can meet agree on localPref",
    # deletes
    "pool-in-use": "deleting a pool that services use is allowed but warns",
    "peer-in-use": "deleting a BGPPeer named by advertisements warns",
    # operator resource
    "metallb-resource": "the MetalLB resource follows the operator's rules",
}
