/* The download page: checks the link (and the key phrase's hash) with a HEAD request first, so a
 * wrong phrase or a deleted file gets a clear sentence here instead of a browser error page. */
(function () {
  "use strict";

  var card = document.getElementById("download-card");
  if (!card) return;
  var form = document.getElementById("download-form");
  var message = document.getElementById("download-message");
  var button = document.getElementById("download-button");
  var phraseInput = document.getElementById("passphrase");
  var baseUrl = card.getAttribute("data-download-url");

  var MESSAGES = {
    403: "That key phrase is not right. Check it (it is case-sensitive) and try again.",
    404: "This file has been deleted by its owner; it can no longer be downloaded.",
    429: "Too many attempts; wait a moment and try again."
  };

  function start(url) {
    // The server answers with Content-Disposition: attachment, so the browser saves the file and
    // this page stays; nothing of the file is ever shown inline.
    var link = document.createElement("a");
    link.href = url;
    link.setAttribute("download", "");
    link.rel = "noopener";
    document.body.appendChild(link);
    link.click();
    document.body.removeChild(link);
  }

  function check(url) {
    return fetch(url, { method: "HEAD", credentials: "omit", cache: "no-store" }).then(function (response) {
      return response.status;
    }, function () { return 0; });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    Lockr.say(message, "", "");
    button.disabled = true;
    var hashed = phraseInput ? LockrHash.keyHash(phraseInput.value) : Promise.resolve(null);
    hashed.then(function (keyHash) {
      var url = keyHash ? baseUrl + "?keyHash=" + keyHash : baseUrl;
      return check(url).then(function (status) {
        if (status >= 200 && status < 300) {
          Lockr.say(message, "Your download has started.", "ok");
          start(url);
        } else if (status === 0) {
          Lockr.say(message, "The server cannot be reached; check the connection and try again.", "error");
        } else {
          Lockr.say(message, MESSAGES[status] || ("The download failed (the server answered " + status + ")."),
                    "error");
          if (status === 403 && phraseInput) { phraseInput.select(); }
        }
      });
    }).finally(function () { button.disabled = false; });
  });
})();
