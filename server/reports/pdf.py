"""The report as PDF (reportlab), in the reader's language, rendered from a signed envelope.

Every text is set in the built-in CID font ``STSong-Light`` (Adobe's Song for
Simplified Chinese, with Latin glyphs), so Chinese findings render whatever the
reader's language; paragraphs wrap CJK-style. Each page's footer names the signer,
the signing time, the key id and the envelope's digest, so a printed page can be
matched with the signed file (``clinicam report verify``).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Image, Paragraph, SimpleDocTemplate, Spacer, Table

from clinicam.i18n import _, translate
from server.reports.envelope import Verified

_LOGGER = logging.getLogger(__name__)

FONT = "STSong-Light"
MAX_IMAGE_BYTES = 8 * 1024 * 1024
ImageOf = Callable[[str], bytes | None]


def _font() -> str:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    return FONT


def _styles() -> dict[str, ParagraphStyle]:
    font = _font()
    body = ParagraphStyle("body", fontName=font, fontSize=10, leading=14, wordWrap="CJK")
    return {
        "title": ParagraphStyle("title", parent=body, fontSize=16, leading=22, spaceAfter=6),
        "h": ParagraphStyle("h", parent=body, fontSize=12, leading=17, spaceBefore=8),
        "body": body,
        "small": ParagraphStyle("small", parent=body, fontSize=8, leading=11),
        "notice": ParagraphStyle(
            "notice", parent=body, textColor=colors.HexColor("#8a3b00"), fontSize=10
        ),
    }


def _para(text: str | None, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text or "—").replace("\n", "<br/>"), style)


def _in(locale: str, texts: Any) -> str:
    if isinstance(texts, Mapping):
        return str(texts.get(locale) or texts.get("en") or "")
    return str(texts or "")


def _person(p: Any) -> str:
    if not isinstance(p, Mapping):
        return "—"
    name, user = p.get("display_name"), p.get("username")
    return f"{name} ({user})" if name and name != user else str(user)


def _snapshot(item: Mapping[str, Any], image_of: ImageOf | None) -> Flowable | None:
    if image_of is None:
        return None
    data = image_of(str(item.get("sha256", "")))
    if data is None or len(data) > MAX_IMAGE_BYTES:
        return None
    width, height = int(item.get("width") or 1), int(item.get("height") or 1)
    scale = min(80 * mm / width, 60 * mm / height)
    try:
        return Image(io.BytesIO(data), width=width * scale, height=height * scale)
    except (OSError, ValueError):  # an image reportlab cannot read: listed, not drawn
        return None


def render_pdf(verified: Verified, locale: str, image_of: ImageOf | None = None) -> bytes:
    """The PDF of a verified envelope in ``locale`` (en or zh-CN)."""
    envelope = verified.envelope or {}
    c: Mapping[str, Any] = envelope.get("content", {})

    def tr(text: str) -> str:
        return translate(text, locale)

    s = _styles()
    out: list[Flowable] = []
    consult = c.get("consultation", {})
    patient = c.get("patient", {})
    parts = c.get("participants", {})
    times = c.get("times", {})
    out.append(_para(tr(_("Consultation report")), s["title"]))
    out.append(_para(f"{consult.get('title', '')} · {consult.get('id', '')}", s["body"]))
    out.append(
        _para(
            tr(_("Version {version}", version=envelope.get("version", "?")))
            + (
                " — " + tr(_("replaces {digest}", digest=str(envelope.get("supersedes"))[:16]))
                if envelope.get("supersedes")
                else ""
            ),
            s["small"],
        )
    )
    rows = [
        [tr(_("Patient")), f"{patient.get('identifier', '')} — {patient.get('name', '')}"],
        [tr(_("Chair")), _person(parts.get("chair"))],
        [tr(_("Clinic")), str(parts.get("clinic") or "—")],
        [
            tr(_("Scheduled")),
            f"{times.get('scheduled_start') or '—'} – {times.get('scheduled_end') or '—'}",
        ],
        [tr(_("Started")), str(times.get("started_at") or "—")],
        [tr(_("Ended")), str(times.get("ended_at") or "—")],
    ]
    for expert in parts.get("experts", []):
        joined = tr(_("joined")) if expert.get("joined") else tr(_("invited, did not join"))
        rows.append([tr(_("Expert")), f"{_person(expert)} · {joined}"])
    table = Table(
        [[_para(a, s["small"]), _para(b, s["body"])] for a, b in rows],
        colWidths=[35 * mm, 135 * mm],
    )
    out += [Spacer(1, 4 * mm), table]
    for heading, key in (
        (tr(_("Reason")), "reason"),
        (tr(_("Findings")), "findings"),
        (tr(_("Recommendation")), "recommendation"),
        (tr(_("Shared notes")), "notes"),
    ):
        out += [_para(heading, s["h"]), _para(str(c.get(key) or ""), s["body"])]
    out.append(_para(tr(_("Confirmed diagnosis")), s["h"]))
    diagnoses = c.get("diagnoses", [])
    if not diagnoses:
        out.append(_para(tr(_("none confirmed")), s["body"]))
    for d in diagnoses:
        out.append(
            _para(
                tr(
                    _(
                        "{label}, confirmed by {who} at {at}",
                        label=d.get("label"),
                        who=d.get("confirmed_by"),
                        at=d.get("confirmed_at"),
                    )
                )
                + (f" — {d['note']}" if d.get("note") else ""),
                s["body"],
            )
        )
    relevance = c.get("relevance", {})
    out.append(_para(tr(_("Relevance (decision support)")), s["h"]))
    out.append(_para(_in(locale, relevance.get("notice")), s["notice"]))
    result = relevance.get("result")
    if result:
        values = ", ".join(
            f"{k} {float(v) * 100:.0f}%" for k, v in result.get("values", {}).items()
        )
        out.append(_para(values, s["body"]))
        out.append(_para(_in(locale, result.get("caption")), s["small"]))
        trained = _in(locale, result.get("training_data"))
        if trained:
            out.append(_para(tr(_("Model trained on: {data}", data=trained)), s["small"]))
    else:
        out.append(_para(tr(_("no relevance result was computed")), s["body"]))
    snapshots = c.get("snapshots", [])
    if snapshots:
        out.append(_para(tr(_("Snapshots")), s["h"]))
        for item in snapshots:
            picture = _snapshot(item, image_of)
            if picture is not None:
                out.append(picture)
            out.append(_para(f"#{item.get('id')} · {item.get('taken_at') or ''}", s["small"]))
    out.append(_para(tr(_("Who opened what during the call")), s["h"]))
    lines = c.get("audit", [])
    if not lines:
        out.append(_para(tr(_("no entries")), s["small"]))
    for line in lines:
        what = " ".join(f"{k}={v}" for k, v in line.get("what", {}).items())
        text = f"{line.get('at')} · {line.get('actor')} · {line.get('action')} {what}"
        out.append(_para(text, s["small"]))
    signer = envelope.get("signer", {})
    footer = tr(
        _(
            "Signed by {signer} at {at} · key {key}",
            signer=_person(signer),
            at=envelope.get("signed_at", ""),
            key=envelope.get("key_id", ""),
        )
    )
    valid = tr(_("signature valid")) if verified.valid else tr(_("SIGNATURE INVALID"))
    sealed = tr(_("envelope SHA-256 {digest}", digest=verified.digest))

    def page(canvas: Canvas, _doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(_font(), 7)
        canvas.drawString(15 * mm, 10 * mm, footer[:160])
        canvas.drawString(15 * mm, 6 * mm, f"{valid} · {sealed}")
        canvas.restoreState()

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=20 * mm,
        title=tr(_("Consultation report")),
        author=_person(signer),
    )
    doc.build(out, onFirstPage=page, onLaterPages=page)
    return buffer.getvalue()
