// The control page stays current without reloading (a reload would take keyboard focus away): every
// two seconds it fetches itself and swaps in each [data-live] part whose content changed, unless focus
// is inside that part.
(function () {
  "use strict";
  function refresh() {
    fetch(location.pathname, { credentials: "same-origin", cache: "no-store", redirect: "manual" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (!text) { return; }
        var fresh = new DOMParser().parseFromString(text, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (part) {
          var next = fresh.getElementById(part.id);
          if (next && next.innerHTML !== part.innerHTML && !part.contains(document.activeElement)) {
            part.innerHTML = next.innerHTML;
          }
        });
      })
      .catch(function () { /* the app is stopping or restarting: the next round tries again */ });
  }
  window.setInterval(refresh, 2000);
}());
