// The lagom dashboard: one experiment's snapshot, then its deltas as server-sent events.
// Everything a user wrote (parameters, logs, errors) reaches the page as text, never as HTML.
"use strict";

const COLORS = {finished: "#2e86c1", stopped: "#e67e22", failed: "#95a5a6", lost: "#c0392b",
                running: "#27ae60", pending: "#bbbbbb"};
const ROWS = 100;             // table rows per page
const CURVES_ALL = 60;        // up to this many trials, every curve is drawn; beyond, running and best
const CURVES_BEST = 40;
const PARCOORDS_MAX = 2000;   // lines in the parallel coordinates: the best PARCOORDS_BEST, the rest a sample
const PARCOORDS_BEST = 500;
const RUNGS_MAX = 20000;      // points in the budgets' plot: beyond, a sample
const PLOT_EVERY = 250;       // ms between redraws of the plots while deltas arrive
const T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
              2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
              2.052, 2.048, 2.045, 2.042];

const S = {
  name: null, source: null, v: 0, trials: new Map(), curves: new Map(), best: [], agents: [],
  ranking: null, overview: null, head: {}, status: {}, params: [], sortKey: "id", sortDir: -1,
  page: 0, selected: null, tab: "trials", arrivals: [], ready: false, readyAt: null, lastPlot: 0, marks: {},
  plotTimer: null, tableTimer: null, trialTimer: null,
};
window.lagomDash = {
  S,
  points: (id) => (S.curves.get(id) || []).length,
  drawnPoints: (id) => {
    const div = document.getElementById("curves");
    const trace = (div.data || []).find((t) => t.meta === id);
    return trace ? trace.x.length : 0;
  },
  rows: () => Array.from(document.querySelectorAll("#trials tbody tr")).map((r) => Number(r.dataset.trial)),
};

const $ = (id) => document.getElementById(id);
const el = (tag, text, cls) => {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
};
const fmt = (v) => (v === null || v === undefined) ? "" :
  (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : String(v));
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const direction = () => S.head.direction || (S.head.controller || {}).direction || "max";
const sign = () => (direction() === "min" ? -1 : 1);
const metricName = () => S.head.metric || (S.head.controller || {}).metric || "metric";
const objectives = () => S.head.objectives || (S.head.controller || {}).objectives || null;
const objectiveSigns = () => (S.head.directions || (S.head.controller || {}).directions || []).map((d) => (d === "min" ? -1 : 1));
const numericBudget = (t) => (typeof t.budget === "number" ? t.budget : -Infinity);

const scored = () => Array.from(S.trials.values()).filter((t) => t.state === "finished" && Array.isArray(t.values));

function paretoFront(done = scored()) {
  // The kernel's rule (kernel/pareto.py): the non-dominated finished trials of the largest
  // budget any finished trial reached.
  const signs = objectiveSigns();
  if (!done.length) return [];
  const top = done.reduce((m, t) => Math.max(m, numericBudget(t)), -Infinity);
  const dominates = (a, b) => a.values.every((v, i) => signs[i] * v >= signs[i] * b.values[i]) &&
    a.values.some((v, i) => signs[i] * v > signs[i] * b.values[i]);
  // Best first in every objective in turn: no trial is dominated by one after it, so each is
  // checked against the front so far alone (100,000 trials: a pass, not 10^10 comparisons).
  const lexi = (a, b) => { for (let i = 0; i < signs.length; i++) { const d = signs[i] * (b.values[i] - a.values[i]); if (d) return d; } return a.id - b.id; };
  const front = [];
  for (const t of done.filter((t) => numericBudget(t) === top).sort(lexi)) {
    if (!front.some((o) => dominates(o, t))) front.push(t);
  }
  return front.sort((a, b) => a.id - b.id);
}

// -- experiments ---------------------------------------------------------------------------
async function listExperiments() {
  const r = await fetch("/api/experiments");
  if (!r.ok) return;
  const data = await r.json();
  $("root").textContent = data.root;
  const ul = $("exp-list");
  ul.replaceChildren();
  for (const x of data.experiments) {
    const li = el("li", x.name);
    const c = x.counts || {};
    li.appendChild(el("small", `${x.context || "?"} · ${x.state} · ${Object.values(c).reduce((a, b) => a + b, 0)} trials`));
    if (x.name === S.name) li.className = "on";
    li.onclick = () => { location.hash = encodeURIComponent(x.name); };
    ul.appendChild(li);
  }
  const failed = S.source && S.source.readyState === EventSource.CLOSED && !S.name;  // there was none to open
  if ((!S.source || failed) && data.experiments.length) openExperiment(decodeURIComponent(location.hash.slice(1)) || data.experiments[0].name);
}

