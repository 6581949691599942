"""The web app's analysis service, independent of the web framework: checks an upload, stores it
in a private temporary folder, runs the one shared :class:`FacePredictor` on the inference worker
thread, and returns the ``results.json`` document of ``tools/infer.py``.

Everything user-facing is built by ``maskface.inference`` (image decoding, the predictor's
``ImageResult`` records, the video loop with tracking, the visualizer, the anonymizer with its
video hold-over and the results.json writer), so the API answers exactly what the command line
writes.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import math
import os
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np

from maskface.inference.image_io import DEFAULT_MAX_PIXELS, ImageTooLarge, check_pixel_count
from maskface.serving.uploads import MediaType, UploadError, sniff
from maskface.serving.worker import InferenceWorker

logger = logging.getLogger(__name__)

__all__ = ["AnalysisService", "AnalyzeOptions", "Limits", "parse_options", "PayloadTooLarge", "UndecodableMedia",
           "JobCancelled"]

_CHUNK = 1 << 20
_VIS_JPEG_QUALITY = 90
_VIS_MAX_SIDE = 1600  # px; the annotated preview is shrunk to this (results keep original pixels)
_ANON_JPEG_QUALITY = 95  # the anonymised image keeps the original size: it is the deliverable


class PayloadTooLarge(UploadError):
    status = 413


class UndecodableMedia(UploadError):
    status = 422


class JobCancelled(RuntimeError):
    """The request that wanted this job has given up (time-out)."""


@dataclass(frozen=True)
class Limits:
    """Server-side limits (``tools/serve.py`` flags). ``max_pixels``: width x height of an image
    or video frame, checked from the header before decoding (the command line's cap)."""

    max_upload_bytes: int = 32 << 20
    timeout_s: float = 120.0
    max_video_frames: int = 900
    max_pending: int = 16
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self):
        if self.max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be >= 1, got {self.max_upload_bytes}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_video_frames < 1:
            raise ValueError(f"max_video_frames must be >= 1, got {self.max_video_frames}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")


@dataclass(frozen=True)
class AnalyzeOptions:
    """Per-request settings (``None``: the server's default)."""

    score_thresh: Optional[float] = None
    mask_thresh: Optional[float] = None
    max_size: Optional[int] = None
    every_n_frames: int = 1
    vis: bool = False
    anonymize: Optional[str] = None  # blur | pixelate | fill: also return the anonymised image / video
    anonymize_region: str = "mask"
    anonymize_margin: Optional[float] = None  # px; None = auto (a fraction of each face's size)


def _number(form: Mapping[str, str], name: str, kind: type, lo: float, hi: float) -> Optional[Any]:
    raw = form.get(name)
    if raw is None or str(raw).strip() == "":
        return None
    text = str(raw).strip()
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise UploadError("invalid parameter", f"{name} must be {what} in [{lo:g}, {hi:g}], got {text!r}") from None
    if (isinstance(value, float) and not math.isfinite(value)) or not lo <= value <= hi:
        raise UploadError("invalid parameter", f"{name} must be in [{lo:g}, {hi:g}], got {text!r}")
    return value


def parse_options(form: Mapping[str, str], query: Mapping[str, str], bounds: Mapping[str, Tuple[float, float]]
                  ) -> AnalyzeOptions:
    """Validate the form fields and ``?vis=`` of an analyze request.

    Args:
        bounds: ``{field: (lo, hi)}`` allowed ranges (see :meth:`AnalysisService.bounds`).

    Raises:
        UploadError: 400 with a message naming the field, its range and the value given.
    """
    vis_raw = str(query.get("vis", "0")).strip().lower()
    if vis_raw not in ("0", "1", "false", "true", ""):
        raise UploadError("invalid parameter", f"vis must be 0 or 1, got {vis_raw!r}")
    from maskface.inference.anonymize import METHODS, REGIONS

    every = _number(form, "every_n_frames", int, *bounds["every_n_frames"])
    anon = _choice(form, "anonymize", METHODS)
    region = _choice(form, "anonymize_region", REGIONS)
    margin = _number(form, "anonymize_margin", float, *bounds["anonymize_margin"])
    if anon is None and (region is not None or margin is not None):
        raise UploadError("invalid parameter", "anonymize_region and anonymize_margin need anonymize "
                                               "(" + " | ".join(METHODS) + ")")
    return AnalyzeOptions(
        score_thresh=_number(form, "score_thresh", float, *bounds["score_thresh"]),
        mask_thresh=_number(form, "mask_thresh", float, *bounds["mask_thresh"]),
        max_size=_number(form, "max_size", int, *bounds["max_size"]),
        every_n_frames=1 if every is None else every,
        vis=vis_raw in ("1", "true"),
        anonymize=anon,
        anonymize_region=region or "mask",
        anonymize_margin=margin,
    )


