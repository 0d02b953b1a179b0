// orchestrate's build page: plain JavaScript, no build step. Everything shown is put in the
// page with textContent (never as HTML), and every request carries the page's ?token=.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token");
const STATUS_WORDS = ["pending", "in_progress", "completed", "failed", "blocked", "conflict"];

function withToken(path) {
  if (!TOKEN) return path;
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN);
}

function api(...parts) {
  return withToken("/api/specs" + parts.map((p) => "/" + encodeURIComponent(p)).join(""));
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "style") node.style.cssText = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || isNaN(seconds)) return "";
  if (seconds < 60) return seconds.toFixed(1) + "s";
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return minutes + "m" + String(Math.floor(seconds % 60)).padStart(2, "0") + "s";
  return Math.floor(minutes / 60) + "h" + String(minutes % 60).padStart(2, "0") + "m";
}

function usd(value) {
  return value === null || value === undefined ? "" : value.toFixed(value < 1 ? 4 : 2) + " USD";
}

function statusCell(word) {
  return el("span", {class: "status s-" + word, "data-status": word}, word);
}

function setLive(text, cls) {
  const live = document.getElementById("live");
  live.textContent = text;
  live.className = cls || "";
}

// ---- the list of specs -------------------------------------------------------------------

async function showList() {
  document.getElementById("crumb").textContent = "";
  const main = document.getElementById("main");
  const response = await fetch(withToken("/api/specs"));
  const specs = await response.json();
  const rows = specs.map((spec) => el("tr", {"data-spec": spec.name},
    el("td", {}, el("a", {href: withToken("/specs/" + encodeURIComponent(spec.name))}, spec.name)),
    el("td", {class: "muted"}, spec.folder),
    el("td", {}, spec.error ? el("span", {class: "error"}, spec.error) : countChips(spec.counts || {})),
    el("td", {class: "num"}, spec.total === undefined ? "" :
      `${(spec.counts || {}).completed || 0}/${spec.total} completed`)));
  main.replaceChildren(el("section", {},
    el("h2", {}, "Specs"),
    specs.length ? el("table", {class: "specs"},
      el("thead", {}, el("tr", {}, el("th", {}, "spec"), el("th", {}, "folder"),
        el("th", {}, "statuses"), el("th", {}, "progress"))),
      el("tbody", {}, rows)) : el("p", {class: "muted"}, "No spec folders in this repository.")));
}

function countChips(counts) {
  return el("span", {class: "chips"}, STATUS_WORDS.filter((w) => counts[w]).map((w) =>
    el("span", {class: "chip s-" + w}, `${counts[w]} ${w}`)));
}

// ---- one spec ----------------------------------------------------------------------------

const view = {spec: null, state: null, selected: null, userSelected: false, logSource: null,
  reportAt: undefined, tab: "log"};

function showSpec(name) {
  view.spec = name;
  document.getElementById("crumb").textContent = " / " + name;
  document.title = name + " · orchestrate";
  const main = document.getElementById("main");
  main.replaceChildren(
    el("section", {id: "summary"}),
    el("section", {id: "phases"}),
    el("section", {id: "timeline-section"}, el("h2", {}, "Timeline"), el("div", {id: "timeline"})),
    el("section", {id: "detail"}),
    el("section", {id: "conflicts"}),
    el("section", {id: "bisection"}),
    el("section", {id: "radar"}));
  const source = new EventSource(api(name, "stream"));
  source.addEventListener("state", (event) => {
    setLive("live", "on");
    render(JSON.parse(event.data));
  });
  source.addEventListener("problem", (event) => setLive(JSON.parse(event.data).error, "off"));
  source.onerror = () => setLive("reconnecting…", "off");
  setInterval(tick, 1000);
}

function render(state) {
  view.state = state;
  renderSummary(state);
  renderPhases(state);
  renderTimeline(state);
  renderBisection(state);
  renderRadar(state);
  if (!view.userSelected) {
    const running = allSubtasks(state).find((s) => s.status === "in_progress");
    if (running && running.id !== view.selected) select(running.id, false);
  }
  if (view.selected) renderDetailHeader();
  if (state.report_at !== view.reportAt) {
    view.reportAt = state.report_at;
    loadReport();
  }
}

function allSubtasks(state) {
  return state.phases.flatMap((phase) => phase.subtasks);
}

