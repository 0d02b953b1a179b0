"""Finding the spec from what the user typed, in .orchestrate/specs and .auto-claude/specs."""

from __future__ import annotations

from pathlib import Path

from tests.cli_inprocess import run_cli_in_process
from tests.conftest import phase, plan_of, write_plan

AUTO = ".auto-claude/specs"


def _spec(repo: Path, name: str, root: str = ".orchestrate/specs", subtasks: int = 1) -> None:
    write_plan(repo, name, plan_of(phase(1, [f"t{n}" for n in range(subtasks)])), root=root)


def _assert_usage_error(done_returncode: int, stderr: str) -> None:
    assert done_returncode == 2, stderr
    assert "Traceback" not in stderr
    assert stderr.startswith("orchestrate: error: ")


def test_exact_name_wins_over_a_longer_prefix_match(repo: Path) -> None:
    _spec(repo, "001-auth", subtasks=1)
    _spec(repo, "001-auth-v2", root=AUTO, subtasks=2)
    assert run_cli_in_process(repo, "validate", "001-auth", check=0).stdout.startswith("001-auth: ")
    done = run_cli_in_process(repo, "validate", "001-auth-v2", check=0)
    assert done.stdout.startswith("001-auth-v2: ")


def test_unique_prefix_in_either_root(repo: Path) -> None:
    _spec(repo, "001-user-auth")
    _spec(repo, "002-billing", root=AUTO, subtasks=2)
    done = run_cli_in_process(repo, "validate", "001", check=0)
    assert done.stdout.strip() == "001-user-auth: valid plan, 1 phase (0 parallel), 1 subtask"
    done = run_cli_in_process(repo, "validate", "002", check=0)
    assert done.stdout.strip() == "002-billing: valid plan, 1 phase (0 parallel), 2 subtasks"
    status = run_cli_in_process(repo, "status", "002-billing", check=0).stdout
    assert status.startswith("002-billing: 0/2 completed")


def test_prefix_must_end_at_a_dash(repo: Path) -> None:
    _spec(repo, "001-user-auth")
    for wanted in ("00", "001-us", "user-auth"):
        done = run_cli_in_process(repo, "status", wanted)
        _assert_usage_error(done.returncode, done.stderr)
        assert f"no spec folder named {wanted!r}" in done.stderr


def test_prefix_matching_two_roots_is_ambiguous(repo: Path) -> None:
    _spec(repo, "001-api")
    _spec(repo, "001-ui", root=AUTO)
    for command in ("validate", "status"):
        done = run_cli_in_process(repo, command, "001")
        _assert_usage_error(done.returncode, done.stderr)
        assert "'001' matches several specs" in done.stderr
        assert ".orchestrate/specs/001-api" in done.stderr
        assert ".auto-claude/specs/001-ui" in done.stderr
        assert done.stdout == ""


def test_same_name_in_both_roots_is_ambiguous(repo: Path) -> None:
    _spec(repo, "001-api")
    _spec(repo, "001-api", root=AUTO)
    done = run_cli_in_process(repo, "validate", "001-api")
    _assert_usage_error(done.returncode, done.stderr)
    assert ".orchestrate/specs/001-api" in done.stderr
    assert ".auto-claude/specs/001-api" in done.stderr


def test_no_match_lists_the_known_specs(repo: Path) -> None:
    _spec(repo, "001-api")
    _spec(repo, "002-ui", root=AUTO)
    done = run_cli_in_process(repo, "validate", "009")
    _assert_usage_error(done.returncode, done.stderr)
    assert "no spec folder named '009' or 009-*" in done.stderr
    assert "Known specs: 001-api, 002-ui" in done.stderr


def test_no_specs_at_all(repo: Path) -> None:
    done = run_cli_in_process(repo, "status", "001")
    _assert_usage_error(done.returncode, done.stderr)
    assert "Known specs: none" in done.stderr
    assert run_cli_in_process(repo, "list", check=0).stdout.startswith("no specs")


def test_hidden_folders_and_files_are_not_specs(repo: Path) -> None:
    _spec(repo, "001-api")
    (repo / ".orchestrate" / "specs" / ".001-old").mkdir()
    (repo / ".orchestrate" / "specs" / "001-notes").write_text("not a folder\n")
    assert run_cli_in_process(repo, "validate", "001", check=0).stdout.startswith("001-api: ")


def test_spec_folder_without_a_plan(repo: Path) -> None:
    (repo / AUTO / "001-empty").mkdir(parents=True)
    done = run_cli_in_process(repo, "status", "001")
    _assert_usage_error(done.returncode, done.stderr)
    assert "implementation_plan.json: cannot read the plan" in done.stderr


def test_list_shows_both_roots(repo: Path) -> None:
    _spec(repo, "001-api", subtasks=2)
    _spec(repo, "002-ui", root=AUTO, subtasks=3)
    write_plan(repo, "003-broken", "{")
    lines = run_cli_in_process(repo, "list", check=0).stdout.splitlines()
    by_name = {line.split()[0]: line for line in lines}
    assert sorted(by_name) == ["001-api", "002-ui", "003-broken"]
    assert "0/2 completed" in by_name["001-api"]
    assert by_name["001-api"].endswith("[.orchestrate]")
    assert "invalid plan" in by_name["003-broken"]
    assert "0/3 completed" in by_name["002-ui"]
    assert by_name["002-ui"].endswith("[.auto-claude]")


def test_repo_option_from_another_folder(repo: Path, tmp_path: Path) -> None:
    _spec(repo, "001-api")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_cli_in_process(elsewhere, "--repo", str(repo), "validate", "001", check=0)
    assert done.stdout.startswith("001-api: ")
    done = run_cli_in_process(elsewhere, "--repo", str(repo / "src"), "status", "001", check=0)
    assert done.stdout.startswith("001-api: ")
    done = run_cli_in_process(repo / "src", "validate", "001", check=0)
    assert done.stdout.startswith("001-api: ")


def test_repo_option_on_a_folder_outside_git(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    write_plan(plain, "001-api", plan_of(phase(1, ["a"])))
    for command in (["validate", "001"], ["status", "001"], ["list"]):
        done = run_cli_in_process(tmp_path, "--repo", str(plain), *command)
        _assert_usage_error(done.returncode, done.stderr)
        assert f"option --repo: {plain.resolve()} is not inside a git repository" in done.stderr
        assert "--repo PATH" in done.stderr
    done = run_cli_in_process(plain, "validate", "001")
    _assert_usage_error(done.returncode, done.stderr)
    assert "is not inside a git repository" in done.stderr


def test_repo_option_on_a_missing_folder(tmp_path: Path) -> None:
    done = run_cli_in_process(tmp_path, "--repo", str(tmp_path / "missing"), "status", "001")
    _assert_usage_error(done.returncode, done.stderr)
    assert f"option --repo: {tmp_path / 'missing'} is not a folder" in done.stderr
