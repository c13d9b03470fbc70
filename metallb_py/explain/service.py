"""Why a Service has or lacks an IP, and who announces it: pure functions of a Snapshot.

Nothing here restates a rule. The configuration goes through the components' parser; the
controller's allocation state is rebuilt the way a restarted controller rebuilds it (every IP
recorded in Service status adopted, holders of more IPs and older claims first) and asked with
the allocator's own `assign` and `pool_verdicts`; each node's announcement comes from the
speaker's `desired_state`, and the layer-2 election from `l2_skip_reason`, `l2_weight` and
`l2.election.rank`. The result is what the components decide, next to what their status
objects say they did.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from l2 import election
from metallb_py.allocator import Allocator, Outcome, ServiceRequest, request_from_service
from metallb_py.allocator.service import ANN_ALLOCATED_FROM
from metallb_py.config import Config, Pool, parse
from metallb_py.config.problems import Problem
from metallb_py.controller.convert import pool_specs
from metallb_py.explain.snapshot import Snapshot, ingress, key_of, sharing_group
from metallb_py.objects import JSON
from metallb_py.speaker import desired as dz

MAX_EVENTS = 5  # newest events shown per service (text and JSON)

# Why a node is not a layer-2 candidate / does not announce, in words.
REASON_TEXT = {
    dz.NODE_NETWORK_UNAVAILABLE: "node condition NetworkUnavailable is True",
    dz.NODE_EXCLUDED: f"node has the label {dz.EXCLUDE_LABEL}",
    dz.NODE_NOT_READY: "node is not Ready",
    dz.NOT_LIVE_MEMBER: "no ready speaker Pod on the node",
    dz.NOT_SELECTED_BY_ADVERTISEMENT: "no L2Advertisement selecting the service selects the node",
    dz.NO_LOCAL_ENDPOINTS: "externalTrafficPolicy Local and no ready endpoint on the node",
    dz.NO_ENDPOINTS: "the service has no ready endpoint",
    dz.NO_MATCHING_ADVERTISEMENT: "no advertisement for the pool selects both node and service",
    dz.NOT_OWNER: "no advertisement for the pool selects the node",
    dz.CONFLICTING_ADVERTISEMENTS: "advertisements give one peer different localPrefs",
    dz.SHARED_IP_WITH_SERVICE_SELECTOR: "a shared IP cannot use serviceSelectors",
    dz.IP_NOT_ALLOWED: "no pool holds the IP",
}


def reason_text(code: str) -> str:
    return f"{code} ({REASON_TEXT[code]})" if code in REASON_TEXT else code


# ---- shared state ------------------------------------------------------------------------------


class Cluster:
    """A Snapshot with the configuration parsed and the allocation state rebuilt, shared by the
    explanation of one service and the overview."""

    def __init__(
        self, snap: Snapshot, lb_class: str = "", options: dz.Options | None = None
    ) -> None:
        self.snap = snap
        self.lb_class = lb_class
        # The speakers' --ignore-exclude-lb and --l2-require-node-ready, if they use them.
        self.options = options or dz.Options(lb_class=lb_class)
        objects = [*snap.config_objects, *snap.namespaces.values()]
        self.config, self.problems = parse(
            objects, namespace=snap.namespace, lenient_references=not snap.secrets_readable
        )
        self.pool_error = ""
        self.allocator = self._rebuild()
        self.members = speaker_nodes(snap.speaker_pods)

    def handles(self, svc: JSON) -> bool:
        spec = svc.get("spec") or {}
        return spec.get("type") == "LoadBalancer" and dz.handles(svc, self.lb_class)

    def request(self, svc: JSON) -> ServiceRequest:
        ns = (svc.get("metadata") or {}).get("namespace") or "default"
        labels = ((self.snap.namespaces.get(ns) or {}).get("metadata") or {}).get("labels")
        return request_from_service(svc, labels or {})

    def _rebuild(self) -> Allocator:
        alloc = Allocator()
        try:
            alloc.set_pools(pool_specs(self.config))
        except ValueError as exc:
            self.pool_error = str(exc)
        holders = [s for s in self.snap.services.values() if ingress(s) and self.handles(s)]
        holders.sort(key=lambda s: (-len(ingress(s)), _created(s), key_of(s)))
        for svc in holders:
            alloc.adopt(self.request(svc), ingress(svc))
        return alloc

    def pool_of(self, svc: JSON) -> Pool | None:
        """The pool the speaker announces the service's IPs for (desired.py's rule)."""
        try:
            addrs = [ipaddress.ip_address(ip) for ip in ingress(svc)]
        except ValueError:
            return None
        pool = next((p for p in self.config.pools if all(p.contains(a) for a in addrs)), None)
        if pool is None:
            named = ((svc.get("metadata") or {}).get("annotations") or {}).get(ANN_ALLOCATED_FROM)
            pool = self.config.pool(str(named)) if named else None
        return pool

    def inputs(self, group: Iterable[str], node: str) -> dz.Inputs:
        keys = sorted(group)
        return dz.Inputs(
            config=self.config,
            services={k: self.snap.services[k] for k in keys if k in self.snap.services},
            endpoint_slices={k: self.snap.slices.get(k, []) for k in keys},
            nodes=self.snap.nodes,
            node=node,
            members=self.members,
            options=self.options,
        )

    def assign_error(self, svc: JSON) -> str:
        """What the controller says when it tries to allocate for `svc` now ("" if it could)."""
        result = self._scratch().assign(self.request(svc))
        return result.error if result.outcome is Outcome.FAILED else ""

    def _scratch(self) -> Allocator:
        return self._rebuild()


def _created(svc: JSON) -> str:
    return str((svc.get("metadata") or {}).get("creationTimestamp") or "")


def speaker_nodes(pods: list[JSON]) -> frozenset[str] | None:
    """Nodes with a ready speaker Pod; None when there are no speaker Pods at all (speakers run
    outside Kubernetes: every Node counts, as for a speaker without membership)."""
    if not pods:
        return None
    ready: set[str] = set()
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        conds = (pod.get("status") or {}).get("conditions") or []
        if node and any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
            ready.add(str(node))
    return frozenset(ready)


# ---- one service -------------------------------------------------------------------------------


def explain(cluster: Cluster, key: str) -> JSON:
    """The whole explanation of one service, as JSON-ready data (text is rendered from it)."""
    snap = cluster.snap
    svc = snap.services[key]
    out: JSON = {"service": key, "allocation": explain_allocation(cluster, key)}
    out["layer2"] = explain_layer2(cluster, key) if ingress(svc) else None
    out["bgp"] = explain_bgp(cluster, key) if ingress(svc) else None
    events = sorted(snap.events.get(key, []), key=_event_time)
    out["events"] = [
        {
            "type": e.get("type") or "",
            "reason": e.get("reason") or "",
            "message": e.get("message") or "",
            "count": int(e.get("count") or 1),
            "source": (e.get("source") or {}).get("component") or e.get("reportingComponent") or "",
        }
        for e in events[-MAX_EVENTS:]
    ]
    out["problems"] = _service_problems(out)
    out["ok"] = out["allocation"]["state"] == "assigned" and not out["problems"]
    return out


def _event_time(e: JSON) -> str:
    return str(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or "")


def explain_allocation(cluster: Cluster, key: str) -> JSON:
    svc = cluster.snap.services[key]
    spec = svc.get("spec") or {}
    ips = ingress(svc)
    req = cluster.request(svc)
    out: JSON = {
        "ips": ips,
        "pool": None,
        "requestedIPs": list(req.requested_ips),
        "requestedPool": req.requested_pool,
        "sharingKey": req.sharing_key or None,
        "pools": [],
    }
    if spec.get("type") != "LoadBalancer":
        out["state"] = "notLoadBalancer"
        out["summary"] = f"type {spec.get('type') or 'ClusterIP'}: MetalLB serves LoadBalancer only"
        return out
    if not dz.handles(svc, cluster.lb_class):
        out["state"] = "otherClass"
        out["summary"] = (
            f"loadBalancerClass {spec.get('loadBalancerClass')!r} is left to another controller"
        )
        return out
    alloc = cluster._scratch()
    if ips:
        view = alloc.allocation(key)
        if view is not None and not view.orphaned:
            out.update(state="assigned", pool=view.pool, summary=f"from pool {view.pool}")
            return out
        if view is not None:
            out.update(
                state="orphaned",
                summary=f"kept, but no pool allows it any more: {view.orphan_reason}",
            )
            return out
        result = alloc.assign(req, ips)
        out.update(
            state="conflict",
            summary=f"the controller will not keep it: {result.clear_detail or result.error}",
        )
        return out
    if not cluster.config.pools:
        out.update(state="pending", summary="no IPAddressPool is configured")
        return out
    verdicts = alloc.pool_verdicts(req)
    out["pools"] = [{"pool": v.pool, "usable": v.usable, "reason": v.reason} for v in verdicts]
    result = alloc.assign(req)
    if result.outcome is Outcome.ALLOCATED:
        summary = (
            f"the controller would assign {', '.join(result.ips)} from pool {result.pool} now "
            "but has not: is it running and leading?"
        )
    elif (
        req.requested_ips
        and verdicts
        and all(not v.usable for v in verdicts)
        and all(v.reason.startswith("does not contain") for v in verdicts)
    ):
        summary = f"requested {', '.join(req.requested_ips)} is outside every pool"
    else:
        summary = result.error
    out.update(state="pending", summary=summary)
    return out


def _group(cluster: Cluster, key: str) -> set[str]:
    return {
        k for k in sharing_group(cluster.snap, key) if cluster.handles(cluster.snap.services[k])
    }


def explain_layer2(cluster: Cluster, key: str) -> JSON | None:
    """The layer-2 election for the service's IPs, every node in election order with the reason
    it was skipped, and who reports announcing (ServiceL2Status). None: no L2Advertisement
    covers the pool."""
    snap, config = cluster.snap, cluster.config
    svc = snap.services[key]
    pool = cluster.pool_of(svc)
    if pool is None or not config.l2_advertisements_for(pool.name):
        return None
    announcers = sorted(
        {
            str((o.get("status") or {}).get("node") or ""): _interfaces(o)
            for o in snap.service_objects("l2", key)
        }.items()
    )
    out: JSON = {
        "pool": pool.name,
        "announcedBy": [{"node": n, "interfaces": i} for n, i in announcers],
        "advertisements": [],
        "candidates": [],
        "elected": None,
    }
    ads = [a for a in config.l2_advertisements_for(pool.name) if a.selects_service(dz.labels(svc))]
    out["advertisements"] = [a.name for a in ads]
    if not ads:
        out["summary"] = f"no L2Advertisement for pool {pool.name} selects the service"
        return out
    anywhere, ep_nodes = dz.serving_nodes(snap.slices.get(key, []))
    if not anywhere:
        out["summary"] = "the service has no ready endpoint: nobody announces it"
        return out
    local = dz.is_local_policy(svc)
    group = _group(cluster, key)
    probe = cluster.inputs(group, "")
    nodes = sorted(set(snap.nodes) | set(cluster.members or ()))
    reasons = {n: dz.l2_skip_reason(probe, n, ads, local, ep_nodes) for n in nodes}
    weights = {n: dz.l2_weight(probe, n, ads) for n in nodes if not reasons[n]}
    first_ip = ingress(svc)[0]
    order = election.rank(nodes, first_ip, weights)
    owner: str | None = None
    verdict = ""
    running = next((n for n in order if not reasons[n]), None)
    if running is not None:
        sd = dz.desired_state(cluster.inputs(group, running)).services.get(key)
        if sd is not None:
            owner = sd.l2_owner
            if not sd.layer2.announce and sd.l2_owner is None:
                verdict = sd.layer2.reason
    out["elected"] = owner
    out["candidates"] = [
        {
            "node": n,
            "weight": weights.get(n, 0),
            "skipped": reasons[n] or None,
            "elected": n == owner,
        }
        for n in order
    ]
    if verdict:
        out["summary"] = f"not announced: {reason_text(verdict)}"
    elif owner is None:
        out["summary"] = "no node can announce it"
    return out


def _interfaces(obj: JSON) -> list[str]:
    return [str(i.get("name")) for i in (obj.get("status") or {}).get("interfaces") or []]


def explain_bgp(cluster: Cluster, key: str) -> JSON | None:
    """Per node: announce or why not, and per peer the prefixes with their communities and
    localPref and the session state (BGPSessionState). None: no BGPAdvertisement covers the
    pool."""
    snap, config = cluster.snap, cluster.config
    svc = snap.services[key]
    pool = cluster.pool_of(svc)
    if pool is None or not config.bgp_advertisements_for(pool.name):
        return None
    sessions = {
        (str(s.get("status", {}).get("node")), str(s.get("status", {}).get("peer"))): s.get(
            "status"
        )
        or {}
        for s in snap.sessions
    }
    reported: dict[str, list[str]] = {}
    for obj in snap.service_objects("bgp", key):
        status = obj.get("status") or {}
        reported[str(status.get("node") or "")] = sorted(str(p) for p in status.get("peers") or [])
    group = _group(cluster, key)
    nodes: list[JSON] = []
    for node in sorted(snap.nodes):
        want = dz.desired_state(cluster.inputs(group, node))
        sd = want.services.get(key)
        if sd is None:
            continue
        row: JSON = {
            "node": node,
            "announce": sd.bgp.announce,
            "reason": sd.bgp.reason or None,
            "peers": [],
            "reportedPeers": reported.get(node, []),
        }
        for peer in sorted(want.peers):
            state = sessions.get((node, peer), {})
            prefixes = (sd.routes.get(peer) or {}) if sd.bgp.announce else {}
            row["peers"].append(
                {
                    "peer": peer,
                    "address": state.get("peerAddress") or _peer_address(config, peer),
                    "state": state.get("state") or "Unknown",
                    "lastError": state.get("lastError") or None,
                    "bfd": state.get("bfdState") or None,
                    "prefixes": [
                        {
                            "prefix": prefix,
                            "communities": _communities(attrs.communities, attrs.large_communities),
                            "localPref": attrs.local_pref,
                        }
                        for prefix, attrs in sorted(prefixes.items())
                    ],
                }
            )
        nodes.append(row)
    return {
        "pool": pool.name,
        "advertisements": [
            a.name
            for a in config.bgp_advertisements_for(pool.name)
            if a.selects_service(dz.labels(svc))
        ],
        "announcedBy": [
            {"node": n, "peers": peers} for n, peers in sorted(reported.items()) if peers
        ],
        "nodes": nodes,
    }


def _peer_address(config: Config, name: str) -> str:
    peer = config.peer(name)
    if peer is None:
        return ""
    return str(peer.address) if peer.address is not None else f"interface {peer.interface}"


def _communities(std: Iterable[int], large: Iterable[tuple[int, int, int]]) -> list[str]:
    out = [f"{c >> 16}:{c & 0xFFFF}" for c in std]
    out += [f"large:{a}:{b}:{c}" for a, b, c in large]
    return out


def _service_problems(exp: JSON) -> list[str]:
    """What is wrong beyond the allocation (which the first line already states)."""
    out: list[str] = []
    alloc = exp["allocation"]
    l2, bgp = exp["layer2"], exp["bgp"]
    if alloc["ips"] and l2 is None and bgp is None:
        out.append(f"no L2Advertisement or BGPAdvertisement covers the pool of {alloc['ips'][0]}")
    if l2 is not None:
        announced = [a["node"] for a in l2["announcedBy"]]
        if len(announced) > 1:
            out.append(f"layer 2: more than one node reports announcing: {', '.join(announced)}")
        elected = l2["elected"]
        if elected and announced and elected not in announced:
            out.append(
                f"layer 2: {', '.join(announced)} reports announcing, the election picks {elected}"
            )
        if elected and not announced:
            out.append(f"layer 2: {elected} is elected but reports no announcement (speaker down?)")
    if bgp is not None:
        for row in bgp["nodes"]:
            for peer in row["peers"]:
                if row["announce"] and peer["prefixes"] and peer["state"] != "Established":
                    why = f": {peer['lastError']}" if peer["lastError"] else ""
                    out.append(
                        f"BGP: session {row['node']}/{peer['peer']} is {peer['state']}{why}; "
                        "the prefixes do not reach that peer"
                    )
    return out


# ---- text --------------------------------------------------------------------------------------


def render(exp: JSON) -> list[str]:
    """The explanation as a few lines of text."""
    alloc = exp["allocation"]
    lines: list[str] = []
    if alloc["ips"]:
        lines.append(f"Service {exp['service']}: {', '.join(alloc['ips'])} {alloc['summary']}")
    else:
        lines.append(f"Service {exp['service']}: no IP: {alloc['summary']}")
    asked = []
    if alloc["requestedIPs"]:
        asked.append(f"IPs {', '.join(alloc['requestedIPs'])}")
    if alloc["requestedPool"]:
        asked.append(f"pool {alloc['requestedPool']}")
    if alloc["sharingKey"]:
        asked.append(f"sharing key {alloc['sharingKey']}")
    if asked:
        lines.append(f"  requests: {'; '.join(asked)}")
    for v in alloc["pools"]:
        verdict = "could allocate" if v["usable"] else f"refused: {v['reason']}"
        lines.append(f"  pool {v['pool']}: {verdict}")
    lines += _render_l2(exp["layer2"])
    lines += _render_bgp(exp["bgp"])
    if alloc["ips"] and exp["layer2"] is None and exp["bgp"] is None:
        lines.append("Announced: by nobody (no advertisement covers the pool)")
    if exp["events"]:
        lines.append("Events:")
        for e in exp["events"]:
            count = f" (x{e['count']})" if e["count"] > 1 else ""
            lines.append(f"  {e['type']} {e['reason']}{count}: {e['message']}")
    if exp["problems"]:
        lines.append("Problems:")
        lines += [f"  - {p}" for p in exp["problems"]]
    return lines


def _render_l2(l2: JSON | None) -> list[str]:
    if l2 is None:
        return []
    if l2["announcedBy"]:
        who = ", ".join(
            f"{a['node']} (interfaces {', '.join(a['interfaces'])})"
            if a["interfaces"]
            else a["node"]
            for a in l2["announcedBy"]
        )
        lines = [f"Layer 2: announced by {who}"]
    else:
        lines = ["Layer 2: announced by nobody"]
    if "summary" in l2:
        lines.append(f"  {l2['summary']}")
    if l2["candidates"]:
        lines.append(f"  election ({', '.join(l2['advertisements'])}), best first:")
        for c in l2["candidates"]:
            if c["elected"]:
                verdict = "elected"
            elif c["skipped"]:
                verdict = f"skipped: {reason_text(c['skipped'])}"
            else:
                verdict = "candidate (standby)"
            weight = f" weight {c['weight']}" if c["weight"] else ""
            lines.append(f"    {c['node']}{weight}: {verdict}")
    return lines


def _render_bgp(bgp: JSON | None) -> list[str]:
    if bgp is None:
        return []
    who = "; ".join(f"{a['node']} to {', '.join(a['peers'])}" for a in bgp["announcedBy"])
    lines = [f"BGP: announced by {who or 'nobody'}"]
    quiet: dict[str, list[str]] = {}
    for row in bgp["nodes"]:
        if not row["announce"]:
            quiet.setdefault(row["reason"] or "", []).append(row["node"])
            continue
        if not row["peers"]:
            quiet.setdefault("no BGPPeer selects the node", []).append(row["node"])
            continue
        for peer in row["peers"]:
            state = peer["state"]
            if peer["lastError"] and state != "Established":
                state += f", last error: {peer['lastError']}"
            routes = "; ".join(_route_text(p) for p in peer["prefixes"]) or "nothing"
            lines.append(f"  {row['node']} -> {peer['peer']} ({state}): {routes}")
    for reason, nodes in quiet.items():
        lines.append(f"  {', '.join(nodes)}: not announcing: {reason_text(reason)}")
    return lines


def _route_text(p: Mapping[str, Any]) -> str:
    text = str(p["prefix"])
    if p["communities"]:
        text += f" communities {' '.join(p['communities'])}"
    if p["localPref"] is not None:
        text += f" localPref {p['localPref']}"
    return text


def config_problems(problems: list[Problem]) -> list[str]:
    return [p.line() for p in problems if p.is_error]
