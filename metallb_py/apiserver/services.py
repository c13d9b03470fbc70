"""Service defaulting as the real server does it: cluster IPs from the service CIDRs (single or
dual stack per ipFamilyPolicy), node ports for NodePort and LoadBalancer services, the usual
spec defaults, and immutability of what cannot change."""

from __future__ import annotations

import ipaddress
import random
import socket

from metallb_py.apiserver.errors import FieldError
from metallb_py.objects import JSON

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network

NODE_PORT_RANGE = (30000, 32767)
FAMILY = {4: "IPv4", 6: "IPv6"}


class IPAllocator:
    """Hands out addresses from one CIDR; the first (.1) is skipped for the `kubernetes` service
    only by being allocated first, as the real allocator reserves nothing else.

    Addresses are parsed and (IPv4) printed with the C library, not `ipaddress`: every Service
    write reserves, allocates or releases some, and `ipaddress` took most of that time. The
    strings were validated before they get here (`_given_families`, or a stored object)."""

    def __init__(self, net: IPNet) -> None:
        self.net = net
        self.used: set[int] = set()
        self.base = int(net.network_address)
        self.size = min(net.num_addresses, 1 << 24)
        self.next = 1
        self.af = socket.AF_INET if net.version == 4 else socket.AF_INET6
        self.width = 4 if net.version == 4 else 16

    def family(self) -> str:
        return FAMILY[self.net.version]

    def _offset(self, ip: str) -> int | None:
        """`ip`'s place in the range, or None when it is not an address of the range."""
        try:
            n = int.from_bytes(socket.inet_pton(self.af, ip), "big") - self.base
        except (OSError, TypeError, ValueError):
            return None
        return n if 0 <= n < self.net.num_addresses else None

    def reserve(self, ip: str) -> bool:
        n = self._offset(ip)
        if n is None or n in self.used:
            return False
        self.used.add(n)
        return True

    def release(self, ip: str) -> None:
        n = self._offset(ip)
        if n is not None:
            self.used.discard(n)

    def allocate(self) -> str | None:
        # Skip network and (for IPv4) broadcast addresses.
        last = self.size - 2 if self.net.version == 4 else self.size - 1
        for _ in range(self.size):
            n = self.next
            self.next = self.next + 1 if self.next < last else 1
            if n not in self.used:
                self.used.add(n)
                if self.width == 4:
                    return socket.inet_ntop(socket.AF_INET, (self.base + n).to_bytes(4, "big"))
                # IPv6 text as the real server prints it (the C library differs for some).
                return str(ipaddress.ip_address(self.base + n))
        return None


