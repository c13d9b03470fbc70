"""kubernetes_asyncio without its generated classes (metallb_py/kube/k8s.py).

Each case runs in a fresh interpreter: what is imported is process-wide state."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


COUNT = "sum(1 for n in sys.modules if n.startswith('kubernetes_asyncio'))"


def test_the_components_import_no_generated_api_or_model() -> None:
    out = run(
        f"""
        import sys
        import metallb_py.kube.client
        from metallb_py.kube import k8s
        assert k8s.LIGHT
        assert "kubernetes_asyncio.client.api.core_v1_api" not in sys.modules
        assert "kubernetes_asyncio.client.models.v1_pod" not in sys.modules
        print({COUNT})
        """
    )
    assert int(out) < 60  # about 1 700 when the package is imported whole


def test_the_whole_package_is_there_for_whoever_asks() -> None:
    """Code that uses the generated classes after a component loaded the light client sees
    the whole package, as if it had been imported plainly."""
    out = run(
        f"""
        import sys
        from metallb_py.kube.k8s import ApiClient, Configuration
        import kubernetes_asyncio
        from kubernetes_asyncio import client
        from kubernetes_asyncio.client.models import V1Pod
        assert client.CoreV1Api.__name__ == "CoreV1Api"
        assert client.ApiClient is ApiClient and client.Configuration is Configuration
        assert V1Pod(metadata=client.V1ObjectMeta(name="p")).metadata.name == "p"
        assert kubernetes_asyncio.watch.Watch and kubernetes_asyncio.__version__
        print({COUNT})
        """
    )
    assert int(out) > 500


def test_an_earlier_plain_import_is_used_as_it_is() -> None:
    run(
        """
        import kubernetes_asyncio.client
        from metallb_py.kube import k8s
        assert not k8s.LIGHT and k8s.ApiClient is kubernetes_asyncio.client.ApiClient
        """
    )


def test_an_unknown_layout_falls_back_to_the_plain_import() -> None:
    """If a package this defers is not where it expects (a future kubernetes_asyncio), the
    stubs are dropped and the package is imported the usual way."""
    run(
        """
        import sys
        import importlib.machinery as machinery

        real = machinery.PathFinder.find_spec
        missed = []

        def find_spec(name, path=None, target=None):
            if name == "kubernetes_asyncio.client.models" and not missed:
                missed.append(name)
                return None
            return real(name, path, target)

        machinery.PathFinder.find_spec = find_spec
        from metallb_py.kube import k8s
        assert missed and not k8s.LIGHT
        import kubernetes_asyncio.client
        assert k8s.ApiClient is kubernetes_asyncio.client.ApiClient
        assert "kubernetes_asyncio.client.models.v1_pod" in sys.modules
        """
    )
