"""manifests/crds/: valid apiextensions.k8s.io/v1 CRDs, generated from the parser's schemas, and
every example in docs/configuration.md validates against them (schema and CEL) and parses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_py.config import RULES, parse
from metallb_py.config.crds import dump, render_all
from metallb_py.config.schema_check import check
from tests.lab.config_crd_check import cel_errors, crd_errors

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "manifests" / "crds"
DOC = ROOT / "docs" / "configuration.md"


def _crds() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        out[crd["spec"]["names"]["kind"]] = crd
    return out


def test_manifests_are_generated_from_the_schemas() -> None:
    expected = render_all()
    on_disk = {p.name for p in CRD_DIR.glob("*.yaml")}
    assert on_disk == set(expected), "run: python -m metallb_py.config.crds manifests/crds"
    for name, crd in expected.items():
        assert yaml.safe_load((CRD_DIR / name).read_text()) == yaml.safe_load(dump(crd)), name


@pytest.mark.parametrize("path", sorted(CRD_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_each_crd_is_a_valid_structural_v1_crd(path: Path) -> None:
    crd = yaml.safe_load(path.read_text())
    assert crd_errors(crd) == []
    assert crd["spec"]["group"] == "metallb.io" and crd["spec"]["scope"] == "Namespaced"


def test_versions_and_conversion() -> None:
    crds = _crds()
    peers = crds["BGPPeer"]["spec"]
    assert [(v["name"], v["served"], v["storage"]) for v in peers["versions"]] == [
        ("v1beta1", True, False),
        ("v1beta2", True, True),
    ]
    hook = peers["conversion"]["webhook"]["clientConfig"]["service"]
    assert (peers["conversion"]["strategy"], hook["path"]) == ("Webhook", "/convert")
    legacy = crds["AddressPool"]["spec"]["versions"]
    assert [(v["name"], v["storage"], v.get("deprecated")) for v in legacy] == [
        ("v1alpha1", False, True),
        ("v1beta1", True, True),
    ]
    assert {
        "IPAddressPool",
        "L2Advertisement",
        "BGPAdvertisement",
        "BGPPeer",
        "BFDProfile",
        "Community",
        "ServiceL2Status",
        "ServiceBGPStatus",
        "ConfigurationState",
        "BGPSessionState",
        "AddressPool",
        "MetalLB",
    } == set(crds)


def test_crd_defaults_and_cel_rules_bite() -> None:
    crds = _crds()
    adv = crds["BGPAdvertisement"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    props = adv["properties"]["spec"]["properties"]
    assert (props["aggregationLength"]["default"], props["aggregationLengthV6"]["default"]) == (
        32,
        128,
    )
    bad = {"spec": {"aggregationLength": 24, "serviceSelectors": [{"matchLabels": {"a": "b"}}]}}
    assert cel_errors(bad, adv) != []
    assert cel_errors({"spec": {"serviceSelectors": [{}]}}, adv) == []
    peer = crds["BGPPeer"]["spec"]["versions"][1]["schema"]["openAPIV3Schema"]
    assert cel_errors({"spec": {"connectTime": "1500ms"}}, peer) != []
    assert cel_errors({"spec": {"connectTime": "70000s"}}, peer) != []
    assert cel_errors({"spec": {"connectTime": "10s"}}, peer) == []


def _examples() -> list[tuple[int, str]]:
    text = DOC.read_text()
    return [
        (text[: m.start()].count("\n") + 1, m.group(1))
        for m in re.finditer(r"```yaml\n(.*?)```", text, re.S)
    ]


def test_docs_have_examples_of_every_kind() -> None:
    kinds = {d["kind"] for _, block in _examples() for d in yaml.safe_load_all(block) if d}
    assert set(_crds()) - {"ServiceL2Status", "ServiceBGPStatus", "ConfigurationState"} <= kinds


@pytest.mark.parametrize(
    ("line", "block"), _examples(), ids=lambda x: str(x) if isinstance(x, int) else ""
)
def test_docs_example_validates_against_the_crds_and_parses(line: int, block: str) -> None:
    crds = _crds()
    docs = [d for d in yaml.safe_load_all(block) if d]
    for doc in docs:
        if not str(doc.get("apiVersion", "")).startswith("metallb.io/"):
            continue
        version = doc["apiVersion"].split("/")[1]
        crd = crds[doc["kind"]]
        (schema,) = [
            v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == version
        ]
        assert check(doc, schema) == []
        assert cel_errors(doc, schema) == []
    _, problems = parse(docs, lenient_references=True)  # as `config validate` does
    errors = [p.line() for p in problems if p.is_error]
    if block.startswith("# invalid"):
        assert errors, f"docs line {line}: an example marked invalid parses"
    else:
        assert errors == [], f"docs line {line}"


def test_docs_list_every_rule() -> None:
    text = DOC.read_text()
    assert [r for r in RULES if f"`{r}`" not in text] == []
