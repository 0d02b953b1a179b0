#!/usr/bin/env bash
# Set up .venv (if missing) and run ruff, mypy (strict) and the pytest suite.
# Extra arguments go to pytest: scripts/test.sh -k merge
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
echo "== ruff" && "$VENV/bin/ruff" check orchestrator merge tests scripts
echo "== mypy" && "$VENV/bin/mypy"
echo "== pytest" && "$VENV/bin/pytest" -q "$@"
