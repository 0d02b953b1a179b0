"""`refs/stash`, the one stash every worktree of a repository shares.

Git keeps a worktree's own HEAD, `refs/bisect`, `refs/worktree` and `refs/rewritten`; every
other ref, the stash included, is shared (git hard-codes `refs/stash`: no setting or variable
gives a worktree a stash of its own). So one agent's `git stash` followed by another's
`git stash pop` moves the first one's work into the second's worktree, where it would be
committed under the second subtask's name. Without a sandbox (which makes `.git` read-only)
nothing stops an agent from stashing, so the build watches for it instead:

* The kernel reports every write to `refs/stash` and its reflog while the build runs
  (door/dir_events.py), so a stash pushed and popped again between two looks (the state
  looks unchanged) is still seen. Every attempt running at that moment is failed. Where the
  kernel offers no such report, the stash list compared at every check stands in.
* Every stash entry seen during the build is remembered as soon as it is written; an entry
  that disappeared while attempts ran (popped or dropped) is stored in the stash again, so
  nothing stashed is lost: `git stash list` shows it.
* The entries seen are kept in orchestrate's own state folder while the build runs: a build
  killed before it stored them again leaves them to the next build, which does.
* A change made while no attempt runs (the user's own stash between waves) is the user's:
  it becomes the new starting point.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import trio

from orchestrator.door.dir_events import DirEvents
from orchestrator.door.processes import git, resolve
from orchestrator.failpoints import failpoint

STASH = "refs/stash"
Entry = tuple[str, str]  # commit, reflog subject ("WIP on <branch>: ...")
SHOWN = 3
WHY = ("refs/stash changed: the stash is shared by every worktree, so one agent's "
       "`git stash pop` can take another's work; do not use git stash")


def is_stash_name(name: str) -> bool:
    return name == "stash" or name.startswith("stash.")


async def stash_entries(repo: Path) -> list[Entry]:
    """The stash list, newest first."""
    if await resolve(repo, STASH) is None:
        return []
    listing = await git(repo, "log", "-g", "--no-show-signature", "--format=%H%x09%gs", STASH,
                        "--", check=False)
    return [(commit, subject) for commit, _, subject in
            (line.partition("\t") for line in listing.stdout.splitlines()) if commit]


def logged_entries(common: Path) -> list[Entry]:
    """The entries of the stash's reflog file as it is this instant (read at once when the
    kernel reports a write, before a `pop` can take the entry away again)."""
    try:
        text = (common / "logs" / STASH).read_text(errors="replace")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        head, _, subject = line.partition("\t")
        words = head.split()
        if len(words) > 1 and len(words[1]) >= 40:
            found.append((words[1], subject))
    return found


@dataclass
class StashGuard:
    repo: Path
    common: Path
    baseline: list[Entry]
    events: DirEvents | None = None
    seen: dict[str, str] = field(default_factory=dict)  # every entry since the baseline
    touched: bool = False  # the kernel reported a write since the last check
    storing: bool = False  # orchestrate itself stores entries again: not an agent's write

    record: Path | None = None
    saving: trio.Lock = field(default_factory=trio.Lock)  # one record write at a time

    @classmethod
    async def open(cls, repo: Path, common: Path, record: Path) -> tuple[StashGuard, list[str]]:
        """Watch the stash; first store again what a killed build saw taken out of it."""
        events = DirEvents.open([common / "refs", common / "logs" / "refs"])
        earlier = await trio.to_thread.run_sync(_load, record)
        guard = cls(repo, common, await stash_entries(repo), events, {}, record=record)
        guard.seen = earlier
        restored = await guard._store_again()
        await guard._start_from(await stash_entries(repo))
        return guard, [WHY + _kept(restored)] if restored else []

    async def written(self, names: list[str]) -> bool:
        """Whether the reported `names` touch the stash; if so, remember its entries now (the
        reflog is read at once, before a pop can remove the entry; the record is written
        before this returns)."""
        if self.storing or not any(is_stash_name(name) for name in names):
            return False
        self.seen.update(logged_entries(self.common))
        self.touched = True  # before the write: a check meanwhile must count it
        await self._save()
        return True

    async def check(self, attempts_running: bool) -> list[str]:
        """What changed in the stash since the last check, in words (nothing when no attempt
        runs: then it was the user's doing); entries taken away meanwhile are stored again."""
        if self.events is not None:
            await self.written(self.events.pending())
        now = await stash_entries(self.repo)
        self.seen.update(now)
        touched, self.touched = self.touched, False
        if now == self.baseline and not touched:
            return []
        if not attempts_running:
            await self._start_from(now)
            return []
        await self._save()
        failpoint("shared-stash-changed")
        gone = await self._store_again(now)
        kept = gone + [entry for entry in now if entry not in self.baseline]
        await self._start_from(await stash_entries(self.repo))
        return [WHY + _kept(kept)]

    async def _store_again(self, now: list[Entry] | None = None) -> list[Entry]:
        """Store in the stash again every entry seen that is no longer in it."""
        present = {commit for commit, _ in (await stash_entries(self.repo)
                                              if now is None else now)}
        gone = [(commit, subject) for commit, subject in self.seen.items()
                if commit not in present]
        self.storing = True
        try:
            for commit, subject in reversed(gone):  # the oldest first: the newest on top
                await git(self.repo, "stash", "store", "-m", subject, commit, check=False)
            if self.events is not None:
                self.events.pending()  # the reports of those writes, all queued by now
        finally:
            self.storing = False
        return gone

    async def _start_from(self, entries: list[Entry]) -> None:
        self.baseline, self.seen = entries, dict(entries)
        await self._save()

    async def _save(self) -> None:
        if self.record is None:
            return
        seen = json.dumps(self.seen)
        async with self.saving:
            await trio.to_thread.run_sync(_write_record, self.record, seen)

    def close(self) -> None:
        """The build ended (not killed)."""
        if self.events is not None:
            self.events.close()
        if self.record is not None:
            self.record.unlink(missing_ok=True)


def _write_record(record: Path, text: str) -> None:
    record.parent.mkdir(parents=True, exist_ok=True)
    temporary = record.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, record)


def _load(record: Path) -> dict[str, str]:
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(commit): str(subject) for commit, subject in data.items()}


def _kept(entries: list[Entry]) -> str:
    if not entries:
        return ""
    shown = ", ".join(f"{commit[:12]} ({subject})" for commit, subject in entries[:SHOWN])
    return f"; stashed work is kept in `git stash list`: {shown}"
