"""Logs and events fire on transitions only: announce once, withdraw with the reason,
loadBalancerIPChanged before the new IP, serviceDeleted for a vanished service."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from metallb_py.speaker.desired import (
    ANNOUNCE,
    LB_IP_CHANGED,
    NO_ENDPOINTS,
    NOT_OWNER,
    SERVICE_DELETED,
    Decision,
    Desired,
    ServiceDesired,
    changed_services,
)
from metallb_py.speaker.transitions import Change, ChangeKind, transitions


def desired(*services: ServiceDesired) -> Desired:
    return Desired(services={s.key: s for s in services}, config_loaded=True)


def bgp_only(key: str, *ips: str, bgp: Decision = ANNOUNCE) -> ServiceDesired:
    return ServiceDesired(key, ips, "pool", bgp, Decision.withdraw(NOT_OWNER))


def test_announce_once_then_quiet() -> None:
    want = desired(bgp_only("default/a", "203.0.113.1"))
    after, changes = transitions({}, want)
    assert changes == [Change(ChangeKind.ANNOUNCED, "default/a", "bgp", ("203.0.113.1",))]
    assert after == {("default/a", "bgp"): ("203.0.113.1",)}
    again, changes = transitions(after, want)
    assert changes == [] and again == after


def test_withdraw_carries_the_reason() -> None:
    before = {("default/a", "bgp"): ("203.0.113.1",)}
    want = desired(bgp_only("default/a", "203.0.113.1", bgp=Decision.withdraw(NO_ENDPOINTS)))
    after, changes = transitions(before, want)
    assert changes == [
        Change(ChangeKind.WITHDRAWN, "default/a", "bgp", ("203.0.113.1",), NO_ENDPOINTS)
    ]
    assert after == {}


def test_ip_change_withdraws_the_old_ip_first() -> None:
    before = {("default/a", "bgp"): ("203.0.113.1",)}
    _, changes = transitions(before, desired(bgp_only("default/a", "203.0.113.2")))
    assert changes == [
        Change(ChangeKind.WITHDRAWN, "default/a", "bgp", ("203.0.113.1",), LB_IP_CHANGED),
        Change(ChangeKind.ANNOUNCED, "default/a", "bgp", ("203.0.113.2",)),
    ]


def test_deleted_service() -> None:
    before = {("default/a", "layer2"): ("198.51.100.200",)}
    after, changes = transitions(before, desired())
    assert changes == [
        Change(ChangeKind.WITHDRAWN, "default/a", "layer2", ("198.51.100.200",), SERVICE_DELETED)
    ]
    assert after == {}


# ---- the incremental form ------------------------------------------------------------------------

_STATES = [
    None,
    bgp_only("default/a", "203.0.113.1"),
    bgp_only("default/a", "203.0.113.2"),
    bgp_only("default/a", "203.0.113.1", bgp=Decision.withdraw(NO_ENDPOINTS)),
]


@given(st.lists(st.lists(st.integers(0, len(_STATES) - 1), min_size=4, max_size=4), max_size=8))
def test_incremental_transitions_equal_the_full_computation(steps: list[list[int]]) -> None:
    """Passing only the changed services gives the same announced set and the same changes as
    looking at every service, whatever the sequence of passes."""
    keys = [f"default/s{i}" for i in range(4)]
    previous: Desired | None = None
    announced_full: dict[tuple[str, str], tuple[str, ...]] = {}
    announced_inc: dict[tuple[str, str], tuple[str, ...]] = {}
    objects: dict[tuple[str, int], ServiceDesired] = {}  # reuse objects, as the memo does
    for step in steps:
        services = {}
        for key, pick in zip(keys, step, strict=True):
            template = _STATES[pick]
            if template is None:
                continue
            sd = objects.setdefault(
                (key, pick),
                ServiceDesired(key, template.ips, "pool", template.bgp, template.layer2),
            )
            services[key] = sd
        want = Desired(services=services, config_loaded=True)
        announced_full, full = transitions(announced_full, want)
        announced_inc, inc = transitions(announced_inc, want, only=changed_services(previous, want))
        assert announced_inc == announced_full
        assert sorted(inc, key=repr) == sorted(full, key=repr)
        previous = want
