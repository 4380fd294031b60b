"""The Chinese README mirrors the English one: the same quick-start commands and a row
for every requirement in the feature table."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _commands(text: str) -> list[str]:
    block = text.split("```sh", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def _requirements(text: str) -> list[str]:
    return re.findall(r"^\| ([RODS]\d+) ", text, flags=re.MULTILINE)


def test_the_chinese_readme_mirrors_the_quick_start_and_the_feature_table() -> None:
    english = (ROOT / "README.md").read_text(encoding="utf-8")
    chinese = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    assert "README.zh-CN.md" in english
    assert _commands(chinese) == _commands(english)
    assert _requirements(english), "no feature table found"
    assert _requirements(chinese) == _requirements(english)
