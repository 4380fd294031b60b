"""A still frame drawn in each viewer's language, each language drawn once, when first shown.

The relevance chart, the idle presentation card and a shared item's caption carry words;
two experts reading different languages see the same picture with different words.
A :class:`PerLocale` draws the frame of a language the first time a composite in that
language asks for it (from the compositor's thread) and keeps it; something new to show
is a new :class:`PerLocale`, so an old frame is never shown for new content.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import av

from clinicam.i18n import normalize


class PerLocale:
    """``locale → frame``, drawn by ``draw`` on first use and kept."""

    def __init__(self, draw: Callable[[str], av.VideoFrame]) -> None:
        self._draw = draw
        self._frames: dict[str, av.VideoFrame] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, frames: PerLocale | Mapping[str, av.VideoFrame] | av.VideoFrame) -> PerLocale:
        """Frames drawn beforehand (one per language, or one for all); a language without
        one gets the first of them."""
        if isinstance(frames, PerLocale):
            return frames
        ready = dict(frames) if isinstance(frames, Mapping) else {"": frames}
        if not ready:
            raise ValueError("no frames")
        first = next(iter(ready.values()))
        return cls(lambda locale: ready.get(locale, first))

    def __call__(self, locale: str) -> av.VideoFrame:
        locale = normalize(locale) or locale
        frame = self._frames.get(locale)
        if frame is None:
            with self._lock:
                frame = self._frames.get(locale)
                if frame is None:
                    frame = self._frames[locale] = self._draw(locale)
        return frame

    @property
    def drawn(self) -> tuple[str, ...]:
        """The languages drawn so far."""
        return tuple(self._frames)
