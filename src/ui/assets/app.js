// trace-bench ui: a thin page over /api/... (no dependencies; every text goes through
// textContent, never innerHTML).
"use strict";
const $app = document.getElementById("app");
let live = null;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined) continue;
    e.appendChild(typeof k === "object" ? k : document.createTextNode(String(k)));
  }
  return e;
}
async function api(path, opts) {
  const r = await fetch(path, opts);
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok && !body.problems) throw new Error(body.error || r.statusText);
  return body;
}
function fmt(v) {
  if (v === null || v === undefined || v === "") return "";
  const n = Number(v);
  if (typeof v !== "boolean" && !Number.isNaN(n) && String(v).trim() !== "") {
    return Number.isInteger(n) ? String(n) : n.toPrecision(4);
  }
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}
function statusClass(s) { return "s-" + String(s).replace(/ /g, "-"); }
// Pills separated by spaces, so the text reads "3 not started 2 ok" (screen readers,
// copy-paste, the browser check's word boundaries), not "3 not started2 ok".
function counts(c) {
  return el("span", {}, Object.entries(c || {}).flatMap(([k, n], i) =>
    [i ? " " : null, el("span", { class: "pill " + statusClass(k) }, `${n} ${k}`)]));
}
function table(cols, rows) {
  return el("table", {}, el("tr", {}, cols.map(c => el("th", {}, c[0]))),
    rows.map(r => el("tr", {}, cols.map(c => {
      const v = c[1](r);
      return el("td", { class: c[2] || "" }, v instanceof Node ? v : fmt(v));
    }))));
}
function pager(total, page, per, go) {
  const pages = Math.max(1, Math.ceil(total / per));
  return el("div", { class: "pager" },
    el("button", { onclick: () => go(page - 1), ...(page <= 0 ? { disabled: "" } : {}) }, "‹ prev"),
    ` page ${page + 1} of ${pages} (${total}) `,
    el("button", { onclick: () => go(page + 1), ...(page + 1 >= pages ? { disabled: "" } : {}) }, "next ›"));
}
// replaceChildren, leaving out the parts a page does not have (null would show as "null").
function fill(node, ...kids) { node.replaceChildren(...kids.flat().filter(k => k !== null && k !== undefined)); }
function link(href, text) { return el("a", { href }, text); }
function enc(s) { return encodeURIComponent(s); }
function stopLive() { if (live) { live.close(); live = null; } document.getElementById("live").textContent = ""; }

// ---- runs list
async function runsPage(params) {
  const q = params.get("q") || "", page = Number(params.get("page") || 0);
  const box = el("input", { placeholder: "search runs (id, mode, llm, tag)", value: q, size: 40 });
  const list = el("div", {});
  const picked = [];
  const cmp = el("button", { id: "compare-picked", disabled: "", onclick: () => { location.hash = `#/compare?base=${enc(picked[0])}&new=${enc(picked[1])}`; } }, "compare the two picked");
  const pick = (id) => el("input", { type: "checkbox", title: "pick to compare", "data-run": id, onchange: (e) => {
    const i = picked.indexOf(id);
    if (e.target.checked && i < 0) picked.push(id); else if (!e.target.checked && i >= 0) picked.splice(i, 1);
    if (picked.length === 2) cmp.removeAttribute("disabled"); else cmp.setAttribute("disabled", "");
  }, ...(picked.includes(id) ? { checked: "" } : {}) });
  let current = page, going = false;
  const load = async (p) => {
    current = p;
    const d = await api(`/api/runs?q=${enc(box.value)}&page=${p}&per_page=50`);
    going = d.runs.some(r => !r.complete);
    fill(list, 
      table([
        ["", r => pick(r.run_id)],
        ["run", r => link(`#/run/${enc(r.run_id)}`, r.run_id)],
        ["mode", r => r.mode], ["llm", r => r.llm],
        ["started", r => r.created_at], ["wall (s)", r => r.wall_seconds, "num"],
        ["planned", r => r.planned, "num"], ["status", r => counts(r.counts)],
        ["tags", r => (r.tags || []).join(", ")],
      ], d.runs),
      pager(d.total, d.page, d.per_page, load),
      d.unreadable ? el("p", { class: "muted" }, `${d.unreadable} folder(s) with an unreadable manifest`) : null);
  };
  box.addEventListener("input", () => load(0));
  fill($app, el("h2", {}, "Runs"), box, cmp, list);
  await load(page);
  // Live counts: while a run on this page is going, the page is read again every 2 s.
  const me = location.hash;
  const timer = setInterval(() => {
    if (location.hash !== me) clearInterval(timer);
    else if (going) load(current).catch(() => {});
  }, 2000);
}

