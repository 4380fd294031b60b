"""Clinicam appliance firmware: hardware, MQTT command API, camera stream."""

from __future__ import annotations
