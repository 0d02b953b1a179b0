"""Benchmark: the web page of a finished 50-subtask build (`orchestrate ui`), loaded in
Debian's headless Chromium. A real build makes the spec (one parallel phase of 50 subtasks,
command agents; two of them edit the same line, so the report has a conflict), then:

* load time: from navigation to the page showing all 50 subtask rows, 50 timeline rows and
  the conflict report, read from the page's own clock (performance.now()); the median of
  `--runs` loads. Baseline in the same run: the same browser loading the page's spec list
  (`/`, one small JSON request), so the ratio says what the spec page costs on top.
* bytes: everything the page fetches (HTML, script, style sheet, the spec's JSON as its
  event stream sends it, the conflict report), as the server sends it.

Usage: python scripts/bench_ui.py [--subtasks 50] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from orchestrator.workspace.overlay import unmounted_on_exit

ORCHESTRATE = [sys.executable, "-m", "orchestrator"]
SPEC = "050-bench"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1100"]
AGENT = """\
import os, pathlib
me = os.environ["ORCHESTRATE_SUBTASK_ID"]
print(me, "working", flush=True)
if me in ("s49", "s50"):
    pathlib.Path("shared.txt").write_text(me + " was here\\n")
else:
    pathlib.Path(me + ".txt").write_text("work of " + me + "\\n")
"""
ENV = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
       "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def make_build(root: Path, count: int) -> Path:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "shared.txt").write_text("nobody yet\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    folder = repo / ".orchestrate" / "specs" / SPEC
    folder.mkdir(parents=True)
    subtasks = [{"id": f"s{n:02d}", "description": f"Subtask number {n}: add its file",
                 "status": "pending"} for n in range(1, count + 1)]
    plan = {"feature": "a page for 50 subtasks", "phases": [
        {"phase": 1, "name": "Everything", "parallel_safe": True, "subtasks": subtasks}]}
    (folder / "implementation_plan.json").write_text(json.dumps(plan, indent=2) + "\n")
    agent = root / "agent.py"
    agent.write_text(AGENT)
    done = subprocess.run([*ORCHESTRATE, "build", SPEC, "--agent", "command",
                           "--agent-command", f"{sys.executable} {agent}", "--resolve",
                           "manual", "--max-parallel", "10"], cwd=repo,
                          capture_output=True, text=True, env={**os.environ, **ENV})
    if done.returncode not in (0, 1):
        raise SystemExit(f"the build failed:\n{done.stdout}\n{done.stderr}")
    return repo


def start_ui(repo: Path) -> tuple[subprocess.Popen[str], str]:
    ui = subprocess.Popen([*ORCHESTRATE, "ui", SPEC], cwd=repo, stdout=subprocess.PIPE,
                          text=True)
    assert ui.stdout is not None
    return ui, ui.stdout.readline().strip()


def fetched_bytes(url: str) -> dict[str, int]:
    base = url.split("/specs/")[0]
    paths = {"page": url, "script": f"{base}/static/app.js", "styles": f"{base}/static/app.css",
             "state": f"{base}/api/specs/{SPEC}", "report": f"{base}/api/specs/{SPEC}/report"}
    sizes = {}
    for name, address in paths.items():
        with urllib.request.urlopen(address, timeout=30) as response:
            sizes[name] = len(response.read())
    return sizes


def browser(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


READY = {"spec": "return document.querySelectorAll('tr[data-subtask]').length >= {n} && "
                 "document.querySelectorAll('.trow[data-row]:not([data-row=\"(checks)\"])')"
                 ".length >= {n} && !!document.querySelector('#conflicts .finding') "
                 "? performance.now() : null;",
         "list": "return document.querySelector('tr[data-spec]') ? performance.now() : null;"}


def load_ms(driver: Any, url: str, ready: str) -> float:
    driver.get("about:blank")
    driver.get(url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = driver.execute_script(ready)
        if found is not None:
            return float(found)
        time.sleep(0.005)
    raise SystemExit(f"the page at {url} did not finish loading")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subtasks", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp, \
            unmounted_on_exit(tmp):
        root = Path(tmp)
        started = time.monotonic()
        repo = make_build(root, args.subtasks)
        print(f"built {args.subtasks} subtasks in {time.monotonic() - started:.1f}s")
        ui, url = start_ui(repo)
        driver = browser(root / "profile")
        try:
            sizes = fetched_bytes(url)
            spec_ready = READY["spec"].replace("{n}", str(args.subtasks))
            load_ms(driver, url, spec_ready)  # warm: the browser's first page
            spec = [load_ms(driver, url, spec_ready) for _ in range(args.runs)]
            listing = [load_ms(driver, url.split("/specs/")[0] + "/", READY["list"])
                       for _ in range(args.runs)]
        finally:
            driver.quit()
            ui.terminate()
            ui.wait(timeout=30)
    total = sum(sizes.values())
    print(f"bytes: {total} in all ({total / 1024:.0f} KiB): "
          + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    print(f"spec page ({args.subtasks} subtasks) ready in {statistics.median(spec):.0f} ms "
          f"(median of {args.runs}; all: {', '.join(f'{t:.0f}' for t in spec)})")
    print(f"baseline, the spec list: {statistics.median(listing):.0f} ms; ratio "
          f"{statistics.median(spec) / statistics.median(listing):.1f}x")


if __name__ == "__main__":
    main()
