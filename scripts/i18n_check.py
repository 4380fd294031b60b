"""The catalogue check (CI): every string a person reads goes through the catalogue, in
both languages.

Python (``clinicam``, ``clinicam_app``, ``firmware``, ``server``, ``models``):
- every ``_("…")``/``N_("…")`` message is in ``clinicam/locale/zh_CN/LC_MESSAGES/
  clinicam.po`` with a translation and the same ``{placeholders}``; no entry is unused;
- no literal text reaches a person without it: the message of ``ApiError`` and of every
  domain error (``server.domain_errors`` and its subclasses anywhere), ``print``
  output, ``argparse`` help and descriptions in the CLI packages, and the texts handed to
  the video overlays (``draw_text``/``card``/``notice``/``label`` calls).

Pages (``server/static``):
- every key used (``t("key")``, ``data-i18n``, ``data-i18n-attr``) is in ``en.json`` and
  ``zh-CN.json``; both have the same keys and placeholders; no key is unused;
- no text in the HTML outside a ``data-i18n`` element (``translate="no"`` marks a name
  such as "Clinicam"), no ``title``/``placeholder``/``aria-label``/``alt`` without
  ``data-i18n-attr``;
- no literal words in the modules: a string of two or more words, any Chinese, or a
  single word given to ``textContent``/``title``/``placeholder``/``el(…)``.

A line may opt out with ``# i18n: not for people`` (Python) or ``// i18n: not for people``
(JS), with the reason after it: machine-read output, developer tools, log lines.

    python scripts/i18n_check.py        # exit 1 and one line per problem
"""

from __future__ import annotations

import ast
import json
import re
import string
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parents[1]
PY_PACKAGES = ("clinicam", "clinicam_app", "firmware", "server", "models")
CLI_PACKAGES = ("clinicam_app", "firmware")  # argparse help is read by technicians
STATIC = ROOT / "server" / "static"
PO = ROOT / "clinicam" / "locale" / "zh_CN" / "LC_MESSAGES" / "clinicam.po"
OPT_OUT = "i18n: not for people"
DOMAIN_ERRORS = {
    "DomainError",
    "Invalid",
    "NotFound",
    "Forbidden",
    "Conflict",
    "Unprocessable",
    "Unsupported",
    "TooLarge",
    "Unavailable",
}
OVERLAY_CALLS = {"draw_text", "card", "notice", "label_text"}
WORDS = re.compile(r"[A-Za-z]{2,}")
CJK = re.compile(r"[\u3400-\u9fff]")
PAGE_ATTRS = ("title", "placeholder", "aria-label", "alt")


def _fields(template: str) -> set[str]:
    try:
        return {f for _l, f, _s, _c in string.Formatter().parse(template) if f}
    except ValueError:
        return {"<unbalanced braces>"}


def _reads_as_text(value: str) -> bool:
    return bool(WORDS.search(value) or CJK.search(value))


