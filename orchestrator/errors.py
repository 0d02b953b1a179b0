"""The one family of user-facing errors; the CLI maps each class to an exit code."""

from __future__ import annotations


class OrchestrateError(Exception):
    """A problem the user can act on: `message` says what is wrong, `hint` what to do next."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class UsageError(OrchestrateError):
    """A bad option, setting, argument or repository state detected before any work."""

    exit_code = 2


class PlanError(UsageError):
    """The plan file cannot be read or is not a valid plan."""


class LockHeld(OrchestrateError):
    """Another build of the same spec is running."""

    exit_code = 3


class RunFailed(OrchestrateError):
    """The run could not go on (e.g. the plan vanished mid-build); work so far is kept."""

    exit_code = 1


class Interrupted(OrchestrateError):
    """SIGINT or SIGTERM stopped the run."""

    exit_code = 130
