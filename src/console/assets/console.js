// The coolbeans console: polls the node's JSON and redraws; actions post JSON with the admin
// token and the CSRF echo. Everything shown from the server goes in as text, never as HTML.
"use strict";

const POLL_MS = 1000;
// Rate history kept per tube for the sparklines.
const RATE_WINDOW_MS = 5 * 60 * 1000;

const state = {
  tube: null,          // the tube shown below the list
  jobState: "ready",
  pageStart: "",       // cursor of the page shown ("" = first)
  nextCursor: null,
  pageNumber: 1,
  job: null,           // the job shown
  bodyView: "text",
  tubeAfter: null,     // more tubes after this cursor
  tubesShown: 50,
  history: new Map(),  // tube -> [{t, puts, deletes}]
};

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function cookie(name) {
  const found = document.cookie.split(";").map((c) => c.trim().split("=")).find(([k]) => k === name);
  return found ? found[1] : "";
}

function say(text, ok) {
  const m = $("message");
  m.textContent = text;
  m.className = ok ? "ok" : "error";
}

async function getJson(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

async function act(path, payload, what) {
  const r = await fetch(path, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      Authorization: "Bearer " + (sessionStorage.getItem("cb-token") || ""),
      "X-CSRF-Token": cookie("cb_csrf"),
    },
    body: JSON.stringify(payload),
  });
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) {
    say(what + " refused: " + (body.error || r.status), false);
    return null;
  }
  say(what + ": done " + JSON.stringify(body), true);
  refresh();
  return body;
}

// ---- cluster ----

function drawCluster(o) {
  $("mode").textContent = o.mode + " · node " + o.node_id;
  const access = $("access");
  access.textContent = o.read_only ? "read-only" : "actions need the admin token";
  access.className = "badge" + (o.read_only ? " read-only" : "");
  $("token-form").hidden = o.read_only;
  const c = o.cluster;
  $("cluster-summary").textContent = c.leader_id
    ? "Leader: node " + c.leader_id + ", term " + c.term + (c.leader_missing ? " (" + c.leader_missing + ")" : "")
    : "No leader known" + (c.leader_missing ? ": " + c.leader_missing : "");
  $("cluster-summary").dataset.leader = c.leader_id;
  const body = $("members").tBodies[0];
  body.replaceChildren(...c.members.map((m) => {
    const tr = el("tr");
    tr.dataset.member = m.id;
    if (m.leader) tr.className = "leader";
    const cells = [m.id, m.addr, m.error ? "unreachable: " + m.error : (m.role || "") + (m.voter ? "" : " (learner)"),
      m.term, m.commit_index, m.applied_index, m.snapshot_index, m.match_index, m.lag,
      m.last_contact_ms == null ? "" : m.last_contact_ms + " ms"];
    cells.forEach((v, i) => tr.append(el("td", v == null ? "" : v, i >= 3 && i <= 8 ? "num" : "")));
    return tr;
  }));
  $("timeline").replaceChildren(...o.timeline.slice().reverse().map((t) =>
    el("li", new Date(t.at_ms).toLocaleTimeString() + " — " + (t.leader_id ? "node " + t.leader_id + " leads" : "no leader") + ", term " + t.term)));
  const t = o.totals;
  if (!t) {
    $("totals").textContent = "counts unavailable: " + o.read_error;
    return;
  }
  $("totals").textContent = o.jobs + " jobs in " + o.tubes + " tubes: " + t.ready + " ready, " + t.reserved + " reserved, " +
    t.delayed + " delayed, " + t.buried + " buried";
}

// ---- tubes ----

function remember(tube, now) {
  let h = state.history.get(tube.name);
  if (!h) state.history.set(tube.name, (h = []));
  h.push({ t: now, puts: tube.total_jobs, deletes: tube.cmd_delete });
  while (h.length > 2 && now - h[0].t > RATE_WINDOW_MS) h.shift();
  return h;
}

