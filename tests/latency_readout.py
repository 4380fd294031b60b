"""The room's latency readout against the pixel stamp, read in the page itself.

Shared by ``tests/e2e/test_latency_readout.py`` and ``bench/latency_readout.py``. The
simulated appliance burns each frame's capture time (ms modulo 2^24) into its pixels
(``sim.stamp_time``, firmware/hardware/timestamp.py); :data:`PIXEL_READER_JS` reads that
barcode off every frame the room's <video> presents and subtracts it from the frame's
display time (``requestVideoFrameCallback``'s ``expectedDisplayTime``), and records each
text the readout (``#latency``) shows and when. The appliance and the browser must share
a clock (one machine): the pixel measurement needs no clock offset.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

from tests.helpers import percentile

PIXEL_READER_JS = """([w, h]) => {
  // Each presented frame: the barcode in its live tile against when it is shown.
  window.pixelFrames = [];
  window.readouts = [];
  const v = document.getElementById('live');
  const c = document.createElement('canvas');
  const g = c.getContext('2d', { willReadFrequently: true });
  const onFrame = (_now, md) => {
    v.requestVideoFrameCallback(onFrame);
    const tile = room && room.tiles.find((t) => t[0] === 'live');
    if (!tile || !v.videoWidth) return;
    const [, tx, ty, tw, th] = tile;
    const k = Math.min(tw / w, th / h), cw = w * k, ch = h * k;
    const x0 = tx + (tw - cw) / 2, y0 = ty + (th - ch) / 2, b = cw / 40;
    const sx = v.videoWidth / room.size[0], sy = v.videoHeight / room.size[1];
    const stripW = Math.ceil(24 * b * sx), stripY = (y0 + ch - b / 2) * sy;
    c.width = stripW; c.height = 1;
    g.drawImage(v, x0 * sx, stripY, stripW, 1, 0, 0, stripW, 1);
    const px = g.getImageData(0, 0, stripW, 1).data;
    let value = 0;
    for (let i = 0; i < 24; i++) {
      const o = 4 * Math.floor((i + 0.5) * b * sx);
      value = value * 2 + ((px[o] + px[o + 1] + px[o + 2]) / 3 > 128 ? 1 : 0);
    }
    const shown = performance.timeOrigin + md.expectedDisplayTime;
    const m = 2 ** 24;
    const ms = ((Math.floor(shown) % m) - value + m) % m + (shown % 1);
    if (ms < 60000) window.pixelFrames.push({ rtp: md.rtpTimestamp, ms, shown });
  };
  v.requestVideoFrameCallback(onFrame);
  // What the readout says, each time it changes, and when.
  const readout = document.getElementById('latency');
  new MutationObserver(() => {
    const at = performance.timeOrigin + performance.now();
    window.readouts.push({ text: readout.textContent, at });
  }).observe(readout, { childList: true, characterData: true, subtree: true });
}"""


def compare(
    pixels: list[dict[str, float]], frames: list[dict[str, float]], readouts: list[dict[str, Any]]
) -> dict[str, Any]:
    """The page's readings (``latency.frames()``) and readouts against the pixel stamp.

    ``frame_diffs_ms``: readout − pixel for each frame read both ways (matched by RTP
    timestamp); ``second_diffs_ms``: each readout's number − the pixel median over the
    second before it (readouts with fewer than five pixel frames behind them left out).
    """
    by_rtp = {p["rtp"]: p for p in pixels}
    matched = [(f["ms"], by_rtp[f["rtp"]]["ms"]) for f in frames if f["rtp"] in by_rtp]
    seconds: list[tuple[int, float]] = []
    for shown in readouts:
        found = re.fullmatch(r"latency (\d+) ms", shown["text"])
        window = [p["ms"] for p in pixels if shown["at"] - 1000 <= p["shown"] <= shown["at"]]
        if found is not None and len(window) >= 5:
            seconds.append((int(found[1]), statistics.median(window)))
    frame_diffs = [ours - pixel for ours, pixel in matched]
    return {
        "matched": matched,
        "frame_diffs_ms": frame_diffs,
        "second_diffs_ms": [ours - pixel for ours, pixel in seconds],
        "readout_p50_ms": statistics.median([o for o, _ in seconds]) if seconds else None,
        "pixel_p50_ms": statistics.median([p["ms"] for p in pixels]) if pixels else None,
        "frame_diff_p95_abs_ms": percentile([abs(d) for d in frame_diffs], 95)
        if frame_diffs
        else None,
    }
