"""MaskFace over many images with Ray Data: a decode stage and an actor pool of predictors.

The pipeline of :class:`RayInferenceJob` (what ``tools/infer_ray.py`` runs)::

    paths (listed by the driver: folders, globs, text / CSV / Parquet lists; local or any pyarrow filesystem)
      -> ray.data.from_items                       minus the images the output already holds (resume)
      -> map_batches(decode_batch)                 maskface.inference.image_io.load_image: infer.py's decoding
      -> map_batches(PredictorActor, ActorPoolStrategy(size=workers))   one FacePredictor per actor,
                                                   loaded once; predict_results on each batch
      -> the driver: result shards (Parquet + JSON lines), summary.json

On CPU workers the decode stage has the same resources as the actors, so Ray Data fuses it into
them (each actor decodes the batch it then predicts, as ``tools/infer.py`` does, with no copy of
the pixels through the object store); with GPU workers it runs as separate CPU tasks that feed
the GPU actors.

Failures stay per image: an image that cannot be read or decoded, or whose prediction fails
(a batch that fails is retried image by image), becomes a row with its ``error``; the job goes
on and :attr:`RaySummary.exit_code` is 1. Results are written by the driver, so the output folder
need only be reachable from it; the inputs must be readable from every worker (a shared folder,
or URIs such as ``s3://``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from maskface.distributed import require_pyarrow, require_ray
from maskface.distributed.inputs import decode_error_message, list_inputs, path_key, read_image
from maskface.distributed.shards import (
    FORMATS,
    SHARD_DIR,
    ShardWriter,
    prepare_resume,
    remove_shards,
    write_merged,
)
from maskface.inference.image_io import DEFAULT_MAX_PIXELS
from maskface.utils.io import load_json, save_json

logger = logging.getLogger(__name__)

__all__ = ["RayInferenceJob", "RaySummary", "JobConfigError", "decode_batch", "PredictorActor"]

#: Summary file of a job, in its output folder.
SUMMARY_FILE = "summary.json"
#: What produced the shards (model, thresholds, pixel cap): a resumed job must match it.
RUN_FILE = "run.json"
#: Stand-in pixels of an image that failed to decode (the row carries the error).
_NO_IMAGE = np.zeros((1, 1, 3), np.uint8)


class JobConfigError(ValueError):
    """The job cannot start as asked (an output folder of another model, too few CPUs...)."""


# the Ray stages ---------------------------------------------------------------------------------------


def _object_array(values: Sequence[Any]) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        arr[i] = v
    return arr


def decode_batch(batch: Dict[str, np.ndarray], max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> Dict[str, Any]:
    """Ray Data stage: ``{"file"}`` -> ``{"file", "image" (H x W x 3 uint8 RGB), "error"}``.

    Decoding is :func:`~maskface.distributed.inputs.read_image` (``tools/infer.py``'s
    :func:`load_image`); an image that fails gets a 1 x 1 stand-in and its reason in ``error``
    (``""`` for the others).
    """
    files = [str(f) for f in batch["file"]]
    images, errors = [], []
    for f in files:
        try:
            images.append(read_image(f, max_pixels=max_pixels))
            errors.append("")
        except Exception as e:  # noqa: BLE001 - any decoding failure is this image's error row
            images.append(_NO_IMAGE)
            errors.append(decode_error_message(f, e))
    return {"file": np.array(files, dtype=object), "image": _object_array(images),
            "error": np.array(errors, dtype=object)}


def _memory_mb() -> Dict[str, float]:
    """This process's memory now, MB: ``rss`` (resident, including shared pages such as the
    libraries and Ray's object store mapped in) and ``uss`` (private to it: what it frees
    when it ends), from Linux ``/proc``; NaN elsewhere."""
    out = {"rss": float("nan"), "uss": float("nan")}
    try:
        with open("/proc/self/smaps_rollup", "r", encoding="ascii") as f:
            kb = {}
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                    kb[parts[0][:-1]] = int(parts[1])
        out["rss"] = kb.get("Rss", 0) / 1024.0
        out["uss"] = (kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)) / 1024.0
    except (OSError, ValueError):
        pass
    return out


def _peak_rss_mb() -> float:
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if os.uname().sysname == "Darwin" else peak / 1024.0
    except (ImportError, AttributeError, OSError):
        return float("nan")


class PredictorActor:
    """Ray Data stage (one instance per actor): a :class:`FacePredictor` loaded once, run on
    every batch of decoded images. Returns one JSON ``record`` per image (a ``results.jsonl``
    line: an image record, or ``{"file", "error"}``) plus the actor's identity and memory."""

    def __init__(self, predictor_kwargs: Dict[str, Any], threads: int = 0):
        import torch

        from maskface.inference.predictor import FacePredictor

        if threads > 0:
            torch.set_num_threads(threads)
        t0 = time.perf_counter()
        self.predictor = FacePredictor(**predictor_kwargs)
        self.load_s = time.perf_counter() - t0
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.device = str(self.predictor.device)
        self.threads = torch.get_num_threads()

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, Any]:
        files = [str(f) for f in batch["file"]]
        errors = [str(e) if e is not None else "" for e in batch["error"]]
        records: List[Optional[Dict[str, Any]]] = [None] * len(files)
        todo = []
        for i, (f, err) in enumerate(zip(files, errors)):
            if err:
                records[i] = {"file": f, "error": err}
            else:
                img = batch["image"][i]
                todo.append((i, img if img.flags.writeable else img.copy()))
        self._predict(files, todo, records)
        n = len(files)
        mem = _memory_mb()
        return {"record": np.array([json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in records],
                                   dtype=object),
                "worker": np.array([self.worker] * n, dtype=object),
                "device": np.array([self.device] * n, dtype=object),
                "rss_mb": np.full(n, mem["rss"]), "uss_mb": np.full(n, mem["uss"]),
                "peak_rss_mb": np.full(n, _peak_rss_mb()), "cpu_s": np.full(n, time.process_time()),
                "load_s": np.full(n, self.load_s), "threads": np.full(n, self.threads)}

    def _predict(self, files: List[str], todo, records) -> None:
        """``predict_results`` on the batch; when it fails, image by image (as tools/infer.py)."""
        if not todo:
            return
        try:
            results = self.predictor.predict_results([a for _, a in todo], color="rgb",
                                                     files=[files[i] for i, _ in todo])
        except Exception as e:  # noqa: BLE001 - isolate the failing image(s)
            if len(todo) == 1:
                i = todo[0][0]
                records[i] = {"file": files[i], "error": f"prediction failed: {type(e).__name__}: {e}"}
                return
            logging.getLogger(__name__).warning("batch failed (%s); retrying its images one by one", e)
            for item in todo:
                self._predict(files, [item], records)
            return
        for (i, _), res in zip(todo, results):
            records[i] = res.to_dict()