function openExperiment(name) {
  // name null: the newest, which the server names in its snapshot (the page need not ask for the
  // list first: the snapshot is on its way while plotly.js still compiles)
  if (S.source) S.source.close();
  Object.assign(S, {name, v: 0, trials: new Map(), curves: new Map(), best: [], agents: [], ranking: null,
                    selected: null, page: 0, ready: false});
  S.source = new EventSource(name ? `/api/e/${encodeURIComponent(name)}/events` : "/api/events");
  S.source.onmessage = (ev) => {
    if (!S.marks.message) S.marks.message = performance.now();
    receive(JSON.parse(ev.data));
  };
  listExperiments();
}

window.addEventListener("hashchange", () => {
  const name = decodeURIComponent(location.hash.slice(1));
  if (name && name !== S.name) openExperiment(name);
});

// -- data ----------------------------------------------------------------------------------
function receive(msg) {
  if (msg.kind === "snapshot") {
    if (S.name === null) {
      S.name = msg.name;
      listExperiments();
    } else if (msg.name !== S.name) {  // reconnected to the newest, and a newer one began meanwhile
      openExperiment(S.name);
      return;
    }
    S.marks.parsed = performance.now();
    S.trials = new Map(fromColumns(msg.trials).map((t) => [t.id, t]));
    S.marks.decoded = performance.now();
    S.rankedMemo = null;
    S.curves = new Map(Object.entries(msg.curves).map(([k, v]) => [Number(k), v]));
    Object.assign(S, {best: msg.best_so_far, agents: msg.agents, ranking: msg.ranking, head: msg.head || {},
                      status: msg.status, overview: msg, v: msg.v});
    S.params = paramNames();
    renderHeader();
    renderTable();
    S.marks.table = performance.now();
    const name = S.name;
    plotlyReady.then(() => {
      if (S.name !== name) return;
      renderPlots();
      if (!S.ready) Object.assign(S, {ready: true, readyAt: performance.now()});  // the first full render
    });
    return;
  }
  S.v = msg.v;
  const now = Date.now();
  for (const id of msg.removed || []) { S.trials.delete(id); S.curves.delete(id); }  // withdrawn: not of this run
  for (const t of msg.trials) {
    if (!S.trials.has(t.id)) for (const k of Object.keys(t.params)) if (!S.params.includes(k)) S.params.push(k);
    S.trials.set(t.id, t);
  }
  for (const [id, from, points] of msg.points) {
    const curve = from === 0 ? [] : (S.curves.get(id) || []);
    curve.length = Math.min(curve.length, from);
    for (const p of points) curve.push(p);
    S.curves.set(id, curve);
    if (points.length) S.arrivals.push({trial: id, n: curve.length, at: now, last: points[points.length - 1]});
  }
  if (S.arrivals.length > 2000) S.arrivals.splice(0, S.arrivals.length - 1000);
  for (const b of msg.best_so_far) S.best.push(b);
  if (msg.agents) S.agents = msg.agents;
  if (msg.overview) {
    Object.assign(S, {overview: msg.overview, status: msg.status, ranking: msg.ranking});
    listExperiments();  // the list says the same state as the header
  }
  renderHeader();
  schedulePlots();
  scheduleTable();
  if (S.selected !== null && msg.trials.some((t) => t.id === S.selected)) scheduleTrial();
}

// The snapshot's trials come as columns (kernel/outputs/dashboard/columns.py says why and how).
const FIELDS = ["id", "state", "budget", "metric", "duration", "agent", "attempts", "parent", "ablated", "kind", "seed",
                "audit", "values", "compile_s", "started", "error"];

function fromColumns(c) {
  // Each column resolved to a plain array first, then one object literal per trial (one shape for
  // V8): 100,000 trials in ~30 ms, where a getter per field and trial took 200.
  const n = c.n;
  const plain = (col) => (col.v ? col.v : col.i.map((k) => (k < 0 ? undefined : col.c[k])));
  const f = {};
  for (const name of FIELDS) f[name] = c.fields[name] ? plain(c.fields[name]) : null;
  const v = (name, i) => (f[name] === null ? null : f[name][i]);
  const params = Object.entries(c.params).map(([p, col]) => [p, plain(col), !col.v]);
  const extra = c.names.filter((name) => !FIELDS.includes(name)).map((name) => [name, c.fields[name] ? plain(c.fields[name]) : []]);
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    const ps = {};
    for (const [p, values, coded] of params) {
      const x = values[i];
      if (x !== undefined && (x !== null || coded)) ps[p] = x;  // null: a choice that is null; undefined: absent
    }
    const t = {id: v("id", i), state: v("state", i), params: ps, budget: v("budget", i), metric: v("metric", i),
               duration: v("duration", i), agent: v("agent", i), attempts: v("attempts", i), parent: v("parent", i),
               ablated: v("ablated", i), kind: v("kind", i), seed: v("seed", i), audit: v("audit", i),
               values: v("values", i), compile_s: v("compile_s", i), started: v("started", i), error: v("error", i)};
    for (const [name, values] of extra) t[name] = values.length ? values[i] : null;
    out[i] = t;
  }
  return out;
}

