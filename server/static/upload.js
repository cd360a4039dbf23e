/* Uploads one browser File to the lockr API with progress: LockrUpload.start(file, options).
 *
 * Resumable sessions first (POST /api/v1/upload/session, then PUT uploadUrl in chunks with the
 * semantics of Google Cloud Storage resumable uploads: 308 + Range while incomplete, 201 at the end,
 * `bytes *\/TOTAL` asks how much is stored). The session URL is kept in localStorage under the file's
 * name, size and lastModified, so after a reload or a dropped connection the same file resumes from
 * what the server has durably stored. A server without sessions (404) gets one direct POST instead. */
(function (global) {
  "use strict";

  var QUANTUM = 256 * 1024;            // GCS requires chunks in multiples of 256 KiB
  var STORE_PREFIX = "lockr-upload:";
  var MAX_RETRIES = 8;

  var settings = { chunkSize: 32 * QUANTUM };   // 8 MiB

  /* Per account too: a session belongs to whoever opened it, so another user of this browser starts anew. */
  function storeKey(file) {
    return STORE_PREFIX + [Lockr.username, file.name, file.size, file.lastModified].join("|");
  }

  /* Forgets remembered sessions the server has reaped by now (files never dropped again). */
  function sweep() {
    try {
      Object.keys(localStorage).forEach(function (key) {
        if (key.indexOf(STORE_PREFIX) !== 0) return;
        var saved = JSON.parse(localStorage.getItem(key) || "null");
        if (!saved || !saved.expiresAt || Date.parse(saved.expiresAt) < Date.now()) localStorage.removeItem(key);
      });
    } catch (ignored) { /* storage unavailable: nothing to sweep */ }
  }

  function remember(file, session) {
    try { localStorage.setItem(storeKey(file), JSON.stringify(session)); } catch (ignored) { /* private mode */ }
  }

  function recall(file) {
    try {
      var saved = JSON.parse(localStorage.getItem(storeKey(file)) || "null");
      if (saved && saved.expiresAt && Date.parse(saved.expiresAt) < Date.now()) { forget(file); return null; }
      return saved;
    } catch (ignored) { return null; }
  }

  function forget(file) {
    try { localStorage.removeItem(storeKey(file)); } catch (ignored) { /* nothing kept */ }
  }

  /* Same-origin path of an absolute uploadUrl (the page's CSP allows connections to itself only). */
  function localPath(url) {
    var parsed = new URL(url, location.href);
    return parsed.pathname + parsed.search;
  }

  /* One XHR; resolves with {status, range, body} for any HTTP answer, rejects only on a network error. */
  function send(method, url, headers, body, onProgress) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open(method, url);
      Object.keys(headers).forEach(function (name) { xhr.setRequestHeader(name, headers[name]); });
      if (onProgress) {
        xhr.upload.onprogress = function (event) { if (event.lengthComputable) onProgress(event.loaded); };
      }
      xhr.onload = function () {
        resolve({ status: xhr.status, range: xhr.getResponseHeader("Range"), body: xhr.responseText });
      };
      xhr.onerror = function () { reject(new Lockr.ApiError(0, "network", "The connection dropped.")); };
      xhr.send(body === undefined ? null : body);
    });
  }

  /* The offset after a 308/409 answer: `Range: bytes=0-N` means N+1 bytes are stored; none means 0. */
  function storedBytes(range) {
    var match = /bytes=0-(\d+)/.exec(range || "");
    return match ? parseInt(match[1], 10) + 1 : 0;
  }

  function fileObject(answer) { return JSON.parse(answer.body); }

  function wait(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function authHeaders(options) {
    return options.token ? { "Authorization": "Bearer " + options.token } : {};
  }

  function createSession(file, options) {
    var headers = authHeaders(options);
    headers["Content-Type"] = "application/json";
    var request = { name: file.name, size: file.size, type: file.type || "application/octet-stream" };
    if (options.region) request.region = options.region;
    return send("POST", "/api/v1/upload/session", headers, JSON.stringify(request)).then(function (answer) {
      if (answer.status === 404) return null;   // this server has no sessions: upload directly
      if (answer.status !== 201) throw Lockr.parseError(answer.status, answer.body);
      var session = JSON.parse(answer.body);
      var saved = { uploadUrl: session.uploadUrl, expiresAt: session.expiresAt, id: session.id };
      // A guest's session: the secret that lets the uploader add the file to an account later. Only
      // this answer carries it, so it is kept with the session (the server stores only its hash).
      if (session.claimToken) saved.claimToken = session.claimToken;
      remember(file, saved);
      return saved;
    });
  }

  /* How much of the file the session holds: a number, a finished file object, or null (session gone). */
  function queryStatus(session, file) {
    return send("PUT", localPath(session.uploadUrl), { "Content-Range": "bytes */" + file.size }, "")
      .then(function (answer) {
        if (answer.status === 308) return storedBytes(answer.range);
        if (answer.status === 200 || answer.status === 201) return { done: fileObject(answer) };
        if (answer.status === 404 || answer.status === 410) return null;
        throw Lockr.parseError(answer.status, answer.body);
      });
  }

  function putChunks(session, file, offset, options) {
    if (offset >= file.size && file.size > 0) return queryStatus(session, file).then(function (state) {
      if (state && state.done) return state.done;
      throw new Lockr.ApiError(0, "incomplete", "The server holds the whole file but did not finish it.");
    });
    var end = Math.min(file.size, offset + settings.chunkSize);
    var headers = { "Content-Range": file.size === 0 ? "bytes */0" : "bytes " + offset + "-" + (end - 1) + "/" + file.size };
    return send("PUT", localPath(session.uploadUrl), headers, file.slice(offset, end), function (loaded) {
      if (options.onProgress) options.onProgress(offset + loaded, file.size);
    }).then(function (answer) {
      if (answer.status === 200 || answer.status === 201) return fileObject(answer);
      if (answer.status === 308 || answer.status === 409) {
        var stored = storedBytes(answer.range);
        if (options.onProgress) options.onProgress(stored, file.size);
        return putChunks(session, file, stored, options);
      }
      throw Lockr.parseError(answer.status, answer.body);
    });
  }

  /* The finished file with the claim token of the session that made it (the last answer cannot carry it). */
  function withClaim(result, session) {
    if (session && session.claimToken && !result.claimToken) result.claimToken = session.claimToken;
    return result;
  }

  /* Runs the session to the end, resuming after network errors from what the server reports stored. */
  function resumable(file, firstSession, options) {
    var session = firstSession;
    var retries = 0;
    var restarted = !options.allowRestart;
    function round() {
      return queryStatus(session, file).then(function (state) {
        if (state === null) {
          forget(file);
          if (restarted) throw new Lockr.ApiError(410, "gone", "The upload session expired; start the upload again.");
          restarted = true;   // a remembered session the server no longer has: begin a new one, once
          return createSession(file, options).then(function (fresh) { session = fresh; return round(); });
        }
        if (state.done) return state.done;
        if (options.onProgress) options.onProgress(state, file.size);
        if (options.onResume && state > 0) options.onResume(state);
        return putChunks(session, file, state, options);
      }).catch(function (error) {
        if (error.code !== "network" || retries >= MAX_RETRIES) throw error;
        retries += 1;
        if (options.onRetry) options.onRetry(retries);
        return wait(Math.min(10000, 250 * Math.pow(2, retries))).then(round);
      });
    }
    return round().then(function (result) { return withClaim(result, session); });
  }

  function direct(file, options) {
    var headers = authHeaders(options);
    // Header values must be ISO-8859-1; the server decodes the percent-encoded UTF-8 name.
    headers["x-file-name"] = encodeURIComponent(file.name);
    headers["Content-Type"] = file.type || "application/octet-stream";
    if (options.region) headers["x-upload-region"] = options.region;
    return send("POST", "/api/v1/upload", headers, file, function (loaded) {
      if (options.onProgress) options.onProgress(loaded, file.size);
    }).then(function (answer) {
      if (answer.status === 201) return fileObject(answer);
      throw Lockr.parseError(answer.status, answer.body);
    });
  }

  /* options: {token, region, onProgress(sent, total), onResume(offset), onRetry(n)}; resolves with the file object. */
  function start(file, options) {
    var saved = recall(file);
    var opened = saved ? Promise.resolve(saved) : createSession(file, options);
    return opened.then(function (session) {
      if (session === null) return direct(file, options);
      var run = Object.assign({ allowRestart: !!saved }, options);
      return resumable(file, session, run).then(function (result) { forget(file); return result; });
    });
  }

  sweep();
  global.LockrUpload = { start: start, settings: settings, storeKey: storeKey, QUANTUM: QUANTUM };
})(window);
