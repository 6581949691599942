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

Every API error is JSON ``{"error": short reason, "detail": what to do}`` with a 4xx/5xx status:
400 bad field / empty file, 413 too large (bytes or video frames), 415 not an image or video by
content, 422 undecodable, 503 queue full, 504 time-out.

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

__all__ = ["create_app", "make_server"]

_FORM_SLACK = 1 << 20  # multipart boundaries and the small form fields, on top of the file itself
_CSP = ("default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


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
        resp.headers.setdefault("Content-Security-Policy", _CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.path.startswith("/api/v1/analyze"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    # pages ------------------------------------------------------------------------------------------
    @app.get("/")
    def index():
        client = {"analyze_url": "/api/v1/analyze", "max_upload_bytes": service.limits.max_upload_bytes}
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


def make_server(app: Flask, host: str = "127.0.0.1", port: int = 8000):
    """A threaded WSGI server (Werkzeug) for ``app``; ``port=0`` picks a free port
    (``server.server_port``). Call ``serve_forever()`` / ``shutdown()``.

    Raises:
        OSError: the address cannot be bound (port in use, unknown host, no permission).
    """
    from werkzeug.serving import make_server as _make_server

    try:
        return _make_server(host, port, app, threaded=True)
    except SystemExit:  # Werkzeug prints a hint and exits when the port is taken; callers decide instead
        raise OSError(f"address {host}:{port} is already in use") from None
