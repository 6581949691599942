"""The MaskFace web app and REST API (Flask).

Routes:

* ``GET  /``                      upload page (drag and drop or file picker), annotated image,
                                  faces table, "Download JSON"
* ``POST /api/v1/analyze``        multipart field ``file`` (+ optional ``score_thresh``,
                                  ``mask_thresh``, ``max_size``, ``every_n_frames``, ``anonymize``,
                                  ``anonymize_region``, ``anonymize_margin``); answers the
                                  results.json document of ``tools/infer.py``; ``?vis=1`` adds
                                  ``visualization`` (the annotated image, base64 JPEG);
                                  ``anonymize=blur|pixelate|fill`` adds ``anonymized`` (the
                                  upload with its faces covered: base64 JPEG / MP4)
* ``GET  /api/v1/health``         model, device, version, limits
* ``GET  /api/v1/openapi.json``   OpenAPI 3.0 description; ``GET /api/docs`` renders it

With a :class:`~maskface.serving.live.LiveServer` beside it (``tools/serve.py`` starts one; its
port in ``app.config["MASKFACE_LIVE_PORT"]``), the page has a "Camera" mode: the browser's camera
streams to ``ws://HOST:LIVE_PORT/live`` and faces are drawn over the live video.

Every API error is JSON ``{"error": short reason, "detail": what to do}`` with a 4xx/5xx status:
400 bad field / empty file, 413 too large (bytes, pixels from the image header, video frames),
415 not an image or video by content, 422 undecodable, 503 queue full, 504 time-out (the job is
then cancelled: it stops at its next stage boundary or frame).

All assets are served from this package (``static/``, ``templates/``); a Content-Security-Policy
of ``'self'`` keeps it that way.
"""

from __future__ import annotations

import logging
from typing import Optional

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

import maskface
from maskface.serving.openapi import openapi_spec
from maskface.serving.service import AnalysisService, Limits, parse_options
from maskface.serving.uploads import UploadError
from maskface.serving.worker import JobTimeout, ServerBusy

logger = logging.getLogger(__name__)

__all__ = ["create_app", "make_server", "WSGIServer"]

DEFAULT_MAX_RECORD_S = 600.0  # camera-mode recordings stop by themselves after this (tools/serve.py --max-record-minutes)
_FORM_SLACK = 1 << 20  # multipart boundaries and the small form fields, on top of the file itself
_CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; script-src 'self'; "
        "style-src 'self'; connect-src 'self' blob:{live}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def _csp() -> str:
    """The Content-Security-Policy; with a live server, ``connect-src`` also allows its
    WebSocket on the host the page was loaded from (and nothing else)."""
    from flask import current_app

    port = current_app.config.get("MASKFACE_LIVE_PORT")
    if not port:
        return _CSP.format(live="")
    host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    return _CSP.format(live=f" ws://{host}:{port} wss://{host}:{port}")


def _error(status: int, error: str, detail: str = "", **headers):
    resp = jsonify({"error": error, "detail": detail})
    resp.status_code = status
    for k, v in headers.items():
        resp.headers[k.replace("_", "-")] = str(v)
    return resp


