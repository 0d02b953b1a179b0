"""The build in a browser, fast tier: the page's routes on a real finished build (real git, a
real plan, the real scheduler with an in-process agent), what it refuses (other methods, other
paths, traversal, a missing token, a foreign Host), and its event streams over real HTTP."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import trio

from orchestrator.agents.base import AgentResult, AgentTask
from orchestrator.errors import UsageError
from orchestrator.face.review import review_diff
from orchestrator.face.web.routes import UiApp
from orchestrator.face.web.server import bind, serve
from orchestrator.face.web.snapshot import Chains, bisections, radar_pairs
from orchestrator.face.web.sources import EventReader, events_path
from orchestrator.face.web.timeline import timeline
from orchestrator.plan.parse import load_plan
from orchestrator.plan.specs import Spec, resolve_spec
from tests.conftest import (
    ORCHESTRATE,
    PINNED_ENV,
    commit_all,
    commit_files,
    git,
    phase,
    plan_of,
    run_cli,
    write_plan,
)
from tests.inprocess import FakeAgent, build_in_process
from tests.web_support import call

SPEC = "001-web"
SECRET = "top-secret-do-not-serve"


@dataclass
class SameLineAgent:
    """Says hello in its log, then rewrites line 1 of src/app.py: two of them conflict."""

    name: str = "same-line"

    async def run(self, task: AgentTask) -> AgentResult:
        with task.log_path.open("a") as log:
            log.write(f"{task.subtask_id} says hello\n")
        path = task.worktree / "src" / "app.py"
        lines = path.read_text().splitlines(keepends=True)
        lines[0] = f"{task.subtask_id} was here\n"
        path.write_text("".join(lines))
        return AgentResult(ok=True, output_tail="done")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A finished build, shared by the tests that only read it: `a` merged, `b` in conflict
    with it on src/app.py line 1."""
    home = tmp_path_factory.mktemp("web-home")
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HOME", str(home))
        env.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        for key, value in PINNED_ENV.items():
            env.setenv(key, value)
        repo = tmp_path_factory.mktemp("web") / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        (repo / "src").mkdir()
        (repo / "src" / "app.py").write_text("".join(f"line {i}\n" for i in range(1, 21)))
        (repo / "secret.txt").write_text(SECRET)
        commit_all(repo, "initial")
        write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True), feature="web"))
        assert build_in_process(repo, SPEC, SameLineAgent()) == 1  # type: ignore[arg-type]
        yield repo