# the summary ------------------------------------------------------------------------------------------


@dataclass
class RaySummary:
    """What a job did. ``exit_code``: 0 done, 1 an image failed (or the job stopped on an error),
    128 + signal number when interrupted. Throughput counts the images processed in this run
    over the time from starting the Ray pipeline (workers' start-up and model loading included)
    to its end; ``seconds`` is the whole job (listing, model check, Ray start-up, merge)."""

    output_dir: str
    inputs: int = 0
    skipped: int = 0
    processed: int = 0
    images: int = 0
    faces: int = 0
    errors: List[Dict[str, str]] = field(default_factory=list)
    videos_left_out: int = 0
    duplicates: int = 0
    retried_errors: int = 0
    seconds: float = 0.0
    pipeline_seconds: float = 0.0
    images_per_s: float = 0.0
    workers: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    total_images: int = 0
    total_faces: int = 0
    shards: List[str] = field(default_factory=list)
    outputs: Dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    signum: int = int(signal.SIGINT)
    failure: Optional[str] = None
    ray: Dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 128 + self.signum
        return 1 if (self.errors or self.failure) else 0

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["exit_code"] = self.exit_code
        d["not_finished"] = max(0, self.inputs - self.skipped - self.processed)
        return d

    def format(self) -> str:
        rate = (f" (Ray pipeline {self.pipeline_seconds:.1f} s, workers' start-up included: "
                f"{self.images_per_s:.2f} images/s)" if self.pipeline_seconds else "")
        lines = [
            f"MaskFace on Ray: {self.processed} image(s) processed ({self.images} ok, {len(self.errors)} failed, "
            f"{self.faces} face(s)) in {self.seconds:.1f} s{rate}"
            + (f"; {self.skipped} already in the output (resumed)" if self.skipped else "")
            + (f" -- INTERRUPTED ({signal.Signals(self.signum).name}): run the same command again to go on"
               if self.interrupted else ""),
        ]
        if self.failure:
            lines.append(f"  the job stopped: {self.failure}; run the same command again to go on")
        if self.videos_left_out:
            lines.append(f"  {self.videos_left_out} video(s) left out: run tools/infer.py on videos")
        for e in self.errors[:20]:
            lines.append(f"  error: {e['file']}: {e['error']}")
        if len(self.errors) > 20:
            lines.append(f"  ... and {len(self.errors) - 20} more (see {SUMMARY_FILE})")
        for w, s in sorted(self.workers.items()):
            lines.append(f"  worker {w} ({s['device']}, {s['threads']} thread(s)): {s['images']} image(s), "
                         f"RSS {s['rss_mb']:.0f} MB (peak {s['peak_rss_mb']:.0f}, private {s['uss_mb']:.0f}), "
                         f"{s['cpu_s']:.1f} CPU-s, model loaded in {s['load_s']:.1f} s")
        lines.append(f"output totals: {self.total_images} image(s), {self.total_faces} face(s) in "
                     f"{self.output_dir}/{SHARD_DIR}/")
        for k, v in self.outputs.items():
            lines.append(f"  {k:<18} {v}")
        return "\n".join(lines)


