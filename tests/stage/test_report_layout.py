"""The Markdown conflict report as a reader sees it: rendered to HTML by a Markdown library
(markdown-it-py, CommonMark like GitHub), every line of every code block fits in 100
characters; one section per file; `report --exit-code`.

Real repositories and merges (integrate()), plans with the records a build writes, and the
spawned `orchestrate report`."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from merge.integrate import integrate
from tests.conftest import git, run_cli, write_plan
from tests.merge_helpers import INTEGRATION, LINES, SPEC, candidate, edit, start
from tests.report_scenario import build_scenario

WIDTH = 100
# ids as long as Auto-Claude writes them; a single word wider than 100 cannot be folded
MODEL = "subtask-1-1-add-user-model-and-migration"
VIEWS = "subtask-1-2-add-user-serializer-views-and-routes"
CHECKED = "subtask-1-3-wire-the-user-model-into-the-admin"
LONG_PATH = "src/accounts/models/user_model_with_migrations_and_serializers_and_views.py"
SETTINGS = "src/accounts/settings/defaults_for_the_accounts_application_module.py"
WIDE = "x = " + "'a very long line of source code that no reviewer wants to scroll' + " * 3


def code_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, text) of every code block in the HTML that markdown-it renders."""
    rendered = MarkdownIt("commonmark").render(markdown)
    blocks = re.findall(r'<pre><code(?: class="language-([^"]*)")?>(.*?)</code></pre>',
                        rendered, flags=re.S)
    return [(lang, html.unescape(text)) for lang, text in blocks]


def wide_lines(markdown: str) -> list[str]:
    return [line for _, text in code_blocks(markdown) for line in text.splitlines()
            if len(line) > WIDTH]


def record(c: Any, merged: bool, merge_commit: str | None) -> dict[str, Any]:
    return {"branch": c.branch, "base": c.base, "head": c.head, "attempts": 1,
            "merge": "merged" if merged else "conflict", "merge_commit": merge_commit}


def build_long_scenario(repo: Path) -> Path:
    """Long ids and paths, source lines of 200 characters, a check whose output is wider still:
    a conflict (with its overlap), an overlap of separate hunks, and a check failure."""
    base = start(repo, {LONG_PATH: LINES, SETTINGS: LINES})
    model = candidate(repo, base, MODEL, {LONG_PATH: edit(LINES, 5, WIDE + "# model"),
                                          SETTINGS: edit(LINES, 2, WIDE + "# model")})
    views = candidate(repo, base, VIEWS, {LONG_PATH: edit(LINES, 5, WIDE + "# views"),
                                          SETTINGS: edit(LINES, 17, WIDE + "# views")})
    checked = candidate(repo, base, CHECKED, {"admin.py": "register()\n"})
    results = integrate(repo, INTEGRATION, [model, views])
    assert [r.outcome for r in results] == ["merged", "conflict"]
    check = {"command": "python -m pytest -q tests/accounts/test_user_model_and_migrations.py "
                        "--maxfail=1 -x",
             "exit_code": 1, "commit": git(repo, "rev-parse", INTEGRATION),
             "log": f".orchestrate/specs/{SPEC}/logs/check-0123456789ab.log",
             "output": "E   AssertionError: " + "expected the admin site to list the user " * 6}
    subtasks = [
        {"id": MODEL, "status": "completed",
         "orchestrate": record(model, True, results[0].merge_commit)},
        {"id": VIEWS, "status": "conflict", "orchestrate": record(views, False, None)},
        {"id": CHECKED, "status": "conflict",
         "orchestrate": {**record(checked, False, None), "merge": "check_failed",
                         "check": check}},
    ]
    plan = {"orchestrate": {"integration_branch": INTEGRATION, "base": base},
            "phases": [{"phase": 1, "name": "Accounts", "parallel_safe": True,
                        "subtasks": subtasks}]}
    return write_plan(repo, SPEC, plan)


def test_every_code_block_line_of_the_rendered_report_fits_in_100_characters(
        repo: Path) -> None:
    build_long_scenario(repo)
    markdown = run_cli(repo, "report", SPEC, check=0).stdout
    blocks = code_blocks(markdown)
    # the scenario is not vacuous: wide diffs, check output and commands are all there
    assert {lang for lang, _ in blocks} >= {"diff", "sh", "text"}
    assert any(WIDE[:60] in text for lang, text in blocks if lang == "diff")
    assert any(len(line) > WIDTH for line in WIDE.splitlines())
    assert wide_lines(markdown) == []
    commands = "\n".join(text for lang, text in blocks if lang == "sh")
    assert f"git merge {INTEGRATION}" in commands
    assert " \\\n    " in commands or " ||\n    " in commands  # folded, not cut
    assert "…" not in commands
    assert "…" in markdown  # the wide source lines and the check output were cut


def test_the_fixed_scenarios_code_blocks_fit_too(repo: Path) -> None:
    build_scenario(repo)
    markdown = run_cli(repo, "report", "001", check=0).stdout
    assert code_blocks(markdown)
    assert wide_lines(markdown) == []


def test_a_conflicting_file_has_one_section_with_its_overlap_folded_in(repo: Path) -> None:
    build_long_scenario(repo)
    markdown = run_cli(repo, "report", SPEC, check=0).stdout
    headings = [line for line in markdown.splitlines() if line.startswith("### ")]
    assert headings == [f"### Conflict 1: `{LONG_PATH}` (content; overlap: same lines)",
                        f"### Overlap 1: `{SETTINGS}` (separate hunks)",
                        f"### Check failure 1: `{CHECKED}` was left out"]
    section = markdown.split("### Conflict 1")[1].split("### Overlap 1")[0]
    assert section.count("```diff") == 2  # each side once
    assert "The file is also an overlap (same lines)" in section
    assert "changed line 5" in section
    assert "base line" not in markdown
    assert "->" not in markdown
    overlap = markdown.split("### Overlap 1")[1]
    assert "changed line 2" in overlap
    assert "changed line 17" in overlap
    data = run_cli(repo, "report", SPEC, "--format", "json", check=0).stdout
    # the JSON keeps both entries (SPEC 8): the conflict and the overlap of the same path
    assert data.count(f'"path": "{LONG_PATH}"') == 2


def test_overlap_annotations_span_from_the_first_changed_line_to_the_last(repo: Path) -> None:
    build_long_scenario(repo)
    out = run_cli(repo, "report", SPEC, "--format", "github", check=0).stdout
    [warning] = [line for line in out.splitlines() if f"file={SETTINGS}" in line]
    assert f"::warning file={SETTINGS},line=2,endLine=17," in warning
    [error] = [line for line in out.splitlines() if line.startswith("::error file=")]
    assert error.startswith(f"::error file={LONG_PATH},line=5,title=")


@pytest.mark.slow
def test_report_exit_code_is_1_with_conflicts_or_check_failures_and_0_otherwise(
        repo: Path) -> None:
    plan_path = build_long_scenario(repo)
    assert run_cli(repo, "report", SPEC, check=0).returncode == 0  # without the flag
    for fmt in ("md", "json", "github"):
        done = run_cli(repo, "report", SPEC, "--format", fmt, "--exit-code", check=1)
        assert done.stdout  # the report is still printed
    plan = json.loads(plan_path.read_text())
    del plan["phases"][0]["subtasks"][1]  # only the check failure is left: still 1
    write_plan(repo, SPEC, plan)
    run_cli(repo, "report", SPEC, "--exit-code", check=1)
    del plan["phases"][0]["subtasks"][1]
    write_plan(repo, SPEC, plan)
    run_cli(repo, "report", SPEC, "--exit-code", check=0)  # merged work only
