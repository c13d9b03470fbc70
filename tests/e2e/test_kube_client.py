"""The client layer (metallb_py.kube) against `metallb-py apiserver`, over HTTP with the real
kubernetes_asyncio client: informer list/watch/resume/relist/bookmarks, status writes with
conflicts, event aggregation, Lease leader election with fencing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from metallb_py.config import parse
from metallb_py.config.status import (
    SPEAKER_CONDITION,
    configuration_state_status,
    same_configuration_state,
)
from metallb_py.kube.cache import by_namespace
from metallb_py.kube.client import ClientConfigError, connect
from metallb_py.kube.events import EventRecorder
from metallb_py.kube.informer import Informer
from metallb_py.kube.leader import LeaderElector
from metallb_py.kube.rest import CONFIGURATIONSTATES, SERVICES, ApiError, Resource, Rest
from metallb_py.kube.status import StatusWriter, WriteOutcome
from metallb_py.objects import JSON
from tests.lab.apiserver import ApiServer, apiserver_fixture
from tests.lab.config_objects import pool
from tests.lab.controller_lab import NS, client, create_service, events_for, install_crds, wait_for

EARLY = "2026-01-01T00:00:00Z"
CONFIGMAPS = Resource("", "v1", "configmaps", kind="ConfigMap")

apiserver = apiserver_fixture(args=["--watch-history", "8", "--bookmark-interval", "0.3"])


@contextlib.asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(informer.run(stop))
    try:
        await asyncio.wait_for(informer.synced.wait(), 20)
        yield stop
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def recorder(seen: list[tuple[str, str | None]]) -> Any:
    def handler(key: str, old: JSON | None, new: JSON | None) -> None:
        seen.append((key, None if new is None else new["metadata"]["resourceVersion"]))

    return handler


async def configmap(rest: Rest, name: str, value: str = "1") -> JSON:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"v": value},
    }
    return await rest.create(CONFIGMAPS.path("default"), body)


async def test_connect_reports_a_missing_kubeconfig(tmp_path: Any) -> None:
    with pytest.raises(ClientConfigError, match="does not exist"):
        await connect(str(tmp_path / "nope"))


async def test_informer_lists_watches_and_indexes(apiserver: ApiServer) -> None:
    async with client(apiserver) as rest:
        await create_service(rest, "before")
        seen: list[tuple[str, str | None]] = []
        inf = Informer(
            rest, SERVICES, namespace="default", indexers={"ns": by_namespace}, page_size=1
        )
        inf.add_handler(recorder(seen))
        async with running(inf):
            assert "default/before" in inf.cache  # paged first list
            await create_service(rest, "after", port=81)
            await rest.patch(
                SERVICES.path("default", "after"), {"metadata": {"labels": {"x": "y"}}}
            )
            await rest.delete(SERVICES.path("default", "before"))

            async def settled() -> bool:
                obj = inf.cache.get("default/after")
                return (
                    "default/before" not in inf.cache
                    and obj is not None
                    and obj["metadata"].get("labels") == {"x": "y"}
                )

            await wait_for(settled, 20, "the cache to follow the changes")
            assert ("default/before", None) in seen  # deletions reach handlers
            assert {o["metadata"]["name"] for o in inf.cache.by_index("ns", "default")} >= {"after"}
            assert inf.relists == 0


async def test_informer_resumes_then_relists_on_410(apiserver: ApiServer) -> None:
    async with client(apiserver) as rest:
        for i in range(3):
            await configmap(rest, f"cm{i}")
        seen: list[tuple[str, str | None]] = []
        inf = Informer(rest, CONFIGMAPS, namespace="default")
        inf.add_handler(recorder(seen))
        async with running(inf):
            pass
        # A short outage (fewer changes than the server's history): resume, no relist.
        await configmap(rest, "during-short")
        async with running(inf):
            await wait_for(_has(inf, "default/during-short"), 20, "resumed watch")
            assert inf.relists == 0
        # A long outage: the history moved on, the server answers 410, the informer relists
        # and reports the deletion it could not have seen as an event.
        await rest.delete(CONFIGMAPS.path("default", "cm0"))
        for i in range(12):
            await configmap(rest, f"during-long{i}")
        async with running(inf):
            await wait_for(_has(inf, "default/during-long11"), 20, "relist after 410")
            assert inf.relists >= 1
            assert "default/cm0" not in inf.cache
            assert ("default/cm0", None) in seen


def _has(inf: Informer, key: str) -> Any:
    async def check() -> bool:
        return key in inf.cache

    return check


async def test_bookmarks_advance_the_resume_point(apiserver: ApiServer) -> None:
    async with client(apiserver) as rest:
        svc = await create_service(rest, "quiet")
        inf = Informer(rest, SERVICES, namespace="default")
        async with running(inf):
            # Changes to other resources move the server's version; bookmarks carry it to us.
            last = await configmap(rest, "noise")
            target = int(last["metadata"]["resourceVersion"])

            async def advanced() -> bool:
                return int(inf.last_resource_version or 0) >= target

            await wait_for(advanced, 20, "a bookmark")
            assert int(svc["metadata"]["resourceVersion"]) < target


async def test_status_writer_conflict_recomputes_from_fresh_state(apiserver: ApiServer) -> None:
    async with client(apiserver) as rest:
        stale = await create_service(rest, "web")
        await rest.patch(SERVICES.path("default", "web"), {"metadata": {"labels": {"v": "2"}}})
        writer = StatusWriter(rest)
        body = {**stale, "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
        assert (await writer.put_status(SERVICES, body)).outcome is WriteOutcome.CONFLICT

        computed_from: list[str] = []

        def compute(fresh: JSON) -> JSON:
            computed_from.append(fresh["metadata"]["resourceVersion"])
            return {**fresh, "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}

        result = await writer.update_status(SERVICES, "default", "web", compute, current=stale)
        assert result.ok
        assert computed_from[0] == stale["metadata"]["resourceVersion"]
        assert len(computed_from) == 2 and computed_from[1] != computed_from[0]
        fresh = await rest.get(SERVICES.path("default", "web"))
        assert fresh["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.1"}]
        assert fresh["metadata"]["labels"] == {"v": "2"}  # the other writer's change survived

        fenced = StatusWriter(rest, can_write=lambda: False)
        assert (await fenced.put_status(SERVICES, fresh)).outcome is WriteOutcome.FENCED


async def test_configuration_state_is_created_then_written_only_when_it_changes(
    apiserver: ApiServer,
) -> None:
    """What the controller and every speaker do with their ConfigurationState: create it bare
    the first time, write its status, and leave it (and its timestamp) alone while the state
    a reader sees is the same."""
    async with client(apiserver) as rest:
        await install_crds(rest)
        writer = StatusWriter(rest)
        meta = {"name": "speaker-n1", "namespace": NS, "labels": {"metallb.io/node-name": "n1"}}
        path = CONFIGURATIONSTATES.path(NS, "speaker-n1")
        _, bad = parse([pool("a", "192.0.2.0/24"), pool("b", "192.0.2.0/25")])

        async def write(status: JSON) -> JSON:
            result = await writer.ensure_status(
                CONFIGURATIONSTATES, meta, status, same=same_configuration_state
            )
            assert result.ok, result.error
            return await rest.get(path)

        first = await write(configuration_state_status(bad, SPEAKER_CONDITION, now=EARLY))
        assert first["metadata"]["labels"] == meta["labels"]
        assert first["status"]["result"] == "Invalid"
        assert "pool-overlap" in first["status"]["errorSummary"]

        again = await write(configuration_state_status(bad, SPEAKER_CONDITION))
        assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        assert again["status"]["conditions"][0]["lastTransitionTime"] == EARLY

        _, ok = parse([pool("a", "192.0.2.0/24")])
        fixed = await write(configuration_state_status(ok, SPEAKER_CONDITION))
        assert fixed["status"]["result"] == "Valid" and fixed["status"]["errorSummary"] == ""
        assert fixed["status"]["conditions"][0]["lastTransitionTime"] != EARLY

        fenced = StatusWriter(rest, can_write=lambda: False)
        result = await fenced.ensure_status(CONFIGURATIONSTATES, meta, first["status"])
        assert result.outcome is WriteOutcome.FENCED
        assert (await rest.get(path))["status"]["result"] == "Valid"


async def test_event_recorder_aggregates_repeats(apiserver: ApiServer) -> None:
    async with client(apiserver) as rest:
        svc = await create_service(rest, "web")
        rec = EventRecorder(rest, "metallb-controller")
        rec.start()
        try:
            for _ in range(3):
                rec.warning(svc, "AllocationFailed", "no available IPs")
            rec.normal(svc, "IPAllocated", 'Assigned IP ["192.0.2.1"]')
            await rec.flush()
        finally:
            await rec.stop()
        events = await events_for(rest, "web")
        by_reason = {e["reason"]: e for e in events}
        assert len(events) == 2
        assert by_reason["AllocationFailed"]["count"] == 3
        assert by_reason["AllocationFailed"]["type"] == "Warning"
        assert by_reason["IPAllocated"]["source"]["component"] == "metallb-controller"


async def test_leader_election_failover_and_fencing(apiserver: ApiServer) -> None:
    async with client(apiserver) as rest:
        a = LeaderElector(
            rest,
            "default",
            "test-lease",
            "a",
            lease_duration=2,
            renew_deadline=1.5,
            retry_period=0.2,
        )
        b = LeaderElector(
            rest,
            "default",
            "test-lease",
            "b",
            lease_duration=2,
            renew_deadline=1.5,
            retry_period=0.2,
        )
        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        task_a = asyncio.create_task(a.run(stop_a))
        await asyncio.wait_for(a.leading.wait(), 10)
        task_b = asyncio.create_task(b.run(stop_b))
        await asyncio.sleep(1.0)
        assert a.may_write() and not b.may_write()

        # a is cut off from the API server (a partition): its renewals fail. It must stop
        # writing at its renew deadline, before b, which waits the lease out, can lead.
        loop = asyncio.get_running_loop()
        stamps: dict[str, float] = {}
        b.on_started.append(lambda: _stamp(stamps, "b_started", loop.time()))
        b.on_started.append(lambda: _stamp(stamps, "a_could_write", float(a.may_write())))

        async def partitioned(started: float) -> bool:
            raise OSError("network unreachable")

        real_round = a._try_acquire_or_renew
        a._try_acquire_or_renew = partitioned  # type: ignore[method-assign]
        cut = loop.time()
        await asyncio.wait_for(b.leading.wait(), 15)
        assert stamps["a_could_write"] == 0.0
        assert not a.may_write()
        assert 1.0 <= stamps["b_started"] - cut < 10
        # The partition heals: a sees b's Lease and steps down for good.
        a._try_acquire_or_renew = real_round  # type: ignore[method-assign]
        await asyncio.wait_for(a.lost.wait(), 10)
        assert not a.leading.is_set()
        stop_a.set()
        await asyncio.wait_for(task_a, 10)

        lease = await rest.get("/apis/coordination.k8s.io/v1/namespaces/default/leases/test-lease")
        assert lease["spec"]["holderIdentity"] == "b"
        assert lease["spec"]["leaseTransitions"] >= 1

        # A clean shutdown hands the lease back at once.
        stop_b.set()
        await asyncio.wait_for(task_b, 10)
        lease = await rest.get("/apis/coordination.k8s.io/v1/namespaces/default/leases/test-lease")
        assert lease["spec"]["holderIdentity"] == ""


def _stamp(stamps: dict[str, float], name: str, when: float) -> None:
    stamps.setdefault(name, when)


async def test_api_errors_carry_the_status(apiserver: ApiServer) -> None:
    async with client(apiserver) as rest:
        with pytest.raises(ApiError) as info:
            await rest.get(SERVICES.path("default", "missing"))
        assert info.value.not_found
