// The playground's transcripts (chat over SSE, realtime over a WebSocket) show messages alike:
// `ogemBubble` appends one and returns its text element, which a streamed answer fills.
window.ogemBubble = function (transcript, role, text, model) {
  "use strict";
  var item = document.createElement("li");
  item.className = "msg msg-" + role;
  var who = document.createElement("span");
  who.className = "msg-role";
  who.textContent = role === "user" ? "You" : role === "assistant" ? model : "Error";
  var body = document.createElement("p");
  body.className = "msg-body";
  body.textContent = text;
  item.appendChild(who);
  item.appendChild(body);
  transcript.appendChild(item);
  return body;
};
