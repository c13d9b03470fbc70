"""MetalLB's pre-v0.13 ConfigMap (`config` key) turned into the metallb.io resources.

MetalLB up to v0.12 was configured by one YAML document (`address-pools`, `peers`,
`bgp-communities`, `bfd-profiles`) in a ConfigMap; v0.13 replaced it with the CRDs and shipped
`configmaptocrs` for the move. `convert` does the same move as a pure function: the parsed
document in, the objects and a list of notes out. A note says what changed on the way (a name made
valid, a password left in plain text) or what could not be carried over (an unknown key, a value
the CRD cannot hold); nothing is dropped silently. Values are checked with the same helpers the
parser uses (addresses, durations, communities), so the output is what `config validate` accepts.

Naming follows `configmaptocrs`: pools and BFD profiles keep their names (made DNS-1123 valid when
needed), peers become `peer1..N`, advertisements `l2advertisement1..N` and
`bgpadvertisement1..N`, and the `bgp-communities` aliases one Community named `communities`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from metallb_py import yamlsafe
from metallb_py.config.addresses import AddressError, parse_entry
from metallb_py.config.communities import CommunityError, is_literal, parse_community
from metallb_py.config.durations import DurationError, format_duration, parse_duration
from metallb_py.config.objects import DEFAULT_NAMESPACE
from metallb_py.config.schemas import GROUP

MAX_NAME = 63  # the longest name given to a converted object (a DNS-1123 label), as MetalLB
TOP_LEVEL_KEYS = ("address-pools", "peers", "bgp-communities", "bfd-profiles")

POOL_KEYS = {
    "name",
    "protocol",
    "addresses",
    "auto-assign",
    "avoid-buggy-ips",
    "bgp-advertisements",
}
ADVERTISEMENT_KEYS = {"aggregation-length", "aggregation-length-v6", "localpref", "communities"}
PEER_KEYS = {
    "my-asn": "myASN",
    "peer-asn": "peerASN",
    "peer-address": "peerAddress",
    "source-address": "sourceAddress",
    "peer-port": "peerPort",
    "hold-time": "holdTime",
    "keepalive-time": "keepaliveTime",
    "router-id": "routerID",
    "node-selectors": "nodeSelectors",
    "password": "password",
    "bfd-profile": "bfdProfile",
    "ebgp-multihop": "ebgpMultiHop",
    "vrf": "vrf",
}
BFD_KEYS = {
    "receive-interval": "receiveInterval",
    "transmit-interval": "transmitInterval",
    "detect-multiplier": "detectMultiplier",
    "echo-interval": "echoInterval",
    "echo-mode": "echoMode",
    "passive-mode": "passiveMode",
    "minimum-ttl": "minimumTtl",
}
SELECTOR_KEYS = {"match-labels": "matchLabels", "match-expressions": "matchExpressions"}
_INVALID_NAME_CHARS = re.compile(r"[^a-z0-9-]+")

Severity = Literal["changed", "dropped"]


@dataclass(frozen=True)
class Note:
    """One thing the conversion changed (`changed`) or could not carry over (`dropped`)."""

    path: str  # where in the old configuration, e.g. `address-pools[0].addresses[2]`
    message: str
    severity: Severity = "dropped"

    def line(self) -> str:
        tag = "not carried over" if self.severity == "dropped" else "changed"
        return f"{self.path}: {tag}: {self.message}"


@dataclass
class Conversion:
    """The objects, in an order `kubectl apply -f` can create them in, and the notes."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def lossless(self) -> bool:
        return not any(n.severity == "dropped" for n in self.notes)


class LegacyConfigError(ValueError):
    """The input is not a legacy MetalLB configuration at all."""


class GoYamlLoader(yaml.SafeLoader):
    """YAML as MetalLB read it: an unquoted `64500:100` is a string, not a base-60 integer.

    PyYAML follows YAML 1.1's sexagesimal numbers; Go's YAML library never did, so MetalLB users
    wrote communities unquoted. Any plain scalar with a colon stays a string here.
    """

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and implicit[0] and isinstance(value, str) and ":" in value:
            return "tag:yaml.org,2002:str"
        return str(super().resolve(kind, value, implicit))


