"""Rib and RibOut: what each peer should hold, and the UPDATEs (in batches) that get it there."""

from __future__ import annotations

from bgp.context import AFI_IPV4, AFI_IPV6, CodecContext
from bgp.messages import Update, decode
from bgp.packing import DEFAULT_ATTRS, Packer, RouteAttrs, SessionEncoding, key_to_str, prefix_key
from bgp.rib import BATCH_OCTETS, Rib, RibOut

CTX = CodecContext()
PACKER = Packer(SessionEncoding(64512, False, CTX, bytes([198, 51, 100, 11]), bytes(15) + b"\x01"))
A = RouteAttrs((1,))
B = RouteAttrs((2,))


def k(text: str) -> bytes:
    return prefix_key(text)[1]


def drain(out: RibOut) -> list[Update]:
    msgs = []
    while (m := out.next_message(PACKER)) is not None:
        upd = decode(m[0], CTX)
        assert isinstance(upd, Update)
        msgs.append(upd)
    return msgs


def summary(upds: list[Update]) -> list[str]:
    out = []
    for u in upds:
        if u.end_of_rib():
            out.append(f"eor{u.end_of_rib()[0]}")  # type: ignore[index]
            continue
        out += [f"-{p}" for p in u.withdrawn]
        out += [f"+{p}" for p in u.nlri]
        if u.mp_reach:
            out += [f"+{p}" for p in u.mp_reach.nlri]
        if u.mp_unreach:
            out += [f"-{p}" for p in u.mp_unreach.withdrawn]
    return out


def test_rib_targeted_overrides_common_and_withdraw_scopes() -> None:
    rib = Rib()
    rib.announce(AFI_IPV4, k("203.0.113.1"), A, None)
    rib.announce(AFI_IPV4, k("203.0.113.1"), B, ["p1"])
    rib.announce(AFI_IPV4, k("203.0.113.2"), A, ["p1", "p2"])
    assert rib.lookup("p1", AFI_IPV4, k("203.0.113.1")) is B
    assert rib.lookup("p2", AFI_IPV4, k("203.0.113.1")) is A
    assert set(rib.desired("p2", AFI_IPV4)) == {k("203.0.113.1"), k("203.0.113.2")}
    assert set(rib.desired("p3", AFI_IPV4)) == {k("203.0.113.1")}
    rib.withdraw(AFI_IPV4, k("203.0.113.2"), ["p1"])
    assert k("203.0.113.2") in rib.desired("p2", AFI_IPV4)
    assert k("203.0.113.2") not in rib.desired("p1", AFI_IPV4)
    rib.withdraw(AFI_IPV4, k("203.0.113.1"), None)
    assert rib.lookup("p1", AFI_IPV4, k("203.0.113.1")) is None


def test_new_session_gets_table_then_end_of_rib_per_family() -> None:
    out = RibOut()
    out.start(
        [AFI_IPV4, AFI_IPV6],
        {AFI_IPV4: {k("203.0.113.1"): A, k("203.0.113.2"): B}, AFI_IPV6: {k("2001:db8:200::1"): A}},
    )
    assert out.pending_count == 3
    got = summary(drain(out))
    assert sorted(got[:2]) == ["+203.0.113.1/32", "+203.0.113.2/32"]
    assert got[2:] == ["+2001:db8:200::1/128", "eor1", "eor2"]
    assert out.idle and out.announced == 3 and out.pending_count == 0


def test_changes_are_diffed_against_what_the_peer_holds() -> None:
    out = RibOut()
    out.start([AFI_IPV4], {AFI_IPV4: {k("203.0.113.1"): A}})
    drain(out)
    out.change(AFI_IPV4, k("203.0.113.1"), A)  # no change: nothing sent
    out.change(AFI_IPV4, k("203.0.113.9"), None)  # never sent: nothing to withdraw
    assert drain(out) == []
    out.change(AFI_IPV4, k("203.0.113.1"), B)
    out.change(AFI_IPV4, k("203.0.113.2"), A)
    out.change(AFI_IPV4, k("203.0.113.2"), None)  # announced and withdrawn before sending
    assert summary(drain(out)) == ["+203.0.113.1/32"]
    out.change(AFI_IPV4, k("203.0.113.1"), None)
    assert summary(drain(out)) == ["-203.0.113.1/32"]
    assert out.announced == 0


def test_changes_during_initial_sync_follow_end_of_rib() -> None:
    out = RibOut()
    out.start([AFI_IPV4], {AFI_IPV4: {k("203.0.113.1"): A}})
    out.change(AFI_IPV4, k("203.0.113.5"), A)
    got = summary(drain(out))
    assert got == ["+203.0.113.1/32", "eor1", "+203.0.113.5/32"]


