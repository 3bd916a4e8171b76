// Copy a new secret, hand it to the playground (this tab only), confirm revocations.
(function () {
  "use strict";
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = document.querySelector(button.getAttribute("data-copy"));
      input.select();
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard) { navigator.clipboard.writeText(input.value).then(done, done); }
      else { document.execCommand("copy"); done(); }
    });
  });
  document.querySelectorAll("[data-use-key]").forEach(function (link) {
    link.addEventListener("click", function () {
      var input = document.querySelector(link.getAttribute("data-use-key"));
      sessionStorage.setItem("ogem-playground-key", input.value);
    });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
})();