// ---- one run
async function runPage(runId) {
  let d;
  // A run just launched has no manifest for a moment: wait for it while this page is open.
  for (let tries = 0; ; tries++) {
    try { d = await api(`/api/runs/${enc(runId)}`); break; } catch (e) {
      if (tries >= 60 || location.hash !== `#/run/${enc(runId)}` || !/^no run/.test(e.message)) throw e;
      fill($app, el("p", { class: "muted" }, `waiting for run ${runId} to start…`));
      await new Promise(r => setTimeout(r, 500));
    }
  }
  const s = d.summary;
  const head = el("div", { id: "run-head" });
  const showHead = (st) => fill(head, 
    el("p", {}, `mode ${s.mode} · llm ${s.llm || "?"} · started ${s.created_at} · ${st.planned} planned `,
      counts(st.counts), st.complete ? " · complete" : ""));
  showHead(s);
  const links = el("p", {},
    d.report_html ? link(`/files/${enc(runId)}/report.html`, "report.html") : el("span", { class: "muted" }, "no report.html (trace-bench report --html)"),
    " · ", link(`/files/${enc(runId)}/leaderboard.csv`, "leaderboard.csv"),
    " · TensorBoard: ", el("code", {}, d.tensorboard));
  const lb = d.leaderboard && d.leaderboard.length ? table([
    ["task", r => r.task_id], ["rank", r => r.rank, "num"], ["trainer", r => r.trainer_id],
    ["mean val", r => r.mean_score_val, "num"], ["ci95", r => r.ci95_low === "" ? "" : `[${fmt(r.ci95_low)}, ${fmt(r.ci95_high)}]`],
    ["std", r => r.std_score_val, "num"], ["jobs", r => r.jobs, "num"], ["ok", r => r.ok, "num"], ["failed", r => r.failed, "num"],
    ["mean test", r => r.mean_score_test, "num"], ["mean time (s)", r => r.mean_time_seconds, "num"], ["mean tokens", r => r.mean_tokens, "num"],
  ], d.leaderboard) : el("p", { class: "muted" }, "no leaderboard.csv yet (written when the run ends)");
  const stats = d.stats ? el("details", {}, el("summary", {}, "stats.json (which optimizer is better)"), el("pre", {}, JSON.stringify(d.stats, null, 2))) : null;
  const gate = d.gate ? el("details", {}, el("summary", {}, `gate.json: ${d.gate.passed === false ? "FAILED" : "passed"}`), el("pre", {}, JSON.stringify(d.gate, null, 2))) : null;
  // jobs table with filters
  const f = {};
  const filters = el("div", {}, ["suite", "task", "trainer", "status", "seed"].map(k => {
    const sel = el("select", { id: `f-${k}`, onchange: () => loadJobs(0) }, el("option", { value: "" }, `any ${k}`),
      ((d.facets || {})[k] || []).map(v => el("option", { value: v }, v)));
    f[k] = sel; return sel;
  }));
  const jobs = el("div", { id: "jobs" });
  const loadJobs = async (p) => {
    const qs = Object.entries(f).map(([k, s]) => `${k}=${enc(s.value)}`).join("&");
    const j = await api(`/api/runs/${enc(runId)}/jobs?${qs}&page=${p}&per_page=50`);
    fill(jobs, table([
      ["#", r => r.index, "num"], ["job", r => link(`#/job/${enc(runId)}/${enc(r.job_id)}`, r.job_id)],
      ["task", r => r.task_id], ["trainer", r => r.trainer_id], ["seed", r => r.seed, "num"], ["variant", r => r.variant, "num"],
      ["status", r => el("span", { class: statusClass(r.status) }, r.status)],
      ["score val", r => r.score_val, "num"], ["score test", r => r.score_test, "num"],
      ["time (s)", r => r.time_seconds, "num"], ["tokens", r => r.total_tokens, "num"], ["error", r => r.error],
    ], j.jobs), pager(j.total, j.page, j.per_page, loadJobs));
  };
  // learning and anytime curves: server-drawn SVG images (analysis::curves)
  const axes = [["step", "learning curves (step)"], ["metric_calls", "anytime: metric calls"], ["tokens", "anytime: tokens"], ["cost", "anytime: cost"], ["millis", "anytime: milliseconds"]];
  const img = el("img", { class: "curves", id: "curves", alt: "learning curves" });
  let drawn = "";
  const axisSel = el("select", { id: "curve-axis", onchange: () => drawCurves(true) }, axes.map(([v, t]) => el("option", { value: v }, t)));
  const drawCurves = (force) => {
    const key = axisSel.value + "|" + JSON.stringify(s.counts);
    if (!force && key === drawn) return;
    drawn = key; img.src = `/api/runs/${enc(runId)}/curves.svg?axis=${enc(axisSel.value)}&v=${Date.now()}`;
  };
  const fails = el("div", { id: "failures" });
  const loadFailures = async () => {
    const fl = await api(`/api/runs/${enc(runId)}/failures`);
    fill(fails, fl.total === 0 ? el("p", { class: "muted" }, "no job failed, timed out, was skipped or cancelled") :
      table([["jobs", g => g.count, "num"], ["status", g => el("span", { class: statusClass(g.status) }, g.status)], ["kind", g => g.error_kind],
        ["error", g => g.message], ["e.g.", g => el("span", {}, g.jobs.map(j => [link(`#/job/${enc(runId)}/${enc(j)}`, j), " "]))]], fl.groups));
  };
  fill($app, el("h2", {}, `Run ${runId}`), head, links, el("h3", {}, "Leaderboard"), lb, stats, gate,
    el("h3", {}, "Curves"), el("p", { class: "muted" }, "mean over seeds with a bootstrap 95% band (ok jobs); anytime: best score so far against what the trainer spent. ", axisSel), img,
    el("h3", {}, "Causes of failure"), fails,
    el("h3", {}, "Jobs"), filters, jobs);
  drawCurves(true);
  loadFailures().catch(() => {});
  await loadJobs(0);
  // live counts
  stopLive();
  live = new EventSource(`/api/runs/${enc(runId)}/events`);
  const badge = document.getElementById("live");
  live.addEventListener("status", (e) => {
    const st = JSON.parse(e.data);
    showHead(st); badge.textContent = "live · " + new Date().toLocaleTimeString();
    s.counts = st.counts;
    loadJobs(0).catch(() => {}); loadFailures().catch(() => {}); drawCurves(false);
  });
  live.onerror = () => { badge.textContent = "live: reconnecting"; };
}

