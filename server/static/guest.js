/* The guest upload page (/upload): uploads without credentials through resumable sessions, then shows
 * each file's share link (/download/<id>) with a Copy button. */
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

  LockrQueue.attach({
    dropzone: dropzone,
    input: document.getElementById("file-input"),
    list: document.getElementById("upload-list"),
    // No token: a guest upload, owned by no one until someone registers it.
    options: function () { return {}; },
    onDone: function (file, job) {
      job.status.textContent = "done · uploaded " + Lockr.formatDate(file.createdAt);
      job.item.appendChild(shareBox(file));
    }
  });
})();
