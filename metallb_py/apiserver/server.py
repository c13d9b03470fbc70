"""HTTP front end: routing, authentication/authorization, and the read, write and watch paths.

Every write goes through the same pipeline: decode -> convert to the stored version -> prune and
default (schemas) -> kind strategy and validation -> validating admission webhooks -> one
synchronous commit that re-checks the resourceVersion. Reads answer with the stored serialized
bytes whenever no conversion is needed.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import copy
import functools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from metallb_py.apiserver import apply as ssa
from metallb_py.apiserver import builtin_schemas, discovery, limits, objects, patch, table
from metallb_py.apiserver import schema as schemas
from metallb_py.apiserver import watch as watching
from metallb_py.apiserver.auth import (
    ANONYMOUS_ADMIN,
    Attributes,
    Authenticator,
    Authorizer,
    User,
)
from metallb_py.apiserver.crd import CrdInfo
from metallb_py.apiserver.errors import (
    ApiError,
    FieldError,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    gone,
    invalid,
    method_not_allowed,
    not_found,
    stale,
    unauthorized,
    unsupported_media,
)
from metallb_py.apiserver.registry import Registry
from metallb_py.apiserver.resources import Resource
from metallb_py.apiserver.selectors import parse_field_selector, parse_label_selector
from metallb_py.apiserver.services import ServiceAllocator
from metallb_py.apiserver.store import Entry, Event, Store, dumps
from metallb_py.log import get_logger
from metallb_py.objects import JSON

JSON_TYPE = "application/json"
log = get_logger("apiserver")
PATCH_TYPES = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
    "application/strategic-merge-patch+json",
]
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
WRITE_RETRIES = 8
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"


@dataclass
class ServerConfig:
    service_cidrs: list[str] = field(default_factory=lambda: ["10.96.0.0/12"])
    anonymous: bool = False
    history: int = 20_000
    watch_queue_limit: int = 200_000
    bookmark_interval: float = 10.0
    webhook_url_override: dict[str, str] = field(default_factory=dict)
    require_auth: bool = True


@dataclass
class Call:
    """One resource request, parsed."""

    res: Resource
    ns: str
    name: str
    sub: str
    verb: str
    user: User
    params: Any
    accept: str
    agent: str = ""  # User-Agent: names the field manager of writes that name none


def _truthy(v: str | None) -> bool:
    return (v or "").lower() in ("1", "true", "yes")


class ApiServer:
    def __init__(self, cfg: ServerConfig, store: Store, authn: Authenticator) -> None:
        self.cfg = cfg
        self.store = store
        self.registry = Registry()
        self.services = ServiceAllocator(cfg.service_cidrs)
        self.authn = authn
        self.authz = Authorizer(store)
        self.crds: dict[str, CrdInfo] = {}
        self.server_address = "127.0.0.1:6443"
        self._openapi_cache: tuple[int, dict[str, JSON]] | None = None
        # Hooks filled in by the optional parts (admission, conversion, GC, CRD schemas).
        self.admission: Any = None
        self.conversion: Any = None
        self.gc: Any = None
        self.cel: Any = None
        store.listeners.append(self._on_write)
        self.requests_total = 0

    # -- startup -----------------------------------------------------------------------------------
    def bootstrap(self) -> None:
        """Register CRDs and allocations from loaded state; create the default namespaces."""
        from metallb_py.apiserver import crd as crdmod

        for e in list(self.store.table("customresourcedefinitions.apiextensions.k8s.io").entries()):
            if not e.obj["metadata"].get("deletionTimestamp"):
                self._register_crd(crdmod.info_of(e.obj))
        for e in self.store.table("services").entries():
            self.services.adopt(e.obj)
        for ns in DEFAULT_NAMESPACES:
            if self.store.table("namespaces").get("", ns) is None:
                obj = {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": ns,
                        "uid": objects.new_uid(),
                        "creationTimestamp": objects.now(),
                        "labels": {"kubernetes.io/metadata.name": ns},
                    },
                }
                ns_res = self.registry.get("", "v1", "namespaces")
                assert ns_res is not None
                objects.strip_status_on_create(ns_res, obj)
                self.store.put("namespaces", obj)
        if self.store.table("services").get("default", "kubernetes") is None:
            svc: JSON = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "uid": objects.new_uid(),
                    "creationTimestamp": objects.now(),
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "ports": [
                        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}
                    ],
                    "type": "ClusterIP",
                },
            }
            if not self.services.prepare(svc, None):
                svc["status"] = {"loadBalancer": {}}
                self.store.put("services", svc)

    def _register_crd(self, info: CrdInfo) -> None:
        from metallb_py.apiserver import crd as crdmod

        self.registry.remove_crd(info.name)
        for r in crdmod.resources_of(info):
            self.registry.add(r)
        served = [v.name for v in info.versions if v.served]
        # Discovery lists the versions by Kubernetes version priority (v1 > v1beta2 > v1alpha1).
        self.registry.set_versions(
            info.group,
            sorted_versions(
                set(served)
                | {x.version for x in self.registry.by_gvr.values() if x.group == info.group}
            ),
        )
        self.crds[info.name] = info

    def _on_write(self, key: str, kind: str, old: Entry | None, new: Entry | None) -> None:
        if key == "services":
            same = (
                old is not None
                and new is not None
                and kind != "DELETED"
                and old.obj.get("spec") == new.obj.get("spec")
            )
            if not same:  # a status or metadata change allocates nothing
                if old is not None:
                    self.services.release(old.obj)
                if kind != "DELETED" and new is not None:
                    self.services.adopt(new.obj)
        elif key == "customresourcedefinitions.apiextensions.k8s.io":
            from metallb_py.apiserver import crd as crdmod

            assert new is not None
            name = new.obj["metadata"]["name"]
            if kind == "DELETED":
                self.registry.remove_crd(name)
                self.crds.pop(name, None)
            else:
                self._register_crd(crdmod.info_of(new.obj))
        if self.gc is not None:
            self.gc.on_write(key, kind, old, new)

    # -- the aiohttp application -------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=limits.MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def _authenticate(self, request: web.Request) -> User | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return self.authn.from_token(auth[7:].strip())
        if request.transport is not None:
            user = self.authn.from_cert(request.transport.get_extra_info("peercert"))
            if user is not None:
                return user
        if self.cfg.anonymous:
            return ANONYMOUS_ADMIN
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests_total += 1
        try:
            user = self._authenticate(request)
            if user is None:
                exc = unauthorized()
                if request.scheme == "http":
                    # kubectl never sends credentials over plain HTTP; say how to get in.
                    exc.message += (
                        " (kubectl sends no credentials over plain HTTP: start the "
                        "server with --anonymous on loopback, or --tls)"
                    )
                raise exc
            return await self._route(request, user)
        except ApiError as exc:
            return self._error(exc)
        except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
            return self._error(bad_request(f"error decoding request body: {exc}"))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug must not take the server down; the client sees 500
            log.exception("requestFailed", method=request.method, path=request.path)
            return self._error(
                ApiError(
                    500, "InternalError", f"Internal error occurred: {type(exc).__name__}: {exc}"
                )
            )

    @staticmethod
    def _error(exc: ApiError) -> web.Response:
        return web.Response(
            status=exc.code, body=dumps(exc.status()), content_type=JSON_TYPE, headers=exc.headers
        )

    @staticmethod
    def _json(obj: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
        body = obj if isinstance(obj, bytes) else dumps(obj)
        resp = web.Response(status=status, body=body, content_type=JSON_TYPE)
        for w in warnings or []:
            text = w.replace("\\", "\\\\").replace('"', '\\"')
            resp.headers.add("Warning", f'299 - "{text}"')
        return resp

    async def _route(self, request: web.Request, user: User) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        method = request.method
        if (
            not parts
            or parts[0] not in ("api", "apis")
            or (parts[0] == "api" and len(parts) == 1)
            or (parts[0] == "apis" and len(parts) <= 2)
        ):
            return await self._nonresource(request, user, path, parts)
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            if method != "GET":
                raise method_not_allowed(method, "APIResourceList")
            self._authorize_path(user, path)
            doc = discovery.api_resource_list(self.registry, group, version)
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._json(doc)
        watch_path = False
        if rest[0] == "watch":
            watch_path, rest = True, rest[1:]
        ns = ""
        if (
            len(rest) >= 2
            and rest[0] == "namespaces"
            and (len(rest) == 2 or self.registry.get(group, version, rest[2]) is None)
        ):
            # /api/v1/namespaces/NAME[/status|finalize]: the Namespace object itself
            plural, name, sub = "namespaces", rest[1], rest[2] if len(rest) > 2 else ""
            if len(rest) > 3:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
        elif rest[0] == "namespaces" and len(rest) >= 3:
            ns, plural = rest[1], rest[2]
            name = rest[3] if len(rest) > 3 else ""
            sub = rest[4] if len(rest) > 4 else ""
            if len(rest) > 5:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
        else:
            plural = rest[0]
            name = rest[1] if len(rest) > 1 else ""
            sub = rest[2] if len(rest) > 2 else ""
            if len(rest) > 3:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
        res = self.registry.get(group, version, plural)
        if res is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if res.namespaced and not ns and name:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not res.namespaced and ns:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub and sub not in res.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        params = request.query
        verb = self._verb(method, name, params, watch_path)
        limits.check_query(params, verb)
        call = Call(
            res,
            ns,
            name,
            sub,
            verb,
            user,
            params,
            request.headers.get("Accept", ""),
            request.headers.get("User-Agent", ""),
        )
        attrs = Attributes(verb, group, plural, sub, ns, name)
        if not self.authz.allowed(user, attrs):
            raise forbidden(self._forbidden_text(user, attrs, res))
        if verb == "get":
            return await self.get(call)
        if verb in ("list", "watch"):
            if verb == "watch":
                return await self.watch(request, call)
            return await self.list_objects(call)
        body = await _read_body(request)
        if verb == "create":
            if sub == "token":
                return await self.token_request(
                    call, await _decode_body(body, request.content_type)
                )
            return await self.create(call, await _decode_body(body, request.content_type))
        if verb == "update":
            return await self.update(call, await _decode_body(body, request.content_type))
        if verb == "patch":
            return await self.patch(call, body, request.content_type)
        if verb == "delete":
            opts = await _decode_body(body, request.content_type) if body else {}
            return await self.delete(call, opts)
        if verb == "deletecollection":
            return await self.delete_collection(call)
        raise method_not_allowed(method, res.kind)

    @staticmethod
    def _verb(method: str, name: str, params: Any, watch_path: bool) -> str:
        if method == "GET":
            if watch_path or _truthy(params.get("watch")):
                return "watch"
            return "get" if name else "list"
        if method == "POST":
            return "create"
        if method == "PUT":
            return "update"
        if method == "PATCH":
            return "patch"
        if method == "DELETE":
            return "delete" if name else "deletecollection"
        raise method_not_allowed(method, "resource")

    @staticmethod
    def _forbidden_text(user: User, a: Attributes, res: Resource) -> str:
        what = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        target = f"{what}.{a.group}" if a.group else what
        name = f' "{a.name}"' if a.name else ""
        scope = f' in the namespace "{a.namespace}"' if a.namespace else " at the cluster scope"
        return (
            f'{target}{name} is forbidden: User "{user.name}" cannot {a.verb} resource '
            f'"{what}" in API group "{a.group}"{scope}'
        )

    def _authorize_path(self, user: User, path: str) -> None:
        attrs = Attributes("get", "", "", "", "", "", path=path, resource_request=False)
        if not self.authz.allowed(user, attrs):
            raise forbidden(f'forbidden: User "{user.name}" cannot get path "{path}"')

    # -- non-resource paths: discovery, OpenAPI, version, health ---------------------------------
    async def _nonresource(
        self, request: web.Request, user: User, path: str, parts: list[str]
    ) -> web.StreamResponse:
        if request.method != "GET":
            raise method_not_allowed(request.method, path)
        self._authorize_path(user, path)
        if path == "/version":
            return self._json(discovery.VERSION_INFO)
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path in ("/api", "/apis") and discovery.wants_aggregated(
            request.headers.get("Accept", "")
        ):
            body = dumps(discovery.aggregated(self.registry, legacy=path == "/api"))
            return web.Response(body=body, headers={"Content-Type": discovery.AGGREGATED_CT})
        if path == "/api":
            return self._json(discovery.api_versions(self.server_address))
        if path == "/apis":
            return self._json(discovery.api_group_list(self.registry))
        if parts and parts[0] == "apis" and len(parts) == 2:
            doc = discovery.api_group(self.registry, parts[1])
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._json(doc)
        if path == "/openapi/v3":
            return self._json(discovery.openapi_v3_root(self.registry, self._openapi_docs()))
        if path.startswith("/openapi/v3/"):
            key = path[len("/openapi/v3/") :]
            doc = self._openapi_docs().get(key)
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._json(doc)
        if path == "/openapi/v2":
            accept = request.headers.get("Accept", "")
            if accept and "json" not in accept and "*/*" not in accept:
                raise ApiError(
                    406, "NotAcceptable", "only application/json is served for /openapi/v2"
                )
            return self._json(discovery.openapi_v2(self.registry, self._crd_schemas()))
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _crd_schemas(self) -> dict[tuple[str, str, str], JSON]:
        out = {}
        for info in self.crds.values():
            for v in info.versions:
                if v.served and v.schema is not None:
                    out[(info.group, v.name, info.kind)] = v.schema
        return out

    def _openapi_docs(self) -> dict[str, JSON]:
        gen = self.registry.generation
        if self._openapi_cache is None or self._openapi_cache[0] != gen:
            docs: dict[str, JSON] = {}
            crd_schemas = self._crd_schemas()
            for group in self.registry.groups():
                for version in self.registry.group_versions[group]:
                    doc = discovery.openapi_v3_doc(self.registry, group, version, crd_schemas)
                    if doc is not None:
                        docs[f"apis/{group}/{version}" if group else f"api/{version}"] = doc
            self._openapi_cache = (gen, docs)
        return self._openapi_cache[1]

    # -- conversion between served versions and the stored one ----------------------------------
    async def to_storage(self, res: Resource, obj: JSON) -> JSON:
        if res.version == res.storage_version and res.group == res.store_group:
            return obj
        if res.to_storage is not None:
            return res.to_storage(obj)
        return (await self.convert(res, [obj], f"{res.store_group}/{res.storage_version}"))[0]

    async def from_storage(self, res: Resource, objs: list[JSON]) -> list[JSON]:
        if res.version == res.storage_version and res.group == res.store_group:
            return objs
        if res.from_storage is not None:
            return [res.from_storage(o) for o in objs]
        return await self.convert(res, objs, res.api_version)

    async def convert(self, res: Resource, objs: list[JSON], target: str) -> list[JSON]:
        info = self.crds.get(res.crd_name)
        if not objs:
            return objs
        if (
            info is not None
            and info.conversion.get("strategy") == "Webhook"
            and (self.conversion is not None)
        ):
            converted: list[JSON] = await self.conversion.convert(info, objs, target)
            return converted
        out = []
        for o in objs:
            c = dict(o)
            c["apiVersion"] = target
            out.append(c)
        return out

    def needs_conversion(self, res: Resource) -> bool:
        return not (res.version == res.storage_version and res.group == res.store_group)

    # -- reads -----------------------------------------------------------------------------
    def _table_mode(self, accept: str) -> bool:
        return "as=Table" in accept

    def _columns(self, res: Resource) -> list[table.Column]:
        info = self.crds.get(res.crd_name) if res.is_custom else None
        if info is not None:
            v = info.version(res.version)
            cols = v.printer_columns if v is not None else None
            if not cols:
                cols = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
            return table.columns_for(res.kind, cols)
        return table.columns_for(res.kind, None)

    async def get(self, c: Call) -> web.StreamResponse:
        entry = self.store.table(c.res.store_key).get(c.ns, c.name)
        if entry is None:
            raise not_found(c.res.plural, c.res.group, c.name)
        if self._table_mode(c.accept):
            obj = (await self.from_storage(c.res, [entry.obj]))[0]
            include = c.params.get("includeObject", "Metadata")
            return self._json(
                table.table(
                    [obj], self._columns(c.res), include, {"resourceVersion": str(entry.rv)}
                )
            )
        if not self.needs_conversion(c.res):
            return self._json(entry.raw)
        return self._json((await self.from_storage(c.res, [entry.obj]))[0])

    def _filters(
        self, c: Call
    ) -> tuple[Callable[[JSON], bool] | None, Callable[[JSON], bool] | None]:
        label = parse_label_selector(c.params.get("labelSelector", ""))
        field_text = c.params.get("fieldSelector", "")
        fsel = None
        if field_text:
            extra: tuple[str, ...] = ()
            info = self.crds.get(c.res.crd_name) if c.res.is_custom else None
            if info is not None and (v := info.version(c.res.version)) is not None:
                extra = tuple(v.selectable_fields)
            if extra:
                from metallb_py.apiserver import selectors

                selectors.EXTRA_FIELDS.setdefault(c.res.plural, extra)
            fsel = parse_field_selector(field_text, c.res.plural, c.res.group)
        label_fn = None
        if label is not None:

            def label_fn(o: JSON, m: Callable[[dict[str, str]], bool] = label) -> bool:
                return m(o.get("metadata", {}).get("labels") or {})

        return label_fn, fsel

    def _matching(self, c: Call, entries: list[Entry]) -> list[Entry]:
        label_fn, field_fn = self._filters(c)
        if label_fn is None and field_fn is None:
            return entries
        return [
            e
            for e in entries
            if (label_fn is None or label_fn(e.obj)) and (field_fn is None or field_fn(e.obj))
        ]

    async def list_objects(self, c: Call) -> web.StreamResponse:
        t = self.store.table(c.res.store_key)
        limit = int(c.params.get("limit", "0") or 0)
        cont = c.params.get("continue", "")
        start: tuple[str, str] | None = None
        list_rv = self.store.rv
        if cont:
            try:
                token = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)))
                start = (token["ns"], token["name"])
                list_rv = int(token["rv"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid") from None
        label_fn, field_fn = self._filters(c)
        only = _single_name(c.params.get("fieldSelector", ""))
        if only is not None:
            # `metadata.name=X` (kubectl wait, informers on one object): a lookup, not a scan
            keys = [
                (ns, only)
                for ns in ([c.ns] if c.ns else list(t.objects))
                if t.get(ns, only) is not None and (start is None or (ns, only) > start)
            ]
        else:
            keys = t.keys_after(start)
            if c.ns:
                lo = bisect.bisect_left(keys, (c.ns, ""))
                hi = bisect.bisect_left(keys, (c.ns + "\x00", ""))
                keys = keys[lo:hi]
        selected: list[Entry] = []
        next_key: tuple[str, str] | None = None
        remaining = 0
        for i, (ns, name) in enumerate(keys):
            e = t.get(ns, name)
            if e is None:
                continue
            if (label_fn is not None and not label_fn(e.obj)) or (
                field_fn is not None and not field_fn(e.obj)
            ):
                continue
            if limit and len(selected) >= limit:
                next_key = keys[i - 1] if i else None
                remaining = len(keys) - i
                break
            selected.append(e)
        meta: JSON = {"resourceVersion": str(list_rv)}
        if next_key is not None and selected:
            last = selected[-1].obj["metadata"]
            token = {"rv": list_rv, "ns": last.get("namespace", ""), "name": last["name"]}
            meta["continue"] = base64.urlsafe_b64encode(dumps(token)).decode().rstrip("=")
            if label_fn is None and field_fn is None:
                meta["remainingItemCount"] = remaining
        if self._table_mode(c.accept):
            objs = await self.from_storage(c.res, [e.obj for e in selected])
            include = c.params.get("includeObject", "Metadata")
            return self._json(table.table(objs, self._columns(c.res), include, meta))
        head = dumps({"kind": c.res.list_kind, "apiVersion": c.res.api_version, "metadata": meta})
        if not self.needs_conversion(c.res):
            items = b",".join(e.raw for e in selected)
        else:
            items = b",".join(
                dumps(o) for o in await self.from_storage(c.res, [e.obj for e in selected])
            )
        return self._json(head[:-1] + b',"items":[' + items + b"]}")

    # -- watch -----------------------------------------------------------------------------
    async def watch(self, request: web.Request, c: Call) -> web.StreamResponse:
        """A watch: where it starts, then the stream (see `watch.py` for the pieces)."""
        key = c.res.store_key
        match, everything = self._watch_match(c)
        rv_param = c.params.get("resourceVersion", "")
        send_initial = _truthy(c.params.get("sendInitialEvents"))
        bookmarks = _truthy(c.params.get("allowWatchBookmarks"))
        timeout = float(c.params.get("timeoutSeconds") or random.uniform(1800, 3600))
        start = self._watch_start(key, c.ns, match, rv_param, send_initial)
        start_rv = self.store.rv
        w = self.store.subscribe(key)
        if everything:  # of a namespace or all: the store's own cheap filter is enough
            w.namespace = c.ns
        else:
            w.accept = functools.partial(watching.event_type, match)
        w.transport = request.transport  # its unsent bytes count against the watch budget
        tables = self._table_mode(c.accept)
        encoder = watching.Encoder(
            c.res,
            self.from_storage if self.needs_conversion(c.res) else None,
            self._columns(c.res) if tables else None,
            c.params.get("includeObject", "Metadata"),
        )
        resp = web.StreamResponse(headers={"Content-Type": JSON_TYPE, "Cache-Control": "no-cache"})
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            if start is None:
                floor = self.store.table(key).floor + 1
                status = gone(f"too old resource version: {rv_param} ({floor})").status()
                await resp.write(dumps({"type": "ERROR", "object": status}) + b"\n")
                return resp
            initial, replay = start
            out = [await encoder.encode("ADDED", e) for e in initial]
            for ev in replay:
                kind = watching.event_type(match, ev)
                if kind is not None:
                    out.append(await encoder.encode(kind, ev.entry))
            if send_initial and bookmarks:
                out.append(watching.bookmark(c.res, start_rv, initial_end=True))
            if out:
                await resp.write(b"".join(out))
            if (
                encoder.columns is None
                and encoder.convert is None
                and request.transport is not None
            ):
                w.set_sink(watching.direct_sink(w, request.transport))
            await watching.pump(
                resp,
                w,
                encoder,
                until=time.monotonic() + timeout,
                bookmark_every=self.cfg.bookmark_interval if bookmarks else None,
                current_rv=lambda: self.store.rv,
            )
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unsubscribe(key, w)
        return resp

    def _watch_match(self, c: Call) -> tuple[Callable[[JSON], bool], bool]:
        """The namespace, label and field selectors of a watch as one predicate, and whether it
        selects every object of its namespace (or of all); the legacy
        /watch/namespaces/ns/things/name means fieldSelector=metadata.name=name."""
        label_fn, field_fn = self._filters(c)
        ns, name = c.ns, c.name
        everything = not name and label_fn is None and field_fn is None

        def match(o: JSON) -> bool:
            meta = o.get("metadata", {})
            if ns and meta.get("namespace") != ns:
                return False
            if name and meta.get("name") != name:
                return False
            if label_fn is not None and not label_fn(o):
                return False
            return field_fn is None or field_fn(o)

        return match, everything

    def _watch_start(
        self, key: str, ns: str, match: Callable[[JSON], bool], rv_param: str, send_initial: bool
    ) -> tuple[list[Entry], list[Event]] | None:
        """What a watch sends before live events: (the current objects, the events since its
        resourceVersion); None when that version is compacted away (410 Gone)."""
        if rv_param in ("", "0") or send_initial:
            initial = [e for e in self.store.table(key).entries(ns or None) if match(e.obj)]
            return sorted(initial, key=lambda e: e.rv), []
        try:
            since = int(rv_param)
        except ValueError:
            raise bad_request(f"invalid resource version {rv_param!r}") from None
        if since > self.store.rv:
            raise ApiError(
                504,
                "Timeout",
                f"Too large resource version: {since}, current: {self.store.rv}",
                details={
                    "causes": [
                        {
                            "reason": "ResourceVersionTooLarge",
                            "message": "Too large resource version",
                        }
                    ],
                    "retryAfterSeconds": 1,
                },
                headers={"Retry-After": "1"},
            )
        history = self.store.history_since(key, since)
        return None if history is None else ([], history)

    # -- writes ----------------------------------------------------------------------------------
    def _field_validation(self, c: Call) -> str:
        mode = c.params.get("fieldValidation", "") or "Warn"
        if mode not in ("Strict", "Warn", "Ignore"):
            raise bad_request(f"fieldValidation must be one of Strict, Warn, Ignore, not {mode!r}")
        return mode

    def _schema_for(self, res: Resource) -> tuple[JSON | None, bool]:
        """The structural schema of a served version, and whether to validate values with it."""
        if res.is_custom:
            info = self.crds.get(res.crd_name)
            v = info.version(res.version) if info else None
            return (v.schema if v else None), True
        return builtin_schemas.top_level(res.kind, res.group), False

    def _prune(
        self, c: Call, obj: JSON, warnings: list[str], pristine: JSON | None = None
    ) -> tuple[JSON, list[FieldError]]:
        """Drop and report unknown fields; validate a custom resource against its schema. With
        `pristine`, the top-level values decoded from the stored object, a built-in kind's fields
        the write left alone are taken as they are: they were pruned when stored (a status
        update prunes its status only)."""
        schema, validate = self._schema_for(c.res)
        if schema is None:
            return obj, []
        out = schemas.Outcome()
        if validate:
            result = schemas.walk(obj, schema, out)
        elif pristine is None:
            result = schemas.prune(obj, schema, out)
        else:
            part = _changed_fields(obj, pristine)
            pruned = schemas.prune(part, schema, out)
            result = (
                obj
                if pruned is part
                else {
                    k: pruned[k] if k in part else v
                    for k, v in obj.items()
                    if k in pruned or k not in part
                }
            )
        mode = self._field_validation(c)
        if out.unknown:
            if mode == "Strict":
                raise bad_request(
                    "strict decoding error: "
                    + ", ".join(f'unknown field "{u}"' for u in out.unknown)
                )
            if mode == "Warn":
                warnings.extend(f'unknown field "{u}"' for u in out.unknown)
        return result, out.errors

    def _check_types(self, c: Call, obj: JSON, pristine: JSON | None = None) -> None:
        """What the typed decoder refuses with a 400: metadata of the wrong JSON types, and for
        built-in kinds every field their schema types (custom resources get their schema's 422).
        With `pristine` (see `_prune`), only the top-level fields the write changed are checked."""
        schema = None if c.res.is_custom else builtin_schemas.top_level(c.res.kind, c.res.group)
        part = (
            obj if pristine is None or not isinstance(obj, dict) else _changed_fields(obj, pristine)
        )
        limits.check_types(c.res.kind, c.res.version, part, schema)

    def _check_envelope(self, c: Call, obj: Any) -> JSON:
        if not isinstance(obj, dict):
            raise bad_request("the request body must be a JSON object")
        # Like the real decoder, a missing kind/apiVersion defaults to the endpoint's own.
        want_kind = "TokenRequest" if c.sub == "token" else c.res.kind
        kind = obj.setdefault("kind", want_kind)
        if kind != want_kind:
            raise bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({want_kind})"
            )
        if c.sub != "token":
            api_version = obj.setdefault("apiVersion", c.res.api_version)
            if api_version != c.res.api_version:
                raise bad_request(
                    f"the API version in the data ({api_version}) does not match the "
                    f"expected API version ({c.res.api_version})"
                )
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        return meta

    def _namespace_ok(self, ns: str, creating: bool) -> None:
        nse = self.store.table("namespaces").get("", ns)
        if nse is None:
            raise not_found("namespaces", "", ns)
        if creating and nse.obj["metadata"].get("deletionTimestamp"):
            raise forbidden(
                f"unable to create new content in namespace {ns} because it is being terminated"
            )

    def _kind_checks(
        self, res: Resource, obj: JSON, old: JSON | None, sub: str
    ) -> list[FieldError]:
        errs = objects.check_meta(obj["metadata"])
        if sub == "status":
            return errs
        errs += objects.check_kind(res, obj, old)
        if res.plural == "services" and res.group == "":
            errs += self.services.prepare(obj, old)
        elif res.plural == "customresourcedefinitions":
            from metallb_py.apiserver import crd as crdmod

            crdmod.default_crd(obj)
            errs += crdmod.check_crd(obj)
            if old is not None:
                for k in ("group", "scope"):
                    if obj["spec"].get(k) != old["spec"].get(k):
                        errs.append(
                            FieldError(
                                f"spec.{k}",
                                "Invalid value",
                                "field is immutable",
                                obj["spec"].get(k),
                            )
                        )
            if self.cel is not None:
                errs += self._check_crd_rules(obj)
            if not errs:
                obj["status"] = crdmod.established_status(obj, objects.now())
        return errs

    def _check_crd_rules(self, crd: JSON) -> list[FieldError]:
        """Every CEL rule of every version must compile, or the CRD is refused (as the real
        server refuses it)."""
        errs: list[FieldError] = []

        def visit(node: Any, path: str) -> None:
            if not isinstance(node, dict):
                return
            for i, rule in enumerate(node.get("x-kubernetes-validations") or []):
                for key in ("rule", "messageExpression"):
                    text = rule.get(key) if isinstance(rule, dict) else None
                    if text:
                        problem = self.cel.check_rule(text)
                        if problem:
                            errs.append(
                                FieldError(
                                    f"{path}.x-kubernetes-validations[{i}].{key}",
                                    "Invalid value",
                                    f"compilation failed: {problem}",
                                    text,
                                )
                            )
            for k, sub in (node.get("properties") or {}).items():
                visit(sub, f"{path}.properties[{k}]")
            if isinstance(node.get("items"), dict):
                visit(node["items"], f"{path}.items")
            if isinstance(node.get("additionalProperties"), dict):
                visit(node["additionalProperties"], f"{path}.additionalProperties")

        for i, v in enumerate((crd.get("spec") or {}).get("versions") or []):
            visit(
                (v.get("schema") or {}).get("openAPIV3Schema"),
                f"spec.versions[{i}].schema.openAPIV3Schema",
            )
        return errs

    def _cr_checks(self, res: Resource, obj: JSON, old: JSON | None) -> list[FieldError]:
        if not res.is_custom or self.cel is None:
            return []
        info = self.crds.get(res.crd_name)
        v = info.version(res.version) if info else None
        if v is None or v.schema is None:
            return []
        errs: list[FieldError] = self.cel.validate(v.schema, obj, old)
        return errs

    async def _admit(
        self, c: Call, op: str, obj: JSON | None, old: JSON | None, warnings: list[str]
    ) -> None:
        if self.admission is not None:
            await self.admission.review(self, c, op, obj, old, warnings)

    def _rollback(self, c: Call, obj: JSON, old: JSON | None) -> None:
        """Undo the reservations `prepare` made for an object that was never stored."""
        if c.res.plural == "services" and c.res.group == "":
            self.services.release(obj)
            if old is not None:
                self.services.adopt(old)

    async def create(
        self, c: Call, obj: Any, managed_fields: list[JSON] | None = None
    ) -> web.StreamResponse:
        meta = self._check_envelope(c, obj)
        self._check_types(c, obj)
        warnings: list[str] = []
        obj, errs = self._prune(c, obj, warnings)
        meta = obj["metadata"]
        if c.res.namespaced:
            if meta.get("namespace") and meta["namespace"] != c.ns:
                raise bad_request(
                    "the namespace of the provided object does not match the "
                    "namespace sent on the request"
                )
            meta["namespace"] = c.ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = self._free_generated_name(c, meta["generateName"])
            else:
                errs.append(
                    FieldError(
                        "metadata.name", "Required value", "name or generateName is required"
                    )
                )
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        name = meta.get("name", "")
        if name:
            errs += objects.check_name(c.res, name)
        for k in objects.SYSTEM_META:
            meta.pop(k, None)
        meta["uid"] = objects.new_uid()
        meta["creationTimestamp"] = objects.now()
        meta["generation"] = 1
        # Owned: what the client sent, not what the server defaults or allocates below.
        if managed_fields is None:
            self._track(c, None, obj, meta.get("managedFields"))
        elif managed_fields:
            meta["managedFields"] = managed_fields
        else:
            meta.pop("managedFields", None)
        objects.strip_status_on_create(c.res, obj)
        objects.apply_kind_defaults(c.res, obj)
        if c.res.plural == "secrets" and obj.get("type") == SA_TOKEN_TYPE:
            errs += self._fill_sa_token(c.ns, obj)
        if c.res.plural == "namespaces":
            labels = meta.setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = name
        errs += self._cr_checks(c.res, obj, None)
        errs += self._kind_checks(c.res, obj, None, "")
        errs += limits.size_errors(c.res.plural, obj)
        if errs:
            self._rollback(c, obj, None)
            raise invalid(c.res.kind, c.res.group, name, errs)
        try:
            if c.res.namespaced:
                self._namespace_ok(c.ns, creating=True)
            await self._admit(c, "CREATE", obj, None, warnings)
            stored = await self.to_storage(c.res, obj)
            t = self.store.table(c.res.store_key)
            dry = _truthy(c.params.get("dryRun")) or c.params.get("dryRun") == "All"
            refusal: ApiError | None = None
            if t.get(c.ns, name) is not None:
                refusal = already_exists(c.res.plural, c.res.group, name)
            elif c.res.namespaced:
                try:
                    self._namespace_ok(c.ns, creating=True)
                except ApiError as exc:
                    refusal = exc
            if refusal is not None or dry:
                # An object too large is refused as such first; the store's write checks
                # the size of the bytes it serializes anyway, so a stored write pays no
                # second serialization for it.
                limits.check_stored_size(len(dumps(stored)))
            if refusal is not None:
                raise refusal
        except BaseException:
            self._rollback(c, obj, None)
            raise
        if dry:
            self._rollback(c, obj, None)
            return self._json(obj, 201, warnings)
        try:
            entry = self.store.put(c.res.store_key, stored, limits.check_stored_size)
        except ApiError:  # too large, or the database refused: free what `prepare` reserved
            self._rollback(c, obj, None)
            raise
        return await self._respond(c, entry, 201, warnings)

    def _free_generated_name(self, c: Call, prefix: str) -> str:
        """A generated name no object has yet. Five random characters collide about once per
        14 million names, i.e. a few times in 10 000 objects of one prefix; like Kubernetes since
        1.32 (RetryGenerateName), try again instead of failing the create with 409."""
        t = self.store.table(c.res.store_key)
        name = prefix + objects.generate_suffix()
        for _ in range(8):
            if t.get(c.ns, name) is None:
                break
            name = prefix + objects.generate_suffix()
        return name

    async def _respond(
        self, c: Call, entry: Entry, status: int, warnings: list[str]
    ) -> web.StreamResponse:
        if not self.needs_conversion(c.res):
            return self._json(entry.raw, status, warnings)
        return self._json((await self.from_storage(c.res, [entry.obj]))[0], status, warnings)

    async def update(self, c: Call, obj: Any) -> web.StreamResponse:
        self._check_envelope(c, obj)
        if obj["metadata"].get("name") and obj["metadata"]["name"] != c.name:
            raise bad_request(
                f"the name of the object ({obj['metadata']['name']}) does not match "
                f"the name on the URL ({c.name})"
            )
        return await self._write(c, lambda current: copy.deepcopy(obj))

    async def patch(self, c: Call, body: bytes, content_type: str) -> web.StreamResponse:
        if content_type not in PATCH_TYPES:
            raise unsupported_media(content_type, PATCH_TYPES)
        if content_type == "application/apply-patch+yaml":
            return await self.server_side_apply(c, body)
        if c.params.get("force") is not None:
            raise invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                [FieldError("force", "Forbidden", "may not be specified for non-apply patch")],
            )
        if content_type == "application/strategic-merge-patch+json" and c.res.is_custom:
            raise unsupported_media(content_type, PATCH_TYPES[:3])
        doc = await _in_thread(limits.decode_json, body or b"null")

        def apply(current: JSON) -> JSON:
            if content_type == "application/json-patch+json":
                return patch.json_patch(current, doc)
            if not isinstance(doc, dict):
                raise bad_request("patch body must be a JSON object")
            if content_type == "application/merge-patch+json":
                return patch.merge_patch(current, doc)
            return patch.strategic_merge(current, doc, c.res.kind)

        return await self._write(c, apply, patching=True)

    def field_types(self, res: Resource) -> ssa.Types:
        """Where server-side apply learns which lists are keyed, for this resource."""
        if res.is_custom:
            return ssa.Types(res.kind, self._schema_for(res)[0], custom=True)
        return ssa.Types(res.kind)

    def _writer(self, c: Call, manager: str) -> ssa.Writer:
        """`manager` writing through this call's resource and subresource."""
        res = c.res
        has_status = "status" in res.subresources
        return ssa.Writer(manager, res.api_version, self.field_types(res), c.sub, has_status)

    def _track(self, c: Call, old: JSON | None, new: JSON, sent: Any) -> None:
        """Record the write in managedFields as an Update by its field manager."""
        old_meta = old["metadata"] if old is not None else {}
        if c.sub not in ("", "status"):
            start = old_meta.get("managedFields")
        else:
            manager = c.params.get("fieldManager") or ssa.default_manager(c.agent)
            given = ssa.given_or_live(old_meta, {"managedFields": sent})
            start = ssa.record_update(old, new, given, self._writer(c, manager))
        if start:
            new["metadata"]["managedFields"] = start
        else:
            new["metadata"].pop("managedFields", None)

    async def server_side_apply(self, c: Call, body: bytes) -> web.StreamResponse:
        """PATCH application/apply-patch+yaml: merge as the field manager, creating the object
        if it does not exist yet (which needs `create` permission too)."""
        manager = c.params.get("fieldManager", "")
        if not manager:
            raise bad_request(
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                "is required for apply patch"
            )
        applied = await _in_thread(ssa.load_yaml, body)
        if isinstance(applied, dict):
            limits.check_meta_types(c.res.kind, c.res.version, applied.get("metadata"))
        doc = ssa.check_applied(
            applied,
            kind=c.res.kind,
            api_version=c.res.api_version,
            name=c.name,
            namespace=c.ns,
            namespaced=c.res.namespaced,
        )
        writer = self._writer(c, manager)

        def merge(live: JSON) -> JSON:
            return ssa.apply(live, doc, writer, force=_truthy(c.params.get("force")))

        if c.sub == "" and self.store.table(c.res.store_key).get(c.ns, c.name) is None:
            attrs = Attributes("create", c.res.group, c.res.plural, "", c.ns, c.name)
            if not self.authz.allowed(c.user, attrs):
                raise forbidden(self._forbidden_text(c.user, attrs, c.res))
            obj = merge({"metadata": {}})
            fields = obj["metadata"].pop("managedFields")
            try:
                return await self.create(c, obj, managed_fields=fields)
            except ApiError as exc:
                if exc.reason != "AlreadyExists":
                    raise
        return await self._write(c, merge, patching=True, applying=True)

    async def _write(
        self,
        c: Call,
        make: Callable[[JSON], JSON],
        patching: bool = False,
        applying: bool = False,
    ) -> web.StreamResponse:
        t = self.store.table(c.res.store_key)
        for _attempt in range(WRITE_RETRIES):
            current = t.get(c.ns, c.name)
            if current is None:
                raise not_found(c.res.plural, c.res.group, c.name)
            view = json.loads(current.raw)
            if self.needs_conversion(c.res):
                view = (await self.from_storage(c.res, [view]))[0]
            # Stored objects are never mutated, so the current one serves as "old" as is.
            old_view = copy.deepcopy(view) if self.needs_conversion(c.res) else current.obj
            # The top-level values as decoded from the stored bytes: a field the write leaves
            # alone is still this very object afterwards (patches build new containers along
            # what they change and never modify the target), so it needs no check again.
            pristine = dict(view)
            new = make(view)
            if not isinstance(new, dict):
                raise bad_request("the result must be an object")
            warnings: list[str] = []
            new.setdefault("metadata", {})
            if not isinstance(new["metadata"], dict):
                raise bad_request("metadata must be an object")
            self._check_types(c, new, pristine)
            new["apiVersion"], new["kind"] = c.res.api_version, c.res.kind
            new, errs = self._prune(c, new, warnings, pristine)
            meta = new["metadata"]
            sent_fields = meta.get("managedFields")
            given_rv = meta.get("resourceVersion")
            if given_rv and given_rv != str(current.rv):
                raise stale(c.res.plural, c.res.group, c.name)
            if meta.get("name", c.name) != c.name:
                raise bad_request("metadata.name is immutable")
            if c.ns and meta.get("namespace", c.ns) != c.ns:
                raise bad_request(
                    "the namespace of the provided object does not match the "
                    "namespace sent on the request"
                )
            if meta.get("uid") and meta["uid"] != old_view["metadata"].get("uid"):
                raise conflict(
                    c.res.plural,
                    c.res.group,
                    c.name,
                    f"Precondition failed: UID in precondition: {meta['uid']}, UID in "
                    f"object meta: {old_view['metadata'].get('uid')}",
                )
            new = self._apply_subresource_rules(c, old_view, new)
            meta = new["metadata"]
            meta["name"] = c.name
            if c.ns:
                meta["namespace"] = c.ns
            for k in objects.SYSTEM_META:
                if k in old_view["metadata"]:
                    meta[k] = old_view["metadata"][k]
                else:
                    meta.pop(k, None)
            if c.sub != "status" and objects.spec_changed(old_view, new):
                meta["generation"] = int(old_view["metadata"].get("generation", 1)) + 1
            meta["resourceVersion"] = str(current.rv)
            if applying:
                if sent_fields:
                    meta["managedFields"] = sent_fields
                else:
                    meta.pop("managedFields", None)
            else:
                self._track(c, old_view, new, sent_fields)
            if c.sub == "" and c.res.plural == "secrets":
                objects.apply_kind_defaults(c.res, new)
            if new == old_view and objects.same_json(new, old_view):
                return await self._respond(c, current, 200, warnings)
            if c.sub == "" or c.sub == "status":
                errs += self._cr_checks(c.res, new, old_view)
                errs += self._kind_checks(c.res, new, old_view, c.sub)
            errs += limits.size_errors(c.res.plural, new)
            if errs:
                self._rollback(c, new, old_view)
                raise invalid(c.res.kind, c.res.group, c.name, errs)
            try:
                await self._admit(c, "UPDATE", new, old_view, warnings)
                stored = await self.to_storage(c.res, new)
            except BaseException:
                self._rollback(c, new, old_view)
                raise
            latest = t.get(c.ns, c.name)
            smeta = stored["metadata"]
            removing = (
                smeta.get("deletionTimestamp")
                and not smeta.get("finalizers")
                and not (
                    c.res.plural == "namespaces" and (stored.get("spec") or {}).get("finalizers")
                )
            )
            if latest is not current or c.params.get("dryRun") == "All" or removing:
                # The size is refused first; a write the store makes checks it there instead,
                # on the bytes it serializes, with no second serialization here.
                try:
                    limits.check_stored_size(len(dumps(stored)))
                except ApiError:
                    self._rollback(c, new, old_view)
                    raise
            if latest is not current:
                self._rollback(c, new, old_view)
                if given_rv and not patching:
                    raise stale(c.res.plural, c.res.group, c.name)
                if latest is None:
                    raise not_found(c.res.plural, c.res.group, c.name)
                continue
            if c.params.get("dryRun") == "All":
                self._rollback(c, new, old_view)
                return self._json(new, 200, warnings)
            if removing:
                gone_entry = self.store.remove(c.res.store_key, c.ns, c.name)
                assert gone_entry is not None
                return await self._respond(c, gone_entry, 200, warnings)
            try:
                entry = self.store.put(c.res.store_key, stored, limits.check_stored_size)
            except ApiError:  # too large, or the database refused: restore the old allocations
                self._rollback(c, new, old_view)
                raise
            return await self._respond(c, entry, 200, warnings)
        raise conflict(c.res.plural, c.res.group, c.name, "too many concurrent modifications")

    def _apply_subresource_rules(self, c: Call, old: JSON, new: JSON) -> JSON:
        """Status endpoints change status only; the main endpoint never changes status."""
        if c.sub == "status":
            if c.res.is_custom:
                result = copy.deepcopy(old)
                if "status" in new:
                    result["status"] = new["status"]
                else:
                    result.pop("status", None)
                result["metadata"]["resourceVersion"] = new["metadata"].get("resourceVersion")
                return result
            if "spec" in old:
                new["spec"] = old["spec"]
            else:
                new.pop("spec", None)
            return new
        if c.sub == "finalize":
            result = copy.deepcopy(old)
            result.setdefault("spec", {})["finalizers"] = (new.get("spec") or {}).get(
                "finalizers"
            ) or []
            return result
        if "status" in c.res.subresources:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        return new

    async def delete(self, c: Call, opts: Any) -> web.StreamResponse:
        if not isinstance(opts, dict):
            opts = {}
        t = self.store.table(c.res.store_key)
        current = t.get(c.ns, c.name)
        if current is None:
            raise not_found(c.res.plural, c.res.group, c.name)
        pre = opts.get("preconditions") or {}
        meta = current.obj["metadata"]
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise conflict(
                c.res.plural,
                c.res.group,
                c.name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                f"object meta: {meta.get('uid')}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != str(current.rv):
            raise conflict(
                c.res.plural,
                c.res.group,
                c.name,
                f"Precondition failed: ResourceVersion in precondition: "
                f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                f"{current.rv}",
            )
        policy = opts.get("propagationPolicy") or c.params.get("propagationPolicy")
        if not policy and opts.get("orphanDependents") is not None:
            policy = "Orphan" if opts["orphanDependents"] else "Background"
        policy = policy or "Background"
        if policy not in ("Background", "Foreground", "Orphan"):
            raise bad_request(
                f"propagationPolicy must be Background, Foreground or Orphan, not {policy!r}"
            )
        warnings: list[str] = []
        old_view = (await self.from_storage(c.res, [current.obj]))[0]
        await self._admit(c, "DELETE", None, old_view, warnings)
        if c.params.get("dryRun") == "All":
            return await self._respond(c, current, 200, warnings)
        entry = self.delete_object(c.res.store_key, c.ns, c.name, policy)
        if entry is None:
            raise not_found(c.res.plural, c.res.group, c.name)
        return await self._respond(c, entry, 200, warnings)

    def delete_object(
        self, key: str, ns: str, name: str, policy: str = "Background"
    ) -> Entry | None:
        """Delete now, or mark for deletion when finalizers (or a policy's) must run first."""
        t = self.store.table(key)
        current = t.get(ns, name)
        if current is None:
            return None
        meta = current.obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        ns_finalizers = key == "namespaces" and bool(
            (current.obj.get("spec") or {}).get("finalizers")
        )
        if key == "customresourcedefinitions.apiextensions.k8s.io":
            self._delete_crs(current.obj)
        if finalizers or ns_finalizers:
            if meta.get("deletionTimestamp") and finalizers == list(meta.get("finalizers") or []):
                return current
            obj = json.loads(current.raw)
            obj["metadata"].setdefault("deletionTimestamp", objects.now())
            obj["metadata"].setdefault("deletionGracePeriodSeconds", 0)
            obj["metadata"]["finalizers"] = finalizers
            if key == "namespaces":
                obj.setdefault("status", {})["phase"] = "Terminating"
            entry = self.store.put(key, obj)
            if self.gc is not None:
                self.gc.kick()
            return entry
        return self.store.remove(key, ns, name)

    def _delete_crs(self, crd: JSON) -> None:
        spec = crd.get("spec") or {}
        key = f"{(spec.get('names') or {}).get('plural')}.{spec.get('group')}"
        t = self.store.table(key)
        for e in list(t.entries()):
            m = e.obj["metadata"]
            self.store.remove(key, m.get("namespace", ""), m["name"])

    async def delete_collection(self, c: Call) -> web.StreamResponse:
        t = self.store.table(c.res.store_key)
        entries = self._matching(c, list(t.entries(c.ns or None)))
        deleted = []
        for e in entries:
            m = e.obj["metadata"]
            sub_call = Call(
                c.res, m.get("namespace", ""), m["name"], "", "delete", c.user, c.params, c.accept
            )
            await self._admit(sub_call, "DELETE", None, e.obj, [])
            got = self.delete_object(
                c.res.store_key,
                m.get("namespace", ""),
                m["name"],
                c.params.get("propagationPolicy") or "Background",
            )
            if got is not None:
                deleted.append(got.obj)
        objs = await self.from_storage(c.res, deleted)
        return self._json(
            {
                "kind": c.res.list_kind,
                "apiVersion": c.res.api_version,
                "metadata": {"resourceVersion": str(self.store.rv)},
                "items": objs,
            }
        )

    def _fill_sa_token(self, ns: str, secret: JSON) -> list[FieldError]:
        """The legacy token controller: a Secret of type service-account-token gets a
        non-expiring token of the ServiceAccount its annotation names."""
        annotations = secret["metadata"].setdefault("annotations", {})
        sa_name = annotations.get("kubernetes.io/service-account.name", "")
        sa = self.store.table("serviceaccounts").get(ns, sa_name)
        if sa is None:
            return [
                FieldError(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "Not found",
                    "",
                    sa_name,
                )
            ]
        uid = sa.obj["metadata"]["uid"]
        annotations["kubernetes.io/service-account.uid"] = uid
        token, _ = self.authn.sa_token(ns, sa_name, uid)
        data = dict(secret.get("data") or {})
        data["token"] = base64.b64encode(token.encode()).decode()
        data["namespace"] = base64.b64encode(ns.encode()).decode()
        secret["data"] = data
        return []

    async def token_request(self, c: Call, body: Any) -> web.StreamResponse:
        sa = self.store.table("serviceaccounts").get(c.ns, c.name)
        if sa is None:
            raise not_found("serviceaccounts", "", c.name)
        spec = (body or {}).get("spec") or {}
        ttl = int(spec.get("expirationSeconds") or 3600)
        token, exp = self.authn.sa_token(c.ns, c.name, sa.obj["metadata"]["uid"], ttl)
        from datetime import UTC, datetime

        return self._json(
            {
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": c.name, "namespace": c.ns, "creationTimestamp": objects.now()},
                "spec": {
                    "audiences": spec.get("audiences") or ["https://kubernetes.default.svc"],
                    "expirationSeconds": ttl,
                },
                "status": {
                    "token": token,
                    "expirationTimestamp": datetime.fromtimestamp(exp, UTC).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    ),
                },
            },
            201,
        )


_ABSENT = object()


def _changed_fields(obj: JSON, pristine: JSON) -> JSON:
    """The top-level fields of `obj` that are not the very values decoded from the stored
    object (`pristine`). A stored object passed the typed-decoder check and pruning when it was
    written, so what a write leaves alone needs neither again, as Kubernetes ratchets
    validation of unchanged fields. Identity, not equality: 80.0 == 80 and True == 1 in Python,
    not to a typed client."""
    return {k: v for k, v in obj.items() if pristine.get(k, _ABSENT) is not v}


def _single_name(selector: str) -> str | None:
    """X when the field selector is exactly `metadata.name=X` (or `==`)."""
    if "," in selector or "!" in selector:
        return None
    key, sep, value = selector.partition("=")
    if not sep or key.strip() != "metadata.name":
        return None
    return value.lstrip("=").strip()


async def _read_body(request: web.Request) -> bytes:
    """The body, refused with 413 before it is read when it announces more than the limit, and
    as soon as a chunked one passes it."""
    if (request.content_length or 0) > limits.MAX_REQUEST_BYTES:
        raise limits.body_too_large()
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise limits.body_too_large() from None


async def _in_thread(fn: Callable[[bytes], Any], body: bytes) -> Any:
    """Decode a large body in a worker thread, so other clients are answered meanwhile."""
    if len(body) <= limits.THREAD_DECODE_BYTES:
        return fn(body)
    return await asyncio.to_thread(fn, body)


async def _decode_body(body: bytes, content_type: str) -> Any:
    return await _in_thread(lambda b: _decode(b, content_type), body)


def _decode(body: bytes, content_type: str) -> Any:
    if not body:
        raise bad_request("the request body is empty")
    if "protobuf" in content_type:
        # kubectl's imperative generators (`kubectl create configmap ...`) send protobuf.
        from metallb_py.apiserver import protobuf

        try:
            doc = protobuf.decode(body)
        except protobuf.ProtobufError as exc:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"{exc}: send JSON instead (kubectl create -f/apply -f, or --raw)",
            ) from None
        limits.check_data(doc)
        return doc
    if "cbor" in content_type:
        raise unsupported_media(content_type, ["application/json", "application/yaml"])
    if "yaml" in content_type:
        return ssa.load_yaml(body)
    return limits.decode_json(body)


def _version_key(v: str) -> tuple[int, int, int, str]:
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (3, 0, 0, v)
    major = int(m.group(1))
    stage = {"alpha": 2, None: 0, "beta": 1}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor, v)


def sorted_versions(versions: set[str]) -> list[str]:
    return sorted(versions, key=_version_key)
