"""The conflict report as a pull-request comment a reviewer can act on.

Every user-controlled string (paths, ids, branch names, file content, git messages) goes
through `code` (a code span that survives backticks, and pipes inside tables) or `fence`
(a code block whose fence is longer than any backtick run inside it). Inside fences a name
stays on its line: git's messages show it with its line breaks escaped, shell commands quote it
with bash's ANSI-C quotes. So that a CI job printing the report never emits a GitHub workflow
command, no line of the report starts with `::`, even after leading blanks (the runner strips
them): a line that would (file content in an excerpt) gets a zero-width space between the
colons.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from merge.changes import Hunk
from merge.report import ConflictReport, Finding, Resolution, Side, SubtaskRow

MAX_HUNKS = 3  # per side; the JSON report has them all
LINE_WIDTH = 100  # no line of a code block is wider: a rendered page does not scroll


@dataclass(frozen=True)
class Places:
    """Where the caller keeps things, relative to the repository root (merge/ names none)."""

    worktree_root: str  # a subtask's worktree is <worktree_root>/<spec>/<subtask>
    scratch_dir: str  # a folder the user may check a commit out into


def render_markdown(report: ConflictReport, places: Places) -> str:
    parts = [_title(report), _summary(report), _table(report.subtasks)]
    if not (report.findings or report.resolutions() or report.resolved_by_hand()):
        parts.append("No conflicts or overlaps.")
    conflicts = report.conflicts()
    for number, finding in enumerate(conflicts, 1):
        parts.append(_conflict(report, finding, number, report.folded_overlaps(finding),
                              places))
    for number, finding in enumerate(report.unfolded_overlaps(), 1):
        parts.append(_overlap(report, finding, number))
    for number, finding in enumerate(report.check_failures(), 1):
        parts.append(_check_failure(report, finding, number, places))
    if report.check and report.check.get("flaky"):
        parts.append(_flaky(report.check))
    parts += _declared_files(report)
    for number, resolution in enumerate(report.resolutions(), 1):
        parts.append(_resolved(report, resolution, number))
    if report.resolved_by_hand():
        parts.append(_resolved_by_hand(report))
    return no_workflow_commands("\n\n".join(parts) + "\n")


def _resolved_by_hand(report: ConflictReport) -> str:
    lines = ["### Resolved by hand", "Conflicts fixed on the subtask's branch, then merged with "
             f"{code('orchestrate merge ' + report.spec)}:"]
    for row in report.resolved_by_hand():
        hand = row.resolved_by_hand
        if hand is not None:
            what = {"check": "check failure", "overlap": "blocked overlap"}.get(hand.kind,
                                                                                 "conflict")
            where = f" in {', '.join(code(p) for p in hand.paths)}" if hand.paths else ""
            lines.append(f"- {code(row.id)}: {what}{where} resolved by hand in "
                         f"{code(hand.commit[:12])}")
    return lines[0] + "\n\n" + lines[1] + "\n" + "\n".join(lines[2:])


def _declared_files(report: ConflictReport) -> list[str]:
    """SPEC 11: edits outside a subtask's declared files, predictions that did not happen."""
    parts = []
    undeclared = [r for r in report.subtasks if r.undeclared]
    if undeclared:
        parts.append("### Undeclared edits\n\nPaths a subtask changed without declaring them "
                     "in `files_to_modify` or `files_to_create`:")
        parts.append("\n".join(f"- {code(r.id)}: " + ", ".join(code(p) for p in r.undeclared or ())
                               for r in undeclared))
    if report.unrealised:
        parts.append("### Predicted overlaps that did not happen\n\nTheir declared files "
                     "intersect, but their changes share no path:")
        parts.append("\n".join(f"- {code(p.subtasks[0])} and {code(p.subtasks[1])} "
                               f"(phase {code(p.group)})" for p in report.unrealised))
    return parts


def _resolved(report: ConflictReport, resolution: Resolution, number: int) -> str:
    paths = ", ".join(code(p) for p in resolution.paths if p) or (
        "the check" if resolution.kind == "check" else "its branch")
    others = ", ".join(code(s) for s in resolution.subtasks)
    against = f" with {others}" if others else ""
    what = {"check": "failed the check", "overlap": "was blocked by an overlap"}.get(
        resolution.kind, "conflicted")
    branch = next((r.branch for r in report.subtasks if r.id == resolution.subtask_id), None)
    where = f" (a merge commit on {code(branch)})" if branch else ""
    return (f"### Resolved {number}: {paths} ({resolution.kind})\n\n"
            f"{code(resolution.subtask_id)} {what}{against}; resolved by agent in round "
            f"{resolution.round}{where}, then merged.")


