/* Uploads one browser File to the lockr API with progress: LockrUpload.start(file, options).
 * Direct upload (POST /api/v1/upload) streamed by XMLHttpRequest, which reports upload progress. */
(function (global) {
  "use strict";

  /* options: {token, region, onProgress(sentBytes, totalBytes)}; resolves with the file object. */
  function start(file, options) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/v1/upload");
      if (options.token) xhr.setRequestHeader("Authorization", "Bearer " + options.token);
      // Header values must be ISO-8859-1; the server decodes the percent-encoded UTF-8 name.
      xhr.setRequestHeader("x-file-name", encodeURIComponent(file.name));
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      if (options.region) xhr.setRequestHeader("x-upload-region", options.region);
      xhr.upload.onprogress = function (event) {
        if (event.lengthComputable && options.onProgress) options.onProgress(event.loaded, event.total);
      };
      xhr.onload = function () {
        if (xhr.status === 201) {
          resolve(JSON.parse(xhr.responseText));
        } else {
          reject(Lockr.parseError(xhr.status, xhr.responseText));
        }
      };
      xhr.onerror = function () {
        reject(new Lockr.ApiError(0, "network", "The connection dropped; try the upload again."));
      };
      xhr.send(file);
    });
  }

  global.LockrUpload = { start: start };
})(window);
