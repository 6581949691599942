"""Live sources: network streams (RTSP, HTTP / MJPEG, HLS, RTMP, ... whatever OpenCV's FFmpeg
reads) and cameras, with reconnect and back-off, a frame / time budget, and a real-time mode that
always processes the newest frame.

    >>> reader = StreamReader("rtsp://cam.local/live", realtime=True, duration=60)
    >>> for frame in reader:          # BGR uint8, H x W x 3
    ...     reader.position           # the source's frame number of ``frame`` (gaps = dropped frames)

When a stream stops delivering (the server went away, the network dropped, a read timed out), the
reader closes it and opens it again after ``reconnect_delay`` seconds, doubling the wait up to
``max_reconnect_delay``; it gives up when no frame has arrived for ``reconnect_timeout`` seconds
(:attr:`StreamReader.problem` then says so). The same reader interface as
:class:`~maskface.inference.video.VideoReader` (``fps``, ``width``, ``height``, ``total``,
``frames_read``, ``ended_early``, ``close``), so :func:`~maskface.inference.video.process_video`
and the runner take either.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from typing import Iterator, Optional, Union
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from maskface.inference.video import DEFAULT_FPS, VideoOpenError, VideoTooLarge, _Closing, three_channels

logger = logging.getLogger(__name__)

__all__ = ["STREAM_SCHEMES", "is_stream_url", "redact_url", "stream_file_name", "StreamReader"]

# URL schemes read as live streams (FFmpeg protocols); anything else given to --input is a path.
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp", "mms", "mmsh")
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def is_stream_url(spec: str) -> bool:
    """True for ``rtsp://...``, ``http://...mjpg``, ``https://...m3u8`` and the other
    :data:`STREAM_SCHEMES`."""
    m = _URL.match(str(spec))
    return bool(m) and m.group(1).lower() in STREAM_SCHEMES


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (names in logs and results never carry it)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def stream_file_name(url: str) -> str:
    """A file name for a stream's outputs: host, port and path, e.g.
    ``http://127.0.0.1:8080/live/cam.mjpg`` -> ``127.0.0.1_8080_live_cam.mjpg`` (no credentials)."""
    parts = urlsplit(url)
    raw = "_".join(str(p) for p in (parts.hostname, parts.port, parts.path.strip("/"), parts.query) if p)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("._")[:150] or "stream"


