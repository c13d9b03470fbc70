"""UPDATE packing: prefixes with identical attributes share UPDATEs filled to the negotiated size.

`RouteAttrs` holds what may differ between prefixes of one speaker: communities, large
communities, LOCAL_PREF and MED. ORIGIN, AS_PATH and NEXT_HOP are per session and are added when
an UPDATE is built. It is frozen and hashable so prefixes with equal attributes group together.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RouteAttrs:
    communities: tuple[int, ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()
    local_pref: int | None = None
    med: int | None = None

    def normalized(self) -> RouteAttrs:
        """Sorted and de-duplicated, so equal sets compare (and group) equal."""
        return RouteAttrs(
            tuple(sorted(set(self.communities))),
            tuple(sorted(set(self.large_communities))),
            self.local_pref,
            self.med,
        )


DEFAULT_ATTRS = RouteAttrs()
