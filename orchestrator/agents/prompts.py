"""The prompt an agent gets: the spec, the plan context, its subtask, and earlier failures."""

from __future__ import annotations

import json
from collections.abc import Sequence

from merge import Finding, describe_hunk
from orchestrator.plan.model import Plan, Subtask
from orchestrator.plan.specs import Spec

SPEC_LIMIT = 60_000
FEEDBACK_LIMIT = 6_000

RULES = """\
## Rules
- Work only inside the current directory (a git worktree made for this subtask).
- Do not commit, do not switch or create branches, do not rebase: the orchestrator commits your
  work on branch {branch} when you finish and merges it.
- Do only this subtask; other subtasks run at the same time in other worktrees.
- Do not use `git stash`: every worktree shares one stash, so it would take or hand out other
  subtasks' work (a stash written while agents run fails their attempts).
- When the subtask is done, stop. (A command-line agent exits with status 0 then, and with
  a non-zero status if it could not do the subtask.)"""


def build_prompt(spec: Spec, plan: Plan, subtask: Subtask, branch: str,
                 feedback: str = "") -> str:
    parts = [f"# Subtask {subtask.id}: {subtask.title}", _describe_subtask(subtask)]
    feature = plan.raw.get("feature")
    context = [f"Spec: {spec.name}"]
    if isinstance(feature, str):
        context.append(f"Feature: {feature}")
    context.append(f"Phase: {subtask.phase.label}"
                   + (f" [{subtask.phase.raw['type']}]" if "type" in subtask.phase.raw else ""))
    parts.append("## Context\n" + "\n".join(context))
    spec_text = _spec_text(spec)
    if spec_text:
        parts.append("## Specification (spec.md)\n" + spec_text)
    parts.append(RULES.format(branch=branch))
    if feedback:
        parts.append("## The previous attempt failed\nFix the problem shown below.\n\n```\n"
                     + feedback[-FEEDBACK_LIMIT:].replace("```", "'''") + "\n```")
    return "\n\n".join(parts) + "\n"


def _describe_subtask(subtask: Subtask) -> str:
    lines = [subtask.description.strip() or str(subtask.id)]
    for field, label in (("files_to_modify", "Files to modify"),
                         ("files_to_create", "Files to create"),
                         ("patterns_from", "Follow the patterns in")):
        if paths := subtask.paths(field):
            lines.append(f"{label}: " + ", ".join(paths))
    if command := subtask.verification_command:
        lines.append(f"Verification (run by the orchestrator after you finish): `{command}`")
        if expected := subtask.verification_expected:
            lines.append(f"Expected result: {expected}")
    elif subtask.verification_skipped:
        lines.append(f"Acceptance ({subtask.verification_type} check, done by a person or "
                     "another tool, not run by the orchestrator): "
                     + json.dumps(subtask.raw["verification"], ensure_ascii=False))
    elif "verification" in subtask.raw:
        lines.append("Acceptance: " + json.dumps(subtask.raw["verification"], ensure_ascii=False))
    return "\n".join(lines)


def _spec_text(spec: Spec) -> str:
    path = spec.folder / "spec.md"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text if len(text) <= SPEC_LIMIT else text[:SPEC_LIMIT] + "\n[spec.md truncated]"


RESOLUTION_RULES = """\
## Rules for this round
- This worktree is on branch {branch} in the middle of
  `git merge --no-ff --no-commit {integration}`: the integration branch's head {head} is being
  merged into your branch, and git left conflict markers (<<<<<<<, =======, >>>>>>>) where it
  could not merge.
- Resolve every path listed above so that the result keeps the intent of BOTH sides: your
  subtask's work and the work of the other subtasks. Remove every conflict marker.
- You may look around with `git status`, `git diff`, `git log` and `git show`. Do not commit,
  and do not abort, continue or undo the merge (no `git commit`, `git merge --abort`,
  `git reset`, `git checkout`, `git switch`, `git stash`): the orchestrator checks the result,
  runs the verification and commits the merge on {branch} when you finish.
- When the conflicts are resolved, stop. (A command-line agent exits with status 0 then, and
  with a non-zero status if it could not resolve them.)"""
EXCERPT_LIMIT = 40  # lines per side and path in a resolution prompt


def build_resolution_prompt(plan: Plan, subtask: Subtask, *, branch: str, integration: str,
                            head: str, round_: int, attempts: int, paths: Sequence[str],
                            findings: Sequence[Finding], check_output: str = "") -> str:
    """The prompt of a resolution round (SPEC 10): the conflicted paths, the subtasks on the
    other side and their descriptions, both sides' excerpts from the conflict report and,
    for a check failure, the check's output."""
    parts = [f"# Resolve the merge of {integration} into subtask {subtask.id} "
             f"(round {round_} of {attempts})",
             f"Your subtask, {subtask.id}: {subtask.title}\n\n{_describe_subtask(subtask)}",
             "## Paths to resolve\n" + _resolution_paths(paths, findings, subtask.id)]
    others = [s for s in plan.subtasks() if s.id != subtask.id
              and any(s.id in f.subtasks for f in findings)]
    if others:
        parts.append("## The other side\n" + "\n".join(
            f"- {s.id}: {s.title}" + (f"\n  {_indent(s.description.strip())}"
                                      if s.description.strip() != s.title else "")
            for s in others))
    if excerpts := [_finding_excerpts(f) for f in findings]:
        parts.append("## Both sides' changes (from the conflict report)\n\n"
                     + "\n\n".join(excerpts))
    if check_output:
        parts.append("## The check failed on the combined result\nMake it pass.\n\n```\n"
                     + check_output[-FEEDBACK_LIMIT:].replace("```", "'''") + "\n```")
    parts.append(RESOLUTION_RULES.format(branch=branch, integration=integration,
                                         head=head[:12]))
    return "\n\n".join(parts) + "\n"


def _resolution_paths(paths: Sequence[str], findings: Sequence[Finding], me: str) -> str:
    lines = []
    for path in dict.fromkeys([*paths, *(f.path for f in findings)]):
        found = next((f for f in findings if f.path == path), None)
        others = [s for s in (found.subtasks if found else ()) if s != me]
        detail = f" ({found.detail})" if found else ""
        against = f": conflicts with {', '.join(others)}" if others else ""
        lines.append(f"- {path}{detail}{against}")
    return "\n".join(lines) or "- (none: git merged cleanly; see below why it was not merged)"


def _finding_excerpts(finding: Finding) -> str:
    lines = [f"### {finding.path} ({finding.detail})"]
    if finding.message:
        lines.append(finding.message)
    for side in finding.sides:
        change = side.change
        if change is None or not change.hunks:
            what = "no line changes" if change else "did not change this path"
            lines.append(f"{side.subtask_id} ({side.branch}): {what}")
            continue
        ranges = "; ".join(describe_hunk(h) for h in change.hunks)
        excerpt = [line for h in change.hunks for line in h.excerpt][:EXCERPT_LIMIT]
        lines.append(f"{side.subtask_id} ({side.branch}): {ranges}\n```diff\n"
                     + "\n".join(excerpt).replace("```", "'''") + "\n```")
    return "\n".join(lines)


def _indent(text: str) -> str:
    return text.replace("\n", "\n  ")
