"""BGPPeer conversion: v1beta1 <-> v1beta2 through ConversionReview, nothing lost on a round "
"trip."""

from __future__ import annotations

import copy

from metallb_py.config.bgppeer_conversion import STASH_ANNOTATION
from tests.lab.config_objects import peer
from tests.lab.webhook_reviews import conversion_review
from webhooks.conversion import convert_review


def test_v1beta1_without_timers_gets_90s_hold_and_30s_keepalive() -> None:
    old = peer("p", version="v1beta1", peerPort=0, nodeSelectors=[{"matchLabels": {"rack": "a"}}])
    out = convert_review(conversion_review("metallb.io/v1beta2", old))
    resp = out["response"]
    assert out["kind"] == "ConversionReview" and resp["result"]["status"] == "Success"
    (new,) = resp["convertedObjects"]
    assert new["apiVersion"] == "metallb.io/v1beta2"
    assert (new["spec"]["holdTime"], new["spec"]["keepaliveTime"]) == ("1m30s", "30s")
    assert "peerPort" not in new["spec"]  # 0 meant the default, 179
    assert new["spec"]["nodeSelectors"] == [{"matchLabels": {"rack": "a"}}]
    assert new["metadata"] == old["metadata"]


def test_explicit_timers_are_kept() -> None:
    old = peer("p", version="v1beta1", holdTime="9s", keepaliveTime="3s")
    (new,) = convert_review(conversion_review("metallb.io/v1beta2", old))["response"][
        "convertedObjects"
    ]
    assert (new["spec"]["holdTime"], new["spec"]["keepaliveTime"]) == ("9s", "3s")


def test_v1beta2_only_fields_survive_a_v1beta1_round_trip() -> None:
    v2 = peer(
        "p",
        vrf="red",
        passwordSecret={"name": "s"},
        dynamicASN=None,
        connectTime="5s",
        holdTime="30s",
    )
    down = convert_review(conversion_review("metallb.io/v1beta1", copy.deepcopy(v2)))["response"][
        "convertedObjects"
    ][0]
    assert down["apiVersion"] == "metallb.io/v1beta1"
    assert "vrf" not in down["spec"] and STASH_ANNOTATION in down["metadata"]["annotations"]
    up = convert_review(conversion_review("metallb.io/v1beta2", down))["response"][
        "convertedObjects"
    ][0]
    assert up["spec"] == v2["spec"]
    assert "annotations" not in up["metadata"]


def test_failures_are_reported_not_raised() -> None:
    out = convert_review(conversion_review("metallb.io/v9", peer("p")))
    assert out["response"]["result"]["status"] == "Failure"
    assert "v9" in out["response"]["result"]["message"]
    assert convert_review("junk")["response"]["result"]["status"] == "Failure"
