// cvtrace viewer: what every page shares (window.cvtrace): building nodes, icons,
// durations, copy buttons, the keyboard (`/`, `?`, Esc, then the page's own keys) and
// the shortcuts overlay. Span-derived text is only ever put in the page as text.
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  // an icon of the page's sprite (base.html): drawn, not a font glyph
  function icon(name, title) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "icon i-" + name);
    if (title) {
      const t = document.createElementNS(SVG, "title");
      t.textContent = title;
      svg.appendChild(t);
    } else {
      svg.setAttribute("aria-hidden", "true");
    }
    const use = document.createElementNS(SVG, "use");
    use.setAttribute("href", "#i-" + name);
    svg.appendChild(use);
    return svg;
  }

  // as figures.format_duration_ns: 850µs, 12.3ms, 4.56s (rounded first: 0.9999 ms is 1ms)
  function durationText(ms) {
    if (!(ms >= 0)) return "";
    const us = Math.round(ms * 1000);
    if (us < 1000) return us + "µs";
    const inMs = Number(ms.toPrecision(3));
    if (inMs < 1000) return inMs + "ms";
    const inS = Number((ms / 1000).toPrecision(3));
    if (inS < 60) return inS + "s";
    return Number((ms / 60000).toPrecision(3)) + "min";
  }

  function readJSON(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    // plain http on another host: the old way
    const area = el("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  // a button that copies text() and says so
  function copyButton(text, what) {
    const button = el("button", null, "copy");
    button.type = "button";
    button.title = "Copy " + (what || "value");
    button.setAttribute("aria-label", button.title);
    button.appendChild(icon("copy"));
    button.addEventListener("click", function (event) {
      event.stopPropagation();
      copyText(text()).then(function () {
        button.classList.add("done");
        button.title = "Copied";
        setTimeout(function () { button.classList.remove("done"); button.title = "Copy " + (what || "value"); }, 1200);
      }, function (err) {
        button.title = "Cannot copy: " + err;
      });
    });
    return button;
  }

  // -- keyboard ------------------------------------------------------------------
  const help = document.getElementById("help");
  let pageKeys = null; // the page's own keys: function(event) -> handled

  function toggleHelp(show) {
    if (!help) return;
    help.hidden = show === undefined ? !help.hidden : !show;
    if (!help.hidden) document.getElementById("help-close").focus();
  }

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (help && !help.hidden) {
      if (event.key === "Escape" || event.key === "?") {
        toggleHelp(false);
        event.preventDefault();
      }
      return;
    }
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.key === "/") {
      const box = document.querySelector("[data-slash]") || document.getElementById("trace-id-box");
      if (box) {
        event.preventDefault();
        box.focus();
        box.select();
      }
      return;
    }
    if (event.key === "?") {
      toggleHelp(true);
      event.preventDefault();
      return;
    }
    if (pageKeys && pageKeys(event)) event.preventDefault();
  });

  if (help) {
    document.getElementById("keys-button").addEventListener("click", () => toggleHelp(true));
    document.getElementById("help-close").addEventListener("click", () => toggleHelp(false));
    help.addEventListener("click", (event) => { if (event.target === help) toggleHelp(false); });
  }

  window.cvtrace = {
    el: el,
    icon: icon,
    durationText: durationText,
    readJSON: readJSON,
    copyText: copyText,
    copyButton: copyButton,
    onKeys: function (handler) { pageKeys = handler; },
    cssVar: function (name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); },
  };
})();
