"""The chart's caption in the viewer's language, the model version first and whole at
the sizes the room draws the chart (issue 18): pixels, not strings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageDraw

from clinicam.fonts import draw_text, text_length
from clinicam.i18n import TextList, translate
from models.runtime import DEMO_CARD
from server.media.chart import BACKGROUND_RGB, MUTED_RGB, chart_geometry, relevance_chart_image
from server.relevance.basis import NOT_A_DIAGNOSIS, caption

CARD = json.loads(DEMO_CARD.read_text())
RELEVANCE = {"benign": 0.08, "malignant": 0.92}
# 640×360: half of the 1280×720 composite, what the room draws; 426×240 and 320×180: a
# sub-tile of a three- and a four-expert room (the chart drawn at the tile's size)
SIZES = [(640, 360), (426, 240), (320, 180)]


def _template(text: str, size: int, offset: float) -> np.ndarray:
    """``text`` alone as the chart draws its caption, cropped to its ink."""
    width = int(text_length(text, size)) + 8
    img = Image.new("RGB", (width, size * 3), BACKGROUND_RGB)
    draw_text(ImageDraw.Draw(img), (2 + offset, size), text, size, MUTED_RGB)
    pixels = np.asarray(img, dtype=np.int32)
    ink = np.abs(pixels - np.array(BACKGROUND_RGB)).max(axis=2) > 0
    rows, cols = np.nonzero(ink)
    return pixels[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _best_match(chart: np.ndarray, text: str, size: int) -> int:
    """How far ``text``, drawn alone, is from where it fits best in the chart's bottom
    band: the largest pixel difference (0: drawn there exactly as alone). Found coarsely
    (quarter-pixel offsets, mean difference), then at 1/32 px steps around that place."""
    band = chart[-size * 4 :]
    coarse: list[tuple[float, int, int, float]] = []
    for offset in (0.0, 0.25, 0.5, 0.75):
        template = _template(text, size, offset)
        h, w, _ = template.shape
        if h > band.shape[0] or w > band.shape[1]:
            continue
        windows = sliding_window_view(band, (h, w, 3))[:, :, 0]
        diff = np.abs(windows - template).mean(axis=(2, 3, 4))
        y, x = np.unravel_index(int(diff.argmin()), diff.shape)
        coarse.append((float(diff[y, x]), int(y), int(x), offset))
    if not coarse:
        return 255
    _, y, x, _ = min(coarse)
    best = 255
    for step in range(-48, 48):
        template = _template(text, size, step / 32)
        h, w, _ = template.shape
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                y0, x0 = y + dy, x + dx
                if y0 < 0 or x0 < 0 or y0 + h > band.shape[0] or x0 + w > band.shape[1]:
                    continue
                found = band[y0 : y0 + h, x0 : x0 + w]
                best = min(best, int(np.abs(found - template).max()))
    return best


def _caption() -> TextList:
    return caption(CARD, "relevance-demo-1", "server")


def test_the_caption_reads_in_both_languages() -> None:
    text = _caption()
    assert str(text).startswith("model relevance-demo-1 · decision support — not a diagnosis")
    assert "demonstration model — not for clinical use" in text
    assert str(text).endswith("computed on the server")
    zh = translate(text, "zh-CN")
    assert zh.startswith("模型 relevance-demo-1 · 辅助决策，非诊断 · 演示模型——不用于临床")
    assert "训练数据：Wisconsin diagnostic breast cancer（电子病历）" in zh
    assert "合成数据（照片, 扫描件, CT, 语音）" in zh and zh.endswith("在服务器端计算")
    on_appliance = caption(CARD, "relevance-demo-1", "appliance:cam-1")
    assert translate(on_appliance, "zh-CN").endswith("在设备端计算")
    unknown = translate(caption(None, "relevance-x", "server"), "zh-CN")
    assert unknown.startswith("模型 relevance-x · 本服务器上没有该模型的模型卡")


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_version_is_drawn_whole_at_tile_size(locale: str, width: int, height: int) -> None:
    text = _caption()
    first = translate(text.parts[0], locale)
    chart = np.asarray(
        relevance_chart_image(RELEVANCE, width, height, caption=text, locale=locale),
        dtype=np.int32,
    )
    size = chart_geometry(len(RELEVANCE), width, height).caption_size
    assert size >= 8
    assert _best_match(chart, first, size) <= 8  # the version, unclipped, as drawn alone
    # the check can fail: another version's text is not found in the same chart
    assert _best_match(chart, first.replace("demo-1", "demo-7"), size) > 60
    assert _best_match(chart, first.replace("relevance", "relevanze"), size) > 60


def test_a_caption_too_long_for_the_tile_keeps_its_version() -> None:
    long = TextList(["model relevance-20261207-031500", "x" * 400], " · ")
    chart = np.asarray(relevance_chart_image(RELEVANCE, 320, 180, caption=long), dtype=np.int32)
    size = chart_geometry(2, 320, 180).caption_size
    assert _best_match(chart, "model relevance-20261207-031500", size) <= 8


async def test_the_room_state_gives_each_expert_the_caption_in_their_language(
    tmp_path: Path,
) -> None:
    from server.media.live import FrameFeed
    from server.room import ConsultationRoom
    from tests.records.api_helpers import records_config

    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    room = ConsultationRoom(config.consultations[0], config, config, FrameFeed("live"))
    try:
        room.attach_media("alice", None, None, locale="zh-CN")
        room.attach_media("bob", None, None, locale="en")
        text = _caption()
        basis = {"notice": NOT_A_DIAGNOSIS, "model": {"version": "relevance-demo-1"}}
        room.show_relevance(
            {
                "id": 1,
                "labels": ["benign", "malignant"],
                "values": [0.3, 0.7],
                "caption": text,
                "basis": basis,
            }
        )
        chinese = room.state_for("alice")["relevance"]
        english = room.state_for("bob")["relevance"]
        assert chinese["caption"].startswith("模型 relevance-demo-1 · 辅助决策，非诊断")
        assert chinese["basis"]["notice"] == "辅助决策，非诊断"
        assert english["caption"] == str(text)
    finally:
        await room.close()
