"""The conflict radar: while a parallel wave's agents work, see which of them change the same
path, long before anything is merged, and say so once per pair and path.

Every `radar_interval` seconds a sweep reads what each running subtask of the wave's phase has
changed against its base, committed or not (stage/radar_reads.py: without any lock an agent
needs), and what the subtasks of the phase that already committed (or merged in an earlier
wave) changed on their branches. Each new pair of subtasks that changed the same path is
announced once per build: event `overlap_predicted`, the plan's `orchestrate.radar` of both
subtasks, and with `tell` a note appended to each subtask's radar file, which command agents
find as ORCHESTRATE_RADAR_FILE and the claude agent receives as a user message at its next
turn. Hunks are read only for paths two subtasks changed.

The radar reads worktrees on this machine: a placement that runs attempts elsewhere (Ray)
cannot be read, and the build says once that the radar is off.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Protocol

import trio

from orchestrator import names
from orchestrator.door.processes import GitError
from orchestrator.events import EventKind
from orchestrator.plan.model import Phase, Subtask
from orchestrator.plan.transitions import Transitions
from orchestrator.settings import Settings
from orchestrator.stage.radar_reads import BranchReader, Lines, WorktreeReader, touching

DESCRIPTION_LIMIT = 300
READS_AT_ONCE = 2  # worktrees read at the same time in one sweep

Emit = Callable[..., None]  # MergeContext.emit: (kind, message, *, subtask, phase, **data)


class Reader(Protocol):
    async def changes(self) -> dict[str, str]: ...

    async def lines(self, path: str, status: str) -> Lines: ...

    async def close(self) -> None: ...


@dataclass
class Side:
    """One subtask as the radar sees it: running (read in its worktree) or committed."""

    subtask_id: str
    phase: str
    position: int  # in plan order within the phase
    description: str
    reader: Reader
    running: bool
    changes: dict[str, str] = field(default_factory=dict)  # path -> status letter


@dataclass(frozen=True)
class Prediction:
    subtasks: tuple[str, str]  # in plan order
    path: str
    ranges: dict[str, list[list[int]]]
    overlapping: bool

    def data(self) -> dict[str, object]:
        return {"subtasks": list(self.subtasks), "path": self.path, "ranges": self.ranges,
                "overlapping": self.overlapping}


@dataclass
class Radar:
    """The build's radar; `enabled` False (off, or a placement it cannot read) makes every
    method a no-op."""

    repo: Path
    logs: Path
    settings: Settings
    records: Transitions | None
    emit: Emit
    enabled: bool = True
    sides: dict[str, Side] = field(default_factory=dict)
    announced: set[tuple[str, str, str]] = field(default_factory=set)
    # where the private indexes live (emptied first: a killed build's are stale); None: a
    # temporary folder
    cache: Path | None = None
    _folder: Path | None = None
    _making_folder: trio.Lock = field(default_factory=trio.Lock)  # agents start together

    @classmethod
    def off(cls) -> Radar:
        """A radar that does nothing (`--radar off`, `orchestrate merge`, tests)."""
        return cls(Path("."), Path("."), Settings(), None, _ignore, enabled=False)

    @classmethod
    def for_build(cls, *, repo: Path, logs: Path, cache: Path, settings: Settings,
                  records: Transitions | None, emit: Emit, reads_workspaces: bool) -> Radar:
        """The build's radar; off (saying so once) where the placement cannot be read."""
        wanted = settings.radar != "off"
        if wanted and not reads_workspaces:
            emit(EventKind.RADAR_OFF, f"radar: off with --runner {settings.runner} (it reads "
                 "running worktrees on this machine, and these run elsewhere)")
        return cls(repo, logs, settings, records, emit, enabled=wanted and reads_workspaces,
                   cache=cache)

    @property
    def tells(self) -> bool:
        return self.enabled and self.settings.radar == "tell"

    def file_for(self, subtask_id: str) -> Path | None:
        """The subtask's radar file (ORCHESTRATE_RADAR_FILE), with `tell` only."""
        return names.radar_file(self.logs, subtask_id) if self.tells else None

    async def running(self, subtask: Subtask, worktree: Path, base: str) -> None:
        """The subtask's agent starts in `worktree` on a branch made from `base`."""
        if not self.enabled:
            return
        if (radar_file := self.file_for(subtask.id)) is not None:
            await trio.Path(radar_file.parent).mkdir(parents=True, exist_ok=True)
            await trio.Path(radar_file).write_text("", encoding="utf-8")
        index = await self._private_folder() / f"{len(self.sides)}-{subtask.id}.index"
        reader = WorktreeReader(worktree, base, index, self.settings.copy)
        await self._replace(_side(subtask, reader, running=True))

    async def finished(self, subtask_id: str, *, base: str, head: str | None) -> None:
        """The subtask's agent ended: committed as `head`, or failed (None)."""
        side = self.sides.get(subtask_id)
        if side is None:
            return
        if head is None or head == base:
            await side.reader.close()
            del self.sides[subtask_id]
            return
        await side.reader.close()
        side.reader, side.running = BranchReader(self.repo, base, head), False

    @asynccontextmanager
    async def watching(self, phase: Phase, committed: Iterable[Subtask]) -> AsyncIterator[None]:
        """Sweep `phase` every radar_interval while the body (a wave's agents) runs.
        `committed`: the phase's subtasks whose work is already on their branches."""
        if not self.enabled:
            yield
            return
        for subtask in committed:
            record = subtask.record
            if record.base and record.head and subtask.id not in self.sides:
                await self._replace(_side(subtask, BranchReader(
                    self.repo, record.base, record.head), running=False))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sweep_every, phase.key)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()

    async def _sweep_every(self, phase: str) -> None:
        interval = self.settings.radar_interval
        while True:
            started = trio.current_time()
            with suppress(GitError, OSError, ValueError):  # never the build's end
                await self.sweep(phase)
            await trio.sleep_until(started + interval)

    async def sweep(self, phase: str) -> list[Prediction]:
        """One look at the phase's subtasks; the pairs it announced."""
        members = [s for s in self.sides.values() if s.phase == phase]
        reading = trio.Semaphore(READS_AT_ONCE)
        async with trio.open_nursery() as nursery:
            for side in members:
                nursery.start_soon(_read, side, reading)
        made = []
        for first, second, path in self._new_pairs(members):
            try:
                made.append(await self._announce(first, second, path))
            except (GitError, OSError):
                self.announced.discard((first.subtask_id, second.subtask_id, path))
        return made

    def _new_pairs(self, members: Sequence[Side]) -> list[tuple[Side, Side, str]]:
        ordered = sorted(members, key=lambda s: s.position)
        found = []
        for first, second in combinations(ordered, 2):
            for path in sorted(first.changes.keys() & second.changes.keys()):
                if (first.subtask_id, second.subtask_id, path) not in self.announced:
                    found.append((first, second, path))
        return found

    async def _announce(self, first: Side, second: Side, path: str) -> Prediction:
        self.announced.add((first.subtask_id, second.subtask_id, path))
        one = await first.reader.lines(path, first.changes[path])
        two = await second.reader.lines(path, second.changes[path])
        prediction = Prediction((first.subtask_id, second.subtask_id), path,
                                {first.subtask_id: _listed(one.ranges),
                                 second.subtask_id: _listed(two.ranges)}, touching(one, two))
        if self.tells:
            await self._tell(first, second, prediction)
            await self._tell(second, first, prediction)
        if self.records is not None:
            await self.records.radar_predicted(prediction.subtasks, path, prediction.overlapping)
        self.emit(EventKind.OVERLAP_PREDICTED, _message(prediction), phase=first.phase,
                  **prediction.data())
        return prediction

    async def _tell(self, side: Side, other: Side, prediction: Prediction) -> None:
        radar_file = self.file_for(side.subtask_id)
        if radar_file is None:
            return
        text = note_for(side.subtask_id, other.subtask_id, other.description, prediction)
        async with await trio.open_file(radar_file, "a", encoding="utf-8") as handle:
            await handle.write(text)

    async def _replace(self, side: Side) -> None:
        old = self.sides.get(side.subtask_id)
        if old is not None:
            await old.reader.close()
        self.sides[side.subtask_id] = side

    async def _private_folder(self) -> Path:
        async with self._making_folder:
            if self._folder is None:
                self._folder = await trio.to_thread.run_sync(_fresh_folder, self.cache)
            return self._folder

    async def close(self) -> None:
        for side in self.sides.values():
            await side.reader.close()
        self.sides.clear()
        if self._folder is not None:
            await trio.to_thread.run_sync(shutil.rmtree, self._folder, True)
            self._folder = None


