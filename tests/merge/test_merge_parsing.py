"""The parsers under the merge stage: `git diff` into changes with line ranges, and
`git merge-tree -z` output into typed conflicts, including awkward file names."""

from __future__ import annotations

from pathlib import Path

import pytest

from merge.changes import branch_changes
from merge.conflicts import MergeMessage, UnexpectedOutput, conflicts_from, parse_merge_tree
from merge.integrate import merge_tree
from tests.conftest import commit_files
from tests.merge_helpers import LINES, edit, start

ODD = "we|ird `name`\nwith newline.txt"


def test_changes_have_paths_renames_binary_flags_and_line_ranges(repo: Path) -> None:
    body = "".join(f"entry {i} with enough text to be a rename\n" for i in range(30))
    base = start(repo, {"notes.txt": LINES, "old.txt": body, "gone.txt": "x\n",
                        "img.bin": b"\x00base"})
    head = commit_files(repo, base, {
        "notes.txt": edit(edit(LINES, 3, "three"), 15, "fifteen") + "line 21\n",
        "old.txt": None, "new name.txt": edit(body, 10, "changed"), "gone.txt": None,
        "img.bin": b"\x00head", ODD: "odd\n"}, "change")
    files = {f.path: f for f in branch_changes(repo, base, head).files}
    assert sorted(files) == sorted(["notes.txt", "new name.txt", "gone.txt", "img.bin", ODD])
    notes = files["notes.txt"]
    assert [(h.old_start, h.old_lines, h.new_start, h.new_lines) for h in notes.hunks] == [
        (3, 1, 3, 1), (15, 1, 15, 1), (20, 0, 21, 1)]
    assert notes.hunks[0].excerpt == ("-line 3", "+three")
    renamed = files["new name.txt"]
    assert (renamed.status, renamed.old_path, renamed.paths) == (
        "R", "old.txt", ("old.txt", "new name.txt"))
    assert [(h.old_start, h.new_start) for h in renamed.hunks] == [(10, 10)]
    assert (files["gone.txt"].status, files["gone.txt"].hunks[0].old_lines) == ("D", 1)
    assert files["img.bin"].binary
    assert files["img.bin"].hunks == ()
    assert files[ODD].status == "A"


def test_conflicted_names_with_newlines_pipes_and_digits_parse(repo: Path) -> None:
    base = start(repo, {ODD: LINES, "7": LINES})
    ours = commit_files(repo, base, {ODD: edit(LINES, 1, "ours"), "7": edit(LINES, 2, "o")},
                        "ours")
    theirs = commit_files(repo, base, {ODD: edit(LINES, 1, "theirs"),
                                       "7": edit(LINES, 2, "t")}, "theirs")
    merged = merge_tree(repo, ours, theirs)
    assert not merged.clean
    assert set(merged.conflicted_paths) == {ODD, "7"}
    assert {(c.path, c.kind) for c in merged.conflicts} == {(ODD, "content"), ("7", "content")}


def test_merge_tree_output_format_as_measured_on_git_2_39() -> None:
    tree = "a" * 40
    out = (f"{tree}\0fd~B\0bin\0\0"
           "2\0fd~B\0fd\0CONFLICT (file/directory)\0CONFLICT (file/directory): directory "
           "in the way of fd from B; moving it to fd~B instead.\n\0"
           "1\0fd~B\0CONFLICT (modify/delete)\0CONFLICT (modify/delete): fd~B deleted\n\0"
           "1\0bin\0CONFLICT (binary)\0warning: Cannot merge binary files: bin\n\0"
           "1\0bin\0Auto-merging\0Auto-merging bin\n\0"
           "1\0bin\0CONFLICT (contents)\0CONFLICT (content): Merge conflict in bin\n\0")
    parsed = parse_merge_tree(out, clean=False)
    assert (parsed.tree, parsed.conflicted_paths) == (tree, ("fd~B", "bin"))
    assert [m.type for m in parsed.messages][-1] == "CONFLICT (contents)"
    assert [(c.path, c.kind, c.paths) for c in parsed.conflicts] == [
        ("fd", "file/directory", ("fd", "fd~B")), ("bin", "binary", ("bin",))]


def test_a_later_specific_kind_replaces_plain_content() -> None:
    messages = [MergeMessage(("x",), "CONFLICT (contents)", "CONFLICT (content): in x"),
                MergeMessage(("x",), "CONFLICT (binary)", "warning: Cannot merge binary x")]
    assert [(c.path, c.kind) for c in conflicts_from(messages, ["x", "y"])] == [
        ("x", "binary"), ("y", "unknown")]


@pytest.mark.parametrize("out", ["fatal: bad revision\n", "a" * 40 + "\0\0" + "3\0x\0"])
def test_output_without_a_tree_or_with_cut_messages_is_refused(out: str) -> None:
    with pytest.raises(UnexpectedOutput):
        parse_merge_tree(out, clean=False)
