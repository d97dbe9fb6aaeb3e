// Linkdeck's browser code: sends the CSRF token with every htmx mutation.
(function () {
  "use strict";

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
})();
