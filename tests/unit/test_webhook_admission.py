"""Admission decisions: the candidate against the current objects, through the same parser."""

from __future__ import annotations

from typing import Any

from metallb_py.config.bgppeer_conversion import to_v1beta2
from tests.lab.config_objects import NS, bfd, bgpadv, community, legacy_pool, peer, pool
from tests.lab.webhook_reviews import admission_review
from webhooks.admission import review
from webhooks.paths import BY_PATH, HOOKS

HOOK = {h.kind: h for h in HOOKS}


def decide(
    operation: str,
    obj: dict[str, Any] | None,
    current: list[dict[str, Any]],
    old: dict[str, Any] | None = None,
    request_version: str | None = None,
) -> dict[str, Any]:
    subject = obj if obj is not None else old
    assert subject is not None
    req = admission_review(operation, obj, old, request_version)
    out = review(HOOK[subject["kind"]], req, current, NS)
    assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
    assert out["response"]["uid"] == req["request"]["uid"]
    return out["response"]


def test_paths_match_metallb() -> None:
    assert "/validate-metallb-io-v1beta1-ipaddresspool" in BY_PATH
    assert "/validate-metallb-io-v1beta2-bgppeer" in BY_PATH
    assert (
        BY_PATH["/validate-metallb-io-v1beta1-bfdprofile"].name
        == "bfdprofilevalidationwebhook.metallb.io"
    )


def test_good_pool_is_allowed_and_overlapping_one_is_denied_with_the_rule() -> None:
    existing = [pool("prod", "192.0.2.0/24", creationTimestamp="2024-01-01T00:00:00Z")]
    assert decide("CREATE", pool("other", "198.51.100.0/24"), existing)["allowed"]
    resp = decide("CREATE", pool("aaa", "192.0.2.128/25"), existing)
    assert not resp["allowed"] and resp["status"]["code"] == 403
    assert "(rule pool-overlap)" in resp["status"]["message"]
    assert "IPAddressPool/metallb-system/aaa: spec.addresses[0]" in resp["status"]["message"]


def test_update_is_refused_even_when_the_candidate_would_win_the_conflict() -> None:
    old = pool("old", "192.0.2.0/25", creationTimestamp="2024-01-01T00:00:00Z")
    newer = pool("newer", "192.0.2.128/25", creationTimestamp="2025-01-01T00:00:00Z")
    grown = pool("old", "192.0.2.0/24", creationTimestamp="2024-01-01T00:00:00Z")
    resp = decide("UPDATE", grown, [old, newer], old=old)
    assert not resp["allowed"] and "rule pool-overlap" in resp["status"]["message"]


def test_unrelated_broken_objects_do_not_block_a_good_change() -> None:
    broken = [peer("broken", holdTime="1s"), pool("x", "192.0.2.0/24"), pool("y", "192.0.2.0/25")]
    assert decide("CREATE", pool("fine", "203.0.113.0/24"), broken)["allowed"]


def test_only_the_metallb_namespace() -> None:
    obj = pool("p", "192.0.2.0/24")
    obj["metadata"]["namespace"] = "default"
    resp = decide("CREATE", obj, [])
    assert (
        not resp["allowed"]
        and "must be created in metallb-system namespace" in resp["status"]["message"]
    )


def test_peer_rules_and_no_disable_mp_bypass() -> None:
    resp = decide("CREATE", peer("p", disableMP=True, holdTime="2s"), [])
    assert not resp["allowed"] and "rule peer-hold-time" in resp["status"]["message"]
    resp = decide("CREATE", peer("p", disableMP=True), [])
    assert resp["allowed"] and any("disable mp is deprecated" in w for w in resp["warnings"])
    resp = decide("CREATE", peer("b", myASN=65000, peerAddress="192.0.2.9"), [peer("a")])
    assert not resp["allowed"] and "rule peer-my-asn" in resp["status"]["message"]


def test_bfd_profile_and_secret_may_come_later() -> None:
    resp = decide("CREATE", peer("p", bfdProfile="later", passwordSecret={"name": "later"}), [])
    assert resp["allowed"] and len(resp["warnings"]) == 2


def test_v1beta1_peer_gets_the_operator_keepalive_rule_after_conversion() -> None:
    submitted = peer("p", version="v1beta1", keepaliveTime="30s")
    as_stored = to_v1beta2(submitted)  # what the API server hands a v1beta2 webhook
    resp = decide("CREATE", as_stored, [], request_version="v1beta1")
    assert not resp["allowed"] and "rule peer-v1beta1-keepalive" in resp["status"]["message"]
    # The same object written as v1beta2 follows the v1beta2 rule (hold = 3 x keepalive).
    assert decide("CREATE", as_stored, [])["allowed"]
    ok = to_v1beta2(peer("q", version="v1beta1"))
    assert decide("CREATE", ok, [], request_version="v1beta1")["allowed"]