def _choice(form: Mapping[str, str], name: str, choices: Tuple[str, ...]) -> Optional[str]:
    raw = form.get(name)
    if raw is None or str(raw).strip() == "":
        return None
    text = str(raw).strip().lower()
    if text not in choices:
        raise UploadError("invalid parameter", f"{name} must be one of {', '.join(choices)}, got {str(raw).strip()!r}")
    return text


class AnalysisService:
    """One predictor, one inference thread, per-request temporary folders.

    Args:
        predictor: a built :class:`maskface.FacePredictor` (loaded once, shared by all requests).
        limits: upload size, time-out, video frame cap, queue length.
        tmp_dir: parent of the per-request temporary folders (default: the system temp dir).
    """

    def __init__(self, predictor, limits: Optional[Limits] = None, tmp_dir: Optional[str] = None):
        self.predictor = predictor
        self.limits = limits or Limits()
        self.tmp_dir = tmp_dir
        if tmp_dir is not None:
            os.makedirs(tmp_dir, exist_ok=True)
        self.worker = InferenceWorker(max_pending=self.limits.max_pending)
        # The predictor's own settings: requests may only tighten them (never more work or
        # fewer detector-side filters than the server was started with).
        self._defaults = (float(predictor.score_thresh), float(predictor.mask_thresh), int(predictor.max_size))

    # description ------------------------------------------------------------------------------------
    @property
    def model_info(self) -> Dict[str, Any]:
        """``predictor.model_info`` with file paths cut to their names (no server paths leak)."""
        info = dict(getattr(self.predictor, "model_info", None) or {})
        for k, v in info.items():
            if isinstance(v, str) and k.endswith(("_config", "_weights")):
                info[k] = Path(v).name
        return info

    @property
    def model_name(self) -> str:
        return self.model_info.get("name") or Path(self.model_info.get("detector_weights") or "custom").stem

    @property
    def device(self) -> str:
        return str(getattr(self.predictor, "device", "unknown"))

    def bounds(self) -> Dict[str, Tuple[float, float]]:
        """Allowed ranges of the request's form fields. ``score_thresh`` cannot go below the
        detector's own threshold (it drops lower scores before the predictor sees them) and
        ``max_size`` cannot exceed the server's."""
        score, _, max_size = self._defaults
        from maskface.inference.anonymize import MAX_MARGIN

        return {"score_thresh": (score, 1.0), "mask_thresh": (0.0, 1.0), "max_size": (32, max_size),
                "every_n_frames": (1, self.limits.max_video_frames), "anonymize_margin": (0, MAX_MARGIN)}

    def describe_limits(self) -> Dict[str, Any]:
        d = asdict(self.limits)
        d["params"] = {k: list(v) for k, v in self.bounds().items()}
        return d

    # analysis ---------------------------------------------------------------------------------------
    def analyze(self, stream: IO[bytes], filename: str, options: AnalyzeOptions) -> bytes:
        """The results.json document (UTF-8 bytes) for one uploaded image or video.

        Raises:
            UploadError (and subclasses): the upload is refused (4xx, see ``.status``).
            ServerBusy, JobTimeout: from the worker (503, 504).
        """
        filename = _display_name(filename)
        tmp = tempfile.mkdtemp(prefix="maskface-upload-", dir=self.tmp_dir)
        handed_over = False
        try:
            media, path = self._save_upload(stream, tmp)
            logger.info("analyze %s (%s %s, %d bytes)", filename, media.kind, media.format, os.path.getsize(path))
            if media.kind == "image":  # from the header, on this thread: a bomb never waits in the queue
                self._check_pixels(path)
            job = _Job(self, media, path, filename, options, Path(tmp) / "results.json")
            handed_over = True  # from here on the worker removes ``tmp`` (exactly once)
            return self.worker.run(job, timeout=self.limits.timeout_s,
                                   cleanup=lambda: shutil.rmtree(tmp, ignore_errors=True))
        finally:
            if not handed_over:
                shutil.rmtree(tmp, ignore_errors=True)

    def _save_upload(self, stream: IO[bytes], folder: str) -> Tuple[MediaType, str]:
        head = stream.read(64)
        media = sniff(head)
        path = os.path.join(folder, "upload" + media.suffix)
        size = len(head)
        with open(path, "wb") as f:
            f.write(head)
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.limits.max_upload_bytes:
                    raise PayloadTooLarge("upload too large",
                                          f"the limit is {_mb(self.limits.max_upload_bytes)}")
                f.write(chunk)
        return media, path

    def _check_pixels(self, path: str) -> None:
        """Raises :class:`PayloadTooLarge` (413) when the image's header announces too many pixels."""
        try:
            check_pixel_count(path, self.limits.max_pixels)
        except ImageTooLarge as e:
            raise PayloadTooLarge("image too large", _strip_path(str(e), path) + "; send a smaller image") from None

    @contextlib.contextmanager
    def _settings(self, options: AnalyzeOptions) -> Iterator[None]:
        """Apply a request's thresholds to the shared predictor; safe because only the worker
        thread calls it, one job at a time. Restored afterwards, whatever happens."""
        p = self.predictor
        saved = (p.score_thresh, p.mask_thresh, p.max_size)
        score, mask, max_size = self._defaults
        p.score_thresh = options.score_thresh if options.score_thresh is not None else score
        p.mask_thresh = options.mask_thresh if options.mask_thresh is not None else mask
        p.max_size = options.max_size if options.max_size is not None else max_size
        try:
            yield
        finally:
            p.score_thresh, p.mask_thresh, p.max_size = saved

    def close(self) -> None:
        self.worker.shutdown(wait=True)


