"""`--agent PRESET` (SPEC 12): each CLI agent's headless command line, run by the real program
against fake tools on PATH that record their argv, stdin and working directory."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.buildkit import INTEGRATION, SPEC, orchestrate_branches, subtasks, worktree_paths
from tests.conftest import commit_all, git, phase, plan_of, run_cli, write_plan
from tests.presets_support import install_fake_tools

pytestmark = pytest.mark.slow  # real builds with each preset's fake tool

EXTRA = ["--extra", "two words"]
# what each preset must run, after the program name, with --model M and agent_args EXTRA
EXPECTED = {
    "claude-code": ("claude", ["-p", "--output-format", "json", "--permission-mode",
                               "acceptEdits", "--allowedTools", "Read,Write,Edit,Bash,Glob,Grep",
                               "--model", "M", *EXTRA]),
    "codex": ("codex", ["exec", "--json", "--sandbox", "workspace-write",
                        "--skip-git-repo-check", "--model", "M", *EXTRA, "-"]),
    "aider": ("aider", ["--message-file", "PROMPT_FILE", "--yes-always", "--no-auto-commits",
                        "--no-dirty-commits", "--no-gitignore", "--no-check-update",
                        "--analytics-disable", "--chat-history-file", "LOGS/sub-one.aider.chat.md",
                        "--input-history-file", "LOGS/sub-one.aider.input.history",
                        "--model", "M", *EXTRA]),
    "gemini": ("gemini", ["--yolo", "--model", "M", *EXTRA]),
    "opencode": ("opencode", ["run", "--model", "M", *EXTRA, "PROMPT"]),
}


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_a_preset_runs_its_tool_headless_with_the_prompt_model_and_agent_args(
        repo: Path, tmp_path: Path, preset: str) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["sub-one"])))
    tools = install_fake_tools(tmp_path / "bin")
    env = tools.env(ORCHESTRATE_AGENT_ARGS=shlex.join(EXTRA))
    run_cli(repo, "build", "001", "--agent", preset, "--model", "M", env=env, check=0)
    [call] = tools.calls()
    program, expected = EXPECTED[preset]
    logs = plan_path.parent / "logs"
    prompt = (logs / "sub-one.prompt.md").read_text()
    assert prompt.startswith("# Subtask sub-one: Do sub-one")
    places = {"PROMPT_FILE": str(logs / "sub-one.prompt.md"), "LOGS": str(logs), "PROMPT": prompt}
    wanted = [places.get(arg, arg) for arg in expected]
    wanted = [w.replace("LOGS", str(logs)) if w.startswith("LOGS/") else w for w in wanted]
    assert call["tool"] == program
    assert call["argv"] == wanted
    assert call["stdin"] == prompt  # every preset also gets the prompt on stdin
    if preset == "aider":
        assert call["message_file"] == prompt
    assert call["cwd"] == str(repo / ".orchestrate" / "worktrees" / SPEC / "sub-one")
    assert subtasks(repo)["sub-one"]["status"] == "completed"
    assert git(repo, "show", f"{INTEGRATION}:{program}-sub-one.txt") == f"made by {program}"
    message = git(repo, "log", "-1", "--format=%B", f"orchestrate/{SPEC}/sub-one")
    assert f"Orchestrate-Agent: {preset} (M)" in message


def test_without_model_no_model_option_is_passed(repo: Path, tmp_path: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["sub-one"])))
    tools = install_fake_tools(tmp_path / "bin")
    (repo / "orchestrate.toml").write_text('agent = "codex"\nagent_args = ["-c", "x=1"]\n')
    commit_all(repo, "config")
    run_cli(repo, "build", "001", env=tools.env(), check=0)
    [call] = tools.calls()
    assert call["argv"] == ["exec", "--json", "--sandbox", "workspace-write",
                            "--skip-git-repo-check", "-c", "x=1", "-"]


def test_agent_args_and_model_reach_an_agent_command(repo: Path, tmp_path: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["sub-one"])))
    tools = install_fake_tools(tmp_path / "bin")
    (repo / "orchestrate.toml").write_text('agent_args = ["--flag", "a b; rm -rf /"]\n')
    commit_all(repo, "config")
    run_cli(repo, "build", "001", "--agent-command", "gemini --yolo", "--model", "gem-1",
            env=tools.env(), check=0)
    [call] = tools.calls()
    assert call["argv"] == ["--yolo", "--flag", "a b; rm -rf /"]  # quoted, never run by a shell
    assert call["model_env"] == "gem-1"  # --model reaches a command agent in its environment


@pytest.mark.parametrize(("options", "program"), [
    (["--agent", "codex"], "codex"),
    (["--agent-command", "FOO=1 BAR=2 no-such-agent-xyz --go"], "no-such-agent-xyz"),
    (["--agent-command", "./scripts/missing-agent.sh"], "./scripts/missing-agent.sh"),
])
def test_a_missing_agent_program_is_exit_2_before_anything_is_created(
        repo: Path, options: list[str], program: str) -> None:
    plan_path = write_plan(repo, SPEC, plan_of(phase(1, ["sub-one"])))
    before = plan_path.read_bytes()
    done = run_cli(repo, "build", "001", *options, env={"PATH": "/usr/bin:/bin"}, check=2)
    assert f"`{program}`" in done.stderr
    assert "Traceback" not in done.stderr
    assert orchestrate_branches(repo) == []
    assert worktree_paths(repo) == [str(repo)]
    assert plan_path.read_bytes() == before


def test_exit_127_fails_the_subtask_at_once_without_retries(repo: Path, tmp_path: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["sub-one", "sub-two"], parallel=True)))
    tools = install_fake_tools(tmp_path / "bin")
    command = ('if [ "$ORCHESTRATE_SUBTASK_ID" = sub-one ]; then exec no-such-tool-xyz; fi; '
               "exec gemini")
    done = run_cli(repo, "build", "001", "--agent-command", command, "--retries", "2",
                   env=tools.env(), check=1)
    record = subtasks(repo)["sub-one"]
    assert record["status"] == "failed"
    assert record["orchestrate"]["attempts"] == 1
    assert record["orchestrate"]["error"].startswith("command not found: ")
    assert "no-such-tool-xyz" in record["orchestrate"]["error"]
    assert done.stdout.count("attempt 2") == 0
    assert subtasks(repo)["sub-two"]["status"] == "completed"  # the others carry on
    assert [c["subtask"] for c in tools.calls()] == ["sub-two"]


def test_a_preset_whose_program_vanished_fails_at_once(repo: Path, tmp_path: Path) -> None:
    """The program was there at the check and is gone when the agent starts: exit 127 from
    the spawn itself, one attempt, the message names the program."""
    write_plan(repo, SPEC, plan_of(phase(1, ["sub-one"])))
    tools = install_fake_tools(tmp_path / "bin", names=("gemini",))
    (repo / "setup.sh").write_text(f"rm {tools.bin / 'gemini'}\n")
    commit_all(repo, "setup")
    (repo / "orchestrate.toml").write_text('setup = ["sh setup.sh"]\n')
    run_cli(repo, "build", "001", "--agent", "gemini", "--retries", "2", env=tools.env(),
            check=1)
    record = subtasks(repo)["sub-one"]
    assert record["orchestrate"]["attempts"] == 1
    assert record["orchestrate"]["error"].startswith("command not found: gemini")


def test_the_settings_list_every_preset_in_order() -> None:
    from orchestrator.agents.presets import PRESETS
    from orchestrator.settings import PRESET_NAMES

    assert tuple(PRESETS) == PRESET_NAMES


def test_every_kind_the_settings_accept_is_registered_once() -> None:
    from orchestrator.agents import KINDS
    from orchestrator.settings import AGENT_KINDS

    assert tuple(KINDS) == AGENT_KINDS
