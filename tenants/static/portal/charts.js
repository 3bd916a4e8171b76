// Usage charts from the page's JSON (#usage-data), drawn with the vendored Chart.js.
(function () {
  "use strict";
  var source = document.getElementById("usage-data");
  if (!source || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#4f46e5";
  var muted = getComputedStyle(document.documentElement).getPropertyValue("--muted").trim() || "#64748b";
  var labels = data.labels.map(function (day) { return day.slice(5); });
  function draw(id, values, label, money) {
    var canvas = document.getElementById(id);
    if (!canvas) { return; }
    new Chart(canvas, {
      type: "bar",
      data: { labels: labels, datasets: [{ label: label, data: values, backgroundColor: accent, borderRadius: 4 }] },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: function (ctx) { return money ? "$" + ctx.parsed.y.toFixed(4) : ctx.parsed.y + " tokens"; } } }
        },
        scales: {
          x: { ticks: { color: muted, maxRotation: 0, autoSkip: true, maxTicksLimit: 10 }, grid: { display: false } },
          y: { beginAtZero: true, ticks: { color: muted } }
        }
      }
    });
  }
  draw("spend-chart", data.spend, "Spend (USD)", true);
  draw("tokens-chart", data.tokens, "Tokens", false);
})();
