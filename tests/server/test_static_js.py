"""The pages' pure functions, unit-tested with ``node --test`` (Node.js from the dev role)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_page_modules_pass_their_node_tests() -> None:
    node = shutil.which("node")
    assert node, "node is missing: ./install.sh --role dev installs nodejs"
    tests = sorted(str(p) for p in (ROOT / "tests" / "static").glob("*.test.js"))
    assert tests
    result = subprocess.run(
        [node, "--test", *tests], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