def create_app(predictor, limits: Optional[Limits] = None, tmp_dir: Optional[str] = None) -> Flask:
    """The Flask app around one loaded predictor.

    Args:
        predictor: a built :class:`maskface.FacePredictor`; all requests share it (inference is
            serialised on one worker thread).
        limits: upload size, per-request time-out, video frame cap, queue length.
        tmp_dir: parent folder of the per-request temporary folders (default: system temp).

    The :class:`AnalysisService` is ``app.extensions["maskface"]``.
    """
    service = AnalysisService(predictor, limits=limits, tmp_dir=tmp_dir)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = service.limits.max_upload_bytes + _FORM_SLACK
    app.json.sort_keys = False
    app.extensions["maskface"] = service

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("Content-Security-Policy", _csp())
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.path.startswith("/api/v1/analyze"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    # pages ------------------------------------------------------------------------------------------
    @app.get("/")
    def index():
        client = {"analyze_url": "/api/v1/analyze", "max_upload_bytes": service.limits.max_upload_bytes,
                  "live_port": app.config.get("MASKFACE_LIVE_PORT"), "model": service.model_info,
                  "max_record_s": app.config.get("MASKFACE_MAX_RECORD_S", DEFAULT_MAX_RECORD_S)}
        return render_template("index.html", model=service.model_name, device=service.device,
                               max_upload_mb=f"{service.limits.max_upload_bytes / (1 << 20):g}", client_config=client)

    @app.get("/api/docs")
    def docs():
        return render_template("docs.html")

    # API ----------------------------------------------------------------------------------------------
    @app.get("/api/v1/health")
    def health():
        return jsonify({
            "status": "ok",
            "model": service.model_name,
            "device": service.device,
            "version": maskface.__version__,
            "attributes": bool(getattr(predictor, "has_attributes", False)),
            "pending": service.worker.pending,
            "limits": service.describe_limits(),
        })

    @app.get("/api/v1/openapi.json")
    def openapi_json():
        return jsonify(openapi_spec(maskface.__version__, service.bounds()))

    @app.post("/api/v1/analyze")
    def analyze():
        upload = request.files.get("file")
        if upload is None:
            raise UploadError("no file", "send the image or video as the multipart/form-data field 'file'")
        options = parse_options(request.form, request.args, service.bounds())
        body = service.analyze(upload.stream, upload.filename or "", options)
        return app.response_class(body, mimetype="application/json")

    # errors ------------------------------------------------------------------------------------------
    @app.errorhandler(UploadError)
    def _upload_error(e: UploadError):
        return _error(e.status, e.error, e.detail)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(e):
        return _error(413, "upload too large", f"the limit is {service.limits.max_upload_bytes / (1 << 20):g} MB")

    @app.errorhandler(ServerBusy)
    def _busy(e):
        return _error(503, "server busy", f"{e}; try again shortly", Retry_After=5)

    @app.errorhandler(JobTimeout)
    def _timeout(e):
        return _error(504, "analysis timed out",
                      f"{e} (server limit {service.limits.timeout_s:g} s); try a smaller image, a shorter video "
                      "or a larger every_n_frames")

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        if request.path.startswith("/api/"):
            return _error(e.code or 500, (e.name or "error").lower(), e.description or "")
        return e

    @app.errorhandler(Exception)
    def _internal(e: Exception):
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal error", f"{type(e).__name__}: {e}")

    return app


class WSGIServer:
    """The app served by waitress (a production WSGI server from PyPI, the ``serve`` extra).

    Waitress reads each request completely (bodies over 512 KB spooled to a temporary file, not
    memory) on its I/O thread before a worker thread runs the app, so slow or stalled clients
    never hold a worker; bodies over the app's own limit are refused with 413 before they are
    read, and idle connections close after ``channel_timeout`` seconds. ``threads`` HTTP threads
    run requests; inference still happens on the service's single worker thread.

    Same interface as Werkzeug's server: :attr:`server_port`, :meth:`serve_forever`,
    :meth:`shutdown` (from another thread), :meth:`server_close`.
    """

    def __init__(self, app: Flask, host: str, port: int, threads: int, max_body_bytes: int,
                 channel_timeout: int = 30):
        from waitress.server import create_server

        self._map: dict = {}
        self._server = create_server(app, map=self._map, host=host, port=port, threads=threads,
                                     max_request_body_size=max_body_bytes, channel_timeout=channel_timeout,
                                     ident="maskface", clear_untrusted_proxy_headers=True)
        self.threads = threads
        listen = getattr(self._server, "effective_listen", None)  # several addresses (e.g. "localhost")
        self.server_port = int(listen[0][1] if listen else self._server.effective_port)
        self._closed = False

    def serve_forever(self) -> None:
        self._server.run()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` (call from another thread) and the HTTP threads."""
        if self._closed:
            return
        self._closed = True
        for _ in range(100):  # closing every socket / trigger ends waitress's I/O loop
            if not self._map:
                break
            for fd, dispatcher in list(self._map.items()):
                try:
                    dispatcher.close()  # removes itself from the map
                except OSError:  # already closed by the loop
                    pass
                self._map.pop(fd, None)
        self._server.task_dispatcher.shutdown(timeout=5)

    server_close = shutdown


def make_server(app: Flask, host: str = "127.0.0.1", port: int = 8000, threads: Optional[int] = None,
                channel_timeout: int = 30) -> WSGIServer:
    """A :class:`WSGIServer` (waitress) for ``app``; ``port=0`` picks a free port
    (``server.server_port``). Call ``serve_forever()`` / ``shutdown()``.

    Args:
        threads: HTTP threads (default: the service's ``max_pending`` + 4, so a full queue still
            gets its 503 and health checks stay answered).
        channel_timeout: seconds an idle (or stalled) connection is kept open.

    Raises:
        OSError: the address cannot be bound (port in use, unknown host, no permission).
    """
    service = app.extensions["maskface"]
    threads = threads or service.limits.max_pending + 4
    return WSGIServer(app, host, port, threads=threads, max_body_bytes=app.config["MAX_CONTENT_LENGTH"],
                      channel_timeout=channel_timeout)
