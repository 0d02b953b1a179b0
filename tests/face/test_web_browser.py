"""The build in a browser, in a real browser: Debian's headless Chromium (through chromedriver
and selenium) follows a real `orchestrate build --ui` with command agents. Without a reload,
the page shows the statuses changing, a running subtask's log lines arriving, the timeline, a
subtask's diff and the conflict with both subtasks' hunks. The test saves a screenshot."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import ORCHESTRATE, phase, plan_of, write_plan

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SPEC = "001-ui"
# Flags that keep Chromium off the network (this machine has none) and quick to start.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1500"]

AGENT = """\
import os, pathlib, sys, time
me = os.environ["ORCHESTRATE_SUBTASK_ID"]
gate = pathlib.Path({gates!r}) / ("release-" + me)
count = 0
while not gate.exists():
    count += 1
    print(me, "working, line", count, flush=True)
    time.sleep(0.2)
    if count > 900:
        sys.exit(3)
if me in ("a", "b"):
    path = pathlib.Path("src/app.py")
    lines = path.read_text().splitlines(keepends=True)
    lines[0] = me + " was here\\n"
    path.write_text("".join(lines))
else:
    pathlib.Path(me + ".txt").write_text(me + "\\n")
print(me, "done", flush=True)
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("Debian's chromium and chromium-driver are not installed "
                    "(apt-get install -y chromium chromium-driver; .ci/run does it as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except Exception:  # the element is being replaced by a re-render: look again
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def text_of(driver: WebDriver, css: str) -> str:
    return str(driver.execute_script(
        "const n = document.querySelector(arguments[0]); return n ? n.textContent : '';", css))


def status_of(driver: WebDriver, subtask: str) -> str:
    return text_of(driver, f'tr[data-subtask="{subtask}"] .status')


def click(driver: WebDriver, css: str) -> None:
    driver.execute_script("document.querySelector(arguments[0]).click();", css)


def first_line(path: Path, process: subprocess.Popen[bytes]) -> str:
    def line() -> str | None:
        text = path.read_text() if path.exists() else ""
        if "\n" in text:
            return text.split("\n", 1)[0]
        assert process.poll() is None, f"the build ended: {text}"
        return None
    return str(wait_for("the build's first line", line))


def test_the_page_follows_a_real_build(repo: Path, tmp_path: Path, browser: WebDriver) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT.format(gates=str(gates)))
    write_plan(repo, SPEC, plan_of(phase(1, ["a", "b"], parallel=True, name="Edit line one"),
                                   phase(2, ["z"], depends_on=[], name="Keep going"),
                                   feature="the build in a browser"))
    output = tmp_path / "build.out"
    with output.open("wb") as out:
        build = subprocess.Popen([*ORCHESTRATE, "build", SPEC, "--ui", "--agent", "command",
                                  "--agent-command", f"python3 {agent}", "--resolve", "manual"],
                                 cwd=repo, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = first_line(output, build)
        assert re.fullmatch(rf"http://127\.0\.0\.1:\d+/specs/{SPEC}", url), url
        follow(browser, url, gates, tmp_path)
        (gates / "release-z").touch()
        assert build.wait(timeout=60) == 1, output.read_text()  # b is in conflict
    finally:
        for name in ("a", "b", "z"):
            (gates / f"release-{name}").touch()
        if build.poll() is None:
            build.terminate()
            build.wait(timeout=30)
    with pytest.raises(urllib.error.URLError):  # the page lived as long as the build
        urllib.request.urlopen(url, timeout=5)


def follow(driver: WebDriver, url: str, gates: Path, tmp_path: Path) -> None:
    driver.get(url)
    driver.execute_script("window.__sameDocument = true;")
    for subtask in ("a", "b", "z"):
        wait_for(f"{subtask} in_progress", lambda s=subtask: status_of(driver, s) ==
                 "in_progress")
    click(driver, 'tr[data-subtask="z"]')
    wait_for("z's log", lambda: "z working, line" in text_of(driver, "#log"))
    lines = text_of(driver, "#log").count("z working, line")
    wait_for("new log lines", lambda: text_of(driver, "#log").count("z working, line") >
             lines + 2)
    for row in ("a", "b", "z"):
        wait_for(f"{row}'s timeline bar", lambda r=row: driver.execute_script(
            "return document.querySelectorAll(`.trow[data-row='${arguments[0]}'] .bar`)"
            ".length", r))
    (gates / "release-a").touch()
    (gates / "release-b").touch()
    wait_for("a completed", lambda: status_of(driver, "a") == "completed")
    wait_for("b conflict", lambda: status_of(driver, "b") == "conflict")
    assert status_of(driver, "z") == "in_progress"
    finding = '#conflicts .finding[data-path="src/app.py"]'
    wait_for("the conflict", lambda: "conflict" in text_of(driver, finding))
    assert "a was here" in text_of(driver, f'{finding} [data-side="a"]')
    assert "b was here" in text_of(driver, f'{finding} [data-side="b"]')
    click(driver, 'tr[data-subtask="a"]')
    click(driver, "#tab-diff")
    wait_for("a's diff", lambda: "+a was here" in text_of(driver, "#diff"))
    wait_for("merge marks", lambda: driver.execute_script(
        "return document.querySelectorAll('.trow .mark').length >= 2"))
    assert driver.execute_script("return window.__sameDocument === true;"), "the page reloaded"
    click(driver, 'tr[data-subtask="z"]')
    click(driver, "#tab-log")
    wait_for("z's log again", lambda: "z working, line" in text_of(driver, "#log"))
    shot = tmp_path / "ui.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if target := os.environ.get("WEB_UI_SCREENSHOT"):
        shutil.copyfile(shot, target)
