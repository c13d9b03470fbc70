"""Reconcile `MetalLB` resources into the controller Deployment, speaker DaemonSet, webhook and
RBAC, level-triggered.

Every watch event (on the instances and on everything we applied, selected by our label) and a
periodic resync enqueue the instance; one pass validates, renders, server-side applies
everything, creates the memberlist Secret if absent and writes status only if it changed. A pass
that finds nothing to change writes nothing, so a restarted operator leaves every
resourceVersion alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from metallb_py.kube.cache import object_key
from metallb_py.kube.events import EventRecorder
from metallb_py.kube.informer import Informer
from metallb_py.kube.rest import SECRETS, ApiError, Rest
from metallb_py.kube.workqueue import WorkQueue
from metallb_py.log import get_logger
from metallb_py.objects import JSON
from metallb_py.operator import apply as ap
from metallb_py.operator import metrics
from metallb_py.operator import status as st
from metallb_py.operator.env import OperatorEnv
from metallb_py.operator.render import render as default_render
from metallb_py.operator.webhook import metallb_errors

Renderer = Callable[[Mapping[str, Any] | None, OperatorEnv], list[JSON]]

log = get_logger("operator")

NOT_READY_REQUEUE = 5.0
CONTROLLER_DEPLOYMENT = "controller"
SPEAKER_DAEMONSET = "speaker"
# bgpBackend values that MetalLB would run with FRR; we run our own BGP stack for all of them.
OWN_STACK_BACKENDS = ("frr", "frr-k8s")
UNSUPPORTED_BACKENDS = ("frr-k8s-external",)


class OperatorReconciler:
    def __init__(
        self,
        rest: Rest,
        namespace: str,
        env: OperatorEnv,
        recorder: EventRecorder,
        *,
        may_write: Callable[[], bool] = lambda: True,
        renderer: Renderer = default_render,
        resync_period: float = 60.0,
        requeue_after: float = NOT_READY_REQUEUE,
    ) -> None:
        self.rest = rest
        self.namespace = namespace
        self.env = env
        self.recorder = recorder
        self.may_write = may_write
        self.renderer = renderer
        self.requeue_after = requeue_after
        self.instances = Informer(
            rest, ap.METALLBS, namespace=namespace, resync_period=resync_period
        )
        self.instances.add_handler(self._on_instance)
        self.children: dict[str, Informer] = {}
        for res in ap.WATCHED_NAMESPACED + ap.CLUSTER_SCOPED:
            inf = Informer(
                rest,
                res,
                namespace=namespace if res.namespaced else None,
                label_selector=ap.OWNER_LABEL,
                resync_period=0,
            )
            inf.add_handler(self._on_child)
            self.children[res.kind] = inf
        self.secret = Informer(
            rest,
            SECRETS,
            namespace=namespace,
            field_selector=f"metadata.name={ap.MEMBERLIST_SECRET}",
            resync_period=0,
        )
        self.secret.add_handler(self._on_secret)
        self.queue = WorkQueue(retry_initial=0.5, retry_max=60.0)
        # Per instance uid: the bgpBackend we last announced (log + Event), to say it once.
        self._backend_noted: dict[str, str] = {}

    # ---- informers -----------------------------------------------------------------------------

    @property
    def informers(self) -> list[Informer]:
        return [self.instances, self.secret, *self.children.values()]

    async def run_informers(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(inf.run(stop) for inf in self.informers))

    async def wait_synced(self) -> None:
        await asyncio.gather(*(inf.synced.wait() for inf in self.informers))

    def _on_instance(self, key: str, _old: JSON | None, _new: JSON | None) -> None:
        self.queue.add(key)

    def _on_child(self, _key: str, old: JSON | None, new: JSON | None) -> None:
        obj = new or old or {}
        owner = ((obj.get("metadata") or {}).get("labels") or {}).get(ap.OWNER_LABEL)
        if owner:
            self.queue.add(f"{self.namespace}/{owner}")

    def _on_secret(self, _key: str, _old: JSON | None, _new: JSON | None) -> None:
        self.queue.add(f"{self.namespace}/{st.INSTANCE_NAME}")

    # ---- leading -------------------------------------------------------------------------------

    async def lead(self, stop: asyncio.Event) -> None:
        """Work the queue until `stop` (shutdown or lost leadership)."""
        self.queue = WorkQueue(retry_initial=0.5, retry_max=60.0)
        for key, _obj in self.instances.cache.items():
            self.queue.add(key)
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                getter = asyncio.create_task(self.queue.get())
                await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
                    break
                item = getter.result()
                if item is None:
                    break
                try:
                    await self.process(item)
                finally:
                    self.queue.done(item)
        finally:
            stopper.cancel()
            self.queue.close()

    async def process(self, key: str) -> None:
        started = time.monotonic()
        try:
            requeue = await self.reconcile(key)
        except Exception as exc:
            metrics.reconciles_total.labels(result="error").inc()
            delay = self.queue.retry(key)
            log.error("reconcileFailed", instance=key, error=str(exc), retryIn=round(delay, 2))
            return
        finally:
            metrics.last_reconcile_seconds.set(time.monotonic() - started)
        self.queue.forget(key)
        if requeue is not None:
            self.queue.add_after(key, requeue)

    # ---- one pass ------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        """One level-triggered pass; returns a delay to look again (None: wait for events)."""
        instance = self.instances.cache.get(key)
        if instance is None or not self.may_write():
            return None
        name = str(instance["metadata"].get("name") or "")
        wrong = st.name_problem(name)
        if wrong is not None:
            # Never deploy for it and never touch what the real instance owns.
            await self._set_status(instance, wrong)
            metrics.reconciles_total.labels(result="degraded").inc()
            return None
        if instance["metadata"].get("deletionTimestamp"):
            await self._cleanup(instance)
            metrics.reconciles_total.labels(result="deleted").inc()
            return None
        instance = await self._ensure_finalizer(instance)
        spec = instance.get("spec") or {}
        errors = metallb_errors(instance)
        if errors:
            state = st.State.degraded(st.REASON_INVALID, "; ".join(errors))
            return await self._finish(instance, state)
        backend = str(spec.get("bgpBackend") or "")
        if backend in UNSUPPORTED_BACKENDS:
            state = st.State.degraded(
                st.REASON_UNSUPPORTED_BACKEND, f"unsupported bgp backend {backend}"
            )
            return await self._finish(instance, state)
        self._note_backend(instance, backend)
        try:
            rendered = self.renderer(spec, self.env)
        except Exception as exc:
            state = st.State.degraded(st.REASON_INTERNAL, f"failed to render: {exc}")
            return await self._finish(instance, state)
        applied: dict[tuple[str, str], JSON] = {}
        for obj in rendered:
            meta = obj.get("metadata") or {}
            if obj.get("kind") == "Secret" and meta.get("name") == ap.MEMBERLIST_SECRET:
                continue  # created only when absent, below
            try:
                desired = ap.decorate(obj, instance, self.namespace)
                result = await ap.apply(self.rest, desired)
            except (ApiError, ap.UnknownKind) as exc:
                message = f"failed to apply {ap.describe(obj)}: {exc}"
                await self._set_status(instance, st.State.degraded(st.REASON_INTERNAL, message))
                raise RuntimeError(message) from exc
            metrics.applied_objects_total.labels(kind=str(obj.get("kind"))).inc()
            if result:
                result.setdefault("kind", obj.get("kind"))
                result.setdefault("apiVersion", obj.get("apiVersion"))
                inf = self.children.get(str(obj.get("kind")))
                if inf is not None:
                    inf.remember(result)
                applied[(str(obj.get("kind")), str(meta.get("name")))] = result
        await self._ensure_memberlist(instance)
        controller = applied.get(("Deployment", CONTROLLER_DEPLOYMENT)) or self._cached(
            "Deployment", CONTROLLER_DEPLOYMENT
        )
        speaker = applied.get(("DaemonSet", SPEAKER_DAEMONSET)) or self._cached(
            "DaemonSet", SPEAKER_DAEMONSET
        )
        return await self._finish(instance, st.readiness(controller, speaker))

    def _cached(self, kind: str, name: str) -> JSON | None:
        inf = self.children.get(kind)
        return inf.cache.get(f"{self.namespace}/{name}") if inf is not None else None

    async def _finish(self, instance: JSON, state: st.State) -> float | None:
        await self._set_status(instance, state)
        result = {st.AVAILABLE: "available", st.PROGRESSING: "progressing"}.get(
            state.kind, "degraded"
        )
        metrics.reconciles_total.labels(result=result).inc()
        return self.requeue_after if state.kind == st.PROGRESSING else None

    def _note_backend(self, instance: JSON, backend: str) -> None:
        """Say once per change that FRR-based backends run our own BGP stack."""
        uid = str(instance["metadata"].get("uid") or "")
        if self._backend_noted.get(uid) == backend:
            return
        self._backend_noted[uid] = backend
        if backend in OWN_STACK_BACKENDS:
            message = (
                f"bgpBackend {backend} requested: metallb-py speakers run their own BGP stack "
                "(no FRR); BGP configuration is honoured the same way"
            )
            log.warning("bgpBackendSubstituted", instance=object_key(instance), backend=backend)
            self.recorder.normal(instance, "BGPBackendNative", message)
        elif backend == "native":
            log.info("bgpBackendNative", instance=object_key(instance))

    async def _set_status(self, instance: JSON, state: st.State) -> None:
        meta = instance["metadata"]
        previous = (instance.get("status") or {}).get("conditions") or []
        conditions = st.build_conditions(state, int(meta.get("generation") or 0), previous)
        if not st.status_changed(instance, conditions):
            return
        body = {"status": {"conditions": conditions}}
        path = ap.METALLBS.path(meta.get("namespace"), meta.get("name"), "status")
        try:
            result = await self.rest.patch(path, body, ap.MERGE_PATCH)
        except ApiError as exc:
            if exc.not_found:
                return
            raise
        metrics.status_writes_total.inc()
        self.instances.remember(result)
        log.info(
            "statusUpdated",
            instance=object_key(instance),
            condition=state.kind,
            reason=state.reason or state.kind,
            message=state.message,
        )
        if state.kind == st.DEGRADED:  # only on a change: the status was just rewritten
            self.recorder.warning(instance, state.reason, state.message)

    async def _ensure_finalizer(self, instance: JSON) -> JSON:
        meta = instance["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if ap.FINALIZER in finalizers:
            return instance
        body = {
            "metadata": {
                "finalizers": [*finalizers, ap.FINALIZER],
                "resourceVersion": meta.get("resourceVersion"),
            }
        }
        path = ap.METALLBS.path(meta.get("namespace"), meta.get("name"))
        result = await self.rest.patch(path, body, ap.MERGE_PATCH)
        result.setdefault("kind", ap.METALLBS.kind)
        result.setdefault("apiVersion", ap.METALLBS.api_version)
        self.instances.remember(result)
        return result

    async def _ensure_memberlist(self, instance: JSON) -> None:
        if self.secret.cache.get(f"{self.namespace}/{ap.MEMBERLIST_SECRET}") is not None:
            return
        if await ap.create_memberlist_secret(self.rest, instance, self.namespace):
            log.info("memberlistSecretCreated", namespace=self.namespace, name=ap.MEMBERLIST_SECRET)

    async def _cleanup(self, instance: JSON) -> None:
        """The instance is being deleted: remove what garbage collection cannot (cluster-scoped
        objects), then let it go. Namespaced objects follow through their ownerReferences."""
        meta = instance["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if ap.FINALIZER not in finalizers:
            return
        name = str(meta.get("name") or "")
        victims: dict[str, JSON] = {}
        for res in ap.CLUSTER_SCOPED:
            for _key, obj in self.children[res.kind].cache.items():
                labels = (obj.get("metadata") or {}).get("labels") or {}
                if labels.get(ap.OWNER_LABEL) == name:
                    victims[ap.describe(obj)] = obj
        with contextlib.suppress(Exception):  # the label is what counts; this is belt and braces
            for obj in self.renderer(instance.get("spec") or {}, self.env):
                if not ap.resource_for(obj).namespaced:
                    victims.setdefault(ap.describe(obj), obj)
        deleted = await ap.delete_objects(self.rest, victims.values())
        for what in deleted:
            log.info("clusterObjectDeleted", instance=object_key(instance), object=what)
        body = {
            "metadata": {
                "finalizers": [f for f in finalizers if f != ap.FINALIZER],
                "resourceVersion": meta.get("resourceVersion"),
            }
        }
        path = ap.METALLBS.path(meta.get("namespace"), name)
        try:
            await self.rest.patch(path, body, ap.MERGE_PATCH)
        except ApiError as exc:
            if exc.not_found:  # a stale cache saw it again after it was already released
                return
            raise
        log.info("instanceDeleted", instance=object_key(instance), deleted=len(deleted))
