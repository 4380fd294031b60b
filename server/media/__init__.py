"""Media on the server: the appliance's live feed and what each expert receives."""

from __future__ import annotations
