"""What an administrator sees: the real kubectl against `metallb-py apiserver` with the manifests
and `metallb-py webhook`. Bad objects are refused with the rule in kubectl's output, good ones
are accepted, v1beta1 BGPPeers are converted (90 s default hold) and validated by v1beta1 rules,
warnings reach kubectl, and deletes that would break something are refused."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.lab.webhook_proc import get_json, metallb_cluster

NS = "metallb-system"


def _doc(kind: str, name: str, spec: dict[str, object], version: str = "v1beta1") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": f"metallb.io/{version}",
            "kind": kind,
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
    )


def test_kubectl_apply_is_judged_by_the_webhook(tmp_path: Path) -> None:
    with metallb_cluster(tmp_path) as (api, _hook, _bundle):
        good = api.kubectl(
            "apply",
            "-f",
            "-",
            input=_doc("IPAddressPool", "production", {"addresses": ["192.0.2.0/24"]}),
        )
        assert "ipaddresspool.metallb.io/production created" in good.stdout
        bad = api.kubectl(
            "apply",
            "-f",
            "-",
            input=_doc("IPAddressPool", "staging", {"addresses": ["192.0.2.128/25"]}),
            check=False,
        )
        assert bad.returncode != 0
        assert (
            'admission webhook "ipaddresspoolvalidationwebhook.metallb.io" denied the request'
            in bad.stderr
        )
        assert "rule pool-overlap" in bad.stderr and "in pool 'production'" in bad.stderr
        assert "staging" not in api.kubectl("get", "ipaddresspools", "-n", NS).stdout

        # v1beta1 peer without timers: converted by our webhook, stored with hold 90 s.
        peer = {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1"}
        out = api.kubectl("apply", "-f", "-", input=_doc("BGPPeer", "tor", peer))
        assert "bgppeer.metallb.io/tor created" in out.stdout
        assert "deprecated" in out.stderr  # the version's deprecation warning
        stored = yaml.safe_load(
            api.kubectl("get", "bgppeers.v1beta2.metallb.io", "-n", NS, "tor", "-o", "yaml").stdout
        )
        assert (stored["spec"]["holdTime"], stored["spec"]["keepaliveTime"]) == ("1m30s", "30s")
        # ... and validated with the v1beta1 keepalive rule.
        strict = {**peer, "peerAddress": "192.0.2.2", "keepaliveTime": "30s"}
        refused = api.kubectl(
            "apply", "-f", "-", input=_doc("BGPPeer", "strict", strict), check=False
        )
        assert refused.returncode != 0 and "rule peer-v1beta1-keepalive" in refused.stderr
        # The same object as v1beta2 is fine (hold = 3 x keepalive), and a conflicting myASN is not.
        ok = api.kubectl("apply", "-f", "-", input=_doc("BGPPeer", "strict", strict, "v1beta2"))
        assert "created" in ok.stdout
        clash = {"myASN": 65000, "peerASN": 64501, "peerAddress": "192.0.2.3"}
        refused = api.kubectl(
            "apply", "-f", "-", input=_doc("BGPPeer", "clash", clash, "v1beta2"), check=False
        )
        assert refused.returncode != 0 and "rule peer-my-asn" in refused.stderr


def test_warnings_and_deletes(tmp_path: Path) -> None:
    with metallb_cluster(tmp_path) as (api, _hook, _bundle):
        legacy = _doc(
            "AddressPool", "old", {"protocol": "layer2", "addresses": ["198.51.100.0/24"]}
        )
        out = api.kubectl("apply", "-f", "-", input=legacy)
        assert (
            "created" in out.stdout
            and "Warning:" in out.stderr
            and "AddressPool is deprecated" in out.stderr
        )
        api.kubectl("apply", "-f", "-", input=_doc("BFDProfile", "fast", {"detectMultiplier": 3}))
        peer = {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1", "bfdProfile": "fast"}
        api.kubectl("apply", "-f", "-", input=_doc("BGPPeer", "tor", peer, "v1beta2"))
        refused = api.kubectl("delete", "bfdprofile", "-n", NS, "fast", check=False)
        assert refused.returncode != 0 and "used by BGPPeer tor" in refused.stderr
        api.kubectl("delete", "bgppeer", "-n", NS, "tor")
        api.kubectl("delete", "bfdprofile", "-n", NS, "fast")
        api.kubectl(
            "apply",
            "-f",
            "-",
            input=_doc("IPAddressPool", "production", {"addresses": ["192.0.2.0/24"]}),
        )
        svc = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "annotations": {"metallb.io/ip-allocated-from-pool": "production"},
            },
            "spec": {"type": "ClusterIP", "ports": [{"port": 80}]},
        }
        api.kubectl("apply", "-f", "-", input=yaml.safe_dump(svc))
        out = api.kubectl("delete", "ipaddresspool", "-n", NS, "production")
        assert "deleted" in out.stdout
        assert (
            "Warning:" in out.stderr
            and "default/web" in out.stderr
            and "rule pool-in-use" in out.stderr
        )


async def test_rotation_while_the_api_server_keeps_calling(tmp_path: Path) -> None:
    """Short-lived certificates: the API server (re-reading the injected caBundle) calls the
    webhook for every create while the serving certificate is replaced; no create fails."""
    from metallb_py.kube.rest import ApiError, Rest

    with metallb_cluster(tmp_path, "--cert-lifetime", "4s") as (api, hook, _bundle):
        secret = get_json(api, "secret", "-n", NS, "metallb-webhook-cert")
        assert {"ca.crt", "ca.key", "tls.crt", "tls.key", "ca-bundle.crt"} <= set(secret["data"])
        async with api.client() as client:
            rest = Rest(client)
            path = f"/apis/metallb.io/v1beta1/namespaces/{NS}/ipaddresspools"
            failures: list[str] = []
            created = 0
            for i in range(2000):
                # Enough creates on both sides of several rotations, however slow the machine.
                if hook.output().count("certificateRotated") >= 3 and created >= 20:
                    break
                body = yaml.safe_load(
                    _doc("IPAddressPool", f"p{i}", {"addresses": [f"2001:db8:{i:x}::/64"]})
                )
                try:
                    await rest.create(path, body)
                    created += 1
                except ApiError as exc:
                    failures.append(str(exc))
            assert failures == [], failures[:3]
            assert hook.output().count("certificateRotated") >= 3, hook.output()[-2000:]
            assert created >= 20
            # Denials still work after the rotations.
            bad = yaml.safe_load(_doc("IPAddressPool", "overlap", {"addresses": ["2001:db8::/32"]}))
            try:
                await rest.create(path, bad)
                raise AssertionError("an overlapping pool was accepted")
            except ApiError as exc:
                assert exc.status in (400, 403) and "pool-overlap" in str(exc)
