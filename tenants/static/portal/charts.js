// Usage charts from the page's JSON (#usage-data), drawn with the vendored Chart.js.
(function () {
  "use strict";
  var source = document.getElementById("usage-data");
  if (!source || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#4f46e5";
  var muted = getComputedStyle(document.documentElement).getPropertyValue("--muted").trim() || "#64748b";
  var labels = data.labels.map(function (day) { return day.slice(5); });
  // USD as a plain decimal down to 1e-8: Chart.js writes ticks under 1e-4 in scientific notation.
  var plain = new Intl.NumberFormat("en-US", { maximumFractionDigits: 8 });
  function usd(value) { return "$" + plain.format(value); }
  function draw(id, values, label, money) {
    var canvas = document.getElementById(id);
    if (!canvas) { return; }
    new Chart(canvas, {
      type: "bar",
      data: { labels: labels, datasets: [{ label: label, data: values.map(Number), backgroundColor: accent, borderRadius: 4 }] },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: function (ctx) { return money ? usd(ctx.parsed.y) : ctx.parsed.y + " tokens"; } } }
        },
        scales: {
          x: { ticks: { color: muted, maxRotation: 0, autoSkip: true, maxTicksLimit: 10 }, grid: { display: false } },
          y: { beginAtZero: true, ticks: money ? { color: muted, callback: usd } : { color: muted } }
        }
      }
    });
  }
  draw("spend-chart", data.spend, "Spend (USD)", true);
  draw("tokens-chart", data.tokens, "Tokens", false);
})();
