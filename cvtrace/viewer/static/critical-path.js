// cvtrace viewer, trace page: the critical path toggle. The path comes from the
// server (/api/traces/{id}/critical-path, Jaeger's definition: the sections, in time
// order, that tile the root span); on, each section is outlined on its span's bar and
// the spans the path never enters are dimmed, on the rows and in the overview.
(function () {
  "use strict";
  const cv = window.cvtrace;
  const header = document.getElementById("trace-header");
  if (!header || !header.dataset.criticalPathUrl) return;
  const FLAG_ORPHAN = 2;

  cv.onWaterfall(function (wf) {
    const W = wf.data;
    let on = false;
    let request = null;
    let first = null; // Int32Array(rows + 1): a row's sections are first[r] .. first[r + 1]
    let from = null, to = null; // Float64Array: sections' times, ms since the trace's start
    let sectionCount = 0;

    const button = cv.el("button", "Critical path", "critical-path-toggle");
    button.type = "button";
    button.title = "Highlight the critical path: what the request waited on, span by span";
    button.setAttribute("aria-pressed", "false");
    const note = cv.el("span", "", "count critical-path-note");
    const group = cv.el("span", null, "group");
    group.append(button, note);
    wf.toolbar.prepend(group);

    // the trace's main root, as the server picks it: the earliest root (not an
    // orphan, unless all are), the longest on a tie
    function mainRoot() {
      let best = -1;
      for (let r = 0; r < wf.rows; r++) {
        if (wf.parent[r] >= 0) continue;
        if (best < 0) { best = r; continue; }
        const orphan = W.flags[r] & FLAG_ORPHAN, bestOrphan = W.flags[best] & FLAG_ORPHAN;
        if (orphan !== bestOrphan) { if (!orphan) best = r; continue; }
        if (W.start[r] < W.start[best] || (W.start[r] === W.start[best] && W.end[r] - W.start[r] > W.end[best] - W.start[best])) best = r;
      }
      return best;
    }

    function load(body) {
      const sections = body.data || [];
      sectionCount = sections.length;
      const root = mainRoot();
      // the server's times are µs since the epoch; the rows' ms since the trace's start
      const origin = sections.length ? sections[0].start : 0;
      const base = root >= 0 ? W.start[root] : 0;
      const rowOfSection = new Int32Array(sections.length);
      first = new Int32Array(wf.rows + 1);
      for (let k = 0; k < sections.length; k++) {
        const r = wf.rowOf(sections[k].spanID);
        rowOfSection[k] = r;
        if (r >= 0) first[r + 1]++;
      }
      for (let r = 0; r < wf.rows; r++) first[r + 1] += first[r];
      from = new Float64Array(sections.length);
      to = new Float64Array(sections.length);
      const fill = first.slice(0, wf.rows);
      for (let k = 0; k < sections.length; k++) {
        const r = rowOfSection[k];
        if (r < 0) continue;
        const at = fill[r]++;
        from[at] = base + (sections[k].start - origin) / 1000;
        to[at] = base + (sections[k].end - origin) / 1000;
      }
      let spans = 0;
      for (let r = 0; r < wf.rows; r++) if (first[r + 1] > first[r]) spans++;
      note.textContent = sectionCount + " sections through " + spans + (spans === 1 ? " span" : " spans");
    }

    function onPath(r) {
      return first !== null && first[r + 1] > first[r];
    }

    function decorate(rowEl, r, view) {
      const track = rowEl._p.track;
      const segs = rowEl._cp || (rowEl._cp = []);
      let used = 0;
      rowEl.classList.toggle("cp-path", on && onPath(r));
      rowEl.classList.toggle("cp-dim", on && first !== null && !onPath(r));
      if (on && onPath(r)) {
        const k = view.trackW / (view.v1 - view.v0);
        let lastRight = -10;
        for (let i = first[r]; i < first[r + 1]; i++) {
          const x = (from[i] - view.v0) * k, x2 = (to[i] - view.v0) * k;
          if (x2 < -2 || x > view.trackW + 2) continue;
          if (x2 < lastRight + 1 && used > 0) { // merge what a pixel cannot tell apart
            segs[used - 1].style.width = Math.max(2, x2 - parseFloat(segs[used - 1].style.left)) + "px";
            lastRight = x2;
            continue;
          }
          let seg = segs[used];
          if (!seg) {
            seg = cv.el("span", null, "cp-seg");
            track.appendChild(seg);
            segs.push(seg);
          }
          seg.style.display = "";
          seg.style.left = Math.max(-2, x) + "px";
          seg.style.width = Math.max(2, Math.min(x2, view.trackW + 2) - Math.max(-2, x)) + "px";
          lastRight = x2;
          used++;
        }
      }
      for (let i = used; i < segs.length; i++) segs[i].style.display = "none";
    }

    function overview(ctx, view) {
      if (!on || first === null) return;
      // the path's sections, as a line along the overview's bars
      ctx.fillStyle = wf.color("--fg");
      const h = view.h, X = view.X;
      const lineH = Math.max(1, Math.min(3, h / view.count));
      for (let p = 0; p < view.count; p++) {
        const r = view.order[p];
        if (!onPath(r)) continue;
        const y = Math.floor((p * h) / view.count);
        for (let i = first[r]; i < first[r + 1]; i++) ctx.fillRect(from[i] * X, y, Math.max(1, (to[i] - from[i]) * X), lineH);
      }
    }

    function set(value) {
      on = value;
      button.setAttribute("aria-pressed", on ? "true" : "false");
      wf.root.dataset.criticalPath = on ? "on" : "off";
      if (on && !request) {
        note.textContent = "loading…";
        request = fetch(header.dataset.criticalPathUrl, { credentials: "same-origin" })
          .then(function (r) {
            if (!r.ok) throw new Error("HTTP " + r.status);
            return r.json();
          })
          .then(load)
          .catch(function (err) {
            request = null;
            note.textContent = "cannot load the critical path: " + err.message;
          });
      }
      if (request) request.then(function () {
        wf.root.dataset.criticalPathReady = on ? "1" : "0";
        wf.redraw();
      });
      else wf.redraw();
    }

    wf.onRow(decorate);
    wf.onMinimap(overview);
    button.addEventListener("click", () => set(!on));
    cv.criticalPath = { toggle: () => set(!on) };
  });
})();
