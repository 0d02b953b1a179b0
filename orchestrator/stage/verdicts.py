"""What one run knows about the check (SPEC 9): verdicts by tree id, runs under way, and a
failure of the check on the integration branch's head, which stops every merge."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio


@dataclass(frozen=True)
class Verdict:
    """The check's judgement of one commit (of its tree, really)."""

    commit: str
    tree: str
    passed: bool
    exit_code: int | None = 0
    log: str = ""
    output: str = ""  # the last lines of the last failing run
    flaky: bool = False  # failed, then passed on a rerun
    cached: bool = False  # known from an earlier judgement, not run now
    runs: int = 0  # check runs it took (reruns included)

    def record(self, command: str) -> dict[str, object]:
        """The culprit's `orchestrate.check` field."""
        return {"command": command, "exit_code": self.exit_code, "commit": self.commit,
                "log": self.log, "output": self.output}


@dataclass
class CheckState:
    verdicts: dict[str, Verdict] = field(default_factory=dict)  # tree -> verdict, this run
    running: dict[str, trio.Event] = field(default_factory=dict)  # tree -> set when judged
    base_failure: Verdict | None = None  # the check fails where merging would start
    refused_start: bool = False  # it failed on the head before any agent: nothing ran
    runs: int = 0  # check runs started by this process (reruns included)
