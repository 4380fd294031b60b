"""Command API over MQTT: transport, routing and per-domain handlers."""

from __future__ import annotations
