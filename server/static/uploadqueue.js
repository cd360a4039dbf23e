/* The upload list shared by /files and /upload: files dropped on (or chosen in) a drop zone queue up and
 * go through LockrUpload (resumable sessions), two at a time, each with its own progress bar and state.
 *
 * LockrQueue.attach({dropzone, input, list, options(), onDone(file, job)}): `options()` is read when a file
 * is added ({token, region}); `onDone` gets the API's file object and the job ({file, item, bar, status}).
 * Each list item carries data-name and data-state (waiting, uploading, done, failed), and data-id once done. */
(function (global) {
  "use strict";

  var CONCURRENT_UPLOADS = 2;

  function attach(config) {
    var queue = [];
    var running = 0;

    function addUploads(fileList) {
      Array.prototype.forEach.call(fileList, function (file) {
        var bar = Lockr.el("progress", { max: "100", value: "0" });
        var status = Lockr.el("span", { className: "status small", text: "waiting" });
        var item = Lockr.el("li", { className: "upload", "data-name": file.name, "data-state": "waiting" }, [
          Lockr.el("div", { className: "row between" }, [
            Lockr.el("span", { className: "name", text: file.name }),
            Lockr.el("span", { className: "muted small", text: Lockr.formatSize(file.size) })
          ]),
          bar, status
        ]);
        config.list.appendChild(item);
        queue.push({ file: file, item: item, bar: bar, status: status, options: config.options() });
      });
      pump();
    }

    function pump() {
      while (running < CONCURRENT_UPLOADS && queue.length) {
        running += 1;
        runOne(queue.shift()).finally(function () { running -= 1; pump(); });
      }
    }

    function runOne(job) {
      job.item.setAttribute("data-state", "uploading");
      job.status.textContent = "uploading…";
      return LockrUpload.start(job.file, Object.assign({}, job.options, {
        onProgress: function (sent, total) {
          var percent = total ? Math.floor(100 * sent / total) : 100;
          job.bar.value = percent;
          job.status.textContent = percent + "% · " + Lockr.formatSize(sent) + " of " + Lockr.formatSize(total);
        },
        onResume: function (offset) {
          job.item.setAttribute("data-resumed-from", String(offset));
        },
        onRetry: function (attempt) {
          job.status.textContent = "connection lost; retrying (" + attempt + ")…";
        }
      })).then(function (file) {
        job.bar.value = 100;
        job.item.setAttribute("data-state", "done");
        job.item.setAttribute("data-id", file.id);
        job.status.textContent = "done";
        if (config.onDone) config.onDone(file, job);
      }, function (error) {
        job.item.setAttribute("data-state", "failed");
        job.status.textContent = "failed: " + error.message;
        job.status.className = "status small error-text";
      });
    }

    var input = config.input;
    var dropzone = config.dropzone;
    input.addEventListener("change", function () {
      addUploads(input.files);
      input.value = "";
    });
    ["dragenter", "dragover"].forEach(function (name) {
      dropzone.addEventListener(name, function (event) {
        event.preventDefault();
        dropzone.classList.add("over");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      dropzone.addEventListener(name, function () { dropzone.classList.remove("over"); });
    });
    dropzone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) addUploads(event.dataTransfer.files);
    });
    dropzone.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
    });
    // A file dropped outside the zone must not make the browser navigate to it.
    window.addEventListener("dragover", function (event) { event.preventDefault(); });
    window.addEventListener("drop", function (event) { event.preventDefault(); });
    return { add: addUploads };
  }

  global.LockrQueue = { attach: attach };
})(window);
