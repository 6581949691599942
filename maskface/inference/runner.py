"""Batch inference over images, folders, globs, videos and webcams, with resumable outputs.

This is what ``tools/infer.py`` runs (the tool only parses arguments). Output folder::

    results.jsonl        one line per image / processed frame, written as it goes (resume log)
    results.json         {"model", "images", "errors"} (schema: maskface/inference/SCHEMA.md)
    results.csv          one row per face
    coco_results.json    with coco=True: COCO results + attributes
    coco_images.json     with coco=True: the matching COCO image list
    config.yaml          merged detector config; attributes_config.yaml: attribute-net config
    vis/<input path relative to the inputs' common folder>   annotated images / .mp4 videos
    anonymized/<the same relative path>   with an anonymizer: the faces blurred / pixelated / filled

Every input that fails (unreadable image or sub-folder, an image over the pixel cap, a video
that cannot be opened or ends early, a prediction error) is reported with its file and reason,
the rest are still processed, and the summary's ``exit_code`` is non-zero.

Streams (``rtsp://``, ``http://...mjpg``, ``...m3u8``: :mod:`maskface.inference.streams`) and the
webcam are read live, reconnecting when they drop; they end at ``max_frames`` / ``duration``,
when given up (an error), or on Ctrl-C, which ends such a run normally (outputs finalised, exit
status 0); SIGTERM / SIGHUP interrupt it like any run.

However a run ends (done, Ctrl-C / SIGINT, SIGTERM, SIGHUP, or an unexpected error),
``results.json`` and ``results.csv`` are rebuilt from ``results.jsonl``, and every input that was
not finished is listed in ``errors`` (``"not finished: ..."``), so ``--skip-existing`` redoes
exactly those. A video cut short keeps its frames' results; its annotated video is left as
``vis/<name>.partial.mp4``, never under its final name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np

from maskface.inference.anonymize import Anonymizer
from maskface.inference.image_io import DEFAULT_MAX_PIXELS, ImageLoadError, load_image, rgb_to_bgr
from maskface.inference.results import ImageResult
from maskface.inference.streams import StreamReader, redact_url, stream_file_name
from maskface.inference.video import VideoOpenError, VideoReader, VideoWriter, process_video
from maskface.inference.visualize import draw_faces
from maskface.inference.writers import (
    JsonlWriter,
    read_jsonl,
    write_coco_results,
    write_results_csv,
    write_results_json,
)
from maskface.utils.io import atomic_write, load_json

logger = logging.getLogger(__name__)

__all__ = ["RunSummary", "InferenceRunner", "RunInterrupted", "display_available"]

VIS_DIR = "vis"
# What stops a run early and cleanly: Ctrl-C, `kill` / `timeout` / systemd / Kubernetes, a closed terminal.
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class RunInterrupted(KeyboardInterrupt):
    """A stop signal arrived during a run; ``signum`` says which (exit status 128 + signum)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

ANON_DIR = "anonymized"