function renderSummary(state) {
  const budget = state.budget_usd;
  const cost = el("p", {class: "cost"}, "cost ", el("strong", {}, usd(state.cost_usd || 0)),
    budget ? [" of ", usd(budget), " budget ",
      el("meter", {min: 0, max: budget, value: Math.min(state.cost_usd || 0, budget),
        high: budget * 0.8, optimum: 0})] : " (no budget)");
  document.getElementById("summary").replaceChildren(
    el("h1", {}, state.spec, state.feature ? el("span", {class: "feature"}, " — " + state.feature) : null),
    el("p", {}, "integration branch ", el("code", {}, state.integration_branch), " · build ",
      el("span", {id: "build-state", class: "state-" + state.state}, state.state)),
    el("p", {}, countChips(state.counts), ` ${state.total} subtasks`),
    cost);
}

function renderPhases(state) {
  const blocks = state.phases.map((phase) => el("div", {class: "phase"},
    el("h3", {}, `phase ${phase.key}`, phase.name ? ` (${phase.name})` : "",
      el("span", {class: "muted"}, phase.parallel_safe ? " · parallel" : " · sequential")),
    el("table", {class: "subtasks"},
      el("thead", {}, el("tr", {}, ["subtask", "description", "status", "attempts", "duration",
        "cost", "merge"].map((h) => el("th", {}, h)))),
      el("tbody", {}, phase.subtasks.map((s) => el("tr", {
        "data-subtask": s.id, class: s.id === view.selected ? "selected" : "",
        onclick: () => select(s.id, true)},
      el("td", {}, el("code", {}, s.id)),
      el("td", {class: "title", title: s.error || ""}, s.title,
        s.error && s.status !== "completed" ? el("div", {class: "error"}, s.error) : null),
      el("td", {}, statusCell(s.status)),
      el("td", {class: "num"}, s.attempts || ""),
      el("td", {class: "num duration", "data-started": s.status === "in_progress" ? s.started_at : null},
        s.status === "in_progress" ? running(s.started_at) : duration(s.duration_s)),
      el("td", {class: "num"}, usd(s.cost_usd)),
      el("td", {}, s.merge || "")))))));
  document.getElementById("phases").replaceChildren(el("h2", {}, "Subtasks"), ...blocks);
}

function running(startedAt) {
  const started = Date.parse(startedAt || "");
  return isNaN(started) ? "" : duration(Math.max(0, (Date.now() - started) / 1000));
}

function tick() {
  for (const cell of document.querySelectorAll("td.duration[data-started]")) {
    cell.textContent = running(cell.getAttribute("data-started"));
  }
  if (view.state && view.state.state === "running") renderTimeline(view.state);
}

// ---- the timeline ------------------------------------------------------------------------

function renderTimeline(state) {
  const line = state.timeline;
  const box = document.getElementById("timeline");
  if (!line || line.start === null || line.start === undefined) {
    box.replaceChildren(el("p", {class: "muted"}, "Nothing has run yet."));
    return;
  }
  const now = Date.now() / 1000 - line.start;
  const openEnds = state.state === "running";
  const end = Math.max(line.end || 0, openEnds ? now : 0, 1);
  const pct = (t) => (100 * t / end).toFixed(3) + "%";
  const span = (item, cls, title) => {
    const to = item.to === null || item.to === undefined ? (openEnds ? now : line.end) : item.to;
    return el("div", {class: "bar " + cls, title,
      style: `left:${pct(item.from)};width:max(3px, ${pct(Math.max(to - item.from, 0))})`});
  };
  const itemOf = (item) => {
    if (item.kind === "attempt") {
      return span(item, "attempt o-" + (item.outcome || "running").replace(/ /g, "-"),
        `attempt ${item.number || ""} ${item.outcome || "running"}: ` +
        `${duration(item.from)} → ${item.to === null ? "now" : duration(item.to)}`);
    }
    if (item.kind === "round") {
      return span(item, "round o-" + (item.outcome || "running"),
        `resolution round ${item.number || ""}: ${item.outcome || "running"}`);
    }
    if (item.kind === "check") return span(item, "check", `check ${item.commit}`);
    const label = item.outcome || item.label || item.kind;
    return el("div", {class: "mark m-" + String(item.outcome || item.kind).replace(/ /g, "-"),
      title: `${label} at ${duration(item.at)}`, style: `left:${pct(item.at)}`});
  };
  const rows = [];
  if (line.checks && line.checks.length) {
    rows.push(el("div", {class: "trow checks", "data-row": "(checks)"},
      el("div", {class: "tlabel"}, "checks"),
      el("div", {class: "track"}, line.checks.map(itemOf))));
  }
  for (const row of line.rows) {
    const checks = (line.checks || []).filter((c) => c.kind === "check" &&
      (c.subtasks || []).includes(row.id));
    rows.push(el("div", {class: "trow" + (row.id === view.selected ? " selected" : ""),
      "data-row": row.id, onclick: () => select(row.id, true)},
    el("div", {class: "tlabel"}, row.id),
    el("div", {class: "track"}, [...checks, ...row.items].map(itemOf))));
  }
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) =>
    el("span", {class: "tick", style: `left:${f * 100}%`}, duration(f * end)));
  box.replaceChildren(
    el("div", {class: "trow axis"}, el("div", {class: "tlabel muted"},
      line.source === "plan" ? "(from the plan)" : ""), el("div", {class: "track"}, ticks)),
    ...rows,
    el("p", {class: "legend muted"}, "bars: agent attempts (green committed, red failed, blue running), ",
      "resolution rounds (purple), checks (grey); marks: merged ◆, conflict ✕"));
}

