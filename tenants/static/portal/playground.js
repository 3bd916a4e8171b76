// A small chat client: POST /v1/chat/completions with stream=true and read the SSE with fetch.
(function () {
  "use strict";
  var form = document.getElementById("playground-form");
  if (!form) { return; }
  var keyInput = document.getElementById("pg-key");
  var modelInput = document.getElementById("pg-model");
  var systemInput = document.getElementById("pg-system");
  var messageInput = document.getElementById("pg-message");
  var transcript = document.getElementById("pg-transcript");
  var statusLine = document.getElementById("pg-status");
  var sendButton = document.getElementById("pg-send");
  var stopButton = document.getElementById("pg-stop");
  var history = [];
  var controller = null;

  keyInput.value = sessionStorage.getItem("ogem-playground-key") || "";
  keyInput.addEventListener("change", function () { sessionStorage.setItem("ogem-playground-key", keyInput.value); });

  function bubble(role, text) { return window.ogemBubble(transcript, role, text, modelInput.value); }

  function busy(on) {
    sendButton.disabled = on;
    stopButton.disabled = !on;
    statusLine.textContent = on ? "Streaming…" : "";
  }

  async function errorText(response) {
    try {
      var payload = await response.json();
      return (payload.error && payload.error.message) || response.statusText;
    } catch (err) {
      return response.status + " " + response.statusText;
    }
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    var text = messageInput.value.trim();
    if (!text || !keyInput.value) { return; }
    history.push({ role: "user", content: text });
    bubble("user", text);
    messageInput.value = "";
    var messages = systemInput.value.trim() ? [{ role: "system", content: systemInput.value.trim() }].concat(history) : history.slice();
    var answer = bubble("assistant", "");
    controller = new AbortController();
    busy(true);
    var reply = "";
    try {
      var response = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: { "Authorization": "Bearer " + keyInput.value, "Content-Type": "application/json" },
        body: JSON.stringify({ model: modelInput.value, messages: messages, stream: true, stream_options: { include_usage: true } }),
        signal: controller.signal
      });
      if (!response.ok) { throw new Error(await errorText(response)); }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      var usage = null;
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) { break; }
        buffer += decoder.decode(chunk.value, { stream: true });
        var events = buffer.split("\n\n");
        buffer = events.pop();
        events.forEach(function (block) {
          block.split("\n").forEach(function (line) {
            if (line.indexOf("data:") !== 0) { return; }
            var data = line.slice(5).trim();
            if (!data || data === "[DONE]") { return; }
            var parsed = JSON.parse(data);
            if (parsed.error) { throw new Error(parsed.error.message); }
            if (parsed.usage) { usage = parsed.usage; }
            var delta = parsed.choices && parsed.choices[0] && parsed.choices[0].delta;
            if (delta && delta.content) { reply += delta.content; answer.textContent = reply; }
          });
        });
      }
      history.push({ role: "assistant", content: reply });
      busy(false);
      if (usage) { statusLine.textContent = usage.total_tokens + " tokens"; }
    } catch (err) {
      busy(false);
      if (err.name === "AbortError") { statusLine.textContent = "Stopped."; return; }
      answer.parentNode.className = "msg msg-error";
      answer.textContent = err.message;
    }
  });

  stopButton.addEventListener("click", function () { if (controller) { controller.abort(); } });
  document.getElementById("pg-clear").addEventListener("click", function () {
    history = [];
    transcript.textContent = "";
    statusLine.textContent = "";
  });
  // Send is disabled in the page until this script has bound the form: a click before that
  // would submit the bare form and reload the page.
  sendButton.disabled = false;
})();
