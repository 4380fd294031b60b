"""Downlink adaptation (R17): each expert's composite follows that expert's link.

The shared encodes become a small ladder of rungs per main window; every viewer gets the
rung their own link allows (:class:`~clinicam.adaptation.LinkRateController` fed by the
viewer's REMB and receiver reports), so one expert on a 3G phone never lowers the
picture of the others, and viewers on the same rung and main window still share one
encode. The last rung is *audio only*: a still of the layout every
:data:`STILL_EVERY_S` seconds (each one a keyframe, so each stands alone), which a
viewer reaches by themself below the floor or chooses on the room page. Audio is never
starved: it is not part of this ladder and the video's target leaves room for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiortc import RTCRtpSender

from clinicam.adaptation import CEILING_SHARE, LinkRateController, Rung, min_kbps
from clinicam.rtcp_feedback import watch_feedback
from server.config import LiveViewConfig
from server.media.layout import PORTRAIT, portrait_size

STILL_EVERY_S = 3.0
STILL_KBPS = 150  # the ceiling of a still's encoder: ≈ 55 kB per keyframe at most
SCALES = (0.75, 0.5)  # the middle rungs, of the configured size


@dataclass(frozen=True)
class DownlinkLadder:
    rungs: tuple[Rung, ...]
    top_kbps: int

    @property
    def still(self) -> int:
        """The audio-only rung (stills)."""
        return len(self.rungs) - 1

    def controller(self) -> LinkRateController:
        return LinkRateController(self.rungs, self.top_kbps, time.monotonic)


def _even(value: float) -> int:
    return max(16, round(value / 2) * 2)


def composite_ladder(config: LiveViewConfig) -> DownlinkLadder:
    """Full size; ¾ and ½ size with fewer bits; then audio only with stills."""
    w, h, fps, top = config.width, config.height, config.fps, config.bitrate_kbps
    rungs = [Rung(w, h, fps, min_kbps(w, h, fps), top)]
    for scale in SCALES:
        sw, sh = _even(w * scale), _even(h * scale)
        need = min_kbps(sw, sh, fps)
        rungs.append(Rung(sw, sh, fps, need, min(top, round(CEILING_SHARE * need))))
    small = rungs[-1]
    rungs.append(Rung(small.width, small.height, 0, 0, min(top, STILL_KBPS)))
    return DownlinkLadder(tuple(rungs), top)


def shaped(config: LiveViewConfig, shape: str) -> LiveViewConfig:
    """The configured picture for a viewer's screen shape: a portrait frame
    (:func:`~server.media.layout.portrait_size`) with the same bits per pixel."""
    if shape != PORTRAIT:
        return config
    width, height = portrait_size(config.width, config.height)
    share = width * height / (config.width * config.height)
    kbps = max(200, round(config.bitrate_kbps * share))
    return config.model_copy(update={"width": width, "height": height, "bitrate_kbps": kbps})


class ViewerLink:
    """One viewer's rung: their link's, or audio only when they chose it."""

    def __init__(self, ladder: DownlinkLadder) -> None:
        self.ladder = ladder
        self.controller: LinkRateController | None = None
        self.audio_only = False

    def follow(self, sender: RTCRtpSender) -> None:
        """Let the viewer's feedback on ``sender`` choose their rung and bitrate."""
        self.controller = self.ladder.controller()
        watch_feedback(sender, self.controller.on_remb, self.controller.on_report)

    @property
    def rung(self) -> int:
        if self.audio_only:
            return self.ladder.still
        return self.controller.rung if self.controller is not None else 0

    def bitrate_kbps(self) -> int:
        rung = self.ladder.rungs[self.rung]
        if self.controller is None:
            return rung.ceiling_kbps
        return min(rung.ceiling_kbps, self.controller.bitrate_kbps())
