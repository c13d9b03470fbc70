"""`kubectl metallb status`: pools and usage, BGP sessions, layer-2 announcers and every problem
on one screen, from the same rebuilt state as `explain`."""

from __future__ import annotations

from collections.abc import Sequence

from metallb_py.allocator import Outcome
from metallb_py.explain.service import Cluster
from metallb_py.explain.snapshot import ingress, name_of
from metallb_py.objects import JSON


def overview(cluster: Cluster) -> JSON:
    snap = cluster.snap
    stats = cluster.allocator.stats()
    pools = []
    problems: list[str] = []
    for pool in cluster.config.pools:
        s = stats.get(pool.name)
        if s is None:
            continue
        pools.append(
            {
                "pool": pool.name,
                "autoAssign": pool.auto_assign,
                "ipv4": {"used": s.in_use_v4, "total": s.addresses_v4},
                "ipv6": {"used": s.in_use_v6, "total": s.addresses_v6},
                "services": s.services,
            }
        )
        if s.addresses and s.in_use >= s.addresses:
            problems.append(f"pool {pool.name} is full ({s.in_use} of {s.addresses} in use)")
    if cluster.pool_error:
        problems.append(f"pools unusable: {cluster.pool_error}")

    states = []
    for obj in sorted(snap.config_states, key=name_of):
        status = obj.get("status") or {}
        result = str(status.get("result") or "Unknown")
        states.append({"name": name_of(obj), "result": result})
        if result != "Valid":
            for line in str(status.get("errorSummary") or "").splitlines() or ["(no summary)"]:
                problems.append(f"ConfigurationState {name_of(obj)} {result}: {line}")

    handled = sorted((k, s) for k, s in snap.services.items() if cluster.handles(s))
    scratch = cluster._scratch()
    pending = sorted(
        (s for k, s in handled if not ingress(s)),
        key=lambda s: str((s.get("metadata") or {}).get("creationTimestamp") or ""),
    )
    waiting: list[str] = []
    for svc in pending:  # in the controller's order: an earlier one may take the last address
        outcome = scratch.assign(cluster.request(svc))
        meta = svc.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        if outcome.outcome is Outcome.FAILED:
            waiting.append(f"{key} has no IP: {outcome.error}")
        else:
            waiting.append(f"{key} has no IP yet (the controller could assign one)")
    problems += sorted(waiting)
    orphans = [v for v in cluster.allocator.allocations() if v.orphaned]
    for view in orphans:
        problems.append(f"{view.key} keeps {', '.join(view.ips)} outside every pool")

    sessions = []
    for obj in sorted(snap.sessions, key=name_of):
        st = obj.get("status") or {}
        row = {
            "node": st.get("node") or "",
            "peer": st.get("peer") or "",
            "address": st.get("peerAddress") or "",
            "state": st.get("state") or "Unknown",
            "since": st.get("establishedSince") or None,
            "prefixesSent": int(st.get("prefixesSent") or 0),
            "prefixesReceived": int(st.get("prefixesReceived") or 0),
            "bfd": st.get("bfdState") or "",
            "lastError": st.get("lastError") or None,
        }
        sessions.append(row)
        if row["state"] != "Established":
            why = f": {row['lastError']}" if row["lastError"] else ""
            problems.append(f"BGP session {row['node']}/{row['peer']} is {row['state']}{why}")
        if row["bfd"] in ("Down", "Init", "AdminDown"):
            problems.append(f"BFD for {row['node']}/{row['peer']} is {row['bfd']}")

    l2_nodes: dict[str, int] = {}
    l2_by_service: dict[str, list[str]] = {}
    for obj in snap.l2_statuses:
        st = obj.get("status") or {}
        node = str(st.get("node") or "")
        l2_nodes[node] = l2_nodes.get(node, 0) + 1
        svc_key = f"{st.get('serviceNamespace')}/{st.get('serviceName')}"
        l2_by_service.setdefault(svc_key, []).append(node)
    for svc_key, nodes in sorted(l2_by_service.items()):
        if len(nodes) > 1:
            problems.append(f"{svc_key}: announced over layer 2 by {', '.join(sorted(nodes))}")
    bgp_services = {
        f"{(o.get('status') or {}).get('serviceNamespace')}/"
        f"{(o.get('status') or {}).get('serviceName')}"
        for o in snap.bgp_statuses
    }
    with_ip = [k for k, s in handled if ingress(s)]
    for key in with_ip:
        if key not in l2_by_service and key not in bgp_services:
            problems.append(f"{key} has an IP that no node reports announcing")
    return {
        "namespace": snap.namespace,
        "configuration": states,
        "pools": pools,
        "services": {"loadBalancer": len(handled), "withIP": len(with_ip), "pending": len(pending)},
        "bgpSessions": sessions,
        "layer2": {"announcements": dict(sorted(l2_nodes.items()))},
        "problems": problems,
    }


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    ]


def _usage(fam: JSON) -> str:
    return f"{fam['used']}/{fam['total']}" if fam["total"] else "-"


def render(view: JSON) -> list[str]:
    states = view["configuration"]
    if states:
        bad = [s for s in states if s["result"] != "Valid"]
        word = "Invalid" if bad else "Valid"
        lines = [f"Configuration: {word} ({', '.join(s['name'] for s in states)})"]
    else:
        lines = ["Configuration: no ConfigurationState (are the components running?)"]
    if view["pools"]:
        lines.append("Pools:")
        rows = [["NAME", "IPV4 USED", "IPV6 USED", "SERVICES", "AUTO-ASSIGN"]]
        for p in view["pools"]:
            auto = "yes" if p["autoAssign"] else "no"
            rows.append([p["pool"], _usage(p["ipv4"]), _usage(p["ipv6"]), str(p["services"]), auto])
        lines += _table(rows)
    else:
        lines.append("Pools: none")
    svc = view["services"]
    lines.append(
        f"Services: {svc['loadBalancer']} LoadBalancer, {svc['withIP']} with an IP, "
        f"{svc['pending']} pending"
    )
    if view["bgpSessions"]:
        lines.append("BGP sessions:")
        rows = [["NODE", "PEER", "ADDRESS", "STATE", "SENT", "RECEIVED", "BFD"]]
        for s in view["bgpSessions"]:
            rows.append(
                [
                    s["node"],
                    s["peer"],
                    s["address"],
                    s["state"],
                    str(s["prefixesSent"]),
                    str(s["prefixesReceived"]),
                    s["bfd"],
                ]
            )
        lines += _table(rows)
    counts = view["layer2"]["announcements"]
    if counts:
        parts = ", ".join(f"{node} {n}" for node, n in counts.items())
        lines.append(f"Layer 2 announcements per node: {parts}")
    if view["problems"]:
        lines.append("Problems:")
        lines += [f"  - {p}" for p in view["problems"]]
    else:
        lines.append("Problems: none")
    return lines