function paramNames() {
  const names = new Set();
  for (const t of S.trials.values()) for (const k of Object.keys(t.params)) names.add(k);
  return Array.from(names);
}

function better() {
  // The kernel's rule: finished trials of the largest budget any finished first (a trial trained
  // 3 of 9 epochs is not the best configuration while one trained 9 exists), then the metric.
  const s = sign();
  const budget = (t) => (t.budget === null ? -Infinity : t.budget);
  return (a, b) => (b.state === "finished") - (a.state === "finished") || budget(b) - budget(a) ||
                   s * (b.metric - a.metric) || a.id - b.id;
}

const rankable = (t) => t.metric !== null && (t.state === "finished" || t.state === "stopped");

function ranked(k = Infinity, keep = rankable) {
  // The best k by the kernel's rule, best first. A pass that keeps the k best so far, not a sort of
  // every trial: the header and the curves ask on every update, and 100,000 trials take 100 ms to sort.
  const cmp = better();
  const key = `${k}|${keep === rankable ? "" : keep.key}`;
  if (!S.rankedMemo || S.rankedMemo.v !== S.v) S.rankedMemo = {v: S.v, lists: new Map()};  // each update draws anew
  if (S.rankedMemo.lists.has(key)) return S.rankedMemo.lists.get(key);
  let top = [];
  if (!Number.isFinite(k)) {
    top = Array.from(S.trials.values()).filter((t) => rankable(t) && keep(t)).sort(cmp);
  } else {
    for (const t of S.trials.values()) {
      if (!rankable(t) || !keep(t) || (top.length === k && cmp(t, top[k - 1]) >= 0)) continue;
      let i = top.length;
      while (i > 0 && cmp(t, top[i - 1]) < 0) i--;  // k is small: an insertion beats a heap
      top.splice(i, 0, t);
      if (top.length > k) top.pop();
    }
  }
  S.rankedMemo.lists.set(key, top);
  return top;
}

// A trial's place in a sample (a hash of its id): the smallest keys are a uniform sample, and the
// same trials give the same sample at every redraw, so the lines do not jump between updates.
const sampleKey = (id) => Math.imul(id + 1, 2654435761) >>> 0;

function sampled(trials, n) {
  if (trials.length <= n) return trials;
  return trials.slice().sort((a, b) => sampleKey(a.id) - sampleKey(b.id)).slice(0, n);
}

// -- rendering -----------------------------------------------------------------------------
// plotly.js (4.6 MB) loads beside the page, not before it: the snapshot arrives and the table is
// drawn while the browser still compiles it; the plots follow once it is there.
const plotlyReady = new Promise((resolve) => {
  if (window.Plotly) resolve();
  else document.getElementById("plotly-js").addEventListener("load", () => resolve());
}).then(() => { S.marks.plotly = performance.now(); });

function schedulePlots() {
  if (S.plotTimer) return;
  const wait = Math.max(0, S.lastPlot + PLOT_EVERY - performance.now());
  S.plotTimer = setTimeout(() => { S.plotTimer = null; renderPlots(); }, wait);
}

function scheduleTable() {
  // At most every 100 ms, and never more than a third of the time: a sort of 100,000 rows takes ~100 ms.
  if (S.tableTimer) return;
  S.tableTimer = setTimeout(() => { S.tableTimer = null; renderTable(); }, Math.max(100, 2 * (S.tableMs || 0)));
}

function scheduleTrial() {
  if (S.trialTimer) return;
  S.trialTimer = setTimeout(() => { S.trialTimer = null; showTrial(S.selected, false); }, 500);
}

function renderHeader() {
  const o = S.overview || {};
  $("exp-name").textContent = S.name || "no experiment yet";
  const state = $("exp-state");
  state.textContent = o.state || "";
  state.className = "badge " + String(o.state || "").replace(" ", "-");
  const c = S.head.controller || {};
  $("exp-what").textContent = [S.head.context, c.optimizer, c.early_stop && c.early_stop !== "NoStopping" ? c.early_stop : null,
    S.head.metric || c.metric ? `${direction()} ${metricName()}` : null,
    ...Object.entries((S.status || {}).edits || {}).map(([k, [a, b]]) => `edited on resume: ${k} ${fmt(a)} → ${fmt(b)}`)]
    .filter(Boolean).join(" · ");
  const counts = {};
  for (const t of S.trials.values()) counts[t.state] = (counts[t.state] || 0) + 1;
  const box = $("counts");
  box.replaceChildren();
  const total = c.total_trials ? ` of ${c.total_trials}` : "";
  const all = el("span"); all.appendChild(el("b", String(S.trials.size))); all.append(` trials${total}`);
  box.appendChild(all);
  for (const s of ["running", "finished", "stopped", "failed", "lost", "pending"]) {
    if (!counts[s]) continue;
    const span = el("span", null, "s-" + s);
    span.appendChild(el("b", String(counts[s])));
    span.append(" " + s);
    box.appendChild(span);
  }
  const agents = S.agents.filter((a) => a.state !== "gone" && a.state !== "broken").length;
  box.appendChild(el("span", `${agents} agent(s)`));
  const names = objectives();
  if (names) {
    const front = paretoFront();
    $("best").textContent = front.length ? `Pareto front: ${front.length} trial(s) · ` + front.slice(0, 3).map((t) =>
      `trial ${t.id}: ` + names.map((n, i) => `${n}=${fmt(t.values[i])}`).join(", ")).join(" · ") +
      (front.length > 3 ? " · …" : "") : "";
    return;
  }
  const best = ranked(1)[0];
  $("best").textContent = best ? `best: trial ${best.id}, ${metricName()} = ${fmt(best.metric)}` +
    (best.budget !== null ? ` at budget ${fmt(best.budget)}` : "") + (best.ablated ? ` (left out: ${best.ablated})` : "") + " · " +
    Object.entries(best.params).map(([k, v]) => `${k}=${fmt(v)}`).join(", ") : "";
}

