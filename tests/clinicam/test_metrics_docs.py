"""The metrics' documentation and the shipped Grafana dashboard name only metrics the
server defines, and the documentation names every one it defines (O7)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"clinicam_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def _base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _defined() -> set[str]:
    source = "".join(
        (ROOT / "server" / "web" / f).read_text() for f in ("metrics.py", "metrics_state.py")
    )
    return {m for m in re.findall(r'"(clinicam_[a-z0-9_]+)"', source) if m != "clinicam_metrics"}


def test_the_documentation_lists_exactly_the_metrics_defined() -> None:
    table = (ROOT / "docs" / "metrics.md").read_text()
    documented = {_base(n) for n in re.findall(r"^\| `(clinicam_[a-z0-9_]+)`", table, re.M)}
    assert documented == _defined()


def test_the_dashboard_queries_only_defined_metrics() -> None:
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    used = {
        _base(name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in NAME.findall(target["expr"])
    }
    assert used and used <= _defined(), used - _defined()
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
