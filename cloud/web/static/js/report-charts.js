// The report centre's charts (ECharts, SVG renderer so labels are in the page and prints are
// crisp). The data is the server's, in <script type="application/json" id="chart-data">:
//   {kind: "bars" | "stacked", unit: "yuan" | "kwh" | undefined, labels: [...],
//    series: [{name, values: [integers], stack?: "bands", band?: "peak", line?: true}]}
// Money arrives as micro-yuan and energy as Wh (integers); shown as yuan and kWh.
(function () {
  "use strict";
  var BAND_COLORS = { sharp: "#c62828", peak: "#ef6c00", flat: "#2e7d32", valley: "#1565c0",
    deep_valley: "#4527a0", single: "#607d8b", unsplit: "#9e9e9e" };
  function scale(unit) {
    if (unit === "yuan") { return function (v) { return Math.round(v / 10000) / 100; }; }
    if (unit === "kwh") { return function (v) { return Math.round(v) / 1000; }; }
    return function (v) { return v; };
  }
  function render(el, data) {
    var chart = window.echarts.init(el, null, { renderer: "svg" });
    var conv = scale(data.unit);
    var series = data.series.map(function (s) {
      var out = { name: s.name, type: s.line ? "line" : "bar", data: s.values.map(conv) };
      if (s.stack) { out.stack = s.stack; }
      if (s.band && BAND_COLORS[s.band]) { out.itemStyle = { color: BAND_COLORS[s.band] }; }
      return out;
    });
    chart.setOption({
      animation: false,
      grid: { left: 56, right: 16, top: 40, bottom: 32 },
      tooltip: { trigger: "axis" },
      legend: { top: 0, data: data.series.map(function (s) { return s.name; }) },
      xAxis: { type: "category", data: data.labels },
      yAxis: { type: "value", name: data.unit === "yuan" ? "¥" : (data.unit === "kwh" ? "kWh" : "") },
      series: series
    });
    window.addEventListener("resize", function () { chart.resize(); });
    window.addEventListener("beforeprint", function () { chart.resize(); });
  }
  function draw(root) {
    var node = (root || document).querySelector("#chart-data");
    var el = (root || document).querySelector("#report-chart");
    if (!node || !el || !window.echarts) { return; }
    if (el.getAttribute("data-drawn") === "1") { return; }
    el.setAttribute("data-drawn", "1");
    render(el, JSON.parse(node.textContent));
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  // The live alarm list is replaced by htmx every few seconds: draw its new chart.
  document.addEventListener("htmx:afterSwap", function (event) { draw(event.target.parentNode || document); });
})();
