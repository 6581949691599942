// MaskFace camera mode: the browser's camera -> JPEG frames over one WebSocket (ws://host:live_port/live)
// -> faces (box, mask outline, labels) drawn over the live video, with the fps and the latency (frame
// captured -> its overlay drawn). At most MAX_IN_FLIGHT frames are on their way; a camera frame that
// finds them all busy is skipped, and the server keeps only the newest waiting frame, so nothing queues.
// Plain JS, no build step and no third-party code; texts from the server go in via textContent.
(function () {
  "use strict";
  var cfg = JSON.parse(document.body.getAttribute("data-config") || "{}");
  var $ = function (id) { return document.getElementById(id); };
  var MAX_IN_FLIGHT = 2, JPEG_QUALITY = 0.75, WIDTH = 640, HEIGHT = 480, RECORD_FPS = 15, LOST_MS = 15000;
  // a recording lives in this browser's memory until it is downloaded: it stops by itself at the limit
  var MAX_RECORD_MS = 1000 * cfg.max_record_s;  // the server's limit (serve.py --max-record-minutes)
  var video = $("live-video"), canvas = $("live-canvas"), ctx = canvas.getContext("2d");
  var statsEl = $("live-stats"), statusEl = $("live-status"), recordBtn = $("record");
  var grab = document.createElement("canvas");
  var grabCtx = grab.getContext("2d");
  var s = null;  // the running session

  function setStatus(text, isError) {
    statusEl.textContent = text;
    statusEl.className = isError ? "error" : "";
  }

  // tabs -------------------------------------------------------------------------------------------
  function showMode(camera) {
    $("upload").hidden = camera;
    $("result").hidden = camera || !$("result").getAttribute("data-shown");
    $("camera").hidden = !camera;
    $("mode-upload").classList.toggle("active", !camera);
    $("mode-camera").classList.toggle("active", camera);
    $("mode-upload").setAttribute("aria-selected", String(!camera));
    $("mode-camera").setAttribute("aria-selected", String(camera));
    if (!camera && s) { stop("Camera stopped."); }
  }
  $("mode-upload").addEventListener("click", function () { showMode(false); });
  $("mode-camera").addEventListener("click", function () { showMode(true); });
  new MutationObserver(function () {  // remember whether the upload result was shown (app.js shows it)
    if (!$("result").hidden) { $("result").setAttribute("data-shown", "1"); }
  }).observe($("result"), { attributes: true, attributeFilter: ["hidden"] });

  // session ----------------------------------------------------------------------------------------
  function options() {
    return JSON.stringify({ type: "options", anonymize: $("live-anonymize").value || null,
      anonymize_region: $("live-anonymize-region").value });
  }

  function start() {
    if (!cfg.live_port) { setStatus("The camera mode is off on this server (started with --no-live).", true); return; }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      setStatus("This browser gives no camera to this page: open it over https:// or on localhost.", true);
      return;
    }
    $("camera-start").disabled = true;
    setStatus("Asking for the camera…", false);
    navigator.mediaDevices.getUserMedia({ video: { width: { ideal: WIDTH }, height: { ideal: HEIGHT } }, audio: false })
      .then(function (stream) {
        s = { stream: stream, ws: null, nextId: 1, inFlight: {}, nInFlight: 0, latest: null, anon: null,
              fresh: true, redraw: true, encoding: false, latencies: [], drawnAt: [], results: 0, dropped: 0, errors: 0,
              drawnFaces: 0, anonymized: 0, shownAt: 0, rec: null };
        video.srcObject = stream;
        return video.play();
      })
      .then(function () { connect(); })
      .catch(function (err) {
        $("camera-start").disabled = false;
        setStatus("No camera: " + (err && err.message ? err.message : err), true);
        if (s) { stop(); }
      });
  }

  function connect() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    var host = location.hostname.indexOf(":") >= 0 ? "[" + location.hostname + "]" : location.hostname;
    var ws = new WebSocket(proto + host + ":" + cfg.live_port + "/live");
    ws.binaryType = "arraybuffer";
    s.ws = ws;
    ws.onopen = function () {
      ws.send(options());
      setStatus("Live.", false);
      $("camera-stop").hidden = false;
      $("camera-start").hidden = true;
      recordBtn.disabled = false;
      if (video.requestVideoFrameCallback) { watchFrames(s); }
      requestAnimationFrame(loop);
    };
    ws.onmessage = function (ev) { onMessage(ev.data); };
    ws.onerror = function () { setStatus("The camera connection failed (is the server's live port reachable?).", true); };
    ws.onclose = function (ev) {
      if (s && s.ws === ws) { stop(ev.code === 1000 ? "Disconnected." : "The server closed the camera connection (" + ev.code + (ev.reason ? ": " + ev.reason : "") + ").", ev.code !== 1000); }
    };
  }

  function stop(message, isError) {
    if (!s) { return; }
    var old = s;
    s = null;
    if (old.rec) { stopRecording(old); }
    old.stream.getTracks().forEach(function (t) { t.stop(); });
    if (old.ws && old.ws.readyState <= 1) { old.ws.close(1000); }
    if (old.anon) { old.anon.bitmap.close(); }
    video.srcObject = null;
    $("camera-start").disabled = false;
    $("camera-start").hidden = false;
    $("camera-stop").hidden = true;
    recordBtn.disabled = true;
    setStatus(message || "Camera stopped.", !!isError);
  }

  function watchFrames(session) {  // a new camera frame is worth sending; the same one twice is not
    video.requestVideoFrameCallback(function () {
      if (s !== session) { return; }
      session.fresh = session.redraw = true;
      capture();
      watchFrames(session);
    });
  }

  // frames out -------------------------------------------------------------------------------------
  function capture() {
    if (!s || s.encoding || !s.fresh || s.nInFlight >= MAX_IN_FLIGHT || s.ws.readyState !== 1 ||
        video.readyState < 2) { return; }
    var session = s, id = s.nextId++, t = performance.now();
    session.fresh = !video.requestVideoFrameCallback;
    session.encoding = true;
    session.inFlight[id] = t;
    session.nInFlight += 1;
    fitToCamera();
    grabCtx.drawImage(video, 0, 0, grab.width, grab.height);
    grab.toBlob(function (blob) {
      if (!blob) { session.encoding = false; forget(session, id); return; }
      blob.arrayBuffer().then(function (buf) {
        session.encoding = false;
        if (s !== session || session.ws.readyState !== 1) { return; }
        var msg = new Uint8Array(4 + buf.byteLength);
        new DataView(msg.buffer).setUint32(0, id);
        msg.set(new Uint8Array(buf), 4);
        session.ws.send(msg.buffer);
        capture();  // a second frame may go while the first is analysed
      });
    }, "image/jpeg", JPEG_QUALITY);
  }

  function fitToCamera() {  // frames at the camera's size, shrunk to fit WIDTH x HEIGHT (aspect kept)
    var vw = video.videoWidth || WIDTH, vh = video.videoHeight || HEIGHT, k = Math.min(1, WIDTH / vw, HEIGHT / vh);
    var w = 2 * Math.round(vw * k / 2), h = 2 * Math.round(vh * k / 2);
    if (grab.width !== w || grab.height !== h) {
      grab.width = canvas.width = w;
      grab.height = canvas.height = h;
    }
  }

  function forget(session, id) {
    if (session.inFlight[id] !== undefined) {
      delete session.inFlight[id];
      session.nInFlight -= 1;
    }
  }

  // answers in -------------------------------------------------------------------------------------
  function onMessage(data) {
    if (!s) { return; }
    var session = s;
    if (typeof data !== "string") {  // the analysed frame, anonymised: 4-byte id + JPEG
      var id = new DataView(data).getUint32(0);
      createImageBitmap(new Blob([data.slice(4)], { type: "image/jpeg" })).then(function (bitmap) {
        if (session.anon && session.anon.id > id) { bitmap.close(); return; }
        if (session.anon) { session.anon.bitmap.close(); }
        session.anon = { id: id, bitmap: bitmap };
        session.redraw = true;
      });
      return;
    }
    var msg = JSON.parse(data);
    var captured = session.inFlight[msg.id];
    if (msg.id !== null && msg.id !== undefined) { forget(session, msg.id); }
    if (msg.type === "result") {
      session.results += 1;
      session.latest = { msg: msg, captured: captured, drawn: false };
      session.redraw = true;
      if (msg.anonymized) { session.anonymized += 1; }
      if (session.rec) { keepForRecording(session, msg); }
    } else if (msg.type === "dropped") {
      session.dropped += 1;
    } else if (msg.type === "error") {
      session.errors += 1;
      setStatus("Server: " + msg.error + (msg.detail ? " – " + msg.detail : ""), true);
    }
    capture();
  }

  // drawing ----------------------------------------------------------------------------------------
  function colorFor(trackId) {
    return trackId === null || trackId === undefined ? "#ffffff" : "hsl(" + ((trackId * 67) % 360) + ", 90%, 55%)";
  }

  function drawFaces(msg) {
    var sx = canvas.width / msg.width, sy = canvas.height / msg.height;
    ctx.lineWidth = 2;
    ctx.font = "14px system-ui, sans-serif";
    ctx.textBaseline = "top";
    msg.faces.forEach(function (f) {
      var c = colorFor(f.track_id), b = f.box;
      ctx.strokeStyle = c;
      if (!msg.anonymized) {
        f.outline.forEach(function (poly) {
          ctx.beginPath();
          poly.forEach(function (p, i) { if (i) { ctx.lineTo(p[0] * sx, p[1] * sy); } else { ctx.moveTo(p[0] * sx, p[1] * sy); } });
          ctx.closePath();
          ctx.globalAlpha = 0.18;
          ctx.fillStyle = c;
          ctx.fill();
          ctx.globalAlpha = 1;
          ctx.stroke();
        });
      }
      ctx.strokeRect(b[0] * sx, b[1] * sy, (b[2] - b[0]) * sx, (b[3] - b[1]) * sy);
      var text = f.label || f.score.toFixed(2), w = ctx.measureText(text).width + 8;
      var y = Math.max(0, b[1] * sy - 20);
      ctx.fillStyle = c;
      ctx.fillRect(b[0] * sx, y, w, 20);
      ctx.fillStyle = "#000";
      ctx.fillText(text, b[0] * sx + 4, y + 3);
    });
    return msg.faces.length;
  }

  function loop() {
    if (!s) { return; }
    var session = s, now = performance.now();
    // redraw only for a new camera frame or a new answer (where the browser can tell): saves CPU for the model
    if (session.redraw || !video.requestVideoFrameCallback) {
      session.redraw = false;
      draw(session, now);
    }
    while (session.drawnAt.length && now - session.drawnAt[0] > 2000) { session.drawnAt.shift(); }
    Object.keys(session.inFlight).forEach(function (id) {  // never answered (should not happen): do not stall
      if (now - session.inFlight[id] > LOST_MS) { forget(session, Number(id)); }
    });
    if (now - session.shownAt > 500) { showStats(session, now); }
    capture();
    requestAnimationFrame(loop);
  }

  function draw(session, now) {
    var latest = session.latest, anonymizing = latest && latest.msg.anonymized;
    if (anonymizing) {  // the analysed frame, covered: never the live one, where a face could have moved
      if (session.anon) { ctx.drawImage(session.anon.bitmap, 0, 0, canvas.width, canvas.height); }
    } else if (!$("live-anonymize").value && video.readyState >= 2) {
      ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
    } else {
      ctx.fillStyle = "#111";  // anonymising, first result not here yet: show nothing of the camera
      ctx.fillRect(0, 0, canvas.width, canvas.height);
    }
    if (latest) {
      session.drawnFaces = drawFaces(latest.msg);
      if (!latest.drawn) {
        latest.drawn = true;
        if (latest.captured !== undefined) { session.latencies.push(now - latest.captured); }
        if (session.latencies.length > 60) { session.latencies.shift(); }
        session.drawnAt.push(now);
      }
    }
  }

  function median(values) {
    if (!values.length) { return null; }
    var v = values.slice().sort(function (a, b) { return a - b; });
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  }

  function showStats(session, now) {
    session.shownAt = now;
    var n = session.drawnAt.length;
    var fps = n > 1 ? (n - 1) * 1000 / Math.max(1, session.drawnAt[n - 1] - session.drawnAt[0]) : 0;
    var lat = median(session.latencies);
    statsEl.textContent = fps.toFixed(1) + " fps · " + (lat === null ? "–" : Math.round(lat) + " ms") +
      " latency · " + session.drawnFaces + (session.drawnFaces === 1 ? " face" : " faces") +
      (session.dropped ? " · " + session.dropped + " skipped" : "");
    var data = { fps: fps.toFixed(2), latencyMs: lat === null ? "" : lat.toFixed(1), results: session.results,
                 dropped: session.dropped, errors: session.errors, drawnFaces: session.drawnFaces,
                 anonymized: session.anonymized };
    Object.keys(data).forEach(function (k) { statsEl.dataset[k] = String(data[k]); });
  }

  // recording (in this browser only) ---------------------------------------------------------------
  function stamp() {
    return new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  }

  function keepForRecording(session, msg) {
    var faces = msg.faces.map(function (f) {
      var d = Object.assign({}, f);
      delete d.outline;
      delete d.label;
      return d;
    });
    session.rec.frames.push({ file: "camera", width: msg.width, height: msg.height, frame: session.rec.frames.length,
                              time_ms: Math.round(performance.now() - session.rec.t0), faces: faces });
  }

  function startRecording() {
    var types = ["video/webm;codecs=vp9", "video/webm;codecs=vp8", "video/webm"];
    var type = types.filter(function (t) { return window.MediaRecorder && MediaRecorder.isTypeSupported(t); })[0];
    if (!type) { setStatus("This browser cannot record the canvas (no MediaRecorder for WebM).", true); return; }
    var rec = new MediaRecorder(canvas.captureStream(RECORD_FPS), { mimeType: type });
    s.rec = { recorder: rec, chunks: [], frames: [], t0: performance.now(), name: "maskface-live-" + stamp() };
    var r = s.rec;
    rec.ondataavailable = function (e) { if (e.data && e.data.size) { r.chunks.push(e.data); } };
    rec.onstop = function () { offerDownloads(r, type); };
    rec.start(1000);
    r.timer = setTimeout(function () {
      if (s && s.rec === r) {
        stopRecording(s);
        setStatus("Recording stopped at its " + (MAX_RECORD_MS / 60000).toFixed(MAX_RECORD_MS % 60000 ? 1 : 0) +
                  "-minute limit (serve.py --max-record-minutes).");
      }
    }, MAX_RECORD_MS);
    recordBtn.classList.add("on");
    recordBtn.textContent = "■ Stop recording";
  }

  function stopRecording(session) {
    var r = session.rec;
    session.rec = null;
    clearTimeout(r.timer);
    recordBtn.classList.remove("on");
    recordBtn.textContent = "● Record";
    if (r.recorder.state !== "inactive") { r.recorder.stop(); }
  }

  function link(blob, name, text) {
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    a.className = "button";
    a.textContent = text;
    a.dataset.bytes = String(blob.size);
    return a;
  }

  function offerDownloads(r, type) {
    var clip = new Blob(r.chunks, { type: type.split(";")[0] });
    var doc = { model: cfg.model || null, images: r.frames, errors: [] };
    var json = new Blob([JSON.stringify(doc)], { type: "application/json" });
    var box = $("recordings");
    box.textContent = "";
    box.appendChild(link(clip, r.name + ".webm", "Annotated clip (" + (clip.size / 1048576).toFixed(1) + " MB)"));
    box.appendChild(link(json, r.name + ".json", "Per-frame JSON (" + r.frames.length + " frames)"));
  }

  recordBtn.addEventListener("click", function () {
    if (!s) { return; }
    if (s.rec) { stopRecording(s); } else { startRecording(); }
  });
  $("camera-start").addEventListener("click", start);
  $("camera-stop").addEventListener("click", function () { stop("Camera stopped."); });
  ["live-anonymize", "live-anonymize-region"].forEach(function (id) {
    $(id).addEventListener("change", function () {
      if (s && s.ws && s.ws.readyState === 1) { s.ws.send(options()); }
    });
  });
})();
