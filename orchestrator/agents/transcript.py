"""The claude agent's transcript: appended to the subtask's log file, each entry clipped, and
every secret replaced before it is written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import trio

from orchestrator.agents.output import clip, redact

ENTRY_LIMIT = 4000


class Transcript:
    def __init__(self, path: Path, secrets: Sequence[str]) -> None:
        self.path = path
        self._secrets = tuple(secrets)

    async def write(self, label: str, text: str) -> None:
        body = redact(clip(text.rstrip("\n"), ENTRY_LIMIT), self._secrets)
        await trio.to_thread.run_sync(self._append, f"[{label}] {body}\n")

    async def save_prompt(self, prompt: str) -> None:
        """The attempt's prompt next to the log, as the command agent leaves it."""
        path = self.path.with_suffix(".prompt.md")
        await trio.to_thread.run_sync(path.write_text, redact(prompt, self._secrets), "utf-8")

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
