// Linkdeck's browser code: the CSRF header on htmx mutations and the copy buttons.
(function () {
  "use strict";

  const COPIED_FOR_MS = 2000;

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // htmx 4 does not inherit hx-headers, so add the token to every non-GET request here.
  document.addEventListener("htmx:config:request", function (event) {
    const request = event.detail.ctx.request;
    if ((request.method || "GET").toUpperCase() !== "GET") {
      request.headers["X-CSRFToken"] = csrfToken();
    }
  });

  // An alert reports one failed action (see errors/partials/alert.html); the next change
  // that works clears it. Polling GETs leave it alone.
  document.addEventListener("htmx:after:request", function (event) {
    const ctx = event.detail.ctx;
    const method = (ctx.request.method || "GET").toUpperCase();
    const alerts = document.getElementById("alerts");
    if (alerts && method !== "GET" && ctx.response && ctx.response.status < 400) {
      alerts.replaceChildren();
    }
  });

  function showFeedback(button, text) {
    if (!button.dataset.label) {
      button.dataset.label = button.textContent;
    }
    button.textContent = text;
    clearTimeout(button.copyTimer);
    button.copyTimer = setTimeout(function () {
      button.textContent = button.dataset.label;
    }, COPIED_FOR_MS);
  }

  // One listener on the document, so buttons in rows htmx inserts later work too.
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy]");
    if (!button) {
      return;
    }
    const text = button.dataset.copy;
    if (!navigator.clipboard) {
      // The clipboard API needs a secure context; let the person copy it by hand.
      window.prompt("Copy this link:", text);
      return;
    }
    navigator.clipboard.writeText(text).then(
      function () { showFeedback(button, "Copied"); },
      function () { showFeedback(button, "Copy failed"); }
    );
  });
})();