class ServiceAllocator:
    def __init__(self, cidrs: list[str]) -> None:
        self.allocators: list[IPAllocator] = []
        for c in cidrs:
            net = ipaddress.ip_network(c, strict=False)
            if any(a.net.version == net.version for a in self.allocators):
                raise ValueError(f"more than one service CIDR of family IPv{net.version}")
            self.allocators.append(IPAllocator(net))
        self.node_ports: set[int] = set()

    def by_family(self, family: str) -> IPAllocator | None:
        for a in self.allocators:
            if a.family() == family:
                return a
        return None

    def families(self) -> list[str]:
        return [a.family() for a in self.allocators]

    # -- bookkeeping for objects loaded from storage, and deletions ------------------------------
    def adopt(self, svc: JSON) -> None:
        ips, ports = _held(svc)
        for ip in ips:
            for a in self.allocators:
                a.reserve(ip)
        self.node_ports.update(ports)

    def release(self, svc: JSON) -> None:
        ips, ports = _held(svc)
        for ip in ips:
            for a in self.allocators:
                a.release(ip)
        self.node_ports.difference_update(ports)

    def _node_port(self) -> int | None:
        lo, hi = NODE_PORT_RANGE
        if len(self.node_ports) >= hi - lo + 1:
            return None
        while True:
            n = random.randint(lo, hi)
            if n not in self.node_ports:
                self.node_ports.add(n)
                return n

    # -- defaulting and validation -----------------------------------------------------------------
    def prepare(self, svc: JSON, old: JSON | None) -> list[FieldError]:
        """Default and validate `svc` in place (it is owned by the caller). On success the
        addresses and ports it holds are reserved; on failure nothing is."""
        spec = svc.setdefault("spec", {})
        errs: list[FieldError] = []
        stype = spec.setdefault("type", "ClusterIP")
        if stype not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
            return [
                FieldError(
                    "spec.type",
                    "Unsupported value",
                    'supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
                    stype,
                )
            ]
        spec.setdefault("sessionAffinity", "None")
        ports = spec.get("ports") or []
        if not isinstance(ports, list):
            return [FieldError("spec.ports", "Invalid value", "must be a list", ports)]
        names: set[str] = set()
        seen: set[tuple[int, str]] = set()
        for i, p in enumerate(ports):
            if not isinstance(p, dict):
                errs.append(FieldError(f"spec.ports[{i}]", "Invalid value", "must be an object", p))
                continue
            p.setdefault("protocol", "TCP")
            if p["protocol"] not in ("TCP", "UDP", "SCTP"):
                errs.append(
                    FieldError(
                        f"spec.ports[{i}].protocol",
                        "Unsupported value",
                        'supported values: "SCTP", "TCP", "UDP"',
                        p["protocol"],
                    )
                )
            port = p.get("port")
            if not isinstance(port, int) or not 1 <= port <= 65535:
                errs.append(
                    FieldError(
                        f"spec.ports[{i}].port",
                        "Invalid value",
                        "must be between 1 and 65535, inclusive",
                        port,
                    )
                )
                continue
            if stype != "ExternalName" and spec.get("clusterIP") != "None":
                p.setdefault("targetPort", port)
            if len(ports) > 1 and not p.get("name"):
                errs.append(FieldError(f"spec.ports[{i}].name", "Required value"))
            if p.get("name"):
                if p["name"] in names:
                    errs.append(
                        FieldError(f"spec.ports[{i}].name", "Duplicate value", "", p["name"])
                    )
                names.add(p["name"])
            if (port, p["protocol"]) in seen:
                errs.append(
                    FieldError(
                        f"spec.ports[{i}]",
                        "Duplicate value",
                        "",
                        {"port": port, "protocol": p["protocol"]},
                    )
                )
            seen.add((port, p["protocol"]))
        if stype == "ExternalName":
            if not spec.get("externalName"):
                errs.append(FieldError("spec.externalName", "Required value"))
            for k in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                if old is None or (old.get("spec") or {}).get("type") != "ExternalName":
                    spec.pop(k, None)
            return errs
        if not ports and spec.get("clusterIP") != "None":
            errs.append(FieldError("spec.ports", "Required value"))
        if stype in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if stype == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        spec.setdefault("internalTrafficPolicy", "Cluster")
        errs += self._immutables(spec, old)
        if errs:
            return errs
        errs += self._cluster_ips(spec, old)
        if errs:
            return errs
        return self._node_ports(spec, old)

    def _immutables(self, spec: JSON, old: JSON | None) -> list[FieldError]:
        if old is None:
            return []
        ospec = old.get("spec") or {}
        if ospec.get("type") == "ExternalName":
            return []
        errs = []
        for key in ("clusterIP",):
            if key in spec and spec[key] not in ("", None) and spec[key] != ospec.get(key):
                errs.append(
                    FieldError(f"spec.{key}", "Invalid value", "field is immutable", spec[key])
                )
        new_ips = spec.get("clusterIPs")
        old_ips = ospec.get("clusterIPs") or []
        if new_ips and old_ips and new_ips[0] != old_ips[0]:
            errs.append(
                FieldError(
                    "spec.clusterIPs[0]", "Invalid value", "may not change once set", new_ips[0]
                )
            )
        fams = spec.get("ipFamilies")
        ofams = ospec.get("ipFamilies") or []
        if fams and ofams and fams[0] != ofams[0]:
            errs.append(
                FieldError(
                    "spec.ipFamilies[0]", "Invalid value", "may not change once set", fams[0]
                )
            )
        return errs

    def _cluster_ips(self, spec: JSON, old: JSON | None) -> list[FieldError]:
        """Cluster IPs of a created Service, or the old ones of an updated Service."""
        ospec = (old or {}).get("spec") or {}
        if old is not None and ospec.get("clusterIPs") and ospec.get("type") != "ExternalName":
            err = self._keep_cluster_ips(spec, ospec)
        else:
            err = self._new_cluster_ips(spec)
        return [] if err is None else [err]

    def _keep_cluster_ips(self, spec: JSON, ospec: JSON) -> FieldError | None:
        """Keep what was allocated; only a change of policy may add or drop the second family."""
        spec.setdefault("clusterIP", ospec.get("clusterIP"))
        if not spec.get("clusterIPs"):
            spec["clusterIPs"] = list(ospec["clusterIPs"])
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = list(ospec.get("ipFamilies") or [])
        spec.setdefault("ipFamilyPolicy", ospec.get("ipFamilyPolicy", "SingleStack"))
        if spec.get("clusterIP") == "None":
            return None
        want = self._policy_families(spec["ipFamilies"], spec["ipFamilyPolicy"])
        if isinstance(want, FieldError):
            return want
        have = list(spec["ipFamilies"])
        ips = list(spec["clusterIPs"])
        for fam in want[len(have) :]:
            a = self.by_family(fam)
            ip = a.allocate() if a else None
            if ip is None:
                msg = f"failed to allocate an IP of family {fam}"
                return FieldError("spec.clusterIPs", "Invalid value", msg, ips)
            ips.append(ip)
            have.append(fam)
        for ip in ips[len(want) :]:
            for a in self.allocators:
                a.release(ip)
        spec["clusterIPs"], spec["ipFamilies"] = ips[: len(want)], have[: len(want)]
        return None

    def _new_cluster_ips(self, spec: JSON) -> FieldError | None:
        """Check the addresses asked for, settle the families, then reserve and allocate."""
        given = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        if spec.get("clusterIP") and spec.get("clusterIPs") and spec["clusterIP"] != given[0]:
            msg = "first value must match `clusterIP`"
            return FieldError("spec.clusterIPs", "Invalid value", msg, spec["clusterIPs"])
        if given == ["None"] or spec.get("clusterIP") == "None":
            self._headless(spec)
            return None
        families = self._given_families(given, list(spec.get("ipFamilies") or []))
        if isinstance(families, FieldError):
            return families
        policy = spec.get("ipFamilyPolicy")
        if policy is None:
            policy = "SingleStack" if len(families) <= 1 and len(given) <= 1 else "RequireDualStack"
            spec["ipFamilyPolicy"] = policy
        if policy not in ("SingleStack", "PreferDualStack", "RequireDualStack"):
            allowed = '"PreferDualStack", "RequireDualStack", "SingleStack"'
            return FieldError("spec.ipFamilyPolicy", "Unsupported value", allowed, policy)
        families = self._policy_families(families or self.families()[:1], policy)
        if isinstance(families, FieldError):
            return families
        if policy == "SingleStack" and len(given) > 1:
            msg = "must be a single IP with ipFamilyPolicy SingleStack"
            return FieldError("spec.clusterIPs", "Invalid value", msg, given)
        for fam in families:
            if self.by_family(fam) is None:
                msg = f"{fam} is not configured on this cluster"
                return FieldError("spec.ipFamilies", "Invalid value", msg, families)
        ips = self._reserve(families, given)
        if isinstance(ips, FieldError):
            return ips
        spec["clusterIP"] = ips[0]
        spec["clusterIPs"] = ips
        spec["ipFamilies"] = families
        return None

    def _headless(self, spec: JSON) -> None:
        spec["clusterIP"] = "None"
        spec["clusterIPs"] = ["None"]
        spec.setdefault("ipFamilyPolicy", spec.get("ipFamilyPolicy") or "SingleStack")
        if not spec.get("ipFamilies"):
            fams = self.families()
            spec["ipFamilies"] = fams if spec["ipFamilyPolicy"] != "SingleStack" else fams[:1]

    @staticmethod
    def _given_families(given: list[str], families: list[str]) -> list[str] | FieldError:
        """spec.ipFamilies completed by the families of the addresses asked for, which must be
        addresses and agree with the families already listed."""
        for i, ip in enumerate(given):
            try:
                fam = FAMILY[ipaddress.ip_address(ip).version]
            except ValueError:
                msg = "must be a valid IP address"
                return FieldError(f"spec.clusterIPs[{i}]", "Invalid value", msg, ip)
            if i < len(families) and families[i] != fam:
                msg = "must match the family of clusterIPs"
                return FieldError("spec.ipFamilies", "Invalid value", msg, families)
            if i >= len(families):
                families.append(fam)
        return families

    def _policy_families(self, families: list[str], policy: str) -> list[str] | FieldError:
        """The families a policy gives: dual stack adds the cluster's other family (and
        RequireDualStack fails without one); SingleStack keeps the first."""
        if policy not in ("PreferDualStack", "RequireDualStack"):
            return list(families[:1])
        fams = list(families)
        fams += [f for f in self.families() if f not in fams]
        if policy == "RequireDualStack" and len(fams) < 2:
            msg = "this cluster is not configured for dual-stack services"
            return FieldError("spec.ipFamilyPolicy", "Invalid value", msg, policy)
        return fams[:2]

    def _reserve(self, families: list[str], given: list[str]) -> list[str] | FieldError:
        """One address per family: the one asked for if it is free and in range, else the next
        free one; all or nothing."""
        ips: list[str] = []
        reserved: list[tuple[IPAllocator, str]] = []
        for i, fam in enumerate(families):
            a = self.by_family(fam)
            assert a is not None
            if i < len(given):
                ip: str | None = given[i] if a.reserve(given[i]) else None
                if ip is None:
                    why = (
                        "provided IP is already allocated"
                        if ipaddress.ip_address(given[i]) in a.net
                        else f"the provided IP ({given[i]}) is not in the valid range. The "
                        f"range of valid IPs is {a.net}"
                    )
                    err = FieldError(f"spec.clusterIPs[{i}]", "Invalid value", why, given[i])
            else:
                ip = a.allocate()
                if ip is None:
                    err = FieldError(
                        "spec.clusterIPs", "Invalid value", f"range is full for {fam}", ips
                    )
            if ip is None:
                for holder, held in reserved:
                    holder.release(held)
                return err
            reserved.append((a, ip))
            ips.append(ip)
        return ips

    def _node_ports(self, spec: JSON, old: JSON | None) -> list[FieldError]:
        stype = spec["type"]
        ospec = (old or {}).get("spec") or {}
        old_ports = {
            (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
            for p in ospec.get("ports") or []
        }
        want = stype == "NodePort" or (
            stype == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True)
        )
        errs: list[FieldError] = []
        for i, p in enumerate(spec.get("ports") or []):
            prev = old_ports.get((p.get("port"), p.get("protocol")))
            np = p.get("nodePort")
            if not want and stype not in ("NodePort", "LoadBalancer"):
                if np:
                    p.pop("nodePort", None)
                continue
            if np:
                if np == prev:
                    continue
                lo, hi = NODE_PORT_RANGE
                if not isinstance(np, int) or not lo <= np <= hi:
                    errs.append(
                        FieldError(
                            f"spec.ports[{i}].nodePort",
                            "Invalid value",
                            f"provided port is not in the valid range. The range "
                            f"of valid ports is {lo}-{hi}",
                            np,
                        )
                    )
                elif np in self.node_ports:
                    errs.append(
                        FieldError(
                            f"spec.ports[{i}].nodePort",
                            "Invalid value",
                            "provided port is already allocated",
                            np,
                        )
                    )
                else:
                    self.node_ports.add(np)
            elif prev:
                p["nodePort"] = prev
            elif want:
                got = self._node_port()
                if got is None:
                    errs.append(
                        FieldError(
                            f"spec.ports[{i}].nodePort", "Invalid value", "range is full", np
                        )
                    )
                else:
                    p["nodePort"] = got
        if (
            stype == "LoadBalancer"
            and spec.get("externalTrafficPolicy") == "Local"
            and not spec.get("healthCheckNodePort")
        ):
            hc = ospec.get("healthCheckNodePort") or self._node_port()
            if hc:
                spec["healthCheckNodePort"] = hc
        return errs


def _held(svc: JSON) -> tuple[list[str], list[int]]:
    """The cluster IPs and node ports (the health-check one included) a stored Service holds."""
    spec = svc.get("spec") or {}
    ips = [ip for ip in spec.get("clusterIPs") or [] if ip and ip != "None"]
    ports = [int(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")]
    if spec.get("healthCheckNodePort"):
        ports.append(int(spec["healthCheckNodePort"]))
    return ips, ports
