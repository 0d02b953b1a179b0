"""Named crash points for fault-injection tests, inert unless ORCHESTRATE_FAILPOINT names one.

At the named point the process kills itself with SIGKILL: no `finally`, no atexit, no flush,
as if the power went out. merge/ has its own points so that it never imports orchestrator/;
orchestrator.failpoints lists these with its own, so tests can crash at every one in turn.
"""

from __future__ import annotations

import os

from merge.gitcmd import kill_self

ENV = "ORCHESTRATE_FAILPOINT"
MERGE_FAILPOINTS = (
    "merge-commit-created",  # commit-tree wrote the merge commit; the branch has not moved
    "merge-ref-moved",  # update-ref moved the integration branch; the plan does not know yet
)


def crash_if_named(name: str, known: tuple[str, ...] = MERGE_FAILPOINTS) -> None:
    """SIGKILL this process if ORCHESTRATE_FAILPOINT is `name`; `name` must be in `known`."""
    if name not in known:
        raise ValueError(f"unknown failpoint {name!r}; add it to the registry")
    if os.environ.get(ENV) == name:
        kill_self()
