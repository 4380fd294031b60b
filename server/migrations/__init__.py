"""Alembic migrations for the records database (run by :func:`server.db.upgrade`)."""

from __future__ import annotations