def _title(report: ConflictReport) -> str:
    return f"## orchestrate: {code(report.spec)}"


def _summary(report: ConflictReport) -> str:
    s = report.summary()
    headline = f"{_count(s['conflicts'], 'conflict')}, {_count(s['overlaps'], 'overlap')}"
    base = f" from {code(report.base[:12])}" if report.base else ""
    checked = ""
    if report.check is not None:
        checked = (f" Check {code(str(report.check.get('command')))}: "
                   f"{_count(s['check_runs'], 'run')} (a sequential gate: "
                   f"{s['check_runs_sequential']}), {s['check_failed']} left out, "
                   f"{s['check_flaky']} flaky.")
    cost = "" if report.cost_usd is None else f" Cost {report.cost_usd:.2f} USD."
    return (f"**{headline}**: {s['merged']} of {s['subtasks']} subtasks merged into "
            f"{code(report.integration_branch)}{base}; {s['failed']} failed, "
            f"{s['blocked']} blocked.{checked}{cost}{_sandbox(report)} "
            f"Generated {report.generated_at}.")


def _sandbox(report: ConflictReport) -> str:
    """` Sandbox: bwrap.`, and the connections its egress proxy refused, per subtask."""
    if report.sandbox is None:
        return ""
    refused = report.sandbox.get("egress_refused") or {}
    listed = ", ".join(f"{code(str(s))} ({n})" for s, n in refused.items())
    return (f" Sandbox: {report.sandbox.get('text') or report.sandbox.get('mode')}."
            + (f" Egress refused: {listed}." if listed else ""))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _table(rows: tuple[SubtaskRow, ...]) -> str:
    lines = ["| Subtask | Phase | Status | Branch | Files changed | Merge |",
             "| --- | --- | --- | --- | ---: | --- |"]
    for row in rows:
        cells = [code(row.id), code(row.phase), row.status, code(row.branch or "-"),
                 "-" if row.files_changed is None else str(row.files_changed),
                 (row.merge or "-") + (" (no changes)" if row.no_changes else "")]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    # GitHub splits table rows on `|` even inside code spans; `\|` is its escape there too.
    return text.replace("|", "\\|")


def _conflict(report: ConflictReport, finding: Finding, number: int,
              overlaps: list[Finding], places: Places) -> str:
    others = [code(s) for s in finding.subtasks if s != finding.subtask]
    against = f": it conflicts with {', '.join(others)}" if others else ""
    also = "".join(f"; overlap: {o.detail}" for o in overlaps)
    parts = [f"### Conflict {number}: {code(finding.path)} ({finding.detail}{also})",
             f"{code(finding.subtask)} was not merged into "
             f"{code(report.integration_branch)}{against}."]
    for overlap in overlaps:
        who = ", ".join(code(s) for s in overlap.subtasks)
        parts.append(f"The file is also an overlap ({overlap.detail}): changed by {who} in "
                     "the same parallel phase.")
    if finding.message:
        parts.append(fence(_quoted_message(finding), "text"))
    shown = {s.subtask_id for s in finding.sides}
    extra = [s for o in overlaps for s in o.sides if s.subtask_id not in shown]
    parts += [_side(side) for side in (*finding.sides, *extra)]
    parts += ["To resolve, from the repository root:",
              fence(_resolve_commands(report, finding, places), "sh")]
    return "\n\n".join(parts)


def _overlap(report: ConflictReport, finding: Finding, number: int) -> str:
    who = ", ".join(code(s) for s in finding.subtasks)
    state = ("merged cleanly; check that the combined result is right" if finding.merged
             else "not all of them are merged (see the conflicts above)")
    if finding.merged and (hand := report.hand_resolution_of(finding)):
        state = (f"the conflict was resolved by hand in {code(hand[1][:12])} "
                 f"({code(hand[0])}); check that the combined result is right")
    if finding.sequential:
        state = ("one after another: each started from the earlier ones' merged work "
                 "(waves of declared files); " + state)
    if finding.merged and (by := report.resolution_of(finding)):
        state = (f"resolved by agent in round {by.round} ({code(by.subtask_id)}); check that "
                 "the combined result is right")
    parts = [f"### Overlap {number}: {code(finding.path)} ({finding.detail})",
             f"Changed by {who} in the same parallel phase; {state}."]
    parts += [_side(side) for side in finding.sides]
    first = finding.subtasks[0] if finding.sequential else finding.subtask  # the oldest base
    base = next((r.base for r in report.subtasks if r.id == first and r.base), None)
    if base and finding.merged:
        command = ["git", "diff", base[:12], report.integration_branch, "--", finding.path]
        parts += ["Review the combined result:", fence(wrap_shell(command), "sh")]
    return "\n\n".join(parts)


