"""Migration scripts, oldest first by ``down_revision``."""

from __future__ import annotations
