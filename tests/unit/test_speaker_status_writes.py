"""The speaker's status-object writes and what each failure leads to: a write that succeeds is
counted and remembered; a conflict or a vanished object is written again on the next pass; a
transport failure or another API error is counted and makes the next pass compare everything.
A status write is a merge patch of `/status` under the cached resourceVersion."""

from __future__ import annotations

from typing import Any

import pytest

from metallb_py.kube.rest import ApiError
from metallb_py.speaker.resources import LABEL_SERVICE_NAME, LABEL_SERVICE_NAMESPACE
from metallb_py.speaker.status import StatusObjects

_OBJ = {
    "metadata": {
        "name": "l2-abcde",
        "resourceVersion": "7",
        "labels": {LABEL_SERVICE_NAMESPACE: "default", LABEL_SERVICE_NAME: "web"},
    }
}


class _Rest:
    """Answers each call with `outcome`: an exception to raise, or the body echoed back."""

    def __init__(self, outcome: BaseException | None = None) -> None:
        self.outcome = outcome
        self.calls: list[tuple[str, str]] = []
        self.patches: list[Any] = []

    async def _answer(self, verb: str, path: str, body: Any = None) -> Any:
        self.calls.append((verb, path))
        if self.outcome is not None:
            raise self.outcome
        return body

    async def create(self, path: str, body: Any) -> Any:
        meta = {**body["metadata"], "name": "l2-fresh", "resourceVersion": "3"}
        return await self._answer("create", path, {**body, "metadata": meta})

    async def patch(self, path: str, body: Any) -> Any:
        self.patches.append(body)
        name = path.split("/")[-2]
        rv = str(int(body["metadata"]["resourceVersion"]) + 1)
        return await self._answer(
            "patch", path, {**body, "metadata": {"name": name, "resourceVersion": rv}}
        )

    async def delete(self, path: str) -> Any:
        return await self._answer("delete", path)


def _writer(outcome: BaseException | None = None) -> tuple[StatusObjects, _Rest]:
    rest = _Rest(outcome)
    objs = StatusObjects(rest, "metallb-system", "node-a")  # type: ignore[arg-type]
    for kind in objs.kinds.values():
        kind.full = False
    return objs, rest


async def test_successful_writes_are_counted_and_remembered() -> None:
    objs, rest = _writer()
    kind = objs.kinds["l2"]
    await objs._update_status(kind, _OBJ, {"node": "node-a"})
    await objs._create("l2", kind, "default/db", {"node": "node-a"})
    await objs._delete(kind, _OBJ, "notTrue")
    assert [verb for verb, _ in rest.calls] == ["patch", "create", "patch", "delete"]
    assert rest.calls[0][1].endswith("/servicel2statuses/l2-abcde/status")
    assert rest.patches[0] == {"metadata": {"resourceVersion": "7"}, "status": {"node": "node-a"}}
    assert rest.patches[1] == {"metadata": {"resourceVersion": "3"}, "status": {"node": "node-a"}}
    assert objs.writes == 4 and objs.errors == 0
    assert {o["metadata"]["name"] for o in kind.informer.cache.values()} == {"l2-abcde", "l2-fresh"}
    assert not kind.full and not kind.dirty_keys


@pytest.mark.parametrize("status", [409, 404])
async def test_a_conflict_or_vanished_object_is_written_again(status: int) -> None:
    objs, _ = _writer(ApiError(status, "Conflict" if status == 409 else "NotFound"))
    kind = objs.kinds["l2"]
    await objs._update_status(kind, _OBJ, {"node": "node-a"})
    assert kind.dirty_keys == {"default/web"} and objs.dirty.is_set()
    assert objs.errors == 0 and objs.writes == 0 and not kind.full


@pytest.mark.parametrize(
    "failure", [OSError("connection reset"), TimeoutError(), ApiError(500, "Internal")]
)
async def test_a_failed_write_is_counted_and_forces_a_full_pass(failure: BaseException) -> None:
    for op in ("update", "create", "delete"):
        objs, _ = _writer(failure)
        kind = objs.kinds["bgp"]
        if op == "update":
            await objs._update_status(kind, _OBJ, {"node": "node-a"})
        elif op == "create":
            await objs._create("bgp", kind, "default/web", {"node": "node-a"})
        else:
            await objs._delete(kind, _OBJ, "notTrue")
        assert objs.errors == 1 and objs.writes == 0, op
        assert kind.full, op
