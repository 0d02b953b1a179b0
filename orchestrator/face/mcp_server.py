"""`orchestrate mcp`: the Model Context Protocol over stdio, so an agent can drive builds.

The `mcp` package runs on anyio; we run it on anyio's trio backend, so the server lives in the
same trio world as the rest of orchestrate. Reading tools (list_specs, validate, status,
report, review, logs) call the functions the commands use; `build` and `merge` start the
command line itself (`orchestrate build SPEC --json`) through the process door, in its own
process group, so such a build is the same build as from a terminal: it takes the run lock,
writes the plan, the logs and the report. `cancel` sends that group SIGINT, like Ctrl-C.

Errors come back as tool errors carrying the command line's message.
"""

from __future__ import annotations

import json
import signal
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from merge import signal_group
from orchestrator import names
from orchestrator.door.processes import run_in_group
from orchestrator.errors import OrchestrateError, UsageError
from orchestrator.plan.parse import load_plan, parse_plan, require_subtasks
from orchestrator.plan.specs import SPEC_ROOTS, Spec, all_specs, resolve_spec
from orchestrator.plan.store import PLAN_FILE

Json = dict[str, Any]

CANCEL_WAIT_S = 60.0  # after SIGINT, how long a build gets to put its statuses back
LOG_CHUNK = 256 * 1024  # the most one `logs` call returns
BUILD_FLAGS = ("no_merge", "retry_failed", "keep_worktrees")
BUILD_VALUES = ("max_parallel", "agent", "agent_command", "model", "base", "timeout", "retries",
                "overlap", "check", "check_timeout", "check_retries", "schedule", "budget",
                "resolve", "resolve_attempts", "runner", "ray_address", "remote")


def error_text(exc: OrchestrateError) -> str:
    """The message the command line prints for `exc`."""
    return f"orchestrate: error: {exc.message}" + (f"\n{exc.hint}" if exc.hint else "")


@dataclass
class Build:
    """One build started through the server: a child `orchestrate build` process."""

    build_id: str
    spec: str
    output: Path
    pid: int | None = None
    exit_code: int | None = None
    cancelled: bool = False
    done: trio.Event = field(default_factory=trio.Event)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    def state(self) -> Json:
        state = ("running" if self.exit_code is None
                 else "cancelled" if self.cancelled else "finished")
        said = _messages(self.output) if self.exit_code not in (None, 0) else ""
        return {"build_id": self.build_id, "spec": self.spec, "state": state,
                "exit_code": self.exit_code, **({"message": said} if said else {})}


