"""`metallb-py operator` as a process against `metallb-py apiserver`, driven with the real kubectl.

One API server and one operator serve the module; the tests run in order (the lifecycle test
ends by deleting the instance). There is no kubelet: readiness is written into the Deployment's
and DaemonSet's status subresources by the test, as a kubelet and the workload controllers would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_py.operator.apply import OWNER_LABEL
from metallb_py.operator.webhook import webhook_configuration
from tests.lab.apiserver import ApiServer, running_apiserver
from tests.lab.webhook_proc import NAMESPACE_YAML, free_port

ROOT = Path(__file__).resolve().parents[2]
NS = "metallb-system"
HOOK = 'admission webhook "metallbvalidationwebhook.metallb.io" denied the request: '
NAMESPACED = "deployments,daemonsets,serviceaccounts,services,roles,rolebindings"
CLUSTER = "clusterroles,clusterrolebindings,validatingwebhookconfigurations"


@dataclass
class Operator:
    api: ApiServer
    port: int
    runs: int = 0
    kubeconfig: Path | None = None  # default: the API server's admin kubeconfig
    popen: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self) -> None:
        self.runs += 1
        self.log_path = self.api.workdir / f"operator-{self.runs}.log"
        argv = [
            sys.executable, "-m", "metallb_py", "operator",
            "--kubeconfig", str(self.kubeconfig or self.api.kubeconfig),
            "--port", str(self.port),
            "--bind-address", "127.0.0.1",
            "--metrics-port", "0",
            "--lease-duration", "4",
            "--resync-period", "2",
            "--log-level", "debug",
        ]  # fmt: skip
        env = {**os.environ, "OPERATOR_NAMESPACE": NS, "DISABLE_NETWORK_POLICIES": "true"}
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=str(ROOT), env=env,
            )  # fmt: skip

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        return self.popen.returncode


def wait(predicate: Callable[[], Any], within: float, what: str, op: Operator) -> Any:
    deadline = time.monotonic() + within
    last: Exception | None = None
    while time.monotonic() < deadline:
        if op.popen is not None and op.popen.poll() is not None:
            raise AssertionError(f"operator exited while waiting for {what}:\n{op.output()}")
        try:
            value = predicate()
            if value:
                return value
        except (AssertionError, KeyError, ValueError, IndexError) as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"timed out after {within}s: {what} ({last})\n{op.output()[-6000:]}")


def get(api: ApiServer, *args: str) -> dict[str, Any]:
    out = api.kubectl("get", *args, "-o", "json")
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def maybe(api: ApiServer, *args: str) -> dict[str, Any] | None:
    out = api.kubectl("get", *args, "-o", "json", check=False)
    if out.returncode != 0:
        return None
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def apply(
    api: ApiServer, obj: dict[str, Any], check: bool = True
) -> subprocess.CompletedProcess[str]:
    return api.kubectl("apply", "-f", "-", input=yaml.safe_dump(obj), check=check)


def metallb(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "MetalLB",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def owned(api: ApiServer) -> dict[str, str]:
    """resourceVersion of every object the operator applied (by our label), plus the Secret."""
    out: dict[str, str] = {}
    for items in (
        get(api, NAMESPACED, "-n", NS, "-l", OWNER_LABEL)["items"],
        get(api, CLUSTER, "-l", OWNER_LABEL)["items"],
    ):
        for o in items:
            meta = o["metadata"]
            out[f"{o['kind']}/{meta.get('namespace', '')}/{meta['name']}"] = meta["resourceVersion"]
    secret = maybe(api, "secret", "-n", NS, "memberlist")
    if secret is not None:
        out["Secret/memberlist"] = secret["metadata"]["resourceVersion"]
    return out


def conditions(api: ApiServer, name: str) -> dict[str, dict[str, Any]]:
    obj = get(api, "metallb", "-n", NS, name)
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, Operator]]:
    tmp = tmp_path_factory.mktemp("operator")
    port = free_port()
    override = f"{NS}/metallb-operator-webhook-service=https://127.0.0.1:{port}"
    with running_apiserver(
        workdir=tmp / "apiserver", args=["--webhook-url-override", override]
    ) as api:
        kustomization = ROOT / "manifests" / "operator" / "kustomization.yaml"
        if kustomization.exists():
            api.kubectl("apply", "-k", str(kustomization.parent))
        else:
            api.kubectl("apply", "-f", "-", input=NAMESPACE_YAML)
            api.kubectl("apply", "-f", str(ROOT / "manifests" / "crds"))
            apply(api, webhook_configuration(NS))
        op = Operator(api, port)
        op.start()
        try:

            def injected() -> bool:
                vwc = get(
                    api, "validatingwebhookconfiguration", "metallb-operator-webhook-configuration"
                )
                return bool(vwc["webhooks"][0]["clientConfig"].get("caBundle"))

            wait(injected, 60, "operator webhook caBundle injected", op)
            wait(lambda: "webhookServing" in op.output(), 30, "webhook serving", op)
            yield api, op
        finally:
            op.stop()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {
                "controllerTolerations": [
                    {
                        "key": "k",
                        "operator": "Exists",
                        "effect": "NoSchedule",
                        "tolerationSeconds": 5,
                    }
                ]
            },
            "ControllerToleration effect must be NoExecute when tolerationSeconds is set",
        ),
        (
            {"speakerTolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 5}]},
            "SpeakerToleration effect must be NoExecute when tolerationSeconds is set",
        ),
        (
            {
                "speakerConfig": {
                    "affinity": {
                        "nodeAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {"weight": 0, "preference": {}}
                            ]
                        }
                    }
                }
            },
            "SpeakerConfig NodeAffinity set with invalid weight for preferred scheduling term",
        ),
        (
            {
                "speakerConfig": {
                    "affinity": {
                        "podAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {"weight": 200, "podAffinityTerm": {"topologyKey": "x"}}
                            ]
                        }
                    }
                }
            },
            "SpeakerConfig PodAffinity set with invalid weight for preferred scheduling term",
        ),
        (
            {
                "controllerConfig": {
                    "affinity": {
                        "nodeAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {"weight": 0, "preference": {}}
                            ]
                        }
                    }
                }
            },
            "ControllerConfig NodeAffinity set with invalid weight for preferred scheduling term",
        ),
        (
            {"bgpBackend": "bird"},
            "invalid BGP Backend, must be one of native, frr, frr-k8s, frr-k8s-external",
        ),
        (
            {"bgpBackend": "frr-k8s-external"},
            "bgp backend: frrk8s external and no default or user provided namespace",
        ),
        (
            {"frrk8sConfig": {"alwaysBlock": ["192.0.2.0/40"]}},
            "invalid CIDR 192.0.2.0/40 in AlwaysBlock",
        ),
    ],
)
def test_webhook_rejects_bad_metallb(
    cluster: tuple[ApiServer, Operator], spec: dict[str, Any], message: str
) -> None:
    api, _op = cluster
    out = apply(api, metallb("metallb", spec), check=False)
    assert out.returncode != 0, out.stdout
    assert HOOK + message in out.stderr, out.stderr
    assert maybe(api, "metallb", "-n", NS, "metallb") is None


def test_log_level_enum_is_enforced(cluster: tuple[ApiServer, Operator]) -> None:
    api, _op = cluster
    out = apply(api, metallb("metallb", {"logLevel": "loud"}), check=False)
    assert out.returncode != 0 and "logLevel" in out.stderr and "loud" in out.stderr


def test_lifecycle(cluster: tuple[ApiServer, Operator]) -> None:
    api, op = cluster
    spec: dict[str, Any] = {
        "logLevel": "info",
        "bgpBackend": "frr",
        "nodeSelector": {"metallb": "yes"},
        "speakerTolerations": [
            {
                "key": "example.com/edge",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 30,
            }
        ],
        "controllerTolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "lb", "effect": "NoSchedule"}
        ],
        "speakerConfig": {"resources": {"limits": {"cpu": "300m", "memory": "200Mi"}}},
        "controllerConfig": {"resources": {"requests": {"cpu": "20m"}}},
    }
    apply(api, metallb("metallb", spec))

    # -- rendered with the spec, owned by the instance ------------------------------------------
    ds = wait(lambda: maybe(api, "daemonset", "-n", NS, "speaker"), 30, "speaker DaemonSet", op)
    dep = wait(
        lambda: maybe(api, "deployment", "-n", NS, "controller"), 30, "controller Deployment", op
    )
    pod = ds["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["metallb"] == "yes"
    assert spec["speakerTolerations"][0] in pod["tolerations"]
    assert pod["containers"][0]["resources"] == {"limits": {"cpu": "300m", "memory": "200Mi"}}
    assert "--log-level=info" in pod["containers"][0]["args"]
    cpod = dep["spec"]["template"]["spec"]
    assert spec["controllerTolerations"][0] in cpod["tolerations"]
    assert cpod["containers"][0]["resources"] == {"requests": {"cpu": "20m"}}
    instance = get(api, "metallb", "-n", NS, "metallb")
    assert "metallb.io/operator-cleanup" in instance["metadata"]["finalizers"]
    for obj in (ds, dep):
        (ref,) = obj["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (
            "MetalLB",
            instance["metadata"]["uid"],
            True,
            True,
        )
    managed = get(api, "deployment", "-n", NS, "controller", "--show-managed-fields")
    assert any(
        (m["manager"], m["operation"]) == ("metallb-operator", "Apply")
        for m in managed["metadata"]["managedFields"]
    )
    selector = "reason=BGPBackendNative"
    events = wait(
        lambda: get(api, "events", "-n", NS, "--field-selector", selector)["items"],
        20, "BGPBackendNative event", op,
    )  # fmt: skip
    assert "own BGP stack" in events[0]["message"]
    secret = wait(lambda: maybe(api, "secret", "-n", NS, "memberlist"), 20, "memberlist Secret", op)
    assert len(secret["data"]["secretkey"]) > 0
    wait(
        lambda: conditions(api, "metallb")["Progressing"]["status"] == "True",
        20, "Progressing=True", op,
    )  # fmt: skip
    conds = conditions(api, "metallb")
    assert list(conds) == ["Available", "Upgradeable", "Progressing", "Degraded"]
    assert conds["Available"]["status"] == "False"
    table = api.kubectl("get", "metallb", "-n", NS).stdout
    assert table.split("\n")[0].split()[:4] == ["NAME", "AVAILABLE", "DEGRADED", "PROGRESSING"]

    # -- a second instance is Degraded and changes nothing --------------------------------------
    before = owned(api)
    apply(api, metallb("other", {"logLevel": "debug"}))
    other = wait(
        lambda: conditions(api, "other").get("Degraded", {}).get("status") == "True"
        and conditions(api, "other")["Degraded"],
        20, "other Degraded", op,
    )  # fmt: skip
    assert other["reason"] == "IncorrectMetalLBResourceName"
    assert other["message"] == "Incorrect MetalLB resource name: other"
    time.sleep(3)  # more than a resync period
    assert owned(api) == before
    api.kubectl("delete", "metallb", "-n", NS, "other")

    # -- a deleted DaemonSet comes back ---------------------------------------------------------
    old_uid = ds["metadata"]["uid"]
    api.kubectl("delete", "daemonset", "-n", NS, "speaker")
    wait(
        lambda: (maybe(api, "daemonset", "-n", NS, "speaker") or {"metadata": {"uid": old_uid}})[
            "metadata"
        ]["uid"]
        != old_uid,
        20, "speaker DaemonSet restored", op,
    )  # fmt: skip

    # -- an edited Deployment is put back ---------------------------------------------------------
    api.kubectl(
        "patch", "deployment", "-n", NS, "controller", "--type=json", "-p",
        '[{"op": "replace", "path": "/spec/template/spec/containers/0/args", "value": ["x"]}]',
    )  # fmt: skip

    def restored() -> bool:
        d = get(api, "deployment", "-n", NS, "controller")
        return "--log-level=info" in d["spec"]["template"]["spec"]["containers"][0]["args"]

    wait(restored, 20, "controller Deployment args restored", op)

    # -- an edit of the instance rolls through ----------------------------------------------------
    api.kubectl(
        "patch",
        "metallb",
        "-n",
        NS,
        "metallb",
        "--type=merge",
        "-p",
        '{"spec":{"logLevel":"debug"}}',
    )

    def rolled() -> bool:
        d = get(api, "deployment", "-n", NS, "controller")
        s = get(api, "daemonset", "-n", NS, "speaker")
        return all(
            "--log-level=debug" in o["spec"]["template"]["spec"]["containers"][0]["args"]
            for o in (d, s)
        )

    wait(rolled, 20, "logLevel debug in the args", op)

    # -- Progressing -> Available once the workloads report ready -------------------------------
    dep = get(api, "deployment", "-n", NS, "controller")
    replicas = dep["spec"].get("replicas", 1)
    dep_status = {
        "observedGeneration": dep["metadata"]["generation"],
        "replicas": replicas,
        "readyReplicas": replicas,
        "updatedReplicas": replicas,
        "availableReplicas": replicas,
    }
    api.kubectl(
        "patch",
        "deployment",
        "-n",
        NS,
        "controller",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": dep_status}),
    )
    time.sleep(1)
    assert conditions(api, "metallb")["Available"]["status"] == "False"  # speaker not ready yet
    ds = get(api, "daemonset", "-n", NS, "speaker")
    n = 2
    ds_status = {
        "observedGeneration": ds["metadata"]["generation"],
        "desiredNumberScheduled": n,
        "currentNumberScheduled": n,
        "numberReady": n,
        "updatedNumberScheduled": n,
        "numberAvailable": n,
        "numberMisscheduled": 0,
    }
    api.kubectl(
        "patch",
        "daemonset",
        "-n",
        NS,
        "speaker",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": ds_status}),
    )
    wait(lambda: conditions(api, "metallb")["Available"]["status"] == "True", 20, "Available", op)
    conds = conditions(api, "metallb")
    assert conds["Upgradeable"]["status"] == "True"
    assert conds["Progressing"]["status"] == conds["Degraded"]["status"] == "False"
    instance = get(api, "metallb", "-n", NS, "metallb")
    assert all(
        c["observedGeneration"] == instance["metadata"]["generation"] for c in conds.values()
    )

    # -- a restart writes nothing ---------------------------------------------------------------
    time.sleep(3)
    before = owned(api)
    instance_rv = get(api, "metallb", "-n", NS, "metallb")["metadata"]["resourceVersion"]
    op.stop()
    op.start()
    wait(lambda: '"leading"' in op.output(), 30, "new operator leading", op)
    time.sleep(6)  # a first pass and two resyncs
    assert owned(api) == before
    assert get(api, "metallb", "-n", NS, "metallb")["metadata"]["resourceVersion"] == instance_rv

    # -- deleting the instance leaves nothing behind --------------------------------------------
    api.kubectl("delete", "metallb", "-n", NS, "metallb", "--timeout=30s")

    def gone() -> bool:
        return (
            not owned(api)
            and maybe(api, "validatingwebhookconfiguration", "metallb-webhook-configuration")
            is None
        )

    wait(gone, 30, "every rendered object deleted", op)
    assert maybe(api, "clusterrole", "metallb-system:controller") is None
    # The operator's own webhook configuration is not the instance's: it stays.
    assert maybe(api, "validatingwebhookconfiguration", "metallb-operator-webhook-configuration")


def test_runs_with_its_own_rbac(tmp_path: Path) -> None:
    """The operator as its ServiceAccount from manifests/operator/ (the API server enforces
    RBAC for tokens): it deploys, reports status and cleans up without a forbidden write."""
    if not (ROOT / "manifests" / "operator" / "kustomization.yaml").exists():
        pytest.skip("manifests/operator/ not generated")
    port = free_port()
    override = f"{NS}/metallb-operator-webhook-service=https://127.0.0.1:{port}"
    with running_apiserver(
        workdir=tmp_path / "apiserver", args=["--webhook-url-override", override]
    ) as api:
        api.kubectl("apply", "-k", str(ROOT / "manifests" / "operator"))
        token = api.kubectl("create", "token", "manager-account", "-n", NS).stdout.strip()
        config = yaml.safe_load(api.kubeconfig.read_text())
        config["users"][0]["user"] = {"token": token}
        sa_kubeconfig = tmp_path / "operator.kubeconfig"
        sa_kubeconfig.write_text(yaml.safe_dump(config))
        op = Operator(api, port, kubeconfig=sa_kubeconfig)
        op.start()
        try:
            wait(lambda: '"leading"' in op.output(), 30, "operator leading", op)
            apply(api, metallb("metallb", {"logLevel": "warn"}))
            wait(
                lambda: conditions(api, "metallb").get("Progressing", {}).get("status") == "True",
                30, "Progressing", op,
            )  # fmt: skip
            assert maybe(api, "daemonset", "-n", NS, "speaker")
            assert maybe(api, "clusterrole", "metallb-system:speaker")
            api.kubectl("delete", "metallb", "-n", NS, "metallb", "--timeout=30s")
            wait(lambda: not owned(api), 30, "everything deleted", op)
            assert "reconcileFailed" not in op.output(), op.output()
        finally:
            op.stop()
