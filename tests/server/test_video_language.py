"""Text drawn into video speaks each viewer's language (issue 17).

A viewer reading Chinese sees "等待中…" where one reading English sees "waiting…", the
chart's title in Chinese, Chinese tile labels; their composites are separate encodes
while viewers of one language still share theirs. The appliance's privacy card is in
the clinic's language. Pixels are checked against the same text drawn with the font
chain directly (and its Chinese characters against Noto Sans CJK alone).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from clinicam.fonts import NOTO_SANS_CJK, draw_text, runs, text_length, ui_font
from clinicam.i18n import CHINESE, ENGLISH, _
from firmware.media.privacy import BACKGROUND_RGB as CARD_RGB
from firmware.media.privacy import TEXT_RGB as CARD_TEXT_RGB
from firmware.media.privacy import privacy_frame, privacy_text
from server.config import LiveViewConfig
from server.media import chart
from server.media.composite import CompositeMixer
from server.media.compositor import (
    EMPTY_TILE_Y,
    LABEL_MARGIN,
    TEXT_Y,
    Compositor,
    TileSource,
    fit_text,
)
from server.media.layout import LIVE, RELEVANCE, compute_layout, standard_windows
from server.media.localized import PerLocale
from tests.server.test_compositor import WINDOWS, sources

RELEVANCE_VALUES = {"benign": 0.2, "malignant": 0.8}


def _luma(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="yuv420p")[: frame.height].astype(np.int32)


def _noto(size: int) -> ImageFont.FreeTypeFont:
    found = [(p, i) for p, i in NOTO_SANS_CJK if p.exists()]
    assert found, "fonts-noto-cjk is missing: ./install.sh installs it for every role"
    path, index = found[0]
    return ImageFont.truetype(str(path), size, index=index)


def _cjk_drawn_by_noto(text: str, size: int) -> None:
    """Every Chinese character of ``text`` is drawn by Noto Sans CJK (not a stand-in)."""
    noto = _noto(size).getname()
    cjk = [
        (run, face) for run, face in runs(text, size) if any("\u4e00" <= c <= "\u9fff" for c in run)
    ]
    assert cjk, text
    assert all(face.getname() == noto for _run, face in cjk)


def _notice_expected(text: str, size: int, max_width: int) -> tuple[np.ndarray, int, int]:
    """The notice patch as the compositor blends it on an empty tile: luma and its size."""
    ascent, descent = ui_font(size).getmetrics()
    w = min(max_width, int(text_length(text, size)) + 2 * LABEL_MARGIN)
    h = ascent + descent + LABEL_MARGIN
    w, h = w + w % 2, h + h % 2
    img = Image.new("L", (w, h), 0)
    draw_text(ImageDraw.Draw(img), (LABEL_MARGIN, LABEL_MARGIN // 2), text, size, 255)
    alpha = np.asarray(img, dtype=np.int32)
    box = (EMPTY_TILE_Y >> 1) + 8
    return (box * (255 - alpha) + TEXT_Y * alpha + 127) // 255, w, h


@pytest.mark.parametrize(("locale", "text"), [(CHINESE, "等待中…"), (ENGLISH, "waiting…")])
def test_the_waiting_notice_is_in_the_viewers_language(locale: str, text: str) -> None:
    layout = compute_layout(WINDOWS, LIVE)
    src = sources()
    src[LIVE] = TileSource(None, float("inf"), "")  # no picture yet: "waiting…"
    luma = _luma(Compositor().compose(layout, src, locale=locale))
    rect = layout.rect(LIVE)
    assert rect is not None
    size = min(28, max(10, rect.h // 8))
    expected, w, h = _notice_expected(text, size, rect.w - 2 * LABEL_MARGIN)
    x, y = rect.x + (rect.w - w) // 4 * 2, rect.y + (rect.h - h) // 4 * 2
    assert np.array_equal(luma[y : y + h, x : x + w], expected)
    if locale == CHINESE:
        _cjk_drawn_by_noto(text, size)
        other, _w, _h = _notice_expected("waiting…", size, rect.w - 2 * LABEL_MARGIN)
        region = luma[y : y + other.shape[0], x : x + other.shape[1]]
        assert not np.array_equal(region, other)  # not the English notice


def _title_band(frame: av.VideoFrame, locale: str) -> tuple[np.ndarray, np.ndarray]:
    """The chart's title rows, and the same rows with only the title drawn by the chain."""
    width, height = frame.width, frame.height
    geo = chart.chart_geometry(len(RELEVANCE_VALUES), width, height)
    pad = max(4, height // 40)
    title = fit_text(chart.in_locale(chart.TITLE, locale), geo.title_size, width - 2 * pad)
    img = Image.new("RGB", (width, height), chart.BACKGROUND_RGB)
    x = width / 2 - text_length(title, geo.title_size) / 2
    draw_text(
        ImageDraw.Draw(img),
        (x, pad + chart.label_band(height)),
        title,
        geo.title_size,
        chart.TEXT_RGB,
    )
    expected = av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24").reformat(
        format="yuv420p"
    )
    rows = slice(0, chart.label_band(height) + pad + round(geo.title_size * 1.3))
    return _luma(frame)[rows], _luma(expected)[rows]


