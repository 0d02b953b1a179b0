"""Find a spec folder from what the user typed: an exact name or a unique `NAME-` prefix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator import names
from orchestrator.errors import UsageError
from orchestrator.plan.store import PLAN_FILE

SPEC_ROOTS = names.SPEC_ROOTS


@dataclass(frozen=True)
class Spec:
    repo: Path
    name: str
    folder: Path

    @property
    def plan_path(self) -> Path:
        return self.folder / PLAN_FILE

    @property
    def logs(self) -> Path:
        return self.folder / names.LOGS_DIR


def all_specs(repo: Path) -> list[Spec]:
    found = []
    for root in SPEC_ROOTS:
        base = repo / root
        if base.is_dir():
            found += [Spec(repo, p.name, p) for p in sorted(base.iterdir())
                      if p.is_dir() and not p.name.startswith(".")]
    return found


def resolve_spec(repo: Path, wanted: str) -> Spec:
    specs = all_specs(repo)
    exact = [s for s in specs if s.name == wanted]
    matches = exact or [s for s in specs if s.name.startswith(wanted + "-")]
    if len(matches) == 1:
        return matches[0]
    roots = " and ".join(str(repo / r) for r in SPEC_ROOTS)
    if not matches:
        known = ", ".join(s.name for s in specs) or "none"
        raise UsageError(f"argument SPEC: no spec folder named {wanted!r} or {wanted}-* in {roots}",
                         f"Known specs: {known}. `orchestrate list` shows them.")
    listing = ", ".join(str(s.folder.relative_to(repo)) for s in matches)
    raise UsageError(f"argument SPEC: {wanted!r} matches several specs: {listing}",
                     "Give the full folder name.")
