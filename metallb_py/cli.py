"""`metallb-py` command line: one binary, one subcommand per component.

Flag names are a contract (docs/architecture.md). MetalLB's own flag names and environment
variables are accepted as aliases so that MetalLB's manifests can run our image unchanged.
Expected errors are one line on stderr and exit status 2; no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from metallb_py import __version__
from metallb_py.log import FORMATS, LEVEL_NAMES, configure, get_logger
from metallb_py.metrics import MetricsServer, Readiness
from netkit.cli import EXIT_USAGE, RaisingParser, StopSignals, UsageError

# Default metrics ports; distinct so every component can share one host.
PORT_CONTROLLER = 7472
PORT_SPEAKER = 7473
PORT_OPERATOR = 7474
PORT_WEBHOOK_METRICS = 7475
PORT_APISERVER_METRICS = 7476
PORT_WEBHOOK = 9443
PORT_MEMBERLIST = 7946
DEFAULT_NAMESPACE = "metallb-system"


@dataclass
class RunContext:
    """What the harness hands a component: its flags, readiness, and the stop signal."""

    args: argparse.Namespace
    readiness: Readiness
    stop: asyncio.Event
    signals: list[signal.Signals] = field(default_factory=list)

    @property
    def last_signal(self) -> str | None:
        return self.signals[-1].name if self.signals else None


ComponentMain = Callable[[RunContext], Awaitable[int]]
# One-shot commands (config validate) take the parsed flags and return the exit status.
OneShotMain = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Component:
    """Where a subcommand's implementation lives and which issue delivers it."""

    module: str
    issue: int | None
    long_running: bool = True


COMPONENTS: dict[str, Component] = {
    "controller": Component("metallb_py.controller.main", 5),
    "speaker": Component("metallb_py.speaker.main", 9),
    "webhook": Component("webhooks.main", 4),
    "operator": Component("metallb_py.operator.main", None),
    "apiserver": Component("metallb_py.apiserver.main", 3),
    "config validate": Component("metallb_py.config.validate_cli", 4, long_running=False),
    "config convert": Component("metallb_py.config.convert_cli", 17, long_running=False),
    "demo": Component("metallb_py.demo", None),
}


def _env(*names: str, default: Any = None) -> Any:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            return value
    return default


def _env_int(*names: str, default: int) -> int:
    raw = _env(*names)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"environment variable {names[0]}={raw!r} is not an integer") from None


def _common(p: argparse.ArgumentParser, metrics_port: int | None, metrics_env: str = "") -> None:
    _logging(p, _env("METALLB_LOG_LEVEL", default="info"), "log verbosity (default info)")
    if metrics_port is not None:
        port = _env_int(metrics_env, default=metrics_port) if metrics_env else metrics_port
        p.add_argument(
            "--metrics-port",
            # The webhook and the operator use --port for their HTTPS admission server.
            "--port"
            if p.prog.split()[-1] not in ("webhook", "operator")
            else "--metrics-listen-port",
            dest="metrics_port",
            type=int,
            default=port,
            help=f"HTTP port for /metrics, /healthz, /readyz; 0 disables (default {metrics_port})",
        )
        p.add_argument(
            "--metrics-bind-address",
            "--host",
            dest="metrics_host",
            default=_env("METALLB_METRICS_HOST", default=""),
            help="address for the metrics server (default: all)",
        )


def _logging(p: argparse.ArgumentParser, level: str, level_help: str | None = None) -> None:
    """`--log-level` (its default: `level`) and `--log-format`, the same on every subcommand."""
    p.add_argument("--log-level", choices=LEVEL_NAMES, default=level, help=level_help)
    p.add_argument(
        "--log-format",
        choices=FORMATS,
        default=_env("METALLB_LOG_FORMAT", default="json"),
        help="json: one object per line, for log pipelines (default); text: aligned lines for "
        "a person at a terminal (env METALLB_LOG_FORMAT)",
    )


def _kube(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kubeconfig",
        default=_env("KUBECONFIG"),
        help="kubeconfig file (default: in-cluster config, then ~/.kube/config)",
    )
    p.add_argument(
        "--namespace",
        default=_env("METALLB_NAMESPACE", default=DEFAULT_NAMESPACE),
        help=f"namespace holding the MetalLB configuration (default {DEFAULT_NAMESPACE})",
    )


def _leader_election(
    p: argparse.ArgumentParser, *flags: str, help_text: str, lease_seconds: int
) -> None:
    """The switch for Lease-based leader election (on by default) and the Lease's duration.

    The controller and the operator elect a leader the same way (`metallb_py.kube.leader`); only
    their Lease, flag names and default duration differ.
    """
    p.add_argument(*flags, action=argparse.BooleanOptionalAction, default=True, help=help_text)
    p.add_argument(
        "--lease-duration",
        type=float,
        default=float(lease_seconds),
        help=f"seconds a standby waits on a silent leader before taking over "
        f"(default {lease_seconds})",
    )