// ---- one job
function curve(history) {
  const pts = (history || []).filter(h => h.score_val !== null || h.best_score !== null);
  if (pts.length === 0) return el("p", { class: "muted" }, "no history");
  const W = 640, H = 240, P = 36, NS = "http://www.w3.org/2000/svg";
  const series = [["score_val", "#1d5fd1"], ["best_score", "#17803d"], ["score_train", "#c27c0e"]];
  const vals = pts.flatMap(h => series.map(s => h[s[0]]).filter(v => typeof v === "number"));
  let lo = Math.min(...vals), hi = Math.max(...vals); if (hi === lo) { hi += 1; lo -= 1; }
  const steps = pts.map(h => h.step), s0 = Math.min(...steps), s1 = Math.max(...steps) || 1;
  const x = s => P + (W - 2 * P) * ((s - s0) / ((s1 - s0) || 1)), y = v => H - P - (H - 2 * P) * ((v - lo) / (hi - lo));
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "chart"); svg.setAttribute("width", W); svg.setAttribute("height", H);
  const add = (tag, attrs, text) => { const e = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text !== undefined) e.textContent = text; svg.appendChild(e); };
  add("line", { x1: P, y1: H - P, x2: W - P, y2: H - P, stroke: "#999" });
  add("line", { x1: P, y1: P, x2: P, y2: H - P, stroke: "#999" });
  add("text", { x: 2, y: P, "font-size": 10 }, fmt(hi)); add("text", { x: 2, y: H - P, "font-size": 10 }, fmt(lo));
  add("text", { x: W / 2, y: H - 6, "font-size": 10 }, "step");
  series.forEach(([k, color], i) => {
    const ps = pts.filter(h => typeof h[k] === "number").map(h => `${x(h.step).toFixed(1)},${y(h[k]).toFixed(1)}`);
    if (ps.length) add("polyline", { points: ps.join(" "), fill: "none", stroke: color, "stroke-width": 2 });
    add("text", { x: W - P - 90, y: P + 12 * i, "font-size": 11, fill: color }, k);
  });
  return svg;
}
function paramsTable(states) {
  const get = st => Object.fromEntries(((st && st.parameters) || []).map(p => [p.name, p.value]));
  const i = get(states.initial), b = get(states.best), f = get(states.final);
  const names = [...new Set([...Object.keys(i), ...Object.keys(b), ...Object.keys(f)])];
  if (!names.length) return el("p", { class: "muted" }, "no state files");
  const show = v => el("pre", {}, typeof v === "string" ? v : JSON.stringify(v, null, 2));
  return el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "initial"), el("th", {}, "best"), el("th", {}, "final")),
    names.map(n => el("tr", {}, el("td", {}, n), el("td", {}, show(i[n])),
      el("td", { class: JSON.stringify(b[n]) !== JSON.stringify(i[n]) ? "diff" : "" }, show(b[n])),
      el("td", { class: JSON.stringify(f[n]) !== JSON.stringify(i[n]) ? "diff" : "" }, show(f[n])))));
}
// A line diff (longest common subsequence) of two texts: [kind, line] with kind " ", "-" or "+".
function lineDiff(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  if (x.length * y.length > 4e6) return [["-", a], ["+", b]];
  const L = Array.from({ length: x.length + 1 }, () => new Uint32Array(y.length + 1));
  for (let i = x.length - 1; i >= 0; i--) for (let j = y.length - 1; j >= 0; j--)
    L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = []; let i = 0, j = 0;
  while (i < x.length && j < y.length) {
    if (x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; }
    else if (L[i + 1][j] >= L[i][j + 1]) out.push(["-", x[i++]]);
    else out.push(["+", y[j++]]);
  }
  while (i < x.length) out.push(["-", x[i++]]);
  while (j < y.length) out.push(["+", y[j++]]);
  return out;
}
function text(v) { return v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v, null, 2); }
function paramDiff(states) {
  const get = st => Object.fromEntries(((st && st.parameters) || []).map(p => [p.name, p.value]));
  const i = get(states.initial), b = get(states.best), f = get(states.final);
  const names = [...new Set([...Object.keys(i), ...Object.keys(b), ...Object.keys(f)])];
  if (!names.length) return el("p", { class: "muted" }, "no state files");
  const block = (from, to, label) => {
    const A = text(from), B = text(to);
    if (A === B) return el("p", { class: "muted" }, `${label}: unchanged`);
    return el("div", {}, el("div", { class: "role" }, label),
      el("pre", { class: "pdiff" }, lineDiff(A, B).map(([k, l]) => el("div", { class: k === "+" ? "d-add" : k === "-" ? "d-del" : "d-same" }, `${k} ${l}`))));
  };
  return el("div", { id: "param-diff" }, names.map(n => el("div", {}, el("h4", {}, n),
    block(i[n], b[n], "initial → best"), block(b[n], f[n], "best → final"))));
}
function searchList(url, render, per) {
  const box = el("input", { placeholder: "search", size: 40 });
  const out = el("div", {});
  const load = async (p) => {
    const d = await api(`${url}?q=${enc(box.value)}&page=${p}&per_page=${per}`);
    fill(out, pager(d.total, d.page || 0, d.per_page || per, load), ...(d.items || []).map(render));
  };
  box.addEventListener("input", () => load(0));
  load(0);
  return el("div", {}, box, out);
}
function transcript(t) {
  return el("details", {}, el("summary", {}, `step ${fmt(t.step)} · call ${fmt(t.call)} · ${t.caller || ""} · ${t.model || ""}`),
    (t.messages || []).map(m => el("div", { class: "msg" }, el("div", { class: "role" }, m.role), el("pre", {}, typeof m.content === "string" ? m.content : JSON.stringify(m.content, null, 2)))),
    t.response !== undefined ? el("div", { class: "msg" }, el("div", { class: "role" }, "response"), el("pre", {}, typeof t.response === "string" ? t.response : JSON.stringify(t.response, null, 2))) : null,
    el("details", {}, el("summary", {}, "raw"), el("pre", {}, JSON.stringify(t, null, 2))));
}
async function jobPage(runId, jobId) {
  stopLive();
  const base = `/api/runs/${enc(runId)}/jobs/${enc(jobId)}`;
  const d = await api(base);
  const title = el("h2", {}, link(`#/run/${enc(runId)}`, runId), " / ", jobId);
  if (d.not_started) { fill($app, title, el("p", {}, "not started yet")); return; }
  const m = d.meta || {}, r = d.results || {};
  const head = el("p", {}, `${m.task_id || r.task_id || ""} × ${m.trainer_id || r.trainer_id || ""} · seed ${fmt(m.seed ?? r.seed)} · `,
    el("span", { class: statusClass(m.status || "running") }, m.status || "running (no job_meta.json yet)"),
    r.score_val !== undefined ? ` · val ${fmt(r.score_val_initial)} → ${fmt(r.score_val)}` : "",
    m.error ? el("div", { class: "err" }, m.error) : null);
  const panes = {
    "Curve": () => el("div", {}, curve(d.history)),
    "Parameters": () => paramsTable(d.states),
    "Diff": () => paramDiff(d.states),
    "Timeline": () => el("div", {}, d.timeline_more ? el("p", { class: "muted" }, `first ${d.timeline.length} events shown; ${d.timeline_more} more in events.jsonl`) : null,
      table([["t (s)", e => e.elapsed_s, "num"], ["type", e => e.type], ["step", e => e.step, "num"],
        ["detail", e => { const { v, seq, ts, elapsed_s, type, step, ...rest } = e; return JSON.stringify(rest); }]], d.timeline)),
    "Transcripts": () => searchList(`${base}/transcripts`, transcript, 20),
    "Examples": () => searchList(`${base}/examples`, x => el("pre", {}, JSON.stringify(x, null, 2)), 50),
    "Log": () => { const p = el("pre", {}, "…"); api(`${base}/log`).then(l => { p.textContent = (l.truncated ? "[…the start is cut…]\n" : "") + (l.text || "(empty)"); }); return p; },
    "Files": () => el("ul", {}, ["job_meta.json", "results.json", "events.jsonl", "job.log", "artifacts/llm_calls.jsonl", "artifacts/examples.jsonl", "artifacts/best_state.yaml"]
      .map(f => el("li", {}, link(`/files/${enc(runId)}/jobs/${enc(jobId)}/${f}`, f)))),
  };
  const pane = el("div", {});
  const tabs = el("div", { class: "tabs" });
  const show = (name) => { for (const b of tabs.children) b.className = b.textContent === name ? "on" : ""; pane.replaceChildren(panes[name]()); };
  for (const name of Object.keys(panes)) tabs.appendChild(el("button", { onclick: () => show(name) }, name));
  fill($app, title, head, tabs, pane);
  show("Curve");
}

