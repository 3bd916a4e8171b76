// Admin analytics page: lines per model (latency, TTFT, errors, throughput, cache) and stacked
// bars per team and model (spend, tokens) from #analytics-data (Chart.js, as the spend dashboard).
(function () {
  "use strict";
  var source = document.getElementById("analytics-data");
  if (!source || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var palette = ["#417690", "#e6a23c", "#5b8c5a", "#c0392b", "#8e44ad", "#16a085", "#d35400",
    "#2c3e50", "#7f8c8d"];
  var text = getComputedStyle(document.documentElement).getPropertyValue("--body-quiet-color").trim() || "#666";
  function label(bucket) {
    // "2026-03-01T10:00:00Z": the day for daily buckets, the hour too for hourly ones.
    return data.performance.bucket === "hour" ? bucket.slice(0, 16).replace("T", " ") : bucket.slice(0, 10);
  }
  function draw(id, type, rows, name, pick, format) {
    var canvas = document.getElementById(id);
    if (!canvas) { return; }
    new Chart(canvas, {
      type: type,
      data: {
        labels: data.performance.buckets.map(label),
        datasets: rows.map(function (row, i) {
          var color = palette[i % palette.length];
          return {
            label: name(row),
            // Money arrives as decimal strings; a bucket without requests is null (a gap).
            data: row.series.map(function (point) { var v = pick(point); return v === null ? null : Number(v); }),
            borderColor: color,
            backgroundColor: color,
            spanGaps: false
          };
        })
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { position: "bottom", labels: { color: text, boxWidth: 12 } },
          tooltip: { callbacks: { label: function (ctx) { return ctx.dataset.label + ": " + format(ctx.parsed.y); } } }
        },
        scales: {
          x: { stacked: type === "bar", ticks: { color: text, maxRotation: 0, autoSkip: true, maxTicksLimit: 12 }, grid: { display: false } },
          y: { stacked: type === "bar", beginAtZero: true, ticks: { color: text, callback: format } }
        }
      }
    });
  }
  var plain = new Intl.NumberFormat("en-US", { maximumFractionDigits: 8 });
  function ms(v) { return plain.format(v) + " ms"; }
  function pct(v) { return plain.format(v * 100) + "%"; }
  function num(v) { return plain.format(v); }
  function usd(v) { return "$" + plain.format(v); }
  function model(row) { return row.model; }
  var models = data.performance.results;
  draw("latency-p50", "line", models, model, function (p) { return p.latency_p50_ms; }, ms);
  draw("latency-p95", "line", models, model, function (p) { return p.latency_p95_ms; }, ms);
  draw("ttft-p50", "line", models, model, function (p) { return p.ttft_p50_ms; }, ms);
  draw("error-rate", "line", models, model, function (p) { return p.error_rate; }, pct);
  draw("throughput", "line", models, model, function (p) { return p.requests_per_minute; }, num);
  draw("team-spend", "bar", data.teams.results, function (row) { return row.team_name || "No team"; },
    function (p) { return p.spend; }, usd);
  draw("model-tokens", "bar", data.models.results, model, function (p) { return p.total_tokens; }, num);
  draw("cache-rate", "line", [{ model: "Hit rate", series: data.cache.series }], model,
    function (p) { return p.hit_rate; }, pct);
})();
