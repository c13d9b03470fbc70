"""The speaker's status objects: ServiceL2Status, ServiceBGPStatus, BGPSessionState and
ConfigurationState `speaker-<node>`, kept equal to what this node really does.

Level-triggered: `set_desired` records what should exist, a single writer task compares it with
the objects this node owns (an informer with `metallb.io/node=<node>`) and creates, updates or
deletes the difference. Objects are owned by the speaker Pod when there is one (so they go with
the Pod) and by the Node otherwise (systemd, demo), so they neither leak nor vanish while the
speaker runs; an object owned by someone else (an earlier Pod) is replaced.

The informers cache these objects trimmed (`cached_status_object`: 10 100 objects at 10 000
services), so a write never sends a cached object back: it is a JSON merge patch of `/status`
under the cached resourceVersion. `status` is the speaker's own: the patch sets it to exactly
what this node does (a field it does not write is removed); labels, annotations and
ownerReferences that others add are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from metallb_py.config.status import same_configuration_state
from metallb_py.kube import metrics as kube_metrics
from metallb_py.kube.informer import Informer
from metallb_py.kube.rest import (
    BGPSESSIONSTATES,
    CONFIGURATIONSTATES,
    NODES,
    PODS,
    SERVICEBGPSTATUSES,
    SERVICEL2STATUSES,
    ApiError,
    Resource,
    Rest,
)
from metallb_py.kube.status import StatusWriter, WriteOutcome, WriteResult, status_patch
from metallb_py.kube.transform import head, intern
from metallb_py.kube.transform import metadata as trimmed_metadata
from metallb_py.log import get_logger
from metallb_py.objects import JSON
from metallb_py.speaker.resources import (
    LABEL_NODE,
    LABEL_PEER,
    LABEL_SERVICE_NAME,
    LABEL_SERVICE_NAMESPACE,
)

log = get_logger("speaker")
BATCH = 256  # writes per pass; the next pass starts from fresh informer state
RECREATE_AFTER = 30.0  # seconds before a service's object may be created again
COALESCE_S = 0.2  # pause after each pass
FULL_EVERY = 60.0  # seconds between passes that compare every object, not just changed keys


@dataclass(frozen=True)
class Owner:
    kind: str
    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": self.kind, "name": self.name, "uid": self.uid}


async def resolve_owner(rest: Rest, namespace: str, pod: str | None, node: str) -> Owner | None:
    """The speaker Pod if it exists, else this Node, else nobody (objects then have no owner)."""
    if pod:
        try:
            obj = await rest.get(PODS.path(namespace, pod))
            return Owner("Pod", pod, str(obj["metadata"]["uid"]))
        except (ApiError, KeyError, aiohttp.ClientError, OSError) as exc:
            log.warning("ownerPodNotFound", pod=pod, error=str(exc))
    try:
        obj = await rest.get(NODES.path(None, node))
        return Owner("Node", node, str(obj["metadata"]["uid"]))
    except (ApiError, KeyError, aiohttp.ClientError, OSError) as exc:
        log.warning("ownerNodeNotFound", node=node, error=str(exc))
    return None


def session_state_name(node: str, peer: str) -> str:
    raw = f"{node}-{peer}".lower()
    name = re.sub(r"[^a-z0-9.-]", "-", raw).strip("-.")
    return name[:253] or "session"


@dataclass
class _Kind:
    resource: Resource
    informer: Informer
    # key -> desired status (key: "ns/name" of the service, or the peer name)
    desired: dict[str, JSON] = field(default_factory=dict)
    # Keys whose objects or desired status changed since the last pass; `full` compares every
    # key instead (at start, after a failed or oversized pass, and every FULL_EVERY seconds).
    dirty_keys: set[str] = field(default_factory=set)
    full: bool = True
    last_full: float = 0.0

    def touched(self, _key: str, old: JSON | None, new: JSON | None) -> None:
        for obj in (old, new):
            if obj is not None:
                self.dirty_keys.add(_key_of(obj))


def _status_value(field_name: str, names: tuple[str, ...]) -> list[Any]:
    return [{"name": n} for n in names] if field_name == "interfaces" else list(names)


def _key_of(obj: JSON) -> str:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if LABEL_PEER in labels:
        return str(labels[LABEL_PEER])
    return f"{labels.get(LABEL_SERVICE_NAMESPACE, '')}/{labels.get(LABEL_SERVICE_NAME, '')}"


_BY_KEY = {"key": lambda obj: (_key_of(obj),)}
_KEY_LABELS = (LABEL_PEER, LABEL_SERVICE_NAME, LABEL_SERVICE_NAMESPACE)
OWNER_SETS = 64  # sets of owner uids whose list is shared (a node sees one, a few over restarts)
_OWNER_REFS: dict[tuple[Any, ...], list[JSON]] = {}  # owner uids -> one shared list


def _interned(value: Any) -> Any:
    """A copy of a status value with its strings interned (node names, namespaces, peers)."""
    if isinstance(value, dict):
        return {intern(k): _interned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interned(v) for v in value]
    return intern(value)


def _owner_refs(refs: Any) -> list[JSON]:
    """ownerReferences as `_owned` reads them: only the uids; one list per set of owners (every
    object of a node has the same owner)."""
    items = refs if isinstance(refs, list) else []
    uids = tuple(r.get("uid") for r in items if isinstance(r, dict))
    shared = _OWNER_REFS.get(uids)
    if shared is None:
        shared = [{"uid": intern(u)} for u in uids]
        if len(_OWNER_REFS) < OWNER_SETS:
            _OWNER_REFS[uids] = shared
    return shared


def cached_status_object(obj: JSON, desired: Mapping[str, JSON] | None = None) -> JSON:
    """A status object as the writer reads it, for the informer to cache: name, namespace and
    resourceVersion (the cache, the path and the write precondition), the labels that give its
    key (`_key_of`), the owner uids (`_owned`) and the whole status, which the writer compares
    with the wanted one and diffs into its patch. A status equal to the wanted one (`desired`,
    by key) is that same dict, so an object that is as it should be costs no status of its own.
    Cached objects are read-only."""
    out = head(obj)
    meta = out["metadata"] = trimmed_metadata(
        obj, labels=False, keys=("name", "namespace", "resourceVersion")
    )
    raw = obj.get("metadata") or {}
    labels = raw.get("labels")
    if isinstance(labels, dict):
        kept = {intern(k): intern(labels[k]) for k in _KEY_LABELS if k in labels}
        if kept:
            meta["labels"] = kept
    refs = raw.get("ownerReferences")
    if refs:
        meta["ownerReferences"] = _owner_refs(refs)
    status = obj.get("status")
    if status is not None:
        want = (desired or {}).get(_key_of(out))
        out["status"] = want if want is not None and want == status else _interned(status)
    return out


class StatusObjects:
    def __init__(self, rest: Rest, namespace: str, node: str, *, concurrency: int = 8) -> None:
        self.rest = rest
        self.writer = StatusWriter(rest)  # status patches and the ConfigurationState
        self.namespace = namespace
        self.node = node
        self.owner: Owner | None = None
        selector = f"{LABEL_NODE}={node}"
        self.kinds = {
            name: _Kind(
                resource,
                Informer(
                    rest,
                    resource,
                    namespace=namespace,
                    label_selector=selector,
                    optional=True,
                    indexers=_BY_KEY,
                    transform=functools.partial(self._cached, name),
                ),
            )
            for name, resource in (
                ("l2", SERVICEL2STATUSES),
                ("bgp", SERVICEBGPSTATUSES),
                ("session", BGPSESSIONSTATES),
            )
        }
        for kind in self.kinds.values():
            kind.informer.add_handler(kind.touched)
            kind.informer.add_handler(lambda *_: self.dirty.set())
        self.dirty = asyncio.Event()
        self.sem = asyncio.Semaphore(concurrency)
        self.config_state: JSON | None = None  # the ConfigurationState status to write
        self._service_inputs: tuple[Any, Any] | None = None
        self._created: dict[tuple[str, str], float] = {}  # (kind, key) -> when created
        self._owner_seen: Owner | None = None
        self.config_state_written: JSON | None = None
        self.writes = 0
        self.errors = 0

    def _cached(self, name: str, obj: JSON) -> JSON:
        """The informers' transform (runs only once `kinds` exists: informers start later)."""
        return cached_status_object(obj, self.kinds[name].desired)

    @property
    def informers(self) -> list[Informer]:
        return [k.informer for k in self.kinds.values()]

    # -- what should exist -----------------------------------------------------------------------
    def set_services(
        self,
        l2: Mapping[str, tuple[str, ...]],
        bgp: Mapping[str, tuple[str, ...]],
        changed: Iterable[str] | None = None,
    ) -> None:
        """l2: service key -> interfaces (() = all); bgp: service key -> peers (non-empty).
        `changed`: the only keys that may differ from the last call (None: compare all)."""
        if changed is not None and self._service_inputs is not None:
            self._set_changed(l2, bgp, changed)
            return
        inputs = (dict(l2), {k: v for k, v in bgp.items() if v})
        if inputs == self._service_inputs:
            return
        old_l2, old_bgp = self._service_inputs or ({}, {})
        self._service_inputs = inputs
        # Patched, not rebuilt: with 10 000 services a pass usually changes one.
        self._patch(self.kinds["l2"], old_l2, inputs[0], "interfaces")
        self._patch(self.kinds["bgp"], old_bgp, inputs[1], "peers")
        self.dirty.set()

    def _set_changed(
        self,
        l2: Mapping[str, tuple[str, ...]],
        bgp: Mapping[str, tuple[str, ...]],
        changed: Iterable[str],
    ) -> None:
        """set_services for a few keys: with 10 000 services a pass usually changes one."""
        assert self._service_inputs is not None
        mine = self._service_inputs
        dirty = False
        for key in changed:
            for i, (kind, source, field_name) in enumerate(
                ((self.kinds["l2"], l2, "interfaces"), (self.kinds["bgp"], bgp, "peers"))
            ):
                names = source.get(key)
                if i == 1 and not names:
                    names = None  # a service with no peers has no ServiceBGPStatus
                if mine[i].get(key) == names and (names is None or key in kind.desired):
                    continue
                dirty = True
                kind.dirty_keys.add(key)
                if names is None:
                    mine[i].pop(key, None)
                    kind.desired.pop(key, None)
                else:
                    mine[i][key] = names
                    kind.desired[key] = self._service_status(
                        key, {field_name: _status_value(field_name, names)}
                    )
        if dirty:
            self.dirty.set()

    def _patch(
        self,
        kind: _Kind,
        old: Mapping[str, tuple[str, ...]],
        new: Mapping[str, tuple[str, ...]],
        field_name: str,
    ) -> None:
        desired = kind.desired
        for key in old.keys() - new.keys():
            desired.pop(key, None)
            kind.dirty_keys.add(key)
        for key, names in new.items():
            if key in desired and old.get(key) == names:
                continue
            kind.dirty_keys.add(key)
            desired[key] = self._service_status(key, {field_name: _status_value(field_name, names)})

    def set_sessions(self, sessions: Mapping[str, JSON]) -> None:
        """BGPPeer name -> BGPSessionState status."""
        self.kinds["session"].desired = {
            name: {"node": self.node, "peer": name, **status} for name, status in sessions.items()
        }
        self.kinds["session"].full = True  # one object per peer: always compare them all
        self.dirty.set()

    def set_config_state(self, status: JSON) -> None:
        if self.config_state is None or not same_configuration_state(self.config_state, status):
            self.config_state = status
            self.dirty.set()

    def _service_status(self, key: str, extra: JSON) -> JSON:
        ns, _, name = key.partition("/")
        status: JSON = {"node": self.node, "serviceName": name, "serviceNamespace": ns}
        for k, v in extra.items():
            if v:
                status[k] = v
        return status

    # -- the writer --------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            waiter = asyncio.create_task(self.dirty.wait())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for t in (waiter, stopper):
                t.cancel()
            if stop.is_set():
                return
            self.dirty.clear()
            if not all(k.informer.synced.is_set() for k in self.kinds.values()):
                # Keep the work: an empty first list raises no event to wake us again.
                self.dirty.set()
                await asyncio.sleep(0.1)
                continue
            try:
                await self.sync_once()
            except Exception:  # never take the speaker down over status
                log.exception("statusSyncFailed")
                self.errors += 1
            # Coalesce bursts: status objects are not on the announcement path, and a full
            # pass compares every object of this node (10 000 at scale): a few passes a second.
            await asyncio.sleep(COALESCE_S)

    async def sync_once(self) -> None:
        """One bounded batch of writes towards the desired objects; asks for another pass when
        more remain. A service whose object was just created is not created again until the
        informer had time to show it (a slow or timed-out create must not leave duplicates)."""
        now = time.monotonic()
        self._created = {k: t for k, t in self._created.items() if now - t < RECREATE_AFTER}
        jobs: list[Callable[[], Awaitable[None]]] = []
        waiting = False
        owner_changed = self.owner != self._owner_seen
        self._owner_seen = self.owner
        for name, kind in self.kinds.items():
            if kind.informer.missing:
                continue  # the CRD is not installed: nothing to keep current
            full = kind.full or owner_changed or now - kind.last_full > FULL_EVERY
            existing: dict[str, list[JSON]] = {}
            if full:
                kind.full, kind.last_full = False, now
                kind.dirty_keys.clear()
                for obj in kind.informer.cache.values():
                    existing.setdefault(_key_of(obj), []).append(obj)
                wanted: Iterable[str] = kind.desired
            else:
                keys, kind.dirty_keys = kind.dirty_keys, set()
                for key in keys:
                    objs = kind.informer.cache.by_index("key", key)
                    if objs:
                        existing[key] = objs
                wanted = [k for k in keys if k in kind.desired]
            for key, objs in existing.items():
                want = kind.desired.get(key)
                keep = None
                if want is not None:
                    keep = next((o for o in objs if self._owned(o)), None)
                for o in objs:
                    if o is not keep:
                        why = (
                            "notTrue"
                            if want is None
                            else "duplicate"
                            if self._owned(o)
                            else "ownedByOther"
                        )
                        jobs.append(functools.partial(self._delete, kind, o, why))
                if keep is not None and (keep.get("status") or {}) != want:
                    jobs.append(functools.partial(self._update_status, kind, keep, want or {}))
            for key in wanted:
                if any(self._owned(o) for o in existing.get(key, [])):
                    continue
                if (name, key) in self._created:
                    waiting = True
                    continue
                jobs.append(functools.partial(self._create, name, kind, key, kind.desired[key]))
            if len(jobs) > BATCH:
                kind.full = True  # what does not fit in this batch is found again next pass
        if self.config_state is not None and self.config_state is not self.config_state_written:
            jobs.append(functools.partial(self._write_config_state, self.config_state))
        if len(jobs) > BATCH:
            self.dirty.set()
        elif waiting:
            asyncio.get_running_loop().call_later(RECREATE_AFTER / 2, self._recheck_all)
        if jobs:
            await asyncio.gather(*(job() for job in jobs[:BATCH]))

    def _recheck_all(self) -> None:
        for kind in self.kinds.values():
            kind.full = True
        self.dirty.set()

    def _owned(self, obj: JSON) -> bool:
        refs = (obj.get("metadata") or {}).get("ownerReferences") or []
        if self.owner is None:
            return not refs
        return any(r.get("uid") == self.owner.uid for r in refs)

    def _metadata(self, name: str, key: str) -> JSON:
        labels = {LABEL_NODE: self.node}
        if name == "session":
            labels[LABEL_PEER] = key
        else:
            ns, _, svc = key.partition("/")
            labels[LABEL_SERVICE_NAME] = svc
            labels[LABEL_SERVICE_NAMESPACE] = ns
        meta: JSON = {"namespace": self.namespace, "labels": labels}
        if name == "session":
            meta["name"] = session_state_name(self.node, key)
        else:
            meta["generateName"] = f"{name}-"
        if self.owner is not None:
            meta["ownerReferences"] = [self.owner.reference()]
        return meta

    async def _create(self, name: str, kind: _Kind, key: str, status: JSON) -> None:
        self._created[(name, key)] = time.monotonic()
        async with self._slot("create", kind):
            body: JSON = {
                "apiVersion": kind.resource.api_version,
                "kind": kind.resource.kind,
                "metadata": self._metadata(name, key),
            }
            try:
                created = await self.rest.create(kind.resource.path(self.namespace), body)
            except ApiError as exc:
                if exc.conflict:
                    fixed = body["metadata"].get("name")
                    if fixed:  # a session object left by an earlier owner: replace it
                        with contextlib.suppress(ApiError):
                            await self.rest.delete(self._object_path(kind, fixed))
                    # A generated name that collided: just create again. Never DELETE without a
                    # name: that path is the collection, and would wipe every node's objects.
                    self._created.pop((name, key), None)
                    self._again(kind, key)
                    return
                self._failed("create", kind, exc)
                return
            self._wrote()
            # Cached now, so a failed status write is retried as an update, not a second create.
            kind.informer.remember(created)
            result = await self._patch_status(kind, created, status)
            if result.outcome is WriteOutcome.NOT_FOUND:
                self._created.pop((name, key), None)  # deleted under us: create it again
            self._settle("update", kind, key, result)

    async def _update_status(self, kind: _Kind, obj: JSON, status: JSON) -> None:
        async with self._slot("update", kind):
            self._settle("update", kind, _key_of(obj), await self._patch_status(kind, obj, status))

    def _settle(self, op: str, kind: _Kind, key: str, result: WriteResult) -> None:
        """Count a status write; a conflict or a vanished object is recomputed from the
        informer's state on the next pass, anything else is a failure retried later."""
        if result.ok:
            self._wrote()
        elif result.outcome in (WriteOutcome.CONFLICT, WriteOutcome.NOT_FOUND):
            self._again(kind, key)
        else:
            self._failed(op, kind, result.error, counted=True)

    async def _delete(self, kind: _Kind, obj: JSON, why: str) -> None:
        async with self._slot("delete", kind):
            meta = obj.get("metadata") or {}
            if why != "notTrue":
                log.info(
                    "statusObjectReplaced",
                    kind=kind.resource.kind,
                    object=meta.get("name"),
                    reason=why,
                )
            try:
                await self.rest.delete(self._object_path(kind, str(meta.get("name") or "")))
                self._wrote()
            except ApiError as exc:
                if not exc.not_found:
                    self._failed("delete", kind, exc)

    @contextlib.asynccontextmanager
    async def _slot(self, op: str, kind: _Kind) -> AsyncIterator[None]:
        """One of the concurrent writes; a transport failure is counted and retried later (each
        write sorts out its own API errors)."""
        async with self.sem:
            try:
                yield
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self._failed(op, kind, exc)

    async def _patch_status(self, kind: _Kind, obj: JSON, status: JSON) -> WriteResult:
        """Merge-patch `/status` from `obj`'s status (as cached) to `status`, under `obj`'s
        resourceVersion (409 if it changed since). Only status is sent: the cached object is
        trimmed. The informer remembers the answer, so the next pass compares against our own
        write even before its watch event arrives."""
        name = str((obj.get("metadata") or {}).get("name") or "")
        self._object_path(kind, name)  # refuses an empty name
        patch = status_patch(obj, {**obj, "status": status})
        result = await self.writer.patch_status(kind.resource, self.namespace, name, patch)
        if result.ok and result.obj is not None:
            kind.informer.remember(result.obj)
        return result

    def _again(self, kind: _Kind, key: str) -> None:
        """Write `key` again on the next pass (it conflicted or vanished under us)."""
        kind.dirty_keys.add(key)
        self.dirty.set()

    def _wrote(self, requests: int = 1) -> None:
        self.writes += requests
        kube_metrics.updates_total.inc(requests)

    def _object_path(self, kind: _Kind, name: str) -> str:
        if not name:
            raise ValueError(f"refusing to address {kind.resource.plural} without a name")
        return kind.resource.path(self.namespace, name)

    def _failed(
        self, op: str, kind: _Kind, exc: BaseException | str, *, counted: bool = False
    ) -> None:
        """`counted`: the StatusWriter already counted it in update_errors_total."""
        self.errors += 1
        kind.full = True
        if not counted:
            kube_metrics.update_errors_total.inc()
        log.warning(
            "statusWriteFailed",
            op=op,
            kind=kind.resource.kind,
            error=exc if isinstance(exc, str) else str(exc) or type(exc).__name__,
        )
        # Try again later; a missing CRD is reported by the informer as not served.
        asyncio.get_running_loop().call_later(2.0, self.dirty.set)

    async def _write_config_state(self, status: JSON) -> None:
        meta: JSON = {
            "name": f"speaker-{self.node}",
            "namespace": self.namespace,
            "labels": {"metallb.io/component-type": "speaker", "metallb.io/node-name": self.node},
        }
        if self.owner is not None:
            meta["ownerReferences"] = [self.owner.reference()]
        result = await self.writer.ensure_status(
            CONFIGURATIONSTATES, meta, status, same=same_configuration_state
        )
        if result.ok:
            self.config_state_written = status
        else:
            log.debug("configurationStateNotWritten", error=result.error)