// ---- compare two runs (the compare gate)
async function comparePage(params) {
  stopLive();
  const all = await api(`/api/runs?per_page=500`);
  const opts = (sel) => [el("option", { value: "" }, "— choose a run —"), ...all.runs.map(r => el("option", { value: r.run_id, ...(r.run_id === sel ? { selected: "" } : {}) }, r.run_id))];
  const base = el("select", { id: "cmp-base" }, opts(params.get("base")));
  const nw = el("select", { id: "cmp-new" }, opts(params.get("new")));
  const out = el("div", { id: "compare-out" });
  const go = el("button", { onclick: () => { location.hash = `#/compare?base=${enc(base.value)}&new=${enc(nw.value)}`; } }, "Compare");
  fill($app, el("h2", {}, "Compare two runs"), el("p", { class: "muted" }, "job by job (same task, trainer, variant, seed), with the default limits of `trace-bench compare`; nothing is written"),
    "base ", base, " new ", nw, go, out);
  if (!params.get("base") || !params.get("new")) return;
  const g = await api(`/api/compare?base=${enc(params.get("base"))}&new=${enc(params.get("new"))}`);
  const pct = v => v === null || v === undefined ? "" : `${(v * 100).toFixed(1)}%`;
  const lab = grp => g.groups.some(o => o.trainer_id === grp.trainer_id && o.variant_index !== grp.variant_index) ? `${grp.trainer_id} [v${grp.variant_index}]` : grp.trainer_id;
  fill(out, 
    el("p", {}, "verdict: ", el("span", { id: "verdict", class: "verdict-" + g.verdict }, g.verdict.toUpperCase()),
      ` · ${g.paired_jobs} paired job(s) · ${g.missing_in_new} missing in new · ${g.only_in_new} only in new · ${g.failed_checks} failed check(s), ${g.warnings} warning(s)`),
    table([["task", r => r.task_id], ["trainer", r => lab(r)], ["pairs", r => r.pairs, "num"],
      ["score base", r => r.score_val.base, "num"], ["score new", r => r.score_val.new, "num"], ["Δ score", r => r.score_val.change, "num"],
      ["Δ ci95", r => r.score_delta_ci95_low === null ? "" : `[${fmt(r.score_delta_ci95_low)}, ${fmt(r.score_delta_ci95_high)}]`],
      ["pass base", r => pct(r.pass_rate.base), "num"], ["pass new", r => pct(r.pass_rate.new), "num"],
      ["tokens", r => pct(r.tokens.change), "num"], ["time", r => pct(r.time_seconds.change), "num"],
      ["verdict", r => el("span", { class: "verdict-" + r.verdict }, r.verdict)]], g.groups),
    g.reasons.length ? el("h3", {}, "Reasons") : null,
    g.reasons.length ? table([["", r => r.severity], ["check", r => r.check], ["task", r => r.task_id], ["trainer", r => r.trainer_id], ["", r => r.message]], g.reasons) : null,
    el("details", {}, el("summary", {}, "gate.json (as compare writes it)"), el("pre", {}, JSON.stringify(g, null, 2))));
}

