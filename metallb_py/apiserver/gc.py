"""Garbage collection by ownerReferences (background, foreground, orphan) and namespace
termination, as the real controllers do them, in one asyncio task.

A namespaced dependent's owner is looked up in the dependent's namespace; a cluster-scoped
dependent cannot be owned by a namespaced kind: such a reference is unresolvable, the dependent is
never collected and a warning Event `OwnerRefInvalidNamespace` is recorded, like the real collector.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from metallb_py.apiserver import objects
from metallb_py.apiserver.resources import Resource
from metallb_py.apiserver.store import Entry
from metallb_py.log import get_logger
from metallb_py.objects import JSON

if TYPE_CHECKING:
    from metallb_py.apiserver.server import ApiServer

Ref = tuple[str, str, str]  # store key, namespace, name

log = get_logger("apiserver")


class GarbageCollector:
    def __init__(self, server: ApiServer, resync: float = 1.0) -> None:
        self.server = server
        self.dependents: dict[str, set[Ref]] = {}  # owner uid -> dependents
        self.check: set[Ref] = set()  # dependents whose owners must be verified
        self.owners: set[Ref] = set()  # owners being deleted (foreground/orphan) or namespaces
        self.wake = asyncio.Event()
        self.resync = resync
        self._task: asyncio.Task[None] | None = None
        self.reported: set[tuple[str, str]] = set()
        for t in server.store.tables.values():
            for e in t.entries():
                self.on_write(t.key, "ADDED", None, e)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def kick(self) -> None:
        self.wake.set()

    # -- bookkeeping on every write (synchronous, cheap when there are no ownerReferences) -----
    @staticmethod
    def _ref(key: str, obj: JSON) -> Ref:
        m = obj["metadata"]
        return key, m.get("namespace", ""), m["name"]

    def on_write(self, key: str, kind: str, old: Entry | None, new: Entry | None) -> None:
        old_refs = (old.obj["metadata"].get("ownerReferences") or []) if old else []
        new_obj = new.obj if new is not None else None
        new_refs = (new_obj["metadata"].get("ownerReferences") or []) if new_obj else []
        if old_refs or new_refs:
            source = new_obj if new_obj is not None else old.obj if old is not None else None
            if source is None:
                return
            ref = self._ref(key, source)
            for r in old_refs:
                deps = self.dependents.get(r.get("uid", ""))
                if deps is not None:
                    deps.discard(ref)
                    if not deps:
                        del self.dependents[r.get("uid", "")]
            if kind != "DELETED":
                for r in new_refs:
                    self.dependents.setdefault(r.get("uid", ""), set()).add(ref)
                if kind == "ADDED" or old_refs != new_refs:
                    self.check.add(ref)
                    self.wake.set()
        if kind == "DELETED" and old is not None:
            uid = old.obj["metadata"].get("uid", "")
            if uid in self.dependents:
                self.check.update(self.dependents[uid])
                self.wake.set()
            self.owners.discard(self._ref(key, old.obj))
        elif new_obj is not None and new_obj["metadata"].get("deletionTimestamp"):
            fins = new_obj["metadata"].get("finalizers") or []
            if "foregroundDeletion" in fins or "orphan" in fins or key == "namespaces":
                self.owners.add(self._ref(key, new_obj))
                self.wake.set()

    # -- the worker --------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.resync)
            self.wake.clear()
            try:
                self.process()
            except Exception:  # keep collecting; a bug in one object must not stop the rest
                log.exception("garbageCollectionFailed")
            await asyncio.sleep(0)

    def process(self) -> None:
        for ref in list(self.owners):
            self._process_owner(ref)
        pending, self.check = self.check, set()
        for ref in pending:
            self._check_dependent(ref)

    def _resource(self, api_version: str, kind: str) -> Resource | None:
        group, _, version = api_version.rpartition("/")
        reg = self.server.registry
        return reg.by_kind(group, version, kind) or reg.any_version(group, kind)

    def _owner_state(self, dep_ns: str, dep_cluster: bool, ref: JSON) -> str:
        """'alive', 'deleting' (foreground), 'absent' or 'invalid'."""
        res = self._resource(ref.get("apiVersion", ""), ref.get("kind", ""))
        if res is None:
            return "absent"
        if dep_cluster and res.namespaced:
            return "invalid"
        ns = dep_ns if res.namespaced else ""
        e = self.server.store.table(res.store_key).get(ns, ref.get("name", ""))
        if e is None or e.obj["metadata"].get("uid") != ref.get("uid"):
            return "absent"
        m = e.obj["metadata"]
        if m.get("deletionTimestamp") and "foregroundDeletion" in (m.get("finalizers") or []):
            return "deleting"
        return "alive"

    def _check_dependent(self, ref: Ref) -> None:
        key, ns, name = ref
        e = self.server.store.table(key).get(ns, name)
        if e is None:
            return
        refs = e.obj["metadata"].get("ownerReferences") or []
        if not refs:
            return
        dep_res = self._any_resource_for_key(key)
        cluster = dep_res is not None and not dep_res.namespaced
        states = [self._owner_state(ns, cluster, r) for r in refs]
        if "invalid" in states:
            self._report_invalid(e.obj, key, refs[states.index("invalid")])
        if any(s in ("alive", "invalid") for s in states):
            return
        policy = "Foreground" if "deleting" in states else "Background"
        self.server.delete_object(key, ns, name, policy)

    def _any_resource_for_key(self, key: str) -> Resource | None:
        for r in self.server.registry.by_gvr.values():
            if r.store_key == key:
                return r
        return None

    def _report_invalid(self, obj: JSON, key: str, ref: JSON) -> None:
        m = obj["metadata"]
        mark = (m.get("uid", ""), ref.get("uid", ""))
        if mark in self.reported:
            return
        self.reported.add(mark)
        ns = m.get("namespace") or "default"
        res = self._any_resource_for_key(key)
        now = objects.now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{m['name']}.{objects.generate_suffix()}",
                "namespace": ns,
                "uid": objects.new_uid(),
                "creationTimestamp": now,
            },
            "involvedObject": {
                "apiVersion": res.api_version if res else "",
                "kind": res.kind if res else "",
                "name": m["name"],
                "namespace": m.get("namespace", ""),
                "uid": m.get("uid", ""),
            },
            "reason": "OwnerRefInvalidNamespace",
            "message": f'ownerRef {ref} does not exist in namespace "{m.get("namespace", "")}" '
            "or is a namespaced owner of a cluster-scoped object",
            "type": "Warning",
            "source": {"component": "garbage-collector-controller"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.server.store.put("events", event)

    def _dependents_of(self, uid: str) -> list[Entry]:
        out = []
        for key, ns, name in list(self.dependents.get(uid, ())):
            e = self.server.store.table(key).get(ns, name)
            if e is not None:
                out.append(e)
        return out

    def _drop_finalizer(self, key: str, obj: JSON, finalizer: str) -> None:
        import json

        fresh = json.loads(json.dumps(obj))
        fresh["metadata"]["finalizers"] = [
            f for f in fresh["metadata"].get("finalizers") or [] if f != finalizer
        ]
        m = fresh["metadata"]
        if not m["finalizers"] and not (
            key == "namespaces" and (fresh.get("spec") or {}).get("finalizers")
        ):
            self.server.store.remove(key, m.get("namespace", ""), m["name"])
        else:
            if not m["finalizers"]:
                del m["finalizers"]
            self.server.store.put(key, fresh)

    def _process_owner(self, ref: Ref) -> None:
        key, ns, name = ref
        e = self.server.store.table(key).get(ns, name)
        if e is None or not e.obj["metadata"].get("deletionTimestamp"):
            self.owners.discard(ref)
            return
        m = e.obj["metadata"]
        uid = m.get("uid", "")
        fins = m.get("finalizers") or []
        if key == "namespaces" and not fins:
            self._terminate_namespace(e)
            return
        if "orphan" in fins:
            import json

            for dep in self._dependents_of(uid):
                d = json.loads(dep.raw)
                d["metadata"]["ownerReferences"] = [
                    r for r in d["metadata"].get("ownerReferences") or [] if r.get("uid") != uid
                ]
                if not d["metadata"]["ownerReferences"]:
                    del d["metadata"]["ownerReferences"]
                dk = self._ref_key(dep)
                self.server.store.put(dk, d)
            self._drop_finalizer(key, e.obj, "orphan")
            return
        if "foregroundDeletion" in fins:
            deps = self._dependents_of(uid)
            for dep in deps:
                dm = dep.obj["metadata"]
                if not dm.get("deletionTimestamp"):
                    self.server.delete_object(
                        self._ref_key(dep), dm.get("namespace", ""), dm["name"], "Foreground"
                    )
            if not self._dependents_of(uid):
                self._drop_finalizer(key, e.obj, "foregroundDeletion")

    def _ref_key(self, e: Entry) -> str:
        m = e.obj["metadata"]
        for t in self.server.store.tables.values():
            if t.get(m.get("namespace", ""), m["name"]) is e:
                return t.key
        return ""

    def _terminate_namespace(self, ns_entry: Entry) -> None:
        """Delete everything in a terminating namespace; remove it once nothing is left."""
        ns = ns_entry.obj["metadata"]["name"]

        def contents() -> list[tuple[str, Entry]]:
            return [
                (t.key, e)
                for t in list(self.server.store.tables.values())
                if t.key != "namespaces"
                for e in list(t.entries(ns))
            ]

        for key, e in contents():
            if not e.obj["metadata"].get("deletionTimestamp"):
                self.server.delete_object(key, ns, e.obj["metadata"]["name"])
        if contents():
            return
        self.server.store.remove("namespaces", "", ns)
        self.owners.discard(("namespaces", "", ns))
