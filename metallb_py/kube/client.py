"""Build an API client: `--kubeconfig` if given, else in-cluster service account, else the
default kubeconfig (`$KUBECONFIG`, `~/.kube/config`); commands a person runs look in kubectl's
order instead (`choose_source`)."""

from __future__ import annotations

import contextlib
import os

from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from metallb_py.kube.k8s import ApiClient, Configuration, kube_config
from metallb_py.kube.rest import Rest


class ClientConfigError(Exception):
    """No usable way to reach an API server; the message says what was tried."""


def choose_source(kubeconfig: str | None, *, kubectl_order: bool = False) -> tuple[str, str]:
    """("kubeconfig", path) or ("incluster", ""), in the order its user expects. A component
    (the default) runs in a pod: `--kubeconfig`, else its service account, else `$KUBECONFIG`
    or ~/.kube/config. A command a person runs (`kubectl_order`) looks where kubectl does:
    `--kubeconfig`, `$KUBECONFIG`, ~/.kube/config, and only then the service account.
    `$KUBECONFIG` may list several files, as for kubectl."""
    if kubeconfig:
        if not _exists(kubeconfig):
            raise ClientConfigError(f"kubeconfig {kubeconfig} does not exist")
        return "kubeconfig", kubeconfig
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    if in_cluster and not kubectl_order:
        return "incluster", ""
    default = os.path.expanduser(os.environ.get("KUBECONFIG") or "~/.kube/config")
    if _exists(default):
        return "kubeconfig", default
    if in_cluster:
        return "incluster", ""
    if kubectl_order:
        raise ClientConfigError(
            "no API server configured: pass --kubeconfig, set KUBECONFIG, or run in a cluster"
        )
    raise ClientConfigError(
        f"no API server configured: pass --kubeconfig, run in a cluster, or create {default}"
    )


def _exists(path: str) -> bool:
    """A kubeconfig path, or a `$KUBECONFIG` list of which at least one file exists."""
    return any(os.path.exists(p) for p in path.split(os.pathsep) if p)


async def load_configuration(
    kubeconfig: str | None = None, *, context: str | None = None, kubectl_order: bool = False
) -> tuple[Configuration, str]:
    """The client configuration (see `choose_source` for where it comes from) and the default
    namespace of the kubeconfig context ("default" if it names none, or in a cluster)."""
    configuration = Configuration()
    source, path = choose_source(kubeconfig, kubectl_order=kubectl_order)
    if source == "incluster":
        try:
            kube_config.load_incluster_config(client_configuration=configuration)
        except Exception as exc:
            raise ClientConfigError(f"cannot use the in-cluster configuration: {exc}") from None
        return configuration, "default"
    try:
        loader = await kube_config.load_kube_config(
            config_file=path,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except Exception as exc:
        raise ClientConfigError(f"cannot use kubeconfig {path}: {exc}") from None
    current = getattr(loader, "current_context", None) or {}
    try:
        namespace = str(current["context"].get("namespace") or "default")
    except (KeyError, TypeError, AttributeError):
        namespace = "default"
    return configuration, namespace


async def connect(kubeconfig: str | None = None, pool_size: int = 16) -> Rest:
    """A Rest client on a fresh ApiClient; close it with `await rest.close()`."""
    configuration, _ = await load_configuration(kubeconfig)
    configuration.connection_pool_maxsize = pool_size
    api = ApiClient(configuration)
    _read_environment_once(api, configuration)
    return Rest(api)


def _read_environment_once(api: ApiClient, configuration: Configuration) -> None:
    """kubernetes_asyncio's session trusts the environment, so aiohttp looks up the proxy
    variables and parses ~/.netrc on every request, each in a worker thread: a third of a
    controller's CPU at a few hundred writes/s. Resolve the proxy (HTTPS_PROXY, NO_PROXY) for
    the API server once, here, and stop the per-request look-ups; Kubernetes credentials never
    come from .netrc."""

    rest_client = api.rest_client
    if not configuration.proxy:
        with contextlib.suppress(LookupError, ValueError):
            proxy, auth = get_env_proxy_for_url(URL(configuration.host or ""))
            if auth is not None:
                proxy = proxy.with_user(auth.login).with_password(auth.password)
            configuration.proxy = rest_client.proxy = str(proxy)
    session = rest_client.pool_manager
    if hasattr(session, "_trust_env"):
        session._trust_env = False
