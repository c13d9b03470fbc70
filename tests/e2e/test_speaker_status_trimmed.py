"""The speaker caches its status objects trimmed, so its writes must never send a cached object
back. Through the embedded API server and the real kubernetes_asyncio client: labels,
annotations and ownerReferences that someone else adds to a ServiceL2Status, ServiceBGPStatus or
BGPSessionState survive the speaker's status writes, and the object is updated in place (same
uid), not replaced. `status` is the speaker's: a field it does not write (set by someone else)
is removed at its next write, and a field the schema does not know never reaches storage (the
server prunes it)."""

from __future__ import annotations

from typing import Any

from metallb_py.kube.rest import (
    BGPSESSIONSTATES,
    NODES,
    SERVICEBGPSTATUSES,
    SERVICEL2STATUSES,
    Resource,
    Rest,
)
from metallb_py.speaker.resources import LABEL_NODE
from metallb_py.speaker.status import Owner, StatusObjects
from tests.lab.apiserver import rest_in_process, running_tasks
from tests.lab.controller_lab import NS, install_crds, wait_for

KINDS = (SERVICEL2STATUSES, SERVICEBGPSTATUSES, BGPSESSIONSTATES)
OTHERS_LABELS = {"team": "payments", "example.com/tier": "edge"}
OTHERS_ANNOTATIONS = {"example.com/note": "kept", "example.com/ticket": "NET-42"}


async def _only(rest: Rest, resource: Resource) -> dict[str, Any]:
    items = (await rest.get(resource.path(NS)))["items"]
    assert len(items) == 1, [o["metadata"]["name"] for o in items]
    return dict(items[0])


async def _node(rest: Rest, name: str) -> dict[str, Any]:
    body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    return dict(await rest.create(NODES.path(None), body))


async def _statuses(rest: Rest) -> list[dict[str, Any]]:
    """The status of the one object of each kind ({} while there is none)."""
    out = []
    for r in KINDS:
        items = (await rest.get(r.path(NS)))["items"]
        out.append((items[0].get("status") or {}) if items else {})
    return out


async def test_others_metadata_survives_and_status_is_the_speakers() -> None:
    async with rest_in_process() as rest, running_tasks() as (stop, start):
        await install_crds(rest)
        node1, node2 = await _node(rest, "node1"), await _node(rest, "node2")
        status = StatusObjects(rest, NS, "node1")
        status.owner = Owner("Node", "node1", node1["metadata"]["uid"])
        for informer in status.informers:
            start(informer.run(stop))
        start(status.run(stop))
        status.set_services({"web/a": ()}, {"web/a": ("peer1",)})
        status.set_sessions({"peer1": {"state": "Active", "bfdState": "Disabled"}})

        first = [
            {"node": "node1", "serviceName": "a", "serviceNamespace": "web"},
            {"node": "node1", "serviceName": "a", "serviceNamespace": "web", "peers": ["peer1"]},
            {"node": "node1", "peer": "peer1", "state": "Active", "bfdState": "Disabled"},
        ]

        async def written(expected: list[dict[str, Any]]) -> bool:
            return await _statuses(rest) == expected

        await wait_for(lambda: written(first), 10, "the speaker's first status")
        before = {r.plural: await _only(rest, r) for r in KINDS}

        # Someone else: metadata on the main endpoint, status fields through /status.
        other_ref = {"apiVersion": "v1", "kind": "Node", "name": "node2"}
        other_ref["uid"] = node2["metadata"]["uid"]
        for r in KINDS:
            meta = before[r.plural]["metadata"]
            await rest.patch(
                r.path(NS, meta["name"]),
                {
                    "metadata": {
                        "labels": OTHERS_LABELS,
                        "annotations": OTHERS_ANNOTATIONS,
                        "ownerReferences": [*meta["ownerReferences"], other_ref],
                    }
                },
            )
        l2_name = before[SERVICEL2STATUSES.plural]["metadata"]["name"]
        bgp_name = before[SERVICEBGPSTATUSES.plural]["metadata"]["name"]
        session_name = before[BGPSESSIONSTATES.plural]["metadata"]["name"]
        await rest.patch(
            SERVICEL2STATUSES.path(NS, l2_name, "status"),
            {"status": {"interfaces": [{"name": "eth9"}]}},
        )
        rogue = await rest.patch(
            SERVICEBGPSTATUSES.path(NS, bgp_name, "status"),
            {"status": {"peers": ["peer1", "rogue"], "comment": "not in the schema"}},
        )
        assert "comment" not in rogue["status"]  # pruned by the server, as a real one does
        await rest.patch(
            BGPSESSIONSTATES.path(NS, session_name, "status"),
            {"status": {"lastError": "set by someone else"}},
        )

        # The speaker puts its status back (a field it does not write is removed) ...
        await wait_for(lambda: written(first), 10, "the speaker's status restored")
        # ... and writes its next change as it would anyway.
        status.set_services({"web/a": ()}, {"web/a": ("peer1", "peer2")})
        status.set_sessions({"peer1": {"state": "Established", "bfdState": "Up"}})
        second = [
            first[0],
            {**first[1], "peers": ["peer1", "peer2"]},
            {**first[2], "state": "Established", "bfdState": "Up"},
        ]
        await wait_for(lambda: written(second), 10, "the speaker's second status")

        for r in KINDS:
            was, now = before[r.plural]["metadata"], (await _only(rest, r))["metadata"]
            assert now["uid"] == was["uid"] and now["name"] == was["name"], r.kind  # in place
            assert now["labels"] == {**was["labels"], **OTHERS_LABELS}, r.kind
            assert now["annotations"] == OTHERS_ANNOTATIONS, r.kind
            assert now["ownerReferences"] == [*was["ownerReferences"], other_ref], r.kind
            assert now["labels"][LABEL_NODE] == "node1"
            # What the speaker keeps of it: no annotations, no managedFields, one owner uid
            # each, the key labels only.
            cached = next(iter(status.kinds[_kind_name(r)].informer.cache.values()))
            assert set(cached["metadata"]) == {
                "name",
                "namespace",
                "resourceVersion",
                "labels",
                "ownerReferences",
            }, r.kind
            assert LABEL_NODE not in cached["metadata"]["labels"]
            assert cached["metadata"]["ownerReferences"] == [
                {"uid": ref["uid"]} for ref in now["ownerReferences"]
            ]
        assert status.errors == 0


def _kind_name(resource: Resource) -> str:
    return {SERVICEL2STATUSES.plural: "l2", SERVICEBGPSTATUSES.plural: "bgp"}.get(
        resource.plural, "session"
    )