def display_available() -> Tuple[bool, str]:
    """Whether a window can be shown, and why not."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display available (DISPLAY / WAYLAND_DISPLAY not set, e.g. an SSH session or a container)"
    return True, ""


@dataclass
class RunSummary:
    """What a run did. ``exit_code`` is 0 only when nothing failed."""

    output_dir: str
    images: int = 0
    videos: int = 0
    frames: int = 0
    faces: int = 0
    skipped: int = 0
    errors: List[Dict[str, str]] = field(default_factory=list)
    outputs: Dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    interrupted: bool = False
    signum: int = int(signal.SIGINT)  # the signal that interrupted the run

    @property
    def exit_code(self) -> int:
        """0 done, 1 some input failed, 128 + signal number when interrupted (130 Ctrl-C, 143 SIGTERM)."""
        if self.interrupted:
            return 128 + self.signum
        return 1 if self.errors else 0

    def format(self) -> str:
        lines = [
            f"MaskFace: {self.images} image(s), {self.videos} video(s) / {self.frames} frame(s), "
            f"{self.faces} face(s), {len(self.errors)} error(s)"
            + (f", {self.skipped} input(s) skipped (already done)" if self.skipped else "")
            + f" in {self.seconds:.1f} s"
            + (f" -- INTERRUPTED ({signal.Signals(self.signum).name})" if self.interrupted else ""),
        ]
        for e in self.errors[:20]:
            lines.append(f"  error: {e['file']}: {e['error']}")
        if len(self.errors) > 20:
            lines.append(f"  ... and {len(self.errors) - 20} more (see results.json)")
        lines.append(f"outputs in {self.output_dir}:")
        for k, v in self.outputs.items():
            lines.append(f"  {k:<16} {v}")
        return "\n".join(lines)


class InferenceRunner:
    """Runs a :class:`~maskface.inference.predictor.FacePredictor` over inputs into ``output_dir``.

    Args:
        predictor: a built predictor.
        output_dir: created if needed.
        batch_size: images (or video frames) per predictor call.
        vis: write annotated images / videos under ``vis/``.
        show: display each annotated image / frame in a window ('q' or Esc stops).
        skip_existing: resume: skip inputs already in ``results.jsonl`` / ``results.json``
            (failed inputs and unfinished videos are redone).
        every_n_frames: process every n-th video frame (output videos keep every frame).
        coco: also write ``coco_results.json`` + ``coco_images.json``.
        track: track faces in videos (stable ``track_id``, smoothed attributes).
        max_frames: stop each video / webcam after this many frames.
        progress: show tqdm progress bars.
        max_pixels: images (and video frames) with more pixels are refused from their header,
            before decoding, as a per-file error (``None`` = no cap).
        anonymizer: also write every image / video with its faces anonymised under
            ``anonymized/`` (``--show`` then displays the anonymised frames); in videos a lost
            face stays covered for ``anonymizer.hold_frames`` processed frames.
        attributes_every: in videos, run the attribute net on a tracked face every this many
            processed frames (see :class:`~maskface.inference.video.FrameAnalyzer`).
        stream_options: keyword arguments of :class:`~maskface.inference.streams.StreamReader`
            for streams (``"stream"`` inputs) and the webcam: ``duration``, ``realtime``,
            ``reconnect_delay``, ``max_reconnect_delay``, ``reconnect_timeout``, ``open_timeout``,
            ``read_timeout``. In real-time mode frames are processed one at a time (no batching:
            a batch would wait for frames and add latency).
    """

    def __init__(self, predictor, output_dir: str, batch_size: int = 4, vis: bool = True, show: bool = False,
                 skip_existing: bool = False, every_n_frames: int = 1, coco: bool = False, track: bool = True,
                 max_frames: Optional[int] = None, progress: bool = True,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, anonymizer: Optional[Anonymizer] = None,
                 attributes_every: int = 1, stream_options: Optional[Dict] = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if every_n_frames < 1:
            raise ValueError(f"every_n_frames must be >= 1, got {every_n_frames}")
        self.predictor = predictor
        self.out = Path(output_dir)
        self.batch_size = batch_size
        self.vis = vis
        self.show = show
        self.skip_existing = skip_existing
        self.every_n_frames = every_n_frames
        self.coco = coco
        self.track = track
        self.max_frames = max_frames
        self.progress = progress
        self.max_pixels = max_pixels
        self.anonymizer = anonymizer
        self.attributes_every = attributes_every
        self.stream_options = dict(stream_options or {})
        self._window = False
        self._stop = False
        self._handled: Set[str] = set()  # inputs of this run with a final record (result, error, complete)

    # paths -------------------------------------------------------------------------------------------
    @property
    def jsonl_path(self) -> Path:
        return self.out / "results.jsonl"

    def _vis_path(self, file: str, root: Optional[str], video: bool, folder: str = VIS_DIR) -> Path:
        if root is None:
            rel = Path(file.replace(":", "_")).name
        else:
            rel = os.path.relpath(os.path.abspath(file), root)
            if rel.startswith(".."):
                rel = Path(file).name
        p = self.out / folder / rel
        if video:  # a.avi -> a.avi.mp4, so a.avi and a.mp4 of one folder never write the same file
            return p if p.suffix.lower() == ".mp4" else p.with_name(p.name + ".mp4")
        # Keep the input's name; formats OpenCV may not write get ".png" appended (a.tif -> a.tif.png,
        # so a.tif and a.png never collide).
        return p if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") else p.with_name(p.name + ".png")

    # resume ------------------------------------------------------------------------------------------------
    def _prepare_log(self) -> Set[str]:
        """Start ``results.jsonl`` (fresh, or cleaned for resume) and return the done files."""
        self.out.mkdir(parents=True, exist_ok=True)
        if not self.skip_existing:
            JsonlWriter(self.jsonl_path, append=False).close()
            return set()
        records: List[dict] = []
        if self.jsonl_path.exists():
            records = list(read_jsonl(self.jsonl_path))
        elif (self.out / "results.json").exists():
            try:
                data = load_json(self.out / "results.json")
                records = list(data.get("images", []))
                done_videos = {r["file"] for r in records if r.get("frame") is not None}
                failed = {e.get("file") for e in data.get("errors", [])}
                records += [{"file": f, "complete": True} for f in done_videos - failed]
            except (ValueError, OSError, AttributeError) as e:
                logger.warning("--skip-existing: cannot read %s (%s); starting afresh", self.out / "results.json", e)
                records = []
        complete = {r["file"] for r in records if r.get("complete")}
        keep = [r for r in records
                if ("faces" in r and (r.get("frame") is None or r.get("file") in complete)) or r.get("complete")]
        with atomic_write(self.jsonl_path) as f:
            import json

            for r in keep:
                f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
        return {r["file"] for r in keep if "faces" in r and r.get("frame") is None} | complete

    # main -------------------------------------------------------------------------------------------------
    def run(self, inputs: Sequence[Tuple[str, str]] = (), webcam: Optional[int] = None) -> RunSummary:
        """Process ``[(path, "image" | "video")]`` (from :func:`collect_inputs`) and/or a webcam."""
        t0 = time.perf_counter()
        summary = RunSummary(output_dir=str(self.out))
        if self.show:
            ok, why = display_available()
            if not ok:
                logger.warning("--show: %s; continuing without a window (outputs are still written to %s)", why, self.out)
                self.show = False
        done = self._prepare_log()
        self._save_configs(summary)
        # Compared as real paths: "img.jpg", "./img.jpg" and "/abs/img.jpg" are one input.
        done = {os.path.realpath(p) for p in done}
        todo = []
        for p, kind in inputs:
            if os.path.realpath(p) in done:
                summary.skipped += 1
            else:
                todo.append((p, kind))
        if summary.skipped:
            logger.info("--skip-existing: %d input(s) already done, %d to do", summary.skipped, len(todo))
        files = [p for p, k in inputs if k != "stream"]
        root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in files]) if files else None
        log = JsonlWriter(self.jsonl_path, append=True)
        self._handled = set()
        failure: Optional[BaseException] = None
        with _stop_signals_raise():
            try:
                for p in (p for p, k in todo if k == "unreadable"):
                    self._error(log, summary, p, f"cannot read folder ({_listing_problem(p)}); its files were "
                                                 "not processed")
                images = [p for p, k in todo if k == "image"]
                videos = [(p, k) for p, k in todo if k in ("video", "stream")]
                if images:
                    self._run_images(images, root, log, summary)
                for v, kind in videos:
                    if self._stop:
                        break
                    if kind == "stream":
                        self._run_video(v, redact_url(v), None, log, summary, camera=True)
                    else:
                        self._run_video(v, v, root, log, summary)
                if webcam is not None and not self._stop:
                    self._run_video(int(webcam), f"webcam:{webcam}", None, log, summary, camera=True)
            except KeyboardInterrupt as e:
                summary.interrupted = True
                summary.signum = getattr(e, "signum", int(signal.SIGINT))
                logger.warning("interrupted (%s): writing the results gathered so far",
                               signal.Signals(summary.signum).name)
                self._list_unfinished(todo, log, summary, f"the run was interrupted "
                                                          f"({signal.Signals(summary.signum).name})")
            except Exception as e:  # noqa: BLE001 - finish the outputs, then let the caller see it
                failure = e
                self._list_unfinished(todo, log, summary, f"the run stopped on an error "
                                                          f"({type(e).__name__}: {e})")
            finally:
                # a second signal while the outputs are written is noted, not obeyed (see _stop_signals_raise)
                with _stop_signals_deferred():
                    log.close()
                    self._close_window()
                    self._finalize(summary)
                    summary.seconds = time.perf_counter() - t0
        if failure is not None:
            raise failure
        return summary

    def _list_unfinished(self, todo: Sequence[Tuple[str, str]], log: JsonlWriter, summary: RunSummary,
                         why: str) -> None:
        """An error record for every input of ``todo`` that got no final record in this run."""
        for p, _ in todo:
            if p not in self._handled:
                self._error(log, summary, p, f"not finished: {why}; run again with --skip-existing to do it")

    def _save_configs(self, summary: RunSummary) -> None:
        from maskface.config import save_config

        summary.outputs["config"] = save_config(self.predictor.cfg, str(self.out), "config.yaml")
        if getattr(self.predictor, "attr_cfg", None) is not None:
            summary.outputs["attribute config"] = save_config(self.predictor.attr_cfg, str(self.out),
                                                              "attributes_config.yaml")

    def _error(self, log: JsonlWriter, summary: RunSummary, file: str, msg: str) -> None:
        rec = {"file": str(file), "error": str(msg)}
        self._handled.add(str(file))
        summary.errors.append(rec)
        log.write(rec)
        logger.error("%s: %s", file, msg)

    # images -----------------------------------------------------------------------------------------------
    def _run_images(self, paths: List[str], root: Optional[str], log: JsonlWriter, summary: RunSummary) -> None:
        bar = _tqdm(total=len(paths), unit="img", desc="images", disable=not self.progress)
        batch: List[Tuple[str, np.ndarray]] = []
        try:
            for p in paths:
                if self._stop:
                    break
                try:
                    batch.append((p, load_image(p, max_pixels=self.max_pixels)))
                except ImageLoadError as e:
                    msg = str(e)
                    self._error(log, summary, p, msg[len(p) + 2:] if msg.startswith(p + ": ") else msg)
                    bar.update(1)
                except MemoryError:
                    self._error(log, summary, p, "out of memory while decoding (image too large?)")
                    bar.update(1)
                if len(batch) >= self.batch_size:
                    self._flush_images(batch, root, log, summary, bar)
            if batch and not self._stop:
                self._flush_images(batch, root, log, summary, bar)
        finally:
            bar.close()

    def _flush_images(self, batch, root, log, summary, bar) -> None:
        files = [p for p, _ in batch]
        rgbs = [a for _, a in batch]
        try:
            results = self.predictor.predict_results(rgbs, color="rgb", files=files)
        except Exception as e:  # noqa: BLE001 - isolate the failing image(s) below
            if len(batch) == 1:
                self._error(log, summary, files[0], f"prediction failed: {type(e).__name__}: {e}")
                bar.update(1)
                batch.clear()
                return
            logger.warning("batch failed (%s); retrying its images one by one", e)
            items = list(batch)
            batch.clear()
            for item in items:
                self._flush_images([item], root, log, summary, bar)
            return
        for res, rgb in zip(results, rgbs):
            log.write(res)
            self._handled.add(res.file)
            summary.images += 1
            summary.faces += len(res.faces)
            if self.vis or (self.show and self.anonymizer is None):
                canvas = draw_faces(rgb_to_bgr(rgb), res.faces, color="bgr")
                if self.vis:
                    self._write_image(self._vis_path(res.file, root, video=False), canvas, log, summary)
            if self.anonymizer is not None:
                canvas = self.anonymizer(rgb_to_bgr(rgb), res.faces, color="bgr")
                self._write_image(self._vis_path(res.file, root, video=False, folder=ANON_DIR), canvas, log, summary)
            if self.show:
                self._show(canvas, wait=1)
            bar.update(1)
        bar.set_postfix(faces=summary.faces, errors=len(summary.errors))
        batch.clear()

    def _write_image(self, path: Path, bgr: np.ndarray, log, summary) -> None:
        import cv2

        ok, buf = cv2.imencode(path.suffix or ".png", bgr)
        if not ok:
            self._error(log, summary, str(path), "could not encode the output image")
            return
        with atomic_write(path, "wb") as f:
            f.write(buf.tobytes())

    # videos -----------------------------------------------------------------------------------------------
    def _run_video(self, source, name: str, root: Optional[str], log: JsonlWriter, summary: RunSummary,
                   camera: bool = False) -> None:
        try:
            if camera:  # a webcam or a stream: reconnects, time limit, real-time mode
                reader = StreamReader(source, max_frames=self.max_frames, max_pixels=self.max_pixels,
                                      **self.stream_options)
            else:
                reader = VideoReader(source, max_frames=self.max_frames, max_pixels=self.max_pixels)
        except VideoOpenError as e:
            msg = str(e)
            self._error(log, summary, name, msg[len(name) + 2:] if msg.startswith(name + ": ") else msg)
            return
        writer = anon_writer = None
        hold = self.anonymizer.hold_over() if self.anonymizer is not None else None
        cover: List = []  # what the anonymised frame covers: this frame's faces + held-over ones
        summary.videos += 1
        bar = _tqdm(total=reader.total, unit="frame", desc=Path(name).name, disable=not self.progress)
        failed = interrupted = False
        try:
            for folder in (VIS_DIR,) * self.vis + (ANON_DIR,) * (hold is not None):
                vpath = self._vis_path(name, root, video=True, folder=folder) if not camera else \
                    self.out / folder / (f"webcam_{source}.mp4" if isinstance(source, int) else
                                         stream_file_name(source) + ".mp4")
                w = VideoWriter(str(vpath), reader.fps, (reader.width, reader.height))
                writer, anon_writer = (w, anon_writer) if folder == VIS_DIR else (writer, w)
                logger.info("%s: writing %s at %.2f fps, %dx%d; audio (if any) is not copied (mp4v video only)",
                            name, vpath, reader.fps, reader.width, reader.height)
            realtime = camera and self.stream_options.get("realtime")
            for fr in process_video(self.predictor, reader, batch_size=1 if realtime else self.batch_size,
                                    every_n_frames=self.every_n_frames, track=self.track,
                                    attributes_every=self.attributes_every):
                if fr.processed:
                    res = ImageResult(file=name, width=fr.image_bgr.shape[1], height=fr.image_bgr.shape[0],
                                      frame=fr.index, faces=fr.faces)
                    log.write(res)
                    summary.frames += 1
                    summary.faces += len(fr.faces)
                if writer is not None or (self.show and hold is None):
                    canvas = draw_faces(fr.image_bgr, fr.faces, color="bgr")
                    if writer is not None:
                        writer.write(canvas)
                if hold is not None:
                    if fr.processed:  # skipped frames (every_n_frames) keep the last cover
                        cover = hold.update(fr.faces)
                    canvas = self.anonymizer(fr.image_bgr, cover, color="bgr")
                    anon_writer.write(canvas)
                if self.show:
                    self._show(canvas, wait=1)
                bar.update(1)
                if fr.processed and fr.index % 25 == 0:
                    bar.set_postfix(faces=summary.faces)
                if self._stop:
                    break
        except KeyboardInterrupt as e:
            if camera and getattr(e, "signum", signal.SIGINT) == signal.SIGINT:  # how a webcam / stream session ends
                logger.info("%s: stopped (Ctrl-C) after %d frames", name, reader.frames_read)
                self._stop = True  # the run ends here, with its outputs finalised as usual
            else:
                failed = interrupted = True
                kept = f"; the annotated video so far is {writer.partial_path}" if writer is not None else ""
                self._error(log, summary, name, f"not finished: interrupted ({e}) after frame {reader.frames_read}; "
                                                f"the results of the frames read are kept{kept}; run again with "
                                                "--skip-existing to redo it")
                raise
        except Exception as e:  # noqa: BLE001 - report, keep going with the next input
            failed = True
            self._error(log, summary, name, f"failed at frame {reader.frames_read}: {type(e).__name__}: {e}")
        finally:
            bar.close()
            reader.close()
            if writer is not None:
                # an interrupted video never takes its final name: it stays <name>.partial.mp4
                writer.close(commit=not interrupted, keep_partial=True)
                summary.outputs.setdefault("annotated", str(self.out / VIS_DIR))
            if anon_writer is not None:
                anon_writer.close(commit=True)
                summary.outputs.setdefault("anonymized", str(self.out / ANON_DIR))
        if camera and getattr(reader, "reconnects", 0) + getattr(reader, "frames_dropped", 0):
            logger.info("%s: %d frames read, %d dropped to keep up (real-time), %d reconnection(s)", name,
                        reader.frames_read, reader.frames_dropped, reader.reconnects)
        if failed:
            return
        if camera and reader.ended_early():
            self._error(log, summary, name, f"{reader.problem}; the results of the frames read are kept")
        elif reader.ended_early():
            self._error(log, summary, name, f"video ended early: read {reader.frames_read} of {reader.total} frames "
                                            "(truncated or corrupt file); results of the frames read are kept")
        elif not camera and not self._stop:
            log.write({"file": name, "complete": True, "frames": reader.frames_read})
            self._handled.add(name)

    # display ----------------------------------------------------------------------------------------------
    def _show(self, bgr: np.ndarray, wait: int = 1) -> None:
        import cv2

        try:
            cv2.imshow("MaskFace", bgr)
            self._window = True
            key = cv2.waitKey(wait) & 0xFF
        except cv2.error as e:
            logger.warning("--show: cannot open a window (%s); continuing without it", str(e).strip().splitlines()[-1])
            self.show = False
            return
        if key in (ord("q"), 27):
            logger.info("stopped by the user ('q')")
            self._stop = True

    def _close_window(self) -> None:
        if self._window:
            import cv2

            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass

    # final files ----------------------------------------------------------------------------------------------
    def _finalize(self, summary: RunSummary) -> None:
        def images() -> Iterator[dict]:
            for r in read_jsonl(self.jsonl_path):
                if "faces" in r:
                    yield r

        errors = [r for r in read_jsonl(self.jsonl_path) if "error" in r]
        model = getattr(self.predictor, "model_info", None)
        write_results_json(self.out / "results.json", images(), errors, model=model)
        write_results_csv(self.out / "results.csv", images())
        summary.outputs["results"] = str(self.out / "results.json")
        summary.outputs["results (lines)"] = str(self.jsonl_path)
        summary.outputs["table"] = str(self.out / "results.csv")
        if self.coco:
            write_coco_results(self.out / "coco_results.json", self.out / "coco_images.json", images())
            summary.outputs["coco results"] = str(self.out / "coco_results.json")
            summary.outputs["coco images"] = str(self.out / "coco_images.json")
        if self.vis and (self.out / VIS_DIR).exists():
            summary.outputs["annotated"] = str(self.out / VIS_DIR)
        if self.anonymizer is not None and (self.out / ANON_DIR).exists():
            summary.outputs["anonymized"] = str(self.out / ANON_DIR)
        # the summary's order: results first, configs last
        summary.outputs = dict(sorted(summary.outputs.items(), key=lambda kv: "config" in kv[0]))


def _listing_problem(folder: str) -> str:
    try:
        os.listdir(folder)
    except OSError as e:
        return e.strerror or str(e)
    return "it could not be listed when the inputs were collected"


@contextlib.contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """Within the block, SIGINT / SIGTERM / SIGHUP raise :class:`RunInterrupted` in the main
    thread, so the run ends through its ``finally`` (results.json written) instead of dying.
    Elsewhere than the main thread (signals cannot be handled there) it does nothing."""
    def raise_interrupted(signum, frame):
        raise RunInterrupted(signum)

    with _signal_handlers(raise_interrupted):
        yield


@contextlib.contextmanager
def _stop_signals_deferred() -> Iterator[None]:
    """Within the block, stop signals are logged and ignored: the final files are being written."""
    def note(signum, frame):
        logger.warning("%s received while writing the final results; finishing them first",
                       signal.Signals(signum).name)

    with _signal_handlers(note):
        yield


@contextlib.contextmanager
def _signal_handlers(handler) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _tqdm(**kw):
    from maskface.utils.progress import progress_bar

    return progress_bar(dynamic_ncols=True, leave=False, **kw)
