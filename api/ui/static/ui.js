// storage dashboard: live job progress without reloading the page. No dependencies, no build step.
// Polls /ui/jobs.json (same session cookie, same origin) while a job shown on the page is active.
(function () {
  "use strict";
  var POLL_MS = 700;

  function active() {
    return Array.prototype.slice.call(document.querySelectorAll(".jobprog[data-active=yes]"));
  }

  function apply(box, job) {
    var bar = box.querySelector("progress");
    if (bar) { if (job.bar === null) { bar.removeAttribute("value"); } else { bar.value = job.bar; } }
    box.querySelector(".pct").textContent = job.progress_text;
    var state = box.querySelector(".state");
    state.textContent = job.state;
    state.className = "badge s-" + job.state + " state";
    box.querySelector(".msg").textContent = job.message;
    box.querySelector(".err").textContent = job.error;
    box.dataset.active = job.active ? "yes" : "no";
    box.dataset.state = job.state;
    if (!job.active) {
      var row = box.closest("tr") || document;
      Array.prototype.forEach.call(row.querySelectorAll(".cancel-form"), function (f) { f.remove(); });
    }
  }

  function poll() {
    var boxes = active();
    if (!boxes.length) { return; }
    var ids = boxes.slice(0, 50).map(function (b) { return "id=" + encodeURIComponent(b.dataset.jobId); });
    fetch("/ui/jobs.json?" + ids.join("&"), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) {
        if (r.status === 401) { window.location = "/ui/login?ended=1"; throw new Error("session ended"); }
        return r.json();
      })
      .then(function (jobs) {
        jobs.forEach(function (job) {
          boxes.forEach(function (box) { if (box.dataset.jobId === job.id) { apply(box, job); } });
        });
        window.setTimeout(poll, POLL_MS);
      })
      .catch(function () { window.setTimeout(poll, POLL_MS * 4); });
  }

  // forms that change something hard to undo ask first (data-confirm: the question)
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) { ev.preventDefault(); }
  }, true);

  document.addEventListener("DOMContentLoaded", function () { if (active().length) { window.setTimeout(poll, POLL_MS); } });
})();