def test_the_chart_title_and_categories_are_in_the_viewers_language() -> None:
    frames = {
        loc: chart.render_relevance_chart(RELEVANCE_VALUES, 640, 360, caption="", locale=loc)
        for loc in (CHINESE, ENGLISH)
    }
    assert chart.in_locale(chart.TITLE, CHINESE) == "疾病相关性——辅助决策，非诊断"
    assert chart.in_locale("malignant", CHINESE) == "恶性"
    assert chart.in_locale("eczema", CHINESE) == "eczema"  # a label the catalogue lacks
    for loc, frame in frames.items():
        drawn, expected = _title_band(frame, loc)
        assert np.array_equal(drawn, expected), loc
        assert (drawn > 150).sum() > 100  # ink: the title is there
    chinese, _ = _title_band(frames[CHINESE], CHINESE)
    english, _ = _title_band(frames[ENGLISH], ENGLISH)
    assert not np.array_equal(chinese, english)
    _cjk_drawn_by_noto("疾病相关性——辅助决策，非诊断", chart.chart_geometry(2, 640, 360).title_size)


def _chart_sources(localized: bool) -> dict[str, TileSource]:
    per_locale = PerLocale(
        lambda loc: chart.render_relevance_chart(RELEVANCE_VALUES, 640, 360, caption="", locale=loc)
    )
    src = sources()
    label = _("Decision support — not a diagnosis")
    if localized:
        src[RELEVANCE] = TileSource(per_locale(ENGLISH), 0.0, label, localized=per_locale)
    else:
        src[RELEVANCE] = TileSource(per_locale(CHINESE), 0.0, "辅助决策，非诊断")
    return src


def test_a_chinese_viewers_composite_shows_the_chinese_chart_and_label() -> None:
    layout = compute_layout(WINDOWS, RELEVANCE)
    rect = layout.rect(RELEVANCE)
    assert rect is not None
    tile = (slice(rect.y, rect.y + rect.h), slice(rect.x, rect.x + rect.w))
    chinese = _luma(Compositor().compose(layout, _chart_sources(True), locale=CHINESE))[tile]
    english = _luma(Compositor().compose(layout, _chart_sources(True), locale=ENGLISH))[tile]
    # exactly what a composite of the Chinese chart with the Chinese label looks like
    reference = _luma(Compositor().compose(layout, _chart_sources(False), locale=CHINESE))[tile]
    assert np.array_equal(chinese, reference)
    assert np.abs(chinese - english).max() > 100


def _mixer() -> CompositeMixer:
    config = LiveViewConfig(width=320, height=180, fps=5)
    windows = standard_windows(["ada", "bob"])
    waiting = {w: TileSource(None, float("inf"), w) for w in windows}
    return CompositeMixer(
        config, lambda main: compute_layout(windows, main, 320, 180), lambda: waiting
    )


def _decode(mixer: CompositeMixer, variants: list[str]) -> dict[str, np.ndarray]:
    packets: dict[str, list[Any]] = {v: [] for v in variants}
    for tick in range(6):
        for variant, out in mixer._tick(variants, mixer._sources(), tick * 18000).items():
            packets[variant] += [packet for packet, _trace in out]
    pictures = {}
    for variant, stream in packets.items():
        codec = av.CodecContext.create("h264", "r")
        frames = [f for p in stream for f in codec.decode(p)]
        assert frames, variant
        pictures[variant] = frames[-1].to_ndarray(format="gray").astype(int)
    return pictures


async def test_viewers_of_two_languages_get_two_encodes_of_one_language_share_one() -> None:
    mixer = _mixer()
    try:
        ada = mixer.new_track(LIVE, "ada", locale=CHINESE)
        bob = mixer.new_track(LIVE, "bob", locale=ENGLISH)
        cyd = mixer.new_track(LIVE, "cyd", locale=CHINESE)
        assert mixer._variant(ada) != mixer._variant(bob)
        assert mixer._variant(ada) == mixer._variant(cyd)  # same language, same encode
        variants = sorted({mixer._variant(t) for t in (ada, bob, cyd)})
        assert len(variants) == 2
        pictures = _decode(mixer, variants)
        chinese, english = pictures[mixer._variant(ada)], pictures[mixer._variant(bob)]
        assert np.abs(chinese - english).max() > 60  # "等待中…" is not "waiting…"
    finally:
        await mixer.close()


async def test_the_room_draws_each_experts_composite_in_their_language(tmp_path: Any) -> None:
    from server.media.live import FrameFeed
    from server.room import ConsultationRoom
    from tests.records.api_helpers import records_config

    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    room = ConsultationRoom(config.consultations[0], config, config, FrameFeed("live"))
    try:
        alice, _ = room.attach_media("alice", None, None, locale=CHINESE)
        bob, _ = room.attach_media("bob", None, None)  # no language asked: the site's
        assert (alice.locale, bob.locale) == (CHINESE, config.language)
        assert room.mixer._variant(alice) != room.mixer._variant(bob)
        station, _ = room.station.attach(None, CHINESE)
        assert station.locale == CHINESE
        labels = room.sources()
        assert str(labels["relevance"].label) == "Decision support — not a diagnosis"
        room.show_relevance(
            {"id": 1, "labels": ["benign", "malignant"], "values": [0.3, 0.7], "caption": "demo"}
        )
        shown = room.sources()[RELEVANCE]
        assert shown.localized is not None
        assert shown.frame_in(CHINESE) is not shown.frame_in(ENGLISH)
        assert shown.frame_in(CHINESE) is shown.frame_in(CHINESE)  # drawn once, kept
    finally:
        await room.close()