function rates(h, key) {
  const out = [];
  for (let i = 1; i < h.length; i++) {
    const dt = (h[i].t - h[i - 1].t) / 1000;
    out.push(dt > 0 ? Math.max(0, h[i][key] - h[i - 1][key]) / dt : 0);
  }
  return out;
}

function sparkline(values) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", "80");
  svg.setAttribute("height", "18");
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => (values.length < 2 ? 0 : (i * 80) / (values.length - 1)).toFixed(1) + "," + (17 - (v / max) * 16).toFixed(1));
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", pts.join(" "));
  svg.append(line);
  return svg;
}

function drawTubes(page, now) {
  const body = $("tubes").tBodies[0];
  body.replaceChildren(...page.tubes.map((t) => {
    const tr = el("tr");
    tr.dataset.tube = t.name;
    if (t.name === state.tube) tr.classList.add("selected");
    const h = remember(t, now);
    const puts = rates(h, "puts"), deletes = rates(h, "deletes");
    const last = (r) => (r.length ? r[r.length - 1].toFixed(1) : "0.0");
    tr.append(el("td", t.name, "name"));
    for (const k of ["ready", "reserved", "delayed", "buried"]) tr.append(el("td", t.counts[k], "num " + k));
    tr.append(el("td", t.waiting, "num waiting"));
    tr.append(el("td", t.pause_secs ? t.pause_left_secs + " s left" : "", "paused"));
    const p = el("td", last(puts) + " ", "num puts"); p.append(sparkline(puts)); tr.append(p);
    const d = el("td", last(deletes) + " ", "num deletes"); d.append(sparkline(deletes)); tr.append(d);
    tr.addEventListener("click", () => showTube(t.name));
    return tr;
  }));
  $("tubes-more").hidden = page.next == null;
  state.tubeAfter = page.next;
}

function showTube(name) {
  if (state.tube !== name) {
    state.tube = name;
    state.jobState = "ready";
    firstPage();
  }
  $("tube-section").hidden = false;
  $("tube-name").textContent = name;
  refresh();
}

function firstPage() {
  state.pageStart = "";
  state.pageNumber = 1;
}

// ---- jobs ----

async function drawJobs() {
  if (!state.tube) return;
  document.querySelectorAll("#states button").forEach((b) => b.classList.toggle("active", b.dataset.state === state.jobState));
  const q = new URLSearchParams({ tube: state.tube, state: state.jobState, after: state.pageStart, limit: "25" });
  let page;
  try {
    page = await getJson("/api/jobs?" + q);
  } catch (e) {
    $("jobs").tBodies[0].replaceChildren();
    $("jobs-page").textContent = e.message;
    return;
  }
  $("jobs").tBodies[0].replaceChildren(...page.jobs.map((j) => {
    const tr = el("tr");
    tr.dataset.job = j.id;
    if (state.job === j.id) tr.classList.add("selected");
    [j.id, j.pri, j.age_secs + " s", j.time_left_secs ? j.time_left_secs + " s" : "", j.body_bytes].forEach((v, i) => tr.append(el("td", v, i === 0 ? "" : "num")));
    tr.append(el("td", j.body_preview, "body"));
    tr.addEventListener("click", () => showJob(j.id));
    return tr;
  }));
  state.nextCursor = page.next;
  $("jobs-next").disabled = page.next == null;
  $("jobs-page").textContent = "page " + state.pageNumber + (page.jobs.length ? "" : " (no " + state.jobState + " jobs)");
}

async function showJob(id) {
  state.job = id;
  $("job-section").hidden = false;
  $("job-id").textContent = id;
  await drawJob();
}