def load_all(text: str) -> list[Any]:
    """Every document of `text`, read with `GoYamlLoader` within the shared YAML limits."""
    return yamlsafe.load_all(text, base=GoYamlLoader)


def find_legacy_config(documents: Iterable[Any]) -> dict[str, Any]:
    """The configuration document: the `config` key of a ConfigMap, or a bare config mapping."""
    docs = [d for d in documents if d is not None]
    configmaps = [
        d
        for d in docs
        if isinstance(d, dict)
        and d.get("kind") == "ConfigMap"
        and isinstance(d.get("data"), dict)
        and "config" in d["data"]
    ]
    if len(configmaps) > 1:
        names = ", ".join(str((c.get("metadata") or {}).get("name", "?")) for c in configmaps)
        raise LegacyConfigError(f"several ConfigMaps with a 'config' key ({names}): give one")
    if configmaps:
        text = configmaps[0]["data"]["config"]
        if not isinstance(text, str):
            raise LegacyConfigError("the ConfigMap's data.config is not a string")
        try:
            loaded = yamlsafe.load(text, base=GoYamlLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1} of data.config)" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise LegacyConfigError(f"data.config is not YAML{where}: {problem}") from None
        if loaded is None:
            return {}
        if not isinstance(loaded, dict):
            raise LegacyConfigError("data.config must hold a mapping")
        return loaded
    bare = [d for d in docs if isinstance(d, dict) and any(k in d for k in TOP_LEVEL_KEYS)]
    if len(bare) == 1:
        return bare[0]
    if not docs:
        raise LegacyConfigError("the input is empty")
    if len(bare) > 1:
        raise LegacyConfigError("several configuration documents: give one")
    kinds = sorted({str(d.get("kind")) for d in docs if isinstance(d, dict) and d.get("kind")})
    if GROUP in " ".join(str(d.get("apiVersion", "")) for d in docs if isinstance(d, dict)):
        raise LegacyConfigError(
            "the input already holds metallb.io resources; nothing to convert "
            "(check it with `metallb-py config validate`)"
        )
    found = f" (found {', '.join(kinds)})" if kinds else ""
    raise LegacyConfigError(
        "no MetalLB configuration: expected a ConfigMap with a 'config' key, or a document with "
        f"{', '.join(TOP_LEVEL_KEYS)}{found}"
    )


def dns_name(raw: str) -> str:
    """`raw` as a DNS-1123 label: lower case, `-` for other characters, at most 63 long."""
    name = _INVALID_NAME_CHARS.sub("-", raw.lower())
    name = name[:MAX_NAME].strip("-")
    return name


