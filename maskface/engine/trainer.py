"""Iteration-based trainer of the face Mask R-CNN, with hooks for checkpoints, evaluation and
metrics, exact resume and (via :mod:`maskface.engine.launch`) DDP.

Exact resume: a checkpoint holds the model, optimizer, LR scheduler, GradScaler, the number of
completed iterations, and the Python / NumPy / torch (CPU and CUDA) RNG states of every rank.
The data stream is a deterministic function of (seed, iteration) (see :mod:`maskface.data.build`),
so ``--resume`` continues with the very samples, augmentations and proposal sampling an
uninterrupted run would have used.

Only rank 0 writes (log file aside): checkpoints, ``metrics.json``, TensorBoard, ``config.yaml``.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import random
import time
import warnings
from collections import defaultdict, deque
from typing import Dict, List, Optional

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from maskface.data.build import build_train_loader, load_datasets
from maskface.data.mapper import DatasetMapper
from maskface.config import save_config
from maskface.engine.checkpoint import Checkpointer
from maskface.engine.launch import default_device
from maskface.engine.utils import MetricsWriter, seed_all
from maskface.modeling.face_rcnn import build_face_rcnn
from maskface.utils.checkpoint import load_checkpoint_file, load_model_weights
from maskface.utils.comm import all_gather_object, get_rank, get_world_size, is_dist, is_main_process, reduce_mean
from maskface.utils.device import resolve_device
from maskface.utils.logger import setup_logging
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

MODEL_TARGET_KEYS = ("boxes", "labels", "masks", "has_mask", "crowd_boxes")


# --- solver ----------------------------------------------------------------------------------------
def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum; no weight decay on normalisation parameters and biases."""
    decay, no_decay = [], []
    norm_types = (torch.nn.GroupNorm, torch.nn.BatchNorm2d, torch.nn.LayerNorm)
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            (no_decay if isinstance(module, norm_types) or name == "bias" else decay).append(p)
    return torch.optim.SGD(
        [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.SOLVER.BASE_LR,
        momentum=cfg.SOLVER.MOMENTUM,
        weight_decay=cfg.SOLVER.WEIGHT_DECAY,
    )


class WarmupMultiStep:
    """LR factor at iteration ``it``: linear warmup from ``warmup_factor`` over ``warmup_iters``,
    times ``gamma`` for each milestone passed. A class (not a lambda) so it pickles."""

    def __init__(self, steps, gamma: float, warmup_iters: int, warmup_factor: float = 0.001):
        self.steps, self.gamma = sorted(int(s) for s in steps), float(gamma)
        self.warmup_iters, self.warmup_factor = int(warmup_iters), float(warmup_factor)

    def __call__(self, it: int) -> float:
        f = self.gamma ** bisect.bisect_right(self.steps, it)
        if it < self.warmup_iters:
            a = it / self.warmup_iters
            f *= self.warmup_factor * (1 - a) + a
        return f


def build_lr_scheduler(cfg, optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per iteration."""
    s = cfg.SOLVER
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupMultiStep(s.STEPS, s.GAMMA, s.WARMUP_ITERS))


# --- RNG state -------------------------------------------------------------------------------------
def get_rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def targets_to_device(targets: List[dict], device: torch.device) -> List[dict]:
    """Only the keys the detector reads (attributes stay on the CPU)."""
    return [{k: t[k].to(device, non_blocking=True) for k in MODEL_TARGET_KEYS if k in t} for t in targets]


# --- hooks -----------------------------------------------------------------------------------------
class HookBase:
    """Called by :class:`DetectorTrainer` around training; ``self.trainer`` is set on register."""

    trainer: "DetectorTrainer"

    def before_train(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def after_train(self) -> None:
        pass


class PeriodicCheckpoint(HookBase):
    """``model_XXXXXXX.pth`` every ``period`` iterations and ``model_final.pth`` at the end
    (``XXXXXXX`` = completed iterations)."""

    def __init__(self, period: int):
        self.period = int(period)

    def after_step(self) -> None:
        t = self.trainer
        if self.period > 0 and t.iter % self.period == 0 and t.iter < t.max_iter:
            t.save_checkpoint(f"model_{t.iter:07d}")

    def after_train(self) -> None:
        t = self.trainer
        if t.iter >= t.max_iter and t.iter > t.start_iter:
            t.save_checkpoint("model_final")


class MetricsLogger(HookBase):
    """Every ``period`` iterations: losses (window mean, averaged over ranks), LR, iteration
    time, data time, ETA -> ``metrics.json`` + TensorBoard (rank 0) and the progress bar."""

    def __init__(self, period: int):
        self.period = max(1, int(period))
        self.window: Dict[str, deque] = defaultdict(lambda: deque(maxlen=self.period))
        self.bar = None

    def before_train(self) -> None:
        t = self.trainer
        self.bar = progress_bar(
            total=t.max_iter,
            initial=t.start_iter,
            desc="train",
            unit="it",
            dynamic_ncols=True,
            disable=not is_main_process(),
        )

    def after_step(self) -> None:
        t = self.trainer
        for k, v in t.step_stats.items():
            self.window[k].append(v)
        self.bar.update(1)
        if t.iter % self.period == 0 or t.iter == t.max_iter:
            stats = reduce_mean({k: float(np.mean(v)) for k, v in self.window.items()})
            remaining = t.max_iter - t.iter
            stats["eta_seconds"] = remaining * stats.get("iter_time", 0.0)
            stats["lr"] = t.optimizer.param_groups[0]["lr"]
            self.bar.set_postfix(loss=f"{stats.get('total_loss', float('nan')):.3f}", lr=f"{stats['lr']:.2e}")
            if t.metrics_writer is not None:
                t.metrics_writer.write(t.iter, stats)
            logger.debug("iter %d: %s", t.iter, stats)

    def after_train(self) -> None:
        if self.bar is not None:
            self.bar.close()


class EvalHook(HookBase):
    """COCO evaluation on ``DATASETS.TEST`` every ``period`` iterations and at the end; rows
    ``{dataset}/{metric}`` go to ``metrics.json``. All ranks run inference on their shard."""

    def __init__(self, period: int, datasets: List[str]):
        self.period, self.datasets = int(period), list(datasets)

    def _run(self) -> None:
        from maskface.evaluation.coco_evaluation import evaluate_model_on_dataset

        t = self.trainer
        flat: Dict[str, float] = {}
        for name in self.datasets:
            out_dir = os.path.join(t.cfg.OUTPUT_DIR, "eval", f"iter_{t.iter:07d}", _safe_name(name))
            res = evaluate_model_on_dataset(t.unwrapped_model, name, t.cfg, output_dir=out_dir, device=t.device)
            if res is not None:
                for k, v in res.items():
                    if isinstance(v, (int, float)):
                        flat[f"{_safe_name(name)}/{k}"] = float(v)
        if flat and t.metrics_writer is not None:
            t.metrics_writer.write(t.iter, flat)
            logger.info("Evaluation at iteration %d: %s", t.iter, {k: round(v, 4) for k, v in flat.items()})

    def after_step(self) -> None:
        t = self.trainer
        if self.period > 0 and t.iter % self.period == 0 and t.iter < t.max_iter:
            self._run()

    def after_train(self) -> None:
        t = self.trainer
        if t.iter >= t.max_iter and t.iter > t.start_iter:
            self._run()


def _safe_name(name: str) -> str:
    base = os.path.basename(name)
    return base[:-5] if base.endswith(".json") else base


# --- trainer ---------------------------------------------------------------------------------------
class DetectorTrainer:
    """Builds model, optimizer, scheduler, data and hooks from ``cfg``; ``train()`` runs.

    Usage::

        trainer = DetectorTrainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        trainer.train()
    """

    def __init__(self, cfg, device: Optional[torch.device] = None):
        self.cfg = cfg
        self.rank, self.world_size = get_rank(), get_world_size()
        total = cfg.SOLVER.IMS_PER_BATCH
        if total % self.world_size:
            raise ValueError(f"SOLVER.IMS_PER_BATCH={total} is not divisible by the {self.world_size} processes")
        self.batch_per_rank = total // self.world_size
        if device is None:
            device = default_device() if (is_dist() and cfg.MODEL.DEVICE == "auto") else resolve_device(cfg.MODEL.DEVICE)
        self.device = device

        model = build_face_rcnn(cfg).to(device)
        self.unwrapped_model = model
        self.optimizer = build_optimizer(cfg, model)
        self.scheduler = build_lr_scheduler(cfg, self.optimizer)
        self.amp = bool(cfg.SOLVER.AMP) and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        if self.world_size > 1:
            model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        self.model = model
        self.checkpointer = Checkpointer(
            self.unwrapped_model,
            cfg.OUTPUT_DIR,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
        )
        self.start_iter = self.iter = 0
        self.max_iter = int(cfg.SOLVER.MAX_ITER)
        self.step_stats: Dict[str, float] = {}
        self.metrics_writer: Optional[MetricsWriter] = None  # rank 0, during train()
        self.hooks: List[HookBase] = []
        self.register_hooks(self.build_hooks())

    # -- setup ------------------------------------------------------------------------------------
    def build_hooks(self) -> List[HookBase]:
        cfg = self.cfg
        hooks: List[HookBase] = [PeriodicCheckpoint(cfg.SOLVER.CHECKPOINT_PERIOD)]
        if cfg.DATASETS.TEST:
            hooks.append(EvalHook(cfg.TEST.EVAL_PERIOD, cfg.DATASETS.TEST))
        hooks.append(MetricsLogger(cfg.SOLVER.LOG_PERIOD))  # last: logs the eval-free step time
        return hooks

    def register_hooks(self, hooks: List[HookBase]) -> None:
        for h in hooks:
            h.trainer = self
        self.hooks.extend(hooks)

    def build_train_loader(self):
        cfg = self.cfg
        records = load_datasets(cfg.DATASETS.TRAIN, cfg.DATASETS.IMAGE_ROOT)
        paste = [r for recs in load_datasets(cfg.DATASETS.PASTE, cfg.DATASETS.IMAGE_ROOT) for r in recs] if cfg.DATASETS.PASTE else None
        return build_train_loader(
            records,
            DatasetMapper.from_config(cfg, is_train=True, paste_records=paste),
            batch_size=self.batch_per_rank,
            weights=cfg.DATASETS.TRAIN_WEIGHTS,
            seed=cfg.SEED,
            rank=self.rank,
            world_size=self.world_size,
            start_iter=self.start_iter,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
        )

    def resume_or_load(self, resume: bool = True) -> None:
        """``resume``: continue from ``OUTPUT_DIR/last_checkpoint`` if there is one (model,
        optimizer, scheduler, scaler, iteration, RNG). Otherwise start at iteration 0, from
        ``MODEL.WEIGHTS`` if set (weights only)."""
        path = self.checkpointer.last_checkpoint() if resume else None
        if path:
            extra = self.checkpointer.load(path, resume=True)
            self.start_iter = self.iter = int(extra.get("iteration", 0))
            states = extra.get("rng_states")
            if states and len(states) == self.world_size:
                set_rng_state(states[self.rank])
            elif states:
                logger.warning(
                    "checkpoint has RNG states of %d processes, this run has %d: not restored (resume is not bit-exact)",
                    len(states),
                    self.world_size,
                )
            logger.info("Resumed from %s at iteration %d", path, self.start_iter)
        elif resume:
            logger.info("No checkpoint in %s: starting from scratch", self.cfg.OUTPUT_DIR)
        if not path and self.cfg.MODEL.WEIGHTS:
            data = load_checkpoint_file(self.cfg.MODEL.WEIGHTS)
            load_model_weights(self.unwrapped_model, data.get("model", data), source=self.cfg.MODEL.WEIGHTS)
            logger.info("Initialised the model from MODEL.WEIGHTS=%s", self.cfg.MODEL.WEIGHTS)

    def save_checkpoint(self, name: str) -> None:
        """Collective (every rank must call it): gathers RNG states, rank 0 writes."""
        states = all_gather_object(get_rng_state())
        if is_main_process():
            self.checkpointer.save(name, iteration=self.iter, rng_states=states, world_size=self.world_size)

    # -- loop -------------------------------------------------------------------------------------
    def train(self) -> None:
        if self.start_iter >= self.max_iter:
            logger.info("Nothing to do: iteration %d >= SOLVER.MAX_ITER %d", self.start_iter, self.max_iter)
            return
        logger.info(
            "Training iterations %d..%d, %d images/iteration (%d per process x %d), device %s",
            self.start_iter,
            self.max_iter,
            self.batch_per_rank * self.world_size,
            self.batch_per_rank,
            self.world_size,
            self.device,
        )
        loader = self.build_train_loader()
        self.model.train()
        if is_main_process():
            self.metrics_writer = MetricsWriter(self.cfg.OUTPUT_DIR)
        try:
            for h in self.hooks:
                h.before_train()
            data_iter = iter(loader)
            try:
                while self.iter < self.max_iter:
                    t0 = time.perf_counter()
                    batch = next(data_iter)
                    data_time = time.perf_counter() - t0
                    self.run_step(batch)
                    self.iter += 1
                    self.step_stats["iter_time"] = time.perf_counter() - t0
                    self.step_stats["data_time"] = data_time
                    for h in self.hooks:
                        h.after_step()
            finally:
                del data_iter  # stops loader workers
            for h in self.hooks:
                h.after_train()
        finally:
            if self.metrics_writer is not None:
                self.metrics_writer.close()
                self.metrics_writer = None

    def run_step(self, batch) -> None:
        images, targets, _ = batch
        images = [im.to(self.device, non_blocking=True) for im in images]
        targets = targets_to_device(targets, self.device)
        with torch.autocast(device_type=self.device.type, enabled=self.amp):
            loss_dict = self.model(images, targets)
        losses = sum(loss_dict.values())
        self._check_finite(losses, loss_dict)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses).backward()
        stats = {k: float(v.detach()) for k, v in loss_dict.items()}
        stats["total_loss"] = float(losses.detach())
        clip = self.cfg.SOLVER.CLIP_GRAD_NORM
        if clip > 0:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
            if math.isfinite(grad_norm):  # inf/nan: AMP overflow, GradScaler skips this step
                stats["grad_norm"] = grad_norm
        self.scaler.step(self.optimizer)
        self.scaler.update()
        with warnings.catch_warnings():
            # GradScaler skips optimizer.step() on overflow (first AMP steps); the schedule is
            # per iteration regardless, so torch's "scheduler before optimizer" warning is moot.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
            self.scheduler.step()
        self.step_stats = stats

    def _check_finite(self, losses: torch.Tensor, loss_dict: Dict[str, torch.Tensor]) -> None:
        ok = torch.isfinite(losses.detach()).to(torch.float32)
        if self.world_size > 1:  # every rank must stop together, or the others hang in backward
            torch.distributed.all_reduce(ok, op=torch.distributed.ReduceOp.MIN)
        if not bool(ok):
            raise FloatingPointError(
                f"loss became non-finite at iteration {self.iter} (on some rank); this rank's losses: "
                f"{ {k: float(v) for k, v in loss_dict.items()} }. Lower SOLVER.BASE_LR, raise "
                "SOLVER.WARMUP_ITERS or check the data."
            )


# --- entry point for tools/train_net.py (picklable for spawned processes) ---------------------------
def train_worker(cfg, resume: bool = False) -> int:
    """Set up logging / seeds / run folder for this process, then train. Returns 0."""
    rank = get_rank()
    setup_logging(cfg.OUTPUT_DIR, rank=rank)
    seed_all(cfg.SEED, rank)
    if is_main_process():
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        path = save_config(cfg, cfg.OUTPUT_DIR)
        logger.info("Merged config saved to %s", path)
    trainer = DetectorTrainer(cfg)
    trainer.resume_or_load(resume=resume)
    trainer.train()
    return 0