def test_graceful_restart_is_immutable() -> None:
    before = peer("p", enableGracefulRestart=True)
    after = peer("p", enableGracefulRestart=False)
    resp = decide("UPDATE", after, [before], old=before)
    assert not resp["allowed"] and "enableGracefulRestart" in resp["status"]["message"]


def test_bfd_profile_updates_are_validated_and_deletes_in_use_refused() -> None:
    resp = decide("UPDATE", bfd("fast", detectMultiplier=1), [bfd("fast")], old=bfd("fast"))
    assert not resp["allowed"] and "rule bfd-range" in resp["status"]["message"]
    resp = decide("DELETE", None, [bfd("fast"), peer("tor", bfdProfile="fast")], old=bfd("fast"))
    assert not resp["allowed"]
    assert "failed to delete BFDProfile fast, used by BGPPeer tor" in resp["status"]["message"]
    assert decide("DELETE", None, [bfd("fast"), peer("tor")], old=bfd("fast"))["allowed"]


def test_deleting_a_pool_in_use_warns() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop", "annotations": {}},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}},
    }
    victim = pool("prod", "192.0.2.0/24")
    resp = decide("DELETE", None, [victim, svc], old=victim)
    assert resp["allowed"] and "shop/web" in resp["warnings"][0]


def test_community_alias_in_use_cannot_be_deleted() -> None:
    c = community("c", noexport="65535:65281")
    resp = decide("DELETE", None, [c, bgpadv("a", communities=["noexport"])], old=c)
    assert not resp["allowed"] and "rule community-in-use" in resp["status"]["message"]


def test_legacy_address_pool_warns_and_checks_protocol() -> None:
    resp = decide("CREATE", legacy_pool("old", "layer2", "192.0.2.0/24"), [])
    assert resp["allowed"] and any("deprecated" in w for w in resp["warnings"])
    resp = decide(
        "CREATE", legacy_pool("old", "layer2", "192.0.2.0/24", bgpAdvertisements=[{}]), []
    )
    assert not resp["allowed"] and "rule legacy-protocol" in resp["status"]["message"]
    resp = decide("CREATE", legacy_pool("dup", "bgp", "192.0.2.0/25"), [pool("p", "192.0.2.0/24")])
    assert not resp["allowed"] and "rule pool-overlap" in resp["status"]["message"]


def test_advertisement_against_pools() -> None:
    pools = [pool("p", "192.0.2.0/24")]
    assert decide("CREATE", bgpadv("a", aggregationLength=24), pools)["allowed"]
    resp = decide("CREATE", bgpadv("a", aggregationLength=16), pools)
    assert not resp["allowed"] and "rule aggregation-length" in resp["status"]["message"]
    # A pool that would break an existing advertisement is refused too.
    ads = [bgpadv("wide", aggregationLength=24, creationTimestamp="2024-01-01T00:00:00Z")]
    resp = decide("CREATE", pool("small", "198.51.100.0/28"), ads)
    assert not resp["allowed"] and "rule aggregation-length" in resp["status"]["message"]


def test_undecodable_review_is_a_400() -> None:
    out = review(HOOK["IPAddressPool"], {"nope": 1}, [], NS)
    assert out["response"]["allowed"] is False and out["response"]["status"]["code"] == 400
    req = admission_review("CREATE", pool("p", "192.0.2.0/24"))
    req["request"]["object"] = "garbage"
    out = review(HOOK["IPAddressPool"], req, [], NS)
    assert out["response"]["status"]["code"] == 400


def test_an_existing_race_does_not_block_editing_the_winner_but_new_breakage_does() -> None:
    winner = pool("a", "192.0.2.0/24", creationTimestamp="2024-01-01T00:00:00Z")
    loser = pool("b", "192.0.2.0/25", creationTimestamp="2024-01-01T00:00:00Z")
    relabelled = pool(
        "a", "192.0.2.0/24", creationTimestamp="2024-01-01T00:00:00Z", labels={"x": "y"}
    )
    assert decide("UPDATE", relabelled, [winner, loser], old=winner)["allowed"]
    # Widening the winner into a third pool is new breakage.
    third = pool("c", "198.51.100.0/24", creationTimestamp="2024-01-01T00:00:00Z")
    wider = pool("a", "192.0.2.0/24", "198.51.100.0/25", creationTimestamp="2024-01-01T00:00:00Z")
    resp = decide("UPDATE", wider, [winner, loser, third], old=winner)
    assert not resp["allowed"] and "pool 'c'" in resp["status"]["message"]
    # Own errors (not conflicts) are always refused on update.
    broken = pool("a", "nonsense", creationTimestamp="2024-01-01T00:00:00Z")
    assert not decide("UPDATE", broken, [winner, loser], old=winner)["allowed"]
