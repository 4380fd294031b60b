"""Two languages, one catalogue: what a person reads, in Simplified Chinese or English.

Every user-facing string in the Python code is written in English and marked with
:func:`_` (``_("patient {identifier} not found", identifier=pid)``). ``_`` returns a
:class:`Text`: a ``str`` holding the English rendering (so logs, tests and code that
only needs *a* string keep working) that also remembers its message id and parameters,
so the place that knows the reader's language renders it again with
:func:`translate`: the HTTP error middleware (the request's locale), the compositor
(each viewer's locale), the CLI (the technician's ``LANG``).

The Chinese catalogue is a gettext ``.po`` file (``clinicam/locale/zh_CN/LC_MESSAGES/
clinicam.po``) read with Babel; English needs none (the message id is the English
text). ``scripts/i18n_check.py`` (run in CI) finds marked strings missing from the
catalogue and user-facing strings that bypass it.
"""

from __future__ import annotations

import functools
import os
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from babel.messages.pofile import read_po

ENGLISH = "en"
CHINESE = "zh-CN"
LOCALES: tuple[str, ...] = (CHINESE, ENGLISH)
DEFAULT_LOCALE = ENGLISH
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "clinicam"
_QUALITY = re.compile(r"^\s*q\s*=\s*([0-9.]+)\s*$")


def _render(template: str, params: Mapping[str, Any], locale: str) -> str:
    values = {k: translate(v, locale) if isinstance(v, Text) else v for k, v in params.items()}
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        # A translation with a broken placeholder must not break the answer: fall back
        # to the English text (the CI check keeps placeholders equal on both sides).
        return template


class Text(str):
    """A marked message: the English text as a ``str``, plus what it takes to translate it."""

    msgid: str
    params: dict[str, Any]

    def __new__(cls, msgid: str, params: Mapping[str, Any] | None = None) -> Text:
        params = dict(params or {})
        obj = super().__new__(cls, _render(msgid, params, ENGLISH) if params else msgid)
        obj.msgid = msgid
        obj.params = params
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (Text, (self.msgid, self.params))

    def render(self, locale: str) -> str:
        """This message in ``locale`` (English where the catalogue has no entry)."""
        template = catalogue(locale).get(self.msgid, self.msgid)
        return _render(template, self.params, locale)


class TextList(Text):
    """Several messages shown as one (``"a; b"``), each translated on its own."""

    parts: tuple[str, ...]
    separator: str

    def __new__(cls, parts: list[str] | tuple[str, ...], separator: str = "; ") -> TextList:
        obj = str.__new__(cls, separator.join(parts))
        obj.msgid = str(obj)
        obj.params = {}
        obj.parts = tuple(parts)
        obj.separator = separator
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (TextList, (self.parts, self.separator))

    def render(self, locale: str) -> str:
        return self.separator.join(translate(part, locale) for part in self.parts)


def _(msgid: str, /, **params: Any) -> Text:
    """Mark ``msgid`` (English, ``{name}`` placeholders) as read by a person."""
    return Text(msgid, params)


def N_(msgid: str, /) -> str:
    """Mark ``msgid`` for the catalogue without making it a :class:`Text` (constants)."""
    return msgid


def normalize(locale: str | None) -> str | None:
    """One of :data:`LOCALES` for a language tag (``zh``, ``zh_CN.UTF-8``, ``en-GB``), else None."""
    if not locale:
        return None
    tag = locale.strip().split(".")[0].replace("_", "-").lower()
    if tag.startswith("zh"):
        # Traditional-script tags still read Simplified better than English here.
        return CHINESE
    if tag == "en" or tag.startswith("en-"):
        return ENGLISH
    return None


def parse_accept_language(header: str | None) -> list[str]:
    """The languages of an ``Accept-Language`` header, most wanted first (q=0 dropped)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((header or "").split(",")):
        pieces = part.split(";")
        tag = pieces[0].strip()
        if not tag or len(tag) > 35:
            continue
        quality = 1.0
        for param in pieces[1:]:
            match = _QUALITY.match(param)
            if match:
                try:
                    quality = float(match.group(1))
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, index, tag))
    return [tag for _q, _i, tag in sorted(ranked)]


def negotiate(
    accept_language: str | None, chosen: str | None = None, default: str = DEFAULT_LOCALE
) -> str:
    """The reader's locale: their own choice, else the browser's, else the site's."""
    picked = normalize(chosen)
    if picked:
        return picked
    for tag in parse_accept_language(accept_language):
        picked = normalize(tag)
        if picked:
            return picked
    return normalize(default) or DEFAULT_LOCALE


def environment_locale(environ: Mapping[str, str] | None = None) -> str:
    """The technician's locale for CLI output: ``CLINICAM_LANG``, else the POSIX variables."""
    env = os.environ if environ is None else environ
    for name in ("CLINICAM_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        picked = normalize(env.get(name))
        if picked:
            return picked
    return DEFAULT_LOCALE


def po_path(locale: str) -> Path:
    return LOCALE_DIR / locale.replace("-", "_") / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def catalogue(locale: str) -> dict[str, str]:
    """``msgid → translation`` for ``locale`` (empty for English and unknown locales)."""
    path = po_path(locale)
    if locale == ENGLISH or not path.is_file():
        return {}
    with path.open("rb") as handle:
        po = read_po(handle, locale=locale.replace("-", "_"))
    out: dict[str, str] = {}
    for message in po:
        msgid, text = message.id, message.string
        usable = isinstance(msgid, str) and isinstance(text, str) and not message.fuzzy
        if usable and msgid and text:
            out[str(msgid)] = str(text)
    return out


def translate(message: str, locale: str) -> str:
    """``message`` in ``locale`` if it is a marked :class:`Text`; a plain ``str`` as it is."""
    if isinstance(message, Text):
        return message.render(locale)
    return message


def placeholders(template: str) -> set[str]:
    """The ``{name}`` placeholders of a message (for the catalogue check)."""
    return {field for _lit, field, _spec, _conv in string.Formatter().parse(template) if field}


class Translator:
    """``gettext`` bound to one locale, for code that renders many messages at once."""

    def __init__(self, locale: str) -> None:
        self.locale = normalize(locale) or DEFAULT_LOCALE

    def __call__(self, msgid: str, /, **params: Any) -> str:
        return Text(msgid, params).render(self.locale)

    def text(self, message: str) -> str:
        return translate(message, self.locale)


def message_of(exc: BaseException) -> str:
    """The message ``exc`` was raised with: still a :class:`Text` if it was marked
    (``str(exc)`` would give the English only)."""
    if len(exc.args) == 1 and isinstance(exc.args[0], Text):
        return exc.args[0]
    message = getattr(exc, "message", None)
    if isinstance(message, Text):
        return message
    return str(exc)


def say(message: str, *, file: TextIO | None = None, end: str = "\n") -> None:
    """Print ``message`` for the technician at the terminal, in their locale."""
    print(translate(message, environment_locale()), file=file, end=end)


def localized(message: str) -> str:
    """``message`` in the technician's locale (argparse help, prompts)."""
    return translate(message, environment_locale())