def refs_and_plan(repo: Path) -> tuple[str, bytes]:
    refs = subprocess.run(["git", "for-each-ref"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout
    return refs, resolve_spec(repo, SPEC).plan_path.read_bytes()


async def test_the_page_shows_a_finished_build(built: Path) -> None:
    app = UiApp(built)
    page = await call(app, f"/specs/{SPEC}")
    assert page.status == 200
    assert "/static/app.js" in page.text
    assert '<tr data-subtask="b">' in page.text  # statuses are page text before any script
    assert '<span class="status s-conflict">conflict</span>' in page.text
    assert f'href="/specs/{SPEC}"' in (await call(app, "/")).text
    assert (await call(app, "/static/app.js")).headers["content-type"].startswith(
        "text/javascript")
    listing = json.loads((await call(app, "/api/specs")).body)
    assert [(s["name"], s["counts"]) for s in listing] == [
        (SPEC, {"completed": 1, "conflict": 1})]
    state = json.loads((await call(app, f"/api/specs/{SPEC}")).body)
    rows = {s["id"]: s for p in state["phases"] for s in p["subtasks"]}
    assert (rows["a"]["status"], rows["b"]["status"]) == ("completed", "conflict")
    assert rows["a"]["attempts"] == 1
    assert rows["a"]["duration_s"] is not None
    assert [r["id"] for r in state["timeline"]["rows"]] == ["a", "b"]
    assert all(r["items"] for r in state["timeline"]["rows"])


async def test_the_conflict_shows_both_sides_and_the_diff_is_reviews(built: Path) -> None:
    app = UiApp(built)
    report = json.loads((await call(app, f"/api/specs/{SPEC}/report")).body)
    [conflict] = [f for f in report["conflicts"] if f["kind"] == "conflict"]
    assert conflict["path"] == "src/app.py"
    assert conflict["subtasks"] == ["a", "b"]
    assert {h["subtask"] for h in conflict["hunks"]} == {"a", "b"}
    diff = await call(app, f"/api/specs/{SPEC}/subtasks/a/diff")
    spec = resolve_spec(built, SPEC)
    assert diff.text == review_diff(spec, load_plan(spec.plan_path), "a", color=False)
    assert "+a was here" in diff.text


async def test_the_log_stream_starts_with_the_tail(built: Path) -> None:
    stream = await call(UiApp(built), f"/api/specs/{SPEC}/subtasks/b/log", until=b"\n\n")
    assert stream.headers["content-type"].startswith("text/event-stream")
    event, data = stream.text.split("\n", 1)
    assert event == "event: tail"
    assert "b says hello" in json.loads(data.removeprefix("data: ").strip())["text"]


METHODS = ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"]
ROUTES = ["/", f"/specs/{SPEC}", "/api/specs", f"/api/specs/{SPEC}",
          f"/api/specs/{SPEC}/report", f"/api/specs/{SPEC}/subtasks/a/diff"]


async def test_other_methods_change_and_serve_nothing(built: Path) -> None:
    app, before = UiApp(built), refs_and_plan(built)
    for method in METHODS:
        for route in ROUTES:
            answer = await call(app, route, method=method)
            assert answer.status == 405, (method, route)
            assert answer.headers["allow"] == "GET, HEAD"
            assert SPEC not in answer.text
            assert "was here" not in answer.text
    assert refs_and_plan(built) == before
    head = await call(app, f"/api/specs/{SPEC}", method="HEAD")
    assert head.status == 200
    assert head.body == b""


TRAVERSALS = [
    "/static/../../secret.txt", "/static/%2e%2e/%2e%2e/secret.txt",
    "/%2e%2e/%2e%2e/secret.txt", "/..%2f..%2fsecret.txt", "/static/..%2F..%2Fsecret.txt",
    "/static/%2E%2E%2F%2E%2E%2Fsecret.txt", "/api/specs/..", "/api/specs/%2e%2e",
    f"/api/specs/{SPEC}/subtasks/..%2f..%2f..%2f..%2fsecret.txt/log",
    f"/api/specs/{SPEC}/subtasks/a/log/../../../../../../secret.txt",
    "/api/specs/%2e%2e%2f%2e%2e%2f%2e%2e/subtasks/a/diff", "/specs/..%2f..", "//secret.txt",
    "/static/%252e%252e/secret.txt", "/static/.%2e/.%2e/secret.txt", "/static/app.js/..",
    "/static/index.html", "/static/../routes.py", "/api/specs/%00", "/static/%ff",
    "/secret.txt", "/implementation_plan.json", f"/specs/{SPEC}/implementation_plan.json",
    f"/api/specs/{SPEC}/logs/a.log", "/.git/config", "/api", "/favicon.ico",
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_paths_outside_the_routes_serve_nothing(built: Path, path: str) -> None:
    answer = await call(UiApp(built), path)
    assert answer.status == 404, path
    assert answer.text == "404 not found\n"


async def test_beyond_loopback_the_token_is_required(built: Path) -> None:
    app = UiApp(built, token="s3cret-token", loopback=False)
    for route in [*ROUTES, "/static/app.js", f"/api/specs/{SPEC}/stream"]:
        for query in ("", "token=wrong", "token="):
            answer = await call(app, route, query=query, host="203.0.113.9:8000")
            assert answer.status == 401, (route, query)
            assert SPEC not in answer.text
            assert "was here" not in answer.text
    page = await call(app, "/", query="token=s3cret-token", host="203.0.113.9:8000")
    assert page.status == 200
    assert "/static/app.js?token=s3cret-token" in page.text
    state = await call(app, f"/api/specs/{SPEC}", query="token=s3cret-token")
    assert state.status == 200
    assert SPEC in state.text


async def test_on_loopback_a_foreign_host_name_is_refused(built: Path) -> None:
    """A page elsewhere whose name resolves to 127.0.0.1 (DNS rebinding) reads nothing."""
    app = UiApp(built)
    answer = await call(app, f"/api/specs/{SPEC}", host="attacker.example:8000")
    assert answer.status == 403
    assert SPEC not in answer.text
    assert (await call(app, f"/api/specs/{SPEC}", host="localhost:8000")).status == 200


def test_the_default_bind_is_loopback_and_elsewhere_needs_a_token() -> None:
    local = bind()
    try:
        assert local.sock.getsockname()[0] == "127.0.0.1"
        assert local.token is None
        assert local.url("x y") == f"http://127.0.0.1:{local.port}/specs/x%20y"
    finally:
        local.sock.close()
    wide = bind("0.0.0.0")
    try:
        assert wide.token
        assert len(wide.token) >= 24
        assert wide.token != bind.__name__
        assert wide.url().endswith(f"/?token={wide.token}")
    finally:
        wide.sock.close()


async def read_until(stream: trio.SocketStream, marker: bytes, seen: bytearray) -> None:
    with trio.fail_after(10):
        while marker not in seen:
            chunk = await stream.receive_some()
            assert chunk, "the server closed the stream"
            seen += chunk


@pytest.fixture
def one_done(repo: Path) -> Path:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    assert build_in_process(repo, SPEC, FakeAgent()) == 0
    return repo


async def test_streams_follow_the_plan_and_the_log_over_http(one_done: Path) -> None:
    """Real HTTP to hypercorn on 127.0.0.1: a status change in the plan and a new log line
    arrive on the open streams, without a new request."""
    repo = one_done
    spec = resolve_spec(repo, SPEC)
    listening = bind()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve, UiApp(repo, poll_s=0.05), listening))
        state = await trio.open_tcp_stream("127.0.0.1", listening.port)
        log = await trio.open_tcp_stream("127.0.0.1", listening.port)
        async with state, log:
            await follow_both(spec, state, log)
        nursery.cancel_scope.cancel()


async def follow_both(spec: Spec, state: trio.SocketStream, log: trio.SocketStream) -> None:
    for stream, path in ((state, f"/api/specs/{SPEC}/stream"),
                         (log, f"/api/specs/{SPEC}/subtasks/a/log")):
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    seen_state, seen_log = bytearray(), bytearray()
    await read_until(state, b'"status":"completed"', seen_state)
    await read_until(log, b"event: tail", seen_log)
    plan = json.loads(spec.plan_path.read_text())
    plan["phases"][0]["subtasks"][0]["status"] = "failed"
    spec.plan_path.write_text(json.dumps(plan))
    with (spec.logs / "a.log").open("a") as handle:
        handle.write("a brand new line\n")
    await read_until(state, b'"status":"failed"', seen_state)
    await read_until(log, b"a brand new line", seen_log)
    assert b"event: append" in seen_log


def test_a_taken_port_is_refused_naming_the_option() -> None:
    taken = bind()
    try:
        with pytest.raises(UsageError, match="option --port"):
            bind(port=taken.port)
    finally:
        taken.sock.close()


@pytest.mark.slow
def test_ui_refuses_bad_input(built: Path) -> None:
    taken = bind()
    try:
        for args, named in ((["ui", "--port", "70000"], "--port"),
                            (["ui", "no-such-spec"], "no-such-spec"),
                            (["ui", "--port", str(taken.port)], "--port"),
                            (["ui", "--host", "no.such.host.invalid"], "--host")):
            done = run_cli(built, *args, timeout=30)
            assert done.returncode == 2, (args, done.stderr)
            assert named in done.stderr
            assert done.stdout == ""
    finally:
        taken.sock.close()


def test_the_timeline_reads_events_defensively(tmp_path: Path, repo: Path) -> None:
    """Torn or foreign lines in events.jsonl are skipped; attempts, rounds and merges land on
    their rows in seconds from the last build's start (the finer `elapsed_s`)."""
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True)))
    plan = load_plan(resolve_spec(repo, SPEC).plan_path)
    lines = [
        {"time": "2026-01-01T09:00:00Z", "elapsed_s": 0.0, "kind": "build_started"},
        {"time": "2026-01-01T09:00:00Z", "elapsed_s": 9.0, "kind": "build_finished"},
        {"time": "2026-01-01T10:00:00Z", "elapsed_s": 0.2, "kind": "build_started"},
        {"time": "2026-01-01T10:00:00Z", "elapsed_s": 0.5, "kind": "subtask_started",
         "subtask": "a"},
        {"time": "2026-01-01T10:00:01Z", "elapsed_s": 1.5, "kind": "attempt_failed",
         "subtask": "a", "data": {"attempt": 1}},
        {"time": "2026-01-01T10:00:02Z", "elapsed_s": 2.5, "kind": "subtask_committed",
         "subtask": "a"},
        {"time": "2026-01-01T10:00:03Z", "elapsed_s": 3.0, "kind": "check_started",
         "data": {"commit": "c0ffee" * 6, "subtasks": ["a"]}},
        {"time": "2026-01-01T10:00:04Z", "elapsed_s": 4.0, "kind": "subtask_conflict",
         "subtask": "b"},
        {"time": "2026-01-01T10:00:04Z", "elapsed_s": 4.2, "kind": "resolution_started",
         "subtask": "b", "data": {"round": 1}},
        {"time": "2026-01-01T10:00:05Z", "elapsed_s": 5.2, "kind": "resolved",
         "subtask": "b"},
    ]
    path = tmp_path / "events.jsonl"
    text = "\n".join(json.dumps(line) for line in lines)
    path.write_text(text[:40] + "\nnot json\n[1, 2]\n" + text[40:] + '\n{"kind": "subtask_')
    reader = EventReader(path)
    events = reader.read()
    assert [e["kind"] for e in events] == [line["kind"] for line in lines[1:]]
    line = timeline(plan, events)
    rows = {r["id"]: r["items"] for r in line["rows"]}
    assert [(i["kind"], i["from"], i["to"], i["outcome"]) for i in rows["a"]] == [
        ("attempt", 0.3, 1.3, "failed"), ("attempt", 1.3, 2.3, "committed")]
    assert rows["b"][0] == {"kind": "mark", "at": 3.8, "outcome": "conflict"}
    assert rows["b"][1]["kind"] == "round"
    assert rows["b"][1]["to"] == 5.0
    assert line["checks"][0]["subtasks"] == ["a"]
    assert line["checks"][0]["to"] == 3.8
    with path.open("a") as handle:  # the torn line completes
        handle.write('merged", "elapsed_s": 6.0, "time": "2026-01-01T10:00:06Z", '
                     '"subtask": "a"}\n')
    assert reader.read()[-1]["kind"] == "subtask_merged"


