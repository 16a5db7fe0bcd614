// The usage page's charts (ECharts, SVG renderer so the labels are in the page). The data is
// the server's, in <script type="application/json" id="chart-data">: labels and integer Wh;
// shown here as kWh with two places.
(function () {
  "use strict";
  function kwh(wh) { return Math.round(wh / 10) / 100; }
  function bars(id, labels, wh, color) {
    var el = document.getElementById(id);
    if (!el || !window.echarts) { return; }
    var chart = window.echarts.init(el, null, { renderer: "svg" });
    chart.setOption({
      animation: false,
      grid: { left: 40, right: 8, top: 16, bottom: 28 },
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: labels, axisLabel: { fontSize: 10 } },
      yAxis: { type: "value", name: "kWh", nameTextStyle: { fontSize: 10 }, axisLabel: { fontSize: 10 } },
      series: [{ type: "bar", data: wh.map(kwh), itemStyle: { color: color } }]
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var node = document.getElementById("chart-data");
    if (!node) { return; }
    var data = JSON.parse(node.textContent);
    bars("chart-daily", data.daily.labels, data.daily.wh, "#1a7f37");
    bars("chart-monthly", data.monthly.labels, data.monthly.wh, "#0969da");
    if (data.tou) { bars("chart-tou", data.tou.labels, data.tou.wh, "#bf8700"); }
  });
})();