class _Converter:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.out = Conversion()
        self.names: dict[str, set[str]] = {}
        self.reserved: dict[str, set[str]] = {}

    # ---- helpers ---------------------------------------------------------------------------

    def note(self, path: str, message: str, severity: Severity = "dropped") -> None:
        self.out.notes.append(Note(path, message, severity))

    def obj(self, kind: str, name: str, spec: dict[str, Any], version: str = "v1beta1") -> None:
        self.out.objects.append(
            {
                "apiVersion": f"{GROUP}/{version}",
                "kind": kind,
                "metadata": {"name": name, "namespace": self.namespace},
                "spec": spec,
            }
        )

    def reserve(self, kind: str, items: Any) -> None:
        """Names already valid keep them: a renamed object never takes a name written as is."""
        reserved = self.reserved.setdefault(kind, set())
        for item in items if isinstance(items, list) else []:
            raw = item.get("name") if isinstance(item, dict) else None
            if isinstance(raw, str) and raw and dns_name(raw) == raw:
                reserved.add(raw)

    def unique_name(self, kind: str, raw: str, path: str) -> str:
        """A valid, unused name for `raw`; a rename is noted, since Services may name a pool."""
        taken = self.names.setdefault(kind, set())
        reserved = self.reserved.get(kind, set())
        name = dns_name(raw) or kind.lower()
        base, n = name, 2
        while name in taken or (name != raw and name in reserved):
            suffix = f"-{n}"
            name = base[: MAX_NAME - len(suffix)].rstrip("-") + suffix
            n += 1
        taken.add(name)
        if name != raw:
            why = "is not a valid object name" if dns_name(raw) != raw else "is used twice"
            self.note(path, f"name {raw!r} {why}; renamed to {name!r}", "changed")
        return name

    def mapping(self, raw: Any, path: str) -> dict[str, Any] | None:
        if isinstance(raw, dict):
            return raw
        self.note(path, f"expected a mapping, got {type(raw).__name__}")
        return None

    def entries(
        self, raw: Any, section: str, known: Iterable[str]
    ) -> Iterator[tuple[int, str, dict[str, Any]]]:
        """(index, path, mapping) for each mapping of the list `section`; an item that is not a
        mapping, and any unknown key, is noted."""
        for i, item in enumerate(_items(raw, section, self)):
            path = f"{section}[{i}]"
            entry = self.mapping(item, path)
            if entry is not None:
                self.unknown(entry, known, path)
                yield i, path, entry

    def unknown(self, item: dict[str, Any], known: Iterable[str], path: str) -> None:
        allowed = set(known)
        for key in item:
            if key not in allowed:
                self.note(f"{path}.{key}", "unknown key (not part of MetalLB's configuration)")

    def integer(self, raw: Any, path: str, low: int, high: int) -> int | None:
        if isinstance(raw, bool) or not isinstance(raw, int):
            try:
                value = int(str(raw), 10)
            except ValueError:
                self.note(path, f"{raw!r} is not a whole number")
                return None
        else:
            value = raw
        if not low <= value <= high:
            self.note(path, f"{value} is out of range {low}..{high}")
            return None
        return value

    def boolean(self, raw: Any, path: str) -> bool | None:
        if isinstance(raw, bool):
            return raw
        self.note(path, f"{raw!r} is not true or false")
        return None

    # ---- sections --------------------------------------------------------------------------

    def bfd_profiles(self, raw: Any) -> dict[str, str]:
        """BFDProfile objects; returns old name -> new name for the peers' references."""
        renamed: dict[str, str] = {}
        self.reserve("BFDProfile", raw)
        for _, path, prof in self.entries(raw, "bfd-profiles", ["name", *BFD_KEYS]):
            old = prof.get("name")
            if not isinstance(old, str) or not old:
                self.note(path, "a BFD profile without a name")
                continue
            name = self.unique_name("BFDProfile", old, f"{path}.name")
            renamed[old] = name
            spec: dict[str, Any] = {}
            for key, field_name in BFD_KEYS.items():
                if key not in prof or prof[key] is None:
                    continue
                if key in ("echo-mode", "passive-mode"):
                    flag = self.boolean(prof[key], f"{path}.{key}")
                    if flag is not None:
                        spec[field_name] = flag
                else:
                    value = self.integer(prof[key], f"{path}.{key}", 0, 2**32 - 1)
                    if value is not None:
                        spec[field_name] = value
            self.obj("BFDProfile", name, spec)
        return renamed

    def communities(self, raw: Any) -> set[str]:
        """One Community object with every alias; returns the aliases defined."""
        if raw is None:
            return set()
        table = self.mapping(raw, "bgp-communities")
        if not table:
            return set()
        entries: list[dict[str, str]] = []
        for alias, value in table.items():
            path = f"bgp-communities.{alias}"
            alias_text = str(alias)
            if is_literal(alias_text):
                self.note(path, f"alias {alias_text!r} contains ':' and would read as a value")
                continue
            try:
                community = parse_community(str(value))
            except CommunityError as exc:
                self.note(path, str(exc))
                continue
            entries.append({"name": alias_text, "value": str(community)})
        if entries:
            self.obj("Community", "communities", {"communities": entries})
        return {e["name"] for e in entries}

    def pools(self, raw: Any, aliases: set[str]) -> None:
        l2_ads: list[tuple[str, dict[str, Any]]] = []
        bgp_ads: list[tuple[str, dict[str, Any]]] = []
        self.reserve("IPAddressPool", raw)
        for _, path, pool in self.entries(raw, "address-pools", POOL_KEYS):
            old = pool.get("name")
            if not isinstance(old, str) or not old:
                self.note(path, "a pool without a name")
                continue
            addresses = self.addresses(pool.get("addresses"), f"{path}.addresses")
            if not addresses:
                self.note(path, f"pool {old!r} has no usable address; it is left out")
                continue
            name = self.unique_name("IPAddressPool", old, f"{path}.name")
            spec: dict[str, Any] = {"addresses": addresses}
            if pool.get("auto-assign") is not None:
                flag = self.boolean(pool["auto-assign"], f"{path}.auto-assign")
                if flag is not None:
                    spec["autoAssign"] = flag
            if pool.get("avoid-buggy-ips") is not None:
                flag = self.boolean(pool["avoid-buggy-ips"], f"{path}.avoid-buggy-ips")
                if flag:
                    spec["avoidBuggyIPs"] = True
            self.obj("IPAddressPool", name, spec)
            protocol = pool.get("protocol")
            ads_raw = pool.get("bgp-advertisements")
            if protocol == "layer2":
                l2_ads.append((path, {"ipAddressPools": [name]}))
                if ads_raw:
                    self.note(
                        f"{path}.bgp-advertisements",
                        "bgp-advertisements are only allowed with protocol bgp",
                    )
            elif protocol == "bgp":
                ads = _items(ads_raw, f"{path}.bgp-advertisements", self) if ads_raw else []
                if not ads:
                    bgp_ads.append((path, {"ipAddressPools": [name]}))
                for j, ad in enumerate(ads):
                    ad_path = f"{path}.bgp-advertisements[{j}]"
                    ad_spec = self.bgp_advertisement(ad, ad_path, name, aliases)
                    if ad_spec is not None:
                        bgp_ads.append((ad_path, ad_spec))
            else:
                self.note(
                    f"{path}.protocol",
                    f"protocol {protocol!r} is neither layer2 nor bgp; pool {name!r} is "
                    "converted without an advertisement (IPs are allocated, not announced)",
                )
        for n, (_, spec) in enumerate(l2_ads, start=1):
            self.obj("L2Advertisement", f"l2advertisement{n}", spec)
        for n, (_, spec) in enumerate(bgp_ads, start=1):
            self.obj("BGPAdvertisement", f"bgpadvertisement{n}", spec)

    def addresses(self, raw: Any, path: str) -> list[str]:
        if not isinstance(raw, list):
            self.note(path, "expected a list of addresses")
            return []
        out: list[str] = []
        for i, entry in enumerate(raw):
            try:
                rng = parse_entry(str(entry))
            except AddressError as exc:
                self.note(f"{path}[{i}]", str(exc))
                continue
            text = rng.entry
            if "/" not in text and "-" not in text:
                # MetalLB wants a prefix length; a single address is written as a /32 or /128.
                text = f"{text}/{32 if rng.family == 4 else 128}"
            out.append(text)
        return out

    def bgp_advertisement(
        self, raw: Any, path: str, pool: str, aliases: set[str]
    ) -> dict[str, Any] | None:
        ad = self.mapping(raw, path)
        if ad is None:
            return None
        self.unknown(ad, ADVERTISEMENT_KEYS, path)
        spec: dict[str, Any] = {"ipAddressPools": [pool]}
        for key, field_name, high in (
            ("aggregation-length", "aggregationLength", 32),
            ("aggregation-length-v6", "aggregationLengthV6", 128),
        ):
            if ad.get(key) is not None:
                value = self.integer(ad[key], f"{path}.{key}", 0, high)
                if value is not None:
                    spec[field_name] = value
        if ad.get("localpref") is not None:
            value = self.integer(ad["localpref"], f"{path}.localpref", 0, 2**32 - 1)
            if value is not None:
                spec["localPref"] = value
        communities: list[str] = []
        for k, text in enumerate(ad.get("communities") or []):
            c_path = f"{path}.communities[{k}]"
            written = str(text)
            if is_literal(written):
                try:
                    written = str(parse_community(written))
                except CommunityError as exc:
                    self.note(c_path, str(exc))
                    continue
            elif written not in aliases:
                self.note(c_path, f"community alias {written!r} is not defined in bgp-communities")
                continue
            communities.append(written)
        if communities:
            spec["communities"] = communities
        return spec

    def peers(self, raw: Any, bfd: dict[str, str]) -> None:
        for i, path, peer in self.entries(raw, "peers", PEER_KEYS):
            spec: dict[str, Any] = {}
            for key in ("my-asn", "peer-asn"):
                if peer.get(key) is None:
                    self.note(path, f"missing {key}: the peer cannot be converted")
                    spec = {}
                    break
                value = self.integer(peer[key], f"{path}.{key}", 1, 2**32 - 1)
                if value is None:
                    spec = {}
                    break
                spec[PEER_KEYS[key]] = value
            if not spec:
                continue
            for key in ("peer-address", "source-address", "router-id", "vrf", "password"):
                if peer.get(key) not in (None, ""):
                    spec[PEER_KEYS[key]] = str(peer[key])
            if "peerAddress" not in spec:
                self.note(path, "missing peer-address: the peer cannot be converted")
                continue
            if peer.get("peer-port") is not None:
                port = self.integer(peer["peer-port"], f"{path}.peer-port", 1, 16384)
                if port is not None:
                    spec["peerPort"] = port
            for key in ("hold-time", "keepalive-time"):
                if peer.get(key) not in (None, ""):
                    try:
                        seconds = parse_duration(str(peer[key]))
                    except DurationError as exc:
                        self.note(f"{path}.{key}", str(exc))
                        continue
                    spec[PEER_KEYS[key]] = format_duration(seconds)
            if peer.get("ebgp-multihop") is not None:
                flag = self.boolean(peer["ebgp-multihop"], f"{path}.ebgp-multihop")
                if flag:
                    spec["ebgpMultiHop"] = True
            if peer.get("bfd-profile"):
                old = str(peer["bfd-profile"])
                if old in bfd:
                    spec["bfdProfile"] = bfd[old]
                else:
                    self.note(
                        f"{path}.bfd-profile",
                        f"BFD profile {old!r} is not defined in bfd-profiles; the peer runs "
                        "without BFD",
                    )
            selectors = self.node_selectors(peer.get("node-selectors"), f"{path}.node-selectors")
            if selectors:
                spec["nodeSelectors"] = selectors
            if "password" in spec:
                self.note(
                    f"{path}.password",
                    "kept in plain text in spec.password; consider a Secret "
                    "(spec.passwordSecret, type kubernetes.io/basic-auth)",
                    "changed",
                )
            self.obj("BGPPeer", f"peer{i + 1}", spec, version="v1beta2")

    def node_selectors(self, raw: Any, path: str) -> list[dict[str, Any]]:
        if raw is None:
            return []
        out: list[dict[str, Any]] = []
        for _, sel_path, sel in self.entries(raw, path, SELECTOR_KEYS):
            new: dict[str, Any] = {}
            labels = sel.get("match-labels")
            if labels:
                new["matchLabels"] = {str(k): str(v) for k, v in dict(labels).items()}
            exprs = []
            requirements = sel.get("match-expressions")
            known = ("key", "operator", "values")
            for _, _, req in self.entries(requirements, f"{sel_path}.match-expressions", known):
                one: dict[str, Any] = {
                    "key": str(req.get("key", "")),
                    "operator": str(req.get("operator", "")),
                }
                if req.get("values"):
                    one["values"] = [str(v) for v in req["values"]]
                exprs.append(one)
            if exprs:
                new["matchExpressions"] = exprs
            out.append(new)
        return out


def _items(raw: Any, path: str, conv: _Converter) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        conv.note(path, "expected a list")
        return []
    return raw


def convert(config: dict[str, Any], namespace: str = DEFAULT_NAMESPACE) -> Conversion:
    """The metallb.io objects for a legacy configuration mapping, and the notes.

    Objects come in dependency order (BFDProfile, Community, IPAddressPool, L2Advertisement,
    BGPAdvertisement, BGPPeer) so that a validating webhook accepts them one by one.
    """
    conv = _Converter(namespace)
    conv.unknown(config, TOP_LEVEL_KEYS, "config")
    bfd = conv.bfd_profiles(config.get("bfd-profiles"))
    aliases = conv.communities(config.get("bgp-communities"))
    conv.pools(config.get("address-pools"), aliases)
    conv.peers(config.get("peers"), bfd)
    return conv.out
