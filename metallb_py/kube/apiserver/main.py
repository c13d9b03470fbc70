"""`metallb-py apiserver`: start the server, write the admin kubeconfig once it serves, stop on
SIGTERM."""

from __future__ import annotations

import ipaddress
import os
import secrets
import ssl
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from metallb_py.cli import RunContext, UsageError
from metallb_py.kube.apiserver import tls
from metallb_py.kube.apiserver.auth import MASTERS, Authenticator, User, load_token_file, new_key
from metallb_py.kube.apiserver.persist import SqlitePersistence
from metallb_py.kube.apiserver.server import ApiServer, ServerConfig
from metallb_py.kube.apiserver.store import Store
from metallb_py.log import get_logger

log = get_logger("apiserver")


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


@dataclass
class Secrets:
    """Keys the server owns; with --data they live in the database's meta table."""

    signing_key: bytes
    admin_token: str
    ca: tls.Pem | None = None


def _load_secrets(db: SqlitePersistence | None, want_ca: bool) -> Secrets:
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
    s = Secrets(bytes.fromhex(key_hex), token)
    if want_ca:
        cert, key = get("ca_cert"), get("ca_key")
        if cert and key:
            s.ca = tls.Pem(cert.encode(), key.encode())
        else:
            s.ca = tls.make_ca()
            put("ca_cert", s.ca.cert.decode())
            put("ca_key", s.ca.key.decode())
    return s


def _ssl_context(
    args: Any, host: str, db: SqlitePersistence | None, sec: Secrets
) -> tuple[ssl.SSLContext, bytes]:
    """Serving context and the CA bundle clients should trust."""
    assert sec.ca is not None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    workdir = tempfile.mkdtemp(prefix="mlb-apiserver-")
    ca_path = os.path.join(workdir, "ca.crt")
    with open(ca_path, "wb") as f:
        f.write(sec.ca.cert)
    if args.tls_cert and args.tls_key:
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        with open(args.tls_cert, "rb") as f:
            bundle = f.read()
    else:
        hosts = [
            host,
            "127.0.0.1",
            "::1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        cert = db.get_meta("serving_cert") if db else None
        key = db.get_meta("serving_key") if db else None
        if not (cert and key and host in tls.cert_hosts(cert.encode())):
            pem = tls.serving_cert(sec.ca, hosts)
            cert, key = pem.cert.decode(), pem.key.decode()
            if db:
                db.set_meta("serving_cert", cert)
                db.set_meta("serving_key", key)
        cert_path, key_path = os.path.join(workdir, "tls.crt"), os.path.join(workdir, "tls.key")
        with open(cert_path, "w") as f:
            f.write(cert)
        with os.fdopen(os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(key)
        ctx.load_cert_chain(cert_path, key_path)
        bundle = sec.ca.cert
    # Client certificates signed by our CA authenticate (CN = user, O = groups).
    ctx.load_verify_locations(ca_path)
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
    use_tls = bool(args.tls or args.tls_cert or not loopback)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("metallb-py apiserver: --tls-cert and --tls-key go together")
    db = SqlitePersistence(args.data) if args.data else None
    sec = _load_secrets(db, want_ca=use_tls)
    store_rv = int(db.get_meta("rv") or 0) if db else 0
    # An in-memory server starts its counter from the clock, so a client's resourceVersion from
    # before a restart is always older than the new history: it gets 410 Gone, never a silent
    # resume against unrelated state.
    start = store_rv if db and store_rv else int(time.time() * 1000) * 1000
    store = Store(start_rv=start, history_limit=args.watch_history)
    if db:
        for key, raw, rv in db.rows():
            store.load(key, raw, rv)
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
    server.bootstrap()
    return server, db, sec, use_tls


def _attach_extras(server: ApiServer) -> list[Any]:
    """Admission, conversion, CEL and GC, when their modules are present."""
    started: list[Any] = []
    try:
        from metallb_py.kube.apiserver.cel import CelValidator

        server.cel = CelValidator()
    except ImportError:
        pass
    try:
        from metallb_py.kube.apiserver.admission import Admission, Conversion

        server.admission = Admission(server)
        server.conversion = Conversion(server)
    except ImportError:
        pass
    try:
        from metallb_py.kube.apiserver.gc import GarbageCollector

        server.gc = GarbageCollector(server)
        started.append(server.gc)
    except ImportError:
        pass
    return started


async def run(ctx: RunContext) -> int:
    args = ctx.args
    host, port = parse_listen(args.listen)
    ctx.readiness.require("serving", "API server not listening yet")
    server, db, sec, use_tls = build(args)
    extras = _attach_extras(server)
    ssl_ctx = None
    ca_bundle = None
    if use_tls:
        ssl_ctx, ca_bundle = _ssl_context(args, host, db, sec)
    runner = web.AppRunner(
        server.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_ctx, backlog=1024, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UsageError(
            f"metallb-py apiserver: cannot listen on {args.listen}: {exc.strerror}"
        ) from None
    server_obj: Any = site._server
    sockets = server_obj.sockets if server_obj is not None else []
    actual = sockets[0].getsockname()[1] if sockets else port
    hostport = f"[{host}]:{actual}" if ":" in host else f"{host}:{actual}"
    server.server_address = hostport
    url = f"{'https' if use_tls else 'http'}://{hostport}"
    for extra in extras:
        extra.start()
    if args.kubeconfig_out:
        client = None
        if use_tls and sec.ca is not None and not is_loopback(host):
            client = tls.client_cert(sec.ca, "admin", [MASTERS])
        write_kubeconfig(args.kubeconfig_out, url, sec.admin_token, ca_bundle, client)
    ctx.readiness.satisfy("serving")
    log.info(
        "apiserverServing",
        url=url,
        data=args.data or "",
        tls=use_tls,
        kubeconfig=args.kubeconfig_out or "",
        resourceVersion=server.store.rv,
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
