"""The claude agent's tools: confinement to the worktree (driven through the agent loop, asserting
on what the fake API received), bash process groups, and the text editor's commands."""

from __future__ import annotations

import re
from pathlib import Path

import trio

from orchestrator.agents.tools import Toolbox
from orchestrator.settings import ClaudeSettings
from tests.claude_support import make_task, run_agent, settings, survivors
from tests.fake_anthropic import FakeAnthropic, bash, editor, reply


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


async def test_every_escape_is_refused_and_touches_nothing(fake_api: FakeAnthropic,
                                                           tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    task = make_task(tmp_path, "escape")
    await trio.run_process(["git", "init", "-q", str(task.worktree)])
    before_outside, before_git = snapshot(outside), snapshot(task.worktree / ".git")
    attempts = [
        editor("create", path="../outside/new.txt", file_text="x"),
        editor("create", path=str(outside / "abs.txt"), file_text="x"),
        editor("str_replace", path="../outside/secret.txt", old_str="secret", new_str="owned"),
        editor("view", path="/etc/passwd"),
        editor("view", path="../outside"),
        editor("create", path="link/new.txt", file_text="x"),
        editor("create", path="secret_link", file_text="overwritten"),
        editor("insert", path="secret_link", insert_line=0, insert_text="x"),
        editor("view", path="secret_link"),
        editor("create", path="dangling", file_text="x"),
        editor("create", path=".git/hooks/pre-commit", file_text="#!/bin/sh\n"),
        editor("view", path=".git/config"),
        editor("create", path="sub/../.git/HEAD", file_text="x"),
    ]
    fake_api.script("escape", [
        reply(bash(f"ln -s {outside} link && ln -s {outside}/secret.txt secret_link && "
                   f"ln -s {outside}/missing.txt dangling")),
        reply(*attempts),
        reply("I could not get out."),
    ])
    result = await run_agent(task)
    assert result.ok, result.error
    shell, *refused = fake_api.tool_results("escape")
    assert shell["is_error"] is False
    assert len(refused) == len(attempts)
    for answer in refused:
        assert answer["is_error"] is True, answer
        assert "refused" in answer["content"], answer
    assert "root:" not in refused[3]["content"]
    assert snapshot(outside) == before_outside
    assert not (outside / "missing.txt").exists()
    assert snapshot(task.worktree / ".git") == before_git


async def test_a_bash_timeout_kills_the_whole_process_group(fake_api: FakeAnthropic,
                                                            tmp_path: Path) -> None:
    fake_api.script("slow", [reply(bash("echo pgid=$$; sleep 1000 & sleep 1000")),
                             reply("gave up")])
    result = await run_agent(make_task(tmp_path, "slow"), settings(bash_timeout=1.0))
    assert result.ok
    [answer] = fake_api.tool_results("slow")
    assert answer["is_error"] is True
    assert "[timed out after 1 s; the command was killed]" in answer["content"]
    pgid = int(re.search(r"pgid=(\d+)", answer["content"]).group(1))  # type: ignore[union-attr]
    assert await survivors(pgid) == []


async def test_background_jobs_do_not_outlive_their_call(tmp_path: Path) -> None:
    toolbox = Toolbox(tmp_path, ClaudeSettings())
    outcome = await toolbox.call("bash", {"command": "sleep 1000 & echo pgid=$$"})
    assert not outcome.is_error
    pgid = int(outcome.text.strip().removeprefix("pgid="))
    assert await survivors(pgid) == []


async def test_cancelling_the_agent_stops_its_command(fake_api: FakeAnthropic,
                                                      tmp_path: Path) -> None:
    marker = tmp_path / "worktree" / "pgid"
    fake_api.script("cancel", [reply(bash(f"echo $$ > {marker}; sleep 1000"))])
    with trio.move_on_after(1.5) as scope:
        await run_agent(make_task(tmp_path, "cancel"))
    assert scope.cancelled_caught
    assert await survivors(int(marker.read_text())) == []


async def test_bash_output_is_truncated_and_exit_codes_shown(tmp_path: Path) -> None:
    toolbox = Toolbox(tmp_path, ClaudeSettings(output_limit=1000))
    outcome = await toolbox.call("bash", {"command": "seq 1 100000; echo oops >&2; exit 3"})
    assert not outcome.is_error
    assert outcome.text.startswith("1\n2\n3\n")
    assert outcome.text.endswith("100000\noops\n\n[exit code 3]")
    assert "bytes of output omitted" in outcome.text
    assert len(outcome.text) < 1100
    restart = await toolbox.call("bash", {"restart": True})
    assert "fresh shell" in restart.text


async def test_view_lists_two_levels_without_hidden_entries(tmp_path: Path) -> None:
    for name in ("src/pkg/deep/x.py", "src/a.py", ".hidden/h.py", "src/.env", "top.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "src" / "elsewhere").symlink_to("/usr")
    outcome = await Toolbox(tmp_path, ClaudeSettings()).call(
        "str_replace_based_edit_tool", {"command": "view", "path": str(tmp_path)})
    assert outcome.text.splitlines()[1:] == [
        "src/", "src/a.py", "src/elsewhere", "src/pkg/", "top.txt"]


async def test_view_range_str_replace_and_insert(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_bytes(b"one\r\ntwo\r\nthree\r\ntwo\r\n")
    tools = Toolbox(tmp_path, ClaudeSettings())

    async def edit(**tool_input: object) -> tuple[str, bool]:
        outcome = await tools.call("str_replace_based_edit_tool", {"path": "f.txt", **tool_input})
        return outcome.text, outcome.is_error

    assert await edit(command="view", view_range=[3, -1]) == (
        "f.txt:\n     3\tthree\n     4\ttwo", False)
    assert (await edit(command="view", view_range=[4, 9]))[1] is True
    text, failed = await edit(command="str_replace", old_str="two", new_str="2")
    assert failed
    assert "occurs 2 times in f.txt" in text
    assert (await edit(command="str_replace", old_str="zzz"))[0].endswith(
        "`old_str` does not occur in f.txt.")
    assert not (await edit(command="str_replace", old_str="three\r\ntwo", new_str="3\r\n2"))[1]
    assert not (await edit(command="insert", insert_line=0, insert_text="zero"))[1]
    assert not (await edit(command="insert", insert_line=5, new_str="end\n"))[1]
    assert (tmp_path / "f.txt").read_bytes() == b"zero\none\r\ntwo\r\n3\r\n2\r\nend\n"
    assert (await edit(command="undo_edit"))[0].startswith("Error: unknown command 'undo_edit'")
    assert (await edit(command="insert", insert_line=99, insert_text="x"))[1] is True


async def test_create_makes_folders_and_reports_overwrites(tmp_path: Path) -> None:
    tools = Toolbox(tmp_path, ClaudeSettings())
    call = {"command": "create", "path": "a/b/c.txt", "file_text": "hi\n"}
    first = await tools.call("str_replace_based_edit_tool", call)
    again = await tools.call("str_replace_based_edit_tool", call)
    assert first.text == "Created a/b/c.txt (1 lines)."
    assert again.text == "Overwrote a/b/c.txt (1 lines)."
    assert (tmp_path / "a" / "b" / "c.txt").read_text() == "hi\n"
    folder = await tools.call("str_replace_based_edit_tool", {**call, "path": "a"})
    assert folder.is_error
    not_object = await tools.call("str_replace_based_edit_tool", "view")
    assert not_object.is_error
