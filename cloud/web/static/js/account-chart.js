// The tenant page's sparkline: 30 days of use (ECharts, SVG renderer so the labels are in the
// page). The data is the server's, in <script type="application/json" id="chart-data">:
// day labels and integer Wh, shown as kWh.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var node = document.getElementById("chart-data");
    var el = document.getElementById("chart-usage");
    if (!node || !el || !window.echarts) { return; }
    var daily = JSON.parse(node.textContent).daily;
    var chart = window.echarts.init(el, null, { renderer: "svg" });
    chart.setOption({
      animation: false,
      grid: { left: 40, right: 8, top: 10, bottom: 24 },
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: daily.labels, axisLabel: { fontSize: 10 } },
      yAxis: { type: "value", name: "kWh", nameTextStyle: { fontSize: 10 }, axisLabel: { fontSize: 10 } },
      series: [{ type: "line", smooth: true, symbol: "none", areaStyle: { opacity: 0.15 },
                 data: daily.wh.map(function (wh) { return Math.round(wh / 10) / 100; }),
                 lineStyle: { color: "#0a58ca" }, itemStyle: { color: "#0a58ca" } }]
    });
    window.addEventListener("resize", function () { chart.resize(); });
  });
})();
