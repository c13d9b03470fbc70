"""What the speaker needs from membership: `SpeakerReconciler(..., membership=...)`.

`MembershipService` (service.py) implements it. Without one (no `--ml-bind-addr`), and until
the first join attempt has finished, the layer-2 candidates are every existing Node object
(MetalLB's behaviour without memberlist)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Membership(Protocol):
    """What the membership component (speaker liveness) offers the speaker.

    `members()` is None while membership is disabled or has not formed yet; then every existing
    Node object is a layer-2 candidate. `on_change` is called on any join/leave.
    """

    def members(self) -> frozenset[str] | None: ...

    def subscribe(self, on_change: Callable[[], None]) -> None: ...

    async def leave(self) -> None: ...
