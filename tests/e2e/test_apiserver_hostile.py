"""Hostile requests against a real `metallb-py apiserver` process: each attack is answered with the
real server's refusal (400/413/422, never 500), stores nothing, and a GET sent meanwhile by
another client is answered within a second."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.lab.apiserver import ApiServer, apiserver_fixture, running_apiserver

apiserver = apiserver_fixture(scope="module")

CM = "/api/v1/namespaces/default/configmaps"
MiB = 1024 * 1024


def session(server: ApiServer) -> aiohttp.ClientSession:
    """An admin HTTPS session; `server` is kept on it for the probe's second connection."""
    s = aiohttp.ClientSession(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.admin_token}"},
        connector=aiohttp.TCPConnector(ssl=server.ssl_context()),
        timeout=aiohttp.ClientTimeout(total=120),
    )
    SERVERS[id(s)] = server
    return s


SERVERS: dict[int, ApiServer] = {}


@pytest.fixture
async def http(apiserver: ApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with session(apiserver) as s:
        yield s
    SERVERS.pop(id(s), None)


async def attack(
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any = None,
    ctype: str = "application/json",
    **kwargs: Any,
) -> tuple[int, dict[str, Any]]:
    """Send the attack while a second connection GETs every 50 ms; every such GET must be
    answered within a second. Returns the attack's status and Status body."""
    done = asyncio.Event()
    worst = 0.0

    async def probe() -> None:
        nonlocal worst
        async with session(SERVERS[id(http)]) as other:
            while not done.is_set():
                start = time.monotonic()
                async with other.get("/api/v1/namespaces/default") as r:
                    assert r.status == 200
                    await r.read()
                worst = max(worst, time.monotonic() - start)
                await asyncio.sleep(0.05)

    prober = asyncio.create_task(probe())
    await asyncio.sleep(0.1)
    try:
        data = json.dumps(body) if isinstance(body, dict | list) else body
        headers = {"Content-Type": ctype, **kwargs.pop("headers", {})}
        async with http.request(method, path, data=data, headers=headers, **kwargs) as r:
            status, text = r.status, await r.text()
    finally:
        await asyncio.sleep(0.1)
        done.set()
        await prober
    assert worst < 1.0, f"a concurrent GET took {worst:.2f}s"
    reply = json.loads(text) if text.startswith("{") else {"message": text}
    return status, reply


def configmap(name: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **extra}


async def absent(http: aiohttp.ClientSession, name: str) -> bool:
    async with http.get(f"{CM}/{name}") as r:
        return r.status == 404


# -- 1. JSON patch copy bomb --------------------------------------------------------------------


async def test_json_patch_copy_bomb_is_bounded(http: aiohttp.ClientSession) -> None:
    async with http.post(CM, json=configmap("bomb1", data={"a": "x" * 1000})) as r:
        assert r.status == 201
    # Each copy doubles /data: 24 ops would be 16 GB; the copy budget (3 MiB) stops it.
    ops = [{"op": "copy", "from": "/data", "path": f"/data/k{i}"} for i in range(24)]
    status, reply = await attack(http, "PATCH", f"{CM}/bomb1", ops, "application/json-patch+json")
    assert status == 422, reply
    assert "accumulated size increase of copy" in reply["message"]
    many = [{"op": "test", "path": "/data/a", "value": "x"}] * 10_001
    status, reply = await attack(http, "PATCH", f"{CM}/bomb1", many, "application/json-patch+json")
    assert status == 413, reply
    assert "maximum operations in a JSON patch is 10000, got 10001" in reply["message"]
    async with http.get(f"{CM}/bomb1") as r:
        assert (await r.json())["data"] == {"a": "x" * 1000}


# -- 2. YAML alias bomb -------------------------------------------------------------------------


def _laughs(levels: int) -> str:
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: bomb2}", "x:"]
    lines.append('  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]')
    for i in range(1, levels):
        lines.append(f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines.append(f"data: {{k: *a{levels - 1}}}")
    return "\n".join(lines)


def _long_string_aliased() -> str:
    # Under the node bound (10^5 references) but 100 GB once each alias is expanded.
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: bomb2}", "x:"]
    lines.append(f'  s0: &s0 "{"x" * 1_000_000}"')
    for i in range(1, 6):
        lines.append(f"  s{i}: &s{i} [" + ",".join([f"*s{i - 1}"] * 10) + "]")
    lines.append("data: {k: *s5}")
    return "\n".join(lines)


@pytest.mark.parametrize("doc", [_laughs(9), _long_string_aliased()], ids=["laughs", "string"])
async def test_yaml_alias_bomb_is_refused(http: aiohttp.ClientSession, doc: str) -> None:
    for method, path, ctype in (
        ("POST", CM, "application/yaml"),
        ("PATCH", f"{CM}/bomb2?fieldManager=t", "application/apply-patch+yaml"),
    ):
        status, reply = await attack(http, method, path, doc, ctype)
        assert status == 400, reply
        assert "aliasing" in reply["message"]
    assert await absent(http, "bomb2")


