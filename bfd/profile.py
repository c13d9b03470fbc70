"""MetalLB's BFDProfile (metallb.io/v1beta1) as BFD session parameters.

Field names, ranges and defaults follow MetalLB's CRD (the defaults are FRR's, which MetalLB relies
on when a field is unset). `session_params()` applies the engine's interval floor: the shortest
interval this implementation can honour (see docs/bfd.md), so we never advertise a RequiredMinRx
we could not keep up with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bfd.session import SessionParams

INTERVAL_RANGE = (10, 60000)
MULTIPLIER_RANGE = (2, 255)
MIN_TTL_RANGE = (1, 254)
DEFAULT_FLOOR_MS = 50


class ProfileError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Profile:
    name: str = "default"
    receive_interval_ms: int = 300
    transmit_interval_ms: int = 300
    detect_multiplier: int = 3
    echo_interval_ms: int = 50
    echo_mode: bool = False
    passive_mode: bool = False
    minimum_ttl: int = 254

    def __post_init__(self) -> None:
        for field_name, value, (low, high) in (
            ("receiveInterval", self.receive_interval_ms, INTERVAL_RANGE),
            ("transmitInterval", self.transmit_interval_ms, INTERVAL_RANGE),
            ("echoInterval", self.echo_interval_ms, INTERVAL_RANGE),
            ("detectMultiplier", self.detect_multiplier, MULTIPLIER_RANGE),
            ("minimumTtl", self.minimum_ttl, MIN_TTL_RANGE),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ProfileError(
                    f"bfd profile {self.name}: {field_name}: invalid value {value!r}, "
                    f"must be in {low}-{high} range"
                )

    @classmethod
    def from_metallb(cls, spec: Mapping[str, Any], name: str = "default") -> Profile:
        """Build from a BFDProfile `spec` (camelCase keys; absent or null means the default)."""
        known = {
            "receiveInterval": "receive_interval_ms",
            "transmitInterval": "transmit_interval_ms",
            "detectMultiplier": "detect_multiplier",
            "echoInterval": "echo_interval_ms",
            "echoMode": "echo_mode",
            "passiveMode": "passive_mode",
            "minimumTtl": "minimum_ttl",
        }
        unknown = sorted(set(spec) - set(known))
        if unknown:
            raise ProfileError(f"bfd profile {name}: unknown field(s) {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for key, attr in known.items():
            value = spec.get(key)
            if value is None:
                continue
            if attr in ("echo_mode", "passive_mode") and not isinstance(value, bool):
                raise ProfileError(f"bfd profile {name}: {key}: must be true or false")
            kwargs[attr] = value
        return cls(name=name, **kwargs)

    def session_params(self, floor_ms: int = DEFAULT_FLOOR_MS) -> tuple[SessionParams, list[str]]:
        """Session parameters, and the names of the fields the floor raised."""
        raised = []
        tx, rx, echo = self.transmit_interval_ms, self.receive_interval_ms, self.echo_interval_ms
        if tx < floor_ms:
            raised.append("transmitInterval")
            tx = floor_ms
        if rx < floor_ms:
            raised.append("receiveInterval")
            rx = floor_ms
        if self.echo_mode and echo < floor_ms:
            raised.append("echoInterval")
            echo = floor_ms
        params = SessionParams(
            desired_min_tx_us=tx * 1000,
            required_min_rx_us=rx * 1000,
            detect_mult=self.detect_multiplier,
            required_min_echo_rx_us=echo * 1000 if self.echo_mode else 0,
            passive=self.passive_mode,
        )
        return params, raised
