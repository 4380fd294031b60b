"""Clinicam: remote consultation for rural clinics (the shared core every package imports)."""

from __future__ import annotations

__version__ = "0.1.0"
