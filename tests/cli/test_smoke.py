from pathlib import Path

from tests.conftest import phase, plan_of, run_cli, write_plan


def test_validate_reports_a_valid_plan(repo: Path) -> None:
    write_plan(repo, "001-demo", plan_of(phase(1, ["a", "b"], parallel=True)))
    done = run_cli(repo, "validate", "001", check=0)
    assert "001-demo: valid plan, 1 phase (1 parallel), 2 subtasks" in done.stdout