// -- the trials table ------------------------------------------------------------------------
function columns() {
  const names = objectives();
  const scores = names ? names.map((n, i) => ["o:" + i, n]) : [["metric", metricName()]];
  const cols = [["id", "trial"], ["state", "state"], ...scores, ["budget", "budget"],
                ["duration", "seconds"], ["compile_s", "compile s"], ["agent", "agent"]];
  if (Array.from(S.trials.values()).some((t) => t.ablated)) cols.push(["ablated", "left out"]);
  if (Array.from(S.trials.values()).some((t) => t.audit !== null && t.audit !== undefined)) cols.push(["audit", "audits trial"]);
  for (const p of S.params) cols.push(["p:" + p, p]);
  cols.push(["error", "error"]);
  return cols;
}

const value = (t, key) => key.startsWith("p:") ? t.params[key.slice(2)] :
  (key.startsWith("o:") ? (t.values || [])[Number(key.slice(2))] : t[key]);

// The filter box: words that all must hold. "metric>0.9", "lr<=1e-3", "budget=9", "agent=local-0",
// "act!=relu" compare a column or parameter; any other word is looked for in the row's text.
const TERM = /^([\w.-]+)(>=|<=|!=|=|>|<)(.+)$/;

function matcher(word) {
  const m = TERM.exec(word);
  if (!m) return (t) => rowText(t).includes(word);
  const [, key, op, raw] = m;
  const column = key === metricName().toLowerCase() ? "metric" : (key === "trial" ? "id" : key);
  const num = Number(raw);
  return (t) => {
    const v = column in t && column !== "params" ? t[column] : t.params[Object.keys(t.params).find((k) => k.toLowerCase() === column)];
    if (v === null || v === undefined) return op === "!=";
    const a = typeof v === "number" && !Number.isNaN(num) ? v : String(v).toLowerCase();
    const b = typeof a === "number" ? num : raw;
    return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b, "=": typeof a === "number" ? a === b : a.startsWith(b),
            "!=": typeof a === "number" ? a !== b : !a.startsWith(b)}[op];
  };
}

const texts = new WeakMap();  // a row's searchable text, made once per version of the trial
function rowText(t) {
  let text = texts.get(t);
  if (text === undefined) {
    text = JSON.stringify([t.params, t.agent, t.error, t.ablated, t.state, t.id]).toLowerCase();
    texts.set(t, text);
  }
  return text;
}

function filtered() {
  const state = $("filter-state").value;
  const tests = $("filter-text").value.trim().toLowerCase().split(/\s+/).filter(Boolean).map(matcher);
  let rows = Array.from(S.trials.values());
  if (state) rows = rows.filter((t) => t.state === state);
  if (tests.length) rows = rows.filter((t) => tests.every((ok) => ok(t)));
  const key = S.sortKey, dir = S.sortDir;
  rows.sort((a, b) => {
    const x = value(a, key), y = value(b, key);
    if (x === y) return a.id - b.id;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * dir;
  });
  return rows;
}

function renderTable() {
  const t0 = performance.now();
  const cols = columns();
  const head = el("tr");
  for (const [key, label] of cols) {
    const th = el("th", label, key === S.sortKey ? "sorted" + (S.sortDir > 0 ? " up" : "") : "");
    th.onclick = () => { S.sortDir = S.sortKey === key ? -S.sortDir : -1; S.sortKey = key; S.page = 0; renderTable(); };
    head.appendChild(th);
  }
  $("trials").tHead.replaceChildren(head);
  const rows = filtered();
  const pages = Math.max(1, Math.ceil(rows.length / ROWS));
  S.page = Math.min(S.page, pages - 1);
  const body = document.createDocumentFragment();
  for (const t of rows.slice(S.page * ROWS, (S.page + 1) * ROWS)) {
    const tr = el("tr", null, t.id === S.selected ? "sel" : "");
    tr.dataset.trial = t.id;
    for (const [key] of cols) {
      const v = value(t, key);
      const td = el("td", (key === "duration" || key === "compile_s") && v !== null && v !== undefined ? v.toFixed(2) : fmt(v),
                    typeof v === "number" ? "num" : (key === "error" ? "err" : (key === "state" ? "s-" + v : "")));
      if (key === "error" && v) td.title = v;
      tr.appendChild(td);
    }
    tr.onclick = () => select(t.id);
    body.appendChild(tr);
  }
  $("trials").tBodies[0].replaceChildren(body);
  $("rows-info").textContent = `${rows.length ? S.page * ROWS + 1 : 0}–${Math.min(rows.length, (S.page + 1) * ROWS)} of ${rows.length}`;
  S.tableAt = performance.now();
  S.tableMs = S.tableAt - t0;
}