def test_without_events_the_timeline_comes_from_the_plan(one_done: Path) -> None:
    plan = load_plan(resolve_spec(one_done, SPEC).plan_path)
    line = timeline(plan, [])
    assert line["source"] == "plan"
    [row] = line["rows"]
    assert [i["kind"] for i in row["items"]] == ["attempt", "mark"]


async def test_a_50_subtask_page_stays_small(repo: Path) -> None:
    """Everything the page fetches for a finished 50-subtask build stays far below 2 MB (the
    benchmark, scripts/bench_ui.py, measures it on a real build, with the load time)."""
    subtasks = [{"id": f"s{n:02d}", "description": f"Subtask {n}\n" + "details " * 40,
                 "status": "completed", "started_at": "2026-01-01T10:00:00Z",
                 "completed_at": "2026-01-01T10:01:00Z",
                 "orchestrate": {"attempts": 2, "duration_s": 60.0, "merge": "merged",
                                 "error": "x" * 300, "cost_usd": 0.5}}
                for n in range(1, 51)]
    write_plan(repo, SPEC, {"phases": [{"phase": 1, "parallel_safe": True,
                                        "subtasks": subtasks}]})
    spec = resolve_spec(repo, SPEC)
    spec.logs.mkdir()
    events = [{"time": "2026-01-01T10:00:00Z", "elapsed_s": 0.0, "kind": "build_started",
               "message": "building", "data": {}}]
    for n in range(1, 51):
        for kind in ("subtask_started", "attempt_failed", "subtask_committed",
                     "subtask_merged"):
            events.append({"time": "2026-01-01T10:00:30Z", "elapsed_s": float(n),
                           "kind": kind, "subtask": f"s{n:02d}", "message": kind * 5,
                           "data": {"attempt": 1, "detail": ["line"] * 20}})
    events_path(spec.logs).write_text("".join(json.dumps(e) + "\n" for e in events))
    app = UiApp(repo)
    sizes = [len((await call(app, path)).body) for path in (
        f"/specs/{SPEC}", "/static/app.js", "/static/app.css", f"/api/specs/{SPEC}",
        f"/api/specs/{SPEC}/report")]
    state = json.loads((await call(app, f"/api/specs/{SPEC}")).body)
    assert len(state["timeline"]["rows"]) == 50
    assert all(len(r["items"]) == 3 for r in state["timeline"]["rows"])
    assert sum(sizes) < 2 * 1024 * 1024
    assert sum(sizes) < 200 * 1024, sizes  # what it is today, with room to grow