def test_route_refresh_resends_the_family() -> None:
    out = RibOut()
    table = {k("203.0.113.1"): A}
    out.start([AFI_IPV4], {AFI_IPV4: table})
    drain(out)
    out.refresh(AFI_IPV4, table)
    assert summary(drain(out)) == ["+203.0.113.1/32"]
    out.refresh(AFI_IPV6, {})  # not negotiated: ignored
    assert drain(out) == []


def test_stopped_session_sends_nothing_and_restart_resends_everything() -> None:
    out = RibOut()
    table = {k("203.0.113.1"): DEFAULT_ATTRS}
    out.start([AFI_IPV4], {AFI_IPV4: table})
    drain(out)
    out.stop()
    out.change(AFI_IPV4, k("203.0.113.2"), A)
    assert out.next_message(PACKER) is None
    out.start([AFI_IPV4], {AFI_IPV4: table})
    assert summary(drain(out)) == ["+203.0.113.1/32", "eor1"]


def test_family_without_next_hop_is_skipped_but_still_gets_end_of_rib() -> None:
    packer = Packer(SessionEncoding(64512, False, CTX, bytes([198, 51, 100, 11]), None))
    out = RibOut()
    out.start([AFI_IPV4, AFI_IPV6], {AFI_IPV6: {k("2001:db8:200::1"): A}})
    msgs = []
    while (m := out.next_message(packer)) is not None:
        msgs.append(decode(m[0], CTX))
    assert [u.end_of_rib() for u in msgs] == [(1, 1), (2, 1)]  # type: ignore[union-attr]


def test_key_round_trip() -> None:
    assert key_to_str(AFI_IPV6, k("2001:db8:200::/64")) == "2001:db8:200::/64"


def test_peer_shares_the_rib_table_until_it_changes() -> None:
    rib = Rib()
    rib.announce(AFI_IPV4, k("203.0.113.1"), A, None)
    out = RibOut()
    out.start([AFI_IPV4], {AFI_IPV4: rib.desired("p", AFI_IPV4)})
    drain(out)
    assert out.sent[AFI_IPV4] is rib.common[AFI_IPV4], "no copy while identical"
    # What Speaker.announce does: unshare, change the Rib, tell the peer.
    out.unshare(AFI_IPV4)
    rib.announce(AFI_IPV4, k("203.0.113.1"), B, None)
    out.change(AFI_IPV4, k("203.0.113.1"), rib.lookup("p", AFI_IPV4, k("203.0.113.1")))
    out.unshare(AFI_IPV4)
    rib.withdraw(AFI_IPV4, k("203.0.113.9"), None)  # never existed
    out.change(AFI_IPV4, k("203.0.113.9"), None)
    upds = drain(out)
    assert summary(upds) == ["+203.0.113.1/32"]
    assert upds[0].attribute(8).values == (2,)  # type: ignore[union-attr]
    assert out.sent[AFI_IPV4] is not rib.common[AFI_IPV4]


def test_batches_stop_at_the_octet_limit_and_end_of_rib_closes_one() -> None:
    out = RibOut()
    table = {k(f"10.{i >> 8}.{i & 255}.0/24"): RouteAttrs((i,)) for i in range(3000)}
    out.start([AFI_IPV4], {AFI_IPV4: table})
    batches = []
    while (b := out.next_batch(PACKER)) is not None:
        batches.append(b)
    assert len(batches) > 2
    for b in batches[:-1]:
        assert b.eor_afi == 0 and b.updates
        # The limit is checked before each UPDATE: a batch passes it by less than one UPDATE.
        assert BATCH_OCTETS <= b.octets < BATCH_OCTETS + 4096
        assert b.octets == sum(len(u) for u in b.updates)
    assert batches[-1].eor_afi == AFI_IPV4  # End-of-RIB only after the whole table
    assert batches[-1].octets < BATCH_OCTETS
    assert sum(b.prefixes for b in batches) == 3000
    assert out.idle and out.next_batch(PACKER) is None


def test_a_batch_with_only_end_of_rib_and_one_per_family() -> None:
    out = RibOut()
    out.start([AFI_IPV4, AFI_IPV6], {})
    first = out.next_batch(PACKER)
    second = out.next_batch(PACKER)
    assert first is not None and first.updates == [] and first.eor_afi == AFI_IPV4
    assert second is not None and second.updates == [] and second.eor_afi == AFI_IPV6
    assert out.next_batch(PACKER) is None


def test_batch_limit_is_a_parameter() -> None:
    out = RibOut()
    out.start([AFI_IPV4], {AFI_IPV4: {k("203.0.113.1"): A, k("203.0.113.2"): B}})
    b = out.next_batch(PACKER, max_octets=1)  # one UPDATE per batch
    assert b is not None and len(b.updates) == 1 and b.prefixes == 1 and b.eor_afi == 0
