"""`kubectl metallb` (the `kubectl-metallb` executable kubectl finds on PATH) and
`metallb-py explain`:

    kubectl metallb explain svc NAME [-n NS] [-o json]   why it has or lacks an IP, who announces
    kubectl metallb status [-o json]                     pools, sessions, problems on one screen

Read-only. Exit status: 0 when all is well (the Service has its IP and nothing is wrong; status
lists no problem), 1 otherwise (scripts can alert on it), 2 for a usage or connection error (one
line on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from metallb_py.explain import overview as ov
from metallb_py.explain import service as sv
from metallb_py.explain.snapshot import ConnectError, Snapshot, Target, connect, read
from metallb_py.kube.rest import ApiError
from metallb_py.speaker.desired import Options
from netkit.cli import EXIT_USAGE, RaisingParser, UsageError

EXIT_OK, EXIT_PROBLEMS = 0, 1
SERVICE_WORDS = ("svc", "service", "services")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context (default: the current context)")
    p.add_argument(
        "--metallb-namespace",
        default="metallb-system",
        help="namespace of the MetalLB configuration and status objects (default metallb-system)",
    )
    p.add_argument("--lb-class", default="", help="the controller's --lb-class (default: none)")
    p.add_argument(
        "--ignore-exclude-lb",
        action="store_true",
        help="the speakers run with --ignore-exclude-lb",
    )
    p.add_argument(
        "--l2-require-node-ready",
        action="store_true",
        help="the speakers run with --l2-require-node-ready",
    )
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")


def build_parser(prog: str = "kubectl metallb") -> argparse.ArgumentParser:
    root = RaisingParser(
        prog=prog, description="Explain MetalLB's decisions from the cluster state."
    )
    sub = root.add_subparsers(dest="command", metavar="COMMAND")
    e = sub.add_parser("explain", help="why a Service has or lacks an IP, and who announces it")
    e.add_argument("kind", metavar="svc", help="svc (a Service); `status` for the overview")
    e.add_argument("name", nargs="?", help="the Service's name (or namespace/name)")
    e.add_argument("-n", "--namespace", help="the Service's namespace (default: the context's)")
    _common(e)
    s = sub.add_parser("status", help="pools and usage, BGP sessions, problems")
    _common(s)
    return root


async def _run(args: argparse.Namespace) -> int:
    target = Target(args.kubeconfig, args.context)
    rest, context_ns = await connect(target)
    try:
        if args.command == "status" or (args.command == "explain" and args.kind == "status"):
            snap = await read(rest, args.metallb_namespace)
            view = ov.overview(_cluster(snap, args))
            _emit(args, view, ov.render(view))
            return EXIT_PROBLEMS if view["problems"] else EXIT_OK
        if args.kind not in SERVICE_WORDS:
            raise UsageError(f"explain: unknown kind {args.kind!r} (use svc NAME, or status)")
        if not args.name:
            raise UsageError("explain svc: missing the Service's NAME")
        namespace = args.namespace or context_ns
        name = args.name
        if "/" in name:
            namespace, _, name = name.partition("/")
        key = f"{namespace}/{name}"
        snap = await read(rest, args.metallb_namespace, [key])
        if key not in snap.services:
            raise UsageError(f'services "{name}" not found in namespace {namespace}')
        exp = sv.explain(_cluster(snap, args), key)
        _emit(args, exp, sv.render(exp))
        return EXIT_OK if exp["ok"] else EXIT_PROBLEMS
    finally:
        await rest.close()


def _cluster(snap: Snapshot, args: argparse.Namespace) -> sv.Cluster:
    options = Options(
        lb_class=args.lb_class,
        ignore_exclude_lb=args.ignore_exclude_lb,
        l2_require_node_ready=args.l2_require_node_ready,
    )
    return sv.Cluster(snap, args.lb_class, options)


def _emit(args: argparse.Namespace, data: object, lines: list[str]) -> None:
    if args.output == "json":
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print("\n".join(lines))


def main(argv: Sequence[str] | None = None, prog: str = "kubectl metallb") -> int:
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return asyncio.run(_run(args))
    except (UsageError, ConnectError) as exc:
        print(str(exc).splitlines()[0], file=sys.stderr)
        return EXIT_USAGE
    except ApiError as exc:
        print(f"{prog}: the API server refused a read: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"{prog}: cannot reach the API server: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def kubectl_main() -> None:
    """The `kubectl-metallb` console script."""
    sys.exit(main(sys.argv[1:]))
