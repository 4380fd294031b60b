"""Chinese names in the video: drawn as written, not as "?" (issue 17, item 2).

The label of a composite tile is compared with the same text drawn by Noto Sans CJK
directly; a mixed name ("Dr. 张 — Zoë") keeps every character; fitting a long Chinese
name shortens it by its real width.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from clinicam.fonts import NOTO_SANS_CJK, draw_text, font_chain, runs, text_length
from server.media.compositor import Compositor, TileSource, fit_text, safe_text
from server.media.layout import LIVE, compute_layout
from tests.server.test_compositor import WINDOWS, rgb, sources

SIZE = 20


@pytest.fixture(scope="module")
def noto() -> ImageFont.FreeTypeFont:
    found = [(p, i) for p, i in NOTO_SANS_CJK if p.exists()]
    assert found, "fonts-noto-cjk is missing: ./install.sh installs it for every role"
    path, index = found[0]
    return ImageFont.truetype(str(path), SIZE, index=index)


def _drawn(text: str, face: ImageFont.FreeTypeFont | None = None) -> np.ndarray:
    """``text`` drawn on a small canvas: by ``face`` alone, or by the font chain."""
    img = Image.new("L", (12 * SIZE, 3 * SIZE), 0)
    draw = ImageDraw.Draw(img)
    if face is None:
        draw_text(draw, (4, 4), text, SIZE, 255)
    else:
        baseline = 4 + font_chain(SIZE)[0].getmetrics()[0]
        draw.text((4, baseline), text, fill=255, font=face, anchor="ls")
    return np.asarray(img)


def test_a_chinese_name_is_drawn_with_the_cjk_font(noto: ImageFont.FreeTypeFont) -> None:
    name = "张医生"
    assert safe_text(name, SIZE) == name  # no "?" stand-ins
    drawn = _drawn(name)
    assert drawn.max() == 255 and (drawn > 128).sum() > 50  # ink, not an empty box
    assert np.array_equal(drawn, _drawn(name, noto))  # exactly Noto's glyphs
    assert not np.array_equal(drawn, _drawn("???", noto))


def test_a_mixed_name_keeps_every_character() -> None:
    name = "Dr. 张 — Zoë"
    assert safe_text(name, SIZE) == name
    pieces = runs(name, SIZE)
    assert [run for run, _ in pieces] == ["Dr. ", "张", " — Zoë"]
    assert pieces[0][1] is pieces[2][1] is font_chain(SIZE)[0]  # Latin stays in DejaVu
    assert text_length(name, SIZE) == pytest.approx(
        sum(face.getlength(run) for run, face in pieces)
    )


def test_a_long_chinese_name_is_shortened_by_its_width() -> None:
    name = "山区诊所远程会诊中心"
    four = text_length("山区诊所", SIZE) + text_length("...", SIZE)
    fitted = fit_text(name, SIZE, four + 1)
    assert fitted == "山区诊所..."
    assert text_length(fitted, SIZE) <= four + 1


def test_a_composite_label_in_chinese_shows_its_glyphs() -> None:
    layout = compute_layout(WINDOWS, LIVE)
    rect = layout.rect("expert:ada")
    assert rect is not None
    labelled = {}
    for label in ("张医生", "???"):
        src = sources()
        src["expert:ada"] = TileSource(src["expert:ada"].frame, 0.1, label)
        labelled[label] = rgb(Compositor().compose(layout, src))
    band = (slice(rect.y, rect.y + rect.h // 4), slice(rect.x, rect.x + rect.w))
    chinese, stand_ins = labelled["张医生"][band], labelled["???"][band]
    assert np.abs(chinese - stand_ins).max() > 100  # the glyphs, not the stand-ins
