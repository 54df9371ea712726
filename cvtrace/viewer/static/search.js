// cvtrace viewer, search page: the duration-over-time scatter (SVG; its data and axes
// come from figures.durations_data), the operation list of a service, sorting.
(function () {
  "use strict";
  const cv = window.cvtrace;
  const SVG = "http://www.w3.org/2000/svg";

  const serviceSelect = document.getElementById("service-select");
  const operationSelect = document.getElementById("operation-select");
  if (serviceSelect && operationSelect) {
    serviceSelect.addEventListener("change", function () {
      while (operationSelect.options.length > 1) operationSelect.remove(1);
      operationSelect.disabled = !serviceSelect.value;
      operationSelect.title = serviceSelect.value ? "" : "Choose a service first";
      if (!serviceSelect.value) return;
      fetch(serviceSelect.dataset.operationsUrl.replace("SERVICE", encodeURIComponent(serviceSelect.value)))
        .then((r) => r.json())
        .then(function (body) {
          for (const name of body.data || []) {
            const option = cv.el("option", name);
            option.value = name;
            operationSelect.appendChild(option);
          }
        });
    });
  }
  const sortSelect = document.getElementById("sort-select");
  if (sortSelect) sortSelect.addEventListener("change", () => sortSelect.form.requestSubmit());

  const data = cv.readJSON("durations-data");
  const box = document.getElementById("durations");
  if (!data || !box) return;
  const logBox = document.getElementById("log-scale");
  logBox.checked = data.log;
  const tip = cv.el("div", null, "tip");
  tip.hidden = true;
  document.body.appendChild(tip);

  function svg(tag, attrs, parent) {
    const node = document.createElementNS(SVG, tag);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    if (parent) parent.appendChild(node);
    return node;
  }

  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
    return 10 * power;
  }

  const TIME_STEPS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
    7200, 10800, 21600, 43200, 86400, 172800, 604800].map((s) => s * 1000);
  const pad2 = (n) => String(n).padStart(2, "0");

  function timeLabel(ms, step) {
    const d = new Date(ms);
    const hm = pad2(d.getUTCHours()) + ":" + pad2(d.getUTCMinutes());
    if (step >= 86400000) return d.getUTCFullYear() + "-" + pad2(d.getUTCMonth() + 1) + "-" + pad2(d.getUTCDate());
    if (step >= 3600000) return pad2(d.getUTCMonth() + 1) + "-" + pad2(d.getUTCDate()) + " " + hm;
    if (step >= 60000) return hm;
    const hms = hm + ":" + pad2(d.getUTCSeconds());
    if (step >= 1000) return hms;
    const digits = step >= 100 ? 1 : step >= 10 ? 2 : 3;
    return hms + "." + String(d.getUTCMilliseconds()).padStart(3, "0").slice(0, digits);
  }

  function draw() {
    const w = box.clientWidth, h = box.clientHeight;
    if (!w || !h) return;
    const m = { l: 58, r: 14, t: 10, b: 24 };
    const log = logBox.checked;
    const [x0, x1] = data.xRange;
    const [y0, y1] = log ? data.logRange : data.yRange;
    const floor = Math.pow(10, data.logRange[0]);
    const yv = (ms) => (log ? Math.log10(Math.max(ms, floor)) : ms);
    const X = (t) => m.l + (t - x0) / (x1 - x0) * (w - m.l - m.r);
    const Y = (v) => h - m.b - (v - y0) / (y1 - y0) * (h - m.t - m.b);
    const root = svg("svg", { viewBox: "0 0 " + w + " " + h, role: "img" });
    const grid = svg("g", { class: "grid" }, root);
    const axes = svg("g", { class: "axis" }, root);
    // duration axis
    const yTicks = [];
    if (log) {
      for (let p = Math.ceil(y0); p <= y1; p++) yTicks.push([p, Math.pow(10, p)]);
      if (yTicks.length < 3) {
        for (let p = Math.floor(y0); p <= y1; p++) {
          for (const k of [2, 5]) {
            const v = Math.log10(k * Math.pow(10, p));
            if (v >= y0 && v <= y1) yTicks.push([v, k * Math.pow(10, p)]);
          }
        }
      }
    } else {
      const step = niceStep(y1 - y0, 4);
      for (let v = 0; v <= y1 + 1e-9; v += step) yTicks.push([v, v]);
    }
    for (const [v, ms] of yTicks) {
      const y = Y(v);
      svg("line", { x1: m.l, x2: w - m.r, y1: y, y2: y }, grid);
      const text = svg("text", { x: m.l - 6, y: y + 4, "text-anchor": "end" }, axes);
      text.textContent = ms === 0 ? "0" : cv.durationText(ms);
    }
    // time axis (UTC)
    const step = TIME_STEPS.find((s) => (x1 - x0) / s <= Math.max(2, (w - m.l) / 110)) || TIME_STEPS[TIME_STEPS.length - 1];
    for (let t = Math.ceil(x0 / step) * step; t <= x1; t += step) {
      const x = X(t);
      svg("line", { x1: x, x2: x, y1: m.t, y2: h - m.b }, grid);
      const text = svg("text", { x: x, y: h - 6, "text-anchor": "middle" }, axes);
      text.textContent = timeLabel(t, step);
    }
    svg("line", { class: "axis-line", x1: m.l, x2: w - m.r, y1: h - m.b, y2: h - m.b }, root);
    // points, biggest first so small ones stay on top
    const order = data.traceId.map((_, i) => i).sort((a, b) => data.spans[b] - data.spans[a]);
    const points = svg("g", { class: "points" }, root);
    for (const i of order) {
      const link = svg("a", { href: box.dataset.traceBase + data.traceId[i] }, points);
      link.setAttribute("aria-label", data.service[i] + ": " + data.name[i] + ", " + cv.durationText(data.duration[i]));
      const circle = svg("circle", {
        cx: X(data.start[i]), cy: Y(yv(data.duration[i])),
        r: Math.min(12, 3.5 + Math.sqrt(data.spans[i]) / 2),
        fill: data.color[i],
      }, link);
      if (data.errors[i]) circle.setAttribute("class", "has-errors");
      circle.dataset.i = String(i);
    }
    box.replaceChildren(root);
    box.dataset.drawn = log ? "log" : "linear";
  }

  function showTip(event) {
    const i = event.target.dataset ? event.target.dataset.i : undefined;
    if (i === undefined) { tip.hidden = true; return; }
    const k = Number(i);
    tip.replaceChildren(
      cv.el("b", data.service[k] + ": " + data.name[k]),
      cv.el("div", cv.durationText(data.duration[k]) + ", " + data.spans[k] + " spans" +
        (data.errors[k] ? ", " + data.errors[k] + " errors" : "")),
      cv.el("div", new Date(data.start[k]).toISOString().replace("T", " ").replace("Z", " UTC"), "muted"));
    tip.hidden = false;
    const x = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
    tip.style.left = x + "px";
    tip.style.top = (event.clientY + 14) + "px";
  }

  box.addEventListener("mousemove", showTip);
  box.addEventListener("mouseleave", () => { tip.hidden = true; });
  logBox.addEventListener("change", draw);
  let pending = 0;
  window.addEventListener("resize", function () {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(draw);
  });
  draw();
})();

