/* The files page: list, drag-and-drop uploads with per-file progress, delete, keys, share and signed links,
   and the trash (restore, delete forever, empty). */
(function () {
  "use strict";

  var card = document.getElementById("upload-card");
  var dropzone = document.getElementById("dropzone");
  var input = document.getElementById("file-input");
  var regionSelect = document.getElementById("region-select");
  var uploadList = document.getElementById("upload-list");
  var tbody = document.querySelector("#files-table tbody");
  var filesMessage = document.getElementById("files-message");
  var emptyNote = document.getElementById("files-empty");
  var loadMore = document.getElementById("load-more");
  var usage = document.getElementById("usage");
  var files = {};
  var nextCursor = null;

  // -- the list ---------------------------------------------------------------------------------

  function keyBadge(file) {
    return Lockr.el("span", { className: "badge" + (file.hasKey ? " on" : ""), text: file.hasKey ? "key set" : "open" });
  }

  function row(file) {
    var nameCell = Lockr.el("td", { "data-label": "Name", className: "name" }, [
      Lockr.el("a", { href: file.pageUrl || ("/download/" + file.id), text: file.name, target: "_blank",
                      rel: "noopener" })
    ]);
    var actions = Lockr.el("td", { className: "actions" }, [
      Lockr.el("button", { className: "button small", type: "button", "data-action": "share", text: "Copy link" }),
      Lockr.el("button", { className: "button small", type: "button", "data-action": "signed", text: "Signed link" }),
      Lockr.el("button", { className: "button small", type: "button", "data-action": "key",
                           text: file.hasKey ? "Change key" : "Set key" }),
      Lockr.el("button", { className: "button small danger", type: "button", "data-action": "delete", text: "Delete" })
    ]);
    return Lockr.el("tr", { "data-id": file.id, "data-name": file.name }, [
      nameCell,
      Lockr.el("td", { "data-label": "Size", text: Lockr.formatSize(file.size) }),
      Lockr.el("td", { "data-label": "Region", text: file.region }),
      Lockr.el("td", { "data-label": "Key", className: "key" }, [keyBadge(file)]),
      Lockr.el("td", { "data-label": "Uploaded", text: Lockr.formatDate(file.createdAt) }),
      actions
    ]);
  }

  function show(file, prepend) {
    files[file.id] = file;
    var fresh = row(file);
    var old = tbody.querySelector('tr[data-id="' + file.id + '"]');
    if (old) tbody.replaceChild(fresh, old);
    else if (prepend) tbody.insertBefore(fresh, tbody.firstChild);
    else tbody.appendChild(fresh);
    emptyNote.hidden = true;
  }

  function updateEmpty() { emptyNote.hidden = tbody.children.length > 0; }

  function loadPage(cursor) {
    var path = "/api/v1/files?limit=100" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
    return Lockr.api("GET", path).then(function (body) {
      // Newest first on screen; the API pages oldest first.
      body.files.slice().reverse().forEach(function (file) { show(file, !cursor); });
      nextCursor = body.next;
      loadMore.hidden = !nextCursor;
      updateEmpty();
    }, function (error) { Lockr.say(filesMessage, error.message, "error"); });
  }

  function refreshUsage() {
    Lockr.api("GET", "/api/v1/account").then(function (body) {
      usage.textContent = Lockr.formatSize(body.used) + " of " + Lockr.formatSize(body.quota) + " used";
    }, function () { usage.textContent = ""; });
  }

  loadMore.addEventListener("click", function () { loadPage(nextCursor); });

  // -- uploads (the queue and its progress bars are shared with /upload: uploadqueue.js) ----------

  LockrQueue.attach({
    dropzone: dropzone, input: input, list: uploadList,
    options: function () { return { token: Lockr.token, region: regionSelect.value }; },
    onDone: function (file) { show(file, true); refreshUsage(); }
  });

  // -- adding a guest upload by its link or id (POST /api/v1/files/register) ------------------

  var registerForm = document.getElementById("register-form");
  var registerInput = document.getElementById("register-input");
  var registerClaim = document.getElementById("register-claim");
  var registerMessage = document.getElementById("register-message");

  /* The id in a share link (/download/ID), a download URL (/api/v1/download/REGION/ID/...) or on its own. */
  function fileIdFrom(text) {
    var value = text.trim();
    if (/^[0-9a-f]{32}$/i.test(value)) return value.toLowerCase();
    var match = /\/download\/(?:[a-z0-9][a-z0-9-]{0,62}\/)?([0-9a-f]{32})(?![0-9a-f])/i.exec(value);
    return match ? match[1].toLowerCase() : null;
  }

  registerForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var id = fileIdFrom(registerInput.value);
    if (!id) {
      Lockr.say(registerMessage, "That is neither a download link (…/download/…) nor a 32-character file id.", "error");
      registerInput.focus();
      return;
    }
    // The claim code typed in, else the one the upload page of this browser kept (guest.js).
    var claimKey = "lockr-claim:" + id;
    var claim = registerClaim.value.trim();
    if (!claim) { try { claim = localStorage.getItem(claimKey) || ""; } catch (ignored) { claim = ""; } }
    var body = { id: id };
    if (claim) body.claimToken = claim;
    var button = registerForm.querySelector("button[type=submit]");
    button.disabled = true;
    Lockr.api("POST", "/api/v1/files/register", body).then(function (file) {
      try { localStorage.removeItem(claimKey); } catch (ignored) { /* nothing kept */ }
      show(file, true);
      refreshUsage();
      registerInput.value = "";
      registerClaim.value = "";
      Lockr.say(registerMessage, "Added " + file.name + " to your files.", "ok");
    }, function (error) {
      Lockr.say(registerMessage, error.message, "error");
    }).finally(function () { button.disabled = false; });
  });

  // -- actions ----------------------------------------------------------------------------------

  var keyDialog = document.getElementById("key-dialog");
  var linkDialog = document.getElementById("link-dialog");
  var current = null;

  tbody.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (!button) return;
    var tr = button.closest("tr");
    var file = files[tr.getAttribute("data-id")];
    var action = button.getAttribute("data-action");
    if (action === "share") {
      var url = file.pageUrl || (location.origin + "/download/" + file.id);
      Lockr.copyText(url).then(function () { Lockr.toast("Share link copied: " + url); },
        function () { Lockr.toast(url); });
    } else if (action === "delete") {
      confirmDelete(button, file, tr);
    } else if (action === "key") {
      current = file;
      document.getElementById("key-file-name").textContent = file.name;
      document.getElementById("key-phrase").value = "";
      document.getElementById("key-clear").hidden = !file.hasKey;
      keyDialog.showModal();
    } else if (action === "signed") {
      current = file;
      document.getElementById("link-file-name").textContent = file.name;
      document.getElementById("link-url").value = "";
      document.getElementById("link-expires").textContent = "";
      document.getElementById("link-copy").disabled = true;
      linkDialog.showModal();
    }
  });

  /* True on the second click within a few seconds (the first asks `question`): no blocking confirm() box. */
  function confirmed(button, question) {
    if (button.getAttribute("data-armed") === "yes") return true;
    var label = button.textContent;
    button.setAttribute("data-armed", "yes");
    button.textContent = question;
    setTimeout(function () {
      if (button.isConnected) { button.removeAttribute("data-armed"); button.textContent = label; }
    }, 4000);
    return false;
  }

  function confirmDelete(button, file, tr) {
    if (!confirmed(button, "Really delete?")) return;
    button.disabled = true;
    Lockr.api("DELETE", "/api/v1/files/" + file.id).then(function () {
      tr.parentNode.removeChild(tr);
      delete files[file.id];
      updateEmpty();
      refreshUsage();
      loadTrash(null);
      Lockr.toast(trashCard ? "Moved " + file.name + " to the trash" : "Deleted " + file.name);
    }, function (error) {
      button.disabled = false;
      Lockr.say(filesMessage, error.message, "error");
    });
  }

  function setKey(keyHash) {
    var file = current;
    Lockr.api("POST", "/api/v1/files/" + file.id + "/key", { keyHash: keyHash }).then(function (updated) {
      show(updated, false);
      keyDialog.close();
      Lockr.toast(updated.hasKey ? "Key set: downloads now need the phrase." : "Key removed.");
    }, function (error) { keyDialog.close(); Lockr.say(filesMessage, error.message, "error"); });
  }

  document.getElementById("key-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var phrase = document.getElementById("key-phrase").value;
    if (!phrase) { document.getElementById("key-phrase").focus(); return; }
    LockrHash.keyHash(phrase).then(setKey);
  });
  document.getElementById("key-clear").addEventListener("click", function () { setKey(null); });
  document.getElementById("key-cancel").addEventListener("click", function () { keyDialog.close(); });

  document.getElementById("link-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var seconds = Math.min(parseInt(document.getElementById("link-expiry").value, 10),
                           parseInt(card.getAttribute("data-max-link"), 10));
    Lockr.api("POST", "/api/v1/files/" + current.id + "/link", { expiresIn: seconds }).then(function (body) {
      var box = document.getElementById("link-url");
      box.value = body.url;
      box.select();
      document.getElementById("link-copy").disabled = false;
      document.getElementById("link-expires").textContent = "Works until " + Lockr.formatDate(body.expiresAt) + ".";
    }, function (error) { document.getElementById("link-expires").textContent = error.message; });
  });
  document.getElementById("link-copy").addEventListener("click", function () {
    var url = document.getElementById("link-url").value;
    Lockr.copyText(url).then(function () { Lockr.toast("Signed link copied."); });
  });
  document.getElementById("link-close").addEventListener("click", function () { linkDialog.close(); });

  // -- the trash (GET /api/v1/trash; POST .../restore, DELETE one, DELETE all) ---------------------

  var trashCard = document.getElementById("trash-card");
  var trashTable = document.getElementById("trash-table");
  var trashBody = trashTable ? trashTable.querySelector("tbody") : null;
  var trashNone = document.getElementById("trash-none");
  var trashMessage = document.getElementById("trash-message");
  var trashMore = document.getElementById("trash-more");
  var trashEmpty = document.getElementById("trash-empty");
  var trashUsage = document.getElementById("trash-usage");
  var trashed = {};
  var trashCursor = null;

  function trashRow(file) {
    return Lockr.el("tr", { "data-id": file.id, "data-name": file.name }, [
      Lockr.el("td", { "data-label": "Name", className: "name", text: file.name }),
      Lockr.el("td", { "data-label": "Size", text: Lockr.formatSize(file.size) }),
      Lockr.el("td", { "data-label": "Deleted", text: Lockr.formatDate(file.deletedAt) }),
      Lockr.el("td", { "data-label": "Deleted for good", text: Lockr.formatDate(file.purgeAt) }),
      Lockr.el("td", { className: "actions" }, [
        Lockr.el("button", { className: "button small", type: "button", "data-action": "restore", text: "Restore" }),
        Lockr.el("button", { className: "button small danger", type: "button", "data-action": "forever",
                             text: "Delete forever" })
      ])
    ]);
  }

  function updateTrash() {
    var any = trashBody.children.length > 0;
    trashTable.hidden = !any;
    trashNone.hidden = any;
    trashEmpty.hidden = !any;
    if (!any) trashUsage.textContent = "";
  }

  function loadTrash(cursor) {
    if (!trashCard) return;
    var path = "/api/v1/trash?limit=100" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
    Lockr.api("GET", path).then(function (body) {
      if (!cursor) { trashBody.textContent = ""; trashed = {}; }
      // The last deleted first is what a person looks for; the API pages oldest upload first.
      body.files.slice().sort(function (a, b) { return a.deletedAt < b.deletedAt ? 1 : -1; })
        .forEach(function (file) { trashed[file.id] = file; trashBody.appendChild(trashRow(file)); });
      trashCursor = body.next;
      trashMore.hidden = !trashCursor;
      trashUsage.textContent = body.count ? body.count + " file" + (body.count === 1 ? "" : "s") + ", "
        + Lockr.formatSize(body.bytes) : "";
      updateTrash();
    }, function (error) { Lockr.say(trashMessage, error.message, "error"); });
  }

  if (trashCard) {
    trashMore.addEventListener("click", function () { loadTrash(trashCursor); });
    trashBody.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-action]");
      if (!button) return;
      var tr = button.closest("tr");
      var file = trashed[tr.getAttribute("data-id")];
      var restoring = button.getAttribute("data-action") === "restore";
      if (!restoring && !confirmed(button, "Really delete forever?")) return;
      button.disabled = true;
      var call = restoring ? Lockr.api("POST", "/api/v1/trash/" + file.id + "/restore")
                           : Lockr.api("DELETE", "/api/v1/trash/" + file.id);
      call.then(function (restored) {
        tr.parentNode.removeChild(tr);
        delete trashed[file.id];
        updateTrash();
        refreshUsage();
        loadTrash(null);  // the counts
        if (restored) {
          show(restored, true);
          Lockr.toast("Restored " + file.name + (restored.name !== file.name ? " as " + restored.name
                                                                               + " (the name was taken)" : ""));
        } else {
          Lockr.toast("Deleted " + file.name + " for good");
        }
      }, function (error) {
        button.disabled = false;
        Lockr.say(trashMessage, error.message, "error");
      });
    });
    trashEmpty.addEventListener("click", function () {
      if (!confirmed(trashEmpty, "Really empty the trash?")) return;
      trashEmpty.disabled = true;
      Lockr.api("DELETE", "/api/v1/trash").then(function (body) {
        trashBody.textContent = "";
        trashed = {};
        updateTrash();
        refreshUsage();
        Lockr.toast("Emptied the trash: " + body.deleted + " file" + (body.deleted === 1 ? "" : "s")
                    + " deleted for good, " + Lockr.formatSize(body.bytes) + " freed");
      }, function (error) { Lockr.say(trashMessage, error.message, "error"); })
        .finally(function () {
          trashEmpty.disabled = false;
          trashEmpty.removeAttribute("data-armed");
          trashEmpty.textContent = "Empty trash";
        });
    });
  }

  loadPage(null);
  loadTrash(null);
  refreshUsage();
})();
