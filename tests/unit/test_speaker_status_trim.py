"""The speaker's status informers cache trimmed objects (`cached_status_object`); the writer must
decide exactly as it would over the whole objects: the same creates, deletes and status patches
(same paths, same bodies), for any owner, any mix of this node's, other owners' and duplicate
objects, any labels, annotations and managedFields, and any stored status against any wanted
one."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_py.speaker import status as status_mod
from metallb_py.speaker.resources import (
    LABEL_NODE,
    LABEL_PEER,
    LABEL_SERVICE_NAME,
    LABEL_SERVICE_NAMESPACE,
)
from metallb_py.speaker.status import Owner, StatusObjects, cached_status_object

SERVICES = ("web/a", "db/c")
PEERS = ("peer1", "peer2")
UIDS = ("uid-pod", "uid-node", "uid-old")


class _Recorder:
    """A Rest that records every request and answers like a server would, deterministically."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.rv = 100

    def _answer(self, verb: str, path: str, body: Any) -> Any:
        self.calls.append((verb, path, json.dumps(body, sort_keys=True)))
        self.rv += 1
        return body

    async def create(self, path: str, body: Any) -> Any:
        meta = dict(body["metadata"])
        meta.setdefault("name", meta.pop("generateName", "x-") + "made")
        meta["resourceVersion"] = "1"
        return self._answer("create", path, {**body, "metadata": meta})

    async def patch(self, path: str, body: Any) -> Any:
        name = path.split("/")[-2]
        self._answer("patch", path, body)
        meta = {"name": name, "namespace": "metallb-system", "resourceVersion": str(self.rv)}
        return {"metadata": meta, "status": body.get("status") or {}}

    async def delete(self, path: str) -> Any:
        return self._answer("delete", path, None)


def _status_value(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    common = {
        "node": st.sampled_from(["node-a", "node-b"]),
        "serviceName": st.sampled_from(["a", "c"]),
        "serviceNamespace": st.sampled_from(["web", "db"]),
    }
    if kind == "bgp":
        extra = {"peers": st.lists(st.sampled_from(PEERS), max_size=2)}
    elif kind == "l2":
        extra = {"interfaces": st.lists(st.builds(lambda n: {"name": n}, st.sampled_from("xy")))}
    else:
        common = {"node": common["node"], "peer": st.sampled_from(PEERS)}
        extra = {"state": st.sampled_from(["Active", "Established"]), "prefixesSent": st.integers()}
    return st.fixed_dictionaries({}, optional={**common, **extra})


@st.composite
def _objects(draw: st.DrawFn, kind: str) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(0, 6))):
        labels = {LABEL_NODE: "node-a", "team": draw(st.sampled_from(["x", "y"]))}
        if kind == "session":
            labels[LABEL_PEER] = draw(st.sampled_from(PEERS))
        else:
            ns, _, name = draw(st.sampled_from(SERVICES)).partition("/")
            labels[LABEL_SERVICE_NAMESPACE], labels[LABEL_SERVICE_NAME] = ns, name
        refs = [
            {"apiVersion": "v1", "kind": "Pod", "name": f"o-{uid}", "uid": uid}
            for uid in draw(st.lists(st.sampled_from(UIDS), max_size=2, unique=True))
        ]
        meta: dict[str, Any] = {
            "name": f"{kind}-{i}",
            "namespace": "metallb-system",
            "uid": f"obj-{i}",
            "resourceVersion": str(10 + i),
            "creationTimestamp": "2026-12-06T00:00:00Z",
            "labels": labels,
            "annotations": {"example.com/note": "big " * 20},
            "managedFields": [{"manager": "speaker", "fieldsV1": {"f:status": {}}}],
        }
        if refs:
            meta["ownerReferences"] = refs
        obj: dict[str, Any] = {"apiVersion": "metallb.io/v1beta1", "kind": kind, "metadata": meta}
        status = draw(st.one_of(st.none(), _status_value(kind)))
        if status is not None:
            obj["status"] = status
        out.append(obj)
    return out


