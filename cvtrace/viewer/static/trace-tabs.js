// cvtrace viewer, trace page: the tabs (waterfall, statistics, flame graph). A tab's
// panel is shown, the others hidden; the address's #fragment names the open tab, so a
// link can open one. Opening a tab fires cvtrace:tab (detail: the panel's id): the
// statistics and the flame graph load on their first showing.
(function () {
  "use strict";
  const bar = document.getElementById("trace-tabs");
  if (!bar) return;
  const tabs = Array.from(bar.querySelectorAll('[role="tab"]'));
  const FRAGMENTS = { waterfall: "", "trace-stats": "#statistics", flamegraph: "#flamegraph" };

  function show(tab, remember) {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", on ? "true" : "false");
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
    }
    const id = tab.getAttribute("aria-controls");
    // the span details belong to the waterfall: the other views get the width
    bar.closest(".trace-body").classList.toggle("other-view", id !== "waterfall");
    if (remember) history.replaceState(null, "", window.location.pathname + window.location.search + FRAGMENTS[id]);
    document.dispatchEvent(new CustomEvent("cvtrace:tab", { detail: id }));
  }

  for (const tab of tabs) tab.addEventListener("click", () => show(tab, true));
  bar.addEventListener("keydown", function (event) {
    const at = tabs.indexOf(document.activeElement);
    if (at < 0 || (event.key !== "ArrowRight" && event.key !== "ArrowLeft")) return;
    const next = tabs[(at + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    next.focus();
    show(next, true);
    event.preventDefault();
    event.stopPropagation();
  });
  window.cvtrace.showTab = function (id) {
    const tab = tabs.find((t) => t.getAttribute("aria-controls") === id);
    if (tab) show(tab, true);
  };
  const wanted = Object.keys(FRAGMENTS).find((id) => FRAGMENTS[id] && FRAGMENTS[id] === window.location.hash);
  if (wanted) {
    const tab = tabs.find((t) => t.getAttribute("aria-controls") === wanted);
    // after the deferred scripts have listened
    document.addEventListener("DOMContentLoaded", () => show(tab, false));
  }
})();
