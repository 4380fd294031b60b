"""The link profiles the appliance must live with, as data (issue 14).

Each figure is per direction: ``3g`` is 600 kbit/s up and 600 kbit/s down, 75 ms
each way (150 ms round trip), and 2 % of the packets lost each way. An outage is not
a profile but an action on a running link (``Testbed.outage``): the link drops
everything for a while, then returns to the profile it had.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

DEFAULT_OUTAGE_S: Final = 5.0


@dataclass(frozen=True)
class LinkProfile:
    """One direction of a link: bottleneck rate, one-way delay, random loss.

    ``rate_kbit=None`` leaves the rate alone (veth speed). ``jitter_ms`` spreads the
    delay uniformly by ± that much, but never reorders: a packet does not leave
    before the one queued ahead of it, so large jitter at high packet rates bunches
    packets rather than spreading them.
    """

    name: str
    rate_kbit: int | None = None
    delay_ms: float = 0.0
    loss_pct: float = 0.0
    jitter_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.rate_kbit is not None and self.rate_kbit < 8:
            raise ValueError(f"{self.name}: rate_kbit must be at least 8, not {self.rate_kbit}")
        if not 0 <= self.delay_ms <= 10_000:
            raise ValueError(f"{self.name}: delay_ms must be 0…10000, not {self.delay_ms}")
        if not 0 <= self.loss_pct <= 100:
            raise ValueError(f"{self.name}: loss_pct must be 0…100, not {self.loss_pct}")
        if not 0 <= self.jitter_ms <= self.delay_ms:
            raise ValueError(f"{self.name}: jitter_ms must be 0…delay_ms, not {self.jitter_ms}")

    @property
    def rtt_ms(self) -> float:
        """Round trip when both directions use this profile (before any queueing)."""
        return 2 * self.delay_ms


LAN: Final = LinkProfile("lan")

PROFILES: Final[Mapping[str, LinkProfile]] = MappingProxyType(
    {
        "lan": LAN,
        "4g-rural": LinkProfile("4g-rural", rate_kbit=1500, delay_ms=30, loss_pct=1.0),
        "3g": LinkProfile("3g", rate_kbit=600, delay_ms=75, loss_pct=2.0),
        "satellite": LinkProfile("satellite", rate_kbit=2000, delay_ms=300, loss_pct=0.5),
    }
)