// the results' "same shape" links: the traces whose structure matches one (its root
// operation and its set of (service, operation) pairs), listed under it, each with a
// link to compare the two
(function () {
  "use strict";
  const cv = window.cvtrace;
  const table = document.getElementById("results");
  if (!table) return;
  table.addEventListener("click", function (event) {
    const button = event.target.closest("button.same-shape");
    if (!button) return;
    const tr = button.closest("tr");
    const open = tr.nextElementSibling && tr.nextElementSibling.classList.contains("shape-row") ? tr.nextElementSibling : null;
    if (open) {
      open.remove();
      button.setAttribute("aria-expanded", "false");
      return;
    }
    button.setAttribute("aria-expanded", "true");
    const row = cv.el("tr", null, "shape-row");
    const cell = cv.el("td", "Looking for traces of the same shape…", "muted");
    cell.colSpan = tr.children.length;
    row.appendChild(cell);
    tr.after(row);
    fetch(button.dataset.url, { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (body) {
        const found = body.data || [];
        cell.className = "";
        if (!found.length) {
          cell.replaceChildren(cv.el("span", "No other stored trace has this shape.", "muted"));
          return;
        }
        const list = cv.el("ul", null, "trace-list");
        const traceBase = tr.querySelector("a.trace-link").getAttribute("href").replace(/[^/]*$/, "");
        for (const t of found) {
          const li = cv.el("li");
          const a = cv.el("a", t.rootService + ": " + t.rootName, "trace-link");
          a.href = traceBase + t.traceID;
          const facts = " · " + cv.durationText(t.duration / 1000) + ", " + t.spanCount + " spans" +
            (t.errorCount ? ", " + t.errorCount + " errors" : "") + " · " +
            new Date(t.startTime / 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC") + " · ";
          const compare = cv.el("a", "compare", "compare-link");
          compare.href = button.dataset.compare + "&b=" + encodeURIComponent(t.traceID);
          li.append(a, document.createTextNode(facts), compare);
          list.appendChild(li);
        }
        cell.replaceChildren(cv.el("span", found.length + " traces of the same shape:", "muted"), list);
      })
      .catch(function (err) {
        cell.textContent = "Cannot list them: " + err.message;
      });
  });
})();
