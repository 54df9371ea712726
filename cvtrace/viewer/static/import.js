// cvtrace viewer: import trace files from the search page (file picker or drag-and-drop).
// Each file is posted as it is to POST /api/import (the page's token cookie goes with
// it); the answer's summary is shown (a file's failures in red, 400 when nothing of it
// could be imported), with a link that lists the new traces.
(function () {
  "use strict";

  const form = document.getElementById("import-form");
  const input = document.getElementById("import-file");
  const status = document.getElementById("import-status");
  if (!form || !input || !status) return;

  function say(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "muted";
  }

  function plural(n, word) {
    return n.toLocaleString("en") + " " + word + (n === 1 ? "" : "s");
  }

  // one line per entry, each red only when it tells of a failure
  function sayLines(lines) {
    status.textContent = "";
    status.className = "";
    for (const line of lines) {
      const span = document.createElement("span");
      span.className = line.error ? "import-line error" : "import-line";
      span.textContent = line.text;
      status.appendChild(span);
    }
  }

  async function importOne(file) {
    const url = form.dataset.url + "?name=" + encodeURIComponent(file.name);
    const response = await fetch(url, {
      method: "POST",
      body: file,
      credentials: "same-origin",
      headers: { "Content-Type": "application/octet-stream" },
    });
    let summary = null;
    try {
      summary = await response.json();
    } catch (e) {
      throw new Error(file.name + ": the viewer answered " + response.status);
    }
    if (summary.error && summary.spans === undefined) throw new Error(file.name + ": " + summary.error);
    return summary;
  }

  async function importFiles(files) {
    if (!files.length) return;
    const lines = [];
    let stored = 0;
    for (const file of files) {
      say("importing " + file.name + "…", false);
      try {
        const s = await importOne(file);
        stored += s.newSpans;
        lines.push({
          text: file.name + ": " + plural(s.traces, "trace") + ", " + plural(s.spans, "span") +
            " (" + s.newSpans.toLocaleString("en") + " new)" +
            (s.ok ? "" : ", rejected " + plural(s.rejectedRecords, "record") + ", " +
              plural(s.rejectedSpans, "span")),
          error: !s.ok,
        });
        for (const p of s.problems) lines.push({ text: "  " + p, error: true });
        if (s.error) lines.push({ text: "  " + s.error, error: true });
      } catch (e) {
        lines.push({ text: String(e.message || e), error: true });
      }
    }
    sayLines(lines);
    if (stored > 0) {
      const link = document.createElement("a");
      link.href = window.location.href;
      link.id = "import-refresh";
      link.textContent = " list them";
      status.appendChild(link);
    }
  }

  input.addEventListener("change", function () {
    importFiles(Array.from(input.files));
    input.value = "";
  });
  document.addEventListener("dragover", function (ev) {
    if (ev.dataTransfer && Array.from(ev.dataTransfer.types).includes("Files")) ev.preventDefault();
  });
  document.addEventListener("drop", function (ev) {
    if (!ev.dataTransfer || !ev.dataTransfer.files.length) return;
    ev.preventDefault();
    importFiles(Array.from(ev.dataTransfer.files));
  });
})();
