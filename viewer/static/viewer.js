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
  // the page preloads this URL, so the figure downloads while plotly.js loads
  const figureRequest = fetch(header.dataset.figureUrl, { credentials: "same-origin" })
    .then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  const traceId = header.dataset.traceId;
  const collapsed = new Set((header.dataset.collapsed || "").split(",").filter(Boolean));
  const details = document.getElementById("details");
  let gd = null;
  let spanIds = [];

  function traceUrl(params) {
    const query = new URLSearchParams(params).toString();
    return window.location.pathname + (query ? "?" + query : "");
  }

  function highlight(spanId) {
    const row = spanIds.indexOf(spanId);
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
    return row >= 0 && row < spanIds.length ? row : -1;
  }

  const t0 = performance.now();
  figureRequest.then(function (figure) {
    return Plotly.newPlot("waterfall", figure.data, figure.layout, {
      displaylogo: false,
      scrollZoom: true,
      responsive: true,
    });
  }).then(function (plot) {
    gd = plot;
    const markers = gd.data.find((t) => t.meta === "spans");
    spanIds = markers ? Array.from(markers.customdata) : [];
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
        const spanId = spanIds[row];
        history.replaceState(null, "", traceUrl(Object.assign(
          collapsed.size ? { collapse: Array.from(collapsed).join(",") } : {}, { span: spanId })));
        showSpan(spanId);
      }
    }, true);
    if (header.dataset.focus) showSpan(header.dataset.focus);
    document.body.dataset.waterfallMs = String(Math.round(performance.now() - t0));
    document.body.dataset.waterfallReady = "1";
  }).catch(function (err) {
    document.getElementById("waterfall").replaceChildren(el("p", "Cannot draw the trace: " + err, "error"));
  });
})();
