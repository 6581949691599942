// MaskFace web app: upload (drop or pick) -> POST /api/v1/analyze?vis=1 -> image + faces table
// (+ the anonymised image / video when "Anonymise faces" is chosen).
// Plain JS, no build step and no third-party code; every text from the server goes in via textContent.
(function () {
  "use strict";
  var cfg = JSON.parse(document.body.getAttribute("data-config") || "{}");
  var $ = function (id) { return document.getElementById(id); };
  var dropzone = $("dropzone"), input = $("file-input"), statusEl = $("status");
  var resultEl = $("result"), table = $("faces-table"), tbody = table.querySelector("tbody");
  var lastJson = null, lastName = "results", anonUrl = null;
  var MAX_ROWS = 500;

  function setStatus(text, isError) {
    statusEl.textContent = text;
    statusEl.className = isError ? "error" : "";
  }

  function fmt(v, digits) { return v === null || v === undefined ? "–" : Number(v).toFixed(digits); }

  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    row.appendChild(td);
    return td;
  }

  function emotionCell(row, face) {
    var td = cell(row, "");
    if (!face.emotion) { td.textContent = "–"; return; }
    var top = document.createElement("strong");
    top.textContent = face.emotion;
    td.appendChild(top);
    var probs = face.emotion_probs || {};
    var names = Object.keys(probs).sort(function (a, b) { return probs[b] - probs[a]; });
    var list = document.createElement("div");
    list.className = "probs";
    names.forEach(function (name) {
      var line = document.createElement("div");
      line.className = "prob";
      var label = document.createElement("span");
      label.textContent = name + " " + (100 * probs[name]).toFixed(0) + "%";
      var bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = Math.round(40 * probs[name]) + "px";
      line.appendChild(bar);
      line.appendChild(label);
      list.appendChild(line);
    });
    td.appendChild(list);
  }

  function render(data) {
    var isVideo = data.images.length > 0 && data.images[0].frame !== null;
    table.classList.toggle("is-video", isVideo);
    tbody.textContent = "";
    var n = 0;
    data.images.forEach(function (img) {
      img.faces.forEach(function (f) {
        n += 1;
        if (n > MAX_ROWS) { return; }  // long videos: the rest is in the JSON download
        var row = document.createElement("tr");
        cell(row, f.track_id !== null && f.track_id !== undefined ? String(n) + " (#" + f.track_id + ")" : String(n));
        cell(row, img.frame === null ? "" : String(img.frame), "col-frame");
        cell(row, fmt(f.score, 2));
        cell(row, f.age === null ? "–" : fmt(f.age, 1) + " ± " + fmt(f.age_std, 1));
        cell(row, f.age_group || "–");
        cell(row, f.gender ? f.gender + " (" + (100 * f.gender_prob).toFixed(0) + "%)" : "–");
        emotionCell(row, f);
        tbody.appendChild(row);
      });
    });
    if (n > MAX_ROWS) {
      var more = document.createElement("tr");
      var td = cell(more, "… " + (n - MAX_ROWS) + " more faces in the JSON download");
      td.colSpan = 7;
      tbody.appendChild(more);
    }
    $("no-faces").hidden = n > 0;
    table.hidden = n === 0;
    var vis = data.visualization;
    var img = $("result-image");
    if (vis) {
      img.src = "data:" + vis.media_type + ";base64," + vis.data;
      img.hidden = false;
    } else {
      img.hidden = true;
    }
    showAnonymized(data.anonymized);
    $("result-title").textContent = lastName + ": " + n + (n === 1 ? " face" : " faces") +
      (isVideo ? " in " + data.images.length + " frames" : "");
    resultEl.hidden = false;
  }

  function showAnonymized(anon) {
    var img = $("anon-image"), link = $("download-anon");
    if (anonUrl) { URL.revokeObjectURL(anonUrl); anonUrl = null; }
    img.hidden = link.hidden = !anon;
    if (!anon) { return; }
    var bytes = atob(anon.data), buf = new Uint8Array(bytes.length);
    for (var i = 0; i < bytes.length; i += 1) { buf[i] = bytes.charCodeAt(i); }
    anonUrl = URL.createObjectURL(new Blob([buf], { type: anon.media_type }));
    var isImage = anon.media_type.indexOf("image/") === 0;
    img.hidden = !isImage;
    if (isImage) { img.src = anonUrl; }
    link.href = anonUrl;
    link.download = lastName.replace(/\.[^.]*$/, "") + ".anonymized." + (isImage ? "jpg" : "mp4");
  }

  function analyze(file) {
    if (!file) { return; }
    if (cfg.max_upload_bytes && file.size > cfg.max_upload_bytes) {
      setStatus(file.name + " is " + (file.size / 1048576).toFixed(1) + " MB; the limit is " +
        (cfg.max_upload_bytes / 1048576).toFixed(0) + " MB.", true);
      return;
    }
    var form = new FormData();
    form.append("file", file, file.name);
    var fields = [["score_thresh", "opt-score"], ["max_size", "opt-max-size"], ["every_n_frames", "opt-every"],
      ["anonymize", "opt-anonymize"]];
    if ($("opt-anonymize").value) {
      fields.push(["anonymize_region", "opt-anonymize-region"], ["anonymize_margin", "opt-anonymize-margin"]);
    }
    fields.forEach(function (p) {
      var v = $(p[1]).value.trim();
      if (v !== "") { form.append(p[0], v); }
    });
    lastName = file.name;
    setStatus("Analysing " + file.name + "…", false);
    dropzone.classList.add("busy");
    fetch(cfg.analyze_url + "?vis=1", { method: "POST", body: form })
      .then(function (resp) {
        return resp.json().catch(function () {
          return { error: "HTTP " + resp.status, detail: "the server did not answer with JSON" };
        }).then(function (body) { return { ok: resp.ok, body: body }; });
      })
      .then(function (r) {
        if (!r.ok) {
          setStatus("Error: " + r.body.error + (r.body.detail ? " – " + r.body.detail : ""), true);
          return;
        }
        var data = r.body;
        lastJson = Object.assign({}, data);
        delete lastJson.visualization;  // the download is the plain results.json document
        delete lastJson.anonymized;
        render(data);
        setStatus("Done.", false);
      })
      .catch(function (err) { setStatus("Error: " + err, true); })
      .then(function () { dropzone.classList.remove("busy"); input.value = ""; });
  }

  input.addEventListener("change", function () { analyze(input.files[0]); });
  ["dragenter", "dragover"].forEach(function (ev) {
    dropzone.addEventListener(ev, function (e) { e.preventDefault(); dropzone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (ev) {
    dropzone.addEventListener(ev, function (e) { e.preventDefault(); dropzone.classList.remove("over"); });
  });
  dropzone.addEventListener("drop", function (e) {
    if (e.dataTransfer && e.dataTransfer.files.length) { analyze(e.dataTransfer.files[0]); }
  });

  $("download-json").addEventListener("click", function () {
    if (!lastJson) { return; }
    var blob = new Blob([JSON.stringify(lastJson, null, 2)], { type: "application/json" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = lastName.replace(/\.[^.]*$/, "") + ".results.json";
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
  });
})();
