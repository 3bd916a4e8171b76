// The vector stores page: file counts and progress bars follow the portal's live updates
// (/portal/ws/live, a `vector_store.progress` event as each file is attached and indexed);
// without them (no WebSocket, or it dropped), the page reloads every 5 seconds while a store
// indexes.
(function () {
  "use strict";
  var table = document.getElementById("vector-store-table");
  if (!table) { return; }
  var polling = null;

  function poll() {
    if (polling === null && table.dataset.active === "1") {
      polling = window.setTimeout(function () { window.location.reload(); }, 5000);
    }
  }

  function apply(event) {
    var row = table.querySelector(
      'tr[data-vector-store="' + CSS.escape(event.vector_store_id) + '"]'
    );
    if (!row) { return; }
    var counts = event.file_counts || {};
    var total = counts.total || 0;
    var done = total - (counts.in_progress || 0);
    var percent = total ? Math.min(100, Math.round(100 * done / total)) : 100;
    var bar = row.querySelector('[data-field="progress"]');
    bar.value = percent;
    bar.textContent = percent + "%";
    bar.setAttribute("aria-label", done + " of " + total + " files indexed");
    row.querySelector('[data-field="status"]').textContent = event.status;
    row.querySelector('[data-field="done"]').textContent = String(done);
    row.querySelector('[data-field="total"]').textContent = String(total);
    ["in_progress", "completed", "failed"].forEach(function (name) {
      row.querySelector('[data-field="' + name + '"]').textContent = String(counts[name] || 0);
    });
    var running = Array.prototype.some.call(
      table.querySelectorAll('[data-field="status"]'),
      function (cell) { return cell.textContent.trim() === "in_progress"; }
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
    if (event.type === "vector_store.progress") { apply(event); }
  });
  socket.addEventListener("open", function () { table.dataset.live = "1"; });
  socket.addEventListener("close", function () { table.dataset.live = "0"; poll(); });
}());
