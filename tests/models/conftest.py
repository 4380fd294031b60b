"""Fixtures of the model tests: the shipped demo model and the Wisconsin data."""

from __future__ import annotations

from typing import Any

import pytest

from models.runtime import RelevanceModel


@pytest.fixture(scope="session")
def demo_model() -> RelevanceModel:
    """The shipped demo model, loaded and verified by the runtime (LiteRT, 1 thread)."""
    return RelevanceModel.load_demo()


@pytest.fixture(scope="session")
def wisconsin() -> list[dict[str, Any]]:
    """The Wisconsin rows as dataset entries, in the data set's order."""
    from models.build_demo import wisconsin_entries

    return wisconsin_entries()
