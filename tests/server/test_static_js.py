"""The pages' ES modules: pure functions unit-tested with ``node --test``, JSDoc types
checked with ``tsc --checkJs`` (Node.js and TypeScript from the dev role), and the shape
every page keeps: module scripts only, modules of at most 300 lines."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "server" / "static"
MAX_LINES = 300


def test_page_modules_pass_their_node_tests() -> None:
    node = shutil.which("node")
    assert node, "node is missing: ./install.sh --role dev installs nodejs"
    tests = sorted(str(p) for p in (ROOT / "tests" / "static").glob("*.test.js"))
    assert tests
    result = subprocess.run(
        [node, "--test", *tests], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_page_modules_type_check() -> None:
    tsc = shutil.which("tsc")
    assert tsc, "tsc is missing: ./install.sh --role dev installs node-typescript"
    result = subprocess.run(
        [tsc, "-p", str(ROOT / "tests" / "static" / "tsconfig.json")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pages_load_only_small_es_modules() -> None:
    for page in sorted(STATIC.glob("*.html")):
        scripts = re.findall(r"<script\b[^>]*>", page.read_text(encoding="utf-8"))
        assert scripts, page.name
        for tag in scripts:
            assert 'type="module"' in tag, f"{page.name}: {tag} is a classic script"
    for module in sorted(STATIC.glob("*.js")):
        lines = len(module.read_text(encoding="utf-8").splitlines())
        assert lines <= MAX_LINES, f"{module.name} has {lines} lines (at most {MAX_LINES})"
