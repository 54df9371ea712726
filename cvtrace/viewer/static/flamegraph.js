// cvtrace viewer, trace page: the flame graph tab, an icicle drawn on a canvas. Spans
// merged by path (/api/traces/{id}/flamegraph: one node per path of (service,
// operation) from the root, with its count, total and self time); each node is as
// wide as its time, total or self (self: its own self time plus its children's
// widths, so children always fit), its children under it in start order. Click a
// node to zoom to it (its ancestors stay above as a trail: click one to zoom out).
// A canvas, not plotly's icicle: a trace of 100,000 spans can have tens of
// thousands of paths, and only those wider than a pixel are drawn.
(function () {
  "use strict";
  const cv = window.cvtrace;
  const el = cv.el;
  const header = document.getElementById("trace-header");
  const panel = document.getElementById("flamegraph");
  if (!header || !panel || !header.dataset.flamegraphUrl) return;
  const ROW_H = 20;
  const MIN_PX = 0.5; // narrower nodes (and their subtrees) are not drawn
  const FONT = "11px system-ui, sans-serif";

  let nodes = null; // the answer's nodes, plus a synthetic top when several paths start
  let kids = null; // child positions per node position
  let selfWidth = null; // Float64Array: self + children's, per node position
  let top = 0; // position of the node everything hangs from
  let focus = 0;
  let mode = "total";
  let canvas, box, crumbs, tip;
  let rects = []; // [x, y, w, position] drawn, for the pointer

  function value(i) {
    return mode === "self" ? selfWidth[i] : nodes[i].totalDuration;
  }

  function build(answer) {
    const list = answer.data || [];
    const at = new Map();
    nodes = [];
    const tops = [];
    for (const node of list) {
      at.set(node.id, nodes.length);
      nodes.push(node);
    }
    kids = nodes.map(() => []);
    nodes.forEach(function (node, i) {
      const p = at.has(node.parent) ? at.get(node.parent) : -1;
      if (p >= 0) kids[p].push(i);
      else tops.push(i);
    });
    if (tops.length === 1) {
      top = tops[0];
    } else {
      const all = { id: "top", parent: -1, service: "", operation: "all " + tops.length + " roots and orphans",
        depth: -1, count: 0, totalDuration: 0, selfDuration: 0, errors: 0, spanID: "" };
      for (const t of tops) all.totalDuration += nodes[t].totalDuration;
      top = nodes.length;
      nodes.push(all);
      kids.push(tops);
    }
    // self widths bottom up: a child comes after its parent in the list
    selfWidth = new Float64Array(nodes.length);
    const order = [];
    const stack = [top];
    while (stack.length) {
      const i = stack.pop();
      order.push(i);
      for (const k of kids[i]) stack.push(k);
    }
    for (let j = order.length - 1; j >= 0; j--) {
      const i = order[j];
      let sum = nodes[i].selfDuration;
      for (const k of kids[i]) sum += selfWidth[k];
      selfWidth[i] = sum;
    }
    focus = top;
  }

  function colorOf(service) {
    const wf = cv.waterfall;
    const i = wf ? wf.data.services.indexOf(service) : -1;
    return i >= 0 ? wf.data.colors[i] : "#6e7781";
  }

  function ancestors(i) {
    const out = [];
    for (let p = parentOf(i); p >= 0; p = parentOf(p)) out.unshift(p);
    return out;
  }

  let parents = null;
  function parentOf(i) {
    if (!parents) {
      parents = new Int32Array(nodes.length).fill(-1);
      kids.forEach((list, p) => { for (const k of list) parents[k] = p; });
    }
    return parents[i];
  }

  function label(node) {
    const name = node.service ? node.service + ": " + node.operation : node.operation;
    return node.count > 1 ? name + " ×" + node.count : name;
  }

  function draw() {
    if (!nodes || panel.hidden) return;
    const width = Math.max(100, box.clientWidth - 2);
    const trail = ancestors(focus);
    // lay out: the trail full width, then the focus's subtree
    rects = [];
    let depthMax = trail.length;
    for (let d = 0; d < trail.length; d++) rects.push([0, d * ROW_H, width, trail[d], 1]);
    const queue = [[focus, 0, width, trail.length]];
    while (queue.length) {
      const [i, x, w, d] = queue.pop();
      rects.push([x, d * ROW_H, w, i, 0]);
      if (d > depthMax) depthMax = d;
      const list = kids[i];
      if (!list.length) continue;
      let sum = 0;
      for (const k of list) sum += value(k);
      const scale = w / Math.max(value(i), sum, 1e-9);
      let cx = x;
      for (const k of list) {
        const kw = value(k) * scale;
        if (kw >= MIN_PX) queue.push([k, cx, kw, d + 1]);
        cx += kw;
      }
    }
    const height = (depthMax + 1) * ROW_H;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
    const ctx = canvas.getContext("2d");
    ctx.scale(dpr, dpr);
    ctx.font = FONT;
    ctx.textBaseline = "middle";
    const errColor = cv.waterfall ? cv.waterfall.data.errorColor : "#D62728";
    const faded = getComputedStyle(panel).getPropertyValue("color");
    for (const [x, y, w, i, inTrail] of rects) {
      const node = nodes[i];
      ctx.globalAlpha = inTrail ? 0.45 : 1;
      ctx.fillStyle = node.service ? colorOf(node.service) : faded;
      ctx.fillRect(x + 0.5, y + 1, Math.max(0.5, w - 1), ROW_H - 2);
      if (node.errors) {
        ctx.fillStyle = errColor;
        ctx.fillRect(x + 0.5, y + 1, Math.min(3, w), ROW_H - 2);
      }
      ctx.globalAlpha = 1;
      if (w > 30) {
        let text = label(node);
        const room = w - 8;
        if (ctx.measureText(text).width > room) {
          let cut = Math.max(1, Math.floor((text.length * room) / ctx.measureText(text).width) - 1);
          while (cut > 1 && ctx.measureText(text.slice(0, cut) + "…").width > room) cut--;
          text = text.slice(0, cut) + "…";
        }
        ctx.fillStyle = "#fff";
        ctx.fillText(text, x + 5, y + ROW_H / 2);
      }
    }
    const names = trail.concat([focus]).map((i) => nodes[i].operation);
    crumbs.textContent = focus === top ? "whole trace · click a node to zoom to it" : "zoomed to " + names.join(" › ") + " · click above to zoom out";
    panel.dataset.zoom = String(nodes[focus].id);
    panel.dataset.mode = mode;
    panel.dataset.drawn = String(rects.length);
  }

  function at(event) {
    const b = canvas.getBoundingClientRect();
    const x = event.clientX - b.left, y = event.clientY - b.top;
    for (let k = rects.length - 1; k >= 0; k--) {
      const [rx, ry, rw, i, inTrail] = rects[k];
      if (x >= rx && x < rx + rw && y >= ry && y < ry + ROW_H) return { i: i, inTrail: inTrail };
    }
    return null;
  }

  function zoom(i) {
    focus = i;
    draw();
  }

  function showTip(event) {
    const hit = at(event);
    if (!hit) {
      tip.hidden = true;
      return;
    }
    const node = nodes[hit.i];
    const whole = nodes[top].totalDuration || 1;
    const ms = (us) => cv.durationText(us / 1000);
    const lines = [el("b", label(node))];
    if (node.count) lines.push(el("div", node.count + (node.count === 1 ? " span" : " spans")));
    lines.push(el("div", "total " + ms(node.totalDuration) + " (" + ((100 * node.totalDuration) / whole).toFixed(1) + "% of the top)"));
    lines.push(el("div", "self " + ms(node.selfDuration) + (mode === "self" ? " · self with what it calls " + ms(selfWidth[hit.i]) : "")));
    if (node.errors) lines.push(el("div", node.errors + " in error", "error"));
    lines.push(el("div", hit.inTrail ? "click: zoom out to it" : hit.i === focus ? "click: zoom out" : "click: zoom in", "muted"));
    tip.replaceChildren(...lines);
    tip.hidden = false;
    tip.style.left = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 8) + "px";
    tip.style.top = event.clientY + 16 + "px";
  }

  function setup(answer) {
    build(answer);
    const controls = el("div", null, "controls");
    const modeLabel = el("label", "Width ");
    const select = el("select");
    select.id = "flame-mode";
    for (const [v, text] of [["total", "total time"], ["self", "self time"]]) select.appendChild(el("option", text)).value = v;
    select.addEventListener("change", function () {
      mode = select.value;
      draw();
    });
    modeLabel.appendChild(select);
    const reset = el("button", "Reset zoom", "flame-reset");
    reset.type = "button";
    reset.addEventListener("click", () => zoom(top));
    crumbs = el("span", "", "crumbs");
    controls.append(modeLabel, reset, crumbs);
    box = el("div", null, "flame-box");
    canvas = el("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "Flame graph: the trace's spans merged by path");
    box.appendChild(canvas);
    tip = el("div", null, "tip");
    tip.hidden = true;
    document.body.appendChild(tip);
    panel.replaceChildren(controls, box);
    canvas.addEventListener("mousemove", showTip);
    canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
    canvas.addEventListener("click", function (event) {
      const hit = at(event);
      if (!hit) return;
      if (!hit.inTrail && hit.i === focus) {
        const up = parentOf(focus);
        if (up >= 0) zoom(up);
      } else {
        zoom(hit.i);
      }
      showTip(event);
    });
    new ResizeObserver(draw).observe(box);
    document.addEventListener("cvtrace:theme", draw);
    cv.onWaterfall(draw); // the services' colours
    draw();
    panel.dataset.ready = "1";
    // for tests and scripts: where a node is drawn (client coordinates), by its id
    panel._flame = {
      rectOf: function (id) {
        const b = canvas.getBoundingClientRect();
        const found = rects.find((r) => String(nodes[r[3]].id) === String(id) && !r[4]);
        return found ? { x: b.left + found[0], y: b.top + found[1], w: found[2], h: ROW_H } : null;
      },
      nodes: () => nodes.map((node) => ({ id: node.id, operation: node.operation, service: node.service, count: node.count })),
    };
  }

  let asked = false;
  document.addEventListener("cvtrace:tab", function (event) {
    if (event.detail !== "flamegraph") return;
    if (asked) {
      draw();
      return;
    }
    asked = true;
    panel.replaceChildren(el("p", "Loading the flame graph…", "muted"));
    fetch(header.dataset.flamegraphUrl, { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(setup)
      .catch(function (err) {
        asked = false;
        panel.replaceChildren(el("p", "Cannot load the flame graph: " + err.message, "error"));
      });
  });
})();
