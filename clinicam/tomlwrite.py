"""Write the small TOML files Clinicam generates (demo configs)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # TOML basic strings accept JSON's escapes
    if isinstance(v, list) and all(not isinstance(x, dict) for x in v):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as a TOML value")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _table(out: list[str], prefix: str, data: Mapping[str, Any]) -> None:
    for key, v in data.items():
        if v is None or isinstance(v, dict) or _is_table_array(v):
            continue
        out.append(f"{key} = {_value(v)}")
    for key, v in data.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(v, dict):
            out.append(f"\n[{name}]")
            _table(out, name, v)
        elif _is_table_array(v):
            for item in v:
                out.append(f"\n[[{name}]]")
                _table(out, name, item)


def dumps(data: Mapping[str, Any]) -> str:
    """``data`` as TOML; ``None`` values are left out."""
    out: list[str] = []
    _table(out, "", data)
    return "\n".join(out).lstrip("\n") + "\n"