async def _read(side: Side, reading: trio.Semaphore) -> None:
    """What the side changed now (kept unless it finished while it was read)."""
    reader = side.reader
    async with reading:
        try:
            found = await reader.changes()
        except (GitError, OSError, ValueError):  # e.g. the worktree went away: next sweep
            return
    if side.reader is reader:
        side.changes = found


def _fresh_folder(wanted: Path | None) -> Path:
    if wanted is None:
        return Path(tempfile.mkdtemp(prefix="orchestrate-radar-"))
    shutil.rmtree(wanted, ignore_errors=True)
    wanted.mkdir(parents=True, mode=0o700)
    return wanted


def _ignore(*args: object, **kwargs: object) -> None:
    pass


def _side(subtask: Subtask, reader: Reader, *, running: bool) -> Side:
    position = next(n for n, s in enumerate(subtask.phase.subtasks) if s.id == subtask.id)
    return Side(subtask.id, subtask.phase.key, position, subtask.description.strip(), reader,
                running)


def _listed(ranges: Iterable[tuple[int, int]]) -> list[list[int]]:
    return [[first, last] for first, last in ranges]


def lines_text(ranges: Sequence[Sequence[int]]) -> str:
    if not ranges:
        return "the whole file"
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def _message(prediction: Prediction) -> str:
    first, second = prediction.subtasks
    how = ("the edits touch: a conflict is likely" if prediction.overlapping
           else "the edits are apart")
    return (f"radar: {first} and {second} both change {prediction.path} (lines "
            f"{lines_text(prediction.ranges[first])} / {lines_text(prediction.ranges[second])};"
            f" {how})")


def note_for(me: str, other: str, description: str, prediction: Prediction) -> str:
    """What one agent is told: the other subtask, the path, both sides' lines."""
    about = description if len(description) <= DESCRIPTION_LIMIT \
        else description[:DESCRIPTION_LIMIT] + " [...]"
    how = ("Your edits and theirs touch: merged as they are, they would likely conflict. "
           "Keep your change there as small as your subtask needs, and do not undo theirs."
           if prediction.overlapping else
           "The edits are apart for now; keep them so if you can.")
    return (f"orchestrate radar: subtask {other} is also changing {prediction.path}.\n"
            f"  {other}: {about or '(no description)'}\n"
            f"  your lines there: {lines_text(prediction.ranges[me])}; "
            f"theirs: {lines_text(prediction.ranges[other])}\n"
            f"  {how}\n\n")
