"""`as=Table` responses: the columns `kubectl get` prints, computed by the server as the real one
does (built-in columns for the kinds kubectl users look at, a CRD's additionalPrinterColumns)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from metallb_py.objects import JSON

Column = tuple[str, str, str, int, Callable[[JSON], Any]]  # name, type, format, priority, getter


def human_duration(seconds: float) -> str:
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    y = d // 365
    if y < 8:
        return f"{y}y{d % 365}d" if d % 365 else f"{y}y"
    return f"{y}y"


def age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    return human_duration((datetime.now(UTC) - t).total_seconds())


def _name(o: JSON) -> str:
    return str(o.get("metadata", {}).get("name", ""))


def _age(o: JSON) -> str:
    return age(o.get("metadata", {}).get("creationTimestamp"))


def _svc_external(o: JSON) -> str:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    ips = [
        i.get("ip") or i.get("hostname")
        for i in (status.get("loadBalancer") or {}).get("ingress") or []
    ]
    ips = [i for i in ips if i] + list(spec.get("externalIPs") or [])
    stype = spec.get("type", "ClusterIP")
    if stype == "LoadBalancer":
        return ",".join(ips) if ips else "<pending>"
    if stype == "ExternalName":
        return str(spec.get("externalName", ""))
    return ",".join(ips) if ips else "<none>"


def _svc_ports(o: JSON) -> str:
    parts = []
    for p in (o.get("spec") or {}).get("ports") or []:
        text = str(p.get("port"))
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        parts.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(parts) if parts else "<none>"


def _selector(o: JSON) -> str:
    sel = (o.get("spec") or {}).get("selector") or {}
    return ",".join(f"{k}={v}" for k, v in sel.items()) if sel else "<none>"


def _pod_ready(o: JSON) -> str:
    statuses = (o.get("status") or {}).get("containerStatuses") or []
    total = len((o.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


def _node_status(o: JSON) -> str:
    for c in (o.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return "Ready" if c.get("status") == "True" else "NotReady"
    return "Unknown"


def _deploy_ready(o: JSON) -> str:
    st = o.get("status") or {}
    return f"{st.get('readyReplicas', 0)}/{(o.get('spec') or {}).get('replicas', 1)}"


def _event_object(o: JSON) -> str:
    inv = o.get("involvedObject") or {}
    return f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}"


def _event_seen(o: JSON) -> str:
    return age(
        o.get("lastTimestamp")
        or o.get("eventTime")
        or o.get("metadata", {}).get("creationTimestamp")
    )


def _status(path: str, default: Any = 0) -> Callable[[JSON], Any]:
    def get(o: JSON) -> Any:
        cur: Any = o
        for p in path.split("."):
            cur = cur.get(p) if isinstance(cur, dict) else None
        return default if cur is None else cur

    return get


NAME: Column = ("Name", "string", "name", 0, _name)
AGE: Column = ("Age", "string", "", 0, _age)

BUILTIN: dict[str, list[Column]] = {
    "Service": [
        NAME,
        ("Type", "string", "", 0, _status("spec.type", "ClusterIP")),
        ("Cluster-IP", "string", "", 0, _status("spec.clusterIP", "<none>")),
        ("External-IP", "string", "", 0, _svc_external),
        ("Port(s)", "string", "", 0, _svc_ports),
        AGE,
        ("Selector", "string", "", 1, _selector),
    ],
    "Pod": [
        NAME,
        ("Ready", "string", "", 0, _pod_ready),
        ("Status", "string", "", 0, _status("status.phase", "Unknown")),
        ("Restarts", "string", "", 0, lambda o: "0"),
        AGE,
        ("IP", "string", "", 1, _status("status.podIP", "<none>")),
        ("Node", "string", "", 1, _status("spec.nodeName", "<none>")),
    ],
    "Node": [
        NAME,
        ("Status", "string", "", 0, _node_status),
        ("Roles", "string", "", 0, lambda o: "<none>"),
        AGE,
        ("Version", "string", "", 0, _status("status.nodeInfo.kubeletVersion", "")),
    ],
    "Namespace": [NAME, ("Status", "string", "", 0, _status("status.phase", "Active")), AGE],
    "Deployment": [
        NAME,
        ("Ready", "string", "", 0, _deploy_ready),
        ("Up-to-date", "integer", "", 0, _status("status.updatedReplicas")),
        ("Available", "integer", "", 0, _status("status.availableReplicas")),
        AGE,
    ],
    "DaemonSet": [
        NAME,
        ("Desired", "integer", "", 0, _status("status.desiredNumberScheduled")),
        ("Current", "integer", "", 0, _status("status.currentNumberScheduled")),
        ("Ready", "integer", "", 0, _status("status.numberReady")),
        ("Up-to-date", "integer", "", 0, _status("status.updatedNumberScheduled")),
        ("Available", "integer", "", 0, _status("status.numberAvailable")),
        AGE,
    ],
    "Event": [
        ("Last Seen", "string", "", 0, _event_seen),
        ("Type", "string", "", 0, _status("type", "")),
        ("Reason", "string", "", 0, _status("reason", "")),
        ("Object", "string", "", 0, _event_object),
        ("Message", "string", "", 0, _status("message", "")),
    ],
    "Lease": [NAME, ("Holder", "string", "", 0, _status("spec.holderIdentity", "")), AGE],
    "CustomResourceDefinition": [
        NAME,
        ("Created At", "date", "", 0, _status("metadata.creationTimestamp", "")),
    ],
}


# -- JSONPath subset for CRD printer columns -----------------------------------------------------

_SEG = re.compile(
    r"\.([A-Za-z0-9_\-$]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*"
    r"[\"']([^\"']*)[\"']\)\]|\['([^']+)'\]"
)


def jsonpath(obj: Any, expr: str) -> list[Any]:
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    if not expr.startswith("."):
        expr = "." + expr
    cur = [obj]
    pos = 0
    while pos < len(expr):
        m = _SEG.match(expr, pos)
        if not m:
            return []
        pos = m.end()
        nxt: list[Any] = []
        for c in cur:
            if m.group(1) is not None or m.group(5) is not None:
                key = m.group(1) if m.group(1) is not None else m.group(5)
                if isinstance(c, dict) and key in c:
                    nxt.append(c[key])
            elif m.group(2) is not None:
                if isinstance(c, list):
                    if m.group(2) == "*":
                        nxt.extend(c)
                    elif int(m.group(2)) < len(c):
                        nxt.append(c[int(m.group(2))])
            else:
                if isinstance(c, list):
                    for item in c:
                        got = jsonpath(item, "." + m.group(3))
                        if got and str(got[0]) == m.group(4):
                            nxt.append(item)
        cur = nxt
    return cur


def crd_columns(columns: list[JSON]) -> list[Column]:
    out: list[Column] = [NAME]
    for col in columns:
        path, ctype = col.get("jsonPath", ""), col.get("type", "string")

        def getter(o: JSON, path: str = path, ctype: str = ctype) -> Any:
            vals = jsonpath(o, path)
            if not vals:
                return None
            v = vals[0]
            if ctype == "date" and isinstance(v, str):
                return age(v)
            if isinstance(v, (dict, list)):
                import json

                return json.dumps(v, separators=(",", ":"))
            return v

        out.append(
            (
                col.get("name", ""),
                "string" if ctype == "date" else ctype,
                col.get("format", ""),
                int(col.get("priority", 0)),
                getter,
            )
        )
    return out


def columns_for(kind: str, crd_printer: list[JSON] | None) -> list[Column]:
    if crd_printer is not None:
        return crd_columns(crd_printer)
    return BUILTIN.get(kind, [NAME, AGE])


def column_definitions(cols: list[Column]) -> list[JSON]:
    return [
        {"name": n, "type": t, "format": f, "description": n, "priority": p}
        for n, t, f, p, _ in cols
    ]


def row(obj: JSON, cols: list[Column], include: str) -> JSON:
    r: JSON = {"cells": [g(obj) for *_, g in cols]}
    if include == "Object":
        r["object"] = obj
    elif include != "None":
        r["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {}),
        }
    return r


def table(objs: list[JSON], cols: list[Column], include: str, list_meta: JSON) -> JSON:
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": column_definitions(cols),
        "rows": [row(o, cols, include) for o in objs],
    }