// -- plots ---------------------------------------------------------------------------------
const LAYOUT = {margin: {l: 50, r: 10, t: 10, b: 40}, showlegend: false, hovermode: "closest",
                paper_bgcolor: "#fff", plot_bgcolor: "#fff", font: {size: 11}};
const CONFIG = {displaylogo: false, responsive: true};

function renderPlots() {
  if (!window.Plotly) return;  // drawn once it loads (plotlyReady)
  S.lastPlot = performance.now();
  renderCurves();
  renderBest();
  if (S.tab === "params") renderParams();
  if (S.tab === "rungs") renderRungs();
  if (S.tab === "agents") renderAgents();
  if (S.tab === "ablation") renderAblation();
}

function drawnTrials() {
  if (S.trials.size <= CURVES_ALL) return Array.from(S.trials.keys());
  const ids = new Set(Array.from(S.trials.values()).filter((t) => t.state === "running").map((t) => t.id));
  for (const t of ranked(CURVES_BEST)) ids.add(t.id);
  if (S.selected !== null) ids.add(S.selected);
  return Array.from(ids).filter((id) => S.curves.has(id));
}

function renderCurves() {
  const ids = drawnTrials().sort((a, b) => a - b);
  const top = (ranked(1)[0] || {}).id;
  const traces = ids.map((id) => {
    const t = S.trials.get(id) || {state: "pending", params: {}};
    const c = S.curves.get(id) || [];
    return {type: "scatter", mode: c.length < 30 ? "lines+markers" : "lines", x: c.map((p) => p[0]),
            y: c.map((p) => p[1]), meta: id, name: `trial ${id}`, marker: {size: 4},
            line: {color: id === top ? "#1a5276" : (COLORS[t.state] || "#888"), width: id === S.selected || id === top ? 3 : 1.3},
            hovertemplate: `trial ${id} (${t.state})<br>step %{x}<br>${esc(metricName())} %{y}<extra></extra>`};
  });
  $("curves-note").textContent = S.trials.size > CURVES_ALL ? `(running and the best ${CURVES_BEST} of ${S.trials.size.toLocaleString()})` : "";
  Plotly.react("curves", traces, {...LAYOUT, xaxis: {title: {text: "step"}, zeroline: false}, yaxis: {title: {text: esc(metricName())}}}, CONFIG);
}

function renderFront(names) {
  // Several objectives: every finished trial by its first two, the front drawn as a line.
  const signs = objectiveSigns();
  const done = scored();
  const front = paretoFront(done).sort((a, b) => a.values[0] - b.values[0]);
  const onFront = new Set(front.map((t) => t.id));
  const rest = done.filter((t) => !onFront.has(t.id));
  const hover = (t) => `trial ${t.id}<br>` + names.map((n, i) => `${esc(n)} ${fmt(t.values[i])}`).join("<br>");
  const traces = [
    {type: "scatter", mode: "markers", name: "trials", x: rest.map((t) => t.values[0]), y: rest.map((t) => t.values[1]),
     text: rest.map(hover), hoverinfo: "text", marker: {color: "#aab7b8", size: 6}},
    {type: "scatter", mode: "lines+markers", name: "Pareto front", x: front.map((t) => t.values[0]),
     y: front.map((t) => t.values[1]), text: front.map(hover), hoverinfo: "text", line: {shape: "hv", color: "#1a5276"},
     marker: {color: "#1a5276", size: 8}}];
  $("best-title").textContent = `Pareto front (${names.map((n, i) => `${signs[i] < 0 ? "min" : "max"} ${n}`).join(", ")})`;
  Plotly.react("best-plot", traces, {...LAYOUT, showlegend: true, legend: {orientation: "h", y: -0.25},
    xaxis: {title: {text: esc(names[0])}}, yaxis: {title: {text: esc(names[1])}}}, CONFIG);
}