def build_parser() -> argparse.ArgumentParser:
    root = RaisingParser(
        prog="metallb-py",
        description="A bare-metal LoadBalancer for Kubernetes, drop-in compatible with MetalLB.",
    )
    root.add_argument("--version", action="version", version=f"metallb-py {__version__}")
    sub = root.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("controller", help="allocate IPs to Services of type LoadBalancer")
    _common(p, PORT_CONTROLLER, "METALLB_METRICS_PORT")
    _kube(p)
    p.add_argument(
        "--lb-class",
        default=_env("METALLB_LB_CLASS", default=""),
        help="only handle Services with this loadBalancerClass (default: only those without one)",
    )
    p.add_argument(
        "--on-config-change",
        choices=("keep", "reallocate"),
        default="keep",
        help="an allocation the new configuration forbids: keep and flag it (default), or "
        "reallocate it as MetalLB does",
    )
    _leader_election(
        p,
        "--leader-election",
        help_text="run several replicas; the holder of the metallb-controller Lease allocates "
        "(default on)",
        lease_seconds=4,
    )
    p.add_argument("--workers", type=int, default=16, help="concurrent status writers (default 16)")
    p.add_argument(
        "--ml-secret-name",
        default=_env("METALLB_ML_SECRET_NAME", default=""),
        help="membership key Secret to create when absent (env METALLB_ML_SECRET_NAME; "
        "unset: none)",
    )
    p.add_argument(
        "--deployment",
        default=_env("METALLB_DEPLOYMENT", default=""),
        help="the controller's Deployment, owner of the membership Secret (env METALLB_DEPLOYMENT)",
    )

    p = sub.add_parser("speaker", help="announce service IPs from this node (BGP, ARP/NDP)")
    _common(p, PORT_SPEAKER, "METALLB_METRICS_PORT")
    _kube(p)
    p.add_argument(
        "--node-name",
        default=_env("METALLB_NODE_NAME"),
        help="this node's name (env METALLB_NODE_NAME; required)",
    )
    p.add_argument("--pod-name", default=_env("METALLB_POD_NAME"), help="this speaker's Pod")
    p.add_argument(
        "--ml-bind-addr",
        "--ml-bindaddr",
        dest="ml_bind_addr",
        default=_env("METALLB_ML_BIND_ADDR"),
        help="address for the membership protocol (unset disables membership)",
    )
    p.add_argument(
        "--ml-bind-port",
        "--ml-bindport",
        dest="ml_bind_port",
        type=int,
        default=_env_int("METALLB_ML_BIND_PORT", default=PORT_MEMBERLIST),
        help=f"membership UDP/TCP port (default {PORT_MEMBERLIST})",
    )
    p.add_argument(
        "--ml-labels",
        default=_env("METALLB_ML_LABELS", default=""),
        help="label selector of the speaker Pods taking part in membership",
    )
    p.add_argument(
        "--ml-secret-key-path",
        default=_env("METALLB_ML_SECRET_KEY_PATH"),
        help="directory holding the mounted membership Secret (its `secretkey`), or the key file",
    )
    p.add_argument(
        "--ml-profile",
        choices=("fast", "lan", "wan", "local"),
        default=_env("METALLB_ML_PROFILE", default="fast"),
        help="membership timers: fast (default, sub-second failover), or memberlist's lan, wan, "
        "local",
    )
    p.add_argument(
        "--ml-wan-config",
        dest="ml_profile",
        action="store_const",
        const="wan",
        help="MetalLB's flag: the same as --ml-profile=wan",
    )
    p.add_argument(
        "--ml-config",
        default=_env("METALLB_ML_CONFIG"),
        help="memberlist tunables JSON (MetalLB's metallb-memberlist-config; default "
        "/etc/metallb/memberlist/config.json when present)",
    )
    p.add_argument(
        "--ml-label",
        default=_env("METALLB_ML_LABEL", default=""),
        help="membership label: only members with the same label talk to each other",
    )
    p.add_argument("--lb-class", default=_env("METALLB_LB_CLASS", default=""))
    p.add_argument(
        "--ignore-exclude-lb",
        action="store_true",
        help="ignore the node.kubernetes.io/exclude-from-external-load-balancers label",
    )
    p.add_argument(
        "--l2-require-node-ready",
        action="store_true",
        help="also drop nodes that are not Ready from layer-2 candidates (off by default)",
    )

    p = sub.add_parser("webhook", help="validating admission webhooks for metallb.io resources")
    _common(p, PORT_WEBHOOK_METRICS)
    _kube(p)
    p.add_argument("--port", dest="port", type=int, default=PORT_WEBHOOK, help="HTTPS port")
    p.add_argument(
        "--cert-dir",
        default=None,
        help="directory with tls.crt/tls.key (default: generate, store and rotate our own)",
    )
    p.add_argument(
        "--service-name",
        "--cert-service-name",
        dest="service_name",
        default="metallb-webhook-service",
        help="Service the certificate is issued for (<name>.<namespace>.svc)",
    )
    p.add_argument(
        "--webhook-secret",
        default="metallb-webhook-cert",
        help="Secret holding the generated CA and certificate",
    )
    p.add_argument(
        "--webhook-configuration",
        default="metallb-webhook-configuration",
        help="ValidatingWebhookConfiguration whose caBundle is kept current",
    )
    p.add_argument(
        "--cert-lifetime",
        default="8760h",
        help="lifetime of the generated serving certificate, renewed with a fifth left (8760h)",
    )
    p.add_argument(
        "--cert-host",
        action="append",
        default=[],
        help="extra DNS name or IP for the certificate (repeatable)",
    )
    p.add_argument("--bind-address", default="", help="address to listen on (default: all)")

    p = sub.add_parser("operator", help="deploy controller and speakers from a MetalLB resource")
    _common(p, PORT_OPERATOR)
    _kube(p)
    # MetalLB's operator is told its namespace through OPERATOR_NAMESPACE.
    p.set_defaults(
        namespace=_env("OPERATOR_NAMESPACE", "METALLB_NAMESPACE", default=DEFAULT_NAMESPACE)
    )
    p.add_argument("--port", type=int, default=PORT_WEBHOOK, help="webhook HTTPS port (9443)")
    p.add_argument("--bind-address", default="", help="webhook address (default: all)")
    p.add_argument(
        "--cert-dir",
        default=None,
        help="directory with tls.crt/tls.key (default: generate, store and rotate our own)",
    )
    p.add_argument(
        "--disable-cert-rotation",
        action="store_true",
        help="do not generate certificates; read them from --cert-dir "
        "(default /tmp/k8s-webhook-server/serving-certs)",
    )
    p.add_argument(
        "--cert-host",
        action="append",
        default=[],
        help="extra DNS name or IP for the generated certificate (repeatable)",
    )
    p.add_argument(
        "--webhook",
        action=argparse.BooleanOptionalAction,
        default=_env("ENABLE_OPERATOR_WEBHOOK", default="true") != "false",
        help="serve the MetalLB validating webhook (default on; env ENABLE_OPERATOR_WEBHOOK)",
    )
    _leader_election(
        p,
        "--enable-leader-election",
        "--leader-elect",
        help_text="hold the metallb.io.metallboperator Lease before reconciling (default on)",
        lease_seconds=15,
    )
    p.add_argument(
        "--resync-period",
        type=float,
        default=60.0,
        help="seconds between full reconciles of every MetalLB resource (default 60)",
    )

    p = sub.add_parser("apiserver", help="the embedded Kubernetes-API-compatible server")
    _common(p, PORT_APISERVER_METRICS)
    p.add_argument("--listen", default="127.0.0.1:6443", help="HOST:PORT (default 127.0.0.1:6443)")
    p.add_argument("--kubeconfig-out", required=False, help="write an admin kubeconfig here")
    p.add_argument("--data", default=None, help="SQLite file for persistent state")
    p.add_argument("--tls-cert", default=None, help="serving certificate (PEM)")
    p.add_argument("--tls-key", default=None, help="serving key (PEM)")
    p.add_argument(
        "--cert-dir",
        default=None,
        help="keep the generated CA and serving certificate here (default: DATA-pki beside "
        "--data; in memory without --data)",
    )
    p.add_argument(
        "--tls-san",
        action="append",
        default=[],
        metavar="NAME|IP",
        help="extra name or address for the generated serving certificate (repeatable)",
    )
    p.add_argument(
        "--insecure-http",
        action="store_true",
        help="loopback only: plain HTTP instead of HTTPS (kubectl then sends no credentials)",
    )
    p.add_argument("--tls", action="store_true", help="HTTPS, the default (kept for old scripts)")
    p.add_argument("--token-file", default=None, help="static tokens: token,user,uid[,groups]")
    p.add_argument(
        "--anonymous",
        action="store_true",
        help="loopback only: unauthenticated requests get full access",
    )
    p.add_argument(
        "--service-cidr",
        action="append",
        default=None,
        help="service cluster IP range, once per family (default 10.96.0.0/12)",
    )
    p.add_argument(
        "--webhook-url-override",
        action="append",
        default=[],
        metavar="NAMESPACE/SERVICE=URL",
        help="call a webhook Service at this URL instead of its endpoints",
    )
    p.add_argument("--watch-history", type=int, default=20000, help="events kept per resource")
    p.add_argument("--bookmark-interval", type=float, default=10.0, help="seconds")
    # Resource limits against slow or idle clients (docs/apiserver.md, "Limits").
    p.add_argument(
        "--max-connections",
        type=int,
        default=4096,
        help="open client connections at most; more get 503 and are closed (default 4096)",
    )
    p.add_argument(
        "--request-header-timeout",
        type=float,
        default=30.0,
        help="seconds a connection has to send a complete request header (default 30)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=90.0,
        help="seconds a connection may stay open with no request in progress (default 90)",
    )
    p.add_argument(
        "--watch-memory-limit",
        type=int,
        default=256,
        metavar="MIB",
        help="MiB all watches together may hold unsent; the slowest is closed (default 256)",
    )

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    v = csub.add_parser("validate", help="validate metallb.io manifests offline")
    v.add_argument("files", nargs="+", metavar="FILE", help="YAML files, or - for stdin")
    _logging(v, "error")
    v = csub.add_parser("convert", help="turn MetalLB's pre-v0.13 ConfigMap into metallb.io CRs")
    v.add_argument("file", metavar="FILE", help="the ConfigMap or its config YAML, or - for stdin")
    v.add_argument("-o", "--output", default=None, help="write the resources here (default stdout)")
    _logging(v, "error")

    p = sub.add_parser(
        "explain",
        help="why a Service has or lacks an IP and who announces it (= kubectl metallb explain)",
        add_help=False,
    )
    p.add_argument("explain_args", nargs=argparse.REMAINDER, metavar="ARGS")  # see main()

    p = sub.add_parser("demo", help="run the whole system on the embedded API server")
    _common(p, None)
    p.add_argument("--once", action="store_true", help="exit after the walkthrough")
    p.add_argument(
        "--no-network",
        action="store_true",
        help="skip the network part (namespaces, BIRD, speakers, HTTP, failover) even as root",
    )
    p.add_argument("--status", action="store_true", help="only list which components exist")
    p.add_argument(
        "--controller-metrics-port",
        type=int,
        default=PORT_CONTROLLER,
        help=f"the demo controller's metrics port (default {PORT_CONTROLLER})",
    )
    return root


