// cvtrace viewer, trace page: the span details panel. Values keep their shape: text
// with newlines (stack traces, SQL) and JSON are shown preformatted, keys never break,
// each value has a copy button; event times are relative to the span's start; links
// lead to the linked span, or say plainly that it is not stored. Text only, never markup.
(function () {
  "use strict";
  const cv = window.cvtrace;
  const el = cv.el;
  const header = document.getElementById("trace-header");
  const panel = document.getElementById("details");
  if (!header || !panel) return;
  const layout = panel.closest(".trace-body");
  const base = window.location.pathname.replace(/\/$/, "");
  const cache = new Map(); // span id -> promise of its details (the last 50)
  let current = null;
  // set by waterfall.js: select(spanId), subtree(spanId) -> {collapsed, hidden} or null,
  // toggle(spanId), facts(spanId) -> more [key, value] facts (self time)
  let hooks = { select: null, subtree: () => null, toggle: null, facts: () => [] };

  // row: the span's row in the waterfall, which lets the server answer from the loaded trace
  function fetchSpan(spanId, row) {
    let answer = cache.get(spanId);
    if (!answer) {
      const hint = row >= 0 ? "?row=" + row : "";
      answer = fetch(base + "/spans/" + encodeURIComponent(spanId) + ".json" + hint, { credentials: "same-origin" })
        .then(function (r) {
          if (!r.ok) throw new Error(r.status === 404 ? "it is not in the store" : "HTTP " + r.status);
          return r.json();
        });
      answer.catch(() => cache.delete(spanId));
      cache.set(spanId, answer);
      if (cache.size > 50) cache.delete(cache.keys().next().value);
    }
    return answer;
  }

  // -- values ----------------------------------------------------------------------
  function shaped(value) {
    // returns [text shown, multi-line?, text copied]
    if (value === null || value === undefined) return ["null", false, "null"];
    if (typeof value === "string") {
      const trimmed = value.trim();
      if (/^[[{]/.test(trimmed) && /[\]}]$/.test(trimmed)) {
        try {
          const parsed = JSON.parse(trimmed);
          if (parsed && typeof parsed === "object") return [JSON.stringify(parsed, null, 2), true, value];
        } catch (err) {
          // not JSON: shown as it is
        }
      }
      return [value, value.includes("\n"), value];
    }
    if (typeof value === "object") {
      const text = JSON.stringify(value, null, 2);
      return [text, text.includes("\n"), JSON.stringify(value)];
    }
    return [String(value), false, String(value)];
  }

  function valueCell(value, node) {
    const cell = el("div", null, "v");
    if (node) {
      cell.appendChild(node);
      return cell;
    }
    const [text, multi, copied] = shaped(value);
    const shown = multi ? el("pre", text, "text") : el("span", text === "" ? "(empty)" : text, "text" + (text === "" ? " none" : ""));
    cell.append(shown, cv.copyButton(() => copied));
    return cell;
  }

  // pairs: [key, value] or [key, value, node] (a node shown instead of the value)
  function kvList(pairs, cls) {
    const list = el("div", null, "kvs" + (cls ? " " + cls : ""));
    if (!pairs.length) list.appendChild(el("p", "none", "muted"));
    for (const [key, value, node] of pairs) {
      const row = el("div", null, "kv");
      const k = el("div", key, "k");
      k.title = key;
      const cell = valueCell(value, node);
      if (cell.firstChild.tagName === "PRE") row.classList.add("block"); // the whole width
      row.append(k, cell);
      list.appendChild(row);
    }
    return list;
  }

  function spanButton(text, spanId) {
    const button = el("button", text, "plain linklike");
    button.type = "button";
    button.addEventListener("click", () => hooks.select && hooks.select(spanId));
    return button;
  }

  function linkNode(link, traceId) {
    const wrap = el("div", null, "text");
    if (link.stored === "span") {
      const label = "open " + (link.service ? link.service + ": " : "") + link.name;
      if (link.traceId === traceId && hooks.select) {
        wrap.appendChild(spanButton(label + " (this trace)", link.spanId));
      } else {
        const a = el("a", label);
        a.href = link.url;
        wrap.appendChild(a);
      }
    } else if (link.stored === "trace") {
      const a = el("a", "open its trace");
      a.href = link.url;
      wrap.append(el("span", "the linked span is not stored; ", "none"), a);
    } else {
      wrap.appendChild(el("span", "not stored in this viewer (its trace is elsewhere, not flushed yet, or past retention)", "none"));
    }
    return wrap;
  }

  // -- the panel ------------------------------------------------------------------------
  function render(d) {
    panel.replaceChildren();
    panel.dataset.spanId = d.spanId;
    delete panel.dataset.loading;
    const title = el("h2", d.name, "span-name");
    panel.appendChild(title);
    const actions = el("p", null, "actions");
    const deep = el("a", "Link to this span");
    deep.href = d.deepLink;
    actions.appendChild(deep);
    const subtree = hooks.subtree(d.spanId);
    if (subtree) {
      const toggle = el("button", subtree.collapsed ? "Expand subtree (" + subtree.hidden + " hidden)" : "Collapse subtree", "toggle-subtree");
      toggle.type = "button";
      toggle.addEventListener("click", function () {
        hooks.toggle(d.spanId);
        render(d);
      });
      actions.appendChild(toggle);
    }
    const closer = el("button", "Close", "close-details");
    closer.type = "button";
    closer.title = "Close the details (Esc)";
    closer.addEventListener("click", close);
    actions.appendChild(closer);
    panel.appendChild(actions);

    const service = el("span");
    const swatch = el("span", null, "swatch");
    swatch.style.background = d.color;
    service.append(swatch, document.createTextNode(d.service));
    const status = el("span", d.status.code + (d.status.message ? ": " + d.status.message : ""), "text" + (d.status.code === "error" ? " error" : ""));
    const facts = [
      ["name", d.name],
      ["service", d.service, service],
      ["kind", d.kind],
      ["duration", d.duration],
      ...hooks.facts(d.spanId),
      ["start", d.startOffset + " into the trace · " + d.start],
      ["status", d.status.code + (d.status.message ? ": " + d.status.message : ""), d.status.code === "error" ? status : null],
      ["span id", d.spanId],
      ["parent span id", d.parentSpanId || "(root)",
        d.parentSpanId && !d.orphan && hooks.select ? spanButton(d.parentSpanId, d.parentSpanId) : null],
    ];
    if (d.traceState) facts.push(["trace state", d.traceState]);
    panel.appendChild(kvList(facts, "facts-list"));
    if (d.orphan) {
      const p = el("p", null, "warn");
      p.append(cv.icon("warn"), document.createTextNode(" Its parent span is not in this trace."));
      panel.appendChild(p);
    }
    if (d.skewed) {
      const p = el("p", null, "warn");
      p.append(cv.icon("clock"), document.createTextNode(" It starts before or ends after its parent (clock skew?)."));
      panel.appendChild(p);
    }
    // what the producer's size limits dropped (OTLP's dropped_*_count): say it, or the
    // reader takes the span for whole
    const dropped = Object.entries(d.dropped || {});
    if (dropped.length) {
      const p = el("p", null, "warn truncated");
      const counts = dropped.map(([kind, n]) => n + " " + kind).join(", ");
      p.append(cv.icon("warn"), document.createTextNode(" Truncated by a size limit: its producer dropped " + counts + " (span limits such as OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT)."));
      panel.appendChild(p);
    }
    panel.appendChild(el("h3", "Attributes"));
    panel.appendChild(kvList(d.attributes, "attributes"));
    if (d.events.length) {
      panel.appendChild(el("h3", "Events (" + d.events.length + ")"));
      for (const e of d.events) {
        const line = el("div", null, "event");
        const offset = el("span", e.offset, "offset");
        offset.title = e.time;
        line.append(offset, document.createTextNode(" "), el("span", e.name, "event-name"));
        line.appendChild(el("span", " · " + e.time, "muted"));
        panel.appendChild(line);
        if (e.attributes.length) panel.appendChild(kvList(e.attributes, "event-attributes"));
      }
    }
    if (d.links.length) {
      panel.appendChild(el("h3", "Links (" + d.links.length + ")"));
      for (const l of d.links) {
        panel.appendChild(kvList([
          ["linked span", "", linkNode(l, d.traceId)],
          ["trace id", l.traceId],
          ["span id", l.spanId],
          ...l.attributes,
        ], "span-link"));
      }
    }
    panel.appendChild(el("h3", "Resource"));
    panel.appendChild(kvList(d.resource, "resource"));
    panel.appendChild(el("h3", "Scope"));
    panel.appendChild(kvList([["name", d.scope.name], ["version", d.scope.version], ...d.scope.attributes], "scope"));
  }

  function open(spanId, row) {
    current = spanId;
    layout.classList.remove("no-details");
    panel.dataset.loading = spanId;
    return fetchSpan(spanId, row).then(function (d) {
      if (current === spanId) render(d);
    }, function (err) {
      if (current !== spanId) return;
      delete panel.dataset.loading;
      panel.replaceChildren(el("p", "Cannot show span " + spanId + ": " + err.message, "error"));
    });
  }

  function close() {
    current = null;
    delete panel.dataset.spanId;
    layout.classList.add("no-details");
    document.dispatchEvent(new CustomEvent("cvtrace:details-closed"));
  }

  cv.details = {
    open: open,
    close: close,
    isOpen: () => !layout.classList.contains("no-details") && current !== null,
    current: () => current,
    rerender: function () {
      if (current) fetchSpan(current).then((d) => { if (current === d.spanId) render(d); });
    },
    setHooks: function (h) { hooks = Object.assign(hooks, h); },
  };
})();
