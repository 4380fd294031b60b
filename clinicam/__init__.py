"""Clinicam: remote consultation for rural clinics (shared pieces and the CLI)."""

from __future__ import annotations

__version__ = "0.1.0"
