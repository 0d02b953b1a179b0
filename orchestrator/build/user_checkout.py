"""The one-line note at build start about edits in the user's checkout that agents will not
see: one read-only `git status` (no optional locks, so the user's index is never written),
at the lowest CPU priority beside the first agents."""

from __future__ import annotations

from pathlib import Path

from orchestrator import names
from orchestrator.door.processes import git

IGNORED_ROOTS = tuple(f":(exclude){folder}" for folder in names.PRIVATE_DIRS)


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


async def checkout_note(repo: Path, start_name: str, start_commit: str) -> str | None:
    """"note: ..." when the checkout has uncommitted or untracked files, else None."""
    found = await git(repo, "--no-optional-locks", "status", "--porcelain=v1", "-z",
                      "--untracked-files=normal", "--", ".", *IGNORED_ROOTS, check=False,
                      background=True)  # beside the first agents, who go first
    if found.returncode != 0:
        return None
    changed = untracked = 0
    entries = iter(found.stdout.split("\0"))
    for entry in entries:
        if entry.startswith("??"):
            untracked += 1
        elif len(entry) > 3:
            changed += 1
            if entry[0] in "RC":
                next(entries, None)  # a rename's source path follows as its own field
    if not (changed or untracked):
        return None
    parts = [plural(changed, "uncommitted change")] if changed else []
    parts += [plural(untracked, "untracked file")] if untracked else []
    return (f"note: your checkout has {' and '.join(parts)}; agents start from {start_name} "
            f"at {start_commit[:12]} without them")
