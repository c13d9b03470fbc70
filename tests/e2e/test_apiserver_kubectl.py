"""The real kubectl against the embedded API server, default client-side validation on."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from tests.lab.apiserver import ApiServer, apiserver_fixture
from tests.lab.netns import wait_for

shared = apiserver_fixture(scope="module")


@pytest.fixture
def apiserver(shared: ApiServer, request: pytest.FixtureRequest) -> ApiServer:
    """One server per module (start-up is the slow part); each test in its own namespace."""
    return shared.in_namespace("t-" + request.node.name.replace("_", "-")[5:40].strip("-"))


SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - {name: http, port: 80}
  - {name: https, port: 443}
"""

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Phase, type: string, jsonPath: .status.phase}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            x-kubernetes-validations:
            - rule: "self.size <= 10 || self.color == 'red'"
              message: "big widgets must be red"
            properties:
              size: {type: integer, minimum: 1, description: "How big the widget is."}
              color: {type: string, enum: [red, blue], default: blue}
          status:
            type: object
            properties:
              phase: {type: string}
"""


def widget(name: str, **spec: object) -> str:
    return json.dumps(
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}
    )


def install_crd(s: ApiServer) -> None:
    s.kubectl("apply", "-f", "-", input=CRD)
    s.kubectl("wait", "--for", "condition=established", "crd/widgets.example.com", "--timeout=20s")


def test_service_lifecycle_with_kubectl(apiserver: ApiServer) -> None:
    out = apiserver.kubectl("apply", "-f", "-", input=SERVICE).stdout
    assert "service/web created" in out
    svc = json.loads(apiserver.kubectl("get", "svc", "web", "-o", "json").stdout)
    spec = svc["spec"]
    assert spec["clusterIP"].startswith("10.9") and spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert all(30000 <= p["nodePort"] <= 32767 for p in spec["ports"])
    table = apiserver.kubectl("get", "svc").stdout
    assert "EXTERNAL-IP" in table and "<pending>" in table
    # apply with a changed port: kubectl computes a strategic-merge patch from its own types
    changed = SERVICE.replace("port: 443", "port: 8443")
    apiserver.kubectl("apply", "-f", "-", input=changed)
    ports = json.loads(apiserver.kubectl("get", "svc", "web", "-o", "json").stdout)["spec"]["ports"]
    assert sorted(p["port"] for p in ports) == [80, 8443]
    assert ports[0]["nodePort"] == spec["ports"][0]["nodePort"], "kept port keeps its nodePort"
    apiserver.kubectl("patch", "svc", "web", "-p", '{"metadata":{"annotations":{"a":"b"}}}')
    apiserver.kubectl(
        "patch",
        "svc",
        "web",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/metadata/labels/x","value":"y"}]',
    )
    labels = apiserver.kubectl("get", "svc", "-l", "x=y", "-o", "name").stdout.split()
    assert labels == ["service/web"]
    # clusterIP is immutable
    bad = apiserver.kubectl(
        "patch", "svc", "web", "-p", '{"spec":{"clusterIP":"10.96.9.9"}}', check=False
    )
    assert bad.returncode != 0 and "field is immutable" in bad.stderr
    assert "deleted" in apiserver.kubectl("delete", "svc", "web").stdout
    assert "web" not in apiserver.kubectl("get", "svc").stdout


def test_custom_resource_with_kubectl(apiserver: ApiServer) -> None:
    install_crd(apiserver)
    resources = apiserver.kubectl("api-resources").stdout
    assert any(line.split()[:2] == ["widgets", "wd"] for line in resources.splitlines())
    apiserver.kubectl("apply", "-f", "-", input=widget("w1", size=3))
    # printer columns, and the schema default for color
    lines = apiserver.kubectl("get", "wd").stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "COLOR", "PHASE"]
    assert lines[1].split()[:3] == ["w1", "3", "blue"]
    apiserver.kubectl("patch", "wd", "w1", "--type=merge", "-p", '{"spec":{"size":5}}')
    apiserver.kubectl("apply", "-f", "-", input=widget("w1", size=4))
    got = json.loads(apiserver.kubectl("get", "wd", "w1", "-o", "json").stdout)
    assert got["spec"] == {"size": 4, "color": "blue"}
    explain = apiserver.kubectl("explain", "widget.spec.size").stdout
    assert "How big the widget is" in explain
    # an unknown field: kubectl's default (Strict) validation is done by the server
    bad = apiserver.kubectl("create", "-f", "-", input=widget("w2", size=3, bogus=1), check=False)
    assert bad.returncode != 0 and 'unknown field "spec.bogus"' in bad.stderr
    warn = apiserver.kubectl(
        "create", "--validate=warn", "-f", "-", input=widget("w2", size=3, bogus=1)
    )
    assert 'unknown field "spec.bogus"' in warn.stderr
    assert "bogus" not in apiserver.kubectl("get", "wd", "w2", "-o", "json").stdout  # pruned
    # the OpenAPI minimum, and the CEL rule
    bad = apiserver.kubectl("create", "-f", "-", input=widget("w3", size=0), check=False)
    assert "should be greater than or equal to 1" in bad.stderr
    bad = apiserver.kubectl("create", "-f", "-", input=widget("w3", size=20), check=False)
    assert bad.returncode != 0 and "big widgets must be red" in bad.stderr
    apiserver.kubectl("create", "-f", "-", input=widget("w3", size=20, color="red"))


def test_status_subresource_with_kubectl(apiserver: ApiServer) -> None:
    install_crd(apiserver)
    apiserver.kubectl("create", "-f", "-", input=widget("w1", size=3))
    # /status takes status only; the main resource ignores status
    apiserver.kubectl(
        "patch",
        "wd",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Ready"},"spec":{"size":7}}',
    )
    apiserver.kubectl(
        "patch", "wd", "w1", "--type=merge", "-p", '{"status":{"phase":"Broken"},"spec":{"size":2}}'
    )
    got = json.loads(apiserver.kubectl("get", "wd", "w1", "-o", "json").stdout)
    assert got["spec"]["size"] == 2 and got["status"] == {"phase": "Ready"}
    apiserver.kubectl("wait", "--for=jsonpath={.status.phase}=Ready", "wd/w1", "--timeout=20s")


def test_get_watch_sees_changes(apiserver: ApiServer) -> None:
    install_crd(apiserver)
    apiserver.kubectl("create", "-f", "-", input=widget("w1", size=3))
    watcher = apiserver.kubectl_bg("get", "wd", "-w", "--output-watch-events")
    try:
        lines: list[str] = []
        assert watcher.stdout is not None
        os.set_blocking(watcher.stdout.fileno(), False)

        def seen(text: str) -> bool:
            chunk = watcher.stdout.read() if watcher.stdout else None
            if chunk:
                lines.extend(chunk.splitlines())
            return any(text in line for line in lines)

        wait_for(lambda: seen("w1"), 20, what="initial list")
        apiserver.kubectl("patch", "wd", "w1", "--type=merge", "-p", '{"spec":{"size":6}}')
        wait_for(lambda: seen("MODIFIED"), 20, what="MODIFIED in kubectl get -w")
        assert any(line.split()[:3] == ["MODIFIED", "w1", "6"] for line in lines), lines
        apiserver.kubectl("create", "-f", "-", input=widget("w2", size=1))
        wait_for(lambda: seen("w2"), 20, what="ADDED w2")
        apiserver.kubectl("delete", "wd", "w1")
        wait_for(lambda: seen("DELETED"), 20, what="DELETED in kubectl get -w")
    finally:
        os.killpg(watcher.pid, signal.SIGTERM)
        watcher.wait(timeout=10)


def test_describe_shows_events(apiserver: ApiServer) -> None:
    apiserver.kubectl("create", "-f", "-", input=SERVICE)
    uid = apiserver.kubectl("get", "svc", "web", "-o", "jsonpath={.metadata.uid}").stdout
    event = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "web.1", "namespace": apiserver.namespace},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "metallb-controller",
        "reportingInstance": "controller-1",
        "action": "Allocate",
        "reason": "IPAllocated",
        "type": "Normal",
        "note": 'Assigned IP ["198.51.100.200"]',
        "regarding": {
            "kind": "Service",
            "namespace": apiserver.namespace,
            "name": "web",
            "uid": uid,
            "apiVersion": "v1",
        },
    }
    # Written through events.k8s.io/v1, read through core/v1 by describe: one store.
    apiserver.kubectl("create", "-f", "-", input=json.dumps(event))
    out = apiserver.kubectl("describe", "svc", "web").stdout
    assert "IPAllocated" in out and "198.51.100.200" in out, out
    core = json.loads(apiserver.kubectl("get", "events", "-o", "json").stdout)["items"]
    assert core[0]["involvedObject"]["name"] == "web" and core[0]["message"].startswith("Assigned")


def test_delete_waits_for_finalizers(apiserver: ApiServer, tmp_path: Path) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
    }
    apiserver.kubectl("create", "-f", "-", input=json.dumps(cm))
    apiserver.kubectl("delete", "cm", "held", "--wait=false")
    got = json.loads(apiserver.kubectl("get", "cm", "held", "-o", "json").stdout)
    assert got["metadata"]["deletionTimestamp"]
    apiserver.kubectl(
        "patch",
        "cm",
        "held",
        "--type=json",
        "-p",
        '[{"op":"remove","path":"/metadata/finalizers"}]',
    )
    gone = apiserver.kubectl("get", "cm", "held", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_yaml_roundtrip_and_generate_name(apiserver: ApiServer) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"generateName": "cfg-"},
        "data": {"k": "v"},
    }
    out = apiserver.kubectl("create", "-f", "-", "-o", "yaml", input=json.dumps(cm)).stdout
    obj = yaml.safe_load(out)
    assert obj["metadata"]["name"].startswith("cfg-") and len(obj["metadata"]["name"]) == 9
    assert obj["metadata"]["uid"] and obj["metadata"]["resourceVersion"]
    started = time.time()
    assert apiserver.kubectl("get", "cm", obj["metadata"]["name"]).returncode == 0
    assert time.time() - started < 30


def test_imperative_commands_send_protobuf(apiserver: ApiServer) -> None:
    apiserver.kubectl("create", "configmap", "cfg", "--from-literal=a=b")
    apiserver.kubectl("create", "secret", "generic", "sec", "--from-literal=p=q")
    apiserver.kubectl("create", "namespace", "team")
    apiserver.kubectl("create", "serviceaccount", "bot", "-n", "team")
    cfg = json.loads(apiserver.kubectl("get", "cm", "cfg", "-o", "json").stdout)
    assert cfg["data"] == {"a": "b"}
    sec = json.loads(apiserver.kubectl("get", "secret", "sec", "-o", "json").stdout)
    assert sec["data"] == {"p": "cQ=="} and sec["type"] == "Opaque"
    token = apiserver.kubectl("create", "token", "bot", "-n", "team").stdout.strip()
    assert token
    # a kind whose protobuf form is not decoded says how to send it instead
    out = apiserver.kubectl("create", "deployment", "d", "--image=x", check=False)
    assert out.returncode != 0 and "send JSON instead" in out.stderr


def test_crd_with_a_broken_cel_rule_is_refused(apiserver: ApiServer) -> None:
    broken = CRD.replace("self.size <= 10 || self.color == 'red'", "self.size <= ")
    out = apiserver.kubectl("apply", "-f", "-", input=broken, check=False)
    assert out.returncode != 0 and "compilation failed" in out.stderr, out.stderr
