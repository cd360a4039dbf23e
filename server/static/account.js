/* The account page: API tokens (list, create, copy, revoke) and the password, through the JSON API. */
(function () {
  "use strict";

  var table = document.querySelector("#tokens-table tbody");
  var tokensMessage = document.getElementById("tokens-message");
  var newTokenBox = document.getElementById("new-token-box");
  var newToken = document.getElementById("new-token");
  var sessionPrefix = Lockr.token ? Lockr.token.slice(0, 10) : "";

  function showToken(token) {
    newToken.value = token;
    newTokenBox.hidden = false;
    newToken.focus();
    newToken.select();
  }

  function renderTokens(tokens) {
    table.textContent = "";
    tokens.filter(function (t) { return !t.revoked; }).forEach(function (t) {
      var thisBrowser = t.name === "web session" && t.prefix === sessionPrefix;
      var revoke = thisBrowser ? Lockr.el("span", { className: "muted small", text: "this browser" })
        : Lockr.el("button", { className: "button small danger", type: "button", text: "Revoke",
                               "data-token-id": String(t.id) });
      table.appendChild(Lockr.el("tr", { "data-prefix": t.prefix }, [
        Lockr.el("td", { "data-label": "Label", text: t.name || "(no label)" }),
        Lockr.el("td", { "data-label": "Token", className: "mono", text: t.prefix + "…" }),
        Lockr.el("td", { "data-label": "Created", text: Lockr.formatDate(t.createdAt) }),
        Lockr.el("td", { "data-label": "Last used", text: t.lastUsedAt ? Lockr.formatDate(t.lastUsedAt) : "never" }),
        Lockr.el("td", { className: "actions" }, [revoke])
      ]));
    });
  }

  function loadTokens() {
    return Lockr.api("GET", "/api/v1/tokens").then(function (body) { renderTokens(body.tokens); },
      function (error) { Lockr.say(tokensMessage, error.message, "error"); });
  }

  table.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-token-id]");
    if (!button) return;
    button.disabled = true;
    Lockr.api("DELETE", "/api/v1/tokens/" + button.getAttribute("data-token-id")).then(function () {
      Lockr.toast("Token revoked: it no longer works.");
      return loadTokens();
    }, function (error) {
      button.disabled = false;
      Lockr.say(tokensMessage, error.message, "error");
    });
  });

  document.getElementById("create-token-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var name = document.getElementById("token-name").value.trim() || "api token";
    Lockr.api("POST", "/api/v1/tokens", { name: name }).then(function (body) {
      showToken(body.token);
      Lockr.say(tokensMessage, "", "");
      document.getElementById("token-name").value = "";
      return loadTokens();
    }, function (error) { Lockr.say(tokensMessage, error.message, "error"); });
  });

  document.getElementById("copy-token").addEventListener("click", function () {
    Lockr.copyText(newToken.value).then(function () { Lockr.toast("Token copied."); },
      function () { newToken.select(); Lockr.toast("Press Ctrl+C to copy the selected token."); });
  });

  var passwordForm = document.getElementById("password-form");
  var passwordMessage = document.getElementById("password-message");
  passwordForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var current = document.getElementById("current-password");
    var fresh = document.getElementById("new-password");
    Lockr.api("POST", "/api/v1/account/password", { currentPassword: current.value, newPassword: fresh.value })
      .then(function () {
        current.value = "";
        fresh.value = "";
        Lockr.say(passwordMessage, "Password changed. Your tokens keep working; revoke any you no longer trust.",
                  "ok");
      }, function (error) { Lockr.say(passwordMessage, error.message, "error"); });
  });

  loadTokens();
})();
