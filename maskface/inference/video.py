"""Video I/O and the per-frame loop: read frames (file or webcam), predict in batches, track
faces, smooth their attributes, and hand each frame back for drawing / writing.

    >>> reader = VideoReader("clip.mp4")
    >>> for fr in process_video(predictor, reader, batch_size=4):
    ...     fr.index, fr.image_bgr, fr.faces, fr.processed

Output videos keep the input's fps and frame size; they are written with OpenCV's ``mp4v``
codec, which carries no audio: an input's audio track is dropped (a note is logged).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Iterator, List, Optional, Union

import numpy as np

from maskface.inference.results import Face
from maskface.inference.tracking import AttributeSmoother, FaceTracker
from maskface.utils.io import file_problem

logger = logging.getLogger(__name__)

__all__ = ["VideoOpenError", "VideoTooLarge", "VideoReader", "VideoWriter", "FrameResult", "FrameAnalyzer",
           "process_video"]

DEFAULT_FPS = 30.0


class VideoOpenError(RuntimeError):
    """A video file or camera cannot be opened / read."""


class VideoTooLarge(VideoOpenError):
    """A stream's frames have more pixels than allowed (checked before the first frame is decoded)."""


def three_channels(frame: np.ndarray) -> np.ndarray:
    """A decoded frame as ``H x W x 3``: grey frames repeated, a fourth (alpha) channel dropped."""
    if frame.ndim == 2:
        return np.dstack([frame] * 3)
    return frame[:, :, :3] if frame.shape[2] == 4 else frame


class _Closing:
    """``with reader:`` closes it."""

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class VideoReader(_Closing):
    """Frames of a video file or a camera, as BGR uint8 arrays.

    Args:
        source: a video path, or a camera index (``int``).
        max_frames: stop after this many frames (``None`` = to the end; useful for webcams).
        max_pixels: refuse a stream whose frames have more pixels (width x height, from the
            container, before the first frame is decoded); ``None`` = no cap.

    Attributes:
        fps, width, height: stream properties (``fps`` falls back to 30 when unknown).
        frame_count: frames announced by the container (0 when unknown, e.g. webcams).
        frames_read: frames delivered so far.
    """

    def __init__(self, source: Union[str, int], max_frames: Optional[int] = None, max_pixels: Optional[int] = None):
        import cv2

        self.source = source
        self.is_camera = isinstance(source, int)
        self.name = f"webcam:{source}" if self.is_camera else str(source)
        if not self.is_camera:
            problem = file_problem(source)
            if problem is not None:
                raise VideoOpenError(f"{source}: {problem}")
        self._cap = cv2.VideoCapture(source)
        if not self._cap.isOpened():
            self._cap.release()
            what = f"camera {source} (no such device, busy, or no permission)" if self.is_camera else \
                f"{source}: cannot open video (corrupt, or a codec OpenCV/FFmpeg cannot read)"
            raise VideoOpenError(what)
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if math.isfinite(fps) and 0 < fps < 1000 else DEFAULT_FPS
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if max_pixels and self.width * self.height > max_pixels:
            self._cap.release()
            raise VideoTooLarge(f"{self.name}: frames too large: {self.width} x {self.height} px = "
                                 f"{self.width * self.height / 1e6:.3g} megapixels; the limit is "
                                 f"{max_pixels / 1e6:.3g} megapixels")
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = n if n > 0 and not self.is_camera else 0
        self.max_frames = max_frames
        self.frames_read = 0
        self._first = None
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self._cap.release()
            raise VideoOpenError(f"{self.name}: opened, but no frame could be read (empty or corrupt stream)")
        self._first = frame
        if frame.shape[1] != self.width or frame.shape[0] != self.height:
            self.width, self.height = frame.shape[1], frame.shape[0]

    def __iter__(self) -> Iterator[np.ndarray]:
        while self.max_frames is None or self.frames_read < self.max_frames:
            if self._first is not None:
                frame, self._first = self._first, None
            else:
                ok, frame = self._cap.read()
                if not ok or frame is None:
                    break
            self.frames_read += 1
            yield three_channels(frame)

    @property
    def position(self) -> int:
        """Frame number (from 0) of the last frame delivered."""
        return self.frames_read - 1

    @property
    def total(self) -> Optional[int]:
        """Frames expected (for progress bars), or ``None`` when unknown."""
        n = self.frame_count or None
        if self.max_frames is not None:
            n = min(n, self.max_frames) if n else self.max_frames
        return n

    def ended_early(self, tolerance: float = 0.02) -> bool:
        """True when the stream stopped well before the frame count its header announced
        (truncated file). Header counts are estimates, so a small shortfall is tolerated."""
        expected = self.total
        if not expected or self.is_camera:
            return False
        return self.frames_read < expected - max(2, int(expected * tolerance))

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


