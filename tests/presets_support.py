"""Fake CLI agents on PATH for the preset tests: tests/agents/fake_tool.py under each tool's
name in a folder of its own, and what each invocation recorded."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAKE_TOOL = Path(__file__).resolve().parent / "agents" / "fake_tool.py"
TOOLS = ("claude", "codex", "aider", "gemini", "opencode")


@dataclass(frozen=True)
class FakeTools:
    bin: Path
    record: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
                "FAKE_TOOL_RECORD": str(self.record), **extra}

    def calls(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]


def install_fake_tools(folder: Path, names: tuple[str, ...] = TOOLS) -> FakeTools:
    folder.mkdir(parents=True, exist_ok=True)
    source = FAKE_TOOL.read_text()
    for name in names:
        path = folder / name
        path.write_text(f"#!{sys.executable}\n{source}")
        path.chmod(0o755)
    return FakeTools(folder, folder.parent / "fake-tool-calls.jsonl")


def claude_result(cost: float, *, subtype: str = "success", is_error: bool = False,
                  **usage: int) -> str:
    """A Claude Code `--output-format json` result object, as it prints it."""
    return json.dumps({
        "type": "result", "subtype": subtype, "is_error": is_error, "duration_ms": 1234,
        "num_turns": 3, "result": "Done." if not is_error else "", "session_id": "s-1",
        "total_cost_usd": cost,
        "usage": {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0,
                  "cache_creation_input_tokens": 0, "server_tool_use": {"web_search_requests": 0},
                  "service_tier": "standard", **usage}})
