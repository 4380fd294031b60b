"""Clinicam server: experts' web pages, WebRTC, consultations, appliance control."""

from __future__ import annotations
