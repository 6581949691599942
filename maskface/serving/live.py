"""Live camera analysis over WebSocket: the page's camera sends frames, the server answers faces.

Why the ``websockets`` package: waitress (the HTTP server) cannot upgrade a connection to
WebSocket, and replacing it would lose what it does for uploads (bodies spooled before a thread
runs, slow clients never holding a worker). ``websockets`` is maintained, pure Python with no
dependencies, and has a threaded (``websockets.sync``) server that runs beside waitress in the same
process, on its own port, sharing the one model and its inference worker thread.

Protocol (one WebSocket per camera session, ``ws://HOST:LIVE_PORT/live``):

* client -> server, text: ``{"type": "options", "anonymize": null | "blur" | "pixelate" |
  "fill", "anonymize_region": "mask" | "ellipse" | "box"}`` (any time; also resets tracking
  with ``"reset": true``).
* client -> server, binary: a frame: 4 bytes big-endian frame id, then a JPEG (at most
  :data:`MAX_FRAME_BYTES`, :data:`MAX_FRAME_PIXELS`).
* server -> client, text: ``{"type": "result", "id", "width", "height", "server_ms",
  "faces": [face dict of results.json + "outline": [[[x, y], ...], ...] (the mask's outer
  contours, frame pixels) + "label"], "anonymized": bool, "dropped": n}``;
  ``{"type": "dropped", "id"}`` when a newer frame replaced this one before it was analysed;
  ``{"type": "error", "id", "error", "detail"}``.
* server -> client, binary (only with ``anonymize``): 4 bytes frame id, then the analysed frame
  anonymised (JPEG), sent just before its result.

Frames are never queued: each session holds at most one frame waiting; a newer one replaces it
(the replaced one is answered ``dropped``), so when the model is slower than the camera the
latency stays about one analysis long. Faces are tracked per session (stable ``track_id``,
smoothed labels); the attribute net runs on a track's first frame and then every
``attributes_every`` frames (:class:`~maskface.inference.video.FrameAnalyzer`). Nothing is
stored on the server.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["LiveServer", "LiveSession", "MAX_FRAME_BYTES", "MAX_FRAME_PIXELS", "DEFAULT_ATTRIBUTES_EVERY"]

MAX_FRAME_BYTES = 4 << 20
MAX_FRAME_PIXELS = 1920 * 1080  # a live frame larger than full HD is refused (the page sends 640 x 480)
DEFAULT_ATTRIBUTES_EVERY = 5
_HEADER = struct.Struct(">I")
_ANON_JPEG_QUALITY = 80
_OUTLINE_EPS = 1.5  # px: contour simplification (cv2.approxPolyDP)


def frame_message(frame_id: int, jpeg: bytes) -> bytes:
    """A binary frame message: 4-byte big-endian id + JPEG bytes."""
    return _HEADER.pack(frame_id & 0xFFFFFFFF) + jpeg


def mask_outline(mask: Optional[np.ndarray]) -> List[List[List[int]]]:
    """Outer contours of an ``H x W`` bool mask as polygons ``[[[x, y], ...], ...]`` (pixels),
    simplified to within 1.5 px; ``[]`` without a mask."""
    import cv2

    if mask is None or not mask.any():
        return []
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if len(c) < 3:
            continue
        c = cv2.approxPolyDP(c, _OUTLINE_EPS, True)
        polys.append(c.reshape(-1, 2).tolist())
    return polys


def decode_frame(data: bytes) -> np.ndarray:
    """JPEG bytes -> BGR uint8 ``H x W x 3``; ``ValueError`` for what is not a JPEG within the
    pixel cap (read from the JPEG header before decoding)."""
    import cv2

    if len(data) < 4 or data[:3] != b"\xff\xd8\xff":
        raise ValueError("a frame must be a JPEG image")
    size = _jpeg_size(data)
    if size is None:
        raise ValueError("the JPEG has no frame header")
    if size[0] * size[1] > MAX_FRAME_PIXELS:
        raise ValueError(f"frame too large: {size[0]} x {size[1]} px; the limit is {MAX_FRAME_PIXELS} px")
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        raise ValueError("the JPEG cannot be decoded")
    return frame


def _jpeg_size(data: bytes) -> Optional[tuple]:
    """(width, height) from a JPEG's SOF marker, or ``None``."""
    i = 2
    n = len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h = (data[i + 5] << 8) | data[i + 6]
            w = (data[i + 7] << 8) | data[i + 8]
            return w, h
        i += 2 + length
    return None