class Orchestra:
    """What the tools do, for one repository; builds run in `nursery`."""

    def __init__(self, repo: Path, nursery: trio.Nursery, scratch: Path) -> None:
        self.repo, self.nursery, self.scratch = repo, nursery, scratch
        self.builds: dict[str, Build] = {}

    def spec(self, name: str) -> Spec:
        return resolve_spec(self.repo, name)

    # reading tools ------------------------------------------------------------------------

    def list_specs(self) -> Json:
        from orchestrator.face.views import progress_line

        rows = []
        for spec in all_specs(self.repo):
            try:
                line, valid = progress_line(load_plan(spec.plan_path)), True
            except OrchestrateError as exc:
                line, valid = exc.message.splitlines()[-1].strip(" -"), False
            rows.append({"spec": spec.name, "root": str(spec.folder.parent.parent.name),
                         "valid": valid, "progress": line})
        return {"specs": rows}

    def validate(self, spec: str) -> Json:
        from orchestrator.face.views import validate_json
        from orchestrator.plan.declared import predicted_overlaps

        found = self.spec(spec)
        plan = load_plan(found.plan_path)
        require_subtasks(plan, found.plan_path)
        return validate_json(found, plan, predicted_overlaps(plan, found.repo))

    def init_spec(self, spec: str, plan: str) -> Json:
        from orchestrator.face.views import validate_json
        from orchestrator.plan.declared import predicted_overlaps
        from orchestrator.plan.starter import check_spec_name, create_spec

        check_spec_name(spec)
        path = self.repo / SPEC_ROOTS[0] / spec / PLAN_FILE
        parsed = parse_plan(plan.encode(), path)
        require_subtasks(parsed, path)
        found = create_spec(self.repo, spec, plan if plan.endswith("\n") else plan + "\n")
        return validate_json(found, parsed, predicted_overlaps(parsed, found.repo))

    def status(self, spec: str, build_id: str | None = None) -> Json:
        from orchestrator.build.stale import stale_ids
        from orchestrator.face.views import status_json

        found = self.spec(spec)
        build = None if build_id is None else self.started(found, build_id)
        plan = load_plan(found.plan_path)
        shown = status_json(found, plan, stale_ids(found, plan))
        return shown if build is None else {**shown, "build": build.state()}

    def started(self, spec: Spec, build_id: str) -> Build:
        build = self.builds.get(build_id)
        if build is None or build.spec != spec.name:
            raise UsageError(f"argument build_id: no build {build_id!r} of {spec.name} was "
                             "started by this server", "Use the build_id `build` returned.")
        return build

    def report(self, spec: str, format: str = "json") -> str:
        from typing import cast

        from orchestrator.stage.conflict_report import ReportFormat, conflict_report, render

        if format not in ("md", "json", "github"):
            raise UsageError(f"argument format: {format!r} is not one of md, json, github")
        found = self.spec(spec)
        return render(conflict_report(found, load_plan(found.plan_path)),
                      cast(ReportFormat, format))

    def review(self, spec: str, subtask: str | None = None) -> str:
        from orchestrator.face.review import review_diff, review_text

        found = self.spec(spec)
        plan = load_plan(found.plan_path)
        if subtask is None:
            return review_text(found, plan)
        return review_diff(found, plan, subtask, color=False)

    def logs(self, spec: str, subtask: str, offset: int = 0) -> Json:
        found = self.spec(spec)
        plan = load_plan(found.plan_path)
        if subtask not in {s.id for s in plan.subtasks()}:
            raise UsageError(f"argument subtask: {subtask!r} is not a subtask of {found.name}")
        if offset < 0:
            raise UsageError(f"argument offset: {offset} is negative; start at 0")
        path = found.folder / names.LOGS_DIR / f"{subtask}.log"
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read(LOG_CHUNK)
        except FileNotFoundError:
            data = b""
        data = _whole_characters(data)
        return {"spec": found.name, "subtask": subtask, "offset": offset,
                "text": data.decode("utf-8", errors="replace"),
                "next_offset": offset + len(data)}

    # tools that run work ---------------------------------------------------------------------

    def _argv(self, command: str, spec: str, options: Json) -> list[str]:
        argv = [sys.executable, "-m", "orchestrator", "--repo", str(self.repo), command,
                spec, "--json"]
        for name, value in options.items():
            if value is None or value is False:
                continue
            flag = "--" + name.replace("_", "-")
            argv += [flag] if value is True else [flag, str(value)]
        return argv

    async def build(self, spec: str, options: Json) -> Json:
        found = await trio.to_thread.run_sync(self.validate, spec)  # refuse a bad plan now
        name = found["spec"]
        build = Build(uuid.uuid4().hex[:12], name, self.scratch / f"{len(self.builds)}.log")
        self.builds[build.build_id] = build
        argv = self._argv("build", name, options)
        await self.nursery.start(self._run_build, build, argv)
        return build.state()

    async def _run_build(self, build: Build, argv: list[str],
                         task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        def started(pid: int) -> None:
            build.pid = pid
            task_status.started()

        try:
            with build.scope, build.output.open("wb") as output:
                build.exit_code = await run_in_group(argv, cwd=self.repo, output=output,
                                                     on_start=started)
        finally:
            if build.exit_code is None:
                build.exit_code = -1
            build.done.set()
            if build.pid is None:  # it never ran (127/126): `build` reports how it ended
                task_status.started()

    async def cancel(self, spec: str, build_id: str) -> Json:
        build = self.started(await trio.to_thread.run_sync(self.spec, spec), build_id)
        await self._stop(build)
        return {**build.state(), "events": _events(build.output)}

    async def _stop(self, build: Build) -> None:
        if build.exit_code is None and build.pid is not None:
            build.cancelled = True
            signal_group(build.pid, signal.SIGINT)
            with trio.move_on_after(CANCEL_WAIT_S):
                await build.done.wait()
            build.scope.cancel()  # still running: the door's SIGTERM, then SIGKILL
            await build.done.wait()

    async def merge(self, spec: str, options: Json) -> Json:
        name = (await trio.to_thread.run_sync(self.spec, spec)).name
        output = self.scratch / f"merge-{uuid.uuid4().hex[:12]}.log"
        with output.open("wb") as handle:
            code = await run_in_group(self._argv("merge", name, options), cwd=self.repo,
                                      output=handle)
        if code not in (0, 1):
            said = _messages(output).removeprefix("orchestrate: error: ")
            raise UsageError(said or f"orchestrate merge exited with {code}")
        return {"spec": name, "exit_code": code, "events": _events(output)}

    async def stop_all(self) -> None:
        """On the way out: every running build stops like after Ctrl-C."""
        async with trio.open_nursery() as nursery:
            for build in self.builds.values():
                nursery.start_soon(self._stop, build)


def _whole_characters(data: bytes) -> bytes:
    """`data` without a UTF-8 sequence cut at its end (the next call returns it whole)."""
    for cut in range(1, min(4, len(data)) + 1):
        if data[-cut] & 0xC0 != 0x80:  # the last sequence starts here
            lead = data[-cut]
            need = 4 if lead >= 0xF0 else 3 if lead >= 0xE0 else 2 if lead >= 0xC0 else 1
            return data if need <= cut else data[:-cut]
    return data


def _lines(output: Path) -> list[str]:
    try:
        return output.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []


def _events(output: Path) -> list[Json]:
    events = []
    for line in _lines(output):
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def _messages(output: Path) -> str:
    return "\n".join(line for line in _lines(output) if not line.startswith("{")).strip()
