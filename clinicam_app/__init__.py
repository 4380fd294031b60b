"""The Clinicam application: the ``clinicam`` command, the demo, the broker runner, updates.

It sits above everything: it starts the server (``server``), the appliance
(``firmware``) and the model tools (``models``), which all build on the shared core
in ``clinicam``. Nothing below imports this package (the import-linter contracts in
``pyproject.toml`` say so).
"""

from __future__ import annotations