function renderBest() {
  const names = objectives();
  if (names && names.length > 1) { renderFront(names); return; }
  // One line per budget (ASHA's rungs): the best metric among the trials that finished with it.
  const byBudget = new Map();
  for (const b of S.best) {
    const key = b[3] === null || b[3] === undefined ? "" : b[3];
    if (!byBudget.has(key)) byBudget.set(key, []);
    byBudget.get(key).push(b);
  }
  const now = (Date.now() / 1000) - (S.head.time || 0);
  const traces = Array.from(byBudget.entries()).sort((a, b) => Number(a[0]) - Number(b[0])).map(([budget, pts]) => {
    const x = pts.map((b) => b[0]), y = pts.map((b) => b[1]);
    if (S.status && S.status.running) { x.push(now); y.push(y[y.length - 1]); }
    return {type: "scatter", mode: "lines+markers", line: {shape: "hv"}, x, y, name: budget === "" ? "best" : `budget ${budget}`,
            text: pts.map((b) => `trial ${b[2]}`)};
  });
  Plotly.react("best-plot", traces, {...LAYOUT, showlegend: traces.length > 1, legend: {orientation: "h", y: -0.25},
    xaxis: {title: {text: "seconds since the start"}}, yaxis: {title: {text: esc(metricName())}}}, CONFIG);
}

function budgetChoice() {
  // Trials of one budget at a time (a trial trained 1 epoch is not comparable with one of 9):
  // the one chosen, else the largest any trial finished.
  const budgets = Array.from(new Set(Array.from(S.trials.values()).filter((t) => t.metric !== null && t.budget !== null)
    .map((t) => t.budget))).sort((a, b) => a - b);
  const box = $("params-budget");
  box.hidden = budgets.length < 2;
  const keep = box.value;
  box.replaceChildren(...budgets.map((b) => el("option", `budget ${fmt(b)}`)));
  budgets.forEach((b, i) => { box.options[i].value = String(b); });
  const finished = budgets.filter((b) => Array.from(S.trials.values()).some((t) => t.budget === b && t.state === "finished"));
  box.value = budgets.map(String).includes(keep) ? keep : String(finished.length ? finished[finished.length - 1] : budgets[budgets.length - 1]);
  return budgets.length < 2 ? null : Number(box.value);
}

function renderParams() {
  const budget = budgetChoice();
  const ofBudget = Object.assign((t) => budget === null || t.budget === budget, {key: `b${budget}`});
  const all = ranked(Infinity, ofBudget);
  const top = all.slice(0, PARCOORDS_BEST);
  const best = all.length <= PARCOORDS_MAX ? all : top.concat(sampled(all.slice(PARCOORDS_BEST), PARCOORDS_MAX - PARCOORDS_BEST));
  const of = budget === null ? "" : ` of budget ${fmt(budget)}`;
  $("params-note").textContent = (all.length <= PARCOORDS_MAX ? `Each line a trial (${all.length}${of})` :
    `Each line a trial: ${best.length.toLocaleString()} of the ${all.length.toLocaleString()}${of}, the best ` +
    `${PARCOORDS_BEST} and ${(best.length - PARCOORDS_BEST).toLocaleString()} of the rest drawn at random`) +
    `, coloured by ${metricName()}.`;
  if (!best.length) { Plotly.purge("parcoords"); return; }
  const dims = S.params.map((p) => {
    const vals = best.map((t) => t.params[p]);
    if (vals.every((v) => typeof v === "number")) {
      const lo = Math.min(...vals), hi = Math.max(...vals);
      if (lo > 0 && hi / lo > 100) return {label: `log10 ${p}`, values: vals.map(Math.log10)};  // a log-uniform range
      return {label: p, values: vals};
    }
    const cats = Array.from(new Set(vals.map(String)));
    return {label: p, values: vals.map((v) => cats.indexOf(String(v))), tickvals: cats.map((_, i) => i), ticktext: cats.map(esc)};
  });
  dims.push({label: metricName(), values: best.map((t) => t.metric)});
  Plotly.react("parcoords", [{type: "parcoords", dimensions: dims,
    line: {color: best.map((t) => t.metric), colorscale: "Viridis", reversescale: sign() < 0, showscale: true}}],
    {...LAYOUT, margin: {l: 60, r: 60, t: 40, b: 20}}, CONFIG);
  renderImportance(budget);
}