# -- 3. size limits -----------------------------------------------------------------------------


async def test_body_over_3_mib_is_413_before_it_is_read(http: aiohttp.ClientSession) -> None:
    big = json.dumps(configmap("big", data={"a": "x" * (4 * MiB)}))
    status, reply = await attack(http, "POST", CM, big)
    assert status == 413, reply
    assert reply["reason"] == "RequestEntityTooLarge"
    assert reply["message"] == "Request entity too large: limit is 3145728"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b" " * MiB
        yield big.encode()

    status, reply = await attack(http, "POST", CM, chunks())
    assert status == 413, reply
    assert await absent(http, "big")


async def test_a_64_mib_announced_body_is_refused_at_once(apiserver: ApiServer) -> None:
    """The server answers from the headers: the client never has to send the 64 MiB."""
    host, port = apiserver.url.removeprefix("https://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(
        host, int(port), ssl=apiserver.ssl_context(), server_hostname=host
    )
    start = time.monotonic()
    writer.write(
        (
            f"POST {CM} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer "
            f"{apiserver.admin_token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {64 * MiB}\r\n\r\n{{"
        ).encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 413"), head
    assert time.monotonic() - start < 2
    writer.close()


async def test_object_and_payload_limits(http: aiohttp.ClientSession) -> None:
    status, reply = await attack(http, "POST", CM, configmap("data2m", data={"a": "x" * (2 * MiB)}))
    assert status == 422, reply
    assert "must have at most 1048576 bytes" in reply["message"]
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "huge"},
        "subsets": [{"notReadyAddresses": [{"ip": "192.0.2.1", "hostname": "x" * (2 * MiB)}]}],
    }
    status, reply = await attack(http, "POST", "/api/v1/namespaces/default/endpoints", endpoints)
    assert status == 413, reply
    assert "etcdserver: request is too large" in reply["message"]
    annotated = configmap("ann")
    annotated["metadata"]["annotations"] = {"a": "x" * 300_000}
    status, reply = await attack(http, "POST", CM, annotated)
    assert status == 422, reply
    assert "metadata.annotations: Too long: must have at most 262144 bytes" in reply["message"]


# -- 6. non-finite numbers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        ('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"nan"},"x":NaN}', "json"),
        ('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"nan"},"x":Infinity}', "json"),
        ('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"nan"},"x":1e999}', "json"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nan}\nx: .nan\n", "yaml"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nan}\nx: -.inf\n", "yaml"),
    ],
)
async def test_non_finite_numbers_are_refused(
    http: aiohttp.ClientSession, apiserver: ApiServer, body: str, ctype: str
) -> None:
    status, reply = await attack(http, "POST", CM, body, f"application/{ctype}")
    assert status == 400, reply
    assert await absent(http, "nan")
    out = apiserver.kubectl("get", "configmaps", "-A", "-o", "json")
    json.loads(out.stdout)


def test_a_stored_nan_does_not_break_lists(tmp_path: Path) -> None:
    """An object written with NaN before it was refused loads with null there."""
    db = tmp_path / "state.db"
    with running_apiserver(data=db, workdir=tmp_path / "srv") as s:
        s.kubectl("create", "configmap", "victim", "--from-literal=a=b")
    con = sqlite3.connect(db)
    (raw,) = con.execute("SELECT data FROM objects WHERE name='victim'").fetchone()
    obj = json.loads(raw)
    obj["x"] = float("nan")
    con.execute("UPDATE objects SET data=? WHERE name='victim'", (json.dumps(obj).encode(),))
    con.commit()
    con.close()
    assert b"NaN" in json.dumps(obj).encode()
    with running_apiserver(data=db, workdir=tmp_path / "srv") as s:
        out = s.kubectl("get", "configmaps", "-o", "json")
        items = {i["metadata"]["name"]: i for i in json.loads(out.stdout)["items"]}
        assert items["victim"]["x"] is None and items["victim"]["data"] == {"a": "b"}


# -- 7. bad input: 400/422 with the real server's words, never 500 --------------------------------


def _nested(depth: int) -> str:
    return (
        '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},"x":'
        + "[" * depth
        + "]" * depth
        + "}"
    )


