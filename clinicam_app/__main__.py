"""Allow ``python -m clinicam_app`` (the same as the ``clinicam`` command)."""

from __future__ import annotations

from clinicam_app.cli import main

raise SystemExit(main())