class LiveSession:
    """The analysis side of one camera connection: tracking + smoothing state, anonymiser
    hold-over, and the one-frame mailbox (newest frame wins).

    Args:
        service: the app's :class:`~maskface.serving.service.AnalysisService` (its predictor
            and inference worker are shared with the upload API).
        attributes_every: see :class:`~maskface.inference.video.FrameAnalyzer`.
    """

    def __init__(self, service, attributes_every: int = DEFAULT_ATTRIBUTES_EVERY):
        from maskface.inference.video import FrameAnalyzer

        self.service = service
        self.analyzer = FrameAnalyzer(service.predictor, track=True, attributes_every=attributes_every)
        # (Anonymizer, its HoldOver) or (None, None): replaced as one by set_options (receiving thread),
        # read once per frame by analyze (analysing thread)
        self._anon: tuple = (None, None)
        self._reset = False
        self.frames_analysed = 0
        self.frames_dropped = 0
        self._slot: Optional[tuple] = None  # (frame id, JPEG bytes, received at)
        self._cond = threading.Condition()
        self._closed = False

    # options ---------------------------------------------------------------------------------------
    def set_options(self, msg: Dict[str, Any]) -> None:
        """Apply an ``options`` message; ``ValueError`` naming the bad field."""
        from maskface.inference.anonymize import METHODS, REGIONS, Anonymizer

        method = msg.get("anonymize") or None
        region = msg.get("anonymize_region") or "mask"
        if method is not None and method not in METHODS:
            raise ValueError(f"anonymize must be one of {', '.join(METHODS)} or null, got {method!r}")
        if region not in REGIONS:
            raise ValueError(f"anonymize_region must be one of {', '.join(REGIONS)}, got {region!r}")
        anonymizer = Anonymizer(method=method, region=region) if method else None
        self._anon = (anonymizer, anonymizer.hold_over() if anonymizer else None)
        if msg.get("reset"):
            self._reset = True  # done by the analysing thread, between frames

    # mailbox ---------------------------------------------------------------------------------------
    def offer(self, frame_id: int, jpeg: bytes) -> Optional[int]:
        """Put a frame in the mailbox; returns the id of the frame it replaced (dropped), if any."""
        with self._cond:
            old = self._slot
            self._slot = (frame_id, jpeg, time.perf_counter())
            self._cond.notify()
        if old is not None:
            self.frames_dropped += 1
            return old[0]
        return None

    def take(self, timeout: float = 0.5) -> Optional[tuple]:
        """The newest waiting frame (removed from the mailbox), or ``None`` after ``timeout`` s
        or when closed."""
        with self._cond:
            if self._slot is None and not self._closed:
                self._cond.wait(timeout)
            item, self._slot = self._slot, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._slot = None
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    # analysis --------------------------------------------------------------------------------------
    def analyze(self, frame_id: int, jpeg: bytes, timeout: float) -> tuple:
        """Decode, analyse on the inference worker, and build the answer.

        Returns ``(result message dict, anonymised JPEG or None)``. Raises ``ValueError`` (bad
        frame), or the worker's ``ServerBusy`` / ``JobTimeout``.
        """
        from maskface.serving.service import AnalyzeOptions

        t0 = time.perf_counter()
        frame = decode_frame(jpeg)
        service = self.service
        anonymizer, hold = self._anon
        if self._reset:
            self._reset = False
            self.analyzer.reset()

        def job(cancel):
            with service._settings(AnalyzeOptions()):
                return self.analyzer.analyze([frame])[0]

        faces = service.worker.run(job, timeout=timeout)
        anon_jpeg = None
        if anonymizer is not None:
            import cv2

            cover = hold.update(faces)
            ok, buf = cv2.imencode(".jpg", anonymizer(frame, cover, color="bgr"),
                                   [cv2.IMWRITE_JPEG_QUALITY, _ANON_JPEG_QUALITY])
            anon_jpeg = buf.tobytes() if ok else None
        out = []
        for f in faces:
            d = f.to_dict()
            d["outline"] = mask_outline(f.mask)
            d["label"] = f.label()
            out.append(d)
        self.frames_analysed += 1
        msg = {"type": "result", "id": frame_id, "width": int(frame.shape[1]), "height": int(frame.shape[0]),
               "faces": out, "anonymized": anon_jpeg is not None, "dropped": self.frames_dropped,
               "server_ms": round((time.perf_counter() - t0) * 1e3, 1)}
        return msg, anon_jpeg


