"""A stand-in for a CLI agent (claude, codex, aider, gemini, opencode), installed on PATH under
the tool's name by tests/presets_support.py. It appends what it was given (argv, stdin, cwd,
and the file --message-file names) to $FAKE_TOOL_RECORD, writes `<tool>-<subtask>.txt` in its
working directory, as `claude` prints $FAKE_CLAUDE_RESULT (a Claude Code JSON result), and
as `codex` a turn.completed event for each usage in the JSON list $FAKE_CODEX_TURNS.
$FAKE_TOOL_EXIT makes it exit with that code instead."""

import json
import os
import sys
from pathlib import Path

name = Path(sys.argv[0]).name
args = sys.argv[1:]
stdin = sys.stdin.read()
message_file = args[args.index("--message-file") + 1] if "--message-file" in args else None
record = {"tool": name, "argv": args, "stdin": stdin, "cwd": os.getcwd(),
          "subtask": os.environ.get("ORCHESTRATE_SUBTASK_ID"),
          "attempt": os.environ.get("ORCHESTRATE_ATTEMPT"),
          "model_env": os.environ.get("ORCHESTRATE_MODEL"),
          "message_file": Path(message_file).read_text() if message_file else None}
with open(os.environ["FAKE_TOOL_RECORD"], "a") as handle:
    handle.write(json.dumps(record) + "\n")
Path(f"{name}-{record['subtask']}.txt").write_text(f"made by {name}\n")
print(f"{name}: working on the subtask", file=sys.stderr)
if name == "claude" and os.environ.get("FAKE_CLAUDE_RESULT"):
    print(os.environ["FAKE_CLAUDE_RESULT"])
if name == "codex" and os.environ.get("FAKE_CODEX_TURNS"):  # `codex exec --json` events
    print(json.dumps({"type": "thread.started", "thread_id": "t-1"}))
    for turn in json.loads(os.environ["FAKE_CODEX_TURNS"]):
        print(json.dumps({"type": "turn.started"}))
        print(json.dumps({"type": "turn.completed", "usage": turn}))
sys.exit(int(os.environ.get("FAKE_TOOL_EXIT", "0")))
