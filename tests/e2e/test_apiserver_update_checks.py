"""Updates check only what they change, and still check all of it: a status patch is refused
for a wrong type in status and warned (or, with Strict, refused) for an unknown status field; a
patch of the main endpoint likewise for spec and for new top-level fields; fields a write leaves
as stored are neither refused nor pruned again."""

from __future__ import annotations

from typing import Any

import pytest

from tests.lab.apiserver import Reply, request_json
from tests.unit.test_apiserver_apply import deployment

BASE = "/api/v1/namespaces/default/services"
MERGE = "application/merge-patch+json"


async def merge_patch(http: Any, path: str, body: Any, **params: str) -> Reply:
    return await request_json(http, "PATCH", path, body, MERGE, **params)


SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}]},
}


async def test_status_updates_check_the_status_they_change(apiserver_http: Any) -> None:
    http = apiserver_http
    code, _, _ = await request_json(http, "POST", BASE, SERVICE)
    assert code == 201
    status = BASE + "/web/status"
    code, out, _ = await merge_patch(
        http, status, {"status": {"loadBalancer": {"ingress": [{"ip": 5}]}}}
    )
    assert code == 400
    assert (
        "cannot unmarshal number into Go struct field .status.loadBalancer.ingress.ip"
        in (out["message"])
    )
    bogus = {"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1", "bogus": 1}]}}}
    code, out, _ = await merge_patch(http, status, bogus, fieldValidation="Strict")
    assert code == 400
    assert 'unknown field "status.loadBalancer.ingress[0].bogus"' in out["message"]
    code, out, warnings = await merge_patch(http, status, bogus)
    assert code == 200
    assert out["status"]["loadBalancer"]["ingress"] == [{"ip": "198.51.100.1"}]
    assert any("status.loadBalancer.ingress[0].bogus" in w for w in warnings), warnings
    # A spec change sent to /status is checked too (then dropped: status endpoints write
    # status only).
    code, out, _ = await merge_patch(http, status, {"spec": {"ports": "80"}})
    assert code == 400 and "cannot unmarshal string" in out["message"]


async def test_main_endpoint_updates_check_what_they_change_only(apiserver_http: Any) -> None:
    http = apiserver_http
    code, created, _ = await request_json(http, "POST", BASE, SERVICE)
    assert code == 201
    svc = BASE + "/web"
    code, out, _ = await merge_patch(http, svc, {"spec": {"bogus": 1}}, fieldValidation="Strict")
    assert code == 400 and 'unknown field "spec.bogus"' in out["message"]
    code, out, _ = await merge_patch(http, svc, {"metadata": {"labels": {"app": 7}}})
    assert code == 400 and "ObjectMeta.metadata.labels" in out["message"]
    code, out, warnings = await merge_patch(http, svc, {"metadata": {"labels": {"tier": "a"}}})
    assert code == 200 and warnings == []
    assert out["spec"] == created["spec"]
    # A whole-object PUT with one new top-level field: that field is reported and dropped.
    out["extra"] = {"x": 1}
    code, put, warnings = await request_json(http, "PUT", svc, out)
    assert code == 200 and "extra" not in put
    assert warnings == ['299 - "unknown field \\"extra\\""'], warnings
    out.pop("extra")
    out["metadata"].pop("resourceVersion")
    out["spec"]["ports"][0]["port"] = "80"
    code, err, _ = await request_json(http, "PUT", svc, out)
    assert code == 400 and "cannot unmarshal string" in err["message"]


@pytest.mark.parametrize(("stored", "sent", "word"), [(80, 80.0, "number"), (1, True, "bool")])
async def test_a_value_equal_in_python_but_of_another_json_type_is_still_refused(
    apiserver_http: Any, stored: int, sent: Any, word: str
) -> None:
    """80.0 == 80 and True == 1 in Python; to a typed client they are not the same field, so a
    patch that leaves a field equal to the stored one in Python's eyes is still checked."""
    http = apiserver_http
    svc = {**SERVICE, "spec": {**SERVICE["spec"], "ports": [{"name": "http", "port": stored}]}}
    code, created, _ = await request_json(http, "POST", BASE, svc)
    assert code == 201
    ports = [{**p, "port": sent} for p in created["spec"]["ports"]]  # every default included
    assert ports == created["spec"]["ports"]
    code, out, _ = await merge_patch(http, BASE + "/web", {"spec": {"ports": ports}})
    assert code == 400, out
    assert f"cannot unmarshal {word} into Go struct field .spec.ports.port" in out["message"]


async def test_a_change_of_json_type_alone_is_a_change(apiserver_http: Any) -> None:
    """1 -> true in a field no schema types (here a Deployment's spec, which this server keeps
    as sent; a custom resource's x-kubernetes-preserve-unknown-fields alike) is stored,
    bumps the generation and is recorded in managedFields, as the real server does: it compares
    the JSON, where Python's == would call the write a no-op."""
    http = apiserver_http
    url = "/apis/apps/v1/namespaces/default/deployments"
    body = deployment(paused=1)
    body["metadata"] = {"name": "d"}
    code, created, _ = await request_json(http, "POST", url, body)
    assert code == 201, created
    code, out, _ = await merge_patch(http, url + "/d", {"spec": {"paused": True}})
    assert code == 200, out
    assert out["spec"]["paused"] is True
    assert int(out["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert out["metadata"]["generation"] == 2
    code, same, _ = await merge_patch(http, url + "/d", {"spec": {"paused": True}})
    assert same["metadata"]["resourceVersion"] == out["metadata"]["resourceVersion"]  # no-op


def test_same_json_tells_apart_what_python_equality_does_not() -> None:
    from metallb_py.apiserver.objects import same_json

    assert same_json({"a": [1, {"b": "x"}]}, {"a": [1, {"b": "x"}]})
    assert same_json({"a": 1, "b": 2}, {"b": 2, "a": 1})  # key order is no difference
    for a, b in [(1, True), (1, 1.0), (0, False), ({"a": [1]}, {"a": [True]}), ([1], (1,))]:
        assert a == b or isinstance(b, tuple)
        assert not same_json(a, b)
    assert not same_json({"a": None}, {})