class LiveServer:
    """The WebSocket endpoint (``websockets`` threaded server) for the page's camera mode.

    Args:
        service: the app's :class:`~maskface.serving.service.AnalysisService`.
        host / port: where to listen (``port=0``: a free port, see :attr:`port`).
        max_sessions: camera sessions at once; one more is refused (HTTP 503 at the handshake).
        attributes_every: attribute net every this many frames per track (1 = always).
        frame_timeout: seconds one frame may wait for the (shared) inference worker.

    Connections whose ``Origin`` names another host than the one they connect to are refused
    (403): another web site cannot drive this server from a visitor's browser.
    """

    def __init__(self, service, host: str = "127.0.0.1", port: int = 0, max_sessions: int = 4,
                 attributes_every: int = DEFAULT_ATTRIBUTES_EVERY, frame_timeout: float = 10.0):
        from maskface.utils.optional import import_optional

        sync_server = import_optional("websockets.sync.server", "the web app's camera mode",
                                      'pip install -e ".[serve]"  (websockets)')
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {max_sessions}")
        if attributes_every < 1:
            raise ValueError(f"attributes_every must be >= 1, got {attributes_every}")
        self.service = service
        self.max_sessions = int(max_sessions)
        self.attributes_every = int(attributes_every)
        self.frame_timeout = float(frame_timeout)
        self._sessions: List[LiveSession] = []
        self._lock = threading.Lock()
        self._server = sync_server.serve(self._handle, host, port, process_request=self._check_request,
                                         max_size=MAX_FRAME_BYTES + _HEADER.size, compression=None,
                                         max_queue=4)
        self.port = int(self._server.socket.getsockname()[1])
        self._thread: Optional[threading.Thread] = None

    @property
    def sessions(self) -> int:
        with self._lock:
            return len(self._sessions)

    def start(self) -> "LiveServer":
        """Serve on a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="maskface-live", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        with self._lock:
            for s in self._sessions:
                s.close()
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # handshake -------------------------------------------------------------------------------------
    def _check_request(self, connection, request):
        if request.path.split("?")[0] != "/live":
            return connection.respond(404, "no such endpoint: use /live\n")
        origin = request.headers.get("Origin")
        host = (request.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if origin is not None and (urlsplit(origin).hostname or "") != host:
            logger.warning("live: refused a connection from origin %s (host %s)", origin, host)
            return connection.respond(403, "cross-origin connections are refused\n")
        if self.sessions >= self.max_sessions:
            return connection.respond(503, f"{self.max_sessions} camera sessions are already running\n")
        return None

    # one connection ----------------------------------------------------------------------------------
    def _handle(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        session = LiveSession(self.service, attributes_every=self.attributes_every)
        with self._lock:
            self._sessions.append(session)
        logger.info("live: camera session opened (%d running)", self.sessions)
        worker = threading.Thread(target=self._analyse_loop, args=(ws, session), name="maskface-live-session",
                                  daemon=True)
        worker.start()
        try:
            for msg in ws:
                if isinstance(msg, str):
                    try:
                        data = json.loads(msg)
                        if not isinstance(data, dict) or data.get("type") != "options":
                            raise ValueError('text messages must be {"type": "options", ...}')
                        session.set_options(data)
                    except ValueError as e:
                        ws.send(json.dumps({"type": "error", "id": None, "error": "invalid message",
                                            "detail": str(e)}))
                    continue
                if len(msg) <= _HEADER.size:
                    ws.send(json.dumps({"type": "error", "id": None, "error": "invalid frame",
                                        "detail": "a frame is a 4-byte id followed by a JPEG"}))
                    continue
                (frame_id,) = _HEADER.unpack_from(msg)
                dropped = session.offer(frame_id, bytes(msg[_HEADER.size:]))
                if dropped is not None:
                    ws.send(json.dumps({"type": "dropped", "id": dropped}))
        except ConnectionClosed:
            pass
        finally:
            session.close()
            worker.join(timeout=self.frame_timeout + 5)
            with self._lock:
                self._sessions.remove(session)
            logger.info("live: camera session closed: %d frames analysed, %d dropped", session.frames_analysed,
                        session.frames_dropped)

    def _analyse_loop(self, ws, session: LiveSession) -> None:
        from websockets.exceptions import ConnectionClosed

        from maskface.serving.worker import JobTimeout, ServerBusy

        while not session.closed:
            item = session.take()
            if item is None:
                continue
            frame_id, jpeg, _ = item
            try:
                msg, anon = session.analyze(frame_id, jpeg, timeout=self.frame_timeout)
            except ValueError as e:
                msg, anon = {"type": "error", "id": frame_id, "error": "invalid frame", "detail": str(e)}, None
            except (ServerBusy, JobTimeout) as e:
                msg, anon = {"type": "error", "id": frame_id, "error": "server busy", "detail": str(e)}, None
            except Exception as e:  # noqa: BLE001 - the session goes on with the next frame
                logger.exception("live: frame %d failed", frame_id)
                msg, anon = {"type": "error", "id": frame_id, "error": "internal error",
                             "detail": f"{type(e).__name__}: {e}"}, None
            try:
                if anon is not None:
                    ws.send(frame_message(frame_id, anon))
                ws.send(json.dumps(msg, separators=(",", ":")))
            except ConnectionClosed:
                return
