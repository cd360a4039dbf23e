/* The guest upload page (/upload): uploads without credentials through resumable sessions, then shows
 * each file's share link (/download/<id>) with a Copy button, and its claim code: the share link only
 * lets people download; the claim code (kept in this browser's localStorage under lockr-claim:<id>,
 * which /files reads) is what adds the file to an account later. */
(function () {
  "use strict";

  var dropzone = document.getElementById("dropzone");
  if (!dropzone) return;

  function shareBox(file) {
    var url = file.pageUrl || (location.origin + "/download/" + file.id);
    var box = Lockr.el("input", { className: "mono share-link", readonly: "", value: url,
                                  "aria-label": "Share link of " + file.name });
    var copy = Lockr.el("button", { className: "button small", type: "button", "data-action": "copy", text: "Copy link" });
    copy.addEventListener("click", function () {
      Lockr.copyText(url).then(function () { Lockr.toast("Share link copied: " + url); },
        function () { box.select(); Lockr.toast("Select the link and copy it."); });
    });
    box.addEventListener("focus", function () { box.select(); });
    return Lockr.el("div", { className: "row share" }, [box, copy]);
  }

  function claimBox(file) {
    try { localStorage.setItem("lockr-claim:" + file.id, file.claimToken); } catch (ignored) { /* private mode */ }
    var code = Lockr.el("input", { className: "mono claim-code", readonly: "", value: file.claimToken,
                                   "aria-label": "Claim code of " + file.name });
    code.addEventListener("focus", function () { code.select(); });
    return Lockr.el("div", { className: "claim" }, [
      Lockr.el("p", { className: "muted small", text: "Claim code (not for sharing): this browser remembers it, " +
        "so signing in here lets you add the file to your account by its link. Elsewhere, enter this code too." }),
      code
    ]);
  }

  LockrQueue.attach({
    dropzone: dropzone,
    input: document.getElementById("file-input"),
    list: document.getElementById("upload-list"),
    // No token: a guest upload, owned by no one until its uploader registers it with the claim code.
    options: function () { return {}; },
    onDone: function (file, job) {
      job.status.textContent = "done · uploaded " + Lockr.formatDate(file.createdAt);
      job.item.appendChild(shareBox(file));
      if (file.claimToken) job.item.appendChild(claimBox(file));
    }
  });
})();
