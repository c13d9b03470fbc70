"""The leading controller creates the membership key Secret when it is missing, in MetalLB's
shape, owned by the controller Deployment, and never rewrites one that exists."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest

from metallb_py.controller.memberlist_secret import (
    DEPLOYMENTS,
    SECRET_KEY,
    ensure_memberlist_secret,
    new_secret_value,
)
from metallb_py.kube.rest import NAMESPACES, SECRETS, Rest
from metallb_py.membership.crypto import key_from_secret
from tests.lab.apiserver import rest_in_process

NS = "metallb-system"


@pytest.fixture
async def rest() -> AsyncIterator[Rest]:
    async with rest_in_process() as client:
        await client.create(
            NAMESPACES.path(), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
        )
        yield client


def test_the_value_has_metallbs_shape_and_gives_a_full_key() -> None:
    value = new_secret_value()
    assert len(value) == 22 and "=" not in value
    assert len(base64.b64decode(value + "==")) == 16
    assert len(key_from_secret(value)) == 32


async def test_created_when_absent_and_owned_by_the_deployment(rest: Rest) -> None:
    dep = await rest.create(
        DEPLOYMENTS.path(NS),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "controller"},
            "spec": {
                "selector": {"matchLabels": {"app": "x"}},
                "template": {
                    "metadata": {"labels": {"app": "x"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        },
    )
    assert await ensure_memberlist_secret(rest, NS, "memberlist", "controller")
    secret = await rest.get(SECRETS.path(NS, "memberlist"))
    value = base64.b64decode(secret["data"][SECRET_KEY]).decode()
    assert len(value) == 22
    (owner,) = secret["metadata"]["ownerReferences"]
    assert owner["kind"] == "Deployment" and owner["uid"] == dep["metadata"]["uid"]

    # A second call (another leader, a restart) keeps the key the speakers already use.
    assert not await ensure_memberlist_secret(rest, NS, "memberlist", "controller")
    again = await rest.get(SECRETS.path(NS, "memberlist"))
    assert again["data"] == secret["data"]
    assert again["metadata"]["resourceVersion"] == secret["metadata"]["resourceVersion"]


async def test_without_a_deployment_the_secret_has_no_owner(rest: Rest) -> None:
    assert await ensure_memberlist_secret(rest, NS, "memberlist", "missing")
    secret = await rest.get(SECRETS.path(NS, "memberlist"))
    assert not secret["metadata"].get("ownerReferences")