def _command_key(args: argparse.Namespace) -> str | None:
    if args.command == "config":
        sub = getattr(args, "config_command", None)
        return f"config {sub}" if sub else None
    return args.command


def _load(component: Component, key: str) -> Any:
    tracked = f" (tracked in issue #{component.issue})" if component.issue else ""
    try:
        module = importlib.import_module(component.module)
    except ModuleNotFoundError as exc:
        if exc.name and component.module.startswith(exc.name):
            raise UsageError(f"metallb-py {key}: not implemented yet{tracked}") from None
        raise
    run = getattr(module, "run", None)
    if run is None:
        raise UsageError(f"metallb-py {key}: not implemented yet{tracked}")
    return run


async def run_component(main: ComponentMain, args: argparse.Namespace, name: str) -> int:
    """Serve metrics, translate SIGTERM/SIGINT into `ctx.stop`, and run the component."""
    readiness = Readiness()
    stop = StopSignals()
    ctx = RunContext(args=args, readiness=readiness, stop=stop.event, signals=stop.received)
    port = getattr(args, "metrics_port", 0) or 0
    server = MetricsServer(getattr(args, "metrics_host", ""), port, readiness)
    log = get_logger(name)
    try:
        await server.start()
    except OSError as exc:
        msg = f"metallb-py {name}: cannot serve metrics on port {port}: {exc.strerror}"
        raise UsageError(msg) from None
    if port:
        log.info("metricsServing", port=port)
    try:
        return await main(ctx)
    finally:
        await server.stop()
        stop.close()


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["explain"]:  # one parser for this and the kubectl-metallb plugin
        from metallb_py.explain.cli import main as explain_main

        return explain_main(words, prog="metallb-py")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        key = _command_key(args)
        if key is None:
            if args.command == "config":
                raise UsageError("metallb-py config: missing ACTION (validate, convert)")
            parser.print_help()
            return EXIT_USAGE
        if key == "speaker" and not args.node_name:
            raise UsageError("metallb-py speaker: --node-name (or METALLB_NODE_NAME) is required")
        component = COMPONENTS[key]
        run = _load(component, key)
        try:
            configure(args.log_level, component=key.split()[0], fmt=args.log_format)
        except ValueError as exc:  # a bad METALLB_LOG_LEVEL/METALLB_LOG_FORMAT value
            raise UsageError(f"metallb-py {key}: {exc}") from None
        if not component.long_running:
            one_shot: OneShotMain = run
            return one_shot(args)
        return asyncio.run(run_component(run, args, key))
    except UsageError as exc:
        print(str(exc).splitlines()[0], file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
