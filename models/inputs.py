"""What a model branch takes: float32 arrays, and the error for a record that cannot
become one (shared by :mod:`models.preprocess` and its per-category modules)."""

from __future__ import annotations

from typing import Any

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float32]]


class PreprocessError(ValueError):
    """A record that cannot be turned into the branch's input (corrupt, unsupported)."""
