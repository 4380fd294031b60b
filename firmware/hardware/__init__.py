"""Hardware seams: each device behind a Protocol, with a real and a simulated backend."""

from __future__ import annotations
