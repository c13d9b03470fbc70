"""A create that fails with 409 because a generated name is taken (an API server before
Kubernetes 1.32 does not retry generateName) must be retried, never answered with a DELETE on
the collection: that once wiped every node's ServiceBGPStatus objects at 10 000 services.
Runs the real HTTP server in-process so its name generator can be made to collide."""

from __future__ import annotations

import pytest

from metallb_py.apiserver import objects
from metallb_py.kube.rest import SERVICEBGPSTATUSES
from metallb_py.speaker.resources import LABEL_NODE
from metallb_py.speaker.status import StatusObjects
from tests.lab.apiserver import rest_in_process, running_tasks
from tests.lab.controller_lab import NS, install_crds, wait_for


async def test_a_taken_generated_name_is_retried_and_deletes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with rest_in_process() as rest, running_tasks() as (stop, start):
        await install_crds(rest)
        other = {
            "apiVersion": SERVICEBGPSTATUSES.api_version,
            "kind": SERVICEBGPSTATUSES.kind,
            "metadata": {"name": "bgp-taken", "labels": {LABEL_NODE: "node2"}},
        }
        await rest.create(SERVICEBGPSTATUSES.path(NS), other)
        tries: list[str] = []

        def taken() -> str:
            tries.append("taken")
            return "taken"

        monkeypatch.setattr(objects, "generate_suffix", taken)

        status = StatusObjects(rest, NS, "node1")
        for informer in status.informers:
            start(informer.run(stop))
        start(status.run(stop))
        status.set_services({}, {"web/a": ("peer1",)})

        async def refused_twice() -> bool:
            return len(tries) >= 18  # two creates, each refused with 409 after 9 names

        await wait_for(refused_twice, 10, "two refused creates")
        names = [
            o["metadata"]["name"] for o in (await rest.get(SERVICEBGPSTATUSES.path(NS)))["items"]
        ]
        assert names == ["bgp-taken"]

        monkeypatch.setattr(objects, "generate_suffix", lambda: "fresh")

        async def ours() -> bool:
            items = (await rest.get(SERVICEBGPSTATUSES.path(NS)))["items"]
            return sorted(o["metadata"]["name"] for o in items) == ["bgp-fresh", "bgp-taken"]

        await wait_for(ours, 10, "the retried create")

        async def with_status() -> bool:
            # The object is created first and its status written right after (a subresource).
            mine = await rest.get(SERVICEBGPSTATUSES.path(NS, "bgp-fresh"))
            return (mine.get("status") or {}).get("peers") == ["peer1"]

        await wait_for(with_status, 10, "the retried create's status")
