#!/usr/bin/env bash
# Set up .venv (if missing) and run ruff, mypy (strict), then the fast test tier (plain `pytest`)
# and the slow one (`pytest -m slow`: clusters, soaks, terminals, real agent CLIs).
# Extra arguments replace the two tiers with one pytest run that gets them:
#   scripts/test.sh -k merge            the fast tests matching "merge"
#   scripts/test.sh -m slow -x          the slow tier, stopping at the first failure
#   scripts/test.sh -m "" tests/cli     both tiers of one folder
# A run that collects no test fails (pytest's exit 5), like any other failure.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
echo "== ruff" && "$VENV/bin/ruff" check orchestrator merge tests scripts
echo "== mypy" && "$VENV/bin/mypy"
if [ "$#" -gt 0 ]; then
  echo "== pytest $*" && exec "$VENV/bin/pytest" -q "$@"
fi
echo "== pytest (fast tier)" && "$VENV/bin/pytest" -q
echo "== pytest -m slow" && "$VENV/bin/pytest" -q -m slow
