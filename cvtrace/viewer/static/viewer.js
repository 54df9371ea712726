// cvtrace viewer: draws the figures the server built and shows span details.
// Span-derived text is only ever put into the page with textContent.
(function () {
  "use strict";

  function readJSON(id) {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function valueText(v) {
    return typeof v === "string" ? v : JSON.stringify(v);
  }

  function kvTable(pairs) {
    if (!pairs.length) return el("p", "none", "muted");
    const table = el("table");
    for (const [k, v] of pairs) {
      const tr = el("tr");
      tr.appendChild(el("td", k, "k"));
      tr.appendChild(el("td", valueText(v)));
      table.appendChild(tr);
    }
    return table;
  }

  // -- search page -----------------------------------------------------------
  const durations = readJSON("durations-data");
  if (durations) {
    Plotly.newPlot("durations", durations.data, durations.layout, {
      displaylogo: false,
      responsive: true,
    }).then(function (gd) {
      gd.on("plotly_click", function (ev) {
        const p = ev.points && ev.points[0];
        if (p && p.customdata) window.location.href = "trace/" + encodeURIComponent(p.customdata);
      });
    });
  }
  const serviceSelect = document.getElementById("service-select");
  const operationSelect = document.getElementById("operation-select");
  if (serviceSelect && operationSelect) {
    serviceSelect.addEventListener("change", function () {
      while (operationSelect.options.length > 1) operationSelect.remove(1);
      if (!serviceSelect.value) return;
      fetch("api/services/" + encodeURIComponent(serviceSelect.value) + "/operations")
        .then((r) => r.json())
        .then(function (body) {
          for (const name of body.data || []) {
            const option = el("option", name);
            option.value = name;
            operationSelect.appendChild(option);
          }
        });
    });
  }

  // -- trace page --------------------------------------------------------------
  const header = document.getElementById("trace-header");
  if (!header) return;
  // the page preloads this URL, so the rows download while plotly.js loads
  const rowsRequest = fetch(header.dataset.figureUrl, { credentials: "same-origin" })
    .then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  const collapsed = new Set((header.dataset.collapsed || "").split(",").filter(Boolean));
  const details = document.getElementById("details");
  let gd = null;
  let wf = null; // the waterfall's rows (see viewer/figures.py: waterfall_data)

  function traceUrl(params) {
    const query = new URLSearchParams(params).toString();
    return window.location.pathname + (query ? "?" + query : "");
  }

  // -- the waterfall's rows, drawn a window at a time (level of detail) ---------
  // Only the rows in view (and as many again above and below) are plotly traces,
  // drawn as SVG; panning or zooming redraws the window. A view of more than
  // AGG_ROWS rows draws groups of rows instead: per service, one bar from the
  // group's first start to its last end, about two pixels tall (no labels).
  const AGG_ROWS = 1500;
  const MAX_LABELS = 150;
  const ARRAYS = { f8: Float64Array, u1: Uint8Array, u2: Uint16Array, u4: Uint32Array };
  const FLAG_ERROR = 1, FLAG_ORPHAN = 2, FLAG_SKEWED = 4, FLAG_COLLAPSED = 8;

  function typed(spec) {
    const bin = atob(spec.bdata);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new ARRAYS[spec.dtype](bytes.buffer);
  }

  function loadRows(body) {
    const rows = Object.assign({}, body);
    for (const key of ["start", "end", "depth", "service", "name", "note", "flags"]) {
      rows[key] = typed(body[key]);
    }
    let deepest = 0, last = 0;
    for (let i = 0; i < rows.rowCount; i++) {
      if (rows.depth[i] > deepest) deepest = rows.depth[i];
      if (rows.end[i] > last) last = rows.end[i];
    }
    rows.deepest = Math.min(deepest, rows.maxIndent);
    rows.last = last;
    return rows;
  }

  // the widest row label in pixels, measured once (plotly's automargin would
  // measure every label of every window, and move the plot as the labels change)
  function labelWidth() {
    const ctx = document.createElement("canvas").getContext("2d");
    ctx.font = '12px "Open Sans", verdana, arial, sans-serif';
    const nameWidths = wf.names.map((n) => ctx.measureText(n).width);
    const marks = ctx.measureText(" ⚠ ⏱ ▸000000").width;
    const pad = ctx.measureText("\u2002\u2002").width;
    let widest = 0;
    for (let row = 0; row < wf.rowCount; row++) {
      const depth = Math.min(wf.depth[row], wf.maxIndent);
      const w = nameWidths[wf.name[row]] + (wf.flags[row] & ~FLAG_ERROR ? marks : 0) +
        pad * Math.max(0, wf.deepest - depth);
      if (w > widest) widest = w;
    }
    return Math.ceil(widest);
  }

  function spanIdAt(row) {
    return wf.ids.substr(row * 16, 16);
  }

  function rowOf(spanId) {
    for (let i = 0; i < wf.rowCount; i++) if (spanIdAt(i) === spanId) return i;
    return -1;
  }

  function durationText(ms) {
    if (ms < 1) return (ms * 1000).toFixed(0) + "µs";
    if (ms < 1000) return Number(ms.toPrecision(3)) + "ms";
    return Number((ms / 1000).toPrecision(3)) + "s";
  }

  // names, services and notes come escaped from the server
  function label(row) {
    const flags = wf.flags[row];
    let text = wf.names[wf.name[row]];
    if (flags & FLAG_ORPHAN) text += " ⚠";
    if (flags & FLAG_SKEWED) text += " ⏱";
    if (flags & FLAG_COLLAPSED) text += " ▸" + wf.children[row];
    const depth = Math.min(wf.depth[row], wf.maxIndent);
    return text + "\u2002\u2002".repeat(Math.max(0, wf.deepest - depth));
  }

  function hoverText(row) {
    const flags = wf.flags[row];
    const lines = [
      "<b>" + wf.names[wf.name[row]] + "</b>",
      "service: " + wf.services[wf.service[row]],
      "duration: " + durationText(wf.end[row] - wf.start[row]),
      "start: +" + durationText(wf.start[row]),
    ];
    const note = wf.notes[wf.note[row]];
    if (note) lines.push(note);
    const attributes = attributeNotes.get(row);
    if (attributes) lines.push(attributes);
    if (flags & FLAG_ORPHAN) lines.push("parent missing from trace");
    if (flags & FLAG_SKEWED) lines.push("outside its parent's time (clock skew?)");
    return lines.join("<br>");
  }

  // the traces of rows [lo, hi): a line trace per service (a bar is a thick
  // segment), one for error outlines, and markers at span starts (hover, ids)
  // bars and markers as thick as the rows (or groups of rows) are tall
  function sizes(pitch) {
    const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
    return { bar: clamp(pitch * 0.55, 1, 12), error: clamp(pitch * 0.14, 1, 3), marker: clamp(pitch * 0.4, 2, 9) };
  }

  // the traces of rows [lo, hi) in groups of k rows (k = 1: each row): a line
  // trace per service (a bar is a thick segment), one for error outlines, and
  // markers at the starts (hover, span ids)
  function windowTraces(lo, hi, k, pitch) {
    const size = sizes(pitch * k);
    const services = wf.services.length;
    const segs = wf.services.map(() => ({ x: [], y: [] }));
    const err = { x: [], y: [] };
    const m = { x: [], y: [], color: [], symbol: [], text: [], ids: [] };
    const first = new Float64Array(services + 1), last = new Float64Array(services + 1);
    for (let g = Math.floor(lo / k) * k; g < hi; g += k) {
      const end = Math.min(g + k, wf.rowCount);
      const y = k === 1 ? g : g + (end - 1 - g) / 2;
      first.fill(Infinity);
      last.fill(-Infinity);
      let errors = 0;
      for (let row = g; row < end; row++) {
        const svc = wf.flags[row] & FLAG_ERROR ? services : wf.service[row];
        if (svc === services) errors++;
        // an error row also counts for its service's bar
        for (const i of svc === services ? [wf.service[row], services] : [svc]) {
          if (wf.start[row] < first[i]) first[i] = wf.start[row];
          if (wf.end[row] > last[i]) last[i] = wf.end[row];
        }
      }
      let x0 = Infinity;
      for (let i = 0; i < services; i++) {
        if (first[i] === Infinity) continue;
        segs[i].x.push(first[i], last[i], null);
        segs[i].y.push(y, y, null);
        if (first[i] < x0) x0 = first[i];
      }
      if (errors) {
        err.x.push(first[services], last[services], null);
        err.y.push(y, y, null);
      }
      m.x.push(x0);
      m.y.push(y);
      m.color.push(errors ? wf.errorColor : wf.colors[wf.service[g]]);
      m.symbol.push(errors ? "x" : "circle");
      m.text.push(k === 1 ? hoverText(g) :
        "rows " + g + "–" + (end - 1) + ": " + (end - g) + " spans" +
        (errors ? ", " + errors + " errors" : "") + "<br>zoom in to see each span");
      m.ids.push(spanIdAt(g));
    }
    const traces = segs.map((seg, i) => ({
      type: "scatter", x: seg.x, y: seg.y, mode: "lines", name: wf.services[i],
      line: { color: wf.colors[i], width: size.bar }, hoverinfo: "skip", connectgaps: false,
    }));
    traces.push({
      type: "scatter", x: err.x, y: err.y, mode: "lines", name: "error",
      line: { color: wf.errorColor, width: size.error }, hoverinfo: "skip", showlegend: err.x.length > 0,
    });
    traces.push({
      type: "scatter", x: m.x, y: m.y, mode: "markers", meta: "spans", name: "spans",
      showlegend: false, customdata: m.ids, hovertext: m.text, hoverinfo: "text",
      marker: { color: m.color, symbol: m.symbol, size: size.marker, line: { width: 0 } },
    });
    return traces;
  }

  let drawn = null; // {lo, hi, k, pitch}: the rows the traces hold, k rows a group

  // key attributes for the hover, asked for by chunks of rows as they are drawn
  // (reading every span's attributes is the server's most expensive part)
  const NOTE_CHUNK = 256;
  const attributeNotes = new Map();
  const notesAsked = new Set();

  function askNotes(win) {
    if (win.k > 1) return;
    const chunks = [];
    for (let c = Math.floor(win.lo / NOTE_CHUNK); c * NOTE_CHUNK < win.hi; c++) {
      if (!notesAsked.has(c)) chunks.push(c);
    }
    if (!chunks.length) return;
    chunks.forEach((c) => notesAsked.add(c));
    const first = chunks[0] * NOTE_CHUNK, last = (chunks[chunks.length - 1] + 1) * NOTE_CHUNK;
    fetch(header.dataset.notesUrl + "&rows=" + first + "-" + last, { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (notes) {
        for (const row of Object.keys(notes)) attributeNotes.set(Number(row), notes[row]);
        // refresh the hover text of the rows drawn now
        const index = gd.data.findIndex((t) => t.meta === "spans");
        if (index < 0 || redrawing) return;
        const rows = gd.data[index].y;
        Plotly.restyle(gd, { hovertext: [Array.from(rows, hoverText)] }, [index]);
      })
      .catch(function () {
        chunks.forEach((c) => notesAsked.delete(c)); // ask again with the next draw
      });
  }

  function windowFor(y0, y1) {
    const a = Math.max(0, Math.floor(Math.min(y0, y1))), b = Math.min(wf.rowCount, Math.ceil(Math.max(y0, y1)) + 1);
    // rows per group: about two pixels tall when more than AGG_ROWS are in view
    const k = b - a > AGG_ROWS ? Math.max(1, Math.ceil(2 / pitchFor([y0, y1]))) : 1;
    const pad = Math.max(wf.visibleRows, b - a);
    return { lo: Math.max(0, a - pad), hi: Math.min(wf.rowCount, b + pad), k: k };
  }

  function yaxisTicks(win, y0, y1) {
    const a = Math.max(win.lo, Math.floor(Math.min(y0, y1))), b = Math.min(win.hi, Math.ceil(Math.max(y0, y1)) + 1);
    if (win.k > 1 || b - a > MAX_LABELS * 4) return { tickmode: "array", tickvals: [], ticktext: [] };
    const step = Math.max(1, Math.ceil((b - a) / MAX_LABELS));
    const vals = [], text = [];
    for (let row = win.lo; row < win.hi; row += step) {
      vals.push(row);
      text.push(label(row));
    }
    return { tickmode: "array", tickvals: vals, ticktext: text };
  }

  function plotHeight() {
    return Math.min(wf.rowCount, wf.visibleRows) * wf.rowPx + 140;
  }

  // pixels per row with the y axis showing yrange (the plot area is the height
  // less the top and bottom margins)
  function pitchFor(yrange) {
    return (plotHeight() - 70) / Math.max(1, Math.abs(yrange[0] - yrange[1]));
  }

  function figureFor(win, xrange, yrange, keep) {
    win.pitch = pitchFor(yrange);
    const traces = windowTraces(win.lo, win.hi, win.k, win.pitch);
    if (keep) traces.forEach((t, i) => { if (keep[i] && keep[i].visible !== undefined) t.visible = keep[i].visible; });
    const layout = {
      height: plotHeight(),
      margin: { l: wf.marginLeft, r: 10, t: 30, b: 40 },
      hovermode: "closest", clickmode: "event", dragmode: "pan",
      legend: { orientation: "h", y: 1.02, yanchor: "bottom", x: 0 },
      xaxis: { title: { text: "ms since trace start" }, zeroline: false, range: xrange, autorange: false },
      yaxis: Object.assign({
        range: yrange, autorange: false, automargin: false, showgrid: false, zeroline: false,
      }, yaxisTicks(win, yrange[0], yrange[1])),
      shapes: gd && gd.layout.shapes ? gd.layout.shapes : [],
    };
    return { data: traces, layout: layout };
  }

  function initialRanges() {
    const shown = Math.min(wf.rowCount, wf.visibleRows);
    let first = 0;
    const focusRow = wf.focusRow !== null ? wf.focusRow : rowOf(header.dataset.focus || "");
    if (focusRow >= shown) first = Math.max(0, focusRow - Math.floor(shown / 2));
    const span = Math.max(wf.last, 1e-3);
    return { x: [-span * 0.02, span * 1.02], y: [first + shown - 0.5, first - 0.5] };
  }

  let redrawing = false;
  function redrawIfNeeded() {
    if (redrawing) return;
    const ya = gd._fullLayout.yaxis, xa = gd._fullLayout.xaxis;
    const y0 = Math.min(ya.range[0], ya.range[1]), y1 = Math.max(ya.range[0], ya.range[1]);
    const want = windowFor(y0, y1);
    const pitch = pitchFor([y0, y1]);
    const fits = drawn && drawn.k === want.k &&
      Math.min(12, pitch) / Math.min(12, drawn.pitch) < 1.5 && Math.min(12, drawn.pitch) / Math.min(12, pitch) < 1.5 &&
      drawn.lo <= Math.max(0, Math.floor(y0)) && drawn.hi >= Math.min(wf.rowCount, Math.ceil(y1) + 1) &&
      drawn.hi - drawn.lo <= 4 * (want.hi - want.lo);
    if (fits) return;
    redrawing = true;
    const fig = figureFor(want, xa.range.slice(), ya.range.slice(), gd.data);
    Plotly.react(gd, fig.data, fig.layout, config).then(function () {
      drawn = want;
      redrawing = false;
      askNotes(want);
    }, function () { redrawing = false; });
  }

  function highlight(spanId) {
    const row = rowOf(spanId);
    if (!gd || row < 0) return;
    Plotly.relayout(gd, {
      shapes: [{
        type: "rect", xref: "paper", x0: 0, x1: 1, yref: "y", y0: row - 0.5, y1: row + 0.5,
        fillcolor: "rgba(255, 200, 0, 0.25)", line: { width: 0 }, layer: "below",
      }],
    });
  }

  function renderDetails(d) {
    details.replaceChildren();
    details.dataset.spanId = d.spanId;
    details.appendChild(el("h2", d.name, "span-name"));
    const facts = [
      ["service", d.service], ["kind", d.kind], ["duration", d.duration], ["start", d.start],
      ["status", d.status.code + (d.status.message ? ": " + d.status.message : "")],
      ["span id", d.spanId], ["parent span id", d.parentSpanId || "(root)"],
    ];
    if (d.traceState) facts.push(["trace state", d.traceState]);
    details.appendChild(kvTable(facts));
    if (d.orphan) details.appendChild(el("p", "⚠ Its parent span is not in this trace.", "warn"));
    if (d.skewed) details.appendChild(el("p", "⏱ It is outside its parent's time (clock skew?).", "warn"));
    const actions = el("p", null, "actions");
    const link = el("a", "Link to this span");
    link.href = d.deepLink;
    actions.appendChild(link);
    actions.appendChild(document.createTextNode(" · "));
    const toggle = el("a", collapsed.has(d.spanId) ? "Expand subtree" : "Collapse subtree");
    const next = new Set(collapsed);
    if (next.has(d.spanId)) next.delete(d.spanId); else next.add(d.spanId);
    const params = { span: d.spanId };
    if (next.size) params.collapse = Array.from(next).join(",");
    toggle.href = traceUrl(params);
    toggle.className = "toggle-subtree";
    actions.appendChild(toggle);
    details.appendChild(actions);
    details.appendChild(el("h3", "Attributes"));
    details.appendChild(kvTable(d.attributes));
    if (d.events.length) {
      details.appendChild(el("h3", "Events"));
      for (const e of d.events) {
        details.appendChild(el("p", e.name + " at " + e.time, "event"));
        details.appendChild(kvTable(e.attributes));
      }
    }
    if (d.links.length) {
      details.appendChild(el("h3", "Links"));
      for (const l of d.links) {
        details.appendChild(kvTable([["trace id", l.traceId], ["span id", l.spanId], ...l.attributes]));
      }
    }
    details.appendChild(el("h3", "Resource"));
    details.appendChild(kvTable(d.resource));
    details.appendChild(el("h3", "Scope"));
    details.appendChild(kvTable([["name", d.scope.name], ["version", d.scope.version], ...d.scope.attributes]));
  }

  function showSpan(spanId) {
    if (!spanId) return;
    highlight(spanId);
    fetch(window.location.pathname.replace(/\/$/, "") + "/spans/" + encodeURIComponent(spanId) + ".json")
      .then(function (r) {
        if (!r.ok) throw new Error("span " + spanId + " not found");
        return r.json();
      })
      .then(renderDetails)
      .catch(function (err) {
        details.replaceChildren(el("p", String(err), "error"));
      });
  }

  function rowAt(event) {
    const area = gd.querySelector(".nsewdrag");
    if (!area) return -1;
    const box = area.getBoundingClientRect();
    // the plot area and, to its left, the span names
    const left = gd.getBoundingClientRect().left;
    if (event.clientX < left || event.clientX > box.right ||
        event.clientY < box.top || event.clientY > box.bottom) return -1;
    const row = Math.round(gd._fullLayout.yaxis.p2l(event.clientY - box.top));
    return row >= 0 && row < wf.rowCount ? row : -1;
  }

  const t0 = performance.now();
  // a click selects a row, so two quick clicks on rows must not reset the view to
  // the first rows (plotly's double-click); the modebar's "reset axes" still does
  const config = { displaylogo: false, scrollZoom: true, responsive: true, doubleClick: false };
  function showTreeFacts(tree) {
    document.getElementById("depth").textContent = String(tree.depth);
    const warn = [];
    if (tree.orphans) warn.push("⚠ " + tree.orphans + " span(s) whose parent is missing, shown at top level.");
    if (tree.skewed) warn.push("⏱ " + tree.skewed + " span(s) outside their parent's time (clock skew?).");
    const p = document.getElementById("tree-warnings");
    p.textContent = warn.join(" ");
    p.hidden = !warn.length;
  }

  rowsRequest.then(function (body) {
    wf = loadRows(body);
    showTreeFacts(body.tree);
    const width = document.getElementById("waterfall").clientWidth || 800;
    wf.marginLeft = Math.min(labelWidth() + 16, Math.round(width * 0.5));
    if (!wf.rowCount) {
      document.getElementById("waterfall").replaceChildren(el("p", "No spans.", "muted"));
      return null;
    }
    const ranges = initialRanges();
    drawn = windowFor(ranges.y[1], ranges.y[0]);
    const fig = figureFor(drawn, ranges.x, ranges.y, null);
    return Plotly.newPlot("waterfall", fig.data, fig.layout, config);
  }).then(function (plot) {
    if (!plot) return;
    gd = plot;
    askNotes(drawn);
    gd.on("plotly_relayout", redrawIfNeeded);
    // a click anywhere on a row selects its span (not only on a bar's marker)
    // plotly covers the page while a button is down, so listen on the document
    let down = null;
    gd.addEventListener("mousedown", (e) => { down = [e.clientX, e.clientY]; }, true);
    document.addEventListener("mouseup", function (e) {
      const start = down;
      down = null;
      if (!start || Math.abs(e.clientX - start[0]) > 3 || Math.abs(e.clientY - start[1]) > 3) return;
      const row = rowAt(e);
      if (row >= 0) {
        const spanId = spanIdAt(row);
        history.replaceState(null, "", traceUrl(Object.assign(
          collapsed.size ? { collapse: Array.from(collapsed).join(",") } : {}, { span: spanId })));
        showSpan(spanId);
      }
    }, true);
    if (header.dataset.focus) showSpan(header.dataset.focus);
  }).then(function () {
    document.body.dataset.waterfallMs = String(Math.round(performance.now() - t0));
    document.body.dataset.waterfallReady = "1";
  }).catch(function (err) {
    document.getElementById("waterfall").replaceChildren(el("p", "Cannot draw the trace: " + err, "error"));
  });
})();
