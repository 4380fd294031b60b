"""The clinic station in a consultation (R16): the bedside screen and speaker.

The station belongs to the consultation's appliance. While it is connected:

* it receives its own composite: the experts' webcams, the one speaking in the main
  window, a small self-view of the patient camera, never the decision-support view
  (:func:`~server.media.layout.station_windows`);
* it hears every expert and neither itself nor the appliance's microphone beside it;
* its microphone reaches every expert and stands in for the appliance's microphone,
  which is left out of the mix until the station leaves (never both: echo).

Who speaks is decided from the experts' audio levels, twice a second, with a short
hold so that the main window does not flicker between two voices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from clinicam.i18n import ENGLISH
from server.media.audio_mix import AudioMixer, MixTrack
from server.media.composite import CompositeMixer, CompositeTrack
from server.media.layout import expert_window, station_main

_LOGGER = logging.getLogger(__name__)
SPEAKING_DBFS = -45.0  # louder than this counts as speaking
SPEAKER_CHECK_S = 0.5
SPEAKER_HOLD_S = 1.5  # a new speaker takes the main window only after this long


class ClinicStation:
    """The station of one consultation: its media and what the experts see of it."""

    def __init__(
        self,
        device_id: str,
        experts: Sequence[str],
        mixer: CompositeMixer,
        audio: AudioMixer,
        language: str = ENGLISH,
    ) -> None:
        self.device_id = device_id
        self.language = language  # the site's: the station's composite unless it asks another
        self.name = f"station:{device_id}"
        self.appliance_microphone = f"appliance:{device_id}"
        self._experts = list(experts)
        self._mixer = mixer
        self._audio = audio
        audio.stand_in(self.name, replaces=self.appliance_microphone)
        self.track: CompositeTrack | None = None
        self.mix: MixTrack | None = None
        self.muted = False
        self.private = False
        self.speaker = self._experts[0] if self._experts else ""
        self.pinned: str | None = None  # a window shown large instead of the speaker
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self.track is not None

    def attach(
        self, microphone: Any | None, locale: str | None = None
    ) -> tuple[CompositeTrack, MixTrack]:
        """Take the station's microphone; return its composite (its texts in ``locale``:
        the station's language) and what it hears."""
        self.detach(self.track)
        if microphone is not None:
            self._audio.source(self.name).attach(microphone)
        main = station_main(self.main_window)
        self.track = self._mixer.new_track(main, self.name, locale=locale or self.language)
        self.mix = self._audio.listen(self.name, deaf_to=frozenset({self.appliance_microphone}))
        self._task = asyncio.create_task(self._follow_speaker(), name=f"speaker-{self.name}")
        _LOGGER.info("clinic station of %s joined", self.device_id)
        return self.track, self.mix

    def detach(self, track: CompositeTrack | None) -> None:
        """The station left (only if ``track`` is still its current composite)."""
        if track is None or track is not self.track:
            return
        self._mixer.remove(track)
        self.track = None
        if self.mix is not None:
            self._audio.unlisten(self.mix)
            self.mix = None
        self._audio.source(self.name).detach()  # the appliance's microphone is heard again
        if self._task is not None:
            self._task.cancel()
            self._task = None
        _LOGGER.info("clinic station of %s left", self.device_id)

    @property
    def main_window(self) -> str:
        """What the station shows large: a pinned window (something an expert shared with
        the clinic) or else the expert speaking."""
        return self.pinned or expert_window(self.speaker)

    def pin(self, window: str | None) -> None:
        """Show ``window`` large until unpinned (None: follow the speaker again)."""
        self.pinned = window
        if self.track is not None:
            self._mixer.choose(self.track, station_main(self.main_window))

    def set_privacy(self, private: bool) -> None:
        """Privacy mode on the appliance also silences the station's microphone (R15)."""
        self.private = private
        self._audio.silence(self.name, private)

    def loudest_expert(self) -> str | None:
        """The expert speaking loudest now, if anyone speaks."""
        levels = {
            u: s.level_dbfs for u in self._experts if (s := self._audio.sources.get(u)) is not None
        }
        speaking = {u: level for u, level in levels.items() if level > SPEAKING_DBFS}
        return max(speaking, key=lambda u: speaking[u]) if speaking else None

    async def _follow_speaker(self) -> None:
        candidate, since = self.speaker, time.monotonic()
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(SPEAKER_CHECK_S)
                loudest = self.loudest_expert()
                if loudest is None or loudest == self.speaker:
                    candidate, since = self.speaker, time.monotonic()
                    continue
                if loudest != candidate:
                    candidate, since = loudest, time.monotonic()
                elif time.monotonic() - since >= SPEAKER_HOLD_S and self.track is not None:
                    self.speaker = loudest
                    self._mixer.choose(self.track, station_main(self.main_window))

    def status(self) -> dict[str, Any]:
        """What the experts see of the station."""
        source = self._audio.sources.get(self.name)
        return {
            "connected": self.connected,
            "muted": self.muted,
            "privacy": self.private,
            "level_dbfs": round(source.level_dbfs, 1) if source is not None else None,
        }
