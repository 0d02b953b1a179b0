"""Every named crash point of a build, for fault-injection tests (see merge/failpoints.py).

`failpoint(name)` does nothing unless the environment variable ORCHESTRATE_FAILPOINT is `name`;
then the process SIGKILLs itself. FAILPOINTS lists every point in the order a build meets them,
so a test can crash at each in turn and check that the next build finishes the work.
"""

from __future__ import annotations

from merge import ENV, MERGE_FAILPOINTS, crash_if_named

__all__ = ["CHECK_FAILPOINTS", "ENV", "FAILPOINTS", "OVERLAY_FAILPOINTS",
           "PROBE_ROUND_FAILPOINTS",
           "RESET_FAILPOINTS",
           "RESOLUTION_FAILPOINTS", "SHARED_GIT_FAILPOINTS", "STASH_FAILPOINTS", "failpoint"]

ORCHESTRATOR_FAILPOINTS = (
    "integration-branch-created",  # the branch exists; the plan has no run record yet
    "stale-recorded",  # stale subtasks (SPEC 6) went back to pending or merge=pending
    "worktree-prepared",  # a subtask's worktree and branch exist; its status is still pending
    "subtask-started",  # status in_progress written; the agent has not run
    "attempt-failed-recorded",  # a failed attempt is recorded; the retry has not started
    "agent-finished",  # the agent succeeded; nothing is committed yet
    "work-committed",  # the subtask's commit exists; the plan does not know its head
    "commit-recorded",  # head and merge=pending written; not merged yet
    "merge-recorded",  # merge results written to the plan; no conflict report yet
    "report-written",  # the conflict report is written after a merge stage
    "worktree-detached",  # a committed subtask's worktree is detached, not yet parked
)
# reached only when an agent changed the shared .git (config, hooks, info); tests/test_trust_*
SHARED_GIT_FAILPOINTS = (
    "shared-git-changed",  # a change is found and pinned on the running attempts; not undone
    "shared-git-undone",  # the change is undone; the attempts are not failed yet
)
# reached only when the stash changed while attempts ran; tests/workspace/test_trust_stash.py
STASH_FAILPOINTS = (
    "shared-stash-changed",  # a stash change is found; what was taken from it is not back yet
)
CHECK_FAILPOINTS = (  # reached only with a check configured and a batch that fails it
    "check-started",  # a check's worktree is ready; its process is about to start
    "check-recorded",  # a verdict is cached in the plan; the branch has not moved for it
    "check-culprit-found",  # bisection named a culprit; nothing of it is recorded yet
    "check-green-chosen",  # the passing commit to move to is chosen; the branch has not moved
)
# reached only when several checks of the gate run at once: a round of probes (free slots,
# >= 5 suspects), or a culprit's confirming rerun beside the next batch's first check
PROBE_ROUND_FAILPOINTS = (
    "check-round-started",  # a round's probes are under way; none of their verdicts is cached
    # a culprit's confirming rerun and the next batch's first check (the branches after it,
    # merged again without it) are under way; neither verdict is cached, nothing recorded
    "check-rest-started",
)
# reached only when a conflict goes back to the agent (SPEC 10); tests/build/test_resolve.py
RESOLUTION_FAILPOINTS = (
    "resolution-started",  # in_progress with `resolving` written; no merge in the worktree yet
    "resolution-merging",  # the merge is in progress in the worktree; the agent has not run
    "resolution-committed",  # the merge commit is on the subtask branch; the plan has the old head
    "resolution-recorded",  # the new head and merge=pending written; not merged again yet
    "resolution-failed-recorded",  # a failed round is recorded as conflict; the next not begun
)
# reached only with copy-on-write workspaces (overlays); tests/workspace/test_overlay_recovery.py
OVERLAY_FAILPOINTS = (
    "overlay-worktree-added",  # the worktree is registered (no checkout); nothing is mounted
    "overlay-mounted",  # the overlay is mounted at the worktree; HEAD's tree not yet written
    "overlay-unmounted",  # a committed subtask's overlay is unmounted; the worktree not removed
)
# reached only by `orchestrate reset`; tests/test_reset.py
RESET_FAILPOINTS = (
    "reset-branch-moved",  # worktree removed, branch kept as .prev-N; the plan has the old status
)
FAILPOINTS = (ORCHESTRATOR_FAILPOINTS + RESOLUTION_FAILPOINTS + MERGE_FAILPOINTS
              + CHECK_FAILPOINTS + PROBE_ROUND_FAILPOINTS + SHARED_GIT_FAILPOINTS + STASH_FAILPOINTS
              + RESET_FAILPOINTS + OVERLAY_FAILPOINTS)


def failpoint(name: str) -> None:
    """SIGKILL this process here if ORCHESTRATE_FAILPOINT says so (tests only)."""
    crash_if_named(name, FAILPOINTS)
