// cvtrace viewer, trace page: the waterfall. Every span of the trace arrives at once
// (waterfall.json: figures.waterfall_data, columns in tree order); only the rows in view
// are in the page (a pool of ~60 row elements, refilled as the list scrolls), so a
// 100,000-span trace costs about what a small one does to draw. A subtree is the rows
// after its span that are deeper, so collapsing and expanding happen here, in place.
//
// Navigation: the wheel scrolls the rows (native scrolling); the time axis zooms only
// when asked (drag across the ruler, the overview's window edges, buttons, keys); the
// overview (minimap) shows every visible row, its window the part in view.
// Span-derived text goes into the page with textContent only.
//
// The trace page's other parts (critical-path.js, trace-search.js, ...) work on the
// same rows through cv.waterfall, handed to them by cv.onWaterfall(fn) once the rows
// are drawn: the columns, selection, matches to highlight, and hooks that decorate a
// row as it is filled and the overview after it is drawn.
(function () {
  "use strict";
  const cv = window.cvtrace;
  const el = cv.el;
  const waiting = [];
  cv.onWaterfall = function (fn) {
    if (cv.waterfall) fn(cv.waterfall);
    else waiting.push(fn);
  };
  const header = document.getElementById("trace-header");
  const root = document.getElementById("waterfall");
  if (!header || !root) return;
  const started = performance.now();
  // the page preloads this URL: it downloads while the scripts load
  const rowsRequest = fetch(header.dataset.figureUrl, { credentials: "same-origin" })
    .then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });

  const ROW = 24; // px per row (--row in viewer.css)
  const OVERSCAN = 12; // rows drawn above and below the view
  const MAX_SCROLL_PX = 8e6; // a taller list maps the scroll position onto rows
  const MAX_MARKS = 200; // event marks drawn per row
  const NOTE_CHUNK = 256; // rows per notes.json request (the hover's key attributes)
  const FLAG_ERROR = 1, FLAG_ORPHAN = 2, FLAG_SKEWED = 4;
  const ARRAYS = { f8: Float64Array, u1: Uint8Array, u2: Uint16Array, u4: Uint32Array };

  function typed(spec) {
    let bytes;
    if (Uint8Array.fromBase64) {
      bytes = Uint8Array.fromBase64(spec.bdata);
    } else {
      const bin = atob(spec.bdata);
      bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    }
    const T = ARRAYS[spec.dtype];
    return new T(bytes.buffer, bytes.byteOffset, bytes.byteLength / T.BYTES_PER_ELEMENT);
  }

  // -- the trace: columns, and the tree they make ------------------------------------
  let W = null; // the columns of waterfall.json, decoded
  let n = 0; // spans
  let stop = null; // Int32Array: row after the last of each row's subtree
  let parent = null; // Int32Array: parent row, -1 at top level
  let collapsed = null; // Uint8Array: 1 = subtree hidden
  let depthShown = 0; // the last "Collapse to…" level chosen, 0 after "Expand all" or none
  let order = null; // Int32Array: the visible rows, in tree order
  let count = 0; // visible rows
  let fullEnd = 1; // ms: the end of the last span
  let maxDepth = 0;
  let errorRows = null; // Int32Array
  let evFirst = null; // Int32Array(n + 1): a row's events are evFirst[r] .. evFirst[r + 1]
  let selfTime = null; // Float64Array, made when first needed

  function load(body) {
    W = Object.assign({}, body);
    for (const key of ["start", "end", "depth", "service", "name", "note", "flags", "eventRow", "eventTime", "eventName"]) {
      W[key] = typed(body[key]);
    }
    n = body.rowCount;
    stop = new Int32Array(n);
    parent = new Int32Array(n);
    collapsed = new Uint8Array(n);
    order = new Int32Array(n);
    const stack = [];
    let last = 0, errors = 0;
    for (let i = 0; i < n; i++) {
      const d = W.depth[i];
      while (stack.length && W.depth[stack[stack.length - 1]] >= d) stop[stack.pop()] = i;
      parent[i] = stack.length ? stack[stack.length - 1] : -1;
      stack.push(i);
      if (W.end[i] > last) last = W.end[i];
      if (d > maxDepth) maxDepth = d;
      if (W.flags[i] & FLAG_ERROR) errors++;
    }
    while (stack.length) stop[stack.pop()] = n;
    errorRows = new Int32Array(errors);
    for (let i = 0, k = 0; i < n; i++) if (W.flags[i] & FLAG_ERROR) errorRows[k++] = i;
    evFirst = new Int32Array(n + 1);
    for (let k = 0; k < W.eventRow.length; k++) evFirst[W.eventRow[k] + 1]++;
    for (let i = 0; i < n; i++) evFirst[i + 1] += evFirst[i];
    fullEnd = Math.max(last, 1e-3);
  }

  function spanIdAt(row) {
    return W.ids.substr(row * 16, 16);
  }

  function rowOf(spanId) {
    if (!/^[0-9a-f]{16}$/.test(spanId)) return -1;
    for (let at = W.ids.indexOf(spanId); at >= 0; at = W.ids.indexOf(spanId, at + 1)) {
      if (at % 16 === 0) return at / 16;
    }
    return -1;
  }

  function hasChildren(row) {
    return stop[row] > row + 1;
  }

  function rebuildOrder() {
    let c = 0;
    for (let i = 0; i < n; ) {
      order[c++] = i;
      i = collapsed[i] ? stop[i] : i + 1;
    }
    count = c;
  }

  // the position of a row among the visible ones (order is sorted); -1 if hidden
  function posOf(row) {
    let lo = 0, hi = count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (order[mid] < row) lo = mid + 1;
      else if (order[mid] > row) hi = mid - 1;
      else return mid;
    }
    return -1;
  }

  // the row itself, or the collapsed ancestor that hides it
  function shownAs(row) {
    let shown = row;
    for (let p = parent[row]; p >= 0; p = parent[p]) if (collapsed[p]) shown = p;
    return shown;
  }

  function computeSelfTime() {
    // a span's own time: its duration less the time its children cover (children
    // come by start time, so their union is one pass)
    selfTime = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const s = W.start[i], e = W.end[i];
      let covered = 0, a0 = 0, a1 = -Infinity;
      for (let j = i + 1; j < stop[i]; j = stop[j]) {
        const a = Math.max(W.start[j], s), b = Math.min(W.end[j], e);
        if (b <= a) continue;
        if (a > a1) {
          if (a1 > a0) covered += a1 - a0;
          a0 = a;
          a1 = b;
        } else if (b > a1) {
          a1 = b;
        }
      }
      if (a1 > a0) covered += a1 - a0;
      selfTime[i] = Math.max(0, e - s - covered);
    }
  }

  // -- the page's parts ----------------------------------------------------------------
  let toolbar, errorCount, countText, zoomText, depthSelect;
  let overview, legend, minimap, canvas, windowEl, ruler, rulerTrack, brush, splitter;
  let scroller, spacer, gridLines;
  const pool = []; // row elements
  const ticks = [];
  const tip = el("div", null, "tip");
  tip.hidden = true;

  let labelW = 340;
  let trackW = 400;
  let indent = 14;
  let v0 = 0, v1 = 1; // ms: the time in view
  let sel = -1; // the selected row
  let matches = null; // Uint8Array: rows the search matches (trace-search.js)
  let matchRows = null; // Int32Array
  const rowHooks = []; // fn(rowEl, row, view): decorate a row as it is filled
  const minimapHooks = []; // fn(ctx, view): draw over the overview
  let escapeHook = null; // fn() -> handled: Esc with nothing else to close
  let scaled = false; // the list is taller than MAX_SCROLL_PX
  let spacerH = 0;
  let frame = 0;

  function button(text, title, onClick, cls) {
    const b = el("button", text, cls);
    b.type = "button";
    b.title = title;
    b.addEventListener("click", onClick);
    return b;
  }

  function build() {
    toolbar = el("div", null, "wf-toolbar");
    errorCount = el("span", errorRows.length + (errorRows.length === 1 ? " error" : " errors"), "count");
    const errs = el("span", null, "group");
    errs.append(
      button("‹ Error", "Previous error (E)", () => nextError(-1), "prev-error"),
      errorCount,
      button("Error ›", "Next error (e)", () => nextError(1), "next-error"));
    for (const b of errs.querySelectorAll("button")) b.disabled = !errorRows.length;
    const slow = button("Slowest span", "The span with the longest self time: its duration less its children's (s)", slowest, "slowest");
    const tree = el("span", null, "group");
    depthSelect = el("select");
    depthSelect.id = "collapse-depth";
    depthSelect.title = "Show the top levels of the tree only";
    depthSelect.appendChild(el("option", "Collapse to…"));
    for (let d = 1; d <= Math.min(maxDepth, 30); d++) {
      const option = el("option", d === 1 ? "top level" : d + " levels");
      option.value = String(d);
      depthSelect.appendChild(option);
    }
    depthSelect.addEventListener("change", function () {
      if (depthSelect.value) collapseToDepth(Number(depthSelect.value));
      depthSelect.selectedIndex = 0;
    });
    tree.append(button("Expand all", "Show every span", expandAll, "expand-all"), depthSelect);
    const zoom = el("span", null, "group");
    zoomText = el("span", "", "count");
    zoom.append(
      button("−", "Zoom out (-)", () => zoomBy(2), "zoom-out"),
      button("+", "Zoom in (+)", () => zoomBy(0.5), "zoom-in"),
      button("Reset zoom", "Show the whole trace (0, or double-click the ruler)", resetZoom, "zoom-reset"),
      zoomText);
    countText = el("span", "", "count");
    toolbar.append(errs, slow, tree, zoom, countText);

    overview = el("div", null, "wf-overview");
    legend = el("div", null, "wf-legend");
    for (let i = 0; i < W.services.length; i++) {
      const chip = el("span", W.services[i], "svc");
      chip.style.borderColor = W.colors[i];
      chip.title = W.services[i];
      legend.appendChild(chip);
    }
    minimap = el("div", null, "wf-minimap");
    minimap.title = "Overview: drag the window to move, its edges to zoom; click to jump";
    canvas = el("canvas");
    windowEl = el("div", null, "wf-window");
    windowEl.append(el("div", null, "wf-handle left"), el("div", null, "wf-handle right"));
    minimap.append(canvas, windowEl);
    overview.append(legend, minimap);

    ruler = el("div", null, "wf-ruler");
    const rulerLabel = el("div", "Span · ms since the trace's start", "wf-ruler-label");
    splitter = el("div", null, "wf-splitter");
    splitter.title = "Drag to widen the names";
    rulerLabel.appendChild(splitter);
    rulerTrack = el("div", null, "wf-ruler-track");
    rulerTrack.title = "Drag across to zoom to that time; double-click to zoom out";
    brush = el("div", null, "wf-brush");
    brush.hidden = true;
    rulerTrack.appendChild(brush);
    ruler.append(rulerLabel, rulerTrack);

    scroller = el("div", null, "wf-scroller");
    spacer = el("div", null, "wf-spacer");
    gridLines = el("div", null, "wf-gridlines");
    spacer.appendChild(gridLines);
    scroller.appendChild(spacer);
    root.replaceChildren(toolbar, overview, ruler, scroller);
    document.body.appendChild(tip);
    try {
      const saved = Number(localStorage.getItem("cvtrace.labelWidth"));
      if (saved >= 120) labelW = saved;
    } catch (err) {
      // no storage: the default width
    }
  }

  // -- sizes ---------------------------------------------------------------------------
  function layoutSizes() {
    const width = root.clientWidth;
    if (!width) return; // hidden (another tab): sized when shown again
    labelW = Math.max(140, Math.min(labelW, Math.round(width * 0.7)));
    root.style.setProperty("--label", labelW + "px");
    indent = Math.max(3, Math.min(14, Math.floor((labelW * 0.5) / Math.max(1, maxDepth))));
    root.style.setProperty("--indent", indent + "px");
    const top = scroller.getBoundingClientRect().top + window.scrollY;
    scroller.style.height = Math.max(240, Math.min(count * ROW + 2, window.innerHeight - top - 10)) + "px";
    const scrollbar = scroller.offsetWidth - scroller.clientWidth;
    root.style.setProperty("--sbw", scrollbar + "px");
    trackW = Math.max(50, scroller.clientWidth - labelW);
    const panel = document.getElementById("details");
    if (panel) {
      const room = window.innerHeight - (panel.getBoundingClientRect().top + window.scrollY) - 10;
      panel.style.height = Math.max(root.offsetHeight, room, 300) + "px";
    }
  }

  function setSpacer() {
    const total = count * ROW;
    scaled = total > MAX_SCROLL_PX;
    spacerH = scaled ? MAX_SCROLL_PX : total;
    spacer.style.height = spacerH + "px";
  }

  function visibleRows() {
    return scroller.clientHeight / ROW;
  }

  function firstFloat() {
    const st = scroller.scrollTop;
    if (!scaled) return st / ROW;
    const room = Math.max(1, spacerH - scroller.clientHeight);
    return (st / room) * Math.max(0, count - visibleRows());
  }

  function scrollToPos(p) {
    p = Math.max(0, Math.min(p, count - visibleRows()));
    if (!scaled) scroller.scrollTop = p * ROW;
    else scroller.scrollTop = (p / Math.max(1, count - visibleRows())) * Math.max(1, spacerH - scroller.clientHeight);
  }

  function topOf(p, f) {
    return scaled ? scroller.scrollTop + (p - f) * ROW : p * ROW;
  }

  // -- the rows --------------------------------------------------------------------------
  function makeRow() {
    const row = el("div", null, "wf-row");
    const label = el("div", null, "wf-label");
    const guides = el("span", null, "wf-guides");
    const chev = el("button", null, "wf-chev");
    chev.type = "button";
    chev.tabIndex = -1;
    chev.appendChild(cv.icon("chevron"));
    const iError = cv.icon("error", "error");
    const iOrphan = cv.icon("warn", "its parent is not in the trace");
    const iSkew = cv.icon("clock", "outside its parent's time (clock skew?)");
    const name = el("span", null, "wf-name");
    const svc = el("span", null, "wf-svc");
    const hidden = el("span", null, "wf-hidden");
    label.append(guides, chev, iError, iOrphan, iSkew, name, svc, hidden);
    const track = el("div", null, "wf-track");
    const bar = el("div", null, "wf-bar");
    const dur = el("span", null, "wf-dur");
    track.append(bar, dur);
    row.append(label, track);
    row._p = { label, guides, chev, iError, iOrphan, iSkew, name, svc, hidden, track, bar, dur, marks: [] };
    spacer.appendChild(row);
    return row;
  }

  function fill(rowEl, r, top) {
    const p = rowEl._p;
    rowEl._row = r;
    rowEl.dataset.row = String(r);
    rowEl.style.transform = "translateY(" + top + "px)";
    rowEl.style.display = "";
    rowEl.classList.toggle("sel", r === sel);
    rowEl.classList.toggle("match", matches !== null && matches[r] === 1);
    const flags = W.flags[r];
    const err = (flags & FLAG_ERROR) !== 0;
    p.label.classList.toggle("err", err);
    p.guides.style.width = Math.min(W.depth[r] * indent, labelW * 0.6) + "px";
    if (hasChildren(r)) {
      p.chev.className = "wf-chev";
      const open = !collapsed[r];
      p.chev.setAttribute("aria-expanded", open ? "true" : "false");
      p.chev.title = (open ? "Collapse: hide " : "Expand: show ") + (stop[r] - r - 1) + " spans";
    } else {
      p.chev.className = "wf-chev leaf";
      p.chev.removeAttribute("aria-expanded");
    }
    p.iError.style.display = err ? "" : "none";
    p.iOrphan.style.display = flags & FLAG_ORPHAN ? "" : "none";
    p.iSkew.style.display = flags & FLAG_SKEWED ? "" : "none";
    p.name.textContent = W.names[W.name[r]];
    const svc = W.service[r];
    p.svc.textContent = parent[r] < 0 || W.service[parent[r]] !== svc ? W.services[svc] : "";
    if (collapsed[r]) {
      const hidden = stop[r] - r - 1;
      p.hidden.textContent = "+" + hidden.toLocaleString("en");
      p.hidden.title = hidden + " spans hidden";
      p.hidden.style.display = "";
    } else {
      p.hidden.style.display = "none";
    }
    // the bar, its duration, its events
    const k = trackW / (v1 - v0);
    const s = W.start[r], e = W.end[r];
    const x = (s - v0) * k, x2 = (e - v0) * k;
    const text = cv.durationText(e - s);
    if (x2 < -1 || x > trackW + 1) {
      p.bar.style.display = "none";
      p.dur.textContent = text + (x2 < 0 ? " ←" : " →");
      p.dur.style.left = x2 < 0 ? "4px" : "";
      p.dur.style.right = x2 < 0 ? "" : "4px";
    } else {
      const left = Math.max(x, -2), right = Math.min(Math.max(x2, x + 2), trackW + 2);
      p.bar.style.display = "";
      p.bar.style.left = left + "px";
      p.bar.style.width = Math.max(2, right - left) + "px";
      p.bar.style.background = W.colors[svc];
      p.bar.classList.toggle("err", err);
      p.dur.textContent = text;
      const w = text.length * 6.2 + 4;
      p.dur.style.right = "";
      p.dur.style.color = "";
      if (right + 4 + w <= trackW) p.dur.style.left = right + 4 + "px";
      else if (left - 4 - w >= 0) p.dur.style.left = left - 4 - w + "px";
      else {
        p.dur.style.left = Math.max(left, 0) + 4 + "px";
        p.dur.style.color = "#fff";
      }
    }
    let used = 0, lastX = -10;
    for (let i = evFirst[r], end = Math.min(evFirst[r + 1], evFirst[r] + MAX_MARKS); i < end; i++) {
      const ex = (W.eventTime[i] - v0) * k;
      if (ex < -2 || ex > trackW + 2 || Math.abs(ex - lastX) < 3) continue; // one mark a few px
      lastX = ex;
      let mark = p.marks[used];
      if (!mark) {
        mark = el("span", null, "wf-mark");
        p.track.appendChild(mark);
        p.marks.push(mark);
      }
      mark.style.display = "";
      mark.style.left = ex + "px";
      mark.dataset.e = String(i);
      mark.classList.toggle("exc", W.eventNames[W.eventName[i]] === "exception");
      used++;
    }
    for (let i = used; i < p.marks.length; i++) p.marks[i].style.display = "none";
    for (const hook of rowHooks) hook(rowEl, r, { v0: v0, v1: v1, trackW: trackW });
  }

  let drawnFirst = 0;
  function render() {
    frame = 0;
    if (!count) return;
    const f = firstFloat();
    const a = Math.max(0, Math.floor(f) - OVERSCAN);
    const b = Math.min(count, Math.ceil(f + visibleRows()) + OVERSCAN);
    while (pool.length < b - a) pool.push(makeRow());
    for (let k = 0; k < b - a; k++) fill(pool[k], order[a + k], topOf(a + k, f));
    for (let k = b - a; k < pool.length; k++) {
      pool[k].style.display = "none";
      pool[k]._row = undefined;
      delete pool[k].dataset.row;
    }
    drawnFirst = Math.min(count - 1, Math.floor(f));
    placeWindow(f);
    root.dataset.firstRow = String(order[drawnFirst]);
    root.dataset.shown = String(count);
    root.dispatchEvent(new CustomEvent("cvtrace:drawn", { detail: { first: order[drawnFirst], at: performance.now() } }));
  }

  function schedule() {
    if (!frame) frame = requestAnimationFrame(render);
  }

  // -- time axis: ruler, grid lines, zoom -------------------------------------------------
  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
    return 10 * power;
  }

  function drawRuler() {
    const k = trackW / (v1 - v0);
    const step = niceStep(v1 - v0, Math.max(2, trackW / 90));
    let used = 0;
    const first = Math.ceil(v0 / step) * step;
    for (let t = first; t <= v1 + step * 1e-9; t += step) {
      let tick = ticks[used];
      if (!tick) {
        tick = el("div", null, "wf-tick");
        rulerTrack.appendChild(tick);
        ticks.push(tick);
      }
      tick.style.display = "";
      const x = (t - v0) * k;
      tick.style.left = x + "px";
      // no label where it would be cut off at the right edge
      tick.textContent = x > trackW - 34 ? "" : Math.abs(t) < step * 1e-6 ? "0" : cv.durationText(t);
      used++;
    }
    for (let i = used; i < ticks.length; i++) ticks[i].style.display = "none";
    gridLines.style.left = labelW + "px";
    gridLines.style.backgroundSize = step * k + "px 100%";
    gridLines.style.backgroundPositionX = (first - v0) * k + "px";
    const whole = v0 <= 0 && v1 >= fullEnd;
    zoomText.textContent = whole ? "whole trace" : cv.durationText(v0) + " – " + cv.durationText(v1);
    root.dataset.view = v0 + "," + v1;
  }

  function setView(a, b) {
    const minSpan = Math.max(fullEnd * 1e-7, 1e-6);
    let width = Math.max(b - a, minSpan);
    if (width >= fullEnd) {
      a = 0;
      width = fullEnd;
    }
    a = Math.max(0, Math.min(a, fullEnd - width));
    v0 = a;
    v1 = a + width;
    drawRuler();
    placeWindow(firstFloat());
    schedule();
  }

  function zoomBy(factor, center) {
    const c = center === undefined ? (v0 + v1) / 2 : center;
    const width = (v1 - v0) * factor;
    setView(c - (c - v0) * factor, c - (c - v0) * factor + width);
  }

  function resetZoom() {
    setView(0, fullEnd);
  }

  // -- the overview (minimap) --------------------------------------------------------------
  function drawMinimap() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(minimap.clientWidth * dpr));
    const h = Math.max(1, Math.round(minimap.clientHeight * dpr));
    if (!minimap.clientWidth) return; // hidden (another tab)
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    if (!count) return;
    drawOverviewBars(ctx, w, h, dpr);
    const view = { w: w, h: h, dpr: dpr, X: w / fullEnd, count: count, order: order };
    if (matches) drawMatches(ctx, view);
    for (const hook of minimapHooks) hook(ctx, view);
  }

  // the search's matches over the overview: per pixel row, the extent of the rows
  // that match, in the match colour (a collapsed row stands for its hidden matches)
  function drawMatches(ctx, view) {
    const h = view.h, X = view.X;
    ctx.fillStyle = color("--match");
    const rowH = Math.max(2, h / count);
    let py = -1, lo = Infinity, hi = -Infinity;
    const flush = function () {
      if (hi >= lo) ctx.fillRect(Math.max(0, lo * X - 1), py, Math.max(3, (hi - lo) * X + 2), Math.min(rowH, h - py));
      lo = Infinity;
      hi = -Infinity;
    };
    for (let p = 0; p < count; p++) {
      const r = order[p];
      let hit = matches[r] === 1;
      if (!hit && collapsed[r]) {
        for (let j = r + 1; j < stop[r]; j++) if (matches[j]) { hit = true; break; }
      }
      if (!hit) continue;
      const y = Math.floor((p * h) / count);
      if (y !== py) {
        flush();
        py = y;
      }
      if (W.start[r] < lo) lo = W.start[r];
      if (W.end[r] > hi) hi = W.end[r];
    }
    flush();
  }

  function drawOverviewBars(ctx, w, h, dpr) {
    const X = w / fullEnd;
    const errColor = W.errorColor;
    if (count <= h) {
      const rowH = h / count;
      for (let p = 0; p < count; p++) {
        const r = order[p];
        ctx.fillStyle = W.colors[W.service[r]];
        const x = W.start[r] * X;
        ctx.fillRect(x, p * rowH, Math.max(1, (W.end[r] - W.start[r]) * X), Math.max(1, rowH * 0.75));
        if (W.flags[r] & FLAG_ERROR) {
          ctx.fillStyle = errColor;
          ctx.fillRect(x, p * rowH, Math.max(2, dpr * 2), Math.max(1, rowH * 0.75));
        }
      }
      return;
    }
    // more rows than pixels: per pixel row, each service's extent over its rows
    const services = W.services.length;
    const lo = new Float64Array(services), hi = new Float64Array(services);
    let py = 0, errAt = Infinity;
    const flush = function (y) {
      for (let sv = 0; sv < services; sv++) {
        if (hi[sv] < lo[sv]) continue;
        ctx.fillStyle = W.colors[sv];
        ctx.fillRect(lo[sv] * X, y, Math.max(1, (hi[sv] - lo[sv]) * X), 1);
      }
      if (errAt !== Infinity) {
        ctx.fillStyle = errColor;
        ctx.fillRect(errAt * X, y, Math.max(2, dpr * 2), 1);
      }
      lo.fill(Infinity);
      hi.fill(-Infinity);
      errAt = Infinity;
    };
    lo.fill(Infinity);
    hi.fill(-Infinity);
    for (let p = 0; p < count; p++) {
      const y = Math.floor((p * h) / count);
      if (y !== py) {
        flush(py);
        py = y;
      }
      const r = order[p], sv = W.service[r];
      if (W.start[r] < lo[sv]) lo[sv] = W.start[r];
      if (W.end[r] > hi[sv]) hi[sv] = W.end[r];
      if (W.flags[r] & FLAG_ERROR && W.start[r] < errAt) errAt = W.start[r];
    }
    flush(py);
  }

  function placeWindow(f) {
    if (!count) return;
    const rows = Math.min(count, visibleRows());
    windowEl.style.left = (v0 / fullEnd) * 100 + "%";
    windowEl.style.width = ((v1 - v0) / fullEnd) * 100 + "%";
    windowEl.style.top = (Math.min(f, count - rows) / count) * 100 + "%";
    windowEl.style.height = (rows / count) * 100 + "%";
  }

  function minimapDrag() {
    let drag = null;
    minimap.addEventListener("pointerdown", function (event) {
      if (event.button !== 0) return;
      const box = minimap.getBoundingClientRect();
      let mode = "move";
      if (event.target.classList.contains("left")) mode = "left";
      else if (event.target.classList.contains("right")) mode = "right";
      else if (event.target !== windowEl) {
        // a click beside the window: centre the window there, then drag it on
        const t = ((event.clientX - box.left) / box.width) * fullEnd;
        const p = ((event.clientY - box.top) / box.height) * count;
        if (v1 - v0 < fullEnd) setView(t - (v1 - v0) / 2, t + (v1 - v0) / 2);
        scrollToPos(p - visibleRows() / 2);
        render();
      }
      drag = { mode: mode, x: event.clientX, y: event.clientY, v0: v0, v1: v1, f: firstFloat(), box: box };
      windowEl.classList.add("dragging");
      minimap.setPointerCapture(event.pointerId);
      event.preventDefault();
    });
    minimap.addEventListener("pointermove", function (event) {
      if (!drag) return;
      const dt = ((event.clientX - drag.x) / drag.box.width) * fullEnd;
      const dp = ((event.clientY - drag.y) / drag.box.height) * count;
      if (drag.mode === "move") {
        if (drag.v1 - drag.v0 < fullEnd) setView(drag.v0 + dt, drag.v1 + dt);
        scrollToPos(drag.f + dp);
      } else if (drag.mode === "left") {
        setView(Math.min(drag.v0 + dt, drag.v1 - fullEnd * 1e-4), drag.v1);
      } else {
        setView(drag.v0, Math.max(drag.v1 + dt, drag.v0 + fullEnd * 1e-4));
      }
    });
    const end = function () {
      drag = null;
      windowEl.classList.remove("dragging");
    };
    minimap.addEventListener("pointerup", end);
    minimap.addEventListener("pointercancel", end);
  }

  function rulerDrag() {
    let from = null;
    const timeAt = (x) => v0 + (x / trackW) * (v1 - v0);
    rulerTrack.addEventListener("pointerdown", function (event) {
      if (event.button !== 0) return;
      from = event.clientX - rulerTrack.getBoundingClientRect().left;
      brush.style.left = from + "px";
      brush.style.width = "0px";
      brush.hidden = false;
      rulerTrack.setPointerCapture(event.pointerId);
      event.preventDefault();
    });
    rulerTrack.addEventListener("pointermove", function (event) {
      if (from === null) return;
      const x = Math.max(0, Math.min(trackW, event.clientX - rulerTrack.getBoundingClientRect().left));
      brush.style.left = Math.min(from, x) + "px";
      brush.style.width = Math.abs(x - from) + "px";
    });
    rulerTrack.addEventListener("pointerup", function (event) {
      if (from === null) return;
      const x = Math.max(0, Math.min(trackW, event.clientX - rulerTrack.getBoundingClientRect().left));
      brush.hidden = true;
      if (Math.abs(x - from) > 3) setView(timeAt(Math.min(from, x)), timeAt(Math.max(from, x)));
      from = null;
    });
    rulerTrack.addEventListener("dblclick", resetZoom);
    let start = null;
    splitter.addEventListener("pointerdown", function (event) {
      start = { x: event.clientX, w: labelW };
      splitter.setPointerCapture(event.pointerId);
      event.preventDefault();
    });
    splitter.addEventListener("pointermove", function (event) {
      if (!start) return;
      labelW = start.w + event.clientX - start.x;
      relayoutAll();
    });
    splitter.addEventListener("pointerup", function () {
      start = null;
      try {
        localStorage.setItem("cvtrace.labelWidth", String(labelW));
      } catch (err) {
        // kept for this page only
      }
    });
  }

  // -- the tree: collapse, expand, reveal ---------------------------------------------------
  // rebuild the visible rows, keeping `anchor` where it is on screen
  function relayoutTree(anchor) {
    const f = firstFloat();
    const shownBefore = anchor >= 0 ? posOf(shownAs(anchor)) : -1;
    const offset = shownBefore >= 0 ? shownBefore - f : 0;
    rebuildOrder();
    setSpacer();
    layoutSizes();
    if (anchor >= 0) scrollToPos(posOf(shownAs(anchor)) - offset);
    else scrollToPos(f);
    drawMinimap();
    showCount();
    render();
    rememberView();
  }

  // -- the view in the URL: a reload or a shared link shows the same tree ----------------
  // ?span=<selected>&depth=<"Collapse to" level>&collapse=<ids>&expand=<ids>: the two id
  // lists are the rows that differ from the depth's own folding, so the URL stays short.
  const URL_IDS = 200; // at most this many ids a list: a longer URL is no link to share

  function foldedAtDepth(row, levels) {
    return levels > 0 && W.depth[row] === levels - 1 && hasChildren(row) ? 1 : 0;
  }

  function applyView(levels, folded, opened) {
    depthShown = levels;
    for (let i = 0; i < n; i++) collapsed[i] = foldedAtDepth(i, levels);
    for (const spanId of folded) {
      const row = rowOf(spanId);
      if (row >= 0 && hasChildren(row)) collapsed[row] = 1;
    }
    for (const spanId of opened) {
      const row = rowOf(spanId);
      if (row >= 0) collapsed[row] = 0;
    }
  }

  function rememberView() {
    const folded = [], opened = [];
    for (let i = 0; i < n && folded.length < URL_IDS && opened.length < URL_IDS; i++) {
      if (collapsed[i] !== foldedAtDepth(i, depthShown)) (collapsed[i] ? folded : opened).push(spanIdAt(i));
    }
    const params = new URLSearchParams(window.location.search);
    for (const name of ["span", "depth", "collapse", "expand"]) params.delete(name);
    const parts = params.toString() ? [params.toString()] : [];
    if (sel >= 0) parts.push("span=" + spanIdAt(sel));
    if (depthShown) parts.push("depth=" + depthShown);
    if (folded.length) parts.push("collapse=" + folded.join(","));
    if (opened.length) parts.push("expand=" + opened.join(","));
    const query = parts.length ? "?" + parts.join("&") : "";
    history.replaceState(null, "", window.location.pathname + query + window.location.hash);
  }

  function toggle(row) {
    if (!hasChildren(row)) return;
    collapsed[row] ^= 1;
    relayoutTree(row);
    if (cv.details.current() === spanIdAt(row)) cv.details.rerender();
  }

  function setCollapsed(row, value) {
    if (hasChildren(row) && collapsed[row] !== value) toggle(row);
  }

  function expandAll() {
    depthShown = 0;
    collapsed.fill(0);
    relayoutTree(sel >= 0 ? sel : order[drawnFirst]);
  }

  function collapseToDepth(levels) {
    depthShown = levels;
    for (let i = 0; i < n; i++) collapsed[i] = foldedAtDepth(i, levels);
    relayoutTree(sel >= 0 ? shownAs(sel) : order[drawnFirst]);
  }

  function reveal(row) {
    let changed = false;
    for (let p = parent[row]; p >= 0; p = parent[p]) {
      if (collapsed[p]) {
        collapsed[p] = 0;
        changed = true;
      }
    }
    if (changed) relayoutTree(row);
  }

  function showCount() {
    countText.textContent = count === n
      ? n.toLocaleString("en") + " spans"
      : count.toLocaleString("en") + " of " + n.toLocaleString("en") + " spans shown";
  }

  // -- selection -------------------------------------------------------------------------
  function ensureVisible(row) {
    const p = posOf(row);
    if (p < 0) return;
    const f = firstFloat(), rows = visibleRows();
    if (p < f + 1 || p > f + rows - 2) scrollToPos(p - rows / 3);
    // and its bar in the time view, if zoomed away from it
    if (W.end[row] < v0 || W.start[row] > v1) {
      const width = v1 - v0;
      setView(W.start[row] - width * 0.1, W.start[row] + width * 0.9);
    }
  }

  function select(row, openDetails) {
    if (row < 0 || row >= n) return;
    reveal(row);
    sel = row;
    ensureVisible(row);
    render();
    const spanId = spanIdAt(row);
    root.dataset.selected = spanId;
    rememberView();
    if (openDetails || cv.details.isOpen()) cv.details.open(spanId, row);
  }

  function move(delta) {
    if (!count) return;
    let p = sel >= 0 ? posOf(shownAs(sel)) : -1;
    p = p < 0 ? drawnFirst : Math.max(0, Math.min(count - 1, p + delta));
    select(order[p], false);
  }

  function nextError(direction) {
    if (!errorRows.length) {
      errorCount.textContent = "no errors";
      return;
    }
    let k;
    if (direction > 0) {
      k = errorRows.findIndex((r) => r > sel);
      if (k < 0) k = 0;
    } else {
      k = -1;
      for (let i = errorRows.length - 1; i >= 0; i--) if (errorRows[i] < sel) { k = i; break; }
      if (k < 0) k = errorRows.length - 1;
    }
    select(errorRows[k], true);
    errorCount.textContent = "error " + (k + 1) + " of " + errorRows.length;
  }

  function slowest() {
    if (!n) return;
    if (!selfTime) computeSelfTime();
    let best = 0;
    for (let i = 1; i < n; i++) if (selfTime[i] > selfTime[best]) best = i;
    select(best, true);
  }

  // -- matches (the search is trace-search.js's) ---------------------------------------
  // which: Uint8Array(n), 1 = the row matches; null clears
  function setMatches(which) {
    matches = which;
    if (!which) {
      matchRows = null;
    } else {
      let hits = 0;
      for (let r = 0; r < n; r++) hits += which[r];
      matchRows = new Int32Array(hits);
      for (let r = 0, k = 0; r < n; r++) if (which[r]) matchRows[k++] = r;
    }
    render();
    drawMinimap();
    return matchRows ? matchRows.length : 0;
  }

  // select the next (direction 1) or previous (-1) match; returns its number from 0, or -1
  function nextMatch(direction) {
    if (!matchRows || !matchRows.length) return -1;
    let k;
    if (direction > 0) {
      k = matchRows.findIndex((r) => r > sel);
      if (k < 0) k = 0;
    } else {
      k = matchRows.length - 1;
      while (k >= 0 && matchRows[k] >= sel) k--;
      if (k < 0) k = matchRows.length - 1;
    }
    select(matchRows[k], cv.details.isOpen());
    return k;
  }

  // a colour of the stylesheet (light-dark() pairs resolved), for the canvas
  const probe = el("span");
  probe.hidden = true;
  function color(name) {
    if (!probe.isConnected) document.body.appendChild(probe);
    probe.style.color = "var(" + name + ")";
    return getComputedStyle(probe).color;
  }

  // -- self time, as the hover and the details panel say it ---------------------------
  function percentText(ms) {
    const pct = (100 * ms) / fullEnd;
    return (pct >= 10 || pct === 0 ? pct.toFixed(0) : pct >= 1 ? pct.toFixed(1) : pct.toPrecision(1)) + "%";
  }

  function selfOf(row) {
    if (!selfTime) computeSelfTime();
    return selfTime[row];
  }

  function selfText(row) {
    const ms = selfOf(row);
    return cv.durationText(ms) + " (" + percentText(ms) + " of the trace)";
  }

  // -- hover ---------------------------------------------------------------------------------
  const notes = new Map();
  const notesAsked = new Set();
  let tipRow = -1, tipEvent = -1;

  function askNotes(row) {
    const chunk = Math.floor(row / NOTE_CHUNK);
    if (notesAsked.has(chunk)) return;
    notesAsked.add(chunk);
    const first = chunk * NOTE_CHUNK;
    fetch(header.dataset.notesUrl + "&rows=" + first + "-" + (first + NOTE_CHUNK), { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (answer) {
        for (const key of Object.keys(answer)) notes.set(Number(key), answer[key]);
        if (tipRow >= first && tipRow < first + NOTE_CHUNK && !tip.hidden) fillTip(tipRow, tipEvent);
      })
      .catch(() => notesAsked.delete(chunk)); // asked again on the next hover
  }

  function tipLine(key, value) {
    const line = el("div", null, "row");
    line.append(el("span", key, "k"), el("span", value, "v"));
    return line;
  }

  function fillTip(r, e) {
    tipRow = r;
    tipEvent = e;
    const parts = [el("b", W.names[W.name[r]])];
    const svc = el("div");
    const swatch = el("span", null, "swatch");
    swatch.style.background = W.colors[W.service[r]];
    svc.append(swatch, document.createTextNode(W.services[W.service[r]]));
    parts.push(svc);
    parts.push(tipLine("duration", cv.durationText(W.end[r] - W.start[r]) + " (" + percentText(W.end[r] - W.start[r]) + " of the trace)"));
    parts.push(tipLine("self time", selfText(r)));
    parts.push(tipLine("start", "+" + cv.durationText(W.start[r])));
    const flags = W.flags[r];
    if (flags & FLAG_ERROR) {
      const line = tipLine("error", W.notes[W.note[r]] || "status error");
      line.classList.add("error");
      parts.push(line);
    }
    if (flags & FLAG_ORPHAN) parts.push(el("div", "its parent is not in this trace", "warn"));
    if (flags & FLAG_SKEWED) parts.push(el("div", "outside its parent's time (clock skew?)", "warn"));
    if (collapsed[r]) parts.push(el("div", (stop[r] - r - 1) + " spans hidden (click the chevron to show)", "muted"));
    const evCount = evFirst[r + 1] - evFirst[r];
    if (e >= 0) {
      parts.push(tipLine("event", W.eventNames[W.eventName[e]] + " at +" + cv.durationText(W.eventTime[e] - W.start[r]) + " in the span"));
    } else if (evCount) {
      parts.push(tipLine("events", String(evCount)));
    }
    const pairs = notes.get(r);
    if (pairs) for (const [k, v] of pairs) parts.push(tipLine(k, v));
    else askNotes(r);
    tip.replaceChildren(...parts);
    tip.hidden = false;
  }

  function hover(event) {
    const rowEl = event.target.closest && event.target.closest(".wf-row");
    if (!rowEl || rowEl._row === undefined) {
      tip.hidden = true;
      return;
    }
    const e = event.target.dataset && event.target.dataset.e !== undefined ? Number(event.target.dataset.e) : -1;
    if (rowEl._row !== tipRow || e !== tipEvent || tip.hidden) fillTip(rowEl._row, e);
    const x = Math.min(event.clientX + 16, window.innerWidth - tip.offsetWidth - 8);
    const y = event.clientY + 18 + tip.offsetHeight > window.innerHeight ? event.clientY - tip.offsetHeight - 10 : event.clientY + 18;
    tip.style.left = Math.max(4, x) + "px";
    tip.style.top = Math.max(4, y) + "px";
  }

  // -- events ----------------------------------------------------------------------------------
  function relayoutAll() {
    if (!root.clientWidth) return; // hidden (another tab)
    layoutSizes();
    drawRuler();
    drawMinimap();
    render();
  }

  function listen() {
    scroller.addEventListener("scroll", schedule, { passive: true });
    // a sideways wheel (trackpad, shift+wheel) pans a zoomed time axis; the rest scrolls
    scroller.addEventListener("wheel", function (event) {
      if (Math.abs(event.deltaX) > Math.abs(event.deltaY) && v1 - v0 < fullEnd) {
        const dt = (event.deltaX / trackW) * (v1 - v0);
        setView(v0 + dt, v1 + dt);
        event.preventDefault();
      }
    }, { passive: false });
    // the wheel over the overview and the ruler scrolls the rows too
    for (const part of [overview, ruler]) {
      part.addEventListener("wheel", function (event) {
        scroller.scrollTop += event.deltaY;
        event.preventDefault();
      }, { passive: false });
    }
    scroller.addEventListener("mousemove", hover);
    scroller.addEventListener("mouseleave", () => { tip.hidden = true; tipRow = -1; });
    scroller.addEventListener("click", function (event) {
      const rowEl = event.target.closest(".wf-row");
      if (!rowEl || rowEl._row === undefined) return;
      if (event.target.closest(".wf-chev")) toggle(rowEl._row);
      else select(rowEl._row, true);
    });
    minimapDrag();
    rulerDrag();
    new ResizeObserver(() => relayoutAll()).observe(root);
    window.addEventListener("resize", relayoutAll);
    document.addEventListener("cvtrace:theme", drawMinimap);
    cv.onKeys(keys);
    cv.details.setHooks({
      select: function (spanId) {
        const row = rowOf(spanId);
        if (row >= 0) select(row, true);
      },
      subtree: function (spanId) {
        const row = rowOf(spanId);
        if (row < 0 || !hasChildren(row)) return null;
        return { collapsed: collapsed[row] === 1, hidden: stop[row] - row - 1 };
      },
      toggle: function (spanId) {
        const row = rowOf(spanId);
        if (row >= 0) toggle(row);
      },
      facts: function (spanId) {
        const row = rowOf(spanId);
        if (row < 0) return [];
        return [["self time", selfText(row)]];
      },
    });
  }

  function keys(event) {
    const page = Math.max(1, Math.floor(visibleRows()) - 1);
    switch (event.key) {
      case "j": case "ArrowDown": move(1); return true;
      case "k": case "ArrowUp": move(-1); return true;
      case "PageDown": move(page); return true;
      case "PageUp": move(-page); return true;
      case "Home": move(-count); return true;
      case "End": move(count); return true;
      case "Enter":
        if (sel >= 0) cv.details.open(spanIdAt(sel), sel);
        return sel >= 0;
      case "[": case "ArrowLeft":
        if (sel < 0) return false;
        if (hasChildren(sel) && !collapsed[sel]) setCollapsed(sel, 1);
        else if (event.key === "ArrowLeft" && parent[sel] >= 0) select(parent[sel], false);
        return true;
      case "]": case "ArrowRight":
        if (sel >= 0) setCollapsed(sel, 0);
        return sel >= 0;
      case "e": nextError(1); return true;
      case "E": nextError(-1); return true;
      case "s": slowest(); return true;
      case "+": case "=": zoomBy(0.5); return true;
      case "-": case "_": zoomBy(2); return true;
      case "0": resetZoom(); return true;
      case "Escape":
        if (cv.details.isOpen()) cv.details.close();
        else if (!(escapeHook && escapeHook())) return false;
        return true;
      default: return false;
    }
  }

  // what the page's other parts use (cv.onWaterfall)
  function api() {
    return {
      data: W, // the columns of waterfall.json, decoded
      typed: typed, // decodes a {dtype, bdata} column (figures.typed_array)
      rows: n,
      parent: parent,
      stop: stop,
      duration: fullEnd, // ms: from the trace's start to its last span's end
      toolbar: toolbar,
      root: root,
      rowOf: rowOf,
      spanIdAt: spanIdAt,
      select: select,
      selected: () => sel,
      selfTime: selfOf,
      percentText: percentText,
      redraw: function () {
        render();
        drawMinimap();
      },
      relayout: relayoutAll,
      color: color,
      setMatches: setMatches,
      nextMatch: nextMatch,
      onRow: (fn) => rowHooks.push(fn),
      onMinimap: (fn) => minimapHooks.push(fn),
      onEscape: (fn) => { escapeHook = fn; },
    };
  }

  function showTreeFacts(tree) {
    document.getElementById("depth").textContent = String(tree.depth);
    const orphan = document.getElementById("orphan-warning");
    const skew = document.getElementById("skew-warning");
    orphan.hidden = !tree.orphans;
    skew.hidden = !tree.skewed;
    orphan.lastElementChild.textContent = tree.orphans + " span(s) whose parent is missing, shown at top level.";
    skew.lastElementChild.textContent = tree.skewed + " span(s) outside their parent's time (clock skew?).";
    document.getElementById("tree-warnings").hidden = !(tree.orphans || tree.skewed);
  }

  rowsRequest.then(function (body) {
    load(body);
    showTreeFacts(body.tree);
    if (!n) {
      root.replaceChildren(el("p", "No spans.", "muted wf-empty"));
      return;
    }
    build();
    const ids = (list) => (list || "").split(",").filter(Boolean);
    applyView(Number(header.dataset.depth) || 0, ids(header.dataset.collapsed), ids(header.dataset.expanded));
    rebuildOrder();
    setSpacer();
    layoutSizes();
    v1 = fullEnd;
    drawRuler();
    showCount();
    listen();
    const focus = header.dataset.focus ? rowOf(header.dataset.focus) : -1;
    if (focus >= 0) select(focus, true);
    else render();
    drawMinimap();
    cv.waterfall = api();
    for (const fn of waiting.splice(0)) fn(cv.waterfall);
    document.body.dataset.waterfallMs = String(Math.round(performance.now() - started));
    document.body.dataset.waterfallReady = "1";
  }).catch(function (err) {
    root.replaceChildren(el("p", "Cannot draw the trace: " + err, "error"));
    throw err;
  });
})();
