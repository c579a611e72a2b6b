// The vitals health dashboard: fetches this page's own address with
// `Accept: application/json` every REFRESH_MS and draws it. Every string from the server
// goes into the page through textContent (never as HTML); charts are SVG built element by
// element. Each chart's <svg> carries data-points (the most points of its series) and each
// series data-points of its own, so a test can tell a chart with data from an empty one.
"use strict";

(function () {
  const REFRESH_MS = 5000;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  let refreshes = 0;

  function setText(node, value) {
    node.textContent = value == null ? "" : String(value);
  }

  function el(tag, className, value) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (value !== undefined) setText(node, value);
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  }

  const num = (x) => (typeof x === "number" && isFinite(x) ? x : null);
  const ms = (x) => {
    x = num(x);
    if (x === null) return "–";
    return x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : Math.round(x).toString();
  };
  const pct = (x, scale) => (num(x) === null ? "–" : (x * scale).toFixed(1) + " %");
  const count = (x) => (num(x) === null ? "–" : Math.round(x).toLocaleString("en"));
  const MAX_STATEMENT = 240;
  // A long statement (a migration, say) is cut for the table; the whole is its title.
  function statement(text) {
    const code = el("code", "", text.length > MAX_STATEMENT ? text.slice(0, MAX_STATEMENT) + " …" : text);
    if (text.length > MAX_STATEMENT) code.setAttribute("title", text);
    return code;
  }
  const clock = (iso) => {
    const d = new Date(iso);
    return isNaN(d.getTime()) ? "" : d.toLocaleTimeString("en-GB");
  };

  // Draws `series` ([{cls, values: [number|null]}], one value per sample) into `node`,
  // y from 0 to `yMax` (at least the largest value), labelled with `unit`.
  function chart(node, series, yMax, unit) {
    while (node.firstChild) node.removeChild(node.firstChild);
    // The viewBox is the element's own size, so text and strokes are not stretched.
    const W = Math.max(200, Math.round(node.clientWidth || 600));
    const H = Math.max(100, Math.round(node.clientHeight || 170));
    const L = 44, R = 10, T = 10, B = 22;
    node.setAttribute("viewBox", `0 0 ${W} ${H}`);
    node.setAttribute("preserveAspectRatio", "none");
    const samples = Math.max(0, ...series.map((s) => s.values.length));
    let top = yMax;
    for (const s of series) for (const v of s.values) if (num(v) !== null && v > top) top = v;
    if (!(top > 0)) top = 1;
    const x = (i) => L + (samples <= 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (samples - 1));
    const y = (v) => T + (H - T - B) * (1 - v / top);
    for (const f of [0, 0.5, 1]) {
      const v = top * f;
      node.appendChild(svg("line", { class: "axis", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      const label = svg("text", { class: "label", x: L - 6, y: y(v) + 4, "text-anchor": "end" });
      setText(label, (Number.isInteger(v) ? v : v.toFixed(1)) + unit);
      node.appendChild(label);
    }
    const span = svg("text", { class: "label", x: W - R, y: H - 6, "text-anchor": "end" });
    setText(span, samples + (samples === 1 ? " sample" : " samples"));
    node.appendChild(span);
    let most = 0;
    for (const s of series) {
      const pts = [];
      s.values.forEach((v, i) => {
        if (num(v) !== null) pts.push([x(i), y(v)]);
      });
      const line = svg("polyline", {
        class: "series " + s.cls,
        points: pts.map(([a, b]) => a.toFixed(1) + "," + b.toFixed(1)).join(" "),
        "data-points": pts.length,
      });
      node.appendChild(line);
      for (const [a, b] of pts) node.appendChild(svg("circle", { class: "dot " + s.cls, cx: a, cy: b, r: 2.5 }));
      most = Math.max(most, pts.length);
    }
    node.setAttribute("data-points", String(most));
    return most;
  }

  function renderAlerts(alerts) {
    const list = $("alerts");
    while (list.firstChild) list.removeChild(list.firstChild);
    if (!alerts.length) {
      list.appendChild(el("li", "none", "No alerts."));
      return;
    }
    for (const a of alerts) {
      const item = el("li", a.severity === "critical" ? "critical" : "warning");
      item.appendChild(el("span", "tag", a.severity + " · " + a.source));
      item.appendChild(document.createTextNode(a.message));
      if (a.since) item.appendChild(el("span", "meta", " since " + clock(a.since)));
      list.appendChild(item);
    }
  }

  function renderPool(pool) {
    const now = pool.now;
    setText($("pool-utilisation"), pct(now.utilization_percent, 1));
    setText($("pool-connections"), `${now.active} / ${now.idle} / ${now.max}`);
    setText($("pool-waiting"), now.waiting == null ? "unknown" : count(now.waiting));
    setText(
      $("pool-average-peak"),
      pct(pool.average_utilization_percent, 1) + " / " + pct(pool.peak_utilization_percent, 1),
    );
    setText($("pool-peak-waiting"), pool.peak_waiting == null ? "–" : count(pool.peak_waiting));
    const h = pool.history;
    chart($("pool-utilisation-chart"), [{ cls: "s-util", values: h.map((p) => p.utilization_percent) }], 100, "%");
    chart(
      $("pool-waiting-chart"),
      [
        { cls: "s-wait", values: h.map((p) => p.waiting) },
        { cls: "s-peak", values: h.map((p) => p.peak_waiting) },
      ],
      1,
      "",
    );
    $("pool-empty").hidden = h.length > 0;
  }

  function renderCache(cache) {
    setText($("cache-hit-rate"), pct(cache.hit_rate, 100));
    setText($("cache-counts"), `${count(cache.l1_hits)} / ${count(cache.l2_hits)} / ${count(cache.misses)}`);
    setText($("cache-entries"), count(cache.l1_entries));
    setText(
      $("cache-redis"),
      !cache.redis_configured ? "not configured (L1 only)" : cache.redis_connected ? "connected" : "not connected",
    );
    const h = cache.history;
    const rate = (key) => h.map((s) => (num(s[key]) === null ? null : s[key] * 100));
    const points = chart(
      $("cache-chart"),
      [
        { cls: "s-l1", values: rate("l1_hit_rate") },
        // Without Redis every L1 miss is a miss: no L2 line.
        { cls: "s-l2", values: cache.redis_configured ? rate("l2_hit_rate") : [] },
        { cls: "s-all", values: rate("hit_rate") },
      ],
      100,
      "%",
    );
    $("cache-empty").hidden = points > 0;
    $("legend-l2").hidden = !cache.redis_configured;
  }

  // Empties `table`'s body; with no rows, one saying `none`. Returns the body, or null.
  function tableBody(table, rows, none) {
    const body = table.tBodies[0];
    while (body.firstChild) body.removeChild(body.firstChild);
    if (rows.length) return body;
    const td = el("td", "empty", none);
    td.colSpan = table.tHead.rows[0].cells.length;
    body.appendChild(el("tr")).appendChild(td);
    return null;
  }

  function statementRows(table, rows) {
    const body = tableBody(table, rows, "No statements recorded yet.");
    if (!body) return;
    for (const r of rows) {
      const tr = el("tr");
      tr.appendChild(el("td")).appendChild(statement(r.query));
      tr.appendChild(el("td", "", r.operation + (r.model ? " " + r.model : "")));
      for (const v of [count(r.count), ms(r.p50_ms), ms(r.p95_ms), ms(r.p99_ms), ms(r.max_ms), count(r.errors)]) {
        tr.appendChild(el("td", "n", v));
      }
      body.appendChild(tr);
    }
  }

  function renderStatements(s) {
    setText(
      $("statements-totals"),
      `${count(s.total)} recorded · ${count(s.slow)} at or over ${s.warn_ms} ms · ` +
        `${count(s.critical)} at or over ${s.critical_ms} ms · ${count(s.failed)} failed`,
    );
    statementRows($("slowest"), s.slowest);
    statementRows($("most-frequent"), s.most_frequent);
  }

  function renderNPlusOne(findings) {
    const body = tableBody($("n-plus-one"), findings, "No N+1 findings.");
    if (!body) return;
    for (const f of findings) {
      const tr = el("tr");
      tr.appendChild(el("td", "", clock(f.at)));
      tr.appendChild(el("td", "", f.scope));
      tr.appendChild(el("td")).appendChild(statement(f.query));
      tr.appendChild(el("td", "n", count(f.count)));
      tr.appendChild(el("td", "n", ms(f.total_ms)));
      body.appendChild(tr);
    }
  }

  function render(d) {
    setText($("engine"), d.engine === "postgres" ? "PostgreSQL" : d.engine === "sqlite" ? "SQLite" : d.engine);
    setText($("updated"), "updated " + clock(d.generated_at));
    renderAlerts(d.alerts);
    renderPool(d.pool);
    renderCache(d.cache);
    renderStatements(d.statements);
    renderNPlusOne(d.n_plus_one);
  }

  async function refresh() {
    try {
      const response = await fetch(location.pathname + location.search, {
        headers: { Accept: "application/json" },
        cache: "no-store",
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error("HTTP " + response.status);
      render(await response.json());
      refreshes += 1;
      document.body.setAttribute("data-refreshes", String(refreshes));
      document.body.setAttribute("data-state", "ready");
      setText($("status"), "live");
    } catch (e) {
      document.body.setAttribute("data-state", "error");
      setText($("status"), "refresh failed: " + (e && e.message ? e.message : e));
    } finally {
      setTimeout(refresh, REFRESH_MS);
    }
  }

  refresh();
})();
