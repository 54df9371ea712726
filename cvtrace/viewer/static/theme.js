// cvtrace viewer: the colour theme. Loaded before the page paints (not deferred), so a
// reader's choice applies without a flash. "auto" follows prefers-color-scheme.
(function () {
  "use strict";
  const KEY = "cvtrace.theme";
  const THEMES = ["auto", "light", "dark"];
  const root = document.documentElement;

  function stored() {
    try {
      const theme = localStorage.getItem(KEY);
      return THEMES.includes(theme) ? theme : "auto";
    } catch (err) {
      return "auto"; // storage refused: the choice lasts for this page only
    }
  }

  function apply(theme) {
    if (theme === "auto") delete root.dataset.theme;
    else root.dataset.theme = theme;
  }

  function changed() {
    document.dispatchEvent(new CustomEvent("cvtrace:theme"));
  }

  apply(stored());
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", changed);
  document.addEventListener("DOMContentLoaded", function () {
    const button = document.getElementById("theme-button");
    if (!button) return;
    let theme = stored();
    const show = () => { button.textContent = "Theme: " + theme; };
    show();
    button.addEventListener("click", function () {
      theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
      try {
        localStorage.setItem(KEY, theme);
      } catch (err) {
        // kept for this page only
      }
      apply(theme);
      show();
      changed();
    });
  });
})();