def _literal_text(node: ast.AST | None) -> str | None:
    """The text of a literal ``str`` or f-string's constant parts, if it has words."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value if _reads_as_text(node.value) else None
    if isinstance(node, ast.JoinedStr):
        parts = "".join(
            v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        )
        return parts if _reads_as_text(parts) else None
    return None


def _name(func: ast.AST) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _python_files() -> Iterator[Path]:
    for package in PY_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _error_classes(trees: dict[Path, ast.Module]) -> set[str]:
    names = set(DOMAIN_ERRORS) | {"ApiError"}
    changed = True
    while changed:
        changed = False
        for tree in trees.values():
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.ClassDef)
                    and node.name not in names
                    and any(_name(base) in names for base in node.bases)
                ):
                    names.add(node.name)
                    changed = True
    return names


def _message_args(call: ast.Call, errors: set[str], cli: bool) -> list[ast.AST]:
    name = _name(call.func)
    if name == "ApiError":
        return call.args[1:2] + [k.value for k in call.keywords if k.arg == "message"]
    if name in errors:
        return call.args[:1] + [k.value for k in call.keywords if k.arg == "message"]
    if name == "print" and isinstance(call.func, ast.Name):
        return list(call.args)
    if name in OVERLAY_CALLS:
        return [a for a in call.args if isinstance(a, ast.Constant | ast.JoinedStr)]
    if cli and name in {"add_argument", "ArgumentParser", "add_parser", "add_subparsers"}:
        return [k.value for k in call.keywords if k.arg in {"help", "description", "title"}]
    return []


def check_python(problems: list[str]) -> set[str]:
    trees = {p: ast.parse(p.read_text(encoding="utf-8"), str(p)) for p in _python_files()}
    errors = _error_classes(trees)
    used: set[str] = set()
    for path, tree in trees.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        rel = path.relative_to(ROOT)
        cli = rel.parts[0] in CLI_PACKAGES
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            if _name(node.func) in {"_", "N_"} and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    used.add(first.value)
                else:
                    problems.append(f"{rel}:{node.lineno}: _() needs a literal message")
                continue
            for arg in _message_args(node, errors, cli):
                text = _literal_text(arg)
                line = lines[arg.lineno - 1] if hasattr(arg, "lineno") else ""
                if text is not None and OPT_OUT not in line:
                    problems.append(f"{rel}:{arg.lineno}: text bypasses the catalogue: {text!r}")
    return used


def read_po(path: Path) -> dict[str, str]:
    from babel.messages.pofile import read_po as babel_read_po

    with path.open("rb") as handle:
        catalog = babel_read_po(handle)
    return {
        str(m.id): str(m.string or "")
        for m in catalog
        if m.id and isinstance(m.id, str) and not m.fuzzy
    }


def check_po(used: set[str], problems: list[str]) -> None:
    po = read_po(PO)
    rel = PO.relative_to(ROOT)
    for msgid in sorted(used):
        if not po.get(msgid):
            problems.append(f"{rel}: no Chinese for {msgid!r}")
        elif _fields(po[msgid]) != _fields(msgid):
            problems.append(f"{rel}: placeholders differ for {msgid!r}")
    for msgid in sorted(set(po) - used):
        problems.append(f"{rel}: unused entry {msgid!r}")


class _PageText(HTMLParser):
    """Finds text and readable attributes not covered by data-i18n / data-i18n-attr."""

    VOID: ClassVar[set[str]] = {
        "meta",
        "link",
        "input",
        "br",
        "img",
        "hr",
        "source",
        "track",
        "wbr",
        "area",
        "col",
    }

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, bool, bool]] = []  # tag, has data-i18n, no-translate
        self.keys: set[str] = set()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        covered = {p.split(":")[0].strip() for p in values.get("data-i18n-attr", "").split(";")}
        for pair in values.get("data-i18n-attr", "").split(";"):
            if ":" in pair:
                self.keys.add(pair.split(":", 1)[1].strip())
        if "data-i18n" in values:
            self.keys.add(values["data-i18n"])
        for attr in PAGE_ATTRS:
            if _reads_as_text(values.get(attr, "")) and attr not in covered:
                self.problems.append(f"<{tag}> {attr}={values[attr]!r} lacks data-i18n-attr")
        no_translate = values.get("translate") == "no" or any(s[2] for s in self.stack)
        if tag not in self.VOID:
            self.stack.append((tag, "data-i18n" in values, no_translate))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.stack or not _reads_as_text(data):
            return
        tag, keyed, no_translate = self.stack[-1]
        if tag in {"script", "style"} or keyed or no_translate:
            return
        self.problems.append(f"<{tag}> text {data.strip()[:60]!r} lacks data-i18n")


JS_KEY = re.compile(r"""\bt\(\s*["'`]([\w.\-]+)["'`]""")
JS_STRING = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`""")
JS_SINGLE = re.compile(
    r"""(?:textContent|innerText|title|placeholder|ariaLabel|alt)\s*=\s*["'`]([A-Za-z][^"'`]*)["'`]"""
    r"""|\bel\([^;]*?,\s*["'`]([A-Za-z][A-Za-z ]*)["'`]\s*\)"""
)
TWO_WORDS = re.compile(r"[A-Za-z]{2,}[,.!?:;]?\s+[A-Za-z(]{2,}")
JS_CLASS = re.compile(
    r"""(?:\bclass\s*:\s*|className\s*=\s*|classList\.\w+\(\s*)("[^"]*"|'[^']*'|`[^`]*`)"""
)
JS_DATA_KEY = re.compile(r"""(?:i18n|dataset\.i18n)["']?\s*[:=]\s*["']([\w.\-]+)["']""")


def _js_code_strings(line: str) -> Iterator[str]:
    code = line.split("//", 1)[0] if not line.lstrip().startswith("*") else ""
    for match in JS_STRING.finditer(code):
        yield match.group(0)[1:-1]


def check_pages(problems: list[str]) -> None:
    catalogues = {
        code: json.loads((STATIC / "i18n" / f"{code}.json").read_text(encoding="utf-8"))
        for code in ("en", "zh-CN")
    }
    used: set[str] = set()
    for page in sorted(STATIC.glob("*.html")):
        parser = _PageText()
        parser.feed(page.read_text(encoding="utf-8"))
        used |= parser.keys
        problems.extend(f"server/static/{page.name}: {p}" for p in parser.problems)
    for module in sorted(STATIC.glob("*.js")):
        rel = f"server/static/{module.name}"
        for number, line in enumerate(module.read_text(encoding="utf-8").splitlines(), 1):
            if OPT_OUT in line or line.lstrip().startswith(("//", "*", "/*", "import ")):
                continue
            used |= set(JS_KEY.findall(line)) | set(JS_DATA_KEY.findall(line))
            scrubbed = JS_CLASS.sub("CLASS", JS_KEY.sub("t(KEY", line))
            for text in _js_code_strings(scrubbed):
                if CJK.search(text) or TWO_WORDS.search(re.sub(r"\$\{[^}]*\}", " ", text)):
                    problems.append(f"{rel}:{number}: words bypass the catalogue: {text[:60]!r}")
                    break
            else:
                for match in JS_SINGLE.finditer(scrubbed):
                    word = match.group(1) or match.group(2)
                    problems.append(f"{rel}:{number}: words bypass the catalogue: {word!r}")
    for code, catalogue in catalogues.items():
        for key in sorted(used - set(catalogue)):
            problems.append(f"server/static/i18n/{code}.json: missing key {key!r}")
    en, zh = catalogues["en"], catalogues["zh-CN"]
    for key in sorted(set(en) ^ set(zh)):
        problems.append(f"server/static/i18n: {key!r} is in one language only")
    for key in sorted(set(en) & set(zh)):
        if _js_fields(en[key]) != _js_fields(zh[key]):
            problems.append(f"server/static/i18n: placeholders differ for {key!r}")
    for key in sorted(set(en) - used):
        problems.append(f"server/static/i18n/en.json: unused key {key!r}")


def _js_fields(value: object) -> set[str]:
    texts = value.values() if isinstance(value, dict) else [value]
    return {f for text in texts for f in re.findall(r"\{(\w+)\}", str(text))}


def main() -> int:
    problems: list[str] = []
    check_po(check_python(problems), problems)
    check_pages(problems)
    for problem in problems:
        print(problem)  # i18n: not for people (a developer's check)
    print(f"i18n check: {len(problems)} problem(s)")  # i18n: not for people
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