class VideoWriter:
    """``cv2.VideoWriter`` (mp4v) writing to a temp file ``<name>.partial.mp4``, renamed to
    ``path`` by ``close(commit=True)`` (atomic: an interrupted run leaves no truncated video
    under the final name; ``close(commit=False, keep_partial=True)`` keeps the partial file)."""

    def __init__(self, path: str, fps: float, size: tuple, fourcc: str = "mp4v"):
        import cv2

        self.path = str(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)) or ".", exist_ok=True)
        root, ext = os.path.splitext(self.path)
        self._tmp = f"{root}.partial{ext or '.mp4'}"
        self.size = (int(size[0]), int(size[1]))
        self.fps = float(fps) if fps and fps > 0 else DEFAULT_FPS
        self._w = cv2.VideoWriter(self._tmp, cv2.VideoWriter_fourcc(*fourcc), self.fps, self.size)
        if not self._w.isOpened():
            raise VideoOpenError(f"{self.path}: cannot create a video writer ({fourcc}, {self.fps} fps, {self.size})")
        self.frames = 0

    def write(self, frame_bgr: np.ndarray) -> None:
        import cv2

        if (frame_bgr.shape[1], frame_bgr.shape[0]) != self.size:
            frame_bgr = cv2.resize(frame_bgr, self.size)
        self._w.write(np.ascontiguousarray(frame_bgr))
        self.frames += 1

    def close(self, commit: bool = True, keep_partial: bool = False) -> None:
        """Finish the file: ``commit`` renames it to ``path``; otherwise it is deleted, or kept
        as :attr:`partial_path` with ``keep_partial``."""
        if self._w is None:
            return
        self._w.release()
        self._w = None
        if commit:
            os.replace(self._tmp, self.path)
        elif os.path.exists(self._tmp) and not keep_partial:
            os.unlink(self._tmp)

    @property
    def partial_path(self) -> str:
        return self._tmp


@dataclass
class FrameResult:
    """One frame of :func:`process_video`.

    ``faces`` are this frame's faces when ``processed``; for frames skipped by
    ``every_n_frames`` they are the last processed frame's faces (for drawing only).
    """

    index: int
    image_bgr: np.ndarray
    faces: List[Face]
    processed: bool


