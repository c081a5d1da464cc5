/* Huizhen consult pages: plain JavaScript, no external assets. */
(function () {
  "use strict";
  var API = "/api/v1/consult/";

  function csrf() {
    var m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function call(method, url, body, headers) {
    var opts = { method: method, credentials: "same-origin", headers: { "X-CSRFToken": csrf() } };
    if (body instanceof Blob || body instanceof ArrayBuffer) {
      opts.body = body;
      opts.headers["Content-Type"] = "application/octet-stream";
    } else if (body !== undefined) {
      opts.body = JSON.stringify(body);
      opts.headers["Content-Type"] = "application/json";
    }
    Object.keys(headers || {}).forEach(function (k) { opts.headers[k] = headers[k]; });
    return fetch(url, opts).then(function (r) {
      var ct = r.headers.get("Content-Type") || "";
      var parsed = ct.indexOf("json") >= 0 ? r.json() : r.text();
      return parsed.then(function (data) {
        if (!r.ok) { var e = new Error((data && data.detail) || r.status); e.status = r.status; e.data = data; throw e; }
        return data;
      });
    });
  }

  function say(text) { var s = document.getElementById("status"); if (s) { s.textContent = text; } }

  /* Resumable upload: ask the server where to continue, send 512 KiB chunks, retry. */
  var CHUNK = 512 * 1024;
  function upload(consultId, file, kind, onProgress) {
    return call("POST", API + "consults/" + consultId + "/attachments/uploads/",
      { kind: kind, filename: file.name, size: file.size })
      .then(function (u) { return sendFrom(consultId, u.id, file, 0, onProgress, 0); });
  }
  function sendFrom(consultId, uploadId, file, offset, onProgress, failures) {
    if (offset >= file.size) { return Promise.resolve(); }
    var end = Math.min(offset + CHUNK, file.size);
    var url = API + "consults/" + consultId + "/attachments/" + uploadId + "/upload/";
    return call("PATCH", url, file.slice(offset, end),
      { "Content-Range": "bytes " + offset + "-" + (end - 1) + "/" + file.size })
      .then(function (state) {
        onProgress(state.received_bytes / file.size);
        return state.status === "complete" ? null
          : sendFrom(consultId, uploadId, file, state.received_bytes, onProgress, 0);
      }, function (err) {
        if (err.status === 400 || failures >= 8) { throw err; }
        // Poor connection or a wrong offset: ask where the server is, then go on from there.
        return new Promise(function (ok) { setTimeout(ok, Math.min(30000, 1000 * Math.pow(2, failures))); })
          .then(function () { return call("GET", url); })
          .then(function (state) {
            return sendFrom(consultId, uploadId, file, state.received_bytes, onProgress, failures + 1);
          }, function () { return sendFrom(consultId, uploadId, file, offset, onProgress, failures + 1); });
      });
  }

  function newConsult(t) {
    var form = document.getElementById("new-consult");
    var results = document.getElementById("patient-results");
    document.getElementById("patient-search").addEventListener("click", function () {
      var q = document.getElementById("patient-query").value.trim();
      var param = /^\d{17}[\dXx]$/.test(q) ? "id_number" : "name";
      call("GET", "/api/v1/patients/?" + param + "=" + encodeURIComponent(q)).then(function (page) {
        results.innerHTML = "";
        if (!page.results.length) { results.textContent = t.none; }
        page.results.forEach(function (p) {
          var li = document.createElement("li");
          var b = document.createElement("button");
          b.type = "button";
          b.textContent = p.name + " · " + p.sex + " · " + p.birth_date;
          b.addEventListener("click", function () {
            document.getElementById("patient-id").value = p.id;
            results.innerHTML = "";
            document.getElementById("patient-query").value = p.name;
          });
          li.appendChild(b); results.appendChild(li);
        });
      }, function (e) { say(t.failed + " " + e.message); });
    });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var f = new FormData(form);
      if (!f.get("patient")) { say(t.choose); return; }
      var vitals = {};
      if (f.get("bp")) { vitals.bp = f.get("bp"); }
      if (f.get("hr")) { vitals.hr = f.get("hr"); }
      var body = { patient: f.get("patient"), consult_type: f.get("consult_type"),
        urgency: f.get("urgency"), reason: f.get("reason"), clinical_question: f.get("clinical_question"),
        record_summary: f.get("record_summary"), wanted_specialty: f.get("wanted_specialty"), vital_signs: vitals };
      say(t.saving);
      var consultId;
      call("POST", API + "consults/", body).then(function (c) {
        consultId = c.id;
        var uid = (f.get("study_uid") || "").trim();
        return uid ? call("POST", API + "consults/" + consultId + "/attachments/study/", { study_instance_uid: uid }) : null;
      }).then(function () {
        var file = document.getElementById("file").files[0];
        if (!file) { return null; }
        var bar = document.getElementById("progress");
        bar.hidden = false; say(t.uploading);
        var kind = file.type === "application/pdf" ? "pdf" : "photo";
        return upload(consultId, file, kind, function (p) { bar.value = Math.round(p * 100); });
      }).then(function () {
        return call("POST", API + "consults/" + consultId + "/submit/");
      }).then(function () {
        say(t.submitted); window.location = "/consult/" + consultId + "/";
      }, function (e) {
        say(t.failed + " " + e.message + (e.data && e.data.fields ? " " + JSON.stringify(e.data.fields) : ""));
        if (consultId) { setTimeout(function () { window.location = "/consult/" + consultId + "/"; }, 4000); }
      });
    });
  }

  function detail(t) {
    var box = document.getElementById("consult");
    var id = box.getAttribute("data-id");
    var base = API + "consults/" + id + "/";
    function reload() { window.location.reload(); }
    function fail(e) { say(t.failed + " " + e.message); }
    document.querySelectorAll("#actions button").forEach(function (b) {
      b.addEventListener("click", function () {
        var body = {};
        if (b.getAttribute("data-reason")) {
          var r = window.prompt(t.reason);
          if (r === null) { return; }
          body.reason = r;
        }
        call("POST", base + b.getAttribute("data-action") + "/", body).then(reload, fail);
      });
    });
    var report = document.getElementById("report");
    if (report) {
      report.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var f = new FormData(report);
        var structured = {};
        f.forEach(function (value, name) {
          if (name.indexOf("s.") === 0 && String(value).trim() !== "") { structured[name.slice(2)] = value; }
        });
        var codes = String(f.get("icd10_codes") || "").split(/[\s,，;；]+/).filter(function (c) { return c; });
        var days = String(f.get("follow_up_days") || "").trim();
        call("PUT", base + "report/", { findings: f.get("findings"), impression: f.get("impression"),
          recommendations: f.get("recommendations"), structured: structured, icd10_codes: codes,
          recommendation_kind: f.get("recommendation_kind") || "",
          follow_up_days: days === "" ? null : Number(days) }).then(reload, fail);
      });
    }
    var sign = document.getElementById("sign");
    if (sign) {
      sign.addEventListener("submit", function (ev) {
        ev.preventDefault();
        call("POST", base + "sign/", { password: new FormData(sign).get("password") }).then(reload, fail);
      });
    }
    var referral = document.getElementById("referral");
    if (referral) {
      referral.querySelectorAll("button[data-referral]").forEach(function (b) {
        b.addEventListener("click", function () {
          var body = {};
          if (b.getAttribute("data-reason")) {
            var plan = window.prompt(t.carePlan);
            if (plan === null) { return; }
            body.care_plan = plan;
          }
          call("POST", "/api/v1/consult/referrals/" + referral.getAttribute("data-id") + "/" +
            b.getAttribute("data-referral") + "/", body).then(reload, fail);
        });
      });
    }
    var crit = document.getElementById("critical");
    if (crit) {
      crit.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var f = new FormData(crit);
        call("POST", base + "critical-values/", { finding_code: f.get("finding_code"), note: f.get("note") })
          .then(reload, fail);
      });
    }
  }

  function inbox(t) {
    document.querySelectorAll("[data-ack]").forEach(function (b) {
      b.addEventListener("click", function () {
        call("POST", API + "critical-values/" + b.getAttribute("data-ack") + "/acknowledge/")
          .then(function () { window.location.reload(); }, function (e) { say(t.failed + " " + e.message); });
      });
    });
    document.querySelectorAll("[data-outcome]").forEach(function (b) {
      b.addEventListener("click", function () {
        var o = window.prompt(t.outcome);
        if (!o) { return; }
        call("POST", API + "critical-values/" + b.getAttribute("data-outcome") + "/outcome/", { outcome: o })
          .then(function () { window.location.reload(); }, function (e) { say(t.failed + " " + e.message); });
      });
    });
  }

  /* The worklist listens on /ws/consult/worklist/ and reloads itself on a change. */
  function liveWorklist() {
    var delay = 1000;
    function connect() {
      var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/consult/worklist/");
      ws.onopen = function () { delay = 1000; document.getElementById("live").hidden = false; };
      ws.onmessage = function (m) {
        var msg = JSON.parse(m.data);
        if (msg.type === "worklist.update") {
          fetch(window.location.href, { credentials: "same-origin" }).then(function (r) { return r.text(); })
            .then(function (html) {
              var doc = new DOMParser().parseFromString(html, "text/html");
              ["mine", "unassigned"].forEach(function (id) {
                document.getElementById(id).innerHTML = doc.getElementById(id).innerHTML;
              });
            }, function () { document.getElementById("changed").hidden = false; });
        }
      };
      ws.onclose = function () {
        document.getElementById("live").hidden = true;
        setTimeout(connect, delay); delay = Math.min(delay * 2, 30000);
      };
    }
    connect();
  }

  window.HuizhenConsult = { newConsult: newConsult, detail: detail, inbox: inbox, liveWorklist: liveWorklist, upload: upload };
})();
