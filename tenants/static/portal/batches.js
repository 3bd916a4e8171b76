// The batches page: progress bars follow the portal's live updates (/portal/ws/live, a
// `batch.progress` event per chunk and status change); without them (no WebSocket, or it
// dropped), the page reloads every 5 seconds while a batch runs.
(function () {
  "use strict";
  var table = document.getElementById("batch-table");
  if (!table) { return; }
  var ENDED = ["completed", "failed", "expired", "cancelled"];
  var polling = null;

  function poll() {
    if (polling === null && table.dataset.active === "1") {
      polling = window.setTimeout(function () { window.location.reload(); }, 5000);
    }
  }

  function apply(event) {
    var row = table.querySelector('tr[data-batch="' + CSS.escape(event.batch_id) + '"]');
    if (!row) { return; }
    var counts = event.request_counts || {};
    var done = (counts.completed || 0) + (counts.failed || 0);
    var total = counts.total || 0;
    var percent = total ? Math.min(100, Math.round(100 * done / total)) : 0;
    var bar = row.querySelector('[data-field="progress"]');
    bar.value = percent;
    bar.textContent = percent + "%";
    bar.setAttribute("aria-label", done + " of " + total + " requests done");
    row.querySelector('[data-field="status"]').textContent = event.status;
    row.querySelector('[data-field="done"]').textContent = String(done);
    row.querySelector('[data-field="total"]').textContent = String(total);
    row.querySelector('[data-field="failed"]').textContent =
      counts.failed ? "(" + counts.failed + " failed)" : "";
    var running = Array.prototype.some.call(
      table.querySelectorAll('[data-field="status"]'),
      function (cell) { return ENDED.indexOf(cell.textContent.trim()) < 0; }
    );
    table.dataset.active = running ? "1" : "0";
  }

  var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  var socket;
  try {
    socket = new WebSocket(scheme + window.location.host + table.dataset.liveUrl);
  } catch (error) {
    poll();
    return;
  }
  socket.addEventListener("message", function (message) {
    var event;
    try { event = JSON.parse(message.data); } catch (error) { return; }
    if (event.type === "batch.progress") { apply(event); }
  });
  socket.addEventListener("open", function () { table.dataset.live = "1"; });
  socket.addEventListener("close", function () { table.dataset.live = "0"; poll(); });
}());