class _Job:
    """One analysis, run on the worker thread (``__call__(cancel_event)``)."""

    def __init__(self, service: AnalysisService, media: MediaType, path: str, filename: str,
                 options: AnalyzeOptions, out_path: Path):
        self.service, self.media, self.path, self.filename = service, media, path, filename
        self.options, self.out_path = options, out_path

    def __call__(self, cancel: threading.Event) -> bytes:
        from maskface.inference.writers import write_results_json

        if cancel.is_set():
            _stop_if(cancel, "before it started")
        with self.service._settings(self.options):
            if self.media.kind == "image":
                images, errors, vis, anon = self._image(cancel)
            else:
                images, errors, vis, anon = self._video(cancel)
        extra = {k: v for k, v in (("visualization", vis), ("anonymized", anon)) if v is not None} or None
        write_results_json(self.out_path, images, errors, model=self.service.model_info, extra=extra)
        return self.out_path.read_bytes()

    def _anonymizer(self):
        from maskface.inference.anonymize import Anonymizer

        o = self.options
        return Anonymizer(method=o.anonymize, region=o.anonymize_region, margin=o.anonymize_margin) \
            if o.anonymize else None

    def _image(self, cancel: threading.Event):
        from maskface.inference.image_io import ImageLoadError, load_image

        self.service._check_pixels(self.path)
        try:
            rgb = load_image(self.path, max_pixels=self.service.limits.max_pixels)
        except ImageLoadError as e:
            raise UndecodableMedia(f"cannot decode the {self.media.format.upper()} image",
                                   _strip_path(str(e), self.path)) from None
        # The request may have given up (504) while this job decoded or waited: stop between stages
        # so the single worker goes on to the next request instead of finishing unwanted work.
        _stop_if(cancel, "after decoding the image")
        result = self.service.predictor.predict_results([rgb], color="rgb", files=[self.filename])[0]
        _stop_if(cancel, "after detection")
        vis = _visualization(rgb, result.faces, "rgb", None) if self.options.vis else None
        anonymizer = self._anonymizer()
        anon = None
        if anonymizer is not None:
            anon = {"media_type": "image/jpeg", "frame": None, "method": anonymizer.method,
                    "region": anonymizer.region,
                    "data": _jpeg_base64(anonymizer(rgb, result.faces, color="rgb")[:, :, ::-1], _ANON_JPEG_QUALITY)}
        return [result], [], vis, anon

    def _video(self, cancel: threading.Event):
        from maskface.inference.results import ImageResult
        from maskface.inference.video import VideoOpenError, VideoReader, VideoTooLarge, process_video

        cap = self.service.limits.max_video_frames
        try:
            reader = VideoReader(self.path, max_frames=cap + 1, max_pixels=self.service.limits.max_pixels)
        except VideoTooLarge as e:
            raise PayloadTooLarge("video frames too large", _strip_path(str(e), self.path)) from None
        except VideoOpenError as e:
            raise UndecodableMedia(f"cannot read the {self.media.format.upper()} video",
                                   _strip_path(str(e), self.path)) from None
        too_long = PayloadTooLarge("video too long", f"the limit is {cap} frames")
        images: List[Dict[str, Any]] = []
        errors: List[Dict[str, str]] = []
        best: Optional[Tuple[np.ndarray, list, int]] = None  # the processed frame with the most faces
        anonymizer = self._anonymizer()
        hold = anonymizer.hold_over() if anonymizer is not None else None
        cover: list = []
        anon_path = os.path.join(os.path.dirname(self.path), "anonymized.mp4")
        with contextlib.ExitStack() as stack, reader:
            writer = None
            if anonymizer is not None:
                from maskface.inference.video import VideoWriter

                writer = VideoWriter(anon_path, reader.fps, (reader.width, reader.height))
                stack.callback(writer.close, commit=True)
            if reader.frame_count > cap:
                raise PayloadTooLarge("video too long", f"it has {reader.frame_count} frames; the limit is {cap}")
            for fr in process_video(self.service.predictor, reader, every_n_frames=self.options.every_n_frames):
                _stop_if(cancel, f"at frame {fr.index}")
                if reader.frames_read > cap:
                    raise too_long
                if writer is not None:
                    if fr.processed:  # skipped frames (every_n_frames) keep the last cover
                        cover = hold.update(fr.faces)
                    writer.write(anonymizer(fr.image_bgr, cover, color="bgr"))
                if not fr.processed:
                    continue
                h, w = fr.image_bgr.shape[:2]
                # as JSON-ready dicts right away: RLE masks, not one H x W bool array per face and frame
                images.append(ImageResult(file=self.filename, width=w, height=h, frame=fr.index,
                                          faces=fr.faces).to_dict())
                if self.options.vis and (best is None or len(fr.faces) > len(best[1])):
                    best = (fr.image_bgr, fr.faces, fr.index)
            if reader.frames_read > cap:
                raise too_long
            if reader.ended_early():
                errors.append({"file": self.filename,
                               "error": f"video ended early: read {reader.frames_read} of {reader.total} frames "
                                        "(truncated or corrupt file); results of the frames read are kept"})
        vis = _visualization(best[0], best[1], "bgr", best[2]) if best is not None else None
        anon = None
        if anonymizer is not None:
            with open(anon_path, "rb") as f:
                anon = {"media_type": "video/mp4", "frame": None, "method": anonymizer.method,
                        "region": anonymizer.region, "data": base64.b64encode(f.read()).decode("ascii")}
        return images, errors, vis, anon


