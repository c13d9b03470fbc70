"""`metallb-py config validate` as users run it: a subprocess, real files and stdin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GOOD = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: production
  namespace: metallb-system
spec:
  addresses:
  - 192.0.2.0/24
  - 2001:db8::/120
  - 198.51.100.10-198.51.100.20
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: l2
spec:
  ipAddressPools: [production]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata:
  name: tor
spec:
  myASN: 64500
  peerASN: 64501
  peerAddress: 192.0.2.1
  bfdProfile: created-later
"""

BAD = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: staging
spec:
  addresses: [192.0.2.128/25]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata:
  name: slow
spec:
  myASN: 64500
  peerASN: 64501
  peerAddress: 192.0.2.1
  holdTime: 2s
---
apiVersion: metallb.io/v1beta1
kind: IPAdressPool
metadata:
  name: typo
spec: {}
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata:
  name: missing-name-below
spec:
  detectMultiplier: 1
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {}
"""


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metallb_py", "config", "validate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_valid_files_exit_0_and_pending_references_only_warn(tmp_path: Path) -> None:
    f = tmp_path / "good.yaml"
    f.write_text(GOOD)
    out = run(str(f))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        "BGPPeer/metallb-system/tor: spec.bfdProfile: warning: peer tor referencing non existing "
        "bfd profile 'created-later' (rule peer-bfd-profile)"
    ]
    assert "0 error(s)" in out.stderr


def test_invalid_files_exit_1_with_one_line_per_problem(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(BAD)
    out = run(str(good), str(bad))
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    expected = [
        "IPAddressPool/metallb-system/staging: spec.addresses[0]: CIDR '192.0.2.128/25'",
        "BGPPeer/metallb-system/slow: spec.holdTime: invalid hold time '2s': must be 0 or >=3s",
        "IPAdressPool/metallb-system/typo: kind: unknown kind 'IPAdressPool'",
        "BFDProfile/metallb-system/missing-name-below: spec.detectMultiplier: 1 is less than",
        f"{bad}: document 5: Community: missing metadata.name",
    ]
    for prefix in expected:
        assert any(line.startswith(prefix) for line in lines), (prefix, lines)
    assert "Traceback" not in out.stdout + out.stderr


def test_stdin_and_missing_fields(tmp_path: Path) -> None:
    doc = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {}\n"
    out = run("-", stdin=doc)
    assert out.returncode == 1
    assert out.stdout.strip() == (
        "IPAddressPool/metallb-system/p: spec.addresses: required field is missing (rule schema)"
    )


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("a: [\n", "invalid YAML"),
        ("key: value\n  bad indent: x\n", "invalid YAML"),
        (b"\xff\xfe\x00".decode("latin-1"), ""),
    ],
)
def test_unreadable_input_exits_2_with_one_line(tmp_path: Path, content: str, needle: str) -> None:
    f = tmp_path / "broken.yaml"
    f.write_bytes(content.encode("latin-1"))
    out = run(str(f))
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and needle in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_file_exits_2() -> None:
    out = run("/nonexistent/pools.yaml")
    assert out.returncode == 2
    assert "cannot read /nonexistent/pools.yaml" in out.stderr


def test_kubectl_list_output_is_understood() -> None:
    doc = """\
apiVersion: v1
kind: List
items:
- apiVersion: metallb.io/v1beta1
  kind: AddressPool
  metadata: {name: legacy, namespace: metallb-system}
  spec: {protocol: layer2, addresses: [203.0.113.0/24], bgpAdvertisements: [{}]}
"""
    out = run("-", stdin=doc)
    assert out.returncode == 1
    assert (
        "AddressPool/metallb-system/legacy: spec.bgpAdvertisements: bgpAdvertisements are only"
        in out.stdout
    )
    assert "deprecated" in out.stdout
