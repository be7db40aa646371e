// weft web page: vanilla JavaScript over the JSON API (/v1) and the
// session events stream. No framework, no build step.
//
// The API token is typed once and kept in sessionStorage; every request,
// the events stream included, sends it as `Authorization: Bearer`. The
// stream is read with fetch() (EventSource cannot send headers), so the
// token never goes into a URL.
"use strict";
(() => {
  const TOKEN_KEY = "weft.token";
  const TERMINAL_SESSION = ["closed", "expired", "aborted", "failed"];
  const TERMINAL_RUN = ["succeeded", "failed", "cancelled", "interrupted", "skipped"];
  const main = document.getElementById("app");
  const page = main.dataset.page;

  // ---- small helpers ---------------------------------------------------
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }
  function svgEl(tag, attrs, ...kids) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") el.textContent = v;
      else el.setAttribute(k, v);
    }
    for (const kid of kids.flat()) if (kid) el.append(kid);
    return el;
  }
  function debounce(fn, ms) {
    let t = null;
    return () => {
      if (t) return;
      t = setTimeout(() => { t = null; fn(); }, ms);
    };
  }
  const enc = encodeURIComponent;
  function fmtDur(ms) {
    if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const s = ms / 1000;
    if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }
  function ago(ts) {
    if (!ts) return "";
    const ms = Date.now() - Date.parse(ts);
    return Number.isNaN(ms) ? ts : `${fmtDur(Math.max(0, ms))} ago`;
  }
  function fmtVal(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(+v.toPrecision(6));
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  function flatten(obj, prefix, out) {
    out = out || {};
    if (obj && typeof obj === "object" && !Array.isArray(obj)) {
      for (const [k, v] of Object.entries(obj)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
    } else if (prefix) {
      out[prefix] = obj;
    }
    return out;
  }
  function statusSpan(s) {
    return h("span", { class: `status status-${s}`, text: s });
  }
  function runStatus(run) {
    return run.status;
  }

  // ---- token and API -----------------------------------------------------
  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
  const tokenForm = document.getElementById("token-form");
  const tokenState = document.getElementById("token-state");
  function showToken(msg) {
    tokenState.textContent = msg || (token() ? "token set" : "");
  }
  tokenForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const v = document.getElementById("token-input").value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    else sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById("token-input").value = "";
    location.reload();
  });
  showToken();

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }
  function authHeaders(extra) {
    const headers = Object.assign({}, extra || {});
    if (token()) headers.Authorization = `Bearer ${token()}`;
    return headers;
  }
  async function api(path, opts) {
    opts = Object.assign({}, opts || {});
    opts.headers = authHeaders(opts.headers);
    if (opts.json !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(opts.json);
      delete opts.json;
    }
    const r = await fetch(path, opts);
    if (r.status === 401) {
      showToken("this server needs its API token");
      document.getElementById("token-input").focus();
      throw new ApiError(401, "the server needs an API token: type it in the box at the top");
    }
    const text = await r.text();
    let body = text;
    try { body = JSON.parse(text); } catch (_) { /* text */ }
    if (!r.ok) {
      const err = body && body.error ? body.error : null;
      let msg = err ? err.message : text;
      if (err && err.problems) msg += ": " + err.problems.join("; ");
      throw new ApiError(r.status, msg);
    }
    return body;
  }

  // The session events stream over fetch, reconnecting with Last-Event-ID;
  // stops when the session is over (404/409). Returns a stop function.
  function follow(path, onEvent, onState) {
    let stopped = false;
    let lastId = null;
    let ctrl = null;
    (async () => {
      while (!stopped) {
        try {
          const headers = authHeaders({ Accept: "text/event-stream" });
          if (lastId) headers["Last-Event-ID"] = lastId;
          ctrl = new AbortController();
          const r = await fetch(path, { headers, signal: ctrl.signal });
          if (r.status === 404 || r.status === 409 || r.status === 401) {
            onState && onState(r.status === 401 ? "needs token" : "over");
            return;
          }
          if (!r.ok) throw new Error(`HTTP ${r.status}`);
          onState && onState("live");
          const reader = r.body.getReader();
          const dec = new TextDecoder();
          let buf = "";
          let ev = { event: "message", data: [] };
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += dec.decode(value, { stream: true });
            let i;
            while ((i = buf.indexOf("\n")) >= 0) {
              let line = buf.slice(0, i);
              buf = buf.slice(i + 1);
              if (line.endsWith("\r")) line = line.slice(0, -1);
              if (line === "") {
                if (ev.data.length) {
                  let d = ev.data.join("\n");
                  try { d = JSON.parse(d); } catch (_) { /* text */ }
                  try { onEvent(ev.event, d); } catch (e) { console.error(e); }
                }
                ev = { event: "message", data: [] };
                continue;
              }
              if (line.startsWith(":")) continue;
              const c = line.indexOf(":");
              const field = c < 0 ? line : line.slice(0, c);
              let v = c < 0 ? "" : line.slice(c + 1);
              if (v.startsWith(" ")) v = v.slice(1);
              if (field === "event") ev.event = v;
              else if (field === "data") ev.data.push(v);
              else if (field === "id") lastId = v;
            }
          }
        } catch (e) {
          if (stopped) return;
        }
        if (stopped) return;
        onState && onState("reconnecting");
        await sleep(1000);
      }
    })();
    return () => {
      stopped = true;
      if (ctrl) ctrl.abort();
    };
  }

  // ---- downloads and tables ---------------------------------------------
  function download(name, type, text) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    const a = h("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }
  function csvCell(v) {
    const s = fmtVal(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  }
  function toCsv(columns, rows) {
    const lines = [columns.map((c) => csvCell(c.label)).join(",")];
    for (const r of rows) lines.push(columns.map((c) => csvCell(c.value(r))).join(","));
    return lines.join("\n") + "\n";
  }

  // A sortable, filterable table with CSV/JSON downloads.
  // columns: [{key, label, value(row), render?(row), num?}]
  function dataTable(name, opts) {
    const state = { sort: opts.sort || null, dir: opts.dir || 1, filter: "", rows: [], columns: opts.columns };
    const wrap = h("div", { class: "data-table", "data-table": name });
    const count = h("span", { class: "muted", role: "status" });
    const filterInput = h("input", {
      type: "search", placeholder: "filter rows", "aria-label": `filter ${name}`,
      oninput: () => { state.filter = filterInput.value.toLowerCase(); render(); },
    });
    const visible = () => {
      let rows = state.rows;
      if (state.filter) {
        rows = rows.filter((r) => state.columns.some((c) => fmtVal(c.value(r)).toLowerCase().includes(state.filter)));
      }
      if (state.sort) {
        const col = state.columns.find((c) => c.key === state.sort);
        if (col) {
          rows = rows.slice().sort((a, b) => {
            const x = col.value(a), y = col.value(b);
            if (x === y) return 0;
            if (x === null || x === undefined || x === "") return 1;
            if (y === null || y === undefined || y === "") return -1;
            return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true })) * state.dir;
          });
        }
      }
      return rows;
    };
    const bar = h("div", { class: "bar" },
      opts.filterable === false ? null : filterInput,
      h("button", { type: "button", onclick: () => download(`${name}.csv`, "text/csv", toCsv(state.columns, visible())) }, "CSV"),
      h("button", { type: "button", onclick: () => download(`${name}.json`, "application/json", JSON.stringify(visible().map((r) => Object.fromEntries(state.columns.map((c) => [c.label, c.value(r)]))), null, 2)) }, "JSON"),
      count);
    const table = h("table", {});
    wrap.append(bar, h("div", { class: "table-wrap" }, table));
    function render() {
      const rows = visible();
      const head = h("tr", {}, state.columns.map((c) => {
        const arrow = state.sort === c.key ? (state.dir > 0 ? " ▲" : " ▼") : "";
        const sortAttr = state.sort === c.key ? (state.dir > 0 ? "ascending" : "descending") : "none";
        if (c.sortable === false) return h("th", { scope: "col" }, c.header ? c.header() : c.label);
        return h("th", { scope: "col", "aria-sort": sortAttr },
          h("button", { type: "button", onclick: () => {
            if (state.sort === c.key) state.dir = -state.dir; else { state.sort = c.key; state.dir = 1; }
            render();
          } }, c.label + arrow));
      }));
      const body = h("tbody", {}, rows.map((r) => h("tr", { class: opts.rowClass ? opts.rowClass(r) : null, "data-id": r.id || null },
        state.columns.map((c) => {
          const content = c.render ? c.render(r) : fmtVal(c.value(r));
          return h("td", { class: c.wrap ? "wrap" : null }, content);
        }))));
      table.replaceChildren(h("thead", {}, head), body);
      count.textContent = rows.length === state.rows.length ? `${rows.length} rows` : `${rows.length} of ${state.rows.length} rows`;
    }
    return {
      el: wrap,
      update(rows, columns) {
        state.rows = rows;
        if (columns) state.columns = columns;
        render();
      },
    };
  }
  function kvTable(name, obj) {
    const rows = Object.entries(obj || {}).map(([k, v]) => ({ id: k, k, v }));
    const t = dataTable(name, { columns: [
      { key: "k", label: "name", value: (r) => r.k },
      { key: "v", label: "value", value: (r) => r.v, wrap: true },
    ] });
    t.update(rows);
    return rows.length ? t.el : h("p", { class: "muted", text: "none" });
  }
  function errorBox(e) {
    return h("p", { class: "error-box", role: "alert", text: String(e && e.message ? e.message : e) });
  }
  function setContent(title, ...kids) {
    document.title = `${title} · weft`;
    main.replaceChildren(h("h1", { text: title }), ...kids);
  }

  // ---- charts ------------------------------------------------------------
  // A scatter plot of points [{x, y, label, cls}] with axes, joined in x order.
  function scatter(points, xLabel, yLabel) {
    const W = 560, H = 300, L = 60, B = 40, T = 12, R = 16;
    const svg = svgEl("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": `${yLabel} against ${xLabel}`, style: "max-width:640px" });
    if (!points.length) {
      svg.append(svgEl("text", { x: 20, y: 40, text: "no points: pick a parameter and a metric that runs have" }));
      return svg;
    }
    const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
    let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    if (y0 === y1) { y0 -= 1; y1 += 1; }
    const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - B - T);
    svg.append(svgEl("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    svg.append(svgEl("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
    for (let i = 0; i <= 4; i++) {
      const xv = x0 + ((x1 - x0) * i) / 4, yv = y0 + ((y1 - y0) * i) / 4;
      svg.append(svgEl("text", { x: sx(xv), y: H - B + 14, "text-anchor": "middle", text: fmtVal(+xv.toPrecision(4)) }));
      svg.append(svgEl("text", { x: L - 4, y: sy(yv) + 4, "text-anchor": "end", text: fmtVal(+yv.toPrecision(4)) }));
    }
    svg.append(svgEl("text", { x: (L + W) / 2, y: H - 6, "text-anchor": "middle", text: xLabel }));
    svg.append(svgEl("text", { x: 12, y: T + 2, text: yLabel }));
    const sorted = points.slice().sort((a, b) => a.x - b.x);
    svg.append(svgEl("polyline", { fill: "none", stroke: "#9db3e0", points: sorted.map((p) => `${sx(p.x)},${sy(p.y)}`).join(" ") }));
    for (const p of points) {
      svg.append(svgEl("circle", { class: `pt ${p.cls || ""}`, cx: sx(p.x), cy: sy(p.y), r: 4 }, svgEl("title", { text: p.label })));
    }
    return svg;
  }
  // Parallel coordinates: one vertical axis per key, one line per row,
  // coloured by the last axis (low blue, high red); rows [{values, label, failed}].
  function parallel(keys, rows) {
    const W = 760, H = 280, T = 24, B = 30, L = 50, R = 50;
    const svg = svgEl("svg", { class: "chart parallel", viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": `parallel coordinates of ${keys.join(", ")}`, style: "max-width:860px" });
    const ranges = keys.map((_, i) => {
      const vs = rows.map((r) => r.values[i]).filter((v) => typeof v === "number");
      let lo = Math.min(...vs), hi = Math.max(...vs);
      if (!(hi > lo)) { lo -= 1; hi += 1; }
      return [lo, hi];
    });
    const ax = (i) => L + (i * (W - L - R)) / Math.max(1, keys.length - 1);
    const ay = (i, v) => H - B - ((v - ranges[i][0]) / (ranges[i][1] - ranges[i][0])) * (H - B - T);
    keys.forEach((k, i) => {
      svg.append(svgEl("line", { class: "axis", x1: ax(i), y1: T, x2: ax(i), y2: H - B }));
      svg.append(svgEl("text", { x: ax(i), y: H - 10, "text-anchor": "middle", text: k }));
      svg.append(svgEl("text", { x: ax(i) + 4, y: T - 8, text: fmtVal(+ranges[i][1].toPrecision(4)) }));
      svg.append(svgEl("text", { x: ax(i) + 4, y: H - B + 12, text: fmtVal(+ranges[i][0].toPrecision(4)) }));
    });
    const last = keys.length - 1;
    for (const r of rows) {
      if (!r.values.every((v) => typeof v === "number" && Number.isFinite(v))) continue;
      const t = (r.values[last] - ranges[last][0]) / (ranges[last][1] - ranges[last][0]);
      const colour = r.failed ? "#b00020" : `rgb(${Math.round(40 + 180 * t)},${Math.round(80 - 40 * t)},${Math.round(200 - 160 * t)})`;
      svg.append(svgEl("polyline", { class: "line", fill: "none", stroke: colour, "stroke-width": 2, points: r.values.map((v, i) => `${ax(i)},${ay(i, v)}`).join(" ") },
        svgEl("title", { text: r.label })));
    }
    return svg;
  }
  // A Gantt chart of node timings [{node, start, duration_ms, failed}].
  function gantt(items, runStart) {
    const rowH = 18, L = 200, W = 900;
    const t0 = runStart || Math.min(...items.map((i) => i.start));
    const end = Math.max(...items.map((i) => i.start + i.duration_ms - t0), 1);
    const H = items.length * rowH + 24;
    const svg = svgEl("svg", { class: "gantt", viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "node timeline", style: "max-width:1100px" });
    items.forEach((it, k) => {
      const y = k * rowH + 4;
      const x = L + ((it.start - t0) / end) * (W - L - 10);
      const w = Math.max(2, (it.duration_ms / end) * (W - L - 10));
      svg.append(svgEl("text", { x: 4, y: y + 12, text: it.node.length > 30 ? it.node.slice(0, 29) + "…" : it.node }));
      svg.append(svgEl("rect", { class: `bar ${it.failed ? "failed" : ""}`, "data-node": it.node, x, y, width: w, height: rowH - 5, rx: 2 },
        svgEl("title", { text: `${it.node}: ${fmtDur(it.duration_ms)}${it.failed ? " (failed)" : ""}` })));
    });
    svg.append(svgEl("text", { x: L, y: H - 4, text: "0" }));
    svg.append(svgEl("text", { x: W - 10, y: H - 4, "text-anchor": "end", text: fmtDur(end) }));
    return svg;
  }

  // ---- Plotly figures and saved datasets --------------------------------
  // A Plotly figure ({data, layout}) drawn here as SVG: bar (vertical or
  // `orientation: "h"`, grouped), scatter (`mode` lines, markers or both)
  // and histogram traces, with titles, axes and a legend. plotly.js is not
  // loaded: nothing comes from the internet, the page works offline.
  const PALETTE = ["#636efa", "#d9412a", "#00875f", "#8e44c9", "#c96a00", "#1b86a8", "#c22f63", "#5d7a1f"];
  function plotlyArray(v) {
    if (Array.isArray(v)) return v;
    // Plotly 6 writes numeric arrays as {dtype, bdata: base64}.
    if (v && typeof v === "object" && typeof v.bdata === "string") {
      const T = { f8: Float64Array, f4: Float32Array, i4: Int32Array, u4: Uint32Array, i2: Int16Array, u2: Uint16Array, i1: Int8Array, u1: Uint8Array }[v.dtype];
      if (!T) return [];
      const bin = atob(v.bdata);
      const buf = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) buf[i] = bin.charCodeAt(i);
      return Array.from(new T(buf.buffer, 0, Math.floor(buf.length / T.BYTES_PER_ELEMENT)));
    }
    return [];
  }
  function plotlyText(t) {
    if (t === null || t === undefined) return "";
    if (typeof t === "string" || typeof t === "number") return String(t);
    return t.text ? String(t.text) : "";
  }
  function niceTicks(lo, hi, n) {
    if (!(hi > lo)) { lo -= 1; hi += 1; }
    const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    const first = Math.floor(lo / step + 1e-9) * step, last = Math.ceil(hi / step - 1e-9) * step;
    for (let v = first; v <= last + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }
  function plotlySvg(fig) {
    const data = fig && Array.isArray(fig.data) ? fig.data : [];
    const layout = (fig && fig.layout) || {};
    const title = plotlyText(layout.title);
    const xTitle = plotlyText(layout.xaxis && layout.xaxis.title);
    const yTitle = plotlyText(layout.yaxis && layout.yaxis.title);
    const traces = [], skipped = [];
    data.forEach((tr, i) => {
      const type = tr.type || "scatter";
      const color = tr.marker && typeof tr.marker.color === "string" ? tr.marker.color : PALETTE[i % PALETTE.length];
      const name = tr.name !== undefined && tr.name !== null ? String(tr.name) : `trace ${i}`;
      if (type === "bar") {
        const horiz = tr.orientation === "h";
        const x = plotlyArray(tr.x), y = plotlyArray(tr.y);
        const vals = (horiz ? x : y).map(Number);
        let cats = horiz ? y : x;
        if (!cats.length) cats = vals.map((_, j) => j);
        traces.push({ kind: "bar", horiz, cats: cats.map(String), vals, color, name });
      } else if (type === "histogram") {
        const xs = plotlyArray(tr.x).map(Number).filter(Number.isFinite);
        if (!xs.length) return;
        const n = Math.max(1, Math.min(50, tr.nbinsx || Math.ceil(Math.sqrt(xs.length))));
        const lo = Math.min(...xs), hi = Math.max(...xs), w = (hi - lo) / n || 1;
        const counts = new Array(n).fill(0);
        for (const v of xs) counts[Math.min(n - 1, Math.floor((v - lo) / w))] += 1;
        traces.push({ kind: "bar", horiz: false, cats: counts.map((_, j) => fmtVal(+(lo + w * (j + 0.5)).toPrecision(4))), vals: counts, color, name, gapless: true });
      } else if (type === "scatter" || type === "scattergl") {
        const ys = plotlyArray(tr.y).map(Number);
        let xs = plotlyArray(tr.x);
        if (!xs.length) xs = ys.map((_, j) => j);
        const mode = tr.mode || (ys.length < 20 ? "lines+markers" : "lines");
        traces.push({ kind: "xy", xs, ys, lines: mode.includes("lines"), markers: mode.includes("markers"), color, name });
      } else {
        skipped.push(type);
      }
    });
    const W = 520, H = 320, L = 58, R = 14, T = title ? 34 : 14, B = xTitle ? 50 : 32;
    const svg = svgEl("svg", { class: "chart plotly", viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img",
      "aria-label": title || "chart", style: "max-width:640px" });
    if (title) svg.append(svgEl("text", { class: "title", x: W / 2, y: 21, "text-anchor": "middle", text: title }));
    if (!traces.length) {
      svg.append(svgEl("text", { x: 20, y: 60, text: skipped.length ? `trace types not drawn here: ${[...new Set(skipped)].join(", ")}` : "the figure has no data" }));
      return svg;
    }
    const horizontal = traces.every((t) => t.kind === "bar" && t.horiz);
    // The category axis (bars, or text x values) or a numeric one.
    const categorical = horizontal || traces.some((t) => t.kind === "bar") || traces.some((t) => t.kind === "xy" && t.xs.some((v) => typeof v === "string" && Number.isNaN(Number(v))));
    const cats = [];
    if (categorical) for (const t of traces) for (const c of (t.kind === "bar" ? t.cats : t.xs.map(String))) if (!cats.includes(c)) cats.push(c);
    const values = traces.flatMap((t) => (t.kind === "bar" ? t.vals : t.ys)).filter(Number.isFinite);
    let v0 = Math.min(...values), v1 = Math.max(...values);
    if (traces.some((t) => t.kind === "bar")) { v0 = Math.min(0, v0); v1 = Math.max(0, v1); }
    const vt = niceTicks(v0, v1, 5);
    v0 = Math.min(v0, vt[0]); v1 = Math.max(v1, vt[vt.length - 1]);
    if (v0 === v1) v1 = v0 + 1;
    let x0 = 0, x1 = 1;
    if (!categorical) {
      const xs = traces.flatMap((t) => t.xs.map(Number)).filter(Number.isFinite);
      x0 = Math.min(...xs); x1 = Math.max(...xs);
      if (x0 === x1) { x0 -= 1; x1 += 1; }
      const pad = (x1 - x0) * 0.03;
      x0 -= pad; x1 += pad;
    }
    const pw = W - L - R, ph = H - T - B;
    // Value → pixel along the value axis, category → band along the other.
    const val = (v) => (horizontal ? L + ((v - v0) / (v1 - v0)) * pw : T + ph - ((v - v0) / (v1 - v0)) * ph);
    const band = (horizontal ? ph : pw) / Math.max(1, cats.length);
    const catPos = (c) => (horizontal ? T : L) + band * (cats.indexOf(c) + 0.5);
    const xPos = (x) => (categorical ? catPos(String(x)) : L + ((Number(x) - x0) / (x1 - x0)) * pw);
    svg.append(svgEl("line", { class: "axis", x1: L, y1: T + ph, x2: L + pw, y2: T + ph }));
    svg.append(svgEl("line", { class: "axis", x1: L, y1: T, x2: L, y2: T + ph }));
    for (const v of vt) {
      if (horizontal) {
        svg.append(svgEl("line", { class: "grid", x1: val(v), y1: T, x2: val(v), y2: T + ph }));
        svg.append(svgEl("text", { x: val(v), y: T + ph + 17, "text-anchor": "middle", text: fmtVal(v) }));
      } else {
        svg.append(svgEl("line", { class: "grid", x1: L, y1: val(v), x2: L + pw, y2: val(v) }));
        svg.append(svgEl("text", { x: L - 4, y: val(v) + 4, "text-anchor": "end", text: fmtVal(v) }));
      }
    }
    const every = Math.max(1, Math.ceil(cats.length / (horizontal ? 16 : 12)));
    if (categorical) {
      cats.forEach((c, i) => {
        if (i % every) return;
        const label = c.length > 14 ? `${c.slice(0, 13)}…` : c;
        svg.append(horizontal
          ? svgEl("text", { x: L - 4, y: catPos(c) + 4, "text-anchor": "end", text: label })
          : svgEl("text", { x: catPos(c), y: T + ph + 17, "text-anchor": "middle", text: label }));
      });
    } else {
      for (const x of niceTicks(x0, x1, 6)) {
        if (x < x0 || x > x1) continue;
        svg.append(svgEl("text", { x: xPos(x), y: T + ph + 17, "text-anchor": "middle", text: fmtVal(x) }));
      }
    }
    if (xTitle) svg.append(svgEl("text", { x: L + pw / 2, y: H - 8, "text-anchor": "middle", text: xTitle }));
    if (yTitle) svg.append(svgEl("text", { x: 14, y: T + ph / 2, "text-anchor": "middle", transform: `rotate(-90 14 ${T + ph / 2})`, text: yTitle }));
    const bars = traces.filter((t) => t.kind === "bar");
    bars.forEach((t, k) => {
      const slot = (t.gapless ? band : band * 0.8) / bars.length;
      t.cats.forEach((c, j) => {
        const v = t.vals[j];
        if (!Number.isFinite(v)) return;
        const start = catPos(c) - (slot * bars.length) / 2 + slot * k;
        const a = val(Math.min(0, v)), b = val(Math.max(0, v));
        const rect = horizontal
          ? { x: a, y: start, width: Math.max(0.5, b - a), height: slot }
          : { x: start, y: b, width: slot, height: Math.max(0.5, a - b) };
        svg.append(svgEl("rect", Object.assign({ class: "bar", fill: t.color, "data-trace": k }, rect), svgEl("title", { text: `${t.name}: ${c} = ${fmtVal(v)}` })));
      });
    });
    traces.filter((t) => t.kind === "xy").forEach((t, k) => {
      const pts = t.xs.map((x, j) => [xPos(x), val(t.ys[j]), x, t.ys[j]]).filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
      if (t.lines) svg.append(svgEl("polyline", { class: "line", fill: "none", stroke: t.color, "stroke-width": 2, points: pts.map((p) => `${p[0]},${p[1]}`).join(" ") }));
      if (t.markers) for (const p of pts) svg.append(svgEl("circle", { class: "point", cx: p[0], cy: p[1], r: 4, fill: t.color, "data-trace": k }, svgEl("title", { text: `${t.name}: (${fmtVal(p[2])}, ${fmtVal(p[3])})` })));
    });
    if (traces.length > 1) {
      traces.forEach((t, i) => {
        const y = T + 6 + i * 16;
        svg.append(svgEl("rect", { x: W - R - 110, y: y - 9, width: 10, height: 10, fill: t.color }));
        svg.append(svgEl("text", { x: W - R - 96, y, text: t.name.length > 16 ? `${t.name.slice(0, 15)}…` : t.name }));
      });
    }
    svg.dataset.bars = String(svg.querySelectorAll("rect.bar").length);
    svg.dataset.points = String(svg.querySelectorAll("circle.point").length);
    return svg;
  }
  function fmtSize(n) {
    if (n === null || n === undefined) return "";
    if (n < 1024) return `${n} B`;
    if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / (1 << 20)).toFixed(1)} MiB`;
  }
  async function fetchDataset(d) {
    const r = await fetch(d.url, { headers: authHeaders() });
    if (!r.ok) {
      let m = `HTTP ${r.status}`;
      try { const b = await r.json(); if (b.error) m = b.error.message; } catch (_) { /* not JSON */ }
      throw new Error(`${d.name}: ${m}`);
    }
    return r;
  }
  // A link that downloads the dataset's file with the token (a plain link
  // could not send it).
  function datasetLink(d) {
    return h("a", { href: d.url, class: "download", "data-dataset": d.name, onclick: async (e) => {
      e.preventDefault();
      try {
        const blob = await (await fetchDataset(d)).blob();
        const url = URL.createObjectURL(blob);
        const ext = (d.content_type.match(/(png|svg|json|csv|parquet|sheet|plain)/) || [""])[0];
        const a = h("a", { href: url, download: d.name + ({ png: ".png", svg: ".svg", json: ".json", csv: ".csv", parquet: ".parquet", sheet: ".xlsx", plain: ".txt" }[ext] || "") });
        document.body.append(a); a.click(); a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 1000);
      } catch (err) { e.target.after(errorBox(err)); }
    } }, "download");
  }
  function datasetNote(d) {
    return [d.version ? `version ${d.version}` : null, d.pinned ? null : "current file (not pinned to this run)", fmtSize(d.size)].filter(Boolean).join(" · ");
  }
  // One chart: an image (PNG/SVG, as a blob: URL, so the token is sent and
  // an SVG's scripts never run) or a Plotly figure drawn as SVG.
  function chartFigure(d) {
    const body = h("div", { class: "chart-body" }, h("span", { class: "muted", text: "loading…" }));
    const fig = h("figure", { class: "chart-figure", "data-dataset": d.name, "data-chart": d.chart },
      body, h("figcaption", {}, h("strong", { text: d.name }), ` ${d.type} · ${datasetNote(d)} · `, datasetLink(d)));
    (async () => {
      try {
        const r = await fetchDataset(d);
        if (d.chart === "image") {
          const url = URL.createObjectURL(await r.blob());
          const img = h("img", { src: url, alt: `chart ${d.name}`, class: "chart-image" });
          body.replaceChildren(img);
        } else {
          body.replaceChildren(plotlySvg(await r.json()));
        }
        fig.dataset.drawn = "true";
      } catch (e) { body.replaceChildren(errorBox(e)); fig.dataset.drawn = "error"; }
    })();
    return fig;
  }

  // ---- pages -------------------------------------------------------------
  async function sessionsPage() {
    const stateSel = h("select", { id: "state-filter", "aria-label": "filter by state" },
      ["all", "live", "pending", "ready", "busy", "idle", "input_required", "draining", ...TERMINAL_SESSION].map((s) => h("option", { value: s, text: s })));
    const live = h("span", { id: "live-state", class: "muted", role: "status" });
    const msg = h("div", { role: "alert" });
    const table = dataTable("sessions", { sort: "created", dir: -1, columns: [
      { key: "id", label: "session", value: (s) => s.id, render: (s) => h("a", { href: `/ui/sessions/${enc(s.id)}`, text: s.key ? `${s.id} (${s.key})` : s.id }) },
      { key: "state", label: "state", value: (s) => s.state, render: (s) => statusSpan(s.state) },
      { key: "created", label: "age", value: (s) => s.created_at, render: (s) => ago(s.created_at).replace(" ago", "") },
      { key: "heartbeat", label: "last heartbeat", value: (s) => s.last_heartbeat_at, render: (s) => ago(s.last_heartbeat_at) },
      { key: "runs", label: "runs by status", value: (s) => Object.entries(s.runs || {}).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(", ") },
      { key: "reason", label: "termination reason", value: (s) => (s.termination_reason ? (s.termination_reason.reason || s.termination_reason.kind || JSON.stringify(s.termination_reason)) : ""), wrap: true },
      { key: "env", label: "env", value: (s) => s.env },
      { key: "project", label: "project", value: (s) => s.project, wrap: true },
    ] });
    const envIn = h("input", { id: "new-env", placeholder: "env (default)", "aria-label": "env" });
    const concIn = h("input", { id: "new-concurrency", type: "number", min: 1, placeholder: "max concurrency", "aria-label": "max concurrency" });
    const newForm = h("form", { class: "bar panel", onsubmit: async (e) => {
      e.preventDefault();
      const body = {};
      if (envIn.value) body.env = envIn.value;
      if (concIn.value) body.max_concurrency = +concIn.value;
      try {
        const s = await api("/v1/sessions", { method: "POST", json: body });
        location.href = `/ui/sessions/${enc(s.id)}`;
      } catch (err) { msg.replaceChildren(errorBox(err)); }
    } }, h("strong", { text: "New session" }), envIn, concIn, h("button", { type: "submit", class: "primary" }, "Create"));
    setContent("Sessions", h("div", { class: "bar" }, h("label", { for: "state-filter" }, "State "), stateSel, live), msg, table.el, newForm);
    const streams = new Map();
    async function load() {
      const v = stateSel.value;
      const q = v === "all" ? "?all=true" : v === "live" ? "" : `?state=${enc(v)}`;
      try {
        const { sessions } = await api(`/v1/sessions${q}`);
        table.update(sessions);
        msg.replaceChildren();
        for (const s of sessions) {
          if (!TERMINAL_SESSION.includes(s.state) && !streams.has(s.id) && streams.size < 20) {
            streams.set(s.id, follow(`/v1/sessions/${enc(s.id)}/events`, () => reload(), (st) => {
              live.textContent = `events: ${st}`;
              if (st === "over") { streams.delete(s.id); reload(); }
            }));
          }
        }
      } catch (e) { msg.replaceChildren(errorBox(e)); }
    }
    const reload = debounce(load, 300);
    stateSel.addEventListener("change", load);
    await load();
    setInterval(load, 10000);
  }

  async function sessionPage() {
    const id = main.dataset.session;
    const info = h("div", { class: "panel", id: "session-info" });
    const msg = h("div", { role: "alert" });
    const live = h("span", { id: "live-state", class: "muted", role: "status" });
    const progress = h("progress", { id: "progress", max: 1, value: 0 });
    const progressText = h("span", { id: "progress-text" });
    const runCount = h("span", { id: "run-count", text: "0" });
    const chips = h("div", { class: "chips", id: "metric-chips" });
    const xSel = h("select", { id: "plot-x", "aria-label": "plot x: parameter" });
    const ySel = h("select", { id: "plot-y", "aria-label": "plot y: metric" });
    const plot = h("div", { id: "plot" });
    const compareBtn = h("button", { type: "button", id: "compare", disabled: true }, "Compare selected");
    const pipelinesEl = h("div", { id: "pipelines", class: "bar" });
    const pipeSel = h("select", { id: "dispatch-pipeline", "aria-label": "pipeline" });
    const paramsIn = h("textarea", { id: "dispatch-params", "aria-label": "runtime params (JSON)", placeholder: '{"model_options": {"test_size": 0.3}}' });
    const sweepIn = h("textarea", { id: "dispatch-sweep", "aria-label": "sweep overrides, one per line", placeholder: "start=1,2,3" });
    const selected = new Set();
    let runs = [], session = null, chosenMetrics = null;

    const table = dataTable("runs", { sort: "index", columns: [] });
    compareBtn.addEventListener("click", () => { location.href = `/ui/compare?runs=${[...selected].map(enc).join(",")}`; });
    const dispatchForm = h("form", { class: "panel", id: "dispatch-form", onsubmit: async (e) => {
      e.preventDefault();
      let params = {};
      try { params = paramsIn.value.trim() ? JSON.parse(paramsIn.value) : {}; } catch (err) { msg.replaceChildren(errorBox(`params are not JSON: ${err.message}`)); return; }
      const spec = { runtime_params: params };
      if (pipeSel.value) spec.pipeline_names = [pipeSel.value];
      const sweep = sweepIn.value.split("\n").map((s) => s.trim()).filter(Boolean);
      try {
        const r = await api(`/v1/sessions/${enc(id)}/runs`, { method: "POST", json: { spec, sweep } });
        msg.replaceChildren(h("p", { class: "panel", role: "status", text: `queued ${r.run_ids.length} run(s)` }));
        reload();
      } catch (err) { msg.replaceChildren(errorBox(err)); }
    } },
    h("h2", { text: "Dispatch runs" }),
    h("div", { class: "grid" },
      h("label", {}, "Pipeline ", pipeSel),
      h("label", {}, "Runtime params (JSON)", paramsIn),
      h("label", {}, "Sweep (one override per line, `weft multirun` grammar)", sweepIn)),
    h("button", { type: "submit", class: "primary" }, "Dispatch"));

    setContent(`Session ${id}`, info, msg,
      h("div", { class: "bar" }, h("strong", {}, "Runs: ", runCount), progress, progressText, live),
      pipelinesEl,
      h("h2", { text: "Runs" }),
      h("div", { class: "bar" }, h("span", { text: "Metric columns:" }), chips),
      h("div", { class: "bar" }, compareBtn),
      table.el,
      h("h2", { text: "Plot" }),
      h("div", { class: "bar" }, h("label", {}, "x ", xSel), h("label", {}, "y ", ySel)),
      plot,
      dispatchForm);

    function varying() {
      const flat = runs.map((r) => flatten(r.runtime_params || {}));
      const keys = new Set(flat.flatMap((f) => Object.keys(f)));
      return [...keys].filter((k) => new Set(flat.map((f) => JSON.stringify(f[k]))).size > 1).sort();
    }
    function metricNames() {
      return [...new Set(runs.flatMap((r) => Object.keys(r.metrics || {})))].sort();
    }
    function renderInfo() {
      if (!session) return;
      const s = session;
      const over = TERMINAL_SESSION.includes(s.state);
      const reason = s.termination_reason ? JSON.stringify(s.termination_reason) : "";
      info.replaceChildren(
        h("div", { class: "bar" },
          h("span", {}, "State ", statusSpan(s.state)),
          h("span", { text: `phase ${s.phase}` }),
          h("span", { text: `created ${ago(s.created_at)}` }),
          h("span", { text: `heartbeat ${ago(s.last_heartbeat_at)}` }),
          h("span", { text: `env ${s.env || "base"}` }),
          h("span", { text: `max concurrency ${s.max_concurrency}` }),
          reason ? h("span", { text: `termination: ${reason}` }) : null),
        h("div", { class: "bar muted", text: `project ${s.project || ""}` }),
        over ? null : h("div", { class: "bar" },
          h("button", { type: "button", onclick: () => act("POST", `/v1/sessions/${enc(id)}/heartbeat`) }, "Heartbeat"),
          h("button", { type: "button", class: "danger", id: "terminate", onclick: () => confirm("Terminate this session after its runs (drain)?") && act("DELETE", `/v1/sessions/${enc(id)}?mode=drain`) }, "Terminate (drain)"),
          h("button", { type: "button", class: "danger", onclick: () => confirm("Terminate and cancel its runs?") && act("DELETE", `/v1/sessions/${enc(id)}?mode=cancel`) }, "Terminate (cancel runs)")));
    }
    async function act(method, path) {
      try { await api(path, { method }); reload(); } catch (e) { msg.replaceChildren(errorBox(e)); }
    }
    function renderRuns() {
      const vary = varying();
      const metrics = metricNames();
      if (chosenMetrics === null && metrics.length) chosenMetrics = new Set(metrics.slice(0, 4));
      const chosen = chosenMetrics || new Set();
      chips.replaceChildren(...(metrics.length ? metrics.map((m) => h("label", {},
        h("input", { type: "checkbox", checked: chosen.has(m), onchange: (e) => { if (e.target.checked) chosen.add(m); else chosen.delete(m); renderRuns(); } }), ` ${m}`)) : [h("span", { class: "muted", text: "no metrics yet" })]));
      const columns = [
        { key: "sel", label: "select", sortable: false, value: (r) => selected.has(r.id), render: (r) => h("input", { type: "checkbox", "aria-label": `select run ${r.id}`, checked: selected.has(r.id), onchange: (e) => {
          if (e.target.checked) selected.add(r.id); else selected.delete(r.id);
          compareBtn.disabled = selected.size < 2;
        } }) },
        { key: "index", label: "#", value: (r) => r.run_index },
        { key: "id", label: "run", value: (r) => r.id, render: (r) => h("a", { href: `/ui/runs/${enc(r.id)}`, text: r.id }) },
        { key: "status", label: "status", value: runStatus, render: (r) => statusSpan(r.status) },
        { key: "duration", label: "duration", value: (r) => r.duration_ms, render: (r) => fmtDur(r.duration_ms) },
        ...vary.map((k) => ({ key: `p:${k}`, label: k, value: (r) => flatten(r.runtime_params || {})[k] })),
        ...[...chosen].map((m) => ({ key: `m:${m}`, label: m, value: (r) => (r.metrics || {})[m] })),
        { key: "error", label: "failed node", value: (r) => (r.error ? r.error.node || r.error.kind : "") },
      ];
      table.update(runs, columns);
      runCount.textContent = String(runs.length);
      const done = runs.filter((r) => TERMINAL_RUN.includes(r.status));
      runCount.dataset.finished = String(done.length);
      progress.max = Math.max(1, runs.length);
      progress.value = done.length;
      const starts = runs.map((r) => Date.parse(r.start_time)).filter((t) => !Number.isNaN(t));
      let eta = "";
      if (done.length && done.length < runs.length && starts.length) {
        const elapsed = Date.now() - Math.min(...starts);
        eta = `, ETA ${fmtDur((elapsed / done.length) * (runs.length - done.length))}`;
      }
      const failed = runs.filter((r) => r.status === "failed").length;
      progressText.textContent = `${done.length} / ${runs.length} finished${failed ? `, ${failed} failed` : ""}${eta}`;
      // Plot selectors: x = a varying numeric param (or the run index), y = a metric or the duration.
      const keepX = xSel.value, keepY = ySel.value;
      const xs = [...vary, "run index"];
      xSel.replaceChildren(...xs.map((k) => h("option", { value: k, text: k, selected: k === keepX })));
      const ys = [...metrics, "duration_ms"];
      ySel.replaceChildren(...ys.map((k) => h("option", { value: k, text: k, selected: k === keepY })));
      renderPlot();
    }
    function renderPlot() {
      const xk = xSel.value, yk = ySel.value;
      const points = [];
      for (const r of runs) {
        const x = xk === "run index" ? r.run_index : flatten(r.runtime_params || {})[xk];
        const y = yk === "duration_ms" ? r.duration_ms : (r.metrics || {})[yk];
        if (typeof x === "number" && typeof y === "number" && Number.isFinite(y)) {
          points.push({ x, y, label: `${r.id}: ${xk}=${fmtVal(x)}, ${yk}=${fmtVal(y)}`, cls: r.status === "failed" ? "failed" : "" });
        }
      }
      plot.replaceChildren(scatter(points, xk, yk));
      // Several numeric parameters vary: parallel coordinates too.
      const numeric = varying().filter((k) => runs.every((r) => typeof flatten(r.runtime_params || {})[k] === "number"));
      if (numeric.length >= 2) {
        const keys = [...numeric, yk];
        const rows = runs.map((r) => {
          const f = flatten(r.runtime_params || {});
          const y = yk === "duration_ms" ? r.duration_ms : (r.metrics || {})[yk];
          return { values: [...numeric.map((k) => f[k]), y], failed: r.status === "failed", label: `${r.id}: ${keys.map((k, i) => `${k}=${fmtVal(i < numeric.length ? f[k] : y)}`).join(", ")}` };
        });
        plot.append(h("h3", { text: "Parallel coordinates" }), h("div", { id: "parallel" }, parallel(keys, rows)));
      }
    }
    xSel.addEventListener("change", renderPlot);
    ySel.addEventListener("change", renderPlot);

    async function loadRuns() {
      const all = [];
      let cursor = null;
      for (let page = 0; page < 10; page++) {
        const q = `limit=1000${cursor ? `&cursor=${enc(cursor)}` : ""}`;
        const r = await api(`/v1/sessions/${enc(id)}/runs?${q}`);
        all.push(...r.runs);
        if (!r.next_cursor) break;
        cursor = r.next_cursor;
      }
      return all;
    }
    async function load() {
      try {
        const [s, rs] = await Promise.all([api(`/v1/sessions/${enc(id)}`), loadRuns()]);
        session = s;
        runs = rs;
        renderInfo();
        renderRuns();
      } catch (e) { msg.replaceChildren(errorBox(e)); }
    }
    const reload = debounce(load, 250);
    await load();
    try {
      const { pipelines } = await api(`/v1/sessions/${enc(id)}/pipelines`);
      pipelinesEl.replaceChildren(h("strong", { text: "Pipelines:" }), ...pipelines.map((p) => h("a", { href: `/ui/sessions/${enc(id)}/pipelines/${enc(p.name)}`, text: `${p.name} (${p.nodes})` })));
      pipeSel.replaceChildren(...pipelines.map((p) => h("option", { value: p.name, text: p.name, selected: p.name === "__default__" })));
    } catch (e) {
      pipelinesEl.replaceChildren(h("span", { class: "muted", text: `pipelines: ${e.message}` }));
      dispatchForm.hidden = true;
    }
    follow(`/v1/sessions/${enc(id)}/events`, (kind, data) => {
      if (kind === "hello") { session = data; renderInfo(); return; }
      reload();
    }, (st) => { live.textContent = `live: ${st}`; if (st === "over") reload(); });
  }

  async function runPage() {
    const id = main.dataset.run;
    const msg = h("div", { role: "alert" });
    const logEl = h("pre", { class: "log", id: "log", tabindex: "0", "aria-label": "run log" });
    const datasetsEl = h("section", { id: "datasets", "aria-live": "polite" }, h("p", { class: "muted", text: "shown when the run has finished" }));
    let run, pipeline = null, logFollowing = false, stop = null, datasetsShown = false;
    // The run's charts inline, and its other saved files with a download link.
    async function loadDatasets() {
      datasetsShown = true;
      let list;
      try { list = (await api(`/v1/runs/${enc(id)}/datasets`)).datasets; } catch (e) { datasetsEl.replaceChildren(errorBox(e)); return; }
      const charts = list.filter((d) => d.chart && d.available);
      const others = list.filter((d) => !charts.includes(d));
      const table = dataTable("datasets", { columns: [
        { key: "name", label: "dataset", value: (d) => d.name },
        { key: "type", label: "type", value: (d) => d.type },
        { key: "version", label: "version", value: (d) => d.version || (d.pinned ? "run-scoped" : "current file") },
        { key: "size", label: "size", value: (d) => d.size, render: (d) => fmtSize(d.size) },
        { key: "file", label: "file", value: (d) => d.content_type, render: (d) => (d.available ? datasetLink(d) : h("span", { class: "muted", text: "gone" })), sortable: false },
      ] });
      table.update(others.map((d) => Object.assign({ id: d.name }, d)));
      datasetsEl.replaceChildren(
        charts.length ? h("div", { class: "charts", id: "charts" }, charts.map(chartFigure)) : h("p", { class: "muted", text: "no charts" }),
        h("h3", { text: "Other saved datasets" }),
        others.length ? table.el : h("p", { class: "muted", id: "no-other-datasets", text: "none" }));
    }
    async function load() {
      try {
        run = await api(`/v1/runs/${enc(id)}`);
      } catch (e) { setContent(`Run ${id}`, errorBox(e)); return; }
      const pname = (run.pipeline_names && run.pipeline_names[0]) || "__default__";
      if (!pipeline) {
        try { pipeline = await api(`/v1/sessions/${enc(run.session_id)}/pipelines/${enc(pname)}`); } catch (_) { pipeline = null; }
      }
      render(pname);
      if (!logFollowing) loadLog();
      if (!datasetsShown && TERMINAL_RUN.includes(run.status)) loadDatasets();
      if (TERMINAL_RUN.includes(run.status) && stop) { stop(); stop = null; }
    }
    function render(pname) {
      const failedNode = run.error ? run.error.node : null;
      const timings = run.node_timings || [];
      const byNode = Object.fromEntries(timings.map((t) => [t.node, t]));
      const nodeNames = pipeline ? pipeline.nodes.map((n) => n.name) : [...timings.map((t) => t.node), ...(failedNode && !byNode[failedNode] ? [failedNode] : [])];
      const nodeRows = nodeNames.map((n) => ({
        id: n, node: n,
        state: n === failedNode ? "failed" : byNode[n] ? "succeeded" : (TERMINAL_RUN.includes(run.status) ? "not run" : "pending"),
        duration_ms: byNode[n] ? byNode[n].duration_ms : null,
        rows_in: byNode[n] ? byNode[n].rows_in : null,
        rows_out: byNode[n] ? byNode[n].rows_out : null,
      }));
      const nodes = dataTable("nodes", { columns: [
        { key: "node", label: "node", value: (r) => r.node },
        { key: "state", label: "state", value: (r) => r.state, render: (r) => h("span", { class: `status status-${r.state === "not run" ? "cancelled" : r.state}`, text: r.state }) },
        { key: "duration", label: "duration", value: (r) => r.duration_ms, render: (r) => fmtDur(r.duration_ms) },
        { key: "rows_in", label: "rows in", value: (r) => r.rows_in },
        { key: "rows_out", label: "rows out", value: (r) => r.rows_out },
      ], rowClass: (r) => `node-row ${r.state === "failed" ? "failed" : ""}` });
      nodes.update(nodeRows);
      const runStart = Date.parse(run.start_time);
      const items = timings.map((t) => ({ node: t.node, start: Date.parse(t.start), duration_ms: t.duration_ms, failed: false }));
      if (failedNode && !byNode[failedNode]) {
        const lastEnd = items.length ? Math.max(...items.map((i) => i.start + i.duration_ms)) : runStart;
        const end = Date.parse(run.end_time) || lastEnd;
        items.push({ node: failedNode, start: lastEnd || runStart, duration_ms: Math.max(1, end - lastEnd), failed: true });
      }
      const err = run.error ? h("div", { class: "error-box", id: "run-error", role: "alert" },
        h("div", {}, h("strong", { text: `${run.error.kind} error` }), failedNode ? [" in node ", h("span", { class: "node-name", id: "error-node", text: failedNode })] : null),
        h("p", { text: run.error.message }),
        run.error.causes && run.error.causes.length > 1 ? h("ul", {}, run.error.causes.map((c) => h("li", { text: c }))) : null) : null;
      const canCancel = ["queued", "running", "input_required"].includes(run.status);
      setContent(`Run ${id}`,
        h("div", { class: "panel" },
          h("div", { class: "bar" },
            h("span", {}, "Status ", statusSpan(run.status)),
            h("span", {}, "session ", h("a", { href: `/ui/sessions/${enc(run.session_id)}`, text: run.session_id })),
            h("span", { text: `#${run.run_index}` }),
            h("span", { text: `env ${run.env || "base"}` }),
            h("span", { text: `duration ${fmtDur(run.duration_ms)}` }),
            h("span", { text: `attempts ${run.attempts}` }),
            run.start_time ? h("span", { text: `started ${run.start_time}` }) : null,
            run.owner ? h("span", { text: `on ${run.owner}` }) : null),
          h("div", { class: "bar" },
            h("a", { id: "pipeline-link", href: `/ui/sessions/${enc(run.session_id)}/pipelines/${enc(pname)}?run=${enc(id)}` }, `Pipeline ${pname} with this run's node states`),
            canCancel ? h("button", { type: "button", class: "danger", id: "cancel-run", onclick: async () => {
              try { await api(`/v1/runs/${enc(id)}/cancel`, { method: "POST" }); load(); } catch (e) { msg.replaceChildren(errorBox(e)); }
            } }, "Cancel run") : null)),
        msg, err,
        h("h2", { text: "Nodes" }), nodes.el,
        h("h2", { text: "Timeline" }), items.length ? gantt(items, runStart) : h("p", { class: "muted", text: "no node timings yet" }),
        h("div", { class: "grid" },
          h("section", {}, h("h2", { text: "Metrics" }), kvTable("metrics", run.metrics)),
          h("section", {}, h("h2", { text: "Parameters" }), kvTable("params", flatten(run.runtime_params || {})))),
        h("div", { class: "grid" },
          h("section", {}, h("h2", { text: "Versions loaded" }), kvTable("load_versions", run.load_versions)),
          h("section", {}, h("h2", { text: "Versions saved" }), kvTable("saved_versions", run.saved_versions)),
          h("section", {}, h("h2", { text: "Filters" }), kvTable("filters", flatten(run.filters || {})))),
        h("h2", { text: "Charts and saved datasets" }), datasetsEl,
        h("h2", { text: "Log" }), logEl);
    }
    async function loadLog() {
      const going = !TERMINAL_RUN.includes(run.status);
      try {
        const r = await fetch(`/v1/runs/${enc(id)}/logs${going ? "?follow=true" : ""}`, { headers: authHeaders() });
        if (!r.ok) { logEl.textContent = r.status === 404 ? "(this server keeps no log for this run)" : `(log: HTTP ${r.status})`; return; }
        if (!going) { logEl.textContent = await r.text(); return; }
        logFollowing = true;
        logEl.textContent = "";
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const atEnd = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 4;
          logEl.textContent += dec.decode(value, { stream: true });
          if (atEnd) logEl.scrollTop = logEl.scrollHeight;
        }
      } catch (e) { logEl.textContent += `\n(log: ${e.message})`; }
      logFollowing = false;
    }
    await load();
    if (run && !TERMINAL_RUN.includes(run.status)) {
      const reload = debounce(load, 300);
      stop = follow(`/v1/sessions/${enc(run.session_id)}/events`, (kind, data) => {
        if (data && data.run_id === id) reload();
      });
    }
  }

  async function comparePage() {
    const params = new URLSearchParams(location.search);
    const ids = (params.get("runs") || "").split(",").map((s) => s.trim()).filter(Boolean);
    const idsIn = h("input", { id: "compare-ids", value: ids.join(","), "aria-label": "run ids, comma-separated", size: 60 });
    const onlyDiff = h("input", { type: "checkbox", id: "only-diff" });
    const form = h("form", { class: "bar", onsubmit: (e) => { e.preventDefault(); location.search = `?runs=${idsIn.value.split(",").map((s) => enc(s.trim())).filter(Boolean).join(",")}`; } },
      h("label", {}, "Runs ", idsIn), h("button", { type: "submit" }, "Compare"), h("label", {}, onlyDiff, " only differences"));
    if (ids.length < 2) { setContent("Compare runs", form, h("p", { class: "muted", text: "Give two or more run ids (or select runs on a session page)." })); return; }
    let runs;
    try { runs = await Promise.all(ids.map((i) => api(`/v1/runs/${enc(i)}`))); } catch (e) { setContent("Compare runs", form, errorBox(e)); return; }
    const fields = new Map();
    const add = (group, key, get) => { const k = `${group}${key}`; if (!fields.has(k)) fields.set(k, { id: k, field: k, get }); };
    add("", "status", (r) => r.status);
    add("", "duration_ms", (r) => r.duration_ms);
    add("", "env", (r) => r.env);
    add("", "pipelines", (r) => (r.pipeline_names || []).join(","));
    add("", "error node", (r) => (r.error ? r.error.node || r.error.kind : null));
    for (const r of runs) {
      for (const k of Object.keys(flatten(r.runtime_params || {}))) add("param ", k, (x) => flatten(x.runtime_params || {})[k]);
      for (const k of Object.keys(r.metrics || {})) add("metric ", k, (x) => (x.metrics || {})[k]);
      for (const k of Object.keys(r.load_versions || {})) add("loaded ", k, (x) => (x.load_versions || {})[k]);
      for (const k of Object.keys(r.saved_versions || {})) add("saved ", k, (x) => (x.saved_versions || {})[k]);
      for (const t of r.node_timings || []) add("node ms ", t.node, (x) => { const f = (x.node_timings || []).find((y) => y.node === t.node); return f ? f.duration_ms : null; });
    }
    const rows = [...fields.values()].map((f) => {
      const values = runs.map((r) => f.get(r));
      const differs = new Set(values.map((v) => JSON.stringify(v === undefined ? null : v))).size > 1;
      return Object.assign(f, { values, differs });
    });
    const columns = [
      { key: "field", label: "field", value: (r) => r.field },
      ...runs.map((run, i) => ({ key: `r${i}`, label: run.id, value: (r) => r.values[i], render: (r) => (r.field === "status" ? statusSpan(r.values[i]) : fmtVal(r.values[i])) })),
    ];
    const table = dataTable("compare", { columns, rowClass: (r) => (r.differs ? "diff" : null) });
    const renderRows = () => table.update(onlyDiff.checked ? rows.filter((r) => r.differs) : rows);
    onlyDiff.addEventListener("change", renderRows);
    setContent(`Compare ${runs.length} runs`, form,
      h("p", {}, runs.map((r) => h("a", { href: `/ui/runs/${enc(r.id)}`, style: "margin-right:12px", text: r.id }))),
      h("p", { class: "muted", id: "diff-count", text: `${rows.filter((r) => r.differs).length} of ${rows.length} fields differ (highlighted)` }),
      table.el);
    renderRows();
  }

  async function pipelinePage() {
    const sid = main.dataset.session, name = main.dataset.pipeline;
    const q = new URLSearchParams(location.search);
    const runId = q.get("run") || "";
    const collapse = new Set((q.get("collapse") || "").split(",").filter(Boolean));
    const tags = new Set((q.get("tags") || "").split(",").filter(Boolean));
    let p;
    try { p = await api(`/v1/sessions/${enc(sid)}/pipelines/${enc(name)}`); } catch (e) { setContent(`Pipeline ${name}`, errorBox(e)); return; }
    const dag = h("div", { class: "dag-wrap", id: "dag" });
    const details = h("aside", { class: "panel", id: "node-details", "aria-live": "polite" }, h("p", { class: "muted", text: "Select a node (click, or Tab then Enter) for its details." }));
    const count = h("span", { id: "node-count", "data-count": String(p.nodes.length), text: String(p.nodes.length) });
    const nsBox = h("div", { class: "chips" }, p.namespaces.length ? p.namespaces.map((ns) => h("label", {},
      h("input", { type: "checkbox", checked: collapse.has(ns), onchange: (e) => { if (e.target.checked) collapse.add(ns); else collapse.delete(ns); draw(); } }), ` ${ns}`)) : h("span", { class: "muted", text: "none" }));
    const tagBox = h("div", { class: "chips" }, p.tags.length ? p.tags.map((t) => h("label", {},
      h("input", { type: "checkbox", checked: tags.has(t), onchange: (e) => { if (e.target.checked) tags.add(t); else tags.delete(t); draw(); } }), ` ${t}`)) : h("span", { class: "muted", text: "none" }));
    const zoomSel = h("select", { id: "zoom", "aria-label": "zoom" },
      [["fit", "fit width"], ["1", "100%"], ["0.5", "50%"], ["0.25", "25%"]].map(([v, t]) => h("option", { value: v, text: t })));
    let zoomChosen = false;
    zoomSel.addEventListener("change", () => applyZoom(true));
    const byName = Object.fromEntries(p.nodes.map((n) => [n.name, n]));
    const nodesTable = dataTable("pipeline-nodes", { columns: [
      { key: "layer", label: "layer", value: (n) => n.layer },
      { key: "name", label: "node", value: (n) => n.name },
      { key: "func", label: "func", value: (n) => n.func },
      { key: "inputs", label: "inputs", value: (n) => n.inputs.join(", "), wrap: true },
      { key: "outputs", label: "outputs", value: (n) => n.outputs.join(", "), wrap: true },
      { key: "tags", label: "tags", value: (n) => n.tags.join(", ") },
      { key: "namespace", label: "namespace", value: (n) => n.namespace },
    ] });
    nodesTable.update(p.nodes.map((n) => Object.assign({ id: n.name }, n)));
    setContent(`Pipeline ${name}`,
      h("div", { class: "bar" },
        h("span", {}, h("strong", {}, count), ` nodes in ${p.layers} layers`),
        h("a", { href: `/ui/sessions/${enc(sid)}`, text: `session ${sid}` }),
        runId ? h("a", { href: `/ui/runs/${enc(runId)}`, text: `states of run ${runId}` }) : null),
      h("div", { class: "bar" }, h("strong", { text: "Collapse namespaces:" }), nsBox),
      h("div", { class: "bar" }, h("strong", { text: "Only tags:" }), tagBox, h("label", {}, "Zoom ", zoomSel)),
      h("div", { class: "side" }, dag, details),
      h("h2", { text: "Nodes" }), nodesTable.el);
    function showNode(g) {
      dag.querySelectorAll(".node.selected").forEach((x) => x.classList.remove("selected"));
      g.classList.add("selected");
      if (g.dataset.namespace) {
        collapse.delete(g.dataset.namespace);
        draw();
        return;
      }
      const n = byName[g.dataset.node];
      if (!n) return;
      const state = [...g.classList].find((c) => c.startsWith("state-"));
      details.replaceChildren(h("h2", { text: n.name }), h("dl", {}));
      const dl = details.querySelector("dl");
      dl.replaceChildren(...[["func", n.func], ["layer", n.layer], ["namespace", n.namespace || "—"], ["tags", n.tags.join(", ") || "—"],
        ["inputs", n.inputs.join(", ") || "—"], ["outputs", n.outputs.join(", ") || "—"], ["state in run", state ? state.slice(6) : "—"]]
        .flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: String(v) })]));
    }
    // Zoom by the drawing's own size; the first layers are centred, so the
    // view starts scrolled to the middle.
    function applyZoom(centre) {
      const s = dag.querySelector("svg");
      if (!s) return;
      const w = +s.getAttribute("width"), ht = +s.getAttribute("height");
      if (zoomSel.value === "fit") {
        s.style.width = w > dag.clientWidth ? "100%" : `${w}px`;
        s.style.height = "auto";
      } else {
        s.style.width = `${w * +zoomSel.value}px`;
        s.style.height = `${ht * +zoomSel.value}px`;
      }
      if (centre) dag.scrollLeft = Math.max(0, (dag.scrollWidth - dag.clientWidth) / 2);
    }
    async function draw() {
      const qs = new URLSearchParams();
      if (collapse.size) qs.set("collapse", [...collapse].join(","));
      if (tags.size) qs.set("tags", [...tags].join(","));
      if (runId) qs.set("run", runId);
      history.replaceState(null, "", `${location.pathname}${qs.toString() ? `?${qs}` : ""}`);
      try {
        const r = await fetch(`/v1/sessions/${enc(sid)}/pipelines/${enc(name)}/svg?${qs}`, { headers: authHeaders() });
        if (!r.ok) throw new Error(`drawing: HTTP ${r.status}`);
        const doc = new DOMParser().parseFromString(await r.text(), "image/svg+xml");
        const svg = doc.documentElement;
        dag.replaceChildren(document.importNode(svg, true));
        count.textContent = dag.querySelector("svg").dataset.nodes;
        if (!zoomChosen) {
          zoomChosen = true;
          zoomSel.value = +dag.querySelector("svg").getAttribute("width") <= 2 * dag.clientWidth ? "fit" : "0.5";
        }
        applyZoom(true);
      } catch (e) { dag.replaceChildren(errorBox(e)); }
    }
    dag.addEventListener("click", (e) => { const g = e.target.closest(".node"); if (g) showNode(g); });
    dag.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" && e.key !== " ") return;
      const g = e.target.closest(".node");
      if (g) { e.preventDefault(); showNode(g); }
    });
    await draw();
  }

  const pages = { sessions: sessionsPage, session: sessionPage, run: runPage, compare: comparePage, pipeline: pipelinePage };
  (pages[page] || sessionsPage)().catch((e) => main.append(errorBox(e)));
})();
