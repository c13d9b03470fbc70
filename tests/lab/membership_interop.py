"""Mixed clusters of our membership members and real hashicorp/memberlist members on a lab LAN.

Every member runs in its own LAN namespace (node1, node2, ... at 198.51.100.11, .12, ...) on
port 7946, so a SIGKILL or a pulled cable behaves as on separate hosts. Ours run
tests/lab/membership_member.py, the Go ones tests/lab/memberlist/peer.go; both print the same
JSON event lines and take the same stdin commands, so `OurMember` reuses `GoMemberlistPeer`'s
plumbing and a test drives either kind alike.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable, Sequence

from metallb_py.membership.config import MembershipConfig, profile
from tests.lab.memberlist_peer import Event, GoMemberlistPeer, PeerError, peer_binary
from tests.lab.netns import Lab, wait_for
from tests.lab.topology import REPO_ROOT, Lan

PORT = 7946
SECRET = "interop-secret-for-the-lab"  # MetalLB's memberlist secret: any string
OTHER_SECRET = "some-other-cluster-secret"


class OurMember(GoMemberlistPeer):
    """Our member (tests/lab/membership_member.py) in a lab namespace, driven like the Go peer."""

    join_result: Event | None = None

    @classmethod
    def launch(
        cls,
        lab: Lab,
        role: str,
        *,
        name: str,
        bind: str,
        secret: str = "",
        profile: str = "fast",
        join: Sequence[str] = (),
        timeout: float = 15.0,
    ) -> OurMember:
        """Start the member in namespace `role`; wait until it is ready and, with `join`, until
        its first join attempt is over (`join_result`)."""
        argv = [sys.executable, "-m", "tests.lab.membership_member", "--name", name]
        argv += ["--bind", bind, "--port", str(PORT), "--profile", profile, "--secret", secret]
        if join:
            argv += ["--join", ",".join(join)]
        proc = lab.spawn(
            role,
            argv,
            name=f"ours-{name}",
            env={"PYTHONPATH": str(REPO_ROOT)},
            stdin=subprocess.PIPE,
        )
        member = cls(proc.popen, proc.log_path, lab_process=proc)
        try:
            member.ready = member.wait_event("ready", timeout=timeout)
            if join:
                member.join_result = member.wait_event("joined", timeout=timeout)
        except PeerError:
            member.close()
            raise
        return member

    def join(self, *addrs: str, timeout: float = 15.0) -> Event:
        """Join `addrs` (ip or ip:port; our seeds use our own port); answers "contacted"."""
        return self._ask("join " + " ".join(addrs), "joined", timeout)

    def member_states(self, timeout: float = 10.0) -> dict[str, str]:
        """Every member our core knows and its state: alive, suspect, dead or left."""
        return {m["name"]: m["state"] for m in self.members(timeout)}

    def live(self, timeout: float = 10.0) -> set[str]:
        """`MembershipService.members()`: the alive and suspect names, ours included."""
        return set(self._ask("members", "members", timeout).get("live") or [])

    def snapshot(self, timeout: float = 10.0) -> Event:
        """`MembershipService.snapshot()` (states, counters, dropped by reason, health)."""
        return self._ask("snapshot", "snapshot", timeout)

    def dropped(self) -> dict[str, int]:
        """Input the service refused, counted by reason ("decrypt", "unencrypted", ...)."""
        return dict(self.snapshot().get("dropped") or {})


def kill(member: GoMemberlistPeer) -> None:
    """SIGKILL the member's process: its sockets vanish without a goodbye, as when a node dies."""
    if member.lab_process is None:
        raise ValueError("only a lab member can be killed")
    member.lab_process.kill()


def start_go(
    lab: Lab,
    lan: Lan,
    index: int,
    *,
    secret: str = "",
    profile: str = "local",
    join: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> GoMemberlistPeer:
    """A Go member named go<index> on node<index> (started with `join`, ip:port)."""
    host = lan.nodes[index - 1]
    return GoMemberlistPeer.start(
        name=f"go{index}",
        bind=host.ipv4,
        port=PORT,
        secret=secret,
        profile=profile,
        join=join,
        extra=extra,
        lab=lab,
        role=host.role,
    )


def start_ours(
    lab: Lab,
    lan: Lan,
    index: int,
    *,
    secret: str = "",
    profile: str = "fast",
    join: Sequence[str] = (),
) -> OurMember:
    """Our member named py<index> on node<index>."""
    host = lan.nodes[index - 1]
    return OurMember.launch(
        lab, host.role, name=f"py{index}", bind=host.ipv4, secret=secret, profile=profile, join=join
    )


def addr(lan: Lan, index: int) -> str:
    return f"{lan.nodes[index - 1].ipv4}:{PORT}"


def live_names(member: GoMemberlistPeer) -> set[str]:
    """The names a member holds alive (or suspect): Go's Members(), our members()."""
    if isinstance(member, OurMember):
        return member.live()
    return {m["name"] for m in member.members() if m["state"] in ("alive", "suspect")}


def wait_all_see_all(members: Sequence[GoMemberlistPeer], timeout: float = 15.0) -> None:
    """Until every member holds every member (itself included) alive."""
    names = {m.ready["name"] for m in members}

    def converged() -> bool:
        return all(live_names(m) == names for m in members)

    try:
        wait_for(converged, timeout, interval=0.1, what=f"every member sees {sorted(names)}")
    except TimeoutError as exc:
        views = {m.ready["name"]: sorted(live_names(m)) for m in members}
        raise AssertionError(f"{exc}; views: {views}") from None


def events_of(member: GoMemberlistPeer, kind: str, name: str | None = None) -> list[Event]:
    member.poll()
    return [
        e
        for e in member.events
        if e.get("event") == kind and (name is None or e.get("name") == name)
    ]


def wait_event_after(
    member: GoMemberlistPeer,
    predicate: Callable[[Event], bool],
    timeout: float,
    since: int,
) -> Event:
    """`wait_for` that turns a timeout into an assertion with the member's output."""
    try:
        return member.wait_for(predicate, timeout, since=since)
    except PeerError as exc:
        raise AssertionError(str(exc)[-4000:]) from None


def detection_bound(config: MembershipConfig, members: int, slack: float = 3.0) -> float:
    """A generous upper bound on the time a member with `config` takes to declare a dead
    member dead: until it probes the victim (round robin: `members` probe intervals at most,
    each stretched by the worst health multiplier the test allows, 2), the probe round itself,
    the longest suspicion timeout (memberlist: suspicion_max_timeout_mult * suspicion_mult *
    max(1, log10(n)) * probe_interval, before any confirmation), plus `slack` for a loaded box."""
    interval = config.probe_interval
    rounds = (members + 1) * interval * 2
    suspicion_min = config.suspicion_mult * max(1.0, math.log10(max(members, 1))) * interval
    suspicion_max = config.suspicion_max_timeout_mult * suspicion_min
    return rounds + interval + suspicion_max + slack


def go_profile(name: str) -> MembershipConfig:
    """The Go peer's profile (`local` or `lan`) as our config: the values are memberlist's."""
    return profile(name)


def ensure_go() -> None:
    """Build the Go peer up front (skip without Go; fail in CI)."""
    peer_binary()
