#!/usr/bin/env python
"""Serve MaskFace as a web app and REST API.

Examples:
    python tools/serve.py                                   # http://127.0.0.1:8000, model maskface-lite
    python tools/serve.py --port 8080 --device cuda
    python tools/serve.py --host 0.0.0.0 --max-upload-mb 64 --timeout 300 --max-video-frames 3000
    python tools/serve.py --max-megapixels 40 --http-threads 8           # tighter pixel cap, fewer HTTP threads
    python tools/serve.py --detector-config cfg.yaml --detector-weights det.pth --no-attributes
    python tools/serve.py --runtime onnxruntime --onnx-dir deploy/maskface-lite --threads 2
    curl -F file=@photo.jpg http://127.0.0.1:8000/api/v1/analyze
    curl -F file=@clip.mp4 -F every_n_frames=5 "http://127.0.0.1:8000/api/v1/analyze?vis=1"
    curl -F file=@photo.jpg -F anonymize=blur http://127.0.0.1:8000/api/v1/analyze \\
        | jq -r .anonymized.data | base64 -d > photo.anonymized.jpg
    python tools/serve.py --score-thresh 0.3    # anonymising: a missed face is worse than a blurred non-face
    python tools/serve.py --runtime onnxruntime --threads 2 --attributes-every 5   # live camera on 2 CPU cores
    python tools/serve.py --live-port 9001 --max-live-sessions 2
    python tools/serve.py --no-live                                         # uploads only

Open http://127.0.0.1:8000/ for the upload page (its "Camera" tab analyses the browser's camera
live) and /api/docs for the API reference.

Why Flask (not FastAPI): the API is three routes around one model; Flask 3 is a small dependency
(Werkzeug, Jinja2, click, itsdangerous, blinker), already the ``serve`` extra, and ships a test
client, so the tests need nothing else. FastAPI would bring pydantic, starlette and uvicorn (plus
python-multipart for uploads) for an OpenAPI generator and a Swagger UI that loads from a CDN by
default, which this project may not use; the small OpenAPI document is written by hand
(``maskface/serving/openapi.py``) and rendered by a local page instead.

The server is waitress (a production WSGI server, in the ``serve`` extra), not Werkzeug's
development server: it reads each request fully on its I/O thread (large bodies spooled to disk)
before an HTTP thread runs it, refuses bodies over the limit before reading them, and closes
stalled connections. HTTP requests are handled in parallel, inference runs on one worker thread
(one model, one request at a time; the rest queue). Images are refused from their header when
they announce more than --max-megapixels (413), before any pixel is decoded; a request that times
out (504) has its job cancelled. SIGTERM or Ctrl-C stops the server cleanly. It binds 127.0.0.1
unless --host says otherwise; put a reverse proxy (TLS, authentication) in front before exposing it.

The camera mode talks WebSocket to a second port (--live-port, default the HTTP port + 1), served
by the ``websockets`` package in this same process (waitress cannot upgrade connections; see
maskface/serving/live.py); it shares the model and its inference thread with the uploads. Browsers
only give a page the camera on https:// or on localhost / 127.0.0.1.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from maskface.inference.cli import add_model_arguments, add_runtime_arguments, apply_threads, predictor_from_args  # noqa: E402,E501
from maskface.inference.image_io import DEFAULT_MAX_PIXELS  # noqa: E402

logger = logging.getLogger("maskface.serve")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="MaskFace web app and REST API (POST /api/v1/analyze, GET /api/v1/health).",
        epilog=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_argument_group("server")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    s.add_argument("--max-upload-mb", type=float, default=32.0, help="largest accepted upload, MB (default 32)")
    s.add_argument("--timeout", type=float, default=120.0,
                   help="seconds one request may take, queueing included, before it gets 504 (default 120)")
    s.add_argument("--max-video-frames", type=int, default=900,
                   help="longest accepted video, in frames (default 900: 30 s at 30 fps)")
    s.add_argument("--max-pending", type=int, default=16,
                   help="requests allowed to queue for the model before new ones get 503 (default 16)")
    s.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_PIXELS / 1e6, metavar="MP",
                   help="largest accepted image / video frame, in megapixels, read from the file header before "
                        f"decoding; larger ones get 413 (default {DEFAULT_MAX_PIXELS / 1e6:g}; e.g. 40)")
    s.add_argument("--http-threads", type=int, default=None,
                   help="HTTP threads (default: --max-pending + 4, so a full queue is still answered with 503)")
    s.add_argument("--tmp-dir", default=None, help="parent folder of the per-request temporary files "
                                                    "(default: the system temp folder)")
    lv = p.add_argument_group("live camera (the page's Camera mode, WebSocket)")
    lv.add_argument("--live-port", type=int, default=None,
                    help="TCP port of the camera WebSocket (default: the HTTP port + 1; 0 with --port 0 picks a free "
                         "one), e.g. --live-port 9001")
    lv.add_argument("--no-live", action="store_true", help="no camera mode (uploads only)")
    lv.add_argument("--max-live-sessions", type=int, default=4,
                    help="camera sessions at once; more are refused (default 4), e.g. --max-live-sessions 1")
    lv.add_argument("--attributes-every", type=int, default=5, metavar="K",
                    help="camera mode: the attribute net runs on a face's first frame and then every K-th frame of "
                         "its track, the track carrying its smoothed labels in between (default 5; 1 = every frame)")
    lv.add_argument("--max-record-minutes", type=float, default=None, metavar="MIN",
                    help="camera mode: a recording (kept in the browser's memory until downloaded) stops by itself "
                         "after this many minutes (default 10), e.g. --max-record-minutes 2")
    m = p.add_argument_group("model (loaded once, at start-up)")
    add_model_arguments(m)
    m.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_runtime_arguments(m)
    m.add_argument("--score-thresh", type=float,
                   help="server default minimum score; requests may raise it, not lower it (for anonymisation, "
                        "where a missed face is worse than a blurred non-face, start the server lower, e.g. 0.3)")
    m.add_argument("--mask-thresh", type=float, help="server default mask probability threshold")
    m.add_argument("--max-size", type=int, help="longest image side processed, px; requests may lower it")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def fail(msg: str) -> int:
        print(f"serve.py: error: {msg}", file=sys.stderr)
        return 2

    if not 0 <= args.port <= 65535:
        return fail(f"--port must be in 0..65535, got {args.port}")
    if args.max_upload_mb <= 0 or args.timeout <= 0 or args.max_video_frames < 1 or args.max_pending < 1:
        return fail("--max-upload-mb and --timeout must be > 0, --max-video-frames and --max-pending >= 1")
    if not args.max_megapixels > 0 or (args.http_threads is not None and args.http_threads < 1):
        return fail("--max-megapixels must be > 0 and --http-threads >= 1")
    if args.max_live_sessions < 1 or args.attributes_every < 1:
        return fail("--max-live-sessions and --attributes-every must be >= 1")
    if args.live_port is not None and not 0 <= args.live_port <= 65535:
        return fail(f"--live-port must be in 0..65535, got {args.live_port}")
    if args.max_record_minutes is not None and not args.max_record_minutes > 0:
        return fail(f"--max-record-minutes must be > 0, got {args.max_record_minutes}")
    try:
        import flask  # noqa: F401
        import waitress  # noqa: F401
        if not args.no_live:
            import websockets  # noqa: F401
    except ImportError as e:
        return fail(f'{e.name} is not installed; pip install -e ".[serve]"')

    from maskface.serving.app import create_app, make_server
    from maskface.serving.service import Limits
    from maskface.utils.logger import setup_logging

    setup_logging()
    try:
        apply_threads(args)
        predictor = predictor_from_args(args, device=args.device, score_thresh=args.score_thresh,
                                        mask_thresh=args.mask_thresh, max_size=args.max_size)
    except Exception as e:  # noqa: BLE001 - every load failure is reported the same way
        return fail(f"cannot load the model: {e}")
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * (1 << 20)), timeout_s=args.timeout,
                    max_video_frames=args.max_video_frames, max_pending=args.max_pending,
                    max_pixels=int(args.max_megapixels * 1e6))
    app = create_app(predictor, limits=limits, tmp_dir=args.tmp_dir)
    try:
        server = make_server(app, args.host, args.port, threads=args.http_threads)
    except OSError as e:
        return fail(f"cannot listen on {args.host}:{args.port}: {e}")
    host = f"[{args.host}]" if ":" in args.host else args.host
    live = None
    if not args.no_live:
        from maskface.serving.live import LiveServer

        live_port = args.live_port if args.live_port is not None else (server.server_port + 1 if args.port else 0)
        try:
            live = LiveServer(app.extensions["maskface"], args.host, live_port, max_sessions=args.max_live_sessions,
                              attributes_every=args.attributes_every).start()
        except OSError as e:
            server.server_close()
            return fail(f"cannot listen on {args.host}:{live_port} for the camera mode: {e} (--live-port, or --no-live)")
        app.config["MASKFACE_LIVE_PORT"] = live.port
        if args.max_record_minutes is not None:  # else the app's DEFAULT_MAX_RECORD_S
            app.config["MASKFACE_MAX_RECORD_S"] = args.max_record_minutes * 60.0
    logger.info("%r ready", predictor)
    if live is not None:
        logger.info("camera mode: WebSocket ws://%s:%d/live", host, live.port)
    logger.info("serving on http://%s:%d/  (API docs: /api/docs; Ctrl-C stops)", host, server.server_port)

    def stop(signum, frame):  # SIGTERM (kill, systemd, Kubernetes) stops as cleanly as Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("stopping")
    finally:
        if live is not None:
            live.shutdown()
        server.server_close()
        app.extensions["maskface"].close()
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
