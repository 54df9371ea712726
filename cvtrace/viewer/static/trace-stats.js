// cvtrace viewer, trace page: the statistics tab. One row per (service, operation), or
// per service, from /api/traces/{id}/stats: how many spans, their total, self and
// extreme durations, their errors; a repeated query (an N+1) is one row with its count
// and total. Sorted by any column (click its heading); most repeated first. A row's
// operation link finds its spans in the waterfall.
(function () {
  "use strict";
  const cv = window.cvtrace;
  const el = cv.el;
  const header = document.getElementById("trace-header");
  const panel = document.getElementById("trace-stats");
  if (!header || !panel || !header.dataset.statsUrl) return;

  const COLUMNS = [
    // key, heading, title, numeric
    ["service", "Service", "", false],
    ["operation", "Operation", "", false],
    ["count", "Count", "spans", true],
    ["totalDuration", "Total", "the spans' durations added up", true],
    ["avgDuration", "Avg", "total / count", true],
    ["selfDuration", "Self", "the spans' self times added up: their durations less their children's", true],
    ["selfShare", "Self %", "self time as a share of the trace's duration", true],
    ["minDuration", "Min", "", true],
    ["maxDuration", "Max", "", true],
    ["errors", "Errors", "spans with status error", true],
  ];
  let rows = null; // the answer's rows
  let traceUs = 1;
  let group = "operation";
  let sortKey = "count";
  let descending = true;
  let table = null;

  function grouped() {
    if (group === "operation") return rows;
    const by = new Map();
    for (const r of rows) {
      let g = by.get(r.service);
      if (!g) {
        g = { service: r.service, operation: "", operations: 0, count: 0, totalDuration: 0, selfDuration: 0, minDuration: Infinity, maxDuration: 0, errors: 0 };
        by.set(r.service, g);
      }
      g.operations++;
      g.count += r.count;
      g.totalDuration += r.totalDuration;
      g.selfDuration += r.selfDuration;
      g.minDuration = Math.min(g.minDuration, r.minDuration);
      g.maxDuration = Math.max(g.maxDuration, r.maxDuration);
      g.errors += r.errors;
    }
    return Array.from(by.values());
  }

  function value(r, key) {
    if (key === "avgDuration") return r.totalDuration / Math.max(1, r.count);
    if (key === "selfShare") return r.selfDuration / traceUs;
    return r[key];
  }

  function cell(r, key) {
    const ms = (us) => cv.durationText(us / 1000);
    switch (key) {
      case "count": case "errors": return Number(r[key]).toLocaleString("en");
      case "selfShare": return (100 * value(r, key)).toFixed(1) + "%";
      case "avgDuration": return ms(value(r, key));
      default: return ms(r[key]);
    }
  }

  function draw() {
    const list = grouped().slice();
    const sign = descending ? -1 : 1;
    list.sort(function (a, b) {
      const x = value(a, sortKey), y = value(b, sortKey);
      if (x !== y) return (x < y ? -1 : 1) * sign;
      return b.totalDuration - a.totalDuration;
    });
    const columns = COLUMNS.filter((c) => group === "operation" || c[0] !== "operation");
    const head = el("tr");
    for (const [key, text, title, numeric] of columns) {
      const th = el("th", text, numeric ? "num" : "");
      th.dataset.key = key;
      if (title) th.title = title;
      th.setAttribute("aria-sort", key === sortKey ? (descending ? "descending" : "ascending") : "none");
      th.tabIndex = 0;
      head.appendChild(th);
    }
    const body = el("tbody");
    for (const r of list) {
      const tr = el("tr");
      for (const [key, , , numeric] of columns) {
        if (key === "service") {
          const td = el("td", null, "svc-cell");
          const swatch = el("span", null, "swatch");
          const i = window.cvtrace.waterfall ? window.cvtrace.waterfall.data.services.indexOf(r.service) : -1;
          if (i >= 0) swatch.style.background = window.cvtrace.waterfall.data.colors[i];
          td.append(swatch, document.createTextNode(r.service + (group === "service" ? " (" + r.operations + " operations)" : "")));
          tr.appendChild(td);
        } else if (key === "operation") {
          const td = el("td", null, "op");
          const find = el("button", r.operation, "plain linklike find-op");
          find.type = "button";
          find.title = "Find these spans in the waterfall";
          find.addEventListener("click", function () {
            cv.showTab("waterfall");
            if (cv.traceSearch) cv.traceSearch.find(r.operation, r.service);
          });
          td.appendChild(find);
          tr.appendChild(td);
        } else {
          const td = el("td", cell(r, key), numeric ? "num" : "");
          if (key === "errors" && r.errors) td.classList.add("err");
          tr.appendChild(td);
        }
      }
      body.appendChild(tr);
    }
    const thead = el("thead");
    thead.appendChild(head);
    table.replaceChildren(thead, body);
    panel.dataset.rows = String(list.length);
    panel.dataset.sort = sortKey + (descending ? ":desc" : ":asc");
  }

  function build(answer) {
    rows = answer.data || [];
    const duration = Number(header.dataset.durationUs || 0);
    traceUs = Math.max(1, duration || rows.reduce((m, r) => Math.max(m, r.maxDuration), 0));
    const controls = el("div", null, "controls");
    const label = el("label", "Group by ");
    const select = el("select");
    select.id = "stats-group";
    for (const [v, text] of [["operation", "service and operation"], ["service", "service"]]) {
      select.appendChild(el("option", text)).value = v;
    }
    select.addEventListener("change", function () {
      group = select.value;
      draw();
    });
    label.appendChild(select);
    controls.append(label, el("span", rows.length + " operations · click a heading to sort · click an operation to find its spans", "muted"));
    table = el("table", null, "results stats");
    table.id = "stats-table";
    table.addEventListener("click", function (event) {
      const th = event.target.closest("th[data-key]");
      if (!th) return;
      const key = th.dataset.key;
      descending = key === sortKey ? !descending : !(key === "service" || key === "operation");
      sortKey = key;
      draw();
    });
    table.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && event.target.matches("th[data-key]")) event.target.click();
    });
    panel.replaceChildren(controls, table);
    draw();
    panel.dataset.ready = "1";
  }

  let asked = false;
  document.addEventListener("cvtrace:tab", function (event) {
    if (event.detail !== "trace-stats" || asked) return;
    asked = true;
    panel.replaceChildren(el("p", "Loading the statistics…", "muted"));
    fetch(header.dataset.statsUrl, { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(build)
      .catch(function (err) {
        asked = false;
        panel.replaceChildren(el("p", "Cannot load the statistics: " + err.message, "error"));
      });
  });
})();