def test_bisection_probes_name_the_subtasks_they_hold(repo: Path) -> None:
    """Each probe of a bisection is a commit of the checked chain: the page names the subtasks
    merged up to it, and the culprit comes with the check's recorded output."""
    base = git(repo, "rev-parse", "HEAD")
    heads = {s: commit_files(repo, base, {f"{s}.txt": s}, s) for s in ("a", "b", "c")}
    chain, tip = [], base
    for subtask, head in heads.items():
        tip = commit_files(repo, tip, {f"{subtask}.txt": subtask}, f"merge {subtask}",
                           parents=[head])
        chain.append(tip)
    plan = plan_of(phase(1, ["a", "b", "c"], parallel=True))
    for raw in plan["phases"][0]["subtasks"]:
        raw["orchestrate"] = {"head": heads[raw["id"]]}
    plan["phases"][0]["subtasks"][2]["orchestrate"]["check"] = {
        "command": "make test", "exit_code": 2, "commit": chain[2], "output": "FAILED test_c"}
    write_plan(repo, SPEC, plan)
    spec = resolve_spec(repo, SPEC)
    events = [{"kind": "bisect_started", "message": "bisecting 3", "data": {
                   "commit": chain[2], "branches": 3}},
              {"kind": "bisect_round", "message": "round", "data": {"probes": chain[:2]}},
              {"kind": "bisect_culprit", "subtask": "c", "message": "culprit",
               "data": {"commit": chain[2]}}]
    [found] = bisections(spec, load_plan(spec.plan_path), events, Chains())
    assert [p["holds"] for p in found["rounds"][0]["probes"]] == [["a"], ["a", "b"]]
    assert found["culprit"]["subtask"] == "c"
    assert (found["culprit"]["exit_code"], found["culprit"]["output"]) == (2, "FAILED test_c")