def _check_failure(report: ConflictReport, finding: Finding, number: int,
                   places: Places) -> str:
    check = finding.check or {}
    commit, command = str(check.get("commit") or ""), str(check.get("command") or "")
    worktree = f"{places.scratch_dir}/check-{commit[:12]}"
    parts = [f"### Check failure {number}: {code(finding.subtask)} was left out",
             f"{code(finding.subtask)} ({code(finding.branches[0])}) merges cleanly, but the "
             f"check {code(command)} {_how_it_fails(check)} on "
             f"{code(commit[:12])}, the first commit of the chain that has it; "
             f"{code(report.integration_branch)} does not contain it. "
             f"Log (in the spec's folder): {code(spec_relative(str(check.get('log') or '-')))}."]
    if finding.message:
        parts.append(fence(finding.message, "text"))
    reproduce = [wrap_shell(["git", "worktree", "add", "--detach", worktree, commit]),
                 wrap_shell(["cd", worktree]), command, "cd -",
                 wrap_shell(["git", "worktree", "remove", "--force", worktree])]
    parts += ["To reproduce, from the repository root:", fence("\n".join(reproduce), "sh"),
              f"Fix it on {code(finding.branches[0])} (merge "
              f"{code(report.integration_branch)} into it first), then run "
              f"{code('orchestrate merge ' + report.spec)}."]
    return "\n\n".join(parts)


def spec_relative(path: str) -> str:
    """A log's path from its spec folder (`logs/check-….log`): a report pasted into a pull
    request must not carry a local absolute path (a home folder, a user name)."""
    return "/".join(path.rsplit("/", 2)[-2:])


def _how_it_fails(check: dict[str, object]) -> str:
    if check.get("exit_code") == 124 and "(check_timeout)]" in str(check.get("output") or ""):
        return "times out (check_timeout)"
    return f"fails (exit {check.get('exit_code')})"


def _flaky(check: dict[str, object]) -> str:
    runs = check.get("flaky")
    lines = ["### Flaky checks",
             "The check failed, then passed when rerun, on these commits:"]
    for run in runs if isinstance(runs, list) else []:
        if isinstance(run, dict):
            lines.append(f"- {code(str(run.get('commit', ''))[:14])}: log "
                         f"{code(spec_relative(str(run.get('log', ''))))}")
    return "\n".join(lines)


def _side(side: Side) -> str:
    head = f"**{code(side.subtask_id)}** ({code(side.branch)})"
    change = side.change
    if change is None:
        return f"{head}: did not change this path."
    if change.binary:
        return f"{head}: {_status(change.status)} a binary file."
    if not change.hunks:
        return f"{head}: {_status(change.status)} the file, no line changes."
    shown = [f"{head}: " + "; ".join(describe_hunk(h) for h in change.hunks[:MAX_HUNKS])]
    if len(change.hunks) > MAX_HUNKS:
        shown[0] += f"; and {len(change.hunks) - MAX_HUNKS} more hunks"
    excerpt = [line for h in change.hunks[:MAX_HUNKS] for line in h.excerpt]
    if excerpt:
        shown.append(fence("\n".join(excerpt), "diff"))
    return "\n\n".join(shown)


def _status(status: str) -> str:
    return {"A": "added", "D": "deleted", "R": "renamed", "C": "copied",
            "T": "changed the type of"}.get(status, "changed")


def describe_hunk(hunk: Hunk) -> str:
    """`changed lines 5–6`, `added line 9`, `removed lines 3–4`: the branch's lines (the
    base's for a removal), and the base's range too when it differs."""
    if not hunk.old_lines:
        return "added " + _span(hunk.new_start, hunk.new_lines)
    if not hunk.new_lines:
        return "removed " + _span(hunk.old_start, hunk.old_lines)
    now = _span(hunk.new_start, hunk.new_lines)
    before = _span(hunk.old_start, hunk.old_lines)
    return f"changed {now}" if now == before else f"changed {before} (now {now})"


def _span(start: int, count: int) -> str:
    return f"line {start}" if count == 1 else f"lines {start}\u2013{start + count - 1}"


