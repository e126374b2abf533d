// pixsearch trace viewer: a table of samples with filters, one sample's trace with its masks, two runs side by side.
// All state lives in the URL hash, so every view is linkable:
//   #table?run=0&verdict=wrong&sort=n_searches&desc=1&page=2
//   #sample?run=0&k=17
//   #compare?a=0&b=1&only=diff
// Data come from data.js (the table) and samples/<run>/<k>.js (one trace each, loaded on demand).
"use strict";
const DATA = window.PIX_DATA;
const PAGE = 100;
const HOP_COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0"];
const sampleCache = {};
const samplePending = {};

function esc(s) {
  return String(s === null || s === undefined ? "" : s)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
function parseHash() {
  const h = location.hash.replace(/^#/, "");
  const [view, query] = h.split("?");
  return { view: view || "table", params: new URLSearchParams(query || "") };
}
function go(view, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  location.hash = view + (q.toString() ? "?" + q.toString() : "");
}
function paramsObj(p) { const o = {}; for (const [k, v] of p.entries()) o[k] = v; return o; }

// ---- loading one sample's trace (a <script> per sample: works from file:// too) ----
window.PIX_SAMPLE = function (run, k, detail) {
  const key = run + ":" + k;
  sampleCache[key] = detail;
  (samplePending[key] || []).forEach((f) => f(detail));
  delete samplePending[key];
};
function loadSample(run, k) {
  const key = run + ":" + k;
  if (sampleCache[key]) return Promise.resolve(sampleCache[key]);
  return new Promise((resolve, reject) => {
    (samplePending[key] = samplePending[key] || []).push(resolve);
    if (samplePending[key].length > 1) return;
    const s = document.createElement("script");
    s.src = "samples/" + run + "/" + k + ".js";
    s.onerror = () => reject(new Error("cannot load " + s.src));
    document.body.appendChild(s);
  });
}

// ---- the table ----
const FILTERS = [
  ["run", "run", (r) => String(r.run), () => DATA.runs.map((x, i) => [String(i), x.label])],
  ["benchmark", "benchmark", (r) => r.benchmark, null],
  ["mode", "mode", (r) => r.mode, null],
  ["verdict", "verdict", (r) => r.verdict, () => DATA.statuses.map((s) => [s, s])],
  ["ego", "egocentric", (r) => (r.ego === true ? "yes" : r.ego === false ? "no" : "unknown"), null],
  ["modality", "modality used", (r) => r.modalities, null],
  ["n_searches", "searches", (r) => String(r.n_searches), null],
];
const COLUMNS = [
  ["id", "sample"], ["run", "run"], ["mode", "mode"], ["verdict", "verdict"], ["ego", "ego"],
  ["modalities", "modalities"], ["n_searches", "searches"], ["question", "question"], ["answer", "answer"],
  ["gold", "gold"],
];
function optionsFor(f) {
  if (f[3]) return f[3]();
  const seen = new Set();
  DATA.rows.forEach((r) => { const v = f[2](r); (Array.isArray(v) ? v : [v]).forEach((x) => seen.add(String(x))); });
  if (f[0] === "modality") seen.add("none");
  return [...seen].sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).map((v) => [v, v]);
}
function matches(r, p) {
  for (const f of FILTERS) {
    const want = p.get(f[0]);
    if (!want) continue;
    const v = f[2](r);
    if (Array.isArray(v)) { if (want === "none" ? v.length : !v.includes(want)) return false; }
    else if (String(v) !== want) return false;
  }
  const text = (p.get("q") || "").toLowerCase();
  return !text || (r.id + " " + r.question + " " + r.answer).toLowerCase().includes(text);
}
function sortRows(rows, key, desc) {
  const val = (r) => (Array.isArray(r[key]) ? r[key].join(",") : r[key]);
  rows.sort((a, b) => {
    const x = val(a), y = val(b);
    const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
    return desc ? -c : c;
  });
  return rows;
}
function renderTable(p) {
  const rows = sortRows(DATA.rows.filter((r) => matches(r, p)), p.get("sort") || "id", p.get("desc") === "1");
  const page = Math.max(0, Math.min(+(p.get("page") || 0), Math.floor(Math.max(rows.length - 1, 0) / PAGE)));
  const counts = {};
  DATA.statuses.forEach((s) => (counts[s] = 0));
  rows.forEach((r) => counts[r.verdict]++);
  const filterHtml = FILTERS.map((f) => `<label>${esc(f[1])}<select data-filter="${f[0]}">
      <option value="">all</option>${optionsFor(f).map(([v, l]) =>
        `<option value="${esc(v)}"${p.get(f[0]) === v ? " selected" : ""}>${esc(l)}</option>`).join("")}</select></label>`).join("");
  const compare = DATA.runs.length > 1
    ? `<label>compare runs<button id="compare-btn">run 0 vs run 1</button></label>` : "";
  const head = COLUMNS.map(([k, l]) => `<th data-sort="${k}">${esc(l)}${p.get("sort") === k ? (p.get("desc") === "1" ? " ▼" : " ▲") : ""}</th>`).join("");
  const body = rows.slice(page * PAGE, (page + 1) * PAGE).map((r) => `<tr class="row" data-run="${r.run}" data-k="${r.k}">
      <td>${esc(r.id)}</td><td>${r.run}</td><td>${esc(r.mode)}</td><td class="v-${r.verdict}">${r.verdict}</td>
      <td>${r.ego === null || r.ego === undefined ? "" : r.ego ? "yes" : "no"}</td><td>${esc(r.modalities.join(", "))}</td>
      <td>${r.n_searches}</td><td>${esc(r.question)}</td><td>${esc(r.answer)}</td><td>${esc(r.gold.join(" | "))}</td></tr>`).join("");
  const pages = Math.max(1, Math.ceil(rows.length / PAGE));
  document.getElementById("app").innerHTML = `
    <div class="filters">${filterHtml}<label>text<input id="q" value="${esc(p.get("q") || "")}" placeholder="id, question, answer"></label>${compare}</div>
    <div class="counts" id="counts"><b id="n-shown">${rows.length} samples</b>${DATA.statuses.map((s) =>
      `<b class="v-${s}" data-count="${s}">${s}: ${counts[s]}</b>`).join("")}</div>
    <div class="pager"><button id="prev" ${page === 0 ? "disabled" : ""}>‹ prev</button>
      page ${page + 1} of ${pages}<button id="next" ${page + 1 >= pages ? "disabled" : ""}>next ›</button></div>
    <table id="samples"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
  const base = paramsObj(p);
  document.querySelectorAll("select[data-filter]").forEach((s) => s.addEventListener("change", () =>
    go("table", { ...base, [s.dataset.filter]: s.value, page: 0 })));
  document.getElementById("q").addEventListener("change", (e) => go("table", { ...base, q: e.target.value, page: 0 }));
  document.querySelectorAll("th[data-sort]").forEach((th) => th.addEventListener("click", () =>
    go("table", { ...base, sort: th.dataset.sort, desc: base.sort === th.dataset.sort && base.desc !== "1" ? 1 : "" })));
  document.querySelectorAll("tr.row").forEach((tr) => tr.addEventListener("click", () =>
    go("sample", { run: tr.dataset.run, k: tr.dataset.k })));
  document.getElementById("prev").addEventListener("click", () => go("table", { ...base, page: page - 1 }));
  document.getElementById("next").addEventListener("click", () => go("table", { ...base, page: page + 1 }));
  const cb = document.getElementById("compare-btn");
  if (cb) cb.addEventListener("click", () => go("compare", { a: 0, b: 1 }));
}

// ---- one sample: image + masks, trace, evidence ----
function decodeRle(rle) {
  const [h, w] = rle.size, counts = rle.counts, out = new Uint8Array(h * w);
  let pos = 0;
  counts.forEach((c, i) => { if (i % 2 === 1) for (let j = 0; j < c; j++) { const t = pos + j; out[(t % h) * w + Math.floor(t / h)] = 1; } pos += c; });
  return { h, w, data: out };
}
function hexRgb(hex) { return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)); }
function drawMask(ctx, m, color, width, height) {
  const off = document.createElement("canvas");
  off.width = m.w; off.height = m.h;
  const octx = off.getContext("2d"), img = octx.createImageData(m.w, m.h), [r, g, b] = hexRgb(color);
  for (let i = 0; i < m.data.length; i++) if (m.data[i]) { img.data.set([r, g, b, 110], i * 4); }
  octx.putImageData(img, 0, 0);
  ctx.drawImage(off, 0, 0, width, height);
}
function loadImg(src) {
  return new Promise((res, rej) => { const i = new Image(); i.onload = () => res(i); i.onerror = () => rej(new Error(src)); i.src = src; });
}
async function drawOverlay(canvas, d) {
  if (!d.image) { canvas.replaceWith(Object.assign(document.createElement("p"), { className: "muted", textContent: "no image" })); return; }
  const img = await loadImg(d.image);
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  d.searches.forEach((s, i) => {
    const color = HOP_COLORS[i % HOP_COLORS.length];
    if (s.mask_rle) drawMask(ctx, decodeRle(s.mask_rle), color, canvas.width, canvas.height);
    if (s.box) { ctx.strokeStyle = color; ctx.lineWidth = Math.max(2, canvas.width / 200); ctx.setLineDash([6, 4]);
      ctx.strokeRect(s.box[0], s.box[1], s.box[2] - s.box[0], s.box[3] - s.box[1]); ctx.setLineDash([]); }
  });
  // the gold outline is drawn, not computed here: pixels of a loaded image cannot be read on file:// pages
  if (d.gold_outline) ctx.drawImage(await loadImg(d.gold_outline), 0, 0, canvas.width, canvas.height);
  canvas.dataset.drawn = "1";
}
function trajectoryHtml(d) {
  if (!d.segments.length) return `<div class="traj">${esc(d.text || d.answer || "")}</div>`;
  let hop = 0;
  return `<div class="traj">${d.segments.map((s) => {
    if (s.kind === "search") return `<span class="seg-search">${esc(s.text)}</span>`;
    if (s.kind === "information") {
      const sc = d.searches[hop] || { hop: hop }; hop++;
      const ids = (sc.evidence_ids || []).map((id, i) => esc(id) + (sc.scores && sc.scores[i] !== undefined ? ` (${(+sc.scores[i]).toFixed(3)})` : "")).join(", ");
      return `<details class="seg-information"><summary>evidence, hop ${sc.hop}: ${ids || "none"}</summary><div>${esc(s.text)}</div></details>`;
    }
    return esc(s.text);
  }).join("")}</div>`;
}
function searchesHtml(d) {
  if (!d.searches.length) return "<p class='muted'>no searches</p>";
  return `<table class="searches"><thead><tr><th>hop</th><th>modality</th><th>asked</th><th>query</th><th>box</th><th>evidence</th><th>latency</th><th>error</th></tr></thead><tbody>${
    d.searches.map((s, i) => `<tr><td style="color:${HOP_COLORS[i % HOP_COLORS.length]}">${s.hop}</td><td>${esc(s.modality)}</td>
      <td>${esc(s.requested)}</td><td>${esc(s.text)}</td><td>${esc((s.box || []).join(", "))}</td>
      <td>${esc((s.evidence_ids || []).join(", "))}</td><td>${s.latency_s !== undefined ? (+s.latency_s * 1000).toFixed(1) + " ms" : ""}</td>
      <td>${esc(s.error)}</td></tr>`).join("")}</tbody></table>`;
}
function sampleHtml(run, d) {
  return `<div class="sample" data-sample="${esc(d.id)}">
    <div><div class="canvas-wrap"><canvas id="overlay-${run}"></canvas></div>
      <div class="legend">${d.searches.map((s, i) => `<span style="color:${HOP_COLORS[i % HOP_COLORS.length]}">■ hop ${s.hop} ${esc(s.modality)}</span>`).join("")}
      ${d.gold_outline ? "<span style='color:#c90'>□ gold mask</span>" : ""}</div></div>
    <div><h3>${esc(DATA.runs[run].label)}</h3>
      <dl class="kv"><dt>sample</dt><dd>${esc(d.id)}</dd><dt>question</dt><dd>${esc(d.question)}</dd>
        <dt>gold</dt><dd>${esc((d.gold || []).join(" | "))}</dd><dt>prediction</dt><dd>${esc(d.answer)}</dd>
        <dt>verdict</dt><dd class="v-${d.verdict}" id="verdict-${run}">${d.verdict}</dd><dt>scores</dt><dd>${esc(JSON.stringify(d.scores))}</dd>
        <dt>egocentric</dt><dd>${esc(d.egocentric)}</dd><dt>gold queries</dt><dd>${esc(JSON.stringify(d.gold_query_types))}</dd>
        <dt>timings</dt><dd>${esc(JSON.stringify(d.timings))}</dd>${d.error ? `<dt>error</dt><dd class="v-error">${esc(d.error)}</dd>` : ""}</dl>
      <h4>searches</h4>${searchesHtml(d)}<h4>trajectory</h4>${trajectoryHtml(d)}</div></div>`;
}
async function renderSample(p) {
  const run = +p.get("run"), k = +p.get("k");
  const app = document.getElementById("app");
  const d = await loadSample(run, k);
  app.innerHTML = `<p><a href="#table?run=${run}">‹ all samples of run ${run}</a></p>` + sampleHtml(run, d);
  await drawOverlay(document.getElementById("overlay-" + run), d);
}

// ---- two runs side by side ----
function pairs(a, b) {
  const byId = {};
  DATA.rows.filter((r) => r.run === b).forEach((r) => (byId[r.id] = r));
  return DATA.rows.filter((r) => r.run === a && byId[r.id]).map((r) => [r, byId[r.id]]);
}
async function renderCompare(p) {
  const a = +(p.get("a") || 0), b = +(p.get("b") || 1), only = p.get("only") || "";
  let list = pairs(a, b);
  if (only === "diff") list = list.filter(([x, y]) => (x.verdict === "correct") !== (y.verdict === "correct"));
  const app = document.getElementById("app");
  const runSel = (name, cur) => `<select data-run="${name}">${DATA.runs.map((r, i) => `<option value="${i}"${i === cur ? " selected" : ""}>${esc(r.label)}</option>`).join("")}</select>`;
  const id = p.get("id");
  const pages = Math.max(1, Math.ceil(list.length / PAGE));
  const page = Math.max(0, Math.min(+(p.get("page") || 0), pages - 1));
  app.innerHTML = `<div class="filters"><label>left ${runSel("a", a)}</label><label>right ${runSel("b", b)}</label>
      <label>show<select id="only"><option value="">all shared samples</option><option value="diff"${only === "diff" ? " selected" : ""}>right in one, wrong in the other</option></select></label></div>
    <div id="side" class="pair"></div>
    <div class="counts"><b id="n-pairs">${list.length} samples</b></div>
    <div class="pager"><button id="prev" ${page === 0 ? "disabled" : ""}>‹ prev</button>
      page ${page + 1} of ${pages}<button id="next" ${page + 1 >= pages ? "disabled" : ""}>next ›</button></div>
    <table id="pairs"><thead><tr><th>sample</th><th>question</th><th>left</th><th>right</th></tr></thead><tbody>${
      list.slice(page * PAGE, (page + 1) * PAGE).map(([x, y]) => `<tr class="row" data-id="${esc(x.id)}"><td>${esc(x.id)}</td><td>${esc(x.question)}</td>
        <td class="v-${x.verdict}">${x.verdict}: ${esc(x.answer)}</td><td class="v-${y.verdict}">${y.verdict}: ${esc(y.answer)}</td></tr>`).join("")}</tbody></table>`;
  const base = paramsObj(p);
  app.querySelectorAll("select[data-run]").forEach((s) => s.addEventListener("change", () => go("compare", { ...base, [s.dataset.run]: s.value, id: "" })));
  document.getElementById("only").addEventListener("change", (e) => go("compare", { ...base, only: e.target.value, page: 0, id: "" }));
  app.querySelectorAll("#pairs tr.row").forEach((tr) => tr.addEventListener("click", () => go("compare", { ...base, id: tr.dataset.id })));
  document.getElementById("prev").addEventListener("click", () => go("compare", { ...base, page: page - 1 }));
  document.getElementById("next").addEventListener("click", () => go("compare", { ...base, page: page + 1 }));
  const pair = list.find(([x]) => x.id === id);
  if (!pair) return;
  const [dx, dy] = await Promise.all([loadSample(a, pair[0].k), loadSample(b, pair[1].k)]);
  document.getElementById("side").innerHTML = `<div>${sampleHtml(a, dx)}</div><div>${sampleHtml(b, dy)}</div>`;
  await Promise.all([drawOverlay(document.getElementById("overlay-" + a), dx), drawOverlay(document.getElementById("overlay-" + b), dy)]);
}

async function route() {
  const { view, params } = parseHash();
  document.getElementById("runs").textContent = DATA.runs.map((r, i) => `[${i}] ${r.label}: ${r.n}`).join("   ");
  try {
    if (view === "sample") await renderSample(params);
    else if (view === "compare") await renderCompare(params);
    else renderTable(params);
    document.body.dataset.ready = view;
  } catch (e) {
    document.getElementById("app").innerHTML = `<p class="v-error">${esc(e.message)}</p>`;
    document.body.dataset.ready = "error";
  }
}
window.addEventListener("hashchange", route);
route();
