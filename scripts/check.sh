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
  # O9: the records suite's API tests again with every site's blobs on a real SeaweedFS
  # (the PostgreSQL variants ran above; the blob store does not depend on the database).
  # Only the files that start a records site: the others build their own stores.
  echo "==> pytest: the records API tests on SeaweedFS"
  mapfile -t site_tests < <(grep -l -E "api_helpers|records_config|running_site" tests/records/test_*.py)
  CLINICAM_TEST_BLOBS=s3 "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
    "${site_tests[@]}" -k "not postgresql"
fi
echo "==> checks passed in $(( $(date +%s) - start )) s"
