#!/usr/bin/env bash
# The main job: build a small demo repository with `orchestrate build`, using an offline,
# deterministic agent (scripts/demo_agent.py), so no API key is needed.
#   scripts/demo.sh [DEMO_DIR]     (default: a new temporary folder; DEMO_AGENT_SECONDS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
PROJECT="$PWD"
DEMO="${1:-$(mktemp -d)/orchestrate-demo}"
export DEMO_AGENT_SECONDS="${DEMO_AGENT_SECONDS:-3}"
rm -rf "$DEMO" && mkdir -p "$DEMO" && cd "$DEMO"

git init -q -b main
git config user.name "Demo User" && git config user.email "demo@example.com"
mkdir -p calc docs .orchestrate/specs/001-calculator
printf '# calc\nA tiny calculator, built by five agents at once.\n' > README.md
printf '__pycache__/\n' > .gitignore  # agents' and checks' Python caches stay out of commits
printf '"""Calculator operations."""\n' > calc/__init__.py
{ echo "# Operations"; for op in add subtract multiply divide power; do
    printf '\n- %s: TODO\n\n(see calc/%s.py)\n' "$op" "$op"; done; echo; echo "Notes: none yet."; } > docs/operations.md
# The check (SPEC 9): the integration branch only ever moves to a commit on which it passes.
cat > check.py <<'CHECK'
"""Every operation computes right and has a symbol of its own."""
import importlib, pathlib
expected = {"add": 9, "subtract": 3, "multiply": 18, "divide": 2, "power": 216}
symbols = {}
for name in sorted(p.stem for p in pathlib.Path("calc").glob("*.py") if p.stem in expected):
    module = importlib.import_module(f"calc.{name}")
    assert getattr(module, name)(6, 3) == expected[name], f"{name}(6, 3) is wrong"
    assert module.SYMBOL not in symbols, \
        f"{name} and {symbols.get(module.SYMBOL)} both use the symbol {module.SYMBOL!r}"
    symbols[module.SYMBOL] = name
print(f"check: {len(symbols)} operations, each with its own symbol")
CHECK
# All five operations declare docs/operations.md, each editing its own section, which git
# merges cleanly: `schedule = "together"` runs them at once (the overlaps are flagged in the
# report) instead of one wave each, as the default `spread` would (SPEC 11).
printf 'check = "python3 check.py"\ncheck_retries = 0\nschedule = "together"\nradar_interval = 1\n' > orchestrate.toml
git add -A && git commit -qm "Start the calculator"

cat > .orchestrate/specs/001-calculator/spec.md <<'SPEC'
# Calculator
Five binary operations in calc/, a registry in calc/__init__.py and a command line.
SPEC
python3 - <<'PLAN'
import json
ops = ["add", "subtract", "multiply", "divide", "power"]
plan = {
    "feature": "Calculator",
    "workflow_type": "feature",
    "phases": [
        {"phase": 1, "name": "Operations", "type": "implementation", "parallel_safe": True,
         "depends_on": [],
         "subtasks": [{"id": op, "description": f"Implement calc/{op}.py and document it",
                       "status": "pending", "files_to_create": [f"calc/{op}.py"],
                       "files_to_modify": ["docs/operations.md"],
                       "verification": {"type": "command",
                                        "run": f"python3 -c 'import calc.{op}'"}}
                      for op in ops]},
        {"phase": 2, "name": "Wiring", "type": "integration", "depends_on": [1],
         "subtasks": [
             {"id": "registry", "description": "Register every operation in calc/__init__.py",
              "status": "pending", "files_to_modify": ["calc/__init__.py"]},
             {"id": "cli", "description": "Command line: python3 -m calc OP A B",
              "status": "pending", "files_to_create": ["calc/__main__.py"],
              "verification": {"type": "command", "run": "python3 -m calc add 2 3"}}]},
    ],
}
with open(".orchestrate/specs/001-calculator/implementation_plan.json", "w") as f:
    json.dump(plan, f, indent=2)
    f.write("\n")
PLAN

echo "== demo repository: $DEMO"
echo "== orchestrate build 001   (7 subtasks, each agent takes ${DEMO_AGENT_SECONDS}s)"
echo "   The check (python3 check.py) runs on every commit the integration branch moves to."
echo "   subtract's agent reuses add's symbol: the check ejects it, and its resolution round,"
echo "   given the check's output, fixes it. divide and power edit the same line of"
echo "   docs/operations.md: power's agent resolves that conflict in a round of its own."
start=$(date +%s.%N)
status=0
orchestrate build 001 --agent-command "python3 $PROJECT/scripts/demo_agent.py" || status=$?
end=$(date +%s.%N)
python3 -c "
wall = $end - $start; serial = 9 * $DEMO_AGENT_SECONDS  # 7 subtasks and 2 resolution rounds
print(f'== wall time {wall:.1f}s; one agent after another would take {serial:.0f}s')"
echo "== orchestrate status 001"
orchestrate status 001
echo "== the integration branch"
git log --graph --oneline orchestrate/001-calculator/integration
echo "== python3 -m calc power 2 10   (on the integration branch, in a scratch worktree)"
git worktree add -q --detach "$DEMO/.orchestrate/try" orchestrate/001-calculator/integration
(cd "$DEMO/.orchestrate/try" && python3 -m calc power 2 10)
git worktree remove --force "$DEMO/.orchestrate/try"
if [ -f .orchestrate/specs/001-calculator/conflict_report.md ]; then
  echo "== conflict report (.orchestrate/specs/001-calculator/conflict_report.md)"
  cat .orchestrate/specs/001-calculator/conflict_report.md
fi
echo "== your checkout was not touched: git status"
git status --short --branch
echo "== the demo repository is $DEMO; to look around:"
echo "   cd $DEMO"
echo "   export PATH=\"$VENV/bin:\$PATH\"   # orchestrate, as installed by this script"
echo "   orchestrate status 001; orchestrate logs 001 subtract; orchestrate report 001"
exit $status
