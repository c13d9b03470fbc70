"""The client layer's pure parts: cache and indexes, backoff, work queue, event correlation."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from metallb_py.kube.backoff import Backoff
from metallb_py.kube.cache import Cache, by_namespace, object_key
from metallb_py.kube.client import ClientConfigError, choose_source
from metallb_py.kube.events import EventCorrelator
from metallb_py.kube.rest import IPADDRESSPOOLS, NAMESPACES, SERVICES, Resource
from metallb_py.kube.workqueue import WorkQueue


def obj(ns: str | None, name: str, rv: str = "1", **labels: str) -> dict:
    meta: dict = {"name": name, "resourceVersion": rv, "labels": labels}
    if ns:
        meta["namespace"] = ns
    return {"metadata": meta}


def test_resource_paths() -> None:
    assert SERVICES.path("a", "b", "status") == "/api/v1/namespaces/a/services/b/status"
    assert NAMESPACES.path("ignored", "x") == "/api/v1/namespaces/x"
    assert IPADDRESSPOOLS.path("m") == "/apis/metallb.io/v1beta1/namespaces/m/ipaddresspools"


def test_resource_of_derives_the_plural_from_the_kind() -> None:
    assert Resource.of("v1", "Service") == Resource("", "v1", "services", True, "Service")
    assert Resource.of("networking.k8s.io/v1", "NetworkPolicy").plural == "networkpolicies"
    assert Resource.of("metallb.io/v1beta1", "ServiceL2Status").plural == "servicel2statuses"
    crb = Resource.of("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", namespaced=False)
    assert (crb.group, crb.version, crb.plural, crb.namespaced) == (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        False,
    )


def test_cache_indexes_follow_updates_and_deletes() -> None:
    def by_team(o: dict) -> list[str]:
        return [o["metadata"]["labels"]["team"]] if "team" in o["metadata"]["labels"] else []

    cache = Cache({"ns": by_namespace, "team": by_team})
    cache.upsert(obj("a", "s1", team="red"))
    cache.upsert(obj("b", "s2", team="red"))
    cache.upsert(obj(None, "cluster"))
    assert object_key(obj(None, "cluster")) == "cluster"
    assert [object_key(o) for o in cache.by_index("team", "red")] == ["a/s1", "b/s2"]
    cache.upsert(obj("a", "s1", rv="2", team="blue"))
    assert cache.index_keys("team", "red") == ["b/s2"]
    assert cache.index_keys("team", "blue") == ["a/s1"]
    cache.delete("b/s2")
    assert cache.index_keys("team", "red") == [] and cache.index_keys("ns", "b") == []
    assert len(cache) == 2


def test_index_view_is_a_live_mapping_of_the_index() -> None:
    cache = Cache({"ns": by_namespace})
    view = cache.index_view("ns")
    assert dict(view) == {} and len(view) == 0 and "a" not in view
    cache.upsert(obj("b", "s1"))
    cache.upsert(obj("a", "s2"))
    cache.upsert(obj("a", "s3"))
    assert list(view) == ["a", "b"] and len(view) == 2 and "a" in view
    assert [object_key(o) for o in view["a"]] == ["a/s2", "a/s3"]
    assert view.get("c", ()) == () and view.get("c") is None
    with pytest.raises(KeyError):
        view["c"]
    cache.delete("b/s1")
    assert list(view) == ["a"] and view.get("b", ()) == ()


def test_cache_replace_reports_changes_and_deletions() -> None:
    cache = Cache()
    cache.replace([obj("a", "x"), obj("a", "y")])
    changed, deleted = cache.replace([obj("a", "x"), obj("a", "y", rv="5"), obj("a", "z")])
    assert sorted(k for k, _, _ in changed) == ["a/y", "a/z"]
    assert deleted == []
    changed, deleted = cache.replace([obj("a", "z")])
    assert changed == [] and [k for k, _ in deleted] == ["a/x", "a/y"]


def test_backoff_grows_with_jitter_and_resets() -> None:
    b = Backoff(initial=1, maximum=8, factor=2, jitter=0.5, rng=random.Random(1))
    delays = [b.next() for _ in range(6)]
    caps = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, caps, strict=True))
    assert len(set(delays)) == len(delays)  # jittered, not lock-step
    b.reset()
    assert b.next() <= 1


async def test_workqueue_dedups_and_requeues_dirty_keys() -> None:
    q = WorkQueue()
    for key in ("a", "b", "a", "a"):
        q.add(key)
    assert len(q) == 2
    first = await q.get()
    assert first == "a"
    q.add("a")  # changed while being processed: not handed to a second worker now
    assert await q.get() == "b"
    assert q.get_nowait() is None
    q.done("a")  # ...but queued again once the first worker is done
    assert q.get_nowait() == "a"


async def test_workqueue_retry_backs_off_per_key() -> None:
    q = WorkQueue(retry_initial=0.01, retry_max=0.02)
    q.retry("k")
    assert q.get_nowait() is None
    assert await asyncio.wait_for(q.get(), 2) == "k"
    q.close()
    assert await q.get() is None


def test_event_repeats_are_aggregated_like_client_go() -> None:
    c = EventCorrelator("metallb-controller")
    svc = {"kind": "Service", "metadata": {"name": "web", "namespace": "a", "uid": "u1"}}
    first = c.correlate(svc, "Normal", "IPAllocated", "Assigned IP 1", 1000.0)
    assert first.kind == "create" and first.event["count"] == 1
    again = c.correlate(svc, "Normal", "IPAllocated", "Assigned IP 1", 1001.0)
    assert (again.kind, again.name, again.count) == ("patch", first.name, 2)
    later = c.correlate(svc, "Normal", "IPAllocated", "Assigned IP 1", 1000.0 + 700)
    assert later.kind == "create"  # outside the 10-minute window: a new Event


def test_similar_events_are_combined_and_spam_is_dropped() -> None:
    c = EventCorrelator("metallb-controller")
    svc = {"kind": "Service", "metadata": {"name": "web", "namespace": "a", "uid": "u1"}}
    actions = [
        c.correlate(svc, "Warning", "AllocationFailed", f"try {i}", 10.0 + i) for i in range(30)
    ]
    assert [a.kind for a in actions[:10]] == ["create"] * 10
    assert actions[10].event["message"].startswith("(combined from similar events)")
    assert actions[11].kind == "patch"
    assert [a.kind for a in actions[25:]] == ["drop"] * 5  # burst of 25 per object
    other = {"kind": "Service", "metadata": {"name": "db", "namespace": "a", "uid": "u2"}}
    assert c.correlate(other, "Warning", "AllocationFailed", "x", 50.0).kind == "create"
    # Tokens come back at one per five minutes.
    assert c.correlate(svc, "Warning", "AllocationFailed", "x", 40.0 + 301).kind != "drop"


def test_client_source_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = tmp_path / "kc"
    explicit.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert choose_source(str(explicit)) == ("kubeconfig", str(explicit))  # the flag wins
    assert choose_source(None) == ("incluster", "")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    monkeypatch.setenv("KUBECONFIG", str(explicit))
    assert choose_source(None) == ("kubeconfig", str(explicit))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(ClientConfigError, match="no API server configured"):
        choose_source(None)
    with pytest.raises(ClientConfigError, match="does not exist"):
        choose_source(str(tmp_path / "nope"))


def test_commands_look_for_a_kubeconfig_where_kubectl_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kc = tmp_path / "kc"
    kc.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    listed = f"{tmp_path / 'missing'}{os.pathsep}{kc}"  # a list: one missing file is fine
    monkeypatch.setenv("KUBECONFIG", listed)
    assert choose_source(None, kubectl_order=True) == ("kubeconfig", listed)
    assert choose_source(None) == ("incluster", "")  # a component prefers its pod's account
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert choose_source(None) == ("kubeconfig", listed)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(ClientConfigError, match="set KUBECONFIG, or run in a cluster"):
        choose_source(None, kubectl_order=True)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert choose_source(None, kubectl_order=True) == ("incluster", "")
