"""List + watch one resource into a local cache and tell handlers which keys changed.

* The first list (paged) fills the cache, then `synced` is set.
* The watch resumes from the last resourceVersion seen (events and bookmarks), so a dropped
  connection loses nothing; `410 Gone` (history compacted, server restarted) triggers a relist,
  whose differences against the cache are reported like events, deletions included.
* Errors back off exponentially with jitter; a periodic resync reports every cached key again,
  so handlers are level-triggered: they get the key and read the latest object.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from metallb_py.kube.backoff import Backoff
from metallb_py.kube.cache import Cache, IndexFunc, newer, object_key, resource_version
from metallb_py.kube.rest import ApiError, Resource, Rest
from metallb_py.log import get_logger
from metallb_py.objects import JSON

log = get_logger("kube")

# handler(key, old, new): new is None on deletion; old is None on first sight.
Handler = Callable[[str, JSON | None, JSON | None], None]
# transform(obj) -> what the cache keeps: the fields its readers use (and metadata.name,
# namespace and resourceVersion, which the cache itself needs). Applied once, at ingest.
Transform = Callable[[JSON], JSON]


class Informer:
    def __init__(
        self,
        rest: Rest,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        indexers: Mapping[str, IndexFunc] | None = None,
        resync_period: float = 300.0,
        page_size: int = 500,
        watch_timeout: tuple[int, int] = (240, 480),
        backoff: Backoff | None = None,
        optional: bool = False,
        transform: Transform | None = None,
    ) -> None:
        self.rest = rest
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.cache = Cache(dict(indexers or {}))
        self.resync_period = resync_period
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.backoff = backoff or Backoff(initial=0.2, maximum=30.0)
        # optional: the resource may not be served (a CRD not installed): count it as empty and
        # synced, and keep checking in the background.
        self.optional = optional
        # transform: like client-go's SetTransform, trims each object before it is cached, so
        # 10 000 Services cost their few read fields, not their whole JSON.
        self.transform = transform
        self.missing = False
        self.synced = asyncio.Event()
        self.handlers: list[Handler] = []
        self.last_resource_version = ""
        self.relists = 0
        self.watch_starts = 0
        self.errors = 0
        self.last_error = ""

    @property
    def name(self) -> str:
        return self.resource.plural

    def add_handler(self, handler: Handler) -> None:
        self.handlers.append(handler)

    def _path(self) -> str:
        return self.resource.path(self.namespace)

    def _selectors(self) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if self.label_selector:
            query["labelSelector"] = self.label_selector
        if self.field_selector:
            query["fieldSelector"] = self.field_selector
        return query

    def _notify(self, key: str, old: JSON | None, new: JSON | None) -> None:
        for handler in self.handlers:
            try:
                handler(key, old, new)
            except Exception:
                log.exception("informerHandlerFailed", resource=self.name, key=key)

    def resync(self) -> None:
        """Report every cached object again (old == new)."""
        for key, obj in self.cache.items():
            self._notify(key, obj, obj)

    def remember(self, obj: JSON) -> None:
        """Put an object we just wrote into the cache (if newer), ahead of its watch event."""
        self.cache.upsert_if_newer(self.transform(obj) if self.transform else obj)

    async def list(self) -> None:
        items: list[JSON] = []
        cont: str | None = None
        while True:
            query = {**self._selectors(), "limit": self.page_size}
            if cont:
                query["continue"] = cont
            page = await self.rest.get(self._path(), query)
            kind = self.resource.kind
            for item in page.get("items") or []:
                # Items in a list carry no kind/apiVersion; put them back for consumers.
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", self.resource.api_version)
                items.append(self.transform(item) if self.transform else item)
            meta = page.get("metadata") or {}
            cont = meta.get("continue") or None
            if not cont:
                self.last_resource_version = str(meta.get("resourceVersion") or "")
                break
        changed, deleted = self.cache.replace(items, self.last_resource_version)
        for key, old in deleted:
            self._notify(key, old, None)
        for key, old_obj, new in changed:
            self._notify(key, old_obj, new)

    async def _watch(self, stop: asyncio.Event) -> None:
        query = {
            **self._selectors(),
            "resourceVersion": self.last_resource_version,
            "allowWatchBookmarks": "true",
        }
        timeout = random.randint(*self.watch_timeout)
        self.watch_starts += 1
        async for event in self.rest.watch(self._path(), query, timeout):
            if stop.is_set():
                return
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                code = int(obj.get("code") or 500)
                raise ApiError(code, str(obj.get("reason") or "watch error"), obj)
            rv = resource_version(obj)
            if rv:
                self.last_resource_version = rv
            if kind == "BOOKMARK":
                continue
            obj.setdefault("kind", self.resource.kind)
            obj.setdefault("apiVersion", self.resource.api_version)
            if self.transform is not None:
                obj = self.transform(obj)
            if kind == "DELETED":
                key = object_key(obj)
                cached = self.cache.get(key)
                cached_rv = resource_version(cached)
                if (
                    cached is not None
                    and rv.isdigit()
                    and cached_rv.isdigit()
                    and newer(cached_rv, rv)
                ):
                    continue  # a late event about an older incarnation (a relist raced it)
                old = self.cache.delete(key)
                self._notify(key, old, None)
            elif kind in ("ADDED", "MODIFIED"):
                key, old, stored = self.cache.upsert_if_newer(obj)
                if stored:
                    self._notify(key, old, obj)
            self.backoff.reset()

    async def run(self, stop: asyncio.Event) -> None:
        """List and watch until `stop` is set; a watch blocked on a quiet connection is
        cancelled rather than waited out."""
        tasks = [
            asyncio.create_task(self._run(stop)),
            asyncio.create_task(self._resync_loop(stop)),
            asyncio.create_task(stop.wait()),
        ]
        try:
            await asyncio.wait({tasks[0], tasks[2]}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, stop: asyncio.Event) -> None:
        # Started again after a stop: resume the watch from where it was (410 forces a relist).
        need_list = not (self.synced.is_set() and self.last_resource_version)
        while not stop.is_set():
            try:
                if need_list:
                    await self.list()
                    self.missing = False
                    need_list = False
                    self.synced.set()
                    self.backoff.reset()
                await self._watch(stop)
                continue  # the server ended the watch (timeout): resume from the last RV
            except ApiError as exc:
                if exc.gone:
                    log.info(
                        "watchExpired",
                        msg="relisting",
                        resource=self.name,
                        resourceVersion=self.last_resource_version,
                    )
                    self.relists += 1
                    need_list = True
                    continue
                if exc.not_found and need_list and self.optional:
                    if not self.missing:
                        log.warning(
                            "resourceNotServed", msg="treating it as empty", resource=self.name
                        )
                    self.missing = True
                    self.synced.set()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.backoff.maximum)
                    continue
                self._failed(exc)
                if exc.status in (400, 500, 504) and not need_list:
                    need_list = True  # e.g. "too large resource version": start over
                    self.relists += 1
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                self._failed(exc)
            delay = self.backoff.next()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = str(exc) or type(exc).__name__
        log.warning(
            "listWatchFailed",
            msg="backing off",
            resource=self.name,
            error=self.last_error,
        )

    async def _resync_loop(self, stop: asyncio.Event) -> None:
        if self.resync_period <= 0:
            return
        await self.synced.wait()
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.resync_period)
            if not stop.is_set():
                self.resync()