def _decisions(
    kind: str, objs: list[dict[str, Any]], trim: bool, owner: Owner | None, wanted: dict[str, Any]
) -> list[tuple[str, str, str]]:
    async def run() -> list[tuple[str, str, str]]:
        rest = _Recorder()
        writer = StatusObjects(rest, "metallb-system", "node-a")  # type: ignore[arg-type]
        writer.owner = owner
        if kind == "session":
            writer.set_sessions(wanted)
        else:
            bgp = wanted if kind == "bgp" else {}
            writer.set_services(wanted if kind == "l2" else {}, bgp)
        informer = writer.kinds[kind].informer
        for obj in objs:
            informer.cache.upsert(informer.transform(obj) if trim and informer.transform else obj)
        await writer.sync_once()
        return sorted(rest.calls)

    return asyncio.run(run())


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["l2", "bgp", "session"]),
    data=st.data(),
    owner_uid=st.one_of(st.none(), st.sampled_from(UIDS[:2])),
)
def test_trimmed_objects_drive_the_same_writes(
    kind: str, data: st.DataObject, owner_uid: str | None
) -> None:
    objs = data.draw(_objects(kind))
    owner = Owner("Pod", "speaker-x", owner_uid) if owner_uid else None
    if kind == "session":
        states = st.fixed_dictionaries({"state": st.sampled_from(["Active", "Established"])})
        wanted = data.draw(st.dictionaries(st.sampled_from(PEERS), states))
    else:
        names = st.lists(st.sampled_from(PEERS if kind == "bgp" else ("x", "y")), max_size=2)
        wanted = data.draw(st.dictionaries(st.sampled_from(SERVICES), names.map(tuple)))
    full = _decisions(kind, objs, False, owner, wanted)
    assert _decisions(kind, objs, True, owner, wanted) == full


def test_the_cache_keeps_only_what_the_writer_reads() -> None:
    obj = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ServiceBGPStatus",
        "metadata": {
            "name": "bgp-x1",
            "namespace": "metallb-system",
            "uid": "u",
            "resourceVersion": "5",
            "creationTimestamp": "2026-12-06T00:00:00Z",
            "labels": {LABEL_NODE: "n", LABEL_SERVICE_NAME: "a", LABEL_SERVICE_NAMESPACE: "web"},
            "annotations": {"a": "b"},
            "managedFields": [{"manager": "speaker"}],
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "p1"}],
        },
        "status": {"node": "n", "serviceName": "a", "serviceNamespace": "web", "peers": ["p"]},
    }
    wanted = {"web/a": {"node": "n", "serviceName": "a", "serviceNamespace": "web", "peers": ["p"]}}
    trimmed = cached_status_object(obj, wanted)
    assert trimmed["metadata"] == {
        "name": "bgp-x1",
        "namespace": "metallb-system",
        "resourceVersion": "5",
        "labels": {LABEL_SERVICE_NAME: "a", LABEL_SERVICE_NAMESPACE: "web"},
        "ownerReferences": [{"uid": "p1"}],
    }
    # A status as it should be is the wanted dict itself; one that differs is its own copy.
    assert trimmed["status"] is wanted["web/a"]
    other = cached_status_object({**obj, "status": {"node": "n"}}, wanted)
    assert other["status"] == {"node": "n"}
    # Every object of one owner shares one ownerReferences list.
    again = cached_status_object({**obj, "metadata": {**obj["metadata"], "name": "bgp-x2"}})
    assert again["metadata"]["ownerReferences"] is trimmed["metadata"]["ownerReferences"]


def test_owner_lists_shared_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """At most OWNER_SETS sets of owners are remembered; past that, each object gets its own
    (still correct) list."""
    monkeypatch.setattr(status_mod, "_OWNER_REFS", {})

    def cached(uid: str) -> dict[str, Any]:
        refs = [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": uid}]
        return cached_status_object({"metadata": {"name": "x", "ownerReferences": refs}})

    for i in range(status_mod.OWNER_SETS + 5):
        cached(f"u{i}")
    assert len(status_mod._OWNER_REFS) == status_mod.OWNER_SETS

    def refs(uid: str) -> Any:
        return cached(uid)["metadata"]["ownerReferences"]

    first, late = "u0", f"u{status_mod.OWNER_SETS + 1}"
    assert refs(first) is refs(first)
    assert refs(late) == [{"uid": late}] and refs(late) is not refs(late)
