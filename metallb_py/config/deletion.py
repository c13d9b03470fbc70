"""What deleting an object would break: a BFDProfile or Community alias in use cannot go (errors);
a pool that services use, or a peer that advertisements name, can but warns."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from metallb_py.config.addresses import AddressError, parse_entry
from metallb_py.config.objects import DEFAULT_NAMESPACE, envelope
from metallb_py.config.problems import Problem

ALLOCATED_FROM_POOL = "metallb.io/ip-allocated-from-pool"


def deletion_problems(
    victim: dict[str, Any], others: Iterable[dict[str, Any]], namespace: str = DEFAULT_NAMESPACE
) -> list[Problem]:
    """Problems of deleting `victim` given the other objects (metallb.io objects and Services)."""
    res, _ = envelope(victim, 0, namespace)
    if res is None:
        return []
    objs = [o for o in others if isinstance(o, dict)]
    out: list[Problem] = []
    name = res.name

    def meta_name(o: dict[str, Any]) -> str:
        return str((o.get("metadata") or {}).get("name") or "")

    if res.kind == "BFDProfile":
        users = sorted(
            meta_name(o)
            for o in objs
            if o.get("kind") == "BGPPeer" and (o.get("spec") or {}).get("bfdProfile") == name
        )
        for user in users:
            out.append(
                Problem(
                    res.ref,
                    "-",
                    f"failed to delete BFDProfile {name}, used by BGPPeer {user}",
                    "bfd-profile-in-use",
                )
            )
    elif res.kind == "Community":
        aliases = {
            str(c.get("name")) for c in (res.spec.get("communities") or []) if isinstance(c, dict)
        }
        for o in objs:
            if o.get("kind") != "BGPAdvertisement":
                continue
            used = aliases & {str(c) for c in (o.get("spec") or {}).get("communities") or []}
            for alias in sorted(used):
                out.append(
                    Problem(
                        res.ref,
                        "spec.communities",
                        f"failed to delete Community {name}: alias {alias!r} is used by "
                        f"BGPAdvertisement {meta_name(o)}",
                        "community-in-use",
                    )
                )
    elif res.kind in ("IPAddressPool", "AddressPool"):
        ranges = []
        for entry in res.spec.get("addresses") or []:
            try:
                ranges.append(parse_entry(str(entry)))
            except AddressError:
                continue
        users = []
        for svc in objs:
            if svc.get("kind") != "Service":
                continue
            meta = svc.get("metadata") or {}
            ann = meta.get("annotations") or {}
            ips = []
            for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
                try:
                    ips.append(ipaddress.ip_address(str(ing.get("ip", ""))))
                except ValueError:
                    continue
            if ann.get(ALLOCATED_FROM_POOL) == name or any(ip in r for ip in ips for r in ranges):
                users.append(f"{meta.get('namespace', '')}/{meta.get('name', '')}")
        if users:
            shown = ", ".join(sorted(users)[:10]) + (" ..." if len(users) > 10 else "")
            out.append(
                Problem(
                    res.ref,
                    "-",
                    f"pool {name} is used by {len(users)} service(s) ({shown}); their IPs are "
                    "no longer managed by any pool",
                    "pool-in-use",
                    "warning",
                )
            )
    elif res.kind == "BGPPeer":
        for o in objs:
            if o.get("kind") == "BGPAdvertisement" and name in (
                (o.get("spec") or {}).get("peers") or []
            ):
                out.append(
                    Problem(
                        res.ref,
                        "-",
                        f"BGPPeer {name} is named by BGPAdvertisement {meta_name(o)}, which "
                        "will no longer advertise to it",
                        "peer-in-use",
                        "warning",
                    )
                )
    return out
