"""docs/configuration.md stays true to the config models."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_is_current() -> None:
    render = runpy.run_path(str(ROOT / "scripts" / "config_docs.py"))["render"]
    current = (ROOT / "docs" / "configuration.md").read_text()
    assert current == render(), "run: python scripts/config_docs.py"