BAD_BODIES: list[tuple[str, str, str, int, str]] = [
    # (id, body, path suffix, status, words)
    (
        "name-number",
        '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":5}}',
        "",
        400,
        "cannot unmarshal number into Go struct field ObjectMeta.metadata.name of type string",
    ),
    (
        "labels-list",
        '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"l","labels":["a"]}}',
        "",
        400,
        "cannot unmarshal array into Go struct field ObjectMeta.metadata.labels of type "
        "map[string]string",
    ),
    (
        "owner-refs-number",
        '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"o","ownerReferences":[1]}}',
        "",
        400,
        "cannot unmarshal number into Go struct field ObjectMeta.metadata.ownerReferences of "
        "type v1.OwnerReference",
    ),
    (
        "finalizers-object",
        '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"f","finalizers":{"a":1}}}',
        "",
        400,
        "cannot unmarshal object into Go struct field ObjectMeta.metadata.finalizers of type "
        "[]string",
    ),
    (
        "lone-surrogate",
        '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"s"},"data":{"a":"\\ud800"}}',
        "",
        400,
        "lone surrogate",
    ),
    (
        "5000-digits",
        '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"i"},"x":' + "9" * 5000 + "}",
        "",
        400,
        "into Go value of type int64",
    ),
    ("nested-1000", _nested(1000), "", 400, "exceeded max depth"),
    ("nested-150", _nested(150), "", 400, "exceeded max depth"),
    (
        "label-prefix-254",
        json.dumps(configmap("p", metadata={"name": "p", "labels": {"a" * 254 + "/x": "y"}})),
        "",
        422,
        "prefix part must be no more than 253 characters",
    ),
    (
        "dry-run-maybe",
        json.dumps(configmap("d")),
        "?dryRun=maybe",
        422,
        'dryRun: Unsupported value: "maybe": supported values: "All"',
    ),
]


@pytest.mark.parametrize(
    ("body", "query", "status", "words"),
    [b[1:] for b in BAD_BODIES],
    ids=[b[0] for b in BAD_BODIES],
)
async def test_bad_bodies_are_refused(
    http: aiohttp.ClientSession, body: str, query: str, status: int, words: str
) -> None:
    got, reply = await attack(http, "POST", CM + query, body)
    assert got == status, reply
    assert words in reply["message"]
    assert reply["reason"] in ("BadRequest", "Invalid")


async def test_service_ports_as_a_string(http: aiohttp.ClientSession) -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "ports"},
        "spec": {"ports": "80"},
    }
    status, reply = await attack(http, "POST", "/api/v1/namespaces/default/services", svc)
    assert status == 400, reply
    assert (
        "cannot unmarshal string into Go struct field .spec.ports of type []" in (reply["message"])
    )


@pytest.mark.parametrize(
    ("selector", "words"),
    [
        ("a gt x", "found 'gt', expected: in, notin"),
        ("a lt 1.5", "found 'lt', expected: in, notin"),
        ("a>1.5", "the value must be an integer"),
        ("=", "found '=', expected: !, identifier"),
        ("(", "found '(', expected: !, identifier"),
        ("a in ()", "values set of 'a' can't be empty"),
        ("a" * 254 + "/b=c", "prefix must be a DNS subdomain of at most 253 characters"),
    ],
)
async def test_bad_label_selectors(http: aiohttp.ClientSession, selector: str, words: str) -> None:
    status, reply = await attack(http, "GET", CM, params={"labelSelector": selector})
    assert status == 400, reply
    assert words in reply["message"]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"limit": "abc"}, 'strconv.ParseInt: parsing "abc": invalid syntax'),
        ({"watch": "1", "timeoutSeconds": "abc"}, 'parsing "abc": invalid syntax'),
    ],
)
async def test_bad_list_options(
    http: aiohttp.ClientSession, params: dict[str, str], words: str
) -> None:
    status, reply = await attack(http, "GET", CM, params=params)
    assert status == 400, reply
    assert words in reply["message"]


@pytest.mark.parametrize(
    ("ops", "words"),
    [
        ([{"op": "replace", "path": 5, "value": "x"}], "path must be a string"),
        ([{"op": "add", "path": "/data/b"}], 'missing "value"'),
        ([{"op": "copy", "path": "/data/b"}], 'missing "from"'),
        ([{"op": "move", "path": "/data/b"}], 'missing "from"'),
        ([{"op": "add", "path": "/metadata/finalizers", "value": {"a": 1}}], "finalizers"),
    ],
)
async def test_bad_json_patches(
    http: aiohttp.ClientSession, ops: list[dict[str, Any]], words: str
) -> None:
    async with http.post(CM, json=configmap("patched", data={"a": "1"})) as r:
        assert r.status in (201, 409)
    status, reply = await attack(http, "PATCH", f"{CM}/patched", ops, "application/json-patch+json")
    assert status == 400, reply
    assert words in reply["message"]
    async with http.get(f"{CM}/patched") as r:
        obj = await r.json()
    assert obj["data"] == {"a": "1"} and "finalizers" not in obj["metadata"]


def test_kubectl_sees_the_real_wording(apiserver: ApiServer) -> None:
    out = apiserver.kubectl("get", "configmaps", "-l", "a gt x", check=False)
    assert out.returncode != 0 and "found 'gt'" in out.stdout + out.stderr, out
    out = apiserver.kubectl(
        "create",
        "-f",
        "-",
        check=False,
        input='{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"k","labels":["a"]}}',
    )
    assert out.returncode != 0 and "cannot unmarshal array" in out.stdout + out.stderr, out
    assert "Traceback" not in apiserver.output()


@pytest.fixture(autouse=True, scope="module")
def _no_tracebacks(apiserver: ApiServer) -> Iterator[None]:
    """No request of this module may end in a 500 with a traceback in the log."""
    yield
    assert "Traceback" not in apiserver.output(), apiserver.output()[-4000:]
