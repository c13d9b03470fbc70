"""The membership key Secret: created by the leading controller when absent, as MetalLB does.

Speakers read `secretkey` from it (mounted at `--ml-secret-key-path`) and encrypt every
membership packet with a key derived from it. The value has MetalLB's shape (16 random bytes,
base64 without padding), so a MetalLB speaker and ours derive the same key from the same Secret.
The Secret is owned by the controller's Deployment when one is named, so it goes with it.
An existing Secret is never rewritten: rotating it is a person's decision.
"""

from __future__ import annotations

import base64
import secrets

from metallb_py.kube.rest import DEPLOYMENTS, SECRETS, ApiError, Rest
from metallb_py.log import get_logger
from metallb_py.objects import JSON

log = get_logger("controller")

SECRET_KEY = "secretkey"


def new_secret_value() -> str:
    """16 random bytes, base64 (standard alphabet) without padding: 22 characters."""
    return base64.b64encode(secrets.token_bytes(16)).decode().rstrip("=")


def secret_object(
    name: str,
    namespace: str,
    owners: list[JSON],
    labels: dict[str, str] | None = None,
) -> JSON:
    """A new membership key Secret, as MetalLB's controller makes it (fresh random value)."""
    meta: JSON = {"name": name, "namespace": namespace, "ownerReferences": owners}
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": meta,
        "data": {SECRET_KEY: base64.b64encode(new_secret_value().encode()).decode()},
    }


async def ensure_memberlist_secret(
    rest: Rest, namespace: str, name: str, deployment: str = ""
) -> bool:
    """Create the Secret if it does not exist; True when this call created it."""
    try:
        await rest.get(SECRETS.path(namespace, name))
        return False
    except ApiError as exc:
        if not exc.not_found:
            raise
    owners: list[JSON] = []
    if deployment:
        try:
            dep = await rest.get(DEPLOYMENTS.path(namespace, deployment))
            owners.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": deployment,
                    "uid": dep["metadata"]["uid"],
                }
            )
        except ApiError as exc:
            if not exc.not_found:
                raise
            log.warning(
                "memberlistSecretOwnerMissing",
                deployment=deployment,
                msg="the controller Deployment was not found; the Secret is created without owner",
            )
    body = secret_object(name, namespace, owners)
    try:
        await rest.create(SECRETS.path(namespace), body)
    except ApiError as exc:
        if exc.conflict:  # another replica (or a person) made it first: theirs stands
            return False
        raise
    log.info("memberlistSecretCreated", namespace=namespace, name=name)
    return True