// ---- one subtask: log, diff, check -------------------------------------------------------

function select(id, byUser) {
  if (byUser) view.userSelected = true;
  if (view.selected === id && view.logSource) return;
  view.selected = id;
  for (const row of document.querySelectorAll("[data-subtask], .trow[data-row]")) {
    const key = row.getAttribute("data-subtask") || row.getAttribute("data-row");
    row.classList.toggle("selected", key === id);
  }
  const detail = document.getElementById("detail");
  detail.replaceChildren(
    el("h2", {id: "detail-title"}),
    el("div", {class: "tabs"},
      el("button", {id: "tab-log", onclick: () => showTab("log")}, "log"),
      el("button", {id: "tab-diff", onclick: () => showTab("diff")}, "diff"),
      el("button", {id: "tab-check", onclick: () => showTab("check")}, "check")),
    el("pre", {id: "log", class: "pane"}),
    el("pre", {id: "diff", class: "pane", hidden: true}),
    el("pre", {id: "check", class: "pane", hidden: true}));
  renderDetailHeader();
  followLog(id);
  showTab(view.tab);
}

function renderDetailHeader() {
  const subtask = view.state && allSubtasks(view.state).find((s) => s.id === view.selected);
  const title = document.getElementById("detail-title");
  if (!subtask || !title) return;
  title.replaceChildren(el("code", {}, subtask.id), " ", statusCell(subtask.status),
    el("span", {class: "muted"}, " " + subtask.title));
  document.getElementById("tab-check").hidden = !subtask.check;
}

function followLog(id) {
  if (view.logSource) view.logSource.close();
  const pane = document.getElementById("log");
  const source = new EventSource(api(view.spec, "subtasks", id, "log"));
  view.logSource = source;
  const atBottom = () => pane.scrollHeight - pane.scrollTop - pane.clientHeight < 30;
  source.addEventListener("tail", (event) => {
    const piece = JSON.parse(event.data);
    pane.replaceChildren((piece.skipped ? "… (earlier lines not shown)\n" : "") +
      (piece.text || ""));
    if (!piece.text && !piece.skipped) pane.append(el("span", {class: "muted"}, "(no output yet)"));
    pane.scrollTop = pane.scrollHeight;
  });
  source.addEventListener("append", (event) => {
    const piece = JSON.parse(event.data);
    const follow = atBottom();
    const empty = pane.querySelector("span.muted");
    if (empty) empty.remove();
    pane.append(piece.text);
    let shown = pane.textContent.length;  // keep about the last MiB of a long log
    while (shown > 1 << 20 && pane.childNodes.length > 1) {
      shown -= pane.firstChild.textContent.length;
      pane.firstChild.remove();
    }
    if (follow) pane.scrollTop = pane.scrollHeight;
  });
}

async function showTab(tab) {
  view.tab = tab;
  for (const name of ["log", "diff", "check"]) {
    document.getElementById(name).hidden = name !== tab;
    document.getElementById("tab-" + name).classList.toggle("on", name === tab);
  }
  const id = view.selected;
  if (tab === "diff") {
    const pane = document.getElementById("diff");
    pane.textContent = "loading…";
    const text = await (await fetch(api(view.spec, "subtasks", id, "diff"))).text();
    if (view.selected === id) renderDiff(pane, text || "(no changes)\n");
  } else if (tab === "check") {
    const pane = document.getElementById("check");
    const check = await (await fetch(api(view.spec, "subtasks", id, "check"))).json();
    if (view.selected !== id) return;
    pane.textContent = check.command ? `$ ${check.command}\n# on ${check.commit}, exit ` +
      `${check.exit_code}\n\n${check.log || check.output || ""}` : "No failed check for this subtask.";
  }
}

