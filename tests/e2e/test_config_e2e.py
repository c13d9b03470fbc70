"""The CRDs in a (embedded) API server through the real kubectl: every example of
docs/configuration.md is accepted with its defaults filled in, printer columns show, the CRD's
CEL rules refuse what they must, and what `kubectl get -o yaml` returns validates offline."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.lab.apiserver import running_apiserver
from tests.lab.webhook_proc import NAMESPACE_YAML, metallb_cluster

ROOT = Path(__file__).resolve().parents[2]


def _valid_examples() -> str:
    text = (ROOT / "docs" / "configuration.md").read_text()
    blocks = [
        b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if not b.startswith("# invalid")
    ]
    docs = []
    for block in blocks:
        for doc in yaml.safe_load_all(block):
            # Status-only objects are written by components; legacy pools overlap their successor.
            if (
                doc
                and doc["kind"] not in ("BGPSessionState", "AddressPool")
                and doc["metadata"]["name"] != "legacy-bgp-new"
            ):
                docs.append(doc)
    return yaml.safe_dump_all(docs)


def test_docs_examples_apply_and_round_trip_through_config_validate(tmp_path: Path) -> None:
    # With the webhook running: the v1beta1 example goes through the conversion webhook.
    with metallb_cluster(tmp_path) as (api, _hook, _bundle):
        out = api.kubectl("apply", "-f", "-", input=_valid_examples())
        assert "ipaddresspool.metallb.io/production created" in out.stdout
        got = api.kubectl(
            "get", "ipaddresspools", "-n", "metallb-system", "production", "-o", "yaml"
        )
        assert yaml.safe_load(got.stdout)["spec"]["autoAssign"] is True
        table = api.kubectl("get", "bgppeers", "-n", "metallb-system").stdout
        assert table.split("\n")[0].split()[:4] == ["NAME", "ADDRESS", "ASN", "BFD"]
        kinds = "ipaddresspools,l2advertisements,bgpadvertisements,bgppeers,bfdprofiles,communities"
        listing = api.kubectl("get", kinds, "-n", "metallb-system", "-o", "yaml").stdout
        secrets = api.kubectl("get", "secrets", "-n", "metallb-system", "-o", "yaml").stdout
        check = subprocess.run(
            [sys.executable, "-m", "metallb_py", "config", "validate", "-"],
            input=listing + "\n---\n" + secrets,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert "error" not in check.stdout


def test_crd_schema_and_cel_refuse_bad_objects(tmp_path: Path) -> None:
    with running_apiserver(workdir=tmp_path / "apiserver") as api:
        api.kubectl("apply", "-f", "-", input=NAMESPACE_YAML)
        api.kubectl("apply", "-k", str(ROOT / "manifests" / "crds"))
        bad_bfd = (
            "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\n"
            "metadata: {name: b, namespace: metallb-system}\nspec: {detectMultiplier: 1}\n"
        )
        out = api.kubectl("apply", "-f", "-", input=bad_bfd, check=False)
        assert out.returncode != 0 and "detectMultiplier" in out.stderr
        bad_adv = (
            "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: a, "
            "namespace: metallb-system}\n"
            "spec: {aggregationLength: 24, serviceSelectors: [{matchLabels: {a: b}}]}\n"
        )
        out = api.kubectl("apply", "-f", "-", input=bad_adv, check=False)
        assert out.returncode != 0 and "serviceSelectors" in out.stderr
