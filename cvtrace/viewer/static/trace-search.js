// cvtrace viewer, trace page: the in-trace search. Runs in the browser over the rows
// the page has (names, services, ids, durations, errors) and, once fetched, the
// trace's attributes (search.json: each distinct key/value pair once, and per row the
// pairs it has; searchindex.py). A keystroke tests each distinct name, service and
// pair once, then walks the rows' typed arrays: a few ms at 100,000 spans
// (BENCHMARKS.md section 11). Matches are highlighted on the rows and in the
// overview; Enter / Shift+Enter (or the arrows) go to the next / previous one.
//
// The text matches a span's name, service, id (its first hex digits), or any
// attribute key or value (its own, its resource's, its events' names, its status
// message); "key=value" also matches a key containing key whose value contains value.
// Service, status and a least duration narrow the matches.
(function () {
  "use strict";
  const cv = window.cvtrace;
  const el = cv.el;
  const header = document.getElementById("trace-header");
  if (!header) return;
  const FLAG_ERROR = 1;
  const STATUS = { unset: 0, ok: 1, error: 2 };

  // "250ms", "1.5s", "800us", "800µs"; a bare number is ms. NaN when unreadable.
  function parseDurationMs(text) {
    const m = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|µs|ms|s|m|min)?\s*$/i.exec(text);
    if (!m) return NaN;
    const value = Number(m[1]);
    const unit = (m[2] || "ms").toLowerCase();
    return value * { us: 0.001, "µs": 0.001, ms: 1, s: 1000, m: 60000, min: 60000 }[unit];
  }

  cv.onWaterfall(function (wf) {
    const W = wf.data;
    const n = wf.rows;
    const lowerNames = W.names.map((s) => s.toLowerCase());
    const lowerServices = W.services.map((s) => s.toLowerCase());
    let index = null; // search.json, decoded
    let indexRequest = null;

    // -- the bar -----------------------------------------------------------------------
    const box = el("input");
    box.type = "search";
    box.id = "span-find";
    box.placeholder = "Search spans: name, attribute, service, id ( / )";
    box.title = "Matches a span's name, service, id, or any attribute key or value; key=value for both";
    box.setAttribute("aria-label", "Search spans");
    box.dataset.slash = "1";
    box.autocomplete = "off";
    box.spellcheck = false;
    const service = el("select");
    service.id = "find-service";
    service.title = "Only spans of this service";
    service.appendChild(el("option", "any service")).value = "";
    W.services.forEach(function (name, i) {
      const option = el("option", name);
      option.value = String(i);
      service.appendChild(option);
    });
    const status = el("select");
    status.id = "find-status";
    status.title = "Only spans with this status";
    for (const [value, text] of [["", "any status"], ["error", "error"], ["ok", "ok"], ["unset", "unset"]]) {
      status.appendChild(el("option", text)).value = value;
    }
    const minDuration = el("input", null, "min-duration");
    minDuration.id = "find-min-duration";
    minDuration.placeholder = "≥ time";
    minDuration.title = "Only spans at least this long: 250ms, 1.5s, 800µs (a bare number is ms)";
    minDuration.setAttribute("aria-label", "Least duration");
    minDuration.autocomplete = "off";
    const prev = el("button", "‹", "find-prev");
    prev.type = "button";
    prev.title = "Previous match (Shift+Enter)";
    const next = el("button", "›", "find-next");
    next.type = "button";
    next.title = "Next match (Enter)";
    const count = el("span", "", "count find-count");
    count.id = "find-count";
    const group = el("span", null, "group wf-search");
    group.append(box, service, status, minDuration, prev, next, count);
    wf.toolbar.prepend(group);

    // -- the attributes (fetched once, when the search is first used) ----------------
    function loadIndex() {
      if (indexRequest) return indexRequest;
      indexRequest = fetch(header.dataset.searchUrl, { credentials: "same-origin" })
        .then(function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (body) {
          if (body.rowCount !== n) throw new Error("the trace changed: reload the page");
          index = {
            pairs: body.pairs,
            first: wf.typed(body.first),
            pairIds: wf.typed(body.pairIds),
            resource: wf.typed(body.resource),
            resources: body.resources,
            status: wf.typed(body.status),
          };
          last = null;
          warmUp();
          wf.root.dataset.searchIndex = "1";
          if (box.value || service.value || status.value || minDuration.value) run();
        })
        .catch(function (err) {
          indexRequest = null;
          count.textContent = "attributes not searched: " + err.message;
        });
      return indexRequest;
    }

    // -- matching ------------------------------------------------------------------------
    // Buffers are kept from one keystroke to the next (no garbage to collect), and a
    // query that extends the last one with the same filters only re-tests what the
    // last one matched: typing narrows.
    const which = new Uint8Array(n); // 1 = the row matches (shown by the waterfall)
    let rowList = new Int32Array(0); // the rows that match, in order
    const nameHit = new Uint8Array(lowerNames.length);
    const serviceHit = new Uint8Array(lowerServices.length);
    let pairHit = null, pairList = null, resourceHit = null;
    let last = null; // {q, filters, indexed} of the last pass
    let hits = 0;
    let at = -1; // the match selected last, from 0

    function textTest(q) {
      // "key=value": also a key containing key whose value contains value
      const kv = /^([\w.\-]+)\s*=\s*(.*)$/.exec(q);
      const key = kv ? kv[1] : null, value = kv ? kv[2] : null;
      return function (text) {
        if (text.includes(q)) return true;
        if (key === null) return false;
        const cut = text.indexOf("\0");
        return text.lastIndexOf(key, cut - key.length) >= 0 && text.indexOf(value, cut + 1) > cut;
      };
    }

    // match every row (full) or only last pass's matches (narrow); returns the count
    function match(q, svc, wantCode, least, narrow) {
      const idLike = /^[0-9a-f]{4,16}$/.test(q);
      if (q) {
        const test = textTest(q);
        for (let i = 0; i < lowerNames.length; i++) nameHit[i] = (!narrow || nameHit[i]) && lowerNames[i].includes(q) ? 1 : 0;
        for (let i = 0; i < lowerServices.length; i++) serviceHit[i] = (!narrow || serviceHit[i]) && lowerServices[i].includes(q) ? 1 : 0;
        if (index) {
          const pairs = index.pairs;
          if (!pairHit) {
            pairHit = new Uint8Array(pairs.length);
            resourceHit = new Uint8Array(index.resources.length);
          }
          let found = 0;
          if (narrow) {
            for (let k = 0; k < pairList.length; k++) {
              const p = pairList[k];
              if (test(pairs[p])) found++;
              else pairHit[p] = 0;
            }
          } else {
            for (let p = 0; p < pairs.length; p++) {
              const hit = test(pairs[p]);
              pairHit[p] = hit ? 1 : 0;
              if (hit) found++;
            }
          }
          const list = new Int32Array(found);
          const from = narrow ? pairList : null;
          for (let k = 0, j = 0, end = narrow ? from.length : pairs.length; k < end; k++) {
            const p = narrow ? from[k] : k;
            if (pairHit[p]) list[j++] = p;
          }
          pairList = list;
          for (let i = 0; i < index.resources.length; i++) {
            let hit = 0;
            for (const p of index.resources[i]) if (pairHit[p]) { hit = 1; break; }
            resourceHit[i] = hit;
          }
        }
      }
      const start = W.start, end = W.end, flags = W.flags, names = W.name, services = W.service;
      const first = index && index.first, pairIds = index && index.pairIds, resource = index && index.resource;
      const codes = index && index.status;
      const withPairs = q && index !== null;
      let count = 0;
      const test = function (r) {
        if (svc >= 0 && services[r] !== svc) return 0;
        if (least > 0 && end[r] - start[r] < least) return 0;
        if (wantCode >= 0) {
          // ok and unset need the attributes' file (the rows only know errors)
          const code = codes ? codes[r] : (flags[r] & FLAG_ERROR ? 2 : -1);
          if (code !== wantCode) return 0;
        }
        if (!q) return 1;
        if (nameHit[names[r]] === 1 || serviceHit[services[r]] === 1) return 1;
        if (idLike && W.ids.startsWith(q, r * 16)) return 1;
        if (!withPairs) return 0;
        if (resourceHit[resource[r]] === 1) return 1;
        for (let i = first[r], e = first[r + 1]; i < e; i++) if (pairHit[pairIds[i]] === 1) return 1;
        return 0;
      };
      if (narrow) {
        for (let k = 0; k < rowList.length; k++) {
          const r = rowList[k];
          which[r] = test(r);
          count += which[r];
        }
        const list = new Int32Array(count);
        for (let k = 0, j = 0; k < rowList.length; k++) if (which[rowList[k]]) list[j++] = rowList[k];
        rowList = list;
      } else {
        for (let r = 0; r < n; r++) {
          which[r] = test(r);
          count += which[r];
        }
        rowList = new Int32Array(count);
        for (let r = 0, j = 0; r < n; r++) if (which[r]) rowList[j++] = r;
      }
      return count;
    }

    function run() {
      const started = performance.now();
      const q = box.value.trim().toLowerCase();
      const svc = service.value === "" ? -1 : Number(service.value);
      const wantStatus = status.value;
      const least = minDuration.value.trim() ? parseDurationMs(minDuration.value) : 0;
      minDuration.classList.toggle("invalid", Number.isNaN(least));
      if (!q && svc < 0 && !wantStatus && !(least > 0)) {
        hits = 0;
        at = -1;
        last = null;
        wf.setMatches(null);
        count.textContent = "";
        delete wf.root.dataset.matches;
        return;
      }
      const wantCode = wantStatus ? STATUS[wantStatus] : -1;
      const filters = svc + "|" + wantCode + "|" + least;
      const idLike = (text) => /^[0-9a-f]{4,16}$/.test(text);
      const narrow = last !== null && last.filters === filters && last.indexed === (index !== null) &&
        last.q !== "" && q.startsWith(last.q) && (idLike(last.q) || !idLike(q));
      hits = match(q, svc, wantCode, least, narrow);
      last = { q: q, filters: filters, indexed: index !== null };
      wf.setMatches(which);
      at = -1;
      const waiting = (q || wantCode === 0 || wantCode === 1) && !index ? " (attributes loading…)" : "";
      count.textContent = (hits ? hits.toLocaleString("en") + (hits === 1 ? " match" : " matches") : "no match") + waiting;
      wf.root.dataset.matches = String(hits);
      wf.root.dataset.searchMs = String(performance.now() - started);
    }

    // once the attributes arrive, one pass that matches nothing readies the code the
    // first keystroke runs (compiled, not interpreted: BENCHMARKS.md section 11)
    function warmUp() {
      if (last !== null) return;
      match("\u0001", -1, -1, 0, false);
      which.fill(0);
      pairHit.fill(0);
    }

    function go(direction) {
      if (!hits) return;
      at = wf.nextMatch(direction);
      count.textContent = "match " + (at + 1).toLocaleString("en") + " of " + hits.toLocaleString("en");
    }

    box.addEventListener("focus", loadIndex);
    box.addEventListener("input", function () {
      loadIndex();
      run();
    });
    for (const control of [service, status]) {
      control.addEventListener("change", function () {
        loadIndex();
        run();
      });
    }
    minDuration.addEventListener("input", run);
    for (const input of [box, minDuration]) {
      input.addEventListener("keydown", function (event) {
        if (event.key === "Enter") {
          go(event.shiftKey ? -1 : 1);
          event.preventDefault();
        }
      });
    }
    prev.addEventListener("click", () => go(-1));
    next.addEventListener("click", () => go(1));
    function clearFind() {
      box.value = "";
      service.value = "";
      status.value = "";
      minDuration.value = "";
      run();
    }
    // Esc in the box (which viewer.js then leaves): the box, the count and the
    // highlights are cleared together; the browser's own clearing of a search box
    // fires no input event, and left the matches of the text it emptied
    box.addEventListener("keydown", function (event) {
      if (event.key === "Escape") clearFind();
    });
    box.addEventListener("search", run); // the box's clear button
    wf.onEscape(function () {
      if (!hits && !box.value) return false;
      clearFind();
      return true;
    });
    cv.traceSearch = {
      // the statistics tab's rows search for their operation
      find: function (text, serviceName) {
        box.value = text;
        service.value = serviceName === undefined ? "" : String(W.services.indexOf(serviceName));
        if (service.value === "-1") service.value = "";
        loadIndex();
        run();
        go(1);
      },
    };
  });
})();