def test_the_appliance_privacy_card_is_in_chinese_by_default() -> None:
    width, height = 1280, 720
    size = height // 14
    text = privacy_text(size, CHINESE)
    assert text == "隐私模式——摄像头已暂停"
    assert privacy_text(size, ENGLISH) == "Privacy mode — camera paused"
    _cjk_drawn_by_noto(text, size)
    img = Image.new("RGB", (width, height), CARD_RGB)
    ascent, descent = ui_font(size).getmetrics()
    xy = ((width - text_length(text, size)) / 2, (height - (ascent + descent)) / 2)
    draw_text(ImageDraw.Draw(img), xy, text, size, CARD_TEXT_RGB)
    expected = av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24").reformat(
        format="yuv420p"
    )
    card = _luma(privacy_frame(width, height))
    assert np.array_equal(card, _luma(expected))
    assert not np.array_equal(card, _luma(privacy_frame(width, height, ENGLISH)))


async def test_an_offer_gets_a_composite_in_the_readers_language(tmp_path: Any) -> None:
    """Through the server: the expert's stored choice, else the offer's Accept-Language;
    the clinic station's Accept-Language, else the site's language."""
    from aiortc import RTCPeerConnection

    from server.state import STATE
    from tests.archive.test_tap import h264_only
    from tests.records.api_helpers import PASSWORD, loopback_media_server, open_user
    from tests.server.test_clinic_station import _offer

    server, config = await loopback_media_server(tmp_path)
    state = server.app[STATE]
    cid = config.consultations[0].id
    alice, bob = await open_user(server, "alice"), await open_user(server, "bob")
    peers = [RTCPeerConnection(config.ice.rtc_configuration()) for _ in range(3)]
    for pc in peers:
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly").setCodecPreferences(h264_only())
    try:
        async with bob.http.post(
            bob.url("/api/locale"), json={"locale": "zh-CN"}, headers={"X-CSRF-Token": bob.csrf}
        ) as r:
            assert r.status == 200  # bob's own choice: Chinese, whatever his browser says
        ws = await alice.http.ws_connect(alice.url(f"/api/consultations/{cid}/ws"))
        for user, pc, accept in ((alice, peers[0], "zh-CN,zh;q=0.9"), (bob, peers[1], "en")):
            status, body = await _offer(
                pc,
                user.http,
                user.url(f"/api/consultations/{cid}/webrtc"),
                headers={"X-CSRF-Token": user.csrf, "Accept-Language": accept},
            )
            assert status == 200, body
        room = state.rooms.get(config.consultations[0])
        tracks = {u: m.track for u, m in room.members.items()}
        assert tracks["alice"] is not None and tracks["alice"].locale == CHINESE
        assert tracks["bob"] is not None and tracks["bob"].locale == CHINESE
        assert room.mixer._variant(tracks["alice"]) == room.mixer._variant(tracks["bob"])

        async with aiohttp.ClientSession() as http:
            status, body = await _offer(
                peers[2],
                http,
                str(server.make_url("/api/appliances/cam-1/station/webrtc")),
                headers={"Authorization": f"Bearer {PASSWORD}", "Accept-Language": "zh-CN"},
            )
        assert status == 200, body
        assert room.station.track is not None and room.station.track.locale == CHINESE
        await ws.close()
    finally:
        for pc in peers:
            await pc.close()
        for user in (alice, bob):
            await user.http.close()
        await server.close()


def test_a_shared_items_caption_is_drawn_in_each_language() -> None:
    from types import SimpleNamespace

    from clinicam.i18n import Text, translate
    from server.presenting import CATEGORY_NAMES, Window, _draw
    from server.records.store import EMR

    caption = _("{title} — shared by {who}", title=Text(CATEGORY_NAMES[EMR]), who="张医生")
    assert translate(caption, CHINESE) == "电子病历条目 — 由 张医生 共享"
    row = SimpleNamespace(fields={"主诉": "咳嗽三天"})  # the record's own words, as written
    live = LiveViewConfig(width=640, height=360, fps=5)
    frames = _draw(EMR, row, None, Window(), caption, live)
    assert set(frames) == {CHINESE, ENGLISH}
    chinese, english = _luma(frames[CHINESE]), _luma(frames[ENGLISH])
    band = int(360 * 0.9)  # the caption line at the bottom
    assert np.array_equal(chinese[:band], english[:band])  # the entry itself: the same
    assert np.abs(chinese[band:] - english[band:]).max() > 100  # the caption: not the same
