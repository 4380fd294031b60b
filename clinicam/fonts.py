"""Text drawn into video: a chain of fonts, so a name in Chinese renders as written.

DejaVu Sans (Debian's fonts-dejavu-core) draws Latin, Greek and Cyrillic names with
their accents and dashes ("Dr. Zoë Müller — Hill Clinic"); Noto Sans CJK SC (Debian's
fonts-noto-cjk, Simplified Chinese forms first) draws Chinese, Japanese and Korean
("张医生", "山区诊所"). Both are installed by install.sh. Each character is drawn by the
first font of the chain that has it; where none has it, callers put a stand-in
(:func:`server.media.compositor.safe_text`). Where neither font is installed, Pillow's own
font is the whole chain.

Text is laid out in runs (consecutive characters drawn by the same font), on a common
baseline; widths are the sum of the runs' widths, so fitting a label ("…") works on CJK
widths too. A text drawn wholly by the first font is drawn exactly as that font alone
would draw it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

Fill = int | tuple[int, ...]

DEJAVU_SANS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
)
# Debian/Raspberry Pi OS's fonts-noto-cjk: a collection; face 2 is Simplified Chinese.
NOTO_SANS_CJK = (
    (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"), 2),
    (Path("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc"), 2),
)
_NOT_A_CHAR = "\uffff"  # drawn as the font's "missing glyph" box


def _installed() -> list[tuple[Path, int]]:
    chain: list[tuple[Path, int]] = []
    for family in ([(p, 0) for p in DEJAVU_SANS], list(NOTO_SANS_CJK)):
        found = next(((p, i) for p, i in family if p.exists()), None)
        if found is not None:
            chain.append(found)
    return chain


@functools.lru_cache(maxsize=64)
def font_chain(size: int) -> tuple[ImageFont.FreeTypeFont, ...]:
    """The fonts at ``size`` px, in the order they are asked for a character."""
    chain = tuple(ImageFont.truetype(str(p), size, index=i) for p, i in _installed())
    if chain:
        return chain
    face = ImageFont.load_default(size=size)
    if not isinstance(face, ImageFont.FreeTypeFont):
        raise RuntimeError("Pillow was built without FreeType: no scalable default font")
    return (face,)


def ui_font(size: int) -> ImageFont.FreeTypeFont:
    """The first font of the chain at ``size`` px (its metrics set the line height)."""
    return font_chain(size)[0]


def _render(face: ImageFont.FreeTypeFont, size: int, char: str) -> bytes:
    img = Image.new("L", (2 * size, 2 * size), 0)
    ImageDraw.Draw(img).text((0, 0), char, fill=255, font=face)
    return img.tobytes()


@functools.lru_cache(maxsize=8192)
def _face_index(size: int, char: str) -> int | None:
    """Which font of the chain draws ``char`` (None: none of them)."""
    if char.isspace():
        return 0
    for index, face in enumerate(font_chain(size)):
        if _render(face, size, char) != _render(face, size, _NOT_A_CHAR):
            return index
    return None


def has_glyph(size: int, char: str) -> bool:
    """Whether some font of the chain draws ``char`` (rather than a "missing glyph" box)."""
    return _face_index(size, char) is not None


def runs(text: str, size: int) -> list[tuple[str, ImageFont.FreeTypeFont]]:
    """``text`` cut where the drawing font changes; characters no font has stay with the
    first font (callers replace them first)."""
    chain = font_chain(size)
    out: list[tuple[str, ImageFont.FreeTypeFont]] = []
    current, start = -1, 0
    for pos, char in enumerate(text):
        index = _face_index(size, char)
        index = 0 if index is None else index
        if index != current:
            if pos > start:
                out.append((text[start:pos], chain[current]))
            current, start = index, pos
    if len(text) > start:
        out.append((text[start:], chain[current]))
    return out


def text_length(text: str, size: int) -> float:
    """The advance width of ``text`` in px, font by font."""
    return sum(face.getlength(run) for run, face in runs(text, size))


def draw_text(
    draw: ImageDraw.ImageDraw, xy: Sequence[float], text: str, size: int, fill: Fill
) -> None:
    """Draw ``text`` with its top-left at ``xy`` (as ``draw.text`` does), each character in
    the first font that has it, all on the first font's baseline."""
    pieces = runs(text, size)
    if not pieces:
        return
    if len(pieces) == 1 and pieces[0][1] is ui_font(size):
        draw.text((xy[0], xy[1]), text, fill=fill, font=pieces[0][1])
        return
    x, baseline = float(xy[0]), float(xy[1]) + ui_font(size).getmetrics()[0]
    for run, face in pieces:
        draw.text((x, baseline), run, fill=fill, font=face, anchor="ls")
        x += face.getlength(run)