class StreamReader(_Closing):
    """Frames of a network stream or a camera, as BGR uint8 arrays, reconnecting when it drops.

    Args:
        source: a stream URL (:func:`is_stream_url`) or a camera index (``int``).
        max_frames: stop after this many frames delivered (``None``: no limit).
        duration: stop after this many seconds (``None``: no limit).
        realtime: a thread reads the stream as fast as it comes and the iterator always gets the
            newest frame; frames that arrive while the caller is busy are dropped
            (:attr:`frames_dropped`), so a slow consumer never falls behind. Without it every
            frame is delivered (a stream that outpaces the consumer is then buffered by FFmpeg
            / the server, and the results lag).
        reconnect_delay: seconds before the first reconnect attempt; doubles after each failed
            one, up to ``max_reconnect_delay``.
        reconnect_timeout: give up when no frame has arrived for this many seconds (0: never
            reconnect).
        open_timeout / read_timeout: seconds FFmpeg waits to connect / for data (streams only).
        max_pixels: refuse frames with more pixels (width x height); ``None``: no cap.

    Attributes:
        fps, width, height: from the first connection (``fps`` 30 when the stream does not say).
        frames_read: frames delivered; frames_dropped: frames skipped in real-time mode;
        reconnects: successful reconnections; position: source frame number of the last frame
        delivered; problem: why the stream ended early (``None`` when it ended by a limit).
    """

    is_camera = True  # no known length, no "complete" record: it ends by a limit, a stop or a loss
    frame_count = 0

    def __init__(self, source: Union[str, int], max_frames: Optional[int] = None, duration: Optional[float] = None,
                 realtime: bool = False, reconnect_delay: float = 1.0, max_reconnect_delay: float = 5.0,
                 reconnect_timeout: float = 60.0, open_timeout: float = 10.0, read_timeout: float = 10.0,
                 max_pixels: Optional[int] = None):
        for name, v in (("reconnect_delay", reconnect_delay), ("max_reconnect_delay", max_reconnect_delay),
                        ("reconnect_timeout", reconnect_timeout), ("open_timeout", open_timeout),
                        ("read_timeout", read_timeout)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        if duration is not None and not duration > 0:
            raise ValueError(f"duration must be > 0 seconds, got {duration!r}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames!r}")
        if not isinstance(source, int) and not is_stream_url(str(source)):
            raise ValueError(f"{source}: not a stream URL ({', '.join(STREAM_SCHEMES)}) or a camera index")
        self.source = source
        self.name = f"webcam:{source}" if isinstance(source, int) else redact_url(str(source))
        self.max_frames, self.duration, self.realtime = max_frames, duration, realtime
        self.reconnect_delay, self.max_reconnect_delay = reconnect_delay, max(reconnect_delay, max_reconnect_delay)
        self.reconnect_timeout = reconnect_timeout
        self.open_timeout, self.read_timeout = open_timeout, read_timeout
        self.max_pixels = max_pixels
        self.frames_read = self.frames_dropped = self.reconnects = 0
        self.position = -1
        self.problem: Optional[str] = None
        self._received = 0  # frames read from the source (delivered or dropped)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: Optional[tuple] = None  # realtime: (source frame number, frame)
        self._ended = False
        self._thread: Optional[threading.Thread] = None
        self._cap = self._open()
        if self._cap is None:
            what = f"camera {source} (no such device, busy, or no permission)" if isinstance(source, int) else \
                f"{self.name}: cannot open the stream (unreachable, refused, or a format OpenCV/FFmpeg cannot read)"
            raise VideoOpenError(what)
        import cv2

        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._announced = n if n > 0 and not isinstance(source, int) else 0  # live streams announce none
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if math.isfinite(fps) and 0 < fps < 1000 else DEFAULT_FPS
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise VideoOpenError(f"{self.name}: opened, but no frame could be read")
        self.height, self.width = first.shape[:2]
        if max_pixels and self.width * self.height > max_pixels:
            self._cap.release()
            raise VideoTooLarge(f"{self.name}: frames too large: {self.width} x {self.height} px; the limit is "
                                f"{max_pixels / 1e6:.3g} megapixels")
        self._first = first

    # connection -------------------------------------------------------------------------------------
    def _open(self):
        """A connected ``cv2.VideoCapture``, or ``None``."""
        import cv2

        if isinstance(self.source, int):
            cap = cv2.VideoCapture(self.source)
        else:
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout * 1000)]
            cap = cv2.VideoCapture(str(self.source), cv2.CAP_FFMPEG, params)
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _reconnect(self, last_frame_at: float):
        """Reopen the source with back-off; a capture, or ``None`` when stopped or given up."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        if self.reconnect_timeout <= 0:
            self.problem = f"the stream stopped after {self._received} frames (reconnecting is off)"
            return None
        delay, attempts = self.reconnect_delay, 0
        logger.warning("%s: no frame after %d frames; reconnecting (giving up after %g s without a frame)",
                       self.name, self._received, self.reconnect_timeout)
        while not self._stop.is_set():
            left = self.reconnect_timeout - (time.monotonic() - last_frame_at)
            if left <= 0:
                self.problem = (f"the stream was lost: no frame for {self.reconnect_timeout:g} s, {attempts} "
                                f"reconnect attempt(s) failed; {self._received} frames were read")
                logger.error("%s: %s", self.name, self.problem)
                return None
            if self._stop.wait(min(delay, left)):
                return None
            attempts += 1
            cap = self._open()
            if cap is not None:
                self.reconnects += 1
                logger.warning("%s: reconnected after %.1f s without a frame (attempt %d)", self.name,
                               time.monotonic() - last_frame_at, attempts)
                return cap
            logger.info("%s: reconnect attempt %d failed; next in %.1f s", self.name, attempts,
                        min(delay * 2, self.max_reconnect_delay))
            delay = min(delay * 2, self.max_reconnect_delay)
        return None

    def _frames(self) -> Iterator[np.ndarray]:
        """Every frame of the source, reconnecting across drops, until stopped or given up."""
        last = time.monotonic()
        if self._first is not None:
            frame, self._first = self._first, None
            yield frame
        while not self._stop.is_set():
            ok, frame = self._cap.read() if self._cap is not None else (False, None)
            if ok and frame is not None:
                last = time.monotonic()
                yield frame
                continue
            if self._stop.is_set():
                return
            if self._announced and self._received >= self._announced - max(2, int(self._announced * 0.02)):
                return  # a finite stream (a remote file, a finished HLS playlist) has ended: not a drop
            # ``last`` stays the last frame's time: a stream that reopens but sends nothing still runs out
            self._cap = self._reconnect(last)
            if self._cap is None:
                return

    # iteration ----------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[np.ndarray]:
        t0 = time.monotonic()
        source = self._newest() if self.realtime else self._numbered()
        for number, frame in source:
            if (self.max_frames is not None and self.frames_read >= self.max_frames) or \
                    (self.duration is not None and time.monotonic() - t0 >= self.duration):
                break
            self.frames_read += 1
            self.position = number
            yield three_channels(frame)
        self._stop.set()

    def _numbered(self) -> Iterator[tuple]:
        for frame in self._frames():
            self._received += 1
            yield self._received - 1, frame

    def _newest(self) -> Iterator[tuple]:
        """Real-time mode: a reader thread keeps only the newest frame; this takes it."""
        self._thread = threading.Thread(target=self._grab, name="maskface-stream", daemon=True)
        self._thread.start()
        taken = -1
        while True:
            with self._cond:
                while self._latest is None and not self._ended:
                    self._cond.wait(0.25)  # short waits: a stop signal is handled promptly
                if self._latest is None:
                    return
                (number, frame), self._latest = self._latest, None
            self.frames_dropped += number - taken - 1
            taken = number
            yield number, frame

    def _grab(self) -> None:
        try:
            for frame in self._frames():
                with self._cond:
                    self._latest = (self._received, frame)
                    self._received += 1
                    self._cond.notify()
        except Exception as e:  # noqa: BLE001 - reported as the stream's problem; the consumer ends
            self.problem = f"reading failed: {type(e).__name__}: {e}"
            logger.exception("%s: reading failed", self.name)
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify()

    @property
    def total(self) -> Optional[int]:
        """Frames expected (for progress bars): ``max_frames``, or ``None``."""
        return self.max_frames

    def ended_early(self, tolerance: float = 0.02) -> bool:
        """True when the stream was lost (see :attr:`problem`), not stopped by a limit."""
        return self.problem is not None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.read_timeout + 1)
        if self._cap is not None:
            self._cap.release()
            self._cap = None
