"""The parts of kubernetes_asyncio the components use, without its generated classes.

The components take three things from kubernetes_asyncio: the kubeconfig and in-cluster loaders,
`Configuration`, and `ApiClient` (the authenticated aiohttp transport: bearer tokens, client
certificates, exec plugins, token refresh). Requests and answers stay raw JSON (kube/rest.py).
Imported the usual way, the package's `__init__` files load every generated API and model class
(about 1 700 modules): 37 MB of resident memory in every speaker and controller, paid on every
node of a DaemonSet, and about a second of CPU at start-up.

So this module imports those parts with three package `__init__`s deferred: `kubernetes_asyncio`,
`kubernetes_asyncio.client` and `kubernetes_asyncio.client.models`. A deferred package imports
its submodules as usual; the first time anything asks it for a name only its `__init__` defines
(`kubernetes_asyncio.client.CoreV1Api`), the real `__init__` runs, so code that does use the
generated classes (tests, tools) sees the whole package, unchanged. If kubernetes_asyncio was
imported before this module, or its layout is not what this expects, the plain import is used.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from typing import TYPE_CHECKING, Any

DEFERRED = ("kubernetes_asyncio", "kubernetes_asyncio.client", "kubernetes_asyncio.client.models")


class _DeferredPackage(types.ModuleType):
    """A package whose `__init__` runs on the first lookup of a name it would define."""

    def __getattr__(self, name: str) -> Any:
        path = self.__dict__.get("__path__")
        if path is not None and importlib.machinery.PathFinder.find_spec(
            f"{self.__name__}.{name}", path
        ):
            return importlib.import_module(f"{self.__name__}.{name}")  # a submodule: no __init__
        self.__class__ = types.ModuleType  # type: ignore[assignment]  # an ordinary module now
        spec = self.__spec__
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(self)
        return getattr(self, name)


def _defer(name: str) -> None:
    parent, _, child = name.rpartition(".")
    path = sys.modules[parent].__path__ if parent else None
    spec = importlib.machinery.PathFinder.find_spec(name, path)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not a package here")
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _DeferredPackage
    sys.modules[name] = module
    if parent:
        setattr(sys.modules[parent], child, module)


def _load_light() -> tuple[Any, Any, Any]:
    for name in DEFERRED:
        _defer(name)
    from kubernetes_asyncio.client.api_client import ApiClient as api_client
    from kubernetes_asyncio.client.configuration import Configuration as configuration

    client = sys.modules["kubernetes_asyncio.client"]
    # What kubernetes_asyncio.config imports from the client package.
    client.ApiClient = api_client  # type: ignore[attr-defined]
    client.Configuration = configuration  # type: ignore[attr-defined]
    config = importlib.import_module("kubernetes_asyncio.config")
    return api_client, configuration, config


def _load() -> tuple[Any, Any, Any, bool]:
    """(ApiClient, Configuration, the config module, whether the light import was used)."""
    if not any(name.startswith("kubernetes_asyncio") for name in sys.modules):
        try:
            return (*_load_light(), True)
        except Exception:  # a layout this does not know: forget the stubs, import it plainly
            for name in [n for n in sys.modules if n.startswith("kubernetes_asyncio")]:
                del sys.modules[name]
    from kubernetes_asyncio import config
    from kubernetes_asyncio.client import ApiClient as api_client
    from kubernetes_asyncio.client import Configuration as configuration

    return api_client, configuration, config, False


if TYPE_CHECKING:
    from kubernetes_asyncio import config as kube_config
    from kubernetes_asyncio.client import ApiClient, Configuration

    LIGHT: bool
else:
    ApiClient, Configuration, kube_config, LIGHT = _load()

__all__ = ["LIGHT", "ApiClient", "Configuration", "kube_config"]
