"""generateName never fails on a collision: the embedded API server picks another suffix, as
Kubernetes does since 1.32 (RetryGenerateName). At 10 000 objects of one prefix, five random
characters collide a few times; a 409 there once made the speaker lose its status objects."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from metallb_py.apiserver import objects
from tests.lab.apiserver import in_process_apiserver

BASE = "/api/v1/namespaces/default/configmaps"


async def test_a_colliding_generated_name_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    suffixes: Iterator[str] = iter(["aaaaa", "aaaaa", "aaaaa", "bbbbb"])
    monkeypatch.setattr(objects, "generate_suffix", lambda: next(suffixes))
    server = TestServer(in_process_apiserver().app())
    await server.start_server()
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "cfg-"}}
    try:
        async with aiohttp.ClientSession() as session:
            names = []
            for _ in range(2):
                async with session.post(server.make_url(BASE), json=body) as resp:
                    assert resp.status == 201, await resp.text()
                    names.append((await resp.json())["metadata"]["name"])
            async with session.get(server.make_url(BASE)) as resp:
                listed = sorted(i["metadata"]["name"] for i in (await resp.json())["items"])
    finally:
        await server.close()
    assert names == ["cfg-aaaaa", "cfg-bbbbb"]
    assert listed == names
