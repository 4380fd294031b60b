"""Process settings for the programs that move live media (server and appliance).

Both run their network I/O on one asyncio loop and their codec work (decode, compose,
encode) in threads. CPython hands the GIL between threads only every *switch interval*
(5 ms by default), and the loop gives it up at every socket call and sleep, so on a
busy machine every packet sent, every packet read and every task wake-up waits up to
5 ms for a codec thread to yield: measured on the three-expert bench, the loop's lag
was p50 5.1 ms, p95 25 ms, and glass-to-glass p95 391 ms. With a 1 ms interval the
loop's lag fell to p50 1.3 ms and glass-to-glass p95 to 162 ms; the codec threads
release the GIL inside FFmpeg anyway, so they lose little.
"""

from __future__ import annotations

import sys
from typing import Final

MEDIA_SWITCH_INTERVAL_S: Final = 0.001


def favour_the_event_loop() -> None:
    """Let the I/O loop take the GIL back from codec threads within 1 ms, not 5 ms."""
    sys.setswitchinterval(MEDIA_SWITCH_INTERVAL_S)
