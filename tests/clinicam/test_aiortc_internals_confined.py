"""Only clinicam/aiortc_compat.py names aiortc's and aioice's internals.

Every other module of the product (everything outside ``tests/``, whose fakes build raw
packets and simulate an aiortc that changed) must use the compatibility module's
functions, so that an aiortc upgrade is checked and fixed in one place. The scan reads
the syntax tree, so docstrings and comments may still talk about aiortc.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPAT = ROOT / "clinicam" / "aiortc_compat.py"
SKIPPED_DIRS = {
    ".venv",
    ".git",
    "tests",
    "node_modules",
    "build",
    "dist",
    "__pycache__",
    ".mypy_cache",
}

MANGLED = re.compile(r"_(RTC\w*|Connection|StunProtocol|JitterBuffer|RemoteStreamTrack)__\w+")
AIORTC_ONLY = {  # private names of aiortc/aioice objects, wherever they appear
    "_ssrc",
    "_send_keyframe",
    "_handle_rtcp_packet",
    "_handle_rtp_packet",
    "_remove_frame",
    "_is_video",
    "_origin",
    "_packets",
}
ON_OTHERS = {  # private names our own classes use too: flagged on anything but self/cls
    "_queue",
    "_data",
    "_connection",
    "_protocols",
    "_capacity",
}
MODULE_STATE = {"get_host_addresses", "HEADER_EXTENSIONS"}  # aiortc/aioice module globals
MODULE_PATH = re.compile(r"[\w.]*\b(get_host_addresses|HEADER_EXTENSIONS)")


def _private(name: str) -> bool:
    return bool(MANGLED.fullmatch(name)) or name in AIORTC_ONLY or name in ON_OTHERS


def internals_named(source: str) -> list[tuple[int, str]]:
    """(line, what) for every place ``source`` names an aiortc or aioice internal."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            if (
                MANGLED.fullmatch(node.attr)
                or node.attr in AIORTC_ONLY
                or node.attr in MODULE_STATE
                or (node.attr in ON_OTHERS and owner not in {"self", "cls"})
            ):
                found.append((node.lineno, f"attribute .{node.attr}"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _private(node.value) or MODULE_PATH.fullmatch(node.value):
                found.append((node.lineno, f"string {node.value!r}"))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [module or ""] + [alias.name for alias in node.names]
            if any(n == "aioice" or n.startswith("aioice.") for n in names):
                found.append((node.lineno, "import of aioice"))
            if any(n in MODULE_STATE for n in names):
                found.append((node.lineno, "import of an aiortc/aioice module global"))
    return sorted(found)


def product_sources() -> list[Path]:
    """Every Python file of the product, but the compatibility module itself."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        found += [Path(folder) / name for name in files if name.endswith(".py")]
    return sorted(path for path in found if path != COMPAT)


def test_no_module_outside_the_compatibility_module_names_aiortc_internals() -> None:
    sources = product_sources()
    assert ROOT / "server" / "media" / "lowlatency.py" in sources  # the scan sees the tree
    offences = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in sources
        for line, what in internals_named(path.read_text(encoding="utf-8"))
    ]
    assert not offences, (
        "aiortc/aioice internals outside clinicam/aiortc_compat.py (add a function there):\n"
        + "\n".join(offences)
    )


def test_the_compatibility_module_itself_is_what_the_scan_would_flag() -> None:
    assert internals_named(COMPAT.read_text(encoding="utf-8"))  # else the scan is blind


@pytest.mark.parametrize(
    "snippet",
    [
        "sender._RTCRtpSender__encoder = encoder",
        "setattr(receiver, '_RTCRtpReceiver__jitter_buffer', buffer)",
        "getattr(sender, '_send_keyframe', None)",
        "sender._handle_rtcp_packet = handle",
        "ssrc = sender._ssrc",
        "class B(JitterBuffer):\n    def _remove_frame(self, n):\n        return self._origin",
        "queue = getattr(track, '_queue', None)",
        "connection = transport._connection",
        "data = packet._data",
        "import aioice.ice",
        "from aioice import Connection",
        "aioice.ice.get_host_addresses = lambda v4, v6: ['127.0.0.1']",
        "aiortc.codecs.HEADER_EXTENSIONS['video'].append(extension)",
        "monkeypatch.setattr('aioice.ice.get_host_addresses', fake)",
    ],
)
def test_the_scan_flags_a_new_use_of_internals(snippet: str) -> None:
    assert internals_named(snippet), snippet


@pytest.mark.parametrize(
    "snippet",
    [
        '"""aiortc keeps ``_RTCRtpSender__encoder`` private; see aiortc_compat."""',
        "self._queue = asyncio.Queue()",
        "self._data = b''  # our own attribute",
        "from clinicam.aiortc_compat import after_keyframe_request",
        "sender.getStats()",
        '"""aioice never offers 127.0.0.1 (its get_host_addresses skips loopback)."""',
    ],
)
def test_the_scan_leaves_our_own_names_alone(snippet: str) -> None:
    assert not internals_named(snippet), snippet
