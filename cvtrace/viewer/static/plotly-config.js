// plotly.js defaults for every chart the viewer draws: no "share to Plotly Cloud"
// button, no link to an editor, no server to send a chart to. Nothing leaves the machine.
(function () {
  "use strict";
  if (!window.Plotly) return;
  window.Plotly.setPlotConfig({
    showSendToCloud: false,
    showEditInChartStudio: false,
    showLink: false,
    plotlyServerURL: "",
    displaylogo: false,
  });
})();
