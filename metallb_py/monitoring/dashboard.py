"""The Grafana dashboard: one row per question an administrator asks (are the pools filling up,
who announces what, are the BGP/BFD sessions up, is layer 2 answering, is membership stable).

Built from data so each panel's expression is checked by promtool in the tests; the only
template variable is the Prometheus data source, so it imports into any Grafana unchanged.
"""

from __future__ import annotations

from metallb_py.objects import JSON

UID = "metallb-py"
DS: JSON = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
WIDTH = 24


def _rate(labels: str, counter: str) -> str:
    """Per-second rate of `counter`, summed over the series that share `labels`."""
    return f"sum by ({labels}) (rate({counter}[{RATE}]))"


def _increase(labels: str, counter: str) -> str:
    """Events of `counter` over the rate interval, summed over the series that share `labels`."""
    return f"sum by ({labels}) (increase({counter}[{RATE}]))"


def _target(expr: str, legend: str, ref: str, instant: bool = False) -> JSON:
    t: JSON = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}
    if instant:
        t["instant"] = True
        t["format"] = "table"
    return t


class _Layout:
    """Places panels left to right, wrapping at Grafana's 24 columns; rows start a new line."""

    def __init__(self) -> None:
        self.panels: list[JSON] = []
        self.x = 0
        self.y = 0
        self.line = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "id": len(self.panels) + 1,
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def _newline(self) -> None:
        if self.x:
            self.y += self.line
            self.x = 0
            self.line = 0

    def panel(
        self,
        kind: str,
        title: str,
        targets: list[tuple[str, str]],
        *,
        w: int = 12,
        h: int = 8,
        unit: str = "short",
        description: str = "",
        table: bool = False,
    ) -> None:
        if self.x + w > WIDTH:
            self._newline()
        refs = "ABCDEFGH"
        panel: JSON = {
            "type": kind,
            "title": title,
            "id": len(self.panels) + 1,
            "datasource": DS,
            "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "targets": [
                _target(expr, legend, refs[i], instant=table)
                for i, (expr, legend) in enumerate(targets)
            ],
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {},
        }
        if description:
            panel["description"] = description
        if kind == "timeseries":
            panel["options"] = {"legend": {"displayMode": "table", "placement": "right"}}
        self.panels.append(panel)
        self.x += w
        self.line = max(self.line, h)


