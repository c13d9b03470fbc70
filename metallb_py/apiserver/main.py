"""`metallb-py apiserver`: start the server, write the admin kubeconfig once it serves, stop on
SIGTERM.

HTTPS on every address, loopback included, with the server's own CA embedded in the kubeconfig it
writes (as k3s and kind do): kubectl never sends credentials over plain HTTP, so a plain-HTTP
default would hand out a kubeconfig whose first command fails. `--insecure-http` exists for
loopback debugging only.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import os
import secrets
import socket
import ssl
import stat
import time
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from metallb_py.apiserver import limits, tls
from metallb_py.apiserver.auth import MASTERS, Authenticator, User, load_token_file, new_key
from metallb_py.apiserver.conns import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    ConnectionGuard,
    GuardedSite,
    install_accept_error_log,
)
from metallb_py.apiserver.persist import SqlitePersistence
from metallb_py.apiserver.server import ApiServer, ServerConfig
from metallb_py.apiserver.store import DEFAULT_WATCH_MEMORY, StorageError, Store
from metallb_py.cli import RunContext, UsageError
from metallb_py.log import get_logger

log = get_logger("apiserver")

# Names the generated serving certificate always carries, besides the listen address: clients on
# this host and in-cluster clients reach the server under these.
LOCAL_NAMES = (
    "127.0.0.1",
    "::1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
# Key material in the certificate directory: NAME.crt and NAME.key.
CA_NAME = "ca"
SERVING_NAME = "apiserver"
# Meta keys under which servers before the certificate directory kept the CA in the database.
LEGACY_TLS_META = ("ca_cert", "ca_key", "serving_cert", "serving_key")


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"metallb-py apiserver: --listen must be HOST:PORT, not {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def client_host(host: str) -> str:
    """The address the kubeconfig names: the listen address, or loopback for a wildcard one."""
    if is_wildcard(host):
        return "::1" if ":" in host else "127.0.0.1"
    return host


def default_cert_dir(data: str) -> str:
    """`state.db` -> `state-pki`: beside the database, one directory per database."""
    root, _ = os.path.splitext(data)
    return f"{root}-pki"


def local_addresses() -> list[str]:
    """This network namespace's addresses (IPv4, and IPv6 without link-local), for a wildcard
    listener's certificate. Read with an ioctl and /proc, not netlink, because it runs inside the
    event loop."""
    from bgp.router_id import node_ipv4_addresses

    out: list[str] = []
    try:
        out += [str(a) for a in node_ipv4_addresses()]
    except OSError as exc:
        log.warning("localAddressesUnavailable", family="ipv4", error=str(exc))
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                raw = line.split()[0]
                addr = ipaddress.IPv6Address(int(raw, 16))
                if not addr.is_link_local:
                    out.append(str(addr))
    except (OSError, ValueError, IndexError) as exc:
        log.warning("localAddressesUnavailable", family="ipv6", error=str(exc))
    return list(dict.fromkeys(out))


def serving_hosts(host: str, extra: list[str]) -> list[str]:
    """Every name and address the generated serving certificate covers."""
    first = [*local_addresses(), socket.gethostname()] if is_wildcard(host) else [host]
    return list(dict.fromkeys([*first, *LOCAL_NAMES, *extra]))


@dataclass
class Secrets:
    """Keys the server owns; with --data the token keys live in the database's meta table and the
    CA in the certificate directory."""

    signing_key: bytes = field(repr=False)
    admin_token: str = field(repr=False)
    ca: tls.Pem | None = None


def _load_secrets(db: SqlitePersistence | None) -> Secrets:
    def get(key: str) -> str | None:
        return db.get_meta(key) if db else None

    def put(key: str, value: str) -> None:
        if db:
            db.set_meta(key, value)

    key_hex = get("signing_key")
    if key_hex is None:
        key_hex = new_key().hex()
        put("signing_key", key_hex)
    token = get("admin_token")
    if token is None:
        token = "mlbadmin." + secrets.token_urlsafe(24)
        put("admin_token", token)
    return Secrets(bytes.fromhex(key_hex), token)


def _load_ca(cert_dir: str | None, db: SqlitePersistence | None) -> tls.Pem:
    """The CA from the certificate directory, created there the first time (taking over a CA an
    older server kept in the database, so its kubeconfigs stay valid); in memory without one."""
    if cert_dir is None:
        return tls.make_ca()
    try:
        pem = tls.read_pair(cert_dir, CA_NAME)
        if pem is not None:
            tls.check_pair(pem)
    except (OSError, ValueError) as exc:
        raise UsageError(f"metallb-py apiserver: cannot use the CA in {cert_dir}: {exc}") from None
    if pem is None:
        old_cert, old_key = (db.get_meta("ca_cert"), db.get_meta("ca_key")) if db else (None, None)
        pem = (
            tls.Pem(old_cert.encode(), old_key.encode()) if old_cert and old_key else tls.make_ca()
        )
        _write_pair(cert_dir, CA_NAME, pem, "the CA")
    if db:
        db.delete_meta(*LEGACY_TLS_META)
    return pem


def _write_pair(cert_dir: str, name: str, pem: tls.Pem, what: str) -> None:
    """Store a certificate and key, or stop with an error that names what and where."""
    try:
        tls.write_pair(cert_dir, name, pem)
    except OSError as exc:
        raise UsageError(
            f"metallb-py apiserver: cannot write {what} to {cert_dir}: {exc.strerror}"
        ) from None


def _ssl_context(
    args: Any, host: str, cert_dir: str | None, ca: tls.Pem
) -> tuple[ssl.SSLContext, bytes]:
    """Serving context and the CA bundle clients should trust."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if args.tls_cert:
        try:
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
            with open(args.tls_cert, "rb") as f:
                bundle = f.read()
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"metallb-py apiserver: --tls-cert/--tls-key: {exc}") from None
    else:
        hosts = serving_hosts(host, args.tls_san)
        if cert_dir is not None:
            pem = tls.read_pair(cert_dir, SERVING_NAME)
            if pem is None or not tls.serving_cert_usable(pem, ca, hosts):
                pem = tls.serving_cert(ca, hosts)
                _write_pair(cert_dir, SERVING_NAME, pem, "the serving certificate")
            ctx.load_cert_chain(
                os.path.join(cert_dir, f"{SERVING_NAME}.crt"),
                os.path.join(cert_dir, f"{SERVING_NAME}.key"),
            )
        else:
            with tls.pair_files(tls.serving_cert(ca, hosts)) as (cert_path, key_path):
                ctx.load_cert_chain(cert_path, key_path)
        bundle = ca.cert
    # Client certificates signed by our CA authenticate (CN = user, O = groups).
    ctx.load_verify_locations(cadata=ca.cert.decode())
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx, bundle


