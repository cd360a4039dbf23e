/* Shared by the pages: the JSON API with this browser's session token, sizes, dates, copying, messages. */
(function (global) {
  "use strict";

  var tokenMeta = document.querySelector('meta[name="lockr-token"]');
  var token = tokenMeta ? tokenMeta.getAttribute("content") : null;
  var userMeta = document.querySelector('meta[name="lockr-user"]');
  var username = userMeta ? userMeta.getAttribute("content") : "";

  /* An API error as a readable sentence, from the server's {"error": {"code", "message"}} body. */
  function ApiError(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }

  function parseError(status, text) {
    try {
      var body = JSON.parse(text);
      if (body && body.error) return new ApiError(status, body.error.code, body.error.message);
    } catch (ignored) { /* not JSON: a proxy's page, say */ }
    return new ApiError(status, "http_" + status, "The server answered " + status + ".");
  }

  /* Calls the JSON API as the signed-in user; resolves with the parsed body (null for 204). */
  function api(method, path, body) {
    var headers = {};
    if (token) headers["Authorization"] = "Bearer " + token;
    var init = { method: method, headers: headers, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (response) {
      return response.text().then(function (text) {
        if (!response.ok) {
          var error = parseError(response.status, text);
          if (response.status === 401 && token) {
            error.message = "Your session has ended; log in again.";
          }
          throw error;
        }
        return text ? JSON.parse(text) : null;
      });
    }, function () {
      throw new ApiError(0, "network", "The server cannot be reached; check the connection and try again.");
    });
  }

  function formatSize(size) {
    var units = ["B", "KB", "MB", "GB", "TB"];
    var value = size;
    for (var i = 0; i < units.length; i++) {
      if (value < 1000 || i === units.length - 1) {
        return i === 0 ? value + " B" : value.toFixed(1) + " " + units[i];
      }
      value /= 1000;
    }
    return size + " B";
  }

  function formatDate(iso) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) return iso || "";
    function two(n) { return ("0" + n).slice(-2); }
    // Local time, written the same way in every locale: 2026-11-27 14:05.
    return date.getFullYear() + "-" + two(date.getMonth() + 1) + "-" + two(date.getDate()) + " " +
      two(date.getHours()) + ":" + two(date.getMinutes());
  }

  /* Copies text; navigator.clipboard needs a secure context, so plain http falls back to execCommand. */
  function copyText(text) {
    if (navigator.clipboard && global.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return legacyCopy(text); });
    }
    return legacyCopy(text);
  }

  function legacyCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (ignored) { ok = false; }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  var toastTimer = null;
  function toast(text) {
    var box = document.getElementById("toast");
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { box.hidden = true; }, 2500);
  }

  /* Shows (or with null hides) a message paragraph; kind is "error", "ok" or "". */
  function say(element, text, kind) {
    if (!element) return;
    element.textContent = text || "";
    element.className = "message" + (kind ? " " + kind : "");
    element.hidden = !text;
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  global.Lockr = {
    token: token, username: username, api: api, ApiError: ApiError, parseError: parseError, formatSize: formatSize,
    formatDate: formatDate, copyText: copyText, toast: toast, say: say, el: el
  };
})(window);
