// cvtrace viewer, single-file export (cvtrace export, exporting.py): the page's fetches
// answered from the file itself. The export inlines this first, before every other
// script, and embeds the answers in a text/plain script element, #cvtrace-export-data,
// whose data-page is /trace/ID: one line per URL, "URL BODY" (the body: JSON, one line).
// A URL the page asks for is answered by the answer for it, or else for the longest URL
// it extends with query parameters that only pick part of that answer or hint where it
// is (the block's data-subset: notes.json's "rows", the span details' "row"); URLs
// relative to the file's own path are taken as relative to the page's path in the viewer.
// Anything else (a search with "q=", say) is a 404, logged and listed in
// cvtraceExport.missed: no request ever leaves, and no answer is given for another.
(function () {
  "use strict";
  let answers = null; // URL -> body
  let page = ""; // the page's path in the viewer
  let subset = new Set(); // parameters an answer without them covers
  const missed = [];

  function ready() {
    if (answers) return;
    answers = new Map();
    const block = document.getElementById("cvtrace-export-data");
    if (!block) return;
    page = block.dataset.page || "";
    subset = new Set((block.dataset.subset || "").split(" ").filter(Boolean));
    const text = block.textContent;
    for (let at = 0; at < text.length; ) {
      let end = text.indexOf("\n", at);
      if (end < 0) end = text.length;
      const space = text.indexOf(" ", at);
      if (space > at && space < end) answers.set(text.slice(at, space), text.slice(space + 1, end));
      at = end + 1;
    }
    // "Link to this span" in the export is ?span=ID: the span to open, as the viewer's
    // page would from its own address (read here: the page's scripts run after the body)
    const focus = /[?&]span=([0-9a-f]{16})(?:&|$)/.exec(window.location.search);
    const header = document.getElementById("trace-header");
    if (focus && header) header.dataset.focus = focus[1];
  }

  function key(input) {
    const url = new URL(typeof input === "string" ? input : input.url, window.location.href);
    let path = url.pathname;
    const here = window.location.pathname;
    if (path.startsWith(here + "/")) path = page + path.slice(here.length);
    return path + url.search;
  }

  // whether the parameters "?a=1&b=2" (or "&a=1...") are all of the subset kind
  function covered(extra) {
    return extra.slice(1).split("&").every((pair) => subset.has(decodeURIComponent(pair.split("=")[0])));
  }

  function lookup(wanted) {
    if (answers.has(wanted)) return answers.get(wanted);
    for (let cut = wanted.length - 1; cut > 0; cut--) {
      const c = wanted[cut];
      if ((c === "&" || c === "?") && answers.has(wanted.slice(0, cut))) {
        return covered(wanted.slice(cut)) ? answers.get(wanted.slice(0, cut)) : undefined;
      }
    }
    return undefined;
  }

  window.fetch = function (input) {
    ready();
    const wanted = key(input);
    const body = lookup(wanted);
    if (body === undefined) {
      missed.push(wanted);
      console.error("cvtrace export: " + wanted + " is not in this file");
      return Promise.resolve(new Response("not in this exported file", { status: 404 }));
    }
    return Promise.resolve(new Response(body, { status: 200, headers: { "Content-Type": "application/json" } }));
  };

  window.cvtraceExport = { missed: missed };
})();
