"""Load typed configuration from a TOML file plus environment overrides.

Environment variables ``<PREFIX>__SECTION__KEY=value`` override ``[section] key``.
Any problem stops start-up with a :class:`ConfigError` whose message names the key.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from clinicam.i18n import _

T = TypeVar("T", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config section and wire message: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ConfigError(Exception):
    """The configuration could not be used; the message says which key and why."""


def _parse_env_value(raw: str) -> Any:
    text = raw.strip()
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return raw
    return raw


def _env_overrides(
    prefix: str, environ: Mapping[str, str]
) -> dict[tuple[str, ...], tuple[str, Any]]:
    overrides: dict[tuple[str, ...], tuple[str, Any]] = {}
    marker = prefix + "__"
    for name, raw in environ.items():
        if not name.startswith(marker):
            continue
        path = tuple(part.lower() for part in name[len(marker) :].split("__") if part)
        if path:
            overrides[path] = (name, _parse_env_value(raw))
    return overrides


def _apply(data: dict[str, Any], path: tuple[str, ...], value: Any, origin: str) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(
                _(
                    "{origin}: '{part}' is not a section, cannot set {key}",
                    origin=origin,
                    part=part,
                    key=".".join(path),
                )
            )
        node = child
    node[path[-1]] = value


def format_validation_error(err: ValidationError, origins: Mapping[str, str]) -> str:
    """One line per problem, each starting with the dotted key."""
    lines = []
    for item in err.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        msg = item["msg"]
        if item["type"] == "extra_forbidden":
            msg = "unknown key (not a setting; check the spelling)"
        origin = origins.get(key)
        suffix = f" (from {origin})" if origin else ""
        lines.append(f"  {key}: {msg}{suffix}")
    return "\n".join(lines)


def load_config(
    model: type[T],
    path: Path | None,
    *,
    env_prefix: str,
    environ: Mapping[str, str] | None = None,
) -> T:
    """Read ``path`` (if given), apply environment overrides and validate."""
    data: dict[str, Any] = {}
    source = str(path) if path else "defaults"
    if path is not None:
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(_("config file {path} does not exist", path=path)) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                _("config file {path} is not valid TOML: {problem}", path=path, problem=str(exc))
            ) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                _(
                    "config file {path} is not UTF-8 text (byte {byte}): save it as UTF-8",
                    path=path,
                    byte=exc.start,
                )
            ) from None
        except OSError as exc:
            raise ConfigError(
                _("config file {path} cannot be read: {problem}", path=path, problem=str(exc))
            ) from None
    origins: dict[str, str] = {}
    env = os.environ if environ is None else environ
    for key_path, (name, value) in sorted(_env_overrides(env_prefix, env).items()):
        _apply(data, key_path, value, name)
        origins[".".join(key_path)] = name
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            _(
                "configuration from {source} is invalid:\n{problems}",
                source=source,
                problems=format_validation_error(exc, origins),
            )
        ) from None
