"""The prompt an agent gets: the spec, the plan context, its subtask, and earlier failures."""

from __future__ import annotations

import json

from orchestrator.plan import Plan, Subtask
from orchestrator.specs import Spec

SPEC_LIMIT = 60_000
FEEDBACK_LIMIT = 6_000

RULES = """\
## Rules
- Work only inside the current directory (a git worktree made for this subtask).
- Do not commit, do not switch or create branches, do not rebase: the orchestrator commits your
  work on branch {branch} when you finish and merges it.
- Do only this subtask; other subtasks run at the same time in other worktrees.
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
