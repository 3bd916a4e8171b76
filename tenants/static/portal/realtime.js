// The playground's realtime text mode: the portal mints a one-minute client secret for one of
// the user's keys (POST, session cookie + CSRF), the browser opens /v1/realtime with it in the
// `openai-insecure-api-key.` subprotocol (browsers cannot set headers), sends text and shows the
// response's text deltas. The session stays open for further messages until closed.
(function () {
  "use strict";
  var form = document.getElementById("rt-form");
  if (!form) { return; }
  var keySelect = document.getElementById("rt-key");
  var modelSelect = document.getElementById("rt-model");
  var messageInput = document.getElementById("rt-message");
  var transcript = document.getElementById("rt-transcript");
  var statusLine = document.getElementById("rt-status");
  var sendButton = document.getElementById("rt-send");
  var closeButton = document.getElementById("rt-close");
  var socket = null;
  var opened = null; // key|model of the open session
  var answer = null;

  function bubble(role, text) { return window.ogemBubble(transcript, role, text, modelSelect.value); }

  function status(text) { statusLine.textContent = text; }

  async function mint() {
    var body = new URLSearchParams();
    body.set("key_id", keySelect.value);
    body.set("model", modelSelect.value);
    var response = await fetch(form.dataset.secretUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value },
      body: body
    });
    var payload = await response.json();
    if (!response.ok) { throw new Error((payload.error && payload.error.message) || response.statusText); }
    return payload.value;
  }

  function open(secret) {
    return new Promise(function (resolve, reject) {
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var url = scheme + window.location.host + "/v1/realtime?model=" + encodeURIComponent(modelSelect.value);
      var ws = new WebSocket(url, ["realtime", "openai-insecure-api-key." + secret]);
      ws.addEventListener("open", function () { resolve(ws); });
      ws.addEventListener("error", function () { reject(new Error("The Realtime session could not be opened.")); });
      ws.addEventListener("message", function (message) {
        var event;
        try { event = JSON.parse(message.data); } catch (err) { return; }
        if (event.type === "response.output_text.delta" && answer) {
          answer.textContent += event.delta;
        } else if (event.type === "response.done") {
          var usage = event.response && event.response.usage;
          status("Done" + (usage ? ": " + usage.total_tokens + " tokens" : "") + ".");
          sendButton.disabled = false;
          answer = null;
        } else if (event.type === "error") {
          bubble("error", (event.error && event.error.message) || "Error");
          sendButton.disabled = false;
        }
      });
      ws.addEventListener("close", function () {
        if (socket === ws) { socket = null; opened = null; closeButton.disabled = true; status("Session closed."); }
        sendButton.disabled = false;
      });
    });
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    var text = messageInput.value.trim();
    if (!text) { return; }
    sendButton.disabled = true;
    try {
      var wanted = keySelect.value + "|" + modelSelect.value;
      if (socket && opened !== wanted) { socket.close(1000); socket = null; }
      if (!socket) {
        status("Opening a session…");
        socket = await open(await mint());
        opened = wanted;
        closeButton.disabled = false;
        socket.send(JSON.stringify({ type: "session.update", session: { type: "realtime", output_modalities: ["text"] } }));
      }
      bubble("user", text);
      messageInput.value = "";
      answer = bubble("assistant", "");
      status("Waiting for the response…");
      socket.send(JSON.stringify({
        type: "conversation.item.create",
        item: { type: "message", role: "user", content: [{ type: "input_text", text: text }] }
      }));
      socket.send(JSON.stringify({ type: "response.create" }));
    } catch (err) {
      bubble("error", err.message);
      status("");
      sendButton.disabled = false;
    }
  });

  closeButton.addEventListener("click", function () { if (socket) { socket.close(1000); } });
}());