function renderDiff(pane, text) {
  pane.replaceChildren(...text.split("\n").map((line) => {
    const cls = line.startsWith("+") && !line.startsWith("+++") ? "add" :
      line.startsWith("-") && !line.startsWith("---") ? "del" :
      line.startsWith("@@") ? "hunk" : line.startsWith("diff ") ? "file" : "";
    return el("span", {class: cls}, line + "\n");
  }));
}

// ---- conflicts, bisection, radar ---------------------------------------------------------

async function loadReport() {
  const box = document.getElementById("conflicts");
  const report = await (await fetch(api(view.spec, "report"))).json();
  const findings = report.conflicts || [];
  box.replaceChildren(el("h2", {}, "Conflict report"),
    ...(findings.length ? findings.map(finding) :
      [el("p", {class: "muted"}, report.generated_at ? "No conflicts or overlaps." :
        "No merge stage has run yet.")]));
}

function finding(found) {
  const sides = found.subtasks.map((id, index) => {
    const hunks = (found.hunks || []).filter((h) => h.subtask === id);
    return el("div", {class: "side", "data-side": id},
      el("h4", {}, el("code", {}, id), " ", el("span", {class: "muted"}, found.branches[index] || "")),
      hunks.length ? hunks.map((h) => el("div", {class: "hunk"},
        el("div", {class: "muted"}, `lines ${h.old_start},${h.old_lines} → ${h.new_start},${h.new_lines}`),
        el("pre", {}, (h.excerpt || []).join("\n")))) :
        el("p", {class: "muted"}, found.binary ? "binary file" : "no line ranges"));
  });
  return el("div", {class: "finding k-" + found.kind, "data-path": found.path},
    el("h3", {}, el("span", {class: "kind"}, found.kind), " ", el("code", {}, found.path), " ",
      el("span", {class: "muted"}, found.detail), " — ", found.subtasks.join(", ")),
    found.message ? el("p", {class: "muted"}, found.message) : null,
    el("div", {class: "sides"}, sides));
}

function renderBisection(state) {
  const box = document.getElementById("bisection");
  if (!state.bisections.length) { box.replaceChildren(); return; }
  box.replaceChildren(el("h2", {}, "Bisection"), ...state.bisections.map((b) => el("div", {class: "bisect"},
    el("p", {}, b.message),
    el("ol", {}, b.rounds.map((round) => el("li", {}, round.message,
      el("ul", {}, round.probes.map((p) => el("li", {}, el("code", {}, p.commit), " holds ",
        p.holds.length ? p.holds.join(", ") : "?")))))),
    b.culprit ? el("div", {class: "culprit"},
      el("p", {}, "culprit ", el("code", {}, b.culprit.subtask), ` (check on ${b.culprit.commit}` +
        (b.culprit.exit_code !== undefined ? `, exit ${b.culprit.exit_code})` : ")")),
      el("pre", {}, b.culprit.output || ""),
      el("button", {onclick: () => { select(b.culprit.subtask, true); showTab("check"); }},
        "check output")) : el("p", {class: "muted"}, "bisecting…"))));
}

function renderRadar(state) {
  const box = document.getElementById("radar");
  if (!state.radar.length) { box.replaceChildren(); return; }
  box.replaceChildren(el("h2", {}, "Conflict radar"), el("table", {},
    el("thead", {}, el("tr", {}, ["subtasks", "path", "ranges overlap", "outcome"].map((h) => el("th", {}, h)))),
    el("tbody", {}, state.radar.map((pair) => el("tr", {},
      el("td", {}, pair.subtasks.join(" ↔ ")), el("td", {}, el("code", {}, pair.path)),
      el("td", {}, pair.overlapping ? "yes" : "no"), el("td", {}, pair.outcome || "–"))))));
}

// ---- start -------------------------------------------------------------------------------

document.getElementById("home").setAttribute("href", withToken("/"));
const match = location.pathname.match(/^\/specs\/([^/]+)$/);
if (match) showSpec(decodeURIComponent(match[1]));
else showList().catch((error) => setLive(String(error), "off"));
