// cvtrace viewer: the compare, service map and metrics pages. Each asks /api for its
// analysis (cvtrace/viewer/analyses_api.py) and draws it; span-derived text only ever
// goes into the page with textContent, or into plotly as escaped text.
(function () {
  "use strict";

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function link(href, text, cls) {
    const a = el("a", text, cls);
    a.href = href;
    return a;
  }

  function readJSON(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  // plotly renders a little HTML in its text: escape what comes from spans
  function esc(text) {
    return String(text).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
  }

  // a duration in microseconds, for people: 850µs, 12.3ms, 4.56s
  function fmtUs(us) {
    const abs = Math.abs(us);
    if (abs < 1000) return us.toFixed(0) + "µs";
    if (abs < 1e6) return (us / 1000).toPrecision(3) + "ms";
    return (us / 1e6).toPrecision(3) + "s";
  }

  function signed(us) {
    return (us > 0 ? "+" : us < 0 ? "−" : "±") + fmtUs(Math.abs(us));
  }

  // GET a JSON answer; reject with the message of Jaeger's error envelope
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      return r.json().then(
        function (body) {
          if (!r.ok) {
            const msg = body && body.errors && body.errors[0] ? body.errors[0].msg : "";
            throw new Error("HTTP " + r.status + (msg ? ": " + msg : ""));
          }
          return body;
        },
        function () {
          throw new Error("HTTP " + r.status);
        },
      );
    });
  }

  function withQuery(base, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (Array.isArray(value)) value.forEach((v) => query.append(key, v));
      else if (value !== undefined && value !== null && value !== "") query.set(key, value);
    }
    return base + (base.includes("?") ? "&" : "?") + query.toString();
  }

  function traceHref(template, traceId, spanId) {
    const href = template.replace("TRACE", encodeURIComponent(traceId));
    return spanId ? withQuery(href, { span: spanId }) : href;
  }

  const colors = readJSON("service-colors") || {};
  const PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#B279A2", "#72B7B2", "#EECA3B"];
  function colorOf(service) {
    return colors[service] || PALETTE[Object.keys(colors).length % PALETTE.length];
  }
  const windows = readJSON("windows") || [];
  function lookbackMs(value) {
    const found = windows.find((w) => w[0] === value);
    return found ? found[2] : 3600000;
  }
  const PLOT_CONFIG = {
    displaylogo: false, responsive: true, showSendToCloud: false, showEditInChartStudio: false,
    modeBarButtonsToRemove: ["sendDataToCloud"],
  };

  // the page's colours (light-dark() pairs resolved) for plotly, which draws its own
  // background and text: charts follow the theme, and change with it (cvtrace:theme)
  function cssColor(name) {
    const probe = el("span");
    probe.style.color = "var(" + name + ")";
    probe.hidden = true;
    document.body.appendChild(probe);
    const color = getComputedStyle(probe).color;
    probe.remove();
    return color;
  }

  function themeColors() {
    const bg = cssColor("--bg"), fg = cssColor("--fg"), line = cssColor("--line");
    return {
      paper_bgcolor: bg, plot_bgcolor: bg, "font.color": fg,
      "xaxis.gridcolor": line, "yaxis.gridcolor": line, "xaxis.zerolinecolor": line,
      "yaxis.zerolinecolor": line, "xaxis.linecolor": line, "yaxis.linecolor": line,
      "legend.bgcolor": bg, "hoverlabel.bordercolor": line,
    };
  }

  // a layout with the theme's colours set in it
  function themed(spec) {
    const out = JSON.parse(JSON.stringify(spec));
    for (const [path, value] of Object.entries(themeColors())) {
      const keys = path.split(".");
      let at = out;
      for (const key of keys.slice(0, -1)) at = at[key] || (at[key] = {});
      at[keys[keys.length - 1]] = value;
    }
    return out;
  }

  document.addEventListener("cvtrace:theme", function () {
    if (!window.Plotly) return;
    const colors = themeColors();
    for (const gd of document.querySelectorAll(".js-plotly-plot")) window.Plotly.relayout(gd, colors);
    document.body.dataset.chartTheme = colors.paper_bgcolor;
  });

  function traceList(target, summaries, traceUrl) {
    target.replaceChildren();
    for (const s of summaries) {
      const li = el("li");
      li.appendChild(link(traceHref(traceUrl, s.traceID), s.rootService + ": " + s.rootName, "trace-link"));
      li.appendChild(
        el(
          "span",
          " " + fmtUs(s.duration) + ", " + s.spanCount + " spans" +
            (s.errorCount ? ", " + s.errorCount + " errors" : "") +
            ", " + new Date(s.startTime / 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC",
          "muted",
        ),
      );
      target.appendChild(li);
    }
  }

  // -- compare page -----------------------------------------------------------------
  const compare = document.getElementById("compare");
  if (compare) {
    const status = document.getElementById("compare-status");
    const { a, b } = compare.dataset;
    if (a && b) {
      getJSON(withQuery(compare.dataset.api, { a: a, b: b }))
        .then(function (body) {
          drawComparison(body.data);
          status.textContent = "";
          document.body.dataset.compareReady = "1";
        })
        .catch(function (err) {
          status.textContent = "Cannot compare: " + err.message;
          status.className = "error";
          document.body.dataset.compareReady = "1";
        });
    } else if (a) {
      getJSON(compare.dataset.sameShapeUrl.replace("TRACE", encodeURIComponent(a)))
        .then(function (body) {
          const list = document.getElementById("same-shape");
          status.textContent = body.data.length
            ? "Traces of the same shape as A (the same root operation and operations); pick one as B:"
            : "No other trace has the same shape as A yet.";
          for (const s of body.data) {
            const li = el("li");
            li.appendChild(
              link(withQuery(compare.dataset.compareUrl, { a: a, b: s.traceID }), s.rootName + " · " + fmtUs(s.duration)),
            );
            li.appendChild(el("span", " " + s.spanCount + " spans", "muted"));
            list.appendChild(li);
          }
          document.body.dataset.compareReady = "1";
        })
        .catch(function (err) {
          status.textContent = "Cannot look for traces of the same shape: " + err.message;
          status.className = "error";
        });
    }
  }

  function changed(node) {
    if (node.presence !== "both") return false;
    if (node.a.count !== node.b.count) return true;
    const big = Math.max(node.a.totalDuration, node.b.totalDuration);
    return Math.abs(node.totalDiff) >= 1000 && Math.abs(node.totalDiff) > 0.2 * big;
  }

  function drawComparison(data) {
    const traceUrl = compare.dataset.traceUrl;
    const heads = document.getElementById("compare-heads");
    for (const side of ["a", "b"]) {
      const t = data[side];
      const head = el("div", null, "head " + side);
      head.appendChild(el("strong", side.toUpperCase() + " "));
      head.appendChild(link(traceHref(traceUrl, t.traceID), t.rootService + ": " + t.rootName, "trace-link"));
      head.appendChild(el("div", fmtUs(t.duration) + " · " + t.spanCount + " spans · " + t.traceID, "muted"));
      heads.appendChild(head);
    }
    const diff = data.b.duration - data.a.duration;
    const summary = document.getElementById("compare-summary");
    summary.appendChild(
      el("span", "B took " + fmtUs(Math.abs(diff)) + " " + (diff >= 0 ? "more" : "less") + " than A (" +
        fmtUs(data.b.duration) + " vs " + fmtUs(data.a.duration) + "). "),
    );
    // where the time went: the paths whose own (self) time changed most
    const top = data.nodes
      .filter((n) => Math.sign(n.selfDiff) === Math.sign(diff) && n.selfDiff !== 0)
      .sort((x, y) => Math.abs(y.selfDiff) - Math.abs(x.selfDiff))
      .slice(0, 3);
    if (top.length) {
      summary.appendChild(el("span", "Most of it: "));
      top.forEach(function (n, i) {
        const count = n.presence === "both" && n.a.count !== n.b.count
          ? " (" + n.a.count + " → " + n.b.count + " spans)"
          : n.presence === "b" ? " (only in B)" : n.presence === "a" ? " (only in A)" : "";
        summary.appendChild(el("strong", n.service + ": " + n.operation));
        summary.appendChild(el("span", " " + signed(n.selfDiff) + " self time" + count + (i < top.length - 1 ? "; " : ".")));
      });
    }
    const table = document.getElementById("compare-table");
    const tbody = table.querySelector("tbody");
    for (const n of data.nodes) {
      const tr = el("tr");
      tr.dataset.presence = n.presence;
      if (n.presence === "a") tr.className = "only-a";
      else if (n.presence === "b") tr.className = "only-b";
      else if (changed(n)) tr.className = "changed";
      const path = el("td", null, "path");
      path.style.paddingLeft = 8 + 16 * n.depth + "px";
      const chip = el("span", null, "chip");
      chip.style.background = colorOf(n.service);
      path.appendChild(chip);
      path.appendChild(el("span", n.service + ": " + n.operation));
      path.title = n.service + ": " + n.operation; // whole, where the cell cuts it
      tr.appendChild(path);
      for (const side of ["a", "b"]) {
        const s = n[side];
        if (!s) {
          for (let i = 0; i < 3; i++) tr.appendChild(el("td", "—", "num muted"));
          continue;
        }
        const count = el("td", null, "num");
        count.appendChild(link(traceHref(traceUrl, data[side].traceID, s.spanID), String(s.count), "side-" + side));
        tr.appendChild(count);
        tr.appendChild(el("td", fmtUs(s.totalDuration), "num"));
        tr.appendChild(el("td", fmtUs(s.selfDuration), "num"));
      }
      tr.appendChild(el("td", signed(n.totalDiff), "num " + (n.totalDiff > 0 ? "more" : n.totalDiff < 0 ? "less" : "")));
      tr.appendChild(el("td", signed(n.selfDiff), "num " + (n.selfDiff > 0 ? "more" : n.selfDiff < 0 ? "less" : "")));
      tbody.appendChild(tr);
    }
    table.hidden = false;
  }

  // -- service map -------------------------------------------------------------------
  const map = document.getElementById("service-map");
  if (map) {
    const status = document.getElementById("map-status");
    const lookback = lookbackMs(map.dataset.window);
    const endTs = Date.now();
    getJSON(withQuery(map.dataset.api, { endTs: endTs, lookback: lookback }))
      .then(function (body) {
        drawMap(body.data, endTs, lookback);
      })
      .catch(function (err) {
        status.textContent = "Cannot draw the map: " + err.message;
        status.className = "error";
      });
  }

  // columns by call depth (callers left of the services they call), cycle-safe
  function layout(services, links) {
    const column = {};
    services.forEach((s) => (column[s] = 0));
    for (let round = 0; round < services.length; round++) {
      let moved = false;
      for (const l of links) {
        if (l.parent !== l.child && column[l.child] < column[l.parent] + 1 && column[l.parent] + 1 < services.length) {
          column[l.child] = column[l.parent] + 1;
          moved = true;
        }
      }
      if (!moved) break;
    }
    const byColumn = {};
    services.forEach((s) => (byColumn[column[s]] = byColumn[column[s]] || []).push(s));
    const position = {};
    for (const [x, names] of Object.entries(byColumn)) {
      names.sort();
      names.forEach((s, i) => (position[s] = { x: Number(x), y: (names.length - 1) / 2 - i }));
    }
    return position;
  }

  function drawMap(links, endTs, lookback) {
    const status = document.getElementById("map-status");
    const services = Array.from(new Set(links.flatMap((l) => [l.parent, l.child]))).sort();
    if (!services.length) {
      status.textContent = "No calls between services in this time window.";
      document.body.dataset.mapReady = "1";
      return;
    }
    const total = links.reduce((n, l) => n + l.callCount, 0);
    status.textContent = services.length + " services, " + total + " calls between them in this window.";
    const at = layout(services, links);
    const traces = [];
    const annotations = [];
    const mid = { x: [], y: [], text: [], customdata: [], color: [] };
    for (const l of links) {
      const p = at[l.parent];
      const c = at[l.child];
      const rate = l.callCount ? l.errorCount / l.callCount : 0;
      annotations.push({
        x: c.x, y: c.y, ax: p.x, ay: p.y, xref: "x", yref: "y", axref: "x", ayref: "y",
        showarrow: true, arrowhead: 3, arrowsize: 1.4, arrowwidth: 1 + Math.min(5, Math.log10(1 + l.callCount)),
        arrowcolor: rate > 0 ? "#D62728" : "#888", standoff: 22, startstandoff: 22, text: "",
      });
      mid.x.push((p.x + c.x) / 2);
      mid.y.push((p.y + c.y) / 2 + (p.x === c.x ? 0.15 : 0));
      mid.text.push(l.callCount + " calls" + (l.errorCount ? ", " + (100 * rate).toFixed(1) + "% errors" : ""));
      mid.customdata.push([l.parent, l.child]);
      mid.color.push(rate > 0 ? "#D62728" : "#555");
    }
    traces.push({
      type: "scatter", mode: "markers+text", meta: "calls", x: mid.x, y: mid.y,
      text: mid.text.map(esc), textposition: "top center", customdata: mid.customdata,
      marker: { size: 12, color: mid.color, symbol: "diamond" },
      hovertext: links.map((l) => esc(l.parent + " → " + l.child)), hoverinfo: "text",
      cliponaxis: false,
    });
    traces.push({
      type: "scatter", mode: "markers+text", meta: "services",
      x: services.map((s) => at[s].x), y: services.map((s) => at[s].y),
      text: services.map(esc), textposition: "bottom center", customdata: services,
      marker: { size: 38, color: services.map(colorOf), line: { width: 2, color: "#fff" } },
      hovertext: services.map((s) => esc(s)), hoverinfo: "text", cliponaxis: false,
    });
    const layoutSpec = {
      showlegend: false, annotations: annotations, margin: { l: 40, r: 40, t: 30, b: 40 },
      xaxis: { visible: false, fixedrange: true, range: [-0.5, Math.max(...services.map((s) => at[s].x)) + 0.5] },
      yaxis: {
        visible: false, fixedrange: true,
        range: [Math.min(...services.map((s) => at[s].y)) - 0.8, Math.max(...services.map((s) => at[s].y)) + 0.8],
      },
      hovermode: "closest", dragmode: false,
    };
    // two quick clicks (a call, then a service) must not read as a double click, which
    // resets the axes: there is no zoom here anyway
    const config = Object.assign({}, PLOT_CONFIG, { doubleClick: false });
    Plotly.newPlot("map", traces, themed(layoutSpec), config).then(function (gd) {
      gd.on("plotly_click", function (ev) {
        const p = ev.points && ev.points[0];
        if (!p) return;
        if (p.data.meta === "services") showService(p.customdata, links, endTs, lookback);
        else if (p.data.meta === "calls") showCall(p.customdata[0], p.customdata[1], endTs, lookback);
      });
      document.body.dataset.mapReady = "1";
    });
  }

  function showService(service, links, endTs, lookback) {
    const panel = document.getElementById("map-panel");
    panel.replaceChildren();
    panel.appendChild(el("h2", service, "panel-title"));
    const calls = el("ul");
    for (const l of links) {
      if (l.parent === service) calls.appendChild(el("li", "calls " + l.child + ": " + l.callCount));
      if (l.child === service) calls.appendChild(el("li", "called by " + l.parent + ": " + l.callCount + (l.errorCount ? " (" + l.errorCount + " errors)" : "")));
    }
    panel.appendChild(calls);
    const windowName = map.dataset.window;
    const p = el("p");
    p.appendChild(link(withQuery(map.dataset.metricsUrl, { service: service, window: windowName }), "Rate, errors and duration", "red-link"));
    panel.appendChild(p);
    const slow = el("p", "Slowest traces: …", "slowest");
    panel.appendChild(slow);
    // the service's p95 over the whole window: its slowest traces are those above it
    getJSON(withQuery(map.dataset.latencyApi, {
      service: service, quantile: 0.95, endTs: endTs, lookback: lookback, step: lookback, ratePer: lookback,
      spanKind: ["server", "consumer", "internal", "client", "producer", "unspecified"],
    })).then(function (family) {
      const points = family.metrics.length ? family.metrics[0].metricPoints : [];
      const last = points.length ? points[points.length - 1].gaugeValue.doubleValue : null;
      slow.replaceChildren();
      if (last === null) {
        slow.textContent = "No requests entered " + service + " in this window.";
        return;
      }
      const minMs = Math.max(0, Math.floor(last));
      slow.appendChild(el("span", "p95 " + last.toFixed(1) + "ms: "));
      slow.appendChild(link(withQuery(map.dataset.searchUrl, {
        service: service, lookback: windowName, min_duration: minMs + "ms", limit: 50,
      }), "traces of " + service + " slower than " + minMs + "ms", "slow-link"));
    }).catch(function (err) {
      slow.textContent = "Cannot compute its p95: " + err.message;
    });
  }

  function showCall(parent, child, endTs, lookback) {
    const panel = document.getElementById("map-panel");
    panel.replaceChildren();
    panel.appendChild(el("h2", parent + " → " + child, "panel-title"));
    panel.appendChild(el("p", "The newest traces with this call:", "muted"));
    const list = el("ul", null, "trace-list call-traces");
    panel.appendChild(list);
    getJSON(withQuery(map.dataset.tracesApi, { parent: parent, child: child, endTs: endTs, lookback: lookback, limit: 20 }))
      .then(function (body) {
        traceList(list, body.data, map.dataset.traceUrl);
        panel.dataset.ready = "1";
      })
      .catch(function (err) {
        list.replaceWith(el("p", "Cannot list them: " + err.message, "error"));
      });
  }

  // -- RED metrics -------------------------------------------------------------------
  const red = document.getElementById("red");
  const serviceChoice = document.querySelector("form select[name=service]");
  if (red && serviceChoice) {
    // another service: its own operations, so the operation chosen is forgotten
    serviceChoice.addEventListener("change", function () {
      document.getElementById("red-operation").value = "";
    });
  }
  if (red && red.dataset.service) {
    const service = red.dataset.service;
    const operation = red.dataset.operation;
    const lookback = lookbackMs(red.dataset.window);
    const endTs = Date.now();
    const step = Math.max(1000, Math.round(lookback / 120 / 1000) * 1000);
    const base = {
      service: service, endTs: endTs, lookback: lookback, step: step, ratePer: step,
      spanKind: ["server", "consumer", "internal", "client", "producer", "unspecified"],
    };
    const byOperation = Object.assign({ groupByOperation: "true" }, base);
    // latency: the chosen operation's, or the whole service's
    const latencyBase = operation ? byOperation : base;
    Promise.all([
      getJSON(withQuery(red.dataset.callsApi, byOperation)),
      getJSON(withQuery(red.dataset.errorsApi, byOperation)),
      getJSON(withQuery(red.dataset.latencyApi, Object.assign({ quantile: 0.5 }, latencyBase))),
      getJSON(withQuery(red.dataset.latencyApi, Object.assign({ quantile: 0.95 }, latencyBase))),
      getJSON(withQuery(red.dataset.latencyApi, Object.assign({ quantile: 0.99 }, latencyBase))),
    ])
      .then(function ([calls, errors, p50, p95, p99]) {
        drawRed(service, operation, step, [endTs - lookback, endTs], calls, errors, [p50, p95, p99]);
      })
      .catch(function (err) {
        const status = document.getElementById("red-status");
        status.textContent = "Cannot draw the metrics: " + err.message;
        status.className = "error";
      });
  }

  function operationOf(metric) {
    const label = metric.labels.find((l) => l.name === "operation");
    return label ? label.value : "";
  }

  function utc(ms) {
    return new Date(ms).toISOString().replace("Z", "");
  }

  // one line per series of a family (of the chosen operation only, if one is chosen)
  function lines(family, scale, colorOf, operation) {
    return family.metrics
      .filter((m) => !operation || operationOf(m) === operation)
      .map(function (m) {
        const op = operationOf(m);
        return {
          type: "scatter", mode: "lines+markers", name: esc(op || "all operations"), meta: op,
          x: m.metricPoints.map((p) => p.timestamp.replace("Z", "")),
          y: m.metricPoints.map((p) => p.gaugeValue.doubleValue * scale),
          line: { color: colorOf(op) }, marker: { size: 5 },
        };
      });
  }

  function drawRed(service, chosen, step, range, calls, errors, quantiles) {
    const status = document.getElementById("red-status");
    const select = document.getElementById("red-operation");
    const operations = calls.metrics.map(operationOf);
    const operation = operations.includes(chosen) ? chosen : "";
    for (const op of operations) {
      const option = el("option", op);
      option.value = op;
      option.selected = op === operation;
      select.appendChild(option);
    }
    if (!calls.metrics.length) {
      status.textContent = "No entry spans of " + service + " in this window.";
      document.body.dataset.redReady = "1";
      return;
    }
    status.textContent = "Step " + step / 1000 + "s. Times in UTC.";
    const colorOf = (op) => PALETTE[Math.max(0, operations.indexOf(op)) % PALETTE.length];
    const shades = ["#9ecae1", "#4292c6", "#08306b"];
    const latency = [];
    ["p50", "p95", "p99"].forEach(function (name, q) {
      for (const line of lines(quantiles[q], 1, () => shades[q], operation)) {
        line.name = esc((operation ? operation + " " : "") + name);
        latency.push(line);
      }
    });
    const common = {
      margin: { l: 60, r: 10, t: 30, b: 40 }, hovermode: "closest",
      legend: { orientation: "h", y: -0.25 }, xaxis: { type: "date", range: range.map(utc) },
    };
    const charts = [
      ["red-rate", lines(calls, 1, colorOf, operation), "requests per second"],
      ["red-errors", lines(errors, 100, colorOf, operation), "errors (% of requests)"],
      ["red-latency", latency, "duration (ms), " + (operation || "all operations") + ": p50, p95, p99"],
    ];
    let drawn = 0;
    for (const [id, data, title] of charts) {
      const spec = Object.assign({}, common, { title: { text: title, font: { size: 13 } }, yaxis: { rangemode: "tozero" } });
      Plotly.newPlot(id, data, themed(spec), PLOT_CONFIG).then(function (gd) {
        gd.on("plotly_click", function (ev) {
          const p = ev.points && ev.points[0];
          if (!p) return;
          // the traces of that point: its operation, started within its step
          const to = new Date(String(p.x).replace(" ", "T") + "Z");
          const from = new Date(to.getTime() - step);
          const iso = (d) => d.toISOString().slice(0, 19);
          window.location.href = withQuery(red.dataset.searchUrl, {
            service: service, operation: p.data.meta, from: iso(from), to: iso(to), limit: 100,
          });
        });
        drawn += 1;
        if (drawn === charts.length) document.body.dataset.redReady = "1";
      });
    }
  }
})();