def panels() -> list[JSON]:
    p = _Layout()
    p.row("Address pools")
    p.panel(
        "timeseries",
        "Pool usage",
        [
            (
                "max by (pool) (100 * metallb_allocator_addresses_in_use_total"
                " / metallb_allocator_addresses_total)",
                "{{pool}}",
            )
        ],
        unit="percent",
        description="Share of each pool's usable addresses in use (alerts at 75/85/95%).",
    )
    p.panel(
        "table",
        "Addresses per pool",
        [
            ("max by (pool) (metallb_allocator_addresses_in_use_total)", "in use"),
            ("max by (pool) (metallb_allocator_addresses_total)", "usable"),
            ("max by (pool) (metallb_allocator_services_allocated_total)", "services"),
        ],
        table=True,
    )
    p.panel(
        "timeseries",
        "Services holding an allocation",
        [("max by (pool) (metallb_allocator_services_allocated_total)", "{{pool}}")],
    )
    p.panel(
        "stat",
        "Orphaned addresses",
        [("max(metallb_allocator_orphaned_addresses)", "orphaned")],
        w=6,
        description="Kept by Services although the configuration no longer allows them.",
    )
    p.panel(
        "stat",
        "Layer-2 addresses nobody announces",
        [
            (
                "count(max by (service, ip) (metallb_allocator_layer2_address == 1)"
                ' unless on (service, ip) metallb_speaker_announced{protocol="layer2"} == 1)'
                " or vector(0)",
                "unannounced",
            )
        ],
        w=6,
    )
    p.row("Announcements")
    p.panel(
        "timeseries",
        "Announced addresses per node",
        [
            (
                "count by (node, protocol) (metallb_speaker_announced == 1)",
                "{{node}} {{protocol}}",
            )
        ],
    )
    p.panel(
        "table",
        "Who announces what",
        [("max by (service, ip, protocol, node) (metallb_speaker_announced == 1)", "")],
        table=True,
    )
    p.row("BGP")
    p.panel(
        "timeseries",
        "Sessions up",
        [("max by (node, peer) (metallb_bgp_session_up)", "{{node}} → {{peer}}")],
        description="1 while Established.",
    )
    p.panel(
        "timeseries",
        "Prefixes announced and pending",
        [
            ("sum by (node, peer) (metallb_bgp_announced_prefixes_total)", "{{node}} → {{peer}}"),
            (
                "sum by (node, peer) (metallb_bgp_pending_prefixes_total)",
                "pending {{node}} → {{peer}}",
            ),
        ],
    )
    p.panel(
        "timeseries",
        "UPDATE messages",
        [
            (_rate("node, peer", "metallb_bgp_updates_total"), "sent {{peer}}"),
            (_rate("node, peer", "metallb_bgp_updates_total_received"), "received {{peer}}"),
        ],
        unit="ops",
    )
    p.panel(
        "timeseries",
        "NOTIFICATIONs sent and OPENs",
        [
            (
                _increase("node, peer", "metallb_bgp_notifications_sent"),
                "notifications {{node}} → {{peer}}",
            ),
            (_increase("node, peer", "metallb_bgp_opens_sent"), "opens {{node}} → {{peer}}"),
        ],
        description="Each OPEN after the first is a reconnection.",
    )
    p.row("BFD")
    p.panel(
        "timeseries",
        "BFD sessions up",
        [("max by (node, peer) (metallb_bfd_session_up)", "{{node}} → {{peer}}")],
    )
    p.panel(
        "timeseries",
        "BFD session down events",
        [(_increase("node, peer", "metallb_bfd_session_down_events"), "{{node}} → {{peer}}")],
    )
    p.panel(
        "timeseries",
        "BFD control packets",
        [
            (_rate("node, peer", "metallb_bfd_control_packet_input"), "in {{node}} ← {{peer}}"),
            (_rate("node, peer", "metallb_bfd_control_packet_output"), "out {{node}} → {{peer}}"),
        ],
        unit="pps",
        w=24,
    )
    p.row("Layer 2")
    p.panel(
        "timeseries",
        "ARP/NDP requests for owned addresses",
        [(_rate("node, ip", "metallb_layer2_requests_received"), "{{ip}} on {{node}}")],
        unit="reqps",
    )
    p.panel(
        "timeseries",
        "Gratuitous ARP / unsolicited NA (takeovers)",
        [(_increase("node, ip", "metallb_layer2_gratuitous_sent"), "{{ip}} on {{node}}")],
        description="A node sends these when it becomes an address's announcer.",
    )
    p.row("Membership")
    p.panel(
        "timeseries",
        "Members by state",
        [("max by (state) (metallb_membership_members)", "{{state}}")],
    )
    p.panel(
        "timeseries",
        "Failovers and refuted suspicions",
        [
            (_increase("node", "metallb_membership_failovers_total"), "failovers seen by {{node}}"),
            (
                _increase("node", "metallb_membership_suspicions_refuted_total"),
                "refuted suspicions {{node}}",
            ),
        ],
    )
    p.panel(
        "timeseries",
        "Probe round trip (p99)",
        [
            (
                "histogram_quantile(0.99, "
                + _rate("node, le", "metallb_membership_probe_rtt_seconds_bucket")
                + ")",
                "{{node}}",
            )
        ],
        unit="s",
    )
    p.panel(
        "timeseries",
        "Dropped membership packets",
        [
            (
                _rate("node, reason", "metallb_membership_packets_dropped_total"),
                "{{node}} {{reason}}",
            )
        ],
        unit="pps",
    )
    p.row("Configuration")
    p.panel(
        "timeseries",
        "Configuration loaded / stale",
        [
            ("max by (job, instance) (metallb_k8s_client_config_loaded_bool)", "loaded {{job}}"),
            ("max by (job, instance) (metallb_k8s_client_config_stale_bool)", "stale {{job}}"),
        ],
        w=24,
    )
    return p.panels


def dashboard() -> JSON:
    return {
        "uid": UID,
        "title": "MetalLB (metallb-py)",
        "tags": ["metallb", "networking"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
        },
        "annotations": {"list": []},
        "panels": panels(),
    }


def expressions(d: JSON | None = None) -> list[str]:
    """Every PromQL expression of the dashboard (for checks)."""
    board = d if d is not None else dashboard()
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
