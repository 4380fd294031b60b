#!/usr/bin/env bash
# Lint, type-check and run the whole test suite with the project's venv.
# Usage: ./install.sh --role dev && ./scripts/check.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${CLINICAM_VENV:-.venv}"
start=$(date +%s)
echo "==> ruff"
"$VENV/bin/ruff" check firmware server models clinicam clinicam_app tests bench scripts
echo "==> mypy --strict"
"$VENV/bin/mypy" --strict firmware server models clinicam clinicam_app
"$VENV/bin/lint-imports"
echo "==> pytest"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
echo "==> checks passed in $(( $(date +%s) - start )) s"
