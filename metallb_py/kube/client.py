"""Build an API client: `--kubeconfig` if given, else in-cluster service account, else the
default kubeconfig (`$KUBECONFIG`, `~/.kube/config`)."""

from __future__ import annotations

import os

from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, Configuration

from metallb_py.kube.rest import Rest


class ClientConfigError(Exception):
    """No usable way to reach an API server; the message says what was tried."""


def choose_source(kubeconfig: str | None) -> tuple[str, str]:
    """("kubeconfig", path) or ("incluster", ""), in the order a user expects."""
    if kubeconfig:
        if not os.path.exists(kubeconfig):
            raise ClientConfigError(f"kubeconfig {kubeconfig} does not exist")
        return "kubeconfig", kubeconfig
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "incluster", ""
    default = os.path.expanduser(os.environ.get("KUBECONFIG") or "~/.kube/config")
    if not os.path.exists(default):
        raise ClientConfigError(
            f"no API server configured: pass --kubeconfig, run in a cluster, or create {default}"
        )
    return "kubeconfig", default


async def load_configuration(kubeconfig: str | None = None) -> Configuration:
    configuration = Configuration()
    source, path = choose_source(kubeconfig)
    if source == "incluster":
        try:
            kube_config.load_incluster_config(client_configuration=configuration)
        except Exception as exc:
            raise ClientConfigError(f"cannot use the in-cluster configuration: {exc}") from None
        return configuration
    try:
        await kube_config.load_kube_config(
            config_file=path, client_configuration=configuration, persist_config=False
        )
    except Exception as exc:
        raise ClientConfigError(f"cannot use kubeconfig {path}: {exc}") from None
    return configuration


async def connect(kubeconfig: str | None = None, pool_size: int = 16) -> Rest:
    """A Rest client on a fresh ApiClient; close it with `await rest.close()`."""
    configuration = await load_configuration(kubeconfig)
    configuration.connection_pool_maxsize = pool_size
    return Rest(ApiClient(configuration))
