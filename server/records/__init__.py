"""Patient records: database, content-addressed blob store, one table family per category."""

from __future__ import annotations
