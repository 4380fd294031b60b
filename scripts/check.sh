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
if [ "$#" -eq 0 ]; then
  # O9: the records suite again with every site's blobs on a real SeaweedFS (the
  # PostgreSQL variants ran above; the blob store does not depend on the database).
  echo "==> pytest: the records suite on SeaweedFS"
  CLINICAM_TEST_BLOBS=s3 "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
    tests/records -k "not postgresql"
fi
echo "==> checks passed in $(( $(date +%s) - start )) s"
