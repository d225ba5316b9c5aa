// numerflow dashboard: actions through the REST API (with the session's CSRF token), live updates from
// /ws/events, and plotly charts on the model page. No framework, no network beyond this service.
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const csrf = () => ($('meta[name="csrf-token"]') || {}).content || "";
  const page = document.body.dataset.page;
  window.numerflow = { events: 0, seen: {} };

  function toast(text, bad = false) {
    const el = $("#toast");
    if (!el) return;
    el.textContent = text;
    el.className = "toast" + (bad ? " bad" : "");
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, bad ? 8000 : 4000);
  }

  async function api(method, url, body) {
    const opts = { method, headers: { "X-CSRF-Token": csrf(), Accept: "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = typeof body === "string" ? body : JSON.stringify(body);
    }
    const res = await fetch(url, opts);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) throw new Error((data && data.detail) || `${res.status} ${res.statusText}`);
    return data;
  }

  // ---------------------------------------------------------------------------------- actions
  // <button data-api="POST /api/..." data-body='{...}' data-confirm="..." data-done="...">
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("button[data-api]");
    if (!btn) return;
    ev.preventDefault();
    if (btn.dataset.confirm && !window.confirm(btn.dataset.confirm)) return;
    const [method, url] = btn.dataset.api.split(" ");
    btn.disabled = true;
    try {
      const out = await api(method, url, btn.dataset.body);
      toast(btn.dataset.done || "Done");
      if (page === "jobs" && out && out.id) upsertJob(out);
      else if (page !== "data") setTimeout(() => location.reload(), 300);
    } catch (e) {
      toast(e.message, true);
    } finally {
      btn.disabled = false;
    }
  });

  // ---------------------------------------------------------------------------------- live events
  const handlers = [];
  function connect(delay = 500) {
    const live = $("#live");
    if (!live) return;
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/events`);
    ws.onopen = () => { live.className = "live on"; live.title = "live updates: connected"; delay = 500; };
    ws.onmessage = (msg) => {
      window.numerflow.events += 1;
      let ev;
      try { ev = JSON.parse(msg.data); } catch (e) { return; }
      handlers.forEach((h) => h(ev));
    };
    ws.onclose = (ev) => {
      live.className = "live off";
      live.title = "live updates: disconnected";
      if (ev.code === 4401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
      setTimeout(() => connect(Math.min(delay * 2, 15000)), delay);
    };
  }

  // pages showing scores refresh when something they show changed (debounced, only when visible)
  let reloadTimer = null;
  function softReload() {
    if (reloadTimer || document.hidden) return;
    reloadTimer = setTimeout(() => location.reload(), 1500);
  }
  if (page === "overview" || page === "rounds") {
    handlers.push((ev) => {
      if (ev.type === "scores" || ev.type === "round" || ev.type === "model") softReload();
      if (ev.type === "job" && ev.job && ["succeeded", "failed"].includes(ev.job.status) && ["round", "perf_sync", "train"].includes(ev.job.kind)) softReload();
    });
  }

  // ---------------------------------------------------------------------------------- jobs page
  function upsertJob(job) {
    const body = $("#jobs-body");
    if (!body) return;
    let row = $(`#job-${job.id}`);
    if (!row) {
      row = $("#job-row-template").content.firstElementChild.cloneNode(true);
      row.id = `job-${job.id}`;
      row.dataset.id = job.id;
      row.cells[0].textContent = `#${job.id}`;
      row.cells[1].innerHTML = "";
      const b = document.createElement("b"); b.textContent = job.kind; row.cells[1].appendChild(b);
      row.cells[2].textContent = Object.entries(job.args || {}).map(([k, v]) => `${k}=${v}`).join(" ");
      row.cells[6].textContent = job.created_by || "";
      row.cells[7].textContent = (job.created_at || "").replace("T", " ").slice(0, 16) + " UTC";
      $("[data-job-logs]", row).dataset.jobLogs = job.id;
      const c = $("button.cancel", row); if (c) { c.dataset.api = `POST /api/jobs/${job.id}/cancel`; c.dataset.done = `Cancel requested for job #${job.id}`; }
      const r = $("button.retry", row); if (r) { r.dataset.api = `POST /api/jobs/${job.id}/retry`; r.dataset.done = `Retrying job #${job.id}`; }
      body.prepend(row);
      const none = $("#no-jobs"); if (none) none.remove();
    }
    const seen = (window.numerflow.seen[job.id] = window.numerflow.seen[job.id] || []);
    seen.push({ status: job.status, progress: job.progress, message: job.message });
    row.dataset.status = job.status;
    const badge = $(".status .badge", row);
    badge.className = `badge ${job.status}`;
    badge.textContent = job.status;
    const pct = Math.round((job.progress || 0) * 1000) / 10;
    $(".bar span", row).style.width = `${pct}%`;
    $(".bar", row).setAttribute("aria-valuenow", Math.round(pct));
    $(".pct", row).textContent = `${Math.round(pct)}%`;
    const msg = $(".message", row);
    msg.textContent = job.error || job.message || "";
    msg.classList.toggle("error", !!job.error);
    const active = job.status === "queued" || job.status === "running";
    const c = $("button.cancel", row); if (c) c.hidden = !active;
    const r = $("button.retry", row); if (r) r.hidden = !["failed", "cancelled", "interrupted"].includes(job.status);
  }

  let openLog = null;
  async function showLog(id) {
    openLog = Number(id);
    $("#log-panel").hidden = false;
    $("#log-job").textContent = `#${id}`;
    const pre = $("#log-lines");
    pre.textContent = "";
    try {
      const job = await api("GET", `/api/jobs/${id}`);
      job.logs.forEach(appendLog);
    } catch (e) { toast(e.message, true); }
  }
  function appendLog(line) {
    const pre = $("#log-lines");
    if ((line.id && pre.dataset.last && Number(pre.dataset.last) >= line.id)) return;
    if (line.id) pre.dataset.last = line.id;
    const row = document.createElement("div");
    row.className = `line ${String(line.level || "").toLowerCase()}`;
    row.textContent = `${String(line.at || "").slice(11, 19)} ${line.level || ""} ${line.line}`;
    pre.appendChild(row);
    pre.scrollTop = pre.scrollHeight;
  }

  if (page === "jobs") {
    handlers.push((ev) => {
      if (ev.type === "job" && ev.job) upsertJob(ev.job);
      if (ev.type === "job_log" && openLog === ev.job_id) appendLog(ev);
    });
    document.addEventListener("click", (ev) => {
      const b = ev.target.closest("[data-job-logs]");
      if (b) { $("#log-lines").dataset.last = ""; showLog(b.dataset.jobLogs); }
    });
    const close = $("#log-close");
    if (close) close.addEventListener("click", () => { $("#log-panel").hidden = true; openLog = null; });
    const form = $("#start-job");
    if (form) {
      const kind = $("#job-kind");
      const sync = () => $$("label[data-for]", form).forEach((l) => { l.hidden = !l.dataset.for.split(" ").includes(kind.value); });
      kind.addEventListener("change", sync);
      sync();
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const f = new FormData(form);
        const k = f.get("kind");
        const args = {};
        if (["train", "cv", "tune"].includes(k)) args.model = f.get("model");
        if (k === "tune") args.trials = Number(f.get("trials"));
        if (k === "download" && f.get("version")) args.version = f.get("version");
        try {
          const job = await api("POST", "/api/jobs", { kind: k, args });
          upsertJob(job);
          toast(`Started ${k} job #${job.id}`);
          showLog(job.id);
        } catch (e) { toast(e.message, true); }
      });
    }
  }

  // ---------------------------------------------------------------------------------- data page
  document.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-check]");
    if (!b) return;
    const version = b.dataset.check;
    const out = $(`#checks-${CSS.escape(version)}`);
    b.disabled = true;
    out.textContent = "Checking…";
    try {
      const report = await api("POST", `/api/datasets/${encodeURIComponent(version)}/check`);
      out.textContent = "";
      const head = document.createElement("p");
      head.className = report.ok ? "ok" : "bad";
      head.textContent = `${report.ok ? "✓ checks passed" : "✗ checks found errors"}: ` +
        `${report.errors} error(s), ${report.warnings} warning(s), ${report.issues.length} note(s) in all`;
      out.appendChild(head);
      const ul = document.createElement("ul");
      report.issues.forEach((i) => {
        const li = document.createElement("li");
        li.className = i.severity === "error" ? "bad" : i.severity === "warning" ? "warn" : "ok";
        li.textContent = `${i.severity} · ${i.file} · ${i.check}: ${i.message}`;
        ul.appendChild(li);
      });
      out.appendChild(ul);
    } catch (e) { out.textContent = ""; toast(e.message, true); }
    finally { b.disabled = false; }
  });

  // ---------------------------------------------------------------------------------- settings page
  const tokenForm = $("#create-token");
  if (tokenForm) tokenForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(tokenForm);
    try {
      const t = await api("POST", "/api/tokens", { name: f.get("name"), scope: f.get("scope") });
      $("#new-token-value").textContent = t.token;
      $("#new-token").hidden = false;
      tokenForm.reset();
    } catch (e) { toast(e.message, true); }
  });
  const userForm = $("#create-user");
  if (userForm) userForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(userForm);
    try {
      await api("POST", "/api/users", { username: f.get("username"), password: f.get("password"), role: f.get("role") });
      toast(`User ${f.get("username")} added`);
      setTimeout(() => location.reload(), 300);
    } catch (e) { toast(e.message, true); }
  });

  // ---------------------------------------------------------------------------------- configuration
  // every form below sends PUT /api/config; the answer's message says whether a restart is needed
  const configBox = $("#config");
  async function saveConfig(changes) {
    if (!changes.length) { toast("Nothing changed"); return; }
    const body = { changes };
    if (configBox && configBox.dataset.sha) body.expect_sha256 = configBox.dataset.sha;
    try {
      const out = await api("PUT", "/api/config", body);
      if (configBox) configBox.dataset.sha = out.sha256;
      const result = $("#config-result");
      if (result) { result.textContent = out.message; result.hidden = false; }
      toast(out.message);
      await refreshAudit();
      $$("#guard-rails input").forEach((i) => { i.dataset.initial = i.value; });
    } catch (e) { toast(e.message, true); }
  }
  async function refreshAudit() {
    const tbody = $("#config-audit tbody");
    if (!tbody) return;
    const rows = await api("GET", "/api/config/audit?limit=30");
    tbody.replaceChildren(...rows.map((a) => {
      const tr = document.createElement("tr");
      const when = a.changed_at.replace("T", " ").slice(0, 16);
      [when, a.actor, a.via, a.key, a.old_value === null ? "—" : a.old_value, a.new_value === null ? "—" : a.new_value]
        .forEach((text, i) => { const td = document.createElement("td"); td.textContent = text; if (i >= 3) td.className = "mono small"; tr.appendChild(td); });
      return tr;
    }));
  }
  const onSubmit = (form, build) => form && form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    let changes;
    try { changes = build(new FormData(form)); } catch (e) { toast(e.message, true); return; }
    saveConfig(changes);
  });
  onSubmit($("#guard-rails"), () => $$("#guard-rails input")
    .filter((i) => i.value.trim() !== i.dataset.initial)
    .map((i) => (i.value.trim() === "" ? { key: i.name, unset: true } : { key: i.name, text: i.value })));
  $$(".secret-form").forEach((form) => onSubmit(form, (f) => [{ key: form.dataset.key, value: f.get("value") }]));
  $$(".model-form").forEach((form) => onSubmit(form, (f) => {
    const key = form.dataset.key || `${f.get("table") || "models"}.${f.get("name")}`;
    return [{ key, text: f.get("text") }];
  }));
  onSubmit($("#schedule-form"), (f) => {
    const args = (f.get("args") || "").trim();
    const changes = [{ key: `schedules.${f.get("name")}`, value: { cron: f.get("cron"), job: f.get("job"), enabled: f.get("enabled") === "on" } }];
    if (args) changes.push({ key: `schedules.${f.get("name")}.args`, text: args });
    return changes;
  });
  onSubmit($("#alerts-form"), (f) => {
    const changes = [
      { key: "alerts.enabled", value: f.get("enabled") === "on" },
      { key: "alerts.events", value: f.getAll("event") },
    ];
    const host = (f.get("host") || "").trim();
    if (!host) changes.push({ key: "alerts.email", unset: true });
    else changes.push({ key: "alerts.email", value: {
      host, port: Number(f.get("port")) || f.get("port"), sender: f.get("sender"), starttls: f.get("starttls"),
      to: String(f.get("to") || "").split(",").map((s) => s.trim()).filter(Boolean),
    } });
    return changes;
  });
  onSubmit($("#any-key"), (f) => {
    const text = String(f.get("text") || "");
    return [text.trim() === "" ? { key: f.get("key"), unset: true } : { key: f.get("key"), text }];
  });

  // ---------------------------------------------------------------------------------- charts
  // the look every chart shares; `extra` overrides it (height, axes, barmode, margins)
  const layout = (extra) => Object.assign({
    margin: { l: 48, r: 12, t: 8, b: 36 }, height: 260, font: { size: 11, family: "system-ui, sans-serif" },
    legend: { orientation: "h", y: 1.12 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    xaxis: { gridcolor: "#eee" }, yaxis: { gridcolor: "#eee", zerolinecolor: "#999" },
  }, extra || {});
  // a chart with nothing to draw says so in its place
  const none = (id, text) => { const el = $(id); if (el) { el.classList.add("none"); el.textContent = text; } };

  function drawCharts() {
    const holder = $("#chart-data");
    if (!holder || !window.Plotly) return;
    const data = JSON.parse(holder.textContent);
    const cfg = { displayModeBar: false, responsive: true, staticPlot: false };
    // round numbers are labels, not quantities: a categorical axis never shows ticks like "1,000.5"
    const roundAxis = { type: "category", categoryorder: "category ascending", title: { text: "round" }, gridcolor: "#eee" };
    // the model's tournament's scores, payout scores first: CORR/MMC/BMC, Signals ALPHA/MPC/CORRv4, Crypto MMC/CORR
    const metrics = data.metrics;
    const colors = ["#2f6feb", "#bf8700", "#8250df"];
    const rounds = data.champion.rounds;
    const x = rounds.map((r) => r.round);
    const series = (key) => rounds.map((r) => r[key]);
    const cum = (vals) => { let s = 0; return vals.map((v) => (s += v || 0)); };
    if (rounds.length) {
      Plotly.newPlot("chart-rounds", metrics.slice(0, 3).map((m, i) => ({
        type: "bar", name: m.label, x, y: series(m.key), marker: { color: colors[i] },
      })), layout({ barmode: "group", xaxis: roundAxis }), cfg);
      Plotly.newPlot("chart-cumulative", metrics.slice(0, 2).map((m, i) => ({
        type: "scatter", mode: "lines+markers", name: m.label, x, y: cum(series(m.key)), line: { color: colors[i] },
      })), layout({ xaxis: roundAxis }), cfg);
    } else {
      none("#chart-rounds", "No round scores yet.");
      none("#chart-cumulative", "No round scores yet.");
    }
    // the deployed version's headline validation score by era (Classic CORR; Signals ALPHA by date)
    const val = data.validation.series || [];
    if (val.length) {
      Plotly.newPlot("chart-validation", [{
        type: "scatter", mode: "lines", name: `v${data.validation.version}`, x: val.map((_, i) => i + 1),
        y: cum(val), line: { color: "#1a7f37" }, fill: "tozeroy", fillcolor: "rgba(26,127,55,0.08)",
      }], layout({ height: 220, xaxis: { title: { text: `validation ${data.validation.unit}` }, gridcolor: "#eee" } }), cfg);
    } else none("#chart-validation", data.validation.none);
    if ($("#chart-h2h") && data.challenger.rounds.length) {
      const line = (side, color) => {
        const rs = data[side].rounds;
        return { type: "scatter", mode: "lines+markers", name: `${side} (${data[side].slot})`, x: rs.map((r) => r.round), y: cum(rs.map((r) => r[metrics[0].key])), line: { color } };
      };
      Plotly.newPlot("chart-h2h", [line("champion", "#2f6feb"), line("challenger", "#cf222e")], layout({ height: 220, xaxis: roundAxis }), cfg);
    }
    document.body.dataset.charts = "drawn";
    if (window.performance && performance.mark) performance.mark("numerflow:charts-drawn");  // for benchmarks
  }

  // the "Risk & stakes" page: equity curves, live equity, payout distribution, correlation heatmap
  function drawRisk() {
    const holder = $("#risk-data");
    if (!holder || !window.Plotly) return;
    const data = JSON.parse(holder.textContent);
    const cfg = { displayModeBar: false, responsive: true };
    const models = Object.keys(data.equity || {});
    if (!$("#chart-equity")) return;
    if (models.length) {
      Plotly.newPlot("chart-equity", models.map((m) => ({
        type: "scatter", mode: "lines", name: m, x: data.equity[m].x.map((_, i) => i + 1), y: data.equity[m].y,
      })), layout({ xaxis: { title: { text: "round of the backtest" }, gridcolor: "#eee" } }), cfg);
      Plotly.newPlot("chart-distribution", models.map((m) => ({
        type: "histogram", name: m, x: data.distribution[m], opacity: 0.6, nbinsx: 30,
      })), layout({ barmode: "overlay", xaxis: { tickformat: ".1%", gridcolor: "#eee" } }), cfg);
    } else {
      none("#chart-equity", "No backtests yet.");
      none("#chart-distribution", "No backtests yet.");
    }
    const slots = Object.keys(data.live_equity || {});
    if (slots.length) {
      Plotly.newPlot("chart-live", slots.map((s) => ({
        type: "scatter", mode: "lines+markers", name: s, x: data.live_equity[s].x, y: data.live_equity[s].y,
      })), layout({ xaxis: { type: "category", title: { text: "round" }, gridcolor: "#eee" }, yaxis: { tickformat: ".1%", gridcolor: "#eee" } }), cfg);
    } else none("#chart-live", "No settled live payouts yet (numerflow perf sync).");
    const c = data.correlation || { models: [] };
    if (c.models.length > 1) {
      Plotly.newPlot("chart-correlation", [{
        type: "heatmap", x: c.models, y: c.models, z: c.matrix, zmin: -1, zmax: 1, colorscale: "RdBu", reversescale: true,
      }], layout({ margin: { l: 80, r: 12, t: 8, b: 60 } }), cfg);
    } else none("#chart-correlation", "Needs two or more backtests.");
    const att = data.attribution || {};
    const attModels = Object.keys(att);
    if (attModels.length) {
      const groups = Object.keys(att[attModels[0]].groups);
      Plotly.newPlot("chart-attribution", attModels.map((m) => ({
        type: "bar", name: m, x: groups, y: groups.map((g) => att[m].groups[g]),
      })), layout({ barmode: "group" }), cfg);
    } else none("#chart-attribution", "Run numerflow attribution MODEL to see which feature groups drove a backtest.");
    document.body.dataset.charts = "drawn";
  }

  // the stake plan on the "Risk & stakes" page: preview, then apply (confirmed) through POST /api/portfolio/plan
  const planForm = $("#plan-form");
  if (planForm) {
    const esc = (v) => String(v == null ? "—" : v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
    const pct = (v, d) => (v == null ? "—" : `${(100 * v).toFixed(d)}%`);
    // NMR amounts arrive as exact decimal strings ("12.345678"); shown to the cent like before
    const nmr = (v) => (v == null ? "—" : Number(v).toFixed(2));
    const show = (out) => {
      const rows = out.rows.map((r) => `<tr data-model="${esc(r.model)}"><td><b>${esc(r.model)}</b><br><span class="muted small">${esc(out.sources[r.model])}</span></td>`
        + `<td class="num">${pct(r.mean, 2)}</td><td class="num">${pct(r.vol, 2)}</td><td class="num">${pct(r.drawdown, 0)}</td>`
        + `<td class="num">${nmr(r.current)}</td><td class="num target">${nmr(r.target)}</td><td class="num this-round">${nmr(r.this_round)}</td><td>${esc(r.reason)}</td></tr>`).join("");
      const cmp = Object.entries(out.compare).map(([k, v]) => `<tr><th>${esc(k.replace(/_/g, " "))}</th><td class="num">${nmr(v.current)}</td><td class="num">${nmr(v.proposed)}</td></tr>`).join("");
      const done = out.applied.map((a) => `<li>${esc(a.model)}: ${esc(a.from_nmr)} → ${esc(a.to_nmr)} NMR requested</li>`).join("")
        + Object.entries(out.refused).map(([m, why]) => `<li class="bad">${esc(m)}: ${esc(why)}</li>`).join("");
      $("#plan-result").innerHTML = `<table class="grid" id="plan-table"><thead><tr><th>Model</th><th class="num">Mean</th><th class="num">Vol.</th><th class="num">Drawdown</th><th class="num">Now</th><th class="num">Target</th><th class="num">This round</th><th>Why</th></tr></thead><tbody>${rows}</tbody></table>`
        + `<table class="kv" id="plan-compare"><tr><th></th><th class="num">current</th><th class="num">proposed</th></tr>${cmp}</table>`
        + (done ? `<ul id="plan-applied">${done}</ul>` : "");
    };
    const send = async (apply) => {
      const f = new FormData(planForm);
      const body = { method: f.get("method"), apply };
      if (f.get("budget")) body.budget = f.get("budget");
      try {
        const out = await api("POST", "/api/portfolio/plan", body);
        show(out);
        const applyBtn = $("#plan-apply");
        if (applyBtn) applyBtn.disabled = apply;
        toast(apply ? "Stake changes requested" : "Plan ready");
      } catch (e) { toast(e.message, true); }
    };
    planForm.addEventListener("submit", (ev) => { ev.preventDefault(); send(false); });
    const applyBtn = $("#plan-apply");
    if (applyBtn) applyBtn.addEventListener("click", () => {
      if (window.confirm("Ask Numerai for this round's stakes of the plan?")) send(true);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    connect();
    drawCharts();
    drawRisk();
  });
})();
