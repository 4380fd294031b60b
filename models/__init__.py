"""Disease-relevance model: definition, training, int8 export and the runtime wrapper.

Not built yet (issue 6); the package exists so that the layout and type checks are
in place from the start.
"""

from __future__ import annotations