def test_radar_pairs_come_from_the_plan_events_and_report(repo: Path) -> None:
    plan_raw = plan_of(phase(1, ["a", "b", "c"], parallel=True))
    plan_raw["phases"][0]["subtasks"][1]["orchestrate"] = {"radar": [
        {"with": "a", "path": "x.py", "overlapping": True}, "junk"]}
    write_plan(repo, SPEC, plan_raw)
    plan = load_plan(resolve_spec(repo, SPEC).plan_path)
    events = [{"kind": "overlap_predicted", "data": {"subtasks": ["a", "c"], "path": "y.py",
                                                     "overlapping": False}}]
    outcomes = [{"subtasks": ["b", "a"], "path": "x.py", "outcome": "conflict"}]
    assert radar_pairs(plan, events, outcomes) == [
        {"subtasks": ["a", "b"], "path": "x.py", "overlapping": True, "outcome": "conflict"},
        {"subtasks": ["a", "c"], "path": "y.py", "overlapping": False, "outcome": None}]


@pytest.mark.slow
def test_ui_prints_its_url_and_serves_until_ctrl_c(built: Path) -> None:
    import signal
    import urllib.request

    with subprocess.Popen([*ORCHESTRATE, "ui", SPEC], cwd=built, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as ui:
        try:
            assert ui.stdout is not None
            url = ui.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            assert url.endswith(f"/specs/{SPEC}")
            api = url.replace("/specs/", "/api/specs/")
            with urllib.request.urlopen(api, timeout=30) as answer:
                assert json.loads(answer.read())["spec"] == SPEC
            ui.send_signal(signal.SIGINT)
            assert ui.wait(timeout=30) == 0
        finally:
            if ui.poll() is None:
                ui.kill()


async def test_a_broken_plan_is_reported_not_fatal(repo: Path) -> None:
    path = write_plan(repo, SPEC, '{"phases": [')
    app = UiApp(repo)
    stream = await call(app, f"/api/specs/{SPEC}/stream", until=b"\n\n")
    assert stream.text.startswith("event: problem\n")
    assert "not valid JSON" in stream.text
    answer = await call(app, f"/api/specs/{SPEC}")
    assert answer.status == 500
    assert str(path) in json.loads(answer.body)["error"]
    listing = json.loads((await call(app, "/api/specs")).body)
    assert "not valid JSON" in listing[0]["error"]


async def test_the_page_escapes_what_the_plan_says(repo: Path) -> None:
    plan = plan_of(phase(1, ["a"]))
    plan["phases"][0]["subtasks"][0]["description"] = "<script>alert(1)</script> & more"
    write_plan(repo, SPEC, plan)
    page = (await call(UiApp(repo), f"/specs/{SPEC}")).text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page


@pytest.mark.slow
def test_build_ui_prints_the_page_url_first(repo: Path) -> None:
    write_plan(repo, SPEC, plan_of(phase(1, ["a"])))
    for extra in ([], ["--json"]):
        done = run_cli(repo, "build", SPEC, "--ui", "--retry-failed", *extra,
                       "--agent-command", "echo done > $ORCHESTRATE_SUBTASK_ID.txt", check=0)
        first, *rest = done.stdout.splitlines()
        assert re.fullmatch(rf"http://127\.0\.0\.1:\d+/specs/{SPEC}", first), first
        if extra:
            assert all(json.loads(line)["kind"] for line in rest)


def test_the_script_parses() -> None:
    """The page's script is plain JavaScript that node (when installed) accepts as is."""
    import shutil

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = Path(__file__).parents[2] / "orchestrator/face/web/static/app.js"
    done = subprocess.run([node, "--check", str(script)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr


async def test_head_answers_headers_only_and_check_says_none(built: Path) -> None:
    app = UiApp(built)
    stream = await call(app, f"/api/specs/{SPEC}/stream", method="HEAD")
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.body == b""
    check = json.loads((await call(app, f"/api/specs/{SPEC}/subtasks/b/check")).body)
    assert check["subtask"] == "b"
    assert check["command"] is None
    assert (await call(app, f"/api/specs/{SPEC}/subtasks/nope/diff")).status == 404
