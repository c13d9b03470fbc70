"""Server-side apply over HTTP: the embedded API server in process, on a loopback port, with the
PATCH endpoint's status codes, refusals and managedFields as a client sees them."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.lab.apiserver import request_json
from tests.unit.test_apiserver_apply import BOMB, deployment, owners

URL = "/apis/apps/v1/namespaces/default/deployments/web"
YAML = "application/apply-patch+yaml"


@pytest.fixture
def http(apiserver_http: tuple[TestServer, aiohttp.ClientSession]) -> Any:
    return apiserver_http


async def send(
    http: tuple[TestServer, aiohttp.ClientSession],
    method: str,
    url: str,
    body: Any = None,
    ctype: str = YAML,
    **params: str,
) -> tuple[int, dict[str, Any]]:
    reply = await request_json(
        http, method, url, body, ctype, agent="kubectl-edit/v1.31.0 (linux/amd64)", **params
    )
    return reply.status, reply.body


async def test_http_apply_create_reapply_conflict(http: Any) -> None:
    status, created = await send(http, "PATCH", URL, deployment(), fieldManager="op")
    assert status == 201, created
    rv = created["metadata"]["resourceVersion"]
    status, again = await send(http, "PATCH", URL, deployment(), fieldManager="op")
    assert status == 200 and again["metadata"]["resourceVersion"] == rv
    # A merge patch without fieldManager records an Update by the user agent's program.
    status, patched = await send(
        http, "PATCH", URL, {"spec": {"replicas": 4}}, "application/merge-patch+json"
    )
    assert status == 200
    assert owners(patched)["kubectl-edit/Update"] == {".spec.replicas"}
    status, err = await send(http, "PATCH", URL, deployment(replicas=2), fieldManager="op")
    assert status == 409 and err["details"]["causes"][0]["reason"] == "FieldManagerConflict"
    status, dry = await send(
        http, "PATCH", URL, deployment(replicas=2), fieldManager="op", force="true", dryRun="All"
    )
    assert status == 200 and dry["spec"]["replicas"] == 2
    status, live = await send(http, "GET", URL)
    assert live["spec"]["replicas"] == 4
    status, forced = await send(
        http, "PATCH", URL, deployment(replicas=2), fieldManager="op", force="true"
    )
    assert status == 200 and forced["spec"]["replicas"] == 2
    assert "kubectl-edit/Update" not in owners(forced)


async def test_http_status_apply(http: Any) -> None:
    await send(http, "PATCH", URL, deployment(), fieldManager="op")
    status_doc = {**deployment(), "status": {"replicas": 1}}
    code, out = await send(http, "PATCH", URL + "/status", status_doc, fieldManager="ctl")
    assert code == 200, out
    assert out["status"] == {"replicas": 1}
    [entry] = [e for e in out["metadata"]["managedFields"] if e["manager"] == "ctl"]
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:replicas": {}}}


async def test_a_status_update_leaves_the_appliers_fields_so_a_later_apply_still_prunes(
    http: Any,
) -> None:
    """kubectl apply --server-side, then a controller writes status, then the user drops a
    field from the config: the field is removed, because the applier still owns it."""
    code, _ = await send(http, "PATCH", URL, deployment(replicas=3), fieldManager="op")
    assert code == 201
    code, out = await send(
        http,
        "PATCH",
        URL + "/status",
        {"status": {"replicas": 3}},
        "application/merge-patch+json",
        fieldManager="ctl",
    )
    assert code == 200, out
    assert ".spec.replicas" in owners(out)["op/Apply"]
    assert owners(out)["ctl/Update"] == {".status.replicas"}
    code, out = await send(http, "PATCH", URL, deployment(), fieldManager="op")
    assert code == 200, out
    assert "replicas" not in out["spec"]
    assert out["status"] == {"replicas": 3}
    # And a main-endpoint update leaves the controller's status fields with it.
    code, out = await send(
        http,
        "PATCH",
        URL,
        {"metadata": {"labels": {"tier": "front"}}},
        "application/merge-patch+json",
    )
    assert code == 200, out
    assert owners(out)["ctl/Update"] == {".status.replicas"}


@pytest.mark.parametrize(
    ("body", "params", "code", "text"),
    [
        (deployment(), {}, 400, "fieldManager: Required value"),
        ([1, 2], {"fieldManager": "m"}, 400, "must be an object"),
        (BOMB, {"fieldManager": "m"}, 400, "excessive aliasing"),
        (
            {**deployment(), "metadata": {"name": "other"}},
            {"fieldManager": "m"},
            400,
            "does not match the name on the URL",
        ),
        (
            {**deployment(), "metadata": {"name": "web", "namespace": "kube-system"}},
            {"fieldManager": "m"},
            400,
            "namespace of the provided object does not match",
        ),
        ({**deployment(), "kind": "DaemonSet"}, {"fieldManager": "m"}, 400, "kind in the data"),
        (
            {**deployment(), "apiVersion": "apps/v1beta1"},
            {"fieldManager": "m"},
            400,
            "incorrect version specified in apply patch",
        ),
    ],
)
async def test_http_apply_refusals(
    http: Any, body: Any, params: dict[str, str], code: int, text: str
) -> None:
    status, err = await send(http, "PATCH", URL, body, **params)
    assert status == code and text in err["message"], err


async def test_http_apply_of_no_fields_writes_nothing(http: Any) -> None:
    bare = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    await send(http, "PATCH", URL, deployment(), fieldManager="op")
    status, first = await send(http, "PATCH", URL, bare, fieldManager="empty")
    assert status == 200
    assert [e["manager"] for e in first["metadata"]["managedFields"]] == ["op"]
    status, again = await send(http, "PATCH", URL, bare, fieldManager="empty")
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