async function drawJob() {
  if (state.job == null) return;
  let j;
  try {
    j = await getJson("/api/job?id=" + state.job);
  } catch (e) {
    $("job-stats").tBodies[0].replaceChildren(el("tr", "gone: " + e.message));
    $("job-body").textContent = "";
    return;
  }
  const keys = ["tube", "state", "pri", "age_secs", "delay_secs", "ttr_secs", "time_left_secs", "reserves", "timeouts", "releases", "buries", "kicks", "body_bytes"];
  $("job-stats").tBodies[0].replaceChildren(...keys.map((k) => {
    const tr = el("tr");
    tr.append(el("th", k), el("td", j[k]));
    tr.dataset.key = k;
    return tr;
  }));
  document.querySelectorAll("#body-views button").forEach((b) => b.classList.toggle("active", b.dataset.view === state.bodyView));
  $("job-body").textContent = bodyAs(j, state.bodyView);
}

function bodyAs(j, view) {
  if (view === "hex") return j.body_hex.replace(/(..)/g, "$1 ").trim();
  if (j.body_text == null) return "(not UTF-8: see hex)";
  if (view === "json") {
    try { return JSON.stringify(JSON.parse(j.body_text), null, 2); } catch (e) { return "(not JSON: " + e.message + ")"; }
  }
  return j.body_text;
}

// ---- polling ----

let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const o = await getJson("/api/overview");
    drawCluster(o);
    const tubes = await getJson("/api/tubes?limit=" + state.tubesShown);
    drawTubes(tubes, o.now_ms);
    await drawJobs();
    await drawJob();
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
    $("status").className = "status";
  } catch (e) {
    $("status").textContent = "cannot reach the node: " + e.message;
    $("status").className = "status down";
  } finally {
    busy = false;
  }
}

function confirmTwice(button, label, action) {
  let armed = null;
  button.addEventListener("click", () => {
    if (armed) {
      clearTimeout(armed);
      armed = null;
      button.classList.remove("confirming");
      button.textContent = label;
      action();
      return;
    }
    button.classList.add("confirming");
    button.textContent = "Click again to confirm";
    armed = setTimeout(() => { armed = null; button.classList.remove("confirming"); button.textContent = label; }, 5000);
  });
}

function wire() {
  $("token").value = sessionStorage.getItem("cb-token") || "";
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("cb-token", $("token").value);
    say("token kept for this tab", true);
  });
  $("tubes-more").addEventListener("click", () => { state.tubesShown += 50; refresh(); });
  document.querySelectorAll("#states button").forEach((b) => b.addEventListener("click", () => {
    state.jobState = b.dataset.state;
    firstPage();
    refresh();
  }));
  document.querySelectorAll("#body-views button").forEach((b) => b.addEventListener("click", () => { state.bodyView = b.dataset.view; drawJob(); }));
  $("jobs-first").addEventListener("click", () => { firstPage(); refresh(); });
  $("jobs-next").addEventListener("click", () => {
    if (state.nextCursor == null) return;
    state.pageStart = state.nextCursor;
    state.pageNumber += 1;
    refresh();
  });
  $("pause").addEventListener("click", () => act("/api/pause", { tube: state.tube, secs: Number($("pause-secs").value) }, "pause"));
  $("unpause").addEventListener("click", () => act("/api/pause", { tube: state.tube, secs: 0 }, "unpause"));
  $("kick").addEventListener("click", () => act("/api/kick", { tube: state.tube, bound: Number($("kick-bound").value) }, "kick"));
  confirmTwice($("delete-buried"), "Delete all buried", async () => {
    let total = 0, more = true;
    while (more) {
      const r = await act("/api/delete-buried", { tube: state.tube }, "delete all buried");
      if (!r) return;
      total += r.deleted;
      more = r.more;
    }
    say("deleted " + total + " buried jobs", true);
  });
  $("job-kick").addEventListener("click", () => act("/api/job/kick", { id: state.job }, "kick job " + state.job));
  confirmTwice($("job-delete"), "Delete", () => act("/api/job/delete", { id: state.job }, "delete job " + state.job));
  $("job-move").addEventListener("click", () => act("/api/job/move", { id: state.job, tube: $("move-tube").value }, "move job " + state.job));
}

wire();
refresh();
setInterval(refresh, POLL_MS);