// Which hyperparameters mattered: asked of the server (it recomputes only when trials ended),
// at most every 3 s while the tab is open.
let importanceAsked = 0;
async function renderImportance(budget) {
  const now = Date.now();
  if (now - importanceAsked < 3000) return;
  importanceAsked = now;
  const q = budget === null ? "" : `?budget=${encodeURIComponent(budget)}`;
  let got;
  try {
    const r = await fetch(`/api/e/${encodeURIComponent(S.name)}/importance${q}`);
    if (!r.ok) return;
    got = await r.json();
  } catch (e) {
    return;  // the server went away: the page says so elsewhere
  }
  if (!got.rows) {
    $("importance-note").textContent = `Importance: ${got.note || "not yet"}.`;
    Plotly.purge("importance");
    return;
  }
  const rows = got.rows.slice().reverse();  // the most important at the top
  const out = got.rows.filter((x) => x.stands_out).map((x) => x.param);
  const of = got.sampled < got.of ? ` (from ${got.sampled.toLocaleString()} of the ${got.of.toLocaleString()}, drawn at random)` : "";
  $("importance-note").textContent = `Importance: how much the best 10% of the finished trials${of} prefer certain ` +
    `values of each parameter (share, 90% interval); ${out.length ? out.join(", ") + " stand out (blue)" : "none stands out yet"}.`;
  Plotly.react("importance", [{type: "bar", orientation: "h", y: rows.map((x) => esc(x.param)), x: rows.map((x) => x.importance),
    marker: {color: rows.map((x) => (x.stands_out ? "#2e86c1" : "#aab7b8"))},
    error_x: {type: "data", symmetric: false, array: rows.map((x) => x.interval[1] - x.importance),
              arrayminus: rows.map((x) => x.importance - x.interval[0])}}],
    {...LAYOUT, margin: {l: 20, r: 20, t: 10, b: 40}, yaxis: {automargin: true}, xaxis: {title: {text: "importance"}}}, CONFIG);
}

function renderRungs() {
  const withBudget = Array.from(S.trials.values()).filter((t) => t.metric !== null && t.budget !== null);
  const shown = sampled(withBudget, RUNGS_MAX);
  $("rungs-note").textContent = "Each trial's metric at the budget it ran with (ASHA's rungs)" + (shown.length < withBudget.length ?
    `: ${shown.length.toLocaleString()} of ${withBudget.length.toLocaleString()} trials, drawn at random.` : ".");
  const byState = {};
  for (const t of shown) (byState[t.state] = byState[t.state] || []).push(t);
  const n = shown.length;
  const traces = Object.entries(byState).map(([state, ts]) => ({
    type: n > 2000 ? "scattergl" : "scatter", mode: "markers", name: state, x: ts.map((t) => t.budget),
    y: ts.map((t) => t.metric), text: ts.map((t) => `trial ${t.id}`), marker: {color: COLORS[state], size: 6, opacity: 0.7}}));
  const budgets = Array.from(new Set(Object.values(byState).flat().map((t) => t.budget))).sort((a, b) => a - b);
  const log = budgets.length > 1 && budgets[0] > 0;  // ASHA's rungs are geometric; tick each budget, nothing else
  Plotly.react("rungs", traces, {...LAYOUT, showlegend: true,
    xaxis: {title: {text: "budget"}, type: log ? "log" : "linear", tickmode: "array", tickvals: budgets, ticktext: budgets.map(fmt)},
    yaxis: {title: {text: esc(metricName())}}}, CONFIG);
}

function renderAgents() {
  const head = el("tr");
  for (const h of ["agent", "host", "pid", "devices", "state", "trial", "last heard", "health"]) head.appendChild(el("th", h));
  $("agents").tHead.replaceChildren(head);
  const body = document.createDocumentFragment();
  for (const a of S.agents) {
    const gone = a.state === "gone" || a.state === "broken";
    const silent = a.silent_s === null || a.silent_s === undefined ? null : a.silent_s;
    const health = gone ? `${a.state}${a.error ? ": " + a.error : ""}` : (silent !== null && silent > 5 ? `silent ${silent.toFixed(1)} s` : "ok");
    const tr = el("tr");
    for (const v of [a.id, a.host, a.pid, (a.devices || []).join(" "), a.state, a.trial, silent === null ? "" : `${silent.toFixed(1)} s ago`, health]) {
      tr.appendChild(el("td", fmt(v)));
    }
    tr.lastChild.className = gone ? "s-lost" : (health === "ok" ? "s-running" : "s-stopped");
    body.appendChild(tr);
  }
  $("agents").tBodies[0].replaceChildren(body);
}

function liveRanking() {
  // While an ablation runs: each component's mean effect against the baseline, paired by seed.
  const by = {};
  for (const t of S.trials.values()) {
    if (!t.ablated) continue;
    (by[t.ablated] = by[t.ablated] || {})[t.seed || 0] = t;
  }
  const base = by.baseline || {};
  delete by.baseline;
  return Object.entries(by).map(([component, runs]) => {
    const effects = Object.entries(runs).filter(([s, t]) => t.state === "finished" && t.metric !== null && base[s] &&
      base[s].state === "finished" && base[s].metric !== null).map(([s, t]) => t.metric - base[s].metric);
    const mean = effects.length ? effects.reduce((a, b) => a + b, 0) / effects.length : null;
    let ci = null;
    if (effects.length > 1) {
      const sd = Math.sqrt(effects.reduce((a, e) => a + (e - mean) ** 2, 0) / (effects.length - 1));
      const q = effects.length - 1 <= T975.length ? T975[effects.length - 2] : 1.96;
      ci = [mean - q * sd / Math.sqrt(effects.length), mean + q * sd / Math.sqrt(effects.length)];
    }
    return {component, effect: mean, ci, repeats: effects.length};
  });
}

