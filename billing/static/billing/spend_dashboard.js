// Admin spend dashboard: stacked daily bars per team and per model from #spend-data (Chart.js).
(function () {
  "use strict";
  var source = document.getElementById("spend-data");
  if (!source || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var palette = ["#417690", "#e6a23c", "#5b8c5a", "#c0392b", "#8e44ad", "#16a085", "#d35400",
    "#2c3e50", "#7f8c8d"];
  var text = getComputedStyle(document.documentElement).getPropertyValue("--body-quiet-color").trim() || "#666";
  // USD as a plain decimal down to 1e-8: Chart.js writes ticks under 1e-4 in scientific notation.
  var plain = new Intl.NumberFormat("en-US", { maximumFractionDigits: 8 });
  function usd(value) { return "$" + plain.format(value); }
  function draw(id, series, field, money) {
    var canvas = document.getElementById(id);
    if (!canvas) { return; }
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: series.map(function (s, i) {
          // Money arrives as decimal strings ("0.00002706").
          return { label: s.label, data: s[field].map(Number), backgroundColor: palette[i % palette.length] };
        })
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { position: "bottom", labels: { color: text, boxWidth: 12 } },
          tooltip: { callbacks: { label: function (ctx) {
            var v = ctx.parsed.y;
            return ctx.dataset.label + ": " + (money ? usd(v) : v + " tokens");
          } } }
        },
        scales: {
          x: { stacked: true, ticks: { color: text, maxRotation: 0, autoSkip: true, maxTicksLimit: 12 }, grid: { display: false } },
          y: { stacked: true, beginAtZero: true, ticks: money ? { color: text, callback: usd } : { color: text } }
        }
      }
    });
  }
  draw("team-spend", data.teams, "spend", true);
  draw("team-tokens", data.teams, "tokens", false);
  draw("model-spend", data.models, "spend", true);
  draw("model-tokens", data.models, "tokens", false);
  if (data.cache) { draw("cache-saved", data.cache.series, "spend", true); }
})();