// ---- launch
async function launchPage() {
  stopLive();
  const info = await api("/api/info");
  if (info.read_only) { fill($app, el("h2", {}, "Launch"), el("p", {}, "This app was started with --read-only.")); return; }
  const cfgs = await api("/api/configs");
  const pick = el("select", { id: "cfg-pick" }, el("option", { value: "" }, "— paste YAML below, or pick a config —"), cfgs.configs.map(c => el("option", { value: c }, c)));
  const text = el("textarea", { spellcheck: "false", id: "cfg-text" });
  const runId = el("input", { placeholder: "run id (default ui-<time>)", size: 30, id: "run-id" });
  const out = el("div", { id: "launch-out" });
  const launches = el("div", { id: "launches" });
  pick.addEventListener("change", async () => { if (pick.value) { const c = await api(`/api/configs/${enc(pick.value)}`); text.value = c.text; } });
  const body = () => JSON.stringify(pick.value && text.dataset.edited !== "1" ? { config: pick.value, run_id: runId.value || null } : { yaml: text.value, run_id: runId.value || null });
  text.addEventListener("input", () => { text.dataset.edited = "1"; });
  pick.addEventListener("change", () => { text.dataset.edited = "0"; });
  const post = (url, b) => api(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: b });
  const showProblems = (v) => fill(out, el("p", { class: v.ok ? "s-ok" : "err" }, v.ok ? `valid: ${v.jobs} job(s)` : "not valid"),
    ...(v.problems || []).map(p => el("pre", { class: p.severity === "error" ? "err" : "" }, p.rendered || p.message)));
  const refresh = async () => {
    const l = await api("/api/launches");
    launches.replaceChildren(table([["#", x => x.id, "num"], ["run", x => link(`#/run/${enc(x.run_id)}`, x.run_id)], ["config", x => x.config],
      ["state", x => el("span", { "data-state": x.run_id }, x.running ? "running" : (x.exit || ""))], ["resumed", x => x.resumed, "num"],
      ["", x => el("span", {}, el("button", { "data-action": "stop", "data-run": x.run_id, onclick: () => post(`/api/launches/${x.id}/stop`, "{}").then(refresh).catch(e => alert(e.message)), ...(x.running ? {} : { disabled: "" }) }, "stop"),
        el("button", { "data-action": "resume", "data-run": x.run_id, onclick: () => post(`/api/launches/${x.id}/resume`, "{}").then(refresh).catch(e => alert(e.message)), ...(x.running || x.exit === "exited 0" ? { disabled: "" } : {}) }, "resume"))]], l.launches));
  };
  fill($app, el("h2", {}, "Launch"), el("p", { class: "muted" }, `configs from ${info.configs_dir}; runs go to ${info.runs_dir}`),
    pick, runId, text,
    el("button", { id: "validate", onclick: async () => showProblems(await post("/api/validate", body())) }, "Validate"),
    el("button", { id: "run", onclick: async () => { try { const v = await post("/api/launch", body()); if (v.problems) showProblems(v); else { fill(out, el("p", {}, "started ", link(`#/run/${enc(v.run_id)}`, v.run_id))); refresh(); } } catch (e) { fill(out, el("p", { class: "err" }, e.message)); } } }, "Run"),
    out, el("h3", {}, "Launched from this app"), launches);
  await refresh();
  // The launches' states follow the child processes while this page is open.
  const timer = setInterval(() => {
    if (!location.hash.startsWith("#/launch")) clearInterval(timer);
    else refresh().catch(() => {});
  }, 1000);
}

// ---- router
async function routeNow() {
  const h = location.hash.replace(/^#/, "") || "/";
  const [path, query] = h.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts[0] === "run" && parts[1]) await runPage(parts[1]);
    else if (parts[0] === "job" && parts[2]) await jobPage(parts[1], parts[2]);
    else if (parts[0] === "launch") await launchPage();
    else if (parts[0] === "compare") await comparePage(params);
    else { stopLive(); await runsPage(params); }
  } catch (e) {
    fill($app, el("p", { class: "err" }, `error: ${e.message}`));
  }
}
window.addEventListener("hashchange", routeNow);
routeNow();