def _resolve_commands(report: ConflictReport, finding: Finding, places: Places) -> str:
    branch = next(s.branch for s in finding.sides if s.subtask_id == finding.subtask)
    worktree = f"{places.worktree_root}/{report.spec}/{finding.subtask}"
    return "\n".join([
        _either(["test", "-d", worktree], ["git", "worktree", "add", worktree, branch]),
        wrap_shell(["cd", worktree]),
        wrap_shell(["git", "merge", report.integration_branch]),
        _clip(f"# resolve {_comment(finding.path)}, then:"),
        "git add -A",
        "git commit --no-edit",
        "cd -",
        wrap_shell(["orchestrate", "merge", report.spec]),
    ])


def wrap_shell(words: list[str], *, indent: str = "", width: int = LINE_WIDTH) -> str:
    """`words` as one quoted shell command, folded with ` \\` continuations so that no line
    is wider than `width` where the words allow it. A command that fits stays on one line."""
    tokens = [_shell_word(w) for w in words]
    lines = [indent + tokens[0]]
    for token in tokens[1:]:
        if len(lines[-1]) + 1 + len(token) + 2 <= width:
            lines[-1] += " " + token
        else:
            lines[-1] += " \\"
            lines.append(indent + "    " + token)
    one = indent + " ".join(tokens)
    return one if len(one) <= width else "\n".join(lines)


def _either(first: list[str], second: list[str]) -> str:
    """`first || second`, the second on its own line when the pair does not fit."""
    one = f"{wrap_shell(first)} || {wrap_shell(second)}"
    if "\n" not in one and len(one) <= LINE_WIDTH:
        return one
    return f"{wrap_shell(first)} ||\n{wrap_shell(second, indent='    ')}"


def _clip(line: str, width: int = LINE_WIDTH) -> str:
    return line if len(line) <= width else line[:width - 1] + "\u2026"


def _shell_word(word: str) -> str:
    """`word` quoted for the shell on one line: control characters as bash's `$'\\n'`."""
    if not any(_unsafe(c) for c in word):
        return shlex.quote(word)
    escaped = "".join(_ANSI_C.get(c) or (_octets(c) if _unsafe(c) else c) for c in word)
    return f"$'{escaped}'"


def _octets(char: str) -> str:
    """`char` as the bytes of its UTF-8 form, which bash's `$'\\xHH'` gives back whatever
    the locale."""
    return "".join(f"\\x{byte:02x}" for byte in char.encode())


_ANSI_C = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _unsafe(char: str) -> bool:
    return ord(char) < 0x20 or ord(char) == 0x7F or bool(_LINE_BREAK.fullmatch(char))


def _comment(text: str) -> str:
    """`text` on one line: its line breaks escaped (`\\n`, `\\r`, `\\x0b`, `\\u2028`...)."""
    return _LINE_BREAK.sub(lambda m: "".join(_escaped(c) for c in m.group()), text)


def _escaped(char: str) -> str:
    return {"\n": "\\n", "\r": "\\r"}.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def _quoted_message(finding: Finding) -> str:
    """git's message, each name of the finding in it with its line breaks escaped."""
    message = finding.message
    for path in sorted({finding.path, *finding.paths}, key=len, reverse=True):
        if path != _comment(path):
            message = message.replace(path, _comment(path))
    return message


def code(text: str) -> str:
    """`text` as an inline code span, whatever backticks or line breaks it holds."""
    text = _LINE_BREAK.sub(" ", text)
    ticks = "`" * (_longest_run(text, "`") + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fence(text: str, info: str = "") -> str:
    """A code block; lines wider than LINE_WIDTH are cut with `…` (shell commands are folded
    by wrap_shell before they get here, so they stay runnable)."""
    ticks = "`" * max(3, _longest_run(text, "`") + 1)
    body = text.rstrip("\n")
    if info != "sh":
        body = "\n".join(_clip(line) for line in body.split("\n"))
    return f"{ticks}{info}\n{body}\n{ticks}"


# What any reader may take for the end of a line: the runner's (.NET ReadLine: \r, \n) and
# Python's str.splitlines.
_LINE_BREAK = re.compile("(\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029])")


def no_workflow_commands(text: str) -> str:
    """`text` with a zero-width space after the first colon of each line that the runner
    would read as a workflow command (`::name ...::`, leading blanks stripped)."""
    parts = _LINE_BREAK.split(text)
    for n in range(0, len(parts), 2):  # the even parts are the lines, the odd the breaks
        line = parts[n]
        blank = len(line) - len(line.lstrip())
        if line[blank:].startswith("::"):
            parts[n] = f"{line[:blank]}:\u200b{line[blank + 1:]}"
    return "".join(parts)


def _longest_run(text: str, char: str) -> int:
    return max((len(m) for m in re.findall(re.escape(char) + "+", text)), default=0)
