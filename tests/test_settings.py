"""Settings: option > ORCHESTRATE_* environment variable > orchestrate.toml > default; a bad value
from any source is a UsageError naming that source."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import UsageError
from orchestrator.settings import DEFAULT_MODEL, ClaudeSettings, Settings, load_settings
from tests.conftest import git, phase, plan_of, run_cli, write_plan

# key, option value, environment value, TOML literal, then the value each layer yields in turn
PRECEDENCE: list[tuple[str, Any, str, str, tuple[Any, Any, Any, Any]]] = [
    ("max_parallel", 2, "3", "4", (2, 3, 4, 5)),
    ("timeout", 10.0, "20", "30.5", (10.0, 20.0, 30.5, 1800.0)),
    ("retries", 0, "2", "3", (0, 2, 3, 1)),
    ("agent", "command", "claude", '"command"', ("command", "claude", "command", None)),
    ("overlap", "block", "merge", '"block"', ("block", "merge", "block", "merge")),
    ("model", "m-option", "m-env", '"m-toml"', ("m-option", "m-env", "m-toml", DEFAULT_MODEL)),
    ("base", "opt", "env", '"toml"', ("opt", "env", "toml", None)),
    ("agent_command", "./a.sh", "./b.sh", '"./c.sh"', ("./a.sh", "./b.sh", "./c.sh", None)),
    ("copy", (".a",), ".b,.c", '[".d"]', ((".a",), (".b", ".c"), (".d",), (".env", ".env.local"))),
    ("setup", ("make",), "npm ci", '["uv sync"]', (("make",), ("npm ci",), ("uv sync",), ())),
    ("no_merge", True, "0", "true", (True, False, True, False)),
    ("keep_worktrees", True, "no", "true", (True, False, True, False)),
]


def _toml(repo: Path, text: str) -> None:
    (repo / "orchestrate.toml").write_text(text)


@pytest.mark.parametrize(("key", "option", "env", "toml", "expected"), PRECEDENCE,
                         ids=[row[0] for row in PRECEDENCE])
def test_precedence(tmp_path: Path, key: str, option: Any, env: str, toml: str,
                    expected: tuple[Any, Any, Any, Any]) -> None:
    env_name = "ORCHESTRATE_" + key.upper()
    _toml(tmp_path, f"{key} = {toml}\n")
    assert getattr(load_settings(tmp_path, {key: option}, {env_name: env}), key) == expected[0]
    assert getattr(load_settings(tmp_path, {key: None}, {env_name: env}), key) == expected[1]
    assert getattr(load_settings(tmp_path, {key: None}, {}), key) == expected[2]
    (tmp_path / "orchestrate.toml").unlink()
    assert getattr(load_settings(tmp_path, {}, {}), key) == expected[3]


def test_defaults_without_any_source(tmp_path: Path) -> None:
    assert load_settings(tmp_path, {}, {}) == Settings()
    assert Settings().max_parallel == 5
    assert Settings().retries == 1
    assert Settings().overlap == "merge"


def test_process_environment_is_the_default_source(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATE_MAX_PARALLEL", "7")
    monkeypatch.setenv("ORCHESTRATE_VENV", "/somewhere")  # not a setting: ignored
    assert load_settings(tmp_path, {}).max_parallel == 7


def test_claude_table(tmp_path: Path) -> None:
    _toml(tmp_path, "[claude]\nbash = false\nmax_turns = 12\nbash_timeout = 5\n")
    assert load_settings(tmp_path, {}, {}).claude == ClaudeSettings(
        bash=False, max_turns=12, bash_timeout=5.0)


BAD_VALUES: list[tuple[dict[str, Any], dict[str, str], str, str]] = [
    ({"max_parallel": 0}, {}, "", "option --max-parallel must be a whole number of at least 1"),
    ({"timeout": -5.0}, {}, "", "option --timeout must be more than 0 seconds"),
    ({"retries": -1}, {}, "", "option --retries must not be negative"),
    ({"agent": "gpt"}, {}, "", "option --agent must be one of claude, command"),
    ({}, {"ORCHESTRATE_MAX_PARALLEL": "many"}, "",
     "environment variable ORCHESTRATE_MAX_PARALLEL must be a whole number, not 'many'"),
    ({}, {"ORCHESTRATE_TIMEOUT": "soon"}, "",
     "environment variable ORCHESTRATE_TIMEOUT must be a number of seconds"),
    ({}, {"ORCHESTRATE_NO_MERGE": "maybe"}, "",
     "environment variable ORCHESTRATE_NO_MERGE must be true or false"),
    ({}, {"ORCHESTRATE_AGENT_COMMAND": "  "}, "",
     "environment variable ORCHESTRATE_AGENT_COMMAND must be a non-empty string"),
    ({}, {}, 'max_parallel = "many"\n', "orchestrate.toml key `max_parallel` must be a whole"),
    ({}, {}, "max_parallel = 2.5\n", "orchestrate.toml key `max_parallel` must be a whole"),
    ({}, {}, 'overlap = "sometimes"\n', "orchestrate.toml key `overlap` must be one of"),
    ({}, {}, "copy = 3\n", "orchestrate.toml key `copy` must be a list of strings"),
    ({}, {}, "timeout = 0\n", "orchestrate.toml key `timeout` must be more than 0 seconds"),
    ({}, {}, "[claude]\nmax_turns = 0\n", "orchestrate.toml key `claude.max_turns` must be"),
    ({}, {}, "claude = 3\n", "orchestrate.toml key `claude` must be a table"),
]


@pytest.mark.parametrize(("options", "environ", "toml", "message"), BAD_VALUES,
                         ids=[row[3].split(" must")[0] for row in BAD_VALUES])
def test_bad_value_names_its_source(tmp_path: Path, options: dict[str, Any],
                                    environ: dict[str, str], toml: str, message: str) -> None:
    if toml:
        _toml(tmp_path, toml)
    with pytest.raises(UsageError) as refused:
        load_settings(tmp_path, options, environ)
    assert message in refused.value.message
    assert refused.value.exit_code == 2


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    _toml(tmp_path, "max_parallel = = 3\n")
    with pytest.raises(UsageError) as refused:
        load_settings(tmp_path, {}, {})
    assert str(tmp_path / "orchestrate.toml") in refused.value.message
    assert "not valid TOML" in refused.value.message
    assert "line 1" in refused.value.message


def test_unreadable_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "orchestrate.toml").write_bytes(b"model = \"caf\xe9\"\n")
    with pytest.raises(UsageError) as refused:
        load_settings(tmp_path, {}, {})
    assert f"{tmp_path / 'orchestrate.toml'}: cannot read" in refused.value.message


@pytest.mark.parametrize(("toml", "key"), [
    ("max_paralel = 3\n", "`max_paralel`"),
    ("dry_run = true\n", "`dry_run`"),  # a per-run option, not a setting to keep in a file
    ("json = true\n", "`json`"),
    ("[claude]\nturns = 3\n", "`claude.turns`"),
    ("[agents]\nx = 1\n", "`agents`"),
])
def test_unknown_toml_keys_are_refused(tmp_path: Path, toml: str, key: str) -> None:
    _toml(tmp_path, toml)
    with pytest.raises(UsageError) as refused:
        load_settings(tmp_path, {}, {})
    assert f"orchestrate.toml key {key} is not a setting" in refused.value.message
    assert "Known" in refused.value.hint


def test_api_key_makes_claude_the_default_agent(tmp_path: Path) -> None:
    assert load_settings(tmp_path, {}, {"ANTHROPIC_API_KEY": "sk-test"}).agent == "claude"
    assert load_settings(tmp_path, {}, {"ANTHROPIC_API_KEY": ""}).agent is None
    assert load_settings(tmp_path, {}, {}).agent is None


@pytest.mark.parametrize(("options", "environ", "toml"), [
    ({"agent_command": "./agent.sh"}, {}, ""),
    ({}, {"ORCHESTRATE_AGENT_COMMAND": "./agent.sh"}, ""),
    ({}, {}, 'agent_command = "./agent.sh"\n'),
])
def test_agent_command_implies_the_command_agent(tmp_path: Path, options: dict[str, Any],
                                                 environ: dict[str, str], toml: str) -> None:
    if toml:
        _toml(tmp_path, toml)
    settings = load_settings(tmp_path, options, {**environ, "ANTHROPIC_API_KEY": "sk-test"})
    assert settings.agent == "command"
    assert settings.agent_command == "./agent.sh"


def test_explicit_agent_wins_over_the_implied_one(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, {"agent": "claude", "agent_command": "./agent.sh"}, {})
    assert settings.agent == "claude"


needs_build = pytest.mark.skipif(
    importlib.util.find_spec("orchestrator.build.scheduler") is None,
    reason="orchestrator.build.scheduler (the build command) is not on this branch yet")


@needs_build
@pytest.mark.parametrize(("args", "env", "toml", "message"), [
    (["--max-parallel", "0"], {}, "", "option --max-parallel"),
    ([], {"ORCHESTRATE_MAX_PARALLEL": "many"}, "",
     "environment variable ORCHESTRATE_MAX_PARALLEL"),
    ([], {}, "max_parallel = 0\n", "orchestrate.toml key `max_parallel`"),
    ([], {}, "max_parallel = = 0\n", "orchestrate.toml: not valid TOML"),
    ([], {}, "maxparallel = 2\n", "orchestrate.toml key `maxparallel` is not a setting"),
], ids=["option", "env", "toml-value", "toml-syntax", "toml-unknown-key"])
def test_build_refuses_bad_settings(repo: Path, args: list[str], env: dict[str, str],
                                    toml: str, message: str) -> None:
    write_plan(repo, "001-demo", plan_of(phase(1, ["a"])))
    if toml:
        _toml(repo, toml)
    branches = git(repo, "branch", "--list", "--all")
    done = run_cli(repo, "build", "001", "--agent-command", "true", *args, env=env)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert git(repo, "branch", "--list", "--all") == branches


def test_a_bad_value_is_refused_even_when_a_higher_source_overrides_it(tmp_path: Path) -> None:
    _toml(tmp_path, "max_parallel = 0\n")
    with pytest.raises(UsageError, match=r"orchestrate\.toml key `max_parallel`"):
        load_settings(tmp_path, {"max_parallel": 3}, {"ORCHESTRATE_MAX_PARALLEL": "2"})
    (tmp_path / "orchestrate.toml").unlink()
    with pytest.raises(UsageError, match="environment variable ORCHESTRATE_TIMEOUT"):
        load_settings(tmp_path, {"timeout": 5.0}, {"ORCHESTRATE_TIMEOUT": "soon"})
