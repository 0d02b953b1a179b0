"""The conflict report from a plan file (orchestrator/reporting.py): the files written after a
merge stage, and golden Markdown and GitHub renderings of one fixed scenario."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from orchestrator.plan.parse import load_plan
from orchestrator.plan.specs import resolve_spec
from orchestrator.stage.conflict_report import (
    REPORT_JSON,
    REPORT_MD,
    render_report,
    report_rows,
    write_conflict_report,
)
from tests.conftest import read_json
from tests.report_scenario import NOW, ODD_PATH, build_scenario

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.fixture
def spec_dir(repo: Path) -> Path:
    return build_scenario(repo).parent


def test_rows_come_from_the_plans_orchestrate_records(repo: Path, spec_dir: Path) -> None:
    rows = report_rows(load_plan(spec_dir / "implementation_plan.json"))
    assert [(r.id, r.phase, r.group, r.status, r.merge) for r in rows] == [
        ("setup", "1", None, "completed", "merged"), ("api", "2", "2", "completed", "merged"),
        ("ui", "2", "2", "conflict", "conflict"), ("docs", "2", "2", "completed", "merged"),
        ("lint", "2", "2", "failed", None), ("release", "3", None, "blocked", None)]


def test_write_conflict_report_writes_json_and_markdown(repo: Path, spec_dir: Path) -> None:
    spec = resolve_spec(repo, "001")
    report = write_conflict_report(spec, load_plan(spec.plan_path), now=NOW)
    data = read_json(spec_dir / REPORT_JSON)
    assert data == {**report.to_json(), "radar": []}  # no radar predictions in this plan
    assert (data["spec"], data["generated_at"]) == ("001-demo", NOW)
    assert data["summary"] == {"subtasks": 6, "merged": 3, "conflicts": 1, "overlaps": 2,
                               "failed": 1, "blocked": 1}
    assert [(s["id"], s["files_changed"]) for s in data["subtasks"]] == [
        ("setup", 1), ("api", 2), ("ui", 1), ("docs", 2), ("lint", None), ("release", None)]
    [conflict] = [c for c in data["conflicts"] if c["kind"] == "conflict"]
    assert (conflict["path"], conflict["detail"], conflict["subtasks"]) == (
        "notes.txt", "content", ["api", "ui"])
    overlaps = {c["path"]: c for c in data["conflicts"] if c["kind"] == "overlap"}
    assert overlaps[ODD_PATH]["subtasks"] == ["api", "docs"]
    assert [(h["subtask"], h["old_start"]) for h in overlaps[ODD_PATH]["hunks"]] == [
        ("api", 2), ("docs", 19)]
    markdown = (spec_dir / REPORT_MD).read_text()
    assert markdown == render_report(spec, load_plan(spec.plan_path), "md", now=NOW)
    assert stat.S_IMODE((spec_dir / REPORT_MD).stat().st_mode) == 0o644
    assert not [p for p in spec_dir.iterdir() if p.name.endswith(".tmp")]


def test_generated_at_can_be_pinned_from_the_environment(
        repo: Path, spec_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATE_NOW", "2030-05-06T07:08:09Z")
    spec = resolve_spec(repo, "001")
    assert '"generated_at": "2030-05-06T07:08:09Z"' in render_report(
        spec, load_plan(spec.plan_path), "json")


@pytest.mark.parametrize(("fmt", "golden"), [("md", "report.md"), ("github", "report.github")])
def test_renderings_match_the_golden_files(repo: Path, spec_dir: Path, fmt: str,
                                           golden: str) -> None:
    spec = resolve_spec(repo, "001")
    text = render_report(spec, load_plan(spec.plan_path), "md" if fmt == "md" else "github",
                         now=NOW)
    if os.environ.get("UPDATE_GOLDEN"):
        (GOLDEN / golden).write_text(text)
    assert text == (GOLDEN / golden).read_text()


def test_markdown_escapes_pipes_and_backticks(repo: Path, spec_dir: Path) -> None:
    spec = resolve_spec(repo, "001")
    text = render_report(spec, load_plan(spec.plan_path), "md", now=NOW)
    assert "``docs/a|b, `c`: d.md``" in text
    assert "'docs/a|b, `c`: d.md'" in text  # shell-quoted in the review command


def test_github_annotations_escape_properties_and_data(repo: Path, spec_dir: Path) -> None:
    spec = resolve_spec(repo, "001")
    lines = render_report(spec, load_plan(spec.plan_path), "github", now=NOW).splitlines()
    assert lines[0].startswith("::error file=notes.txt,line=5,title=Merge conflict (content)::")
    # an overlap spans from the first line any side changed (api: 2) to the last (docs: 19)
    assert lines[1].startswith("::warning file=docs/a|b%2C `c`%3A d.md,line=2,endLine=19,")
    assert len(lines) == 2  # notes.txt's overlap is folded into its conflict's error
    assert lines[0].endswith("The file is also an overlap (same lines) of api, ui.")
