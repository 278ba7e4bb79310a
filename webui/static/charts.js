// footfall dashboard: uPlot charts from <script type="application/json" class="chart-data">
// blocks (no inline script: the page's CSP allows only files from this origin).
// Each block: {id, title, tz, x: [UTC seconds], series: [{label, values, color, dash}],
// status: ["complete" | "partial" | "missing" | "future", ...], y: "axis label"}.
// Partial buckets get a grey band, missing ones a hatched band; null values are gaps.
(function () {
  "use strict";

  var hatch = null;
  // 24-hour, day-first tick labels (uPlot's default is US style)
  var TIME_TICKS = [
    [3600 * 24 * 365, "{YYYY}", null, null, null, null, null, null, 1],
    [3600 * 24 * 28, "{MMM}", "\n{YYYY}", null, null, null, null, null, 1],
    [3600 * 24, "{D} {MMM}", "\n{YYYY}", null, null, null, null, null, 1],
    [3600, "{HH}:{mm}", "\n{D} {MMM} {YYYY}", null, "\n{D} {MMM}", null, null, null, 1],
    [60, "{HH}:{mm}", "\n{D} {MMM} {YYYY}", null, "\n{D} {MMM}", null, null, null, 1],
    [1, ":{ss}", "\n{D} {MMM} {YYYY} {HH}:{mm}", null, "\n{D} {MMM} {HH}:{mm}", null, "\n{HH}:{mm}", null, 1]
  ];

  function hatchPattern(ctx) {
    if (hatch) { return hatch; }
    var c = document.createElement("canvas");
    c.width = 8; c.height = 8;
    var g = c.getContext("2d");
    g.fillStyle = "#eceff3"; g.fillRect(0, 0, 8, 8);
    g.strokeStyle = "#8a96a3"; g.lineWidth = 2;
    g.beginPath(); g.moveTo(0, 8); g.lineTo(8, 0); g.moveTo(-2, 2); g.lineTo(2, -2);
    g.moveTo(6, 10); g.lineTo(10, 6); g.stroke();
    hatch = ctx.createPattern(c, "repeat");
    return hatch;
  }

  function coverageBands(spec) {
    return function (u) {
      var ctx = u.ctx, xs = spec.x, n = xs.length;
      var step = n > 1 ? xs[1] - xs[0] : 300;
      var top = u.bbox.top, height = u.bbox.height;
      ctx.save();
      for (var i = 0; i < n; i++) {
        var st = spec.status[i];
        if (st !== "partial" && st !== "missing") { continue; }
        var end = i + 1 < n ? xs[i + 1] : xs[i] + step;
        var x0 = u.valToPos(xs[i], "x", true), x1 = u.valToPos(end, "x", true);
        ctx.fillStyle = st === "missing" ? hatchPattern(ctx) : "rgba(93, 107, 120, 0.22)";
        ctx.fillRect(x0, top, Math.max(1, x1 - x0), height);
      }
      ctx.restore();
    };
  }

  function draw(block) {
    if (block.dataset.drawn) { return; }
    var target = document.getElementById(block.dataset.target);
    if (!target || typeof uPlot === "undefined") { return; }
    block.dataset.drawn = "1";
    var spec = JSON.parse(block.textContent);
    var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
    var series = [{ value: "{D} {MMM} {YYYY} {HH}:{mm}" }].concat(spec.series.map(function (s) {
      return { label: s.label, stroke: s.color, width: 2, dash: s.dash ? [6, 4] : undefined,
               points: { show: spec.x.length < 60 } };
    }));
    var step = spec.x.length > 1 ? spec.x[1] - spec.x[0] : 300;
    var width = function () { return Math.max(280, target.clientWidth || 600); };
    var plot = new uPlot({
      width: width(), height: 260, series: series,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), spec.tz); },
      scales: { x: { time: true, range: function (u, min, max) { return [min, max + step]; } } },
      legend: { live: false },  // the labels only: no "--" placeholders before a hover
      axes: [{ values: TIME_TICKS }, { label: spec.y }],
      hooks: { drawClear: [coverageBands(spec)] }
    }, data, target);
    plots.push({ plot: plot, target: target, width: width });
  }

  // One resize listener for every chart; a chart swapped out by htmx (a poll, a new
  // window) is destroyed, so a page that polls for hours keeps only the charts it shows.
  var plots = [];
  function prune() {
    plots = plots.filter(function (p) {
      if (document.body.contains(p.target)) { return true; }
      p.plot.destroy();
      return false;
    });
  }
  window.addEventListener("resize", function () {
    prune();
    plots.forEach(function (p) { p.plot.setSize({ width: p.width(), height: 260 }); });
  });

  function drawAll(root) {
    prune();
    root.querySelectorAll("script.chart-data").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (e) { drawAll(e.target); });
})();