# the job ------------------------------------------------------------------------------------------------


class RayInferenceJob:
    """Run :class:`~maskface.inference.predictor.FacePredictor` on many images with Ray Data.

    Args:
        inputs: folders, files, glob patterns and lists of image paths, local or URIs
            (:func:`maskface.distributed.inputs.list_inputs`).
        output_dir: local folder of the shards and summary (created); a job over a folder
            that already has shards resumes: the images they hold are skipped, failed ones redone.
        predictor_kwargs: :class:`FacePredictor` arguments (``model``, ``score_thresh``,
            ``device``...; :func:`maskface.inference.cli.predictor_kwargs_from_args`). Every
            worker builds its predictor from them: model files must exist on every node (the
            model zoo's ship inside the package).
        workers: actors, each with its own model.
        batch_size: images per predictor call.
        cpus_per_worker: Ray CPUs each actor reserves; its PyTorch threads (unless ``threads``).
        num_gpus_per_worker: GPUs each actor reserves (fractions share a GPU); 0 = CPU workers.
        threads: PyTorch threads per actor (0 = ``max(1, int(cpus_per_worker))``).
        max_pixels: images with more pixels are refused from their header (``None`` = no cap).
        formats: shard formats, some of ``("parquet", "jsonl")``.
        shard_rows: rows per shard file.
        path_column: column of CSV / Parquet lists holding the paths (default ``path`` or ``file``).
        overwrite: delete the shards of ``output_dir`` first instead of resuming.
        merge: also write ``results.json`` / ``results.csv`` (tools/infer.py's) from all shards.
        address: Ray cluster (``"auto"``, ``"ray://host:10001"``); ``None``: the one already
            initialised in this process, else ``$RAY_ADDRESS``, else a new local instance.
        num_cpus: CPUs of a new local instance (default: this machine's).
        ship_code: send this ``maskface`` package to the workers (Ray ``py_modules``), for a
            cluster whose nodes have the dependencies but not MaskFace itself.
        progress: tqdm progress bar.
    """

    def __init__(self, inputs: Sequence[str], output_dir, predictor_kwargs: Optional[Dict[str, Any]] = None, *,
                 workers: int = 1, batch_size: int = 4, cpus_per_worker: float = 1.0,
                 num_gpus_per_worker: float = 0.0, threads: int = 0,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, formats: Sequence[str] = FORMATS,
                 shard_rows: int = 5000, path_column: Optional[str] = None, overwrite: bool = False,
                 merge: bool = False, address: Optional[str] = None, num_cpus: Optional[int] = None,
                 ship_code: bool = False, progress: bool = True):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not cpus_per_worker > 0:
            raise ValueError(f"cpus_per_worker must be > 0, got {cpus_per_worker}")
        if not num_gpus_per_worker >= 0:
            raise ValueError(f"num_gpus_per_worker must be >= 0, got {num_gpus_per_worker}")
        if threads < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        if "parquet" in formats:
            require_pyarrow()
        self.inputs = [str(i) for i in inputs]
        self.out = Path(output_dir)
        self.predictor_kwargs = dict(predictor_kwargs or {})
        self.workers = workers
        self.batch_size = batch_size
        self.cpus_per_worker = float(cpus_per_worker)
        self.num_gpus_per_worker = float(num_gpus_per_worker)
        self.threads = threads or max(1, int(cpus_per_worker))
        self.max_pixels = max_pixels or None
        self.formats = tuple(formats)
        self.shard_rows = shard_rows
        self.path_column = path_column
        self.overwrite = overwrite
        self.merge = merge
        self.address = address
        self.num_cpus = num_cpus
        self.ship_code = ship_code
        self.progress = progress

    # set-up ---------------------------------------------------------------------------------------------
    def _load_model_here(self):
        """The predictor once in the driver, on the CPU: a bad model fails before any worker starts,
        and its merged configs are saved next to the outputs."""
        from maskface.inference.predictor import FacePredictor

        kw = dict(self.predictor_kwargs)
        kw["device"] = "cpu"
        try:
            return FacePredictor(**kw)
        except Exception as e:  # noqa: BLE001 - every load failure is reported the same way
            raise JobConfigError(f"cannot load the model: {type(e).__name__}: {e}") from e

    def _run_info(self, predictor) -> Dict[str, Any]:
        model = {k: v for k, v in predictor.model_info.items() if k not in ("device",)}
        return {"model": model, "max_pixels": self.max_pixels,
                "config": predictor.cfg.dump(),
                "attributes_config": None if predictor.attr_cfg is None else predictor.attr_cfg.dump()}

    def _check_output(self, info: Dict[str, Any]) -> None:
        """Refuse to resume into shards of another model / thresholds (they would be mixed)."""
        path = self.out / RUN_FILE
        has_shards = (self.out / SHARD_DIR).is_dir() and any((self.out / SHARD_DIR).iterdir())
        if self.overwrite:
            n = remove_shards(self.out)
            for name in (SUMMARY_FILE, "results.json", "results.csv"):
                (self.out / name).unlink(missing_ok=True)
            if n:
                logger.info("--overwrite: removed %d shard file(s) of %s", n, self.out / SHARD_DIR)
            return
        if not has_shards or not path.exists():
            return
        try:
            old = load_json(path)
        except (ValueError, OSError) as e:
            raise JobConfigError(f"{path}: cannot read it ({e}); it tells what produced the shards in "
                                 f"{self.out / SHARD_DIR}: use another --output, or --overwrite") from None
        changed = [k for k in ("model", "max_pixels", "config", "attributes_config") if old.get(k) != info.get(k)]
        if changed:
            verb = "differs" if len(changed) == 1 else "differ"
            raise JobConfigError(f"{self.out} holds results of another setting ({', '.join(changed)} {verb} from "
                                 f"{path}); resuming would mix them: use another --output, or --overwrite to "
                                 "start it afresh")

    def _connect(self) -> bool:
        """Connect to / start Ray; True when this job started it (and shuts it down)."""
        ray = require_ray()
        if ray.is_initialized():
            return False
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        runtime_env: Dict[str, Any] = {}
        import maskface

        package = os.path.dirname(os.path.abspath(maskface.__file__))
        if self.ship_code:
            runtime_env["py_modules"] = [package]
        quiet = dict(logging_level=logging.WARNING, log_to_driver=True)
        if address:
            logger.info("connecting to the Ray cluster at %s", address)
            ray.init(address=address, runtime_env=runtime_env or None, **quiet)
        else:
            # Local workers import this very maskface (a checkout run without `pip install -e .`).
            paths = [os.path.dirname(package)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            runtime_env.setdefault("env_vars", {})["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
            cpus = self.num_cpus or os.cpu_count() or 1
            logger.info("starting a local Ray instance with %d CPU(s)", cpus)
            ray.init(num_cpus=cpus, include_dashboard=False, runtime_env=runtime_env, **quiet)
        return True

    def _check_resources(self, started_here: bool) -> Dict[str, Any]:
        import ray

        res = ray.cluster_resources()
        need_cpu = self.workers * self.cpus_per_worker
        need_gpu = self.workers * self.num_gpus_per_worker
        have_cpu, have_gpu = float(res.get("CPU", 0)), float(res.get("GPU", 0))
        short = []
        if need_cpu > have_cpu + 1e-9:
            short.append(f"{self.workers} worker(s) x {self.cpus_per_worker:g} CPU = {need_cpu:g} CPUs, the cluster "
                         f"has {have_cpu:g} (lower --cpus-per-worker, e.g. {have_cpu / self.workers:.2g})")
        if need_gpu > have_gpu + 1e-9:
            short.append(f"{self.workers} worker(s) x {self.num_gpus_per_worker:g} GPU = {need_gpu:g} GPUs, the "
                         f"cluster has {have_gpu:g}")
        if short:
            msg = "; ".join(short)
            if started_here:
                raise JobConfigError(f"not enough resources: {msg}")
            logger.warning("the cluster has too few resources now (%s); the job waits for more nodes "
                           "(an autoscaler) or hangs", msg)
        return {"address": self.address or os.environ.get("RAY_ADDRESS") or "local", "CPU": have_cpu,
                "GPU": have_gpu, "nodes": len([n for n in ray.nodes() if n.get("Alive")])}

    def _dataset(self, todo: List[str]):
        import ray

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours is the driver's tqdm bar over images
        if hasattr(ctx, "print_on_execution_start"):
            ctx.print_on_execution_start = False
        # Blocks of ~16 batches: enough blocks to keep every worker busy, few enough to schedule cheaply.
        per_block = self.batch_size * 16
        blocks = min(len(todo), max(4 * self.workers, math.ceil(len(todo) / per_block)))
        ds = ray.data.from_items([{"file": p} for p in todo], override_num_blocks=blocks)
        actor_res: Dict[str, Any] = {"num_cpus": self.cpus_per_worker}
        if self.num_gpus_per_worker:
            actor_res["num_gpus"] = self.num_gpus_per_worker
        # CPU workers: the same resources, so Ray fuses decoding into the actors; GPU workers:
        # decoding runs in CPU tasks of its own, overlapping the GPU work.
        decode_res = {"num_cpus": self.cpus_per_worker} if not self.num_gpus_per_worker else {"num_cpus": 1}
        ds = ds.map_batches(decode_batch, batch_size=self.batch_size, fn_kwargs={"max_pixels": self.max_pixels},
                            **decode_res)
        kwargs = dict(self.predictor_kwargs)
        kwargs.setdefault("device", "auto")
        return ds.map_batches(PredictorActor, batch_size=self.batch_size,
                              compute=ray.data.ActorPoolStrategy(size=self.workers),
                              fn_constructor_kwargs={"predictor_kwargs": kwargs, "threads": self.threads},
                              **actor_res)

    # run -----------------------------------------------------------------------------------------------
    def run(self) -> RaySummary:
        """List the inputs, skip those already done, run the pipeline, write shards + summary.

        Raises:
            InputSpecError: an input matches nothing (nothing was started).
            JobConfigError: the model cannot be loaded (tried in the driver, before any worker
                starts), the output folder holds another setting's results, or a local Ray
                instance has too few CPUs / GPUs for the workers asked for.
            ImportError: Ray / pyarrow missing (the message says how to install them).
            ConnectionError: the Ray cluster at ``address`` cannot be reached.

        Whatever happens once the pipeline runs (a signal, a lost cluster), the rows gathered so
        far are written as shards and ``summary.json`` says what stopped it.
        """
        from maskface.config import save_config
        from maskface.inference.runner import RunInterrupted, _stop_signals_deferred, _stop_signals_raise

        t0 = time.perf_counter()
        summary = RaySummary(output_dir=str(self.out))
        listing = list_inputs(self.inputs, self.path_column)
        summary.inputs = len(listing.paths) + len(listing.unreadable)
        summary.videos_left_out = len(listing.videos)
        summary.duplicates = listing.duplicates
        require_ray()  # before loading anything: say how to install it
        predictor = self._load_model_here()
        info = self._run_info(predictor)
        self.out.mkdir(parents=True, exist_ok=True)
        self._check_output(info)
        summary.outputs["config"] = save_config(predictor.cfg, str(self.out), "config.yaml")
        if predictor.attr_cfg is not None:
            summary.outputs["attribute config"] = save_config(predictor.attr_cfg, str(self.out),
                                                              "attributes_config.yaml")
        save_json(info, self.out / RUN_FILE, indent=1)
        model_info = predictor.model_info
        del predictor

        state = prepare_resume(self.out, path_key)
        summary.retried_errors = state.dropped_errors
        todo = [p for p in listing.paths if path_key(p) not in state.done]
        summary.skipped = len(listing.paths) - len(todo)
        if summary.skipped:
            logger.info("resume: %d image(s) already in %s, %d to do", summary.skipped, self.out / SHARD_DIR,
                        len(todo))
        started_here = False
        if todo:
            started_here = self._connect()
            try:
                summary.ray = self._check_resources(started_here)
            except BaseException:
                if started_here:
                    import ray

                    ray.shutdown()
                raise
        writer = ShardWriter(self.out, self.formats, self.shard_rows)
        t_pipe = None
        bar = None
        try:
            with _stop_signals_raise():
                try:
                    for folder in listing.unreadable:
                        rec = {"file": folder, "error": "cannot read folder; its files were not processed"}
                        writer.add(rec)
                        summary.errors.append(rec)
                        summary.processed += 1
                    if todo:
                        ds = self._dataset(todo)
                        bar = _tqdm(total=len(todo), unit="img", desc="images", disable=not self.progress)
                        t_pipe = time.perf_counter()
                        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                            bar.update(self._take(batch, writer, summary))
                            bar.set_postfix(faces=summary.faces, errors=len(summary.errors))
                except RunInterrupted as e:
                    summary.interrupted, summary.signum = True, e.signum
                    logger.warning("interrupted (%s): writing the results gathered so far",
                                   signal.Signals(e.signum).name)
                except KeyboardInterrupt:
                    summary.interrupted = True
                    logger.warning("interrupted: writing the results gathered so far")
                except Exception as e:  # noqa: BLE001 - keep what was done; the summary says what stopped it
                    summary.failure = f"{type(e).__name__}: {e}"
                    logger.error("the job stopped: %s", summary.failure)
        finally:
            with _stop_signals_deferred():
                if bar is not None:
                    bar.close()
                writer.close()
                t_end = time.perf_counter()
                if t_pipe is not None:
                    summary.pipeline_seconds = t_end - t_pipe
                    done = summary.processed - len(listing.unreadable)
                    summary.images_per_s = done / summary.pipeline_seconds if summary.pipeline_seconds else 0.0
                summary.shards = [f"{SHARD_DIR}/{s}" for s in writer.written]
                summary.total_images = state.images + summary.images
                summary.total_faces = state.faces + summary.faces
                summary.outputs["shards"] = str(self.out / SHARD_DIR)
                if self.merge:
                    summary.outputs.update(write_merged(self.out, model=model_info))
                summary.seconds = time.perf_counter() - t0
                summary.outputs["summary"] = str(self.out / SUMMARY_FILE)
                summary.outputs = dict(sorted(summary.outputs.items(), key=lambda kv: "config" in kv[0]))
                save_json(summary.to_dict(), self.out / SUMMARY_FILE, indent=1)
                if started_here:
                    import ray

                    ray.shutdown()
        return summary

    @staticmethod
    def _take(batch: Dict[str, np.ndarray], writer: ShardWriter, summary: RaySummary) -> int:
        """One output batch of the pipeline into the shards and the summary; returns its rows."""
        n = len(batch["record"])
        for i in range(n):
            rec = json.loads(batch["record"][i])
            writer.add(rec)
            summary.processed += 1
            if "error" in rec:
                summary.errors.append(rec)
                logger.error("%s: %s", rec["file"], rec["error"])
            else:
                summary.images += 1
                summary.faces += len(rec["faces"])
            w = str(batch["worker"][i])
            s = summary.workers.setdefault(w, {"images": 0, "rss_mb": 0.0, "uss_mb": 0.0, "peak_rss_mb": 0.0,
                                               "cpu_s": 0.0, "load_s": 0.0,
                                               "device": str(batch["device"][i]), "threads": 0})
            s["images"] += 1
            s["rss_mb"] = max(s["rss_mb"], float(batch["rss_mb"][i]))
            s["uss_mb"] = max(s["uss_mb"], float(batch["uss_mb"][i]))
            s["peak_rss_mb"] = max(s["peak_rss_mb"], float(batch["peak_rss_mb"][i]))
            s["cpu_s"] = max(s["cpu_s"], float(batch["cpu_s"][i]))
            s["load_s"] = float(batch["load_s"][i])
            s["threads"] = int(batch["threads"][i])
        return n


def _tqdm(**kw):
    from maskface.utils.progress import progress_bar

    return progress_bar(dynamic_ncols=True, leave=False, **kw)