def _stop_if(cancel: threading.Event, where: str) -> None:
    """Raise :class:`JobCancelled` when the request behind the job has timed out."""
    if cancel.is_set():
        raise JobCancelled(f"stopped {where}: the request timed out")


def _visualization(image: np.ndarray, faces, color: str, frame: Optional[int]) -> Dict[str, Any]:
    """The annotated image as base64 JPEG, shrunk for display."""
    from maskface.inference.image_io import resize_max_side
    from maskface.inference.visualize import draw_faces

    canvas = draw_faces(image, faces, color=color)
    if color == "rgb":
        canvas = np.ascontiguousarray(canvas[:, :, ::-1])
    canvas, _ = resize_max_side(canvas, _VIS_MAX_SIDE)
    return {"media_type": "image/jpeg", "frame": frame, "data": _jpeg_base64(canvas, _VIS_JPEG_QUALITY)}


def _jpeg_base64(bgr: np.ndarray, quality: int) -> str:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("could not encode the image as JPEG")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def _display_name(filename: Optional[str]) -> str:
    """The client's file name without any folder part (never used as a path on the server)."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = "".join(ch for ch in name if ch.isprintable())[:255]
    return name or "upload"


def _strip_path(message: str, path: str) -> str:
    """An error message without the server's temporary path."""
    return message[len(path) + 2:] if message.startswith(path + ": ") else message.replace(path, "upload")


def _mb(n: int) -> str:
    return f"{n / (1 << 20):g} MB"

