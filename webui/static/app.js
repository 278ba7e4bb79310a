// footfall dashboard: polling that pauses while the page is hidden.
// Elements with data-poll-ms="2000" and hx-trigger="poll" are refreshed every
// interval, but only while the tab is visible (a tablet's screen off costs nothing).
(function () {
  "use strict";

  // root itself is included: after an outerHTML swap htmx settles on the new polling
  // element, which querySelectorAll (descendants only) would never find
  function pollers(root) {
    var found = Array.prototype.slice.call(root.querySelectorAll("[data-poll-ms]"));
    if (root.matches && root.matches("[data-poll-ms]")) { found.unshift(root); }
    return found;
  }

  function startPolling(root) {
    pollers(root).forEach(function (el) {
      if (el.dataset.pollStarted) { return; }
      el.dataset.pollStarted = "1";
      var ms = parseInt(el.dataset.pollMs, 10) || 2000;
      var timer = setInterval(function () {
        if (!document.body.contains(el)) { clearInterval(timer); return; }
        if (document.visibilityState === "visible") { htmx.trigger(el, "poll"); }
      }, ms);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { startPolling(document); });
  document.addEventListener("htmx:afterSettle", function (e) { startPolling(e.target); });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      document.querySelectorAll("[data-poll-ms]").forEach(function (el) { htmx.trigger(el, "poll"); });
    }
  });
  // Editing a window's from/to means a custom window.
  document.addEventListener("change", function (e) {
    var input = e.target;
    if (!input.form || (input.name !== "from" && input.name !== "to")) { return; }
    var choice = input.form.querySelector("select[name=window]");
    if (choice) { choice.value = "custom"; }
  });
  window.footfall = { startPolling: startPolling };
})();