def write_kubeconfig(
    path: str, server: str, token: str, ca: bytes | None, client: tls.Pem | None = None
) -> None:
    import base64

    cluster: dict[str, Any] = {"server": server}
    if ca is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    user: dict[str, Any] = {"token": token}
    if client is not None:
        user = {
            "client-certificate-data": base64.b64encode(client.cert).decode(),
            "client-key-data": base64.b64encode(client.key).decode(),
        }
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "metallb-py", "cluster": cluster}],
        "users": [{"name": "admin", "user": user}],
        "contexts": [
            {
                "name": "metallb-py",
                "context": {"cluster": "metallb-py", "user": "admin", "namespace": "default"},
            }
        ],
        "current-context": "metallb-py",
    }
    tmp = f"{path}.tmp{os.getpid()}"
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    os.replace(tmp, path)


def check_private(path: str, what: str, hint: str, bits: int = 0o077) -> None:
    """Refuse to run on secrets others can read or change: the database holds the admin token
    and the token signing key, the certificate directory the CA key. A warning would leave them
    exposed; a one-line error says the fix."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"metallb-py apiserver: cannot check {path}: {exc.strerror}") from None
    if st.st_mode & bits:
        mode = stat.S_IMODE(st.st_mode)
        fix = "700" if stat.S_ISDIR(st.st_mode) else "600"
        raise UsageError(
            f"metallb-py apiserver: {what} {path} is accessible to group or others (mode "
            f"{mode:04o}) and holds {hint}: run chmod {fix} {path}"
        )


def check_secret_modes(data: str | None, cert_dir: str | None) -> None:
    """The database (with its -wal and -shm files) and the keys must be private to the server's
    user, the certificate directory writable by it alone (else its keys could be replaced).
    A directory others may list only earns a warning: the keys in it are checked one by one."""
    if data:
        for suffix in ("", "-wal", "-shm"):
            check_private(data + suffix, "--data", "the admin token and token signing key")
    if cert_dir:
        check_private(cert_dir, "the certificate directory", "the CA key", bits=0o022)
        if os.path.isdir(cert_dir):
            mode = stat.S_IMODE(os.stat(cert_dir).st_mode)
            if mode & 0o055:
                log.warning(
                    "certDirReadable",
                    path=cert_dir,
                    mode=f"{mode:04o}",
                    reason="group or others may list the certificate directory; chmod 700 it",
                )
            for name in sorted(os.listdir(cert_dir)):
                if name.endswith(".key"):
                    check_private(os.path.join(cert_dir, name), "the key", "a private key")


def _overrides(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, url = item.partition("=")
        if not sep or "/" not in key or not url.startswith("https://"):
            raise UsageError(
                "metallb-py apiserver: --webhook-url-override must be "
                f"NAMESPACE/SERVICE=https://HOST:PORT[/path], not {item!r}"
            )
        out[key] = url
    return out


def build(args: Any) -> tuple[ApiServer, SqlitePersistence | None, Secrets, bool]:
    host, _ = parse_listen(args.listen)
    loopback = is_loopback(host)
    if args.anonymous and not loopback:
        raise UsageError("metallb-py apiserver: --anonymous is only allowed on a loopback address")
    if args.insecure_http and not loopback:
        raise UsageError(
            f"metallb-py apiserver: --insecure-http is only allowed on a loopback address, "
            f"not {host}"
        )
    if args.insecure_http and (args.tls or args.tls_cert or args.tls_key or args.cert_dir):
        raise UsageError(
            "metallb-py apiserver: --insecure-http cannot be combined with --tls, --tls-cert, "
            "--tls-key or --cert-dir"
        )
    use_tls = not args.insecure_http
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("metallb-py apiserver: --tls-cert and --tls-key go together")
    check_secret_modes(args.data, cert_dir_for(args) if use_tls else None)
    try:
        db = SqlitePersistence(args.data) if args.data else None
    except Exception as exc:  # sqlite3 and OS errors alike: one line, exit 2
        raise UsageError(f"metallb-py apiserver: cannot open --data {args.data}: {exc}") from None
    sec = _load_secrets(db)
    if use_tls:
        sec.ca = _load_ca(cert_dir_for(args), db)
    store_rv = int(db.get_meta("rv") or 0) if db else 0
    # An in-memory server starts its counter from the clock, so a client's resourceVersion from
    # before a restart is always older than the new history: it gets 410 Gone, never a silent
    # resume against unrelated state.
    start = store_rv if db and store_rv else int(time.time() * 1000) * 1000
    mib = getattr(args, "watch_memory_limit", DEFAULT_WATCH_MEMORY >> 20)
    if mib < 1:
        raise UsageError("metallb-py apiserver: --watch-memory-limit must be at least 1 (MiB)")
    store = Store(start_rv=start, history_limit=args.watch_history, watch_memory_limit=mib << 20)
    if db:
        for key, raw, rv in db.rows():
            store.load(key, limits.repair_stored(raw), rv)
        store.persistence = db
    static: dict[str, User] = {sec.admin_token: User("admin", (MASTERS, "system:authenticated"))}
    if args.token_file:
        try:
            static.update(load_token_file(args.token_file))
        except (OSError, ValueError) as exc:
            raise UsageError(f"metallb-py apiserver: --token-file: {exc}") from None
    authn = Authenticator(store, sec.signing_key, static)
    try:
        cfg = ServerConfig(
            service_cidrs=args.service_cidr or ["10.96.0.0/12"],
            anonymous=args.anonymous,
            history=args.watch_history,
            bookmark_interval=args.bookmark_interval,
            webhook_url_override=_overrides(args.webhook_url_override),
        )
        server = ApiServer(cfg, store, authn)
    except ValueError as exc:
        raise UsageError(f"metallb-py apiserver: {exc}") from None
    try:
        server.bootstrap()
    except StorageError as exc:
        raise UsageError(f"metallb-py apiserver: --data {args.data}: {exc.message}") from None
    return server, db, sec, use_tls


def cert_dir_for(args: Any) -> str | None:
    """--cert-dir, else the directory beside --data, else none (the CA lives in memory)."""
    if args.cert_dir:
        return str(args.cert_dir)
    return default_cert_dir(args.data) if args.data else None


def _attach_extras(server: ApiServer) -> list[Any]:
    """Admission, conversion, CEL and GC, when their modules are present."""
    started: list[Any] = []
    try:
        from metallb_py.apiserver.cel import CelValidator

        server.cel = CelValidator()
    except ImportError:
        pass
    try:
        from metallb_py.apiserver.admission import Admission, Conversion

        server.admission = Admission(server)
        server.conversion = Conversion(server)
    except ImportError:
        pass
    try:
        from metallb_py.apiserver.gc import GarbageCollector

        server.gc = GarbageCollector(server)
        started.append(server.gc)
    except ImportError:
        pass
    return started


async def run(ctx: RunContext) -> int:
    args = ctx.args
    # Every stored object is a long-lived tree of dicts; with the default thresholds the
    # collector rescans them all so often that it costs more than decoding the writes.
    gc.set_threshold(50_000, 20, 50)
    host, port = parse_listen(args.listen)
    ctx.readiness.require("serving", "API server not listening yet")
    server, db, sec, use_tls = build(args)
    extras = _attach_extras(server)
    ssl_ctx = None
    ca_bundle = None
    if use_tls:
        assert sec.ca is not None
        ssl_ctx, ca_bundle = _ssl_context(args, host, cert_dir_for(args), sec.ca)
    install_accept_error_log(asyncio.get_running_loop())
    app = server.app()
    idle = getattr(args, "idle_timeout", DEFAULT_IDLE_TIMEOUT)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=1.0, keepalive_timeout=idle
    )
    try:
        guard = ConnectionGuard(
            lambda: None,  # replaced by aiohttp's protocol factory once the runner exists
            getattr(args, "max_connections", DEFAULT_MAX_CONNECTIONS),
            getattr(args, "request_header_timeout", DEFAULT_HEADER_TIMEOUT),
            idle,
        )
    except ValueError as exc:
        raise UsageError(f"metallb-py apiserver: {exc}") from None
    app.middlewares.append(guard.middleware)
    await runner.setup()
    assert runner.server is not None
    guard.factory = runner.server
    site = GuardedSite(runner, guard, host, port, ssl_context=ssl_ctx, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UsageError(
            f"metallb-py apiserver: cannot listen on {args.listen}: {exc.strerror}"
        ) from None
    server_obj: Any = site.server
    sockets = server_obj.sockets if server_obj is not None else []
    actual = sockets[0].getsockname()[1] if sockets else port
    reach = client_host(host)
    hostport = f"[{reach}]:{actual}" if ":" in reach else f"{reach}:{actual}"
    server.server_address = hostport
    url = f"{'https' if use_tls else 'http'}://{hostport}"
    for extra in extras:
        extra.start()
    if args.kubeconfig_out:
        client = None
        if use_tls and sec.ca is not None and not is_loopback(host):
            client = tls.client_cert(sec.ca, "admin", [MASTERS])
        try:
            write_kubeconfig(args.kubeconfig_out, url, sec.admin_token, ca_bundle, client)
        except OSError as exc:
            await runner.cleanup()
            raise UsageError(
                f"metallb-py apiserver: cannot write --kubeconfig-out {args.kubeconfig_out}: "
                f"{exc.strerror}"
            ) from None
    ctx.readiness.satisfy("serving")
    log.info(
        "apiserverServing",
        url=url,
        listen=args.listen,
        data=args.data or "",
        tls=use_tls,
        certDir=(cert_dir_for(args) or "") if use_tls else "",
        kubeconfig=args.kubeconfig_out or "",
        resourceVersion=server.store.rv,
    )
    if not use_tls:
        log.warning(
            "apiserverInsecureHttp",
            reason="plain HTTP on loopback (--insecure-http): kubectl sends no credentials over "
            "HTTP, so it is refused unless --anonymous is set",
        )
    try:
        await ctx.stop.wait()
    finally:
        for extra in extras:
            await extra.stop()
        await runner.cleanup()
        for part in (server.admission, server.conversion):
            if part is not None:
                await part.close()
        if db:
            db.close()
        log.info("apiserverStopped", signal=ctx.last_signal or "")
    return 0
