"""The alert rules: MetalLB's Helm-chart alerts under their names, plus ours.

One list of groups is the source of both the PrometheusRule (Prometheus Operator) and the plain
rules file (`rule_files:` of a Prometheus without the operator): `prometheus_rule()` wraps
`groups()`, so the two cannot disagree. Expressions match series by all their labels rather than
`on(pool)`, so two controller replicas scraped at once never make a many-to-many match.
"""

from __future__ import annotations

from metallb_py.objects import JSON

NAMESPACE = "metallb-system"
RULE_NAME = "metallb"
# MetalLB's chart defaults for addressPoolUsage: percent -> severity.
POOL_USAGE_THRESHOLDS = ((75, "warning"), (85, "warning"), (95, "critical"))
# Membership: more failovers than members within this window is flapping, not a rolling update.
FLAP_WINDOW = "15m"


def _alert(name: str, expr: str, wait: str, severity: str, summary: str, what_to_do: str) -> JSON:
    return {
        "alert": name,
        "expr": expr,
        "for": wait,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": what_to_do},
    }


def chart_rules() -> list[JSON]:
    """MetalLB's chart alerts (same names, expressions and `for:`)."""
    rules = [
        _alert(
            "MetalLBStaleConfig",
            "metallb_k8s_client_config_stale_bool == 1",
            "1m",
            "warning",
            "{{ $labels.job }} on {{ $labels.instance }} has a stale configuration for > 1 minute",
            "The last configuration could not be used as a whole, so the last good one stays in "
            "force. Read `kubectl -n metallb-system get configurationstates -o yaml` and the "
            "component's configStale/configProblem log lines; fix or delete the object named.",
        ),
        _alert(
            "MetalLBConfigNotLoaded",
            "metallb_k8s_client_config_loaded_bool == 0",
            "1m",
            "warning",
            "{{ $labels.job }} on {{ $labels.instance }} has not loaded a configuration "
            "for > 1 minute",
            "The component has never had a usable configuration: no IPAddressPool, the "
            "metallb.io CRDs missing, or RBAC refusing the reads. Check the component's log and "
            "`kubectl -n metallb-system get ipaddresspools`.",
        ),
        _alert(
            "MetalLBAddressPoolExhausted",
            "metallb_allocator_addresses_in_use_total >= metallb_allocator_addresses_total",
            "1m",
            "critical",
            "Address pool {{ $labels.pool }} is exhausted for > 1 minute",
            "New LoadBalancer Services that need this pool stay pending. Add addresses to the "
            "IPAddressPool, add another pool, or delete unused Services.",
        ),
    ]
    for percent, severity in POOL_USAGE_THRESHOLDS:
        rules.append(
            _alert(
                f"MetalLBAddressPoolUsage{percent}Percent",
                "100 * metallb_allocator_addresses_in_use_total"
                f" / metallb_allocator_addresses_total > {percent}",
                "1m",
                severity,
                f"Address pool {{{{ $labels.pool }}}} is past {percent}% usage for > 1 minute",
                "Plan more addresses for this pool before it is exhausted.",
            )
        )
    rules.append(
        _alert(
            "MetalLBBGPSessionDown",
            "metallb_bgp_session_up == 0",
            "1m",
            "critical",
            "{{ $labels.instance }} has BGP session {{ $labels.peer }} down for > 1 minute",
            "The router no longer learns this node's service routes. `kubectl -n metallb-system "
            "get bgpsessionstates` shows the state and last error per node and peer; check the "
            "router's side, the link, the ASNs and the password.",
        )
    )
    return rules


def extra_rules() -> list[JSON]:
    """Alerts MetalLB has no metric for."""
    return [
        _alert(
            "MetalLBOrphanedAddresses",
            "metallb_allocator_orphaned_addresses > 0",
            "5m",
            "warning",
            "Addresses are kept for Services although the configuration no longer allows them",
            "A pool edit removed addresses that Services still hold; they keep them (and keep "
            "working) until you act. Find them with the AddressOrphaned events, then move each "
            "Service or restore the range.",
        ),
        _alert(
            "MetalLBBFDSessionDown",
            "metallb_bfd_session_up == 0",
            "1m",
            "warning",
            "{{ $labels.instance }} has BFD session {{ $labels.peer }} down for > 1 minute",
            "BFD to this peer does not come up, so its BGP session is not protected (or is "
            "held down). Check that the router runs BFD for this neighbour with compatible "
            "intervals and that UDP 3784/4784 passes.",
        ),
        _alert(
            "MetalLBLayer2AddressNotAnnounced",
            "max by (service, ip, pool) (metallb_allocator_layer2_address == 1)\n"
            "unless on (service, ip)\n"
            'max by (service, ip) (metallb_speaker_announced{protocol="layer2"} == 1)',
            "1m",
            "warning",
            "{{ $labels.service }} {{ $labels.ip }} is allocated for layer 2 but no speaker "
            "answers for it",
            "No node is eligible (L2Advertisement nodeSelectors, excluded or NotReady nodes, "
            "externalTrafficPolicy Local without local endpoints, no ready endpoints at all) or "
            "the elected node's speaker is down. `kubectl -n metallb-system get "
            "servicel2statuses` and the Service's events say which.",
        ),
        _alert(
            "MetalLBMembershipFlapping",
            f"max by (job) (floor(increase(metallb_membership_failovers_total[{FLAP_WINDOW}])))\n"
            "> on (job)\n"
            "max by (job) (max_over_time("
            f'metallb_membership_members{{state="alive"}}[{FLAP_WINDOW}]))',
            "1m",
            "warning",
            "Speakers declared members dead or gone more often than there are members "
            f"in {FLAP_WINDOW}",
            "Layer-2 addresses keep moving between nodes. A rolling update makes each member "
            "leave once; more means nodes that die and come back, or probes lost on a "
            "congested or partitioned network (metallb_membership_suspicions_refuted_total, "
            "metallb_membership_packets_dropped_total).",
        ),
    ]


def groups() -> list[JSON]:
    return [
        {"name": "metallb.rules", "rules": chart_rules()},
        {"name": "metallb-py.rules", "rules": extra_rules()},
    ]


def rules_file() -> JSON:
    """The plain Prometheus rules file."""
    return {"groups": groups()}


def prometheus_rule(namespace: str = NAMESPACE) -> JSON:
    """The same groups as a Prometheus Operator PrometheusRule."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": RULE_NAME, "namespace": namespace, "labels": {"app": "metallb"}},
        "spec": {"groups": groups()},
    }


def alert_names() -> list[str]:
    return [r["alert"] for g in groups() for r in g["rules"]]