class FrameAnalyzer:
    """Faces of consecutive frames of one video / stream, tracked, with smoothed attributes.

    Args:
        predictor: a :class:`~maskface.inference.predictor.FacePredictor`.
        track: give faces stable ``track_id``s (:class:`FaceTracker`) and smooth their
            attributes per track (:class:`AttributeSmoother`); ``False``: each frame on its own.
        attributes_every: with tracking, run the attribute net on a tracked face only every
            this many analysed frames of its track (its first frame always); in between the
            track carries its smoothed labels. Faces without a track are always analysed.
            1 (default) = every face of every frame. Live video uses ~5: the detector runs on
            every frame, the attribute net mostly on new faces.
        tracker / smoother: custom instances (defaults: thresholds from the predictor).
    """

    def __init__(self, predictor, track: bool = True, attributes_every: int = 1,
                 tracker: Optional[FaceTracker] = None, smoother: Optional[AttributeSmoother] = None):
        if int(attributes_every) < 1:
            raise ValueError(f"attributes_every must be >= 1, got {attributes_every}")
        self.predictor = predictor
        self.track = track
        self.attributes_every = int(attributes_every)
        if track:
            self.tracker = tracker or FaceTracker(high_thresh=max(0.5, predictor.score_thresh),
                                                  low_thresh=min(0.1, predictor.score_thresh),
                                                  new_track_thresh=max(0.6, predictor.score_thresh))
            self.smoother = smoother or AttributeSmoother()
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (a new video)."""
        if self.track:
            self.tracker.reset()
            self.smoother.reset()
        self._frame = 0
        self._analysed_at: dict = {}  # track_id -> frame number of its last attribute-net run

    def analyze(self, frames_bgr: List[np.ndarray]) -> List[List[Face]]:
        """Faces of ``frames_bgr`` (consecutive BGR frames, H x W x 3 uint8), in order: one
        detector call for all, then at most one attribute-net call."""
        p = self.predictor
        if not self.track:
            return p.predict_batch(frames_bgr, color="bgr")
        throttle = self.attributes_every > 1 and getattr(p, "has_attributes", False)
        per_frame = p.predict_batch(frames_bgr, color="bgr", attributes=False) if throttle else \
            p.predict_batch(frames_bgr, color="bgr")
        if not throttle:
            for faces in per_frame:
                self.tracker.update(faces)
                self.smoother.update(faces)
            return per_frame
        todo = []
        for faces in per_frame:
            self._frame += 1
            self.tracker.update(faces)
            need = [f for f in faces if f.track_id is None
                    or self._frame - self._analysed_at.get(f.track_id, -10 ** 9) >= self.attributes_every]
            for f in need:
                if f.track_id is not None:
                    self._analysed_at[f.track_id] = self._frame
            todo.append(need)
        p.predict_attributes(frames_bgr, todo, color="bgr")
        for faces in per_frame:
            self.smoother.update(faces)
        live = {t.track_id for t in self.tracker.tracks}
        self._analysed_at = {k: v for k, v in self._analysed_at.items() if k in live}
        return per_frame


def process_video(
    predictor,
    reader: VideoReader,
    batch_size: int = 4,
    every_n_frames: int = 1,
    tracker: Optional[FaceTracker] = None,
    smoother: Optional[AttributeSmoother] = None,
    track: bool = True,
    start_frame: int = 0,
    attributes_every: int = 1,
) -> Iterator[FrameResult]:
    """Run ``predictor`` on a video, ``batch_size`` processed frames per call, and yield every
    frame in order (processed or not) with tracked, smoothed faces.

    Args:
        every_n_frames: process frames 0, n, 2n, ...; the others reuse the last faces.
        tracker / smoother: defaults are created when ``track`` is true (reset here).
        attributes_every: see :class:`FrameAnalyzer` (1: attributes of every face of every
            processed frame).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    every = max(1, int(every_n_frames))
    analyzer = FrameAnalyzer(predictor, track=track, attributes_every=attributes_every, tracker=tracker,
                             smoother=smoother)
    pending: List[tuple] = []  # (index, frame, to_process)
    last_faces: List[Face] = []

    def flush():
        nonlocal last_faces
        todo = [(i, f) for i, f, p in pending if p]
        results = analyzer.analyze([f for _, f in todo]) if todo else []
        by_index = dict(zip([i for i, _ in todo], results))
        for i, frame, p in pending:
            if p:
                faces = by_index[i]
                last_faces = faces
                yield FrameResult(i, frame, faces, True)
            else:
                yield FrameResult(i, frame, last_faces, False)
        pending.clear()

    # Frames wait in ``pending`` until their batch has run; with every_n_frames > 1 the skipped
    # frames wait too (they are drawn with the last processed faces), so cap the queue.
    max_pending = max(batch_size, 32)
    n_todo = 0
    for k, frame in enumerate(reader):
        # the source's frame number: a live stream in real-time mode skips frames (gaps)
        index = start_frame + int(getattr(reader, "position", k))
        todo = index % every == 0
        pending.append((index, frame, todo))
        n_todo += todo
        if n_todo >= batch_size or len(pending) >= max_pending:
            yield from flush()
            n_todo = 0
    if pending:
        yield from flush()
