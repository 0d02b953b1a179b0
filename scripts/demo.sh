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
printf '"""Calculator operations."""\n' > calc/__init__.py
{ echo "# Operations"; for op in add subtract multiply divide power; do
    printf '\n- %s: TODO\n\n(see calc/%s.py)\n' "$op" "$op"; done; echo; echo "Notes: none yet."; } > docs/operations.md
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
echo "== orchestrate build 001   (7 subtasks, each agent takes ${DEMO_AGENT_SECONDS}s;"
echo "   divide and power edit the same line: power's agent gets one resolution round)"
start=$(date +%s.%N)
status=0
orchestrate build 001 --agent-command "python3 $PROJECT/scripts/demo_agent.py" || status=$?
end=$(date +%s.%N)
python3 -c "
wall = $end - $start; serial = 8 * $DEMO_AGENT_SECONDS  # 7 subtasks and 1 resolution round
print(f'== wall time {wall:.1f}s; one agent after another would take {serial:.0f}s '
      f'(speedup {serial / wall:.1f}x)')"
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
exit $status
