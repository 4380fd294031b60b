"""Allow ``python -m clinicam``."""

from __future__ import annotations

from clinicam.cli import main

raise SystemExit(main())