function renderAblation() {
  // Most important first: leaving it out hurts the metric the most (blue); red ones helped by leaving;
  // grey ones (a repeated study's verdict) are indistinguishable from zero.
  const rows = (S.ranking || liveRanking()).filter((r) => r.effect !== null && r.effect !== undefined)
    .sort((a, b) => sign() * (a.effect - b.effect));
  $("ablation-note").textContent = rows.length ? `Change of ${metricName()} when each component is left out ` +
    `(against the baseline${rows.some((r) => r.ci) ? ", with 95% intervals" : ""})${S.ranking ? "" : "; so far"}: ` +
    "blue, important (leaving it out hurts); red, harmful (leaving it out helps)" +
    `${rows.some((r) => r.verdict === "indistinguishable") ? "; grey, indistinguishable from zero" : ""}.` :
    "No ablation trials (or none finished yet).";
  if (!rows.length) { Plotly.purge("ablation"); return; }
  const hasCi = rows.some((r) => r.ci);
  Plotly.react("ablation", [{type: "bar", orientation: "h", y: rows.map((r) => esc(r.component)), x: rows.map((r) => r.effect),
    marker: {color: rows.map((r) => (r.verdict === "indistinguishable" ? "#aab7b8" : sign() * r.effect < 0 ? "#2e86c1" : "#c0392b"))},
    error_x: hasCi ? {type: "data", symmetric: false, array: rows.map((r) => (r.ci ? r.ci[1] - r.effect : 0)),
                      arrayminus: rows.map((r) => (r.ci ? r.effect - r.ci[0] : 0))} : undefined}],
    {...LAYOUT, margin: {l: 20, r: 20, t: 10, b: 40}, yaxis: {autorange: "reversed", automargin: true}, xaxis: {title: {text: `effect on ${esc(metricName())}`}}}, CONFIG);
}

// -- one trial -------------------------------------------------------------------------------
function select(id) {
  S.selected = id;
  showTab("trial");
  showTrial(id, true);
  renderTable();
}

async function showTrial(id, scroll) {
  if (id === null) return;
  await plotlyReady;
  const r = await fetch(`/api/e/${encodeURIComponent(S.name)}/trial/${id}`);
  if (!r.ok || id !== S.selected) return;
  const t = await r.json();
  $("trial-head").textContent = `trial ${t.id} · ${t.state}` + (t.metric !== null ? ` · ${metricName()} = ${fmt(t.metric)}` : "") +
    (t.budget !== null ? ` · budget ${fmt(t.budget)}` : "") + (t.agent ? ` · on ${t.agent}` : "") +
    (t.parent !== null ? ` · continues trial ${t.parent}` : "") + (t.ablated ? ` · left out: ${t.ablated}` : "") +
    (t.audit !== null && t.audit !== undefined ? ` · an audit: stopped trial ${t.audit} run to the full budget` : "") + " · " +
    Object.entries(t.params).map(([k, v]) => `${k}=${fmt(v)}`).join(", ") + (t.error ? ` · ${t.error}` : "");
  const traces = [{type: "scatter", mode: "lines+markers", name: esc(metricName()), x: t.curve.map((p) => p[0]), y: t.curve.map((p) => p[1])}];
  for (const [name, pts] of Object.entries(t.series || {})) {
    if (name === metricName()) continue;
    traces.push({type: "scatter", mode: "lines", name: esc(name), yaxis: "y2", x: pts.map((p) => p[0]), y: pts.map((p) => p[1])});
  }
  Plotly.react("trial-curve", traces, {...LAYOUT, showlegend: traces.length > 1, xaxis: {title: {text: "step"}, zeroline: false},
    yaxis2: {overlaying: "y", side: "right"}}, CONFIG);
  const log = $("trial-log");
  log.textContent = t.log || "(no output)";
  $("trial-log-note").textContent = t.log_cut ? `(the last 64 KB of ${t.log_size} bytes)` : "";
  if (scroll) log.scrollTop = log.scrollHeight;
}

// -- tabs and controls ------------------------------------------------------------------------
function showTab(name) {
  S.tab = name;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("on", b.dataset.tab === name);
  for (const s of document.querySelectorAll(".tab")) s.classList.toggle("on", s.id === "tab-" + name);
  renderPlots();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("#tabs button")) b.onclick = () => showTab(b.dataset.tab);
  $("filter-state").onchange = () => { S.page = 0; renderTable(); };
  $("params-budget").onchange = () => renderParams();
  $("filter-text").oninput = () => {  // drawn 150 ms after the last key, whatever updates arrive meanwhile
    S.page = 0;
    clearTimeout(S.typingTimer);
    S.typingTimer = setTimeout(renderTable, 150);
  };
  $("prev").onclick = () => { S.page = Math.max(0, S.page - 1); renderTable(); };
  $("next").onclick = () => { S.page += 1; renderTable(); };
  setInterval(listExperiments, 5000);
});

openExperiment(decodeURIComponent(location.hash.slice(1)) || null);
